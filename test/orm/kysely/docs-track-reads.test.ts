/**
 * docs/kysely.md's runnable trackReads example runs as a user would (a child process, against the
 * built package resolved by name, on a free port): the flavour page, which nothing registers, is a
 * MISS, then a HIT, and a MISS with the new name after the admin route renames the flavour with
 * `updateTable()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const file = join(root, '.tmp', `kysely-track-reads-example-${process.pid}.mjs`);
let child: ChildProcess | undefined;
let base: string;

beforeAll(async () => {
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
  const docs = readFileSync(join(root, 'docs/kysely.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf('### Runnable: the flavour page with trackReads')))![1]!;
  const listen = 'http.createServer(withDumper(dumper, app)).listen(3000);';
  expect(code).toContain(listen);
  expect(code).not.toContain('register(');
  mkdirSync(join(root, '.tmp'), { recursive: true });
  writeFileSync(file, code.replace(listen, "const server = http.createServer(withDumper(dumper, app)).listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));"));
  child = spawn(process.execPath, [file], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise<string>((res, rej) => {
    child!.stdout!.on('data', (d: Buffer) => {
      const m = /PORT (\d+)/.exec(String(d));
      if (m) res(`http://127.0.0.1:${m[1]}`);
    });
    child!.on('exit', (code) => rej(new Error(`the example exited with ${code}`)));
  });
}, 240_000);

afterAll(() => {
  child?.kill();
  rmSync(file, { force: true });
});

test('the trackReads example caches the flavour page and re-renders it after updateTable()', async () => {
  const get = async (path: string) => {
    const r = await fetch(base + path);
    return { status: r.status, cache: r.headers.get('x-cache'), body: await r.text() };
  };
  expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'MISS', body: '<h1>Vanilla</h1>' });
  expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'HIT', body: '<h1>Vanilla</h1>' });
  const post = await fetch(`${base}/admin/flavours/vanilla?name=Vanilla%20bean`, { method: 'POST', redirect: 'manual' });
  expect(post.status).toBe(204);
  expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'MISS', body: '<h1>Vanilla bean</h1>' });
  expect((await get('/flavours/vanilla/')).cache).toBe('HIT');
});
