/**
 * docs/mikro-orm.md's trackReads example runs as a user would (a child process, against the
 * built package resolved by name, on a free port): a post page is a MISS then a HIT, a comment
 * added to post 1 through a flush (no register(), no call to the dumper) drops post 1's page
 * (re-rendered with the comment) and leaves post 2's stored.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const file = join(root, '.tmp', `mikro-orm-track-reads-example-${process.pid}.mjs`);
let child: ChildProcess | undefined;
let base: string;

beforeAll(async () => {
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
  const docs = readFileSync(join(root, 'docs/mikro-orm.md'), 'utf8');
  const section = docs.slice(docs.indexOf('## Without dependentPaths: trackReads'));
  // The section's second block: the first is the one-line setup.
  const code = [...section.matchAll(/```js\n([\s\S]*?)```/g)][1]![1]!;
  const listen = 'http.createServer(withDumper(dumper, app)).listen(3000);';
  expect(code).toContain(listen);
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

test('the trackReads example drops the page of the post a comment was added to, and only it', async () => {
  const get = async (path: string) => {
    const r = await fetch(base + path);
    return { cache: r.headers.get('x-cache'), body: await r.text() };
  };
  for (const path of ['/posts/1/', '/posts/2/']) {
    expect((await get(path)).cache).toBe('MISS');
    expect((await get(path)).cache).toBe('HIT');
  }
  const post = await fetch(`${base}/admin/posts/1/comments?body=great`, { method: 'POST', redirect: 'manual' });
  expect(post.status).toBe(303);
  // The invalidation lands after the response: polled for, bounded.
  let after = await get('/posts/1/');
  for (let i = 0; i < 50 && after.cache === 'HIT'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = await get('/posts/1/');
  }
  expect(after.cache).toBe('MISS');
  expect(after.body).toBe('<h1>Hello</h1><ul><li>nice</li><li>great</li></ul>');
  expect((await get('/posts/2/')).cache).toBe('HIT');
});
