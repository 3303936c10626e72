/**
 * One durable purge queue per Varnish instance, named after its URL alone: a deploy that adds an
 * instance or lists them in another order still delivers what the previous release queued.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { varnishPurger } from '../../src/edge/index.js';
import { createDumper } from '../../src/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import { listen } from '../support/listen.js';

function fakeVarnish(log: string[], name: string, state: { up: boolean }) {
  return listen((req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!state.up) {
      res.statusCode = 503;
      return res.end();
    }
    log.push(`${name} ${String(req.headers['xkey-purge'])}`);
    res.end('ok');
  });
}

test('varnishPurger: the same instances in any order make the same queues, one per instance', () => {
  const ids = (p: ReturnType<typeof varnishPurger>) => (p.instances ?? [p]).map((i) => i.id);
  expect(ids(varnishPurger({ url: ['http://b:6081', 'http://a:6081'] }))).toEqual(ids(varnishPurger({ url: ['http://a:6081/', 'http://b:6081'] })));
  expect(ids(varnishPurger({ url: ['http://b:6081', 'http://a:6081'] }))).toEqual(['varnish http://a:6081/', 'varnish http://b:6081/']);
  expect(ids(varnishPurger({ url: 'http://a:6081' }))).toEqual(['varnish http://a:6081/']);
});

test('purges queued by a release with one instance are delivered by the next, which lists two', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'page-dumper-varnish-queues-'));
  const path = join(dir, 'store.db');
  const log: string[] = [];
  const a = { up: false };
  const va = await fakeVarnish(log, 'A', a);
  const vb = await fakeVarnish(log, 'B', { up: true });
  try {
    const old = createDumper({ logger: false, store: new SqliteStore({ path }), purgers: [varnishPurger({ url: va.url })] });
    await old.invalidate('/flavours/vanilla/');
    await old.close(); // A was down: the purge stays queued
    a.up = true;
    const next = createDumper({
      logger: false,
      store: new SqliteStore({ path }),
      purgers: [varnishPurger({ url: [vb.url, va.url] })],
      edge: { raceWindow: 10 },
    });
    await next.flushPurges();
    await next.close();
    expect(log.some((l) => l.startsWith('A ') && l.includes('/flavours/vanilla'))).toBe(true);
  } finally {
    await va.close();
    await vb.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
