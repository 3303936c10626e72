/**
 * The README's quick start is runnable: extract it, run it as a user would (against the built
 * package, resolved by name), and check MISS, HIT and invalidation on a write.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const file = join(root, '.tmp', `readme-quickstart-${process.pid}.mjs`);
let child: ChildProcess;
let base: string;

beforeAll(async () => {
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 120_000 });
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start with Express'));
  const code = /```js\n([\s\S]*?)```/.exec(section)![1]!;
  expect(code).toContain('app.listen(3000);');
  mkdirSync(join(root, '.tmp'), { recursive: true });
  writeFileSync(file, code.replace('app.listen(3000);', "const server = app.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));"));
  child = spawn(process.execPath, [file], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  base = await new Promise<string>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /PORT (\d+)/.exec(String(d));
      if (m) res(`http://127.0.0.1:${m[1]}`);
    });
    child.on('exit', (code) => rej(new Error(`quick start exited with ${code}`)));
  });
}, 180_000);

afterAll(() => {
  child?.kill();
  rmSync(file, { force: true });
});

test('the quick start caches, serves hits, and re-renders after a write', async () => {
  const get = async (p: string) => {
    const r = await fetch(base + p);
    return { cache: r.headers.get('x-cache'), body: await r.text(), status: r.status };
  };
  expect(await get('/ice-cream/')).toMatchObject({ cache: 'MISS', body: '<ul><li>Vanilla</li></ul>' });
  expect(await get('/ice-cream/')).toMatchObject({ cache: 'HIT', body: '<ul><li>Vanilla</li></ul>' });
  expect(await get('/ice-cream/vanilla/')).toMatchObject({ cache: 'MISS', body: '<h1>Vanilla</h1>' });
  expect((await get('/ice-cream/nope/')).status).toBe(404);
  const post = await fetch(base + '/admin/ice-cream/vanilla/', { method: 'POST', body: new URLSearchParams({ name: 'Very Vanilla' }), redirect: 'manual' });
  expect(post.status).toBe(303);
  expect(await get('/ice-cream/')).toMatchObject({ cache: 'MISS', body: '<ul><li>Very Vanilla</li></ul>' });
  expect(await get('/ice-cream/vanilla/')).toMatchObject({ cache: 'MISS', body: '<h1>Very Vanilla</h1>' });
  expect((await get('/ice-cream/vanilla/')).cache).toBe('HIT');
});
