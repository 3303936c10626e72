/**
 * The runnable example of docs/metrics.md runs: its imports pointed at the sources (the package
 * names resolve once built), on a free port, and the numbers the page shows are the numbers a
 * scrape gives.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { Dumper } from '../../src/index.js';

const root = resolve(import.meta.dirname, '../..');
const file = join(root, '.tmp', `metrics-docs-example-${process.pid}.mjs`);
let server: http.Server | undefined;
let dumper: Dumper | undefined;

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await dumper?.close();
  rmSync(file, { force: true });
});

test('the Prometheus example serves pages and the metrics the page shows', async () => {
  const docs = readFileSync(join(root, 'docs/metrics.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf('### A runnable example')))![1]!;
  const listen = "server.listen(3000, () => console.log('listening on http://localhost:3000'));";
  expect(code).toContain(listen);
  const source = code
    .replace("from 'page-dumper/node'", `from '${join(root, 'src/http/node/index.ts')}'`)
    .replace("from 'page-dumper/prometheus'", `from '${join(root, 'src/prometheus/index.ts')}'`)
    .replace("from 'page-dumper'", `from '${join(root, 'src/index.ts')}'`)
    .replace(listen, "await new Promise((r) => server.listen(0, '127.0.0.1', r));\nexport { server, dumper };");
  mkdirSync(join(root, '.tmp'), { recursive: true });
  writeFileSync(file, source);
  const mod = (await import(file)) as { server: http.Server; dumper: Dumper };
  server = mod.server;
  dumper = mod.dumper;
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const a = await fetch(base + '/ice-cream/vanilla');
  expect(await a.text()).toBe('<h1>vanilla</h1>');
  expect(a.headers.get('cache-status')).toBe('page-dumper; fwd=uri-miss; stored');
  const b = await fetch(base + '/ice-cream/vanilla');
  await b.text();
  expect(b.headers.get('cache-status')).toBe('page-dumper; hit');
  const scrape = await fetch(base + '/metrics');
  const text = await scrape.text();
  const shown = /```text\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf('### A runnable example')))![1]!;
  for (const line of shown.trim().split('\n')) expect(text.split('\n')).toContain(line);
  const again = await (await fetch(base + '/metrics')).text();
  expect(again).toContain('page_dumper_refusals_total{reason="cache-control"} 1');
  expect(again).toContain('page_dumper_requests_total{result="miss"} 3');
});
