/**
 * The runnable example of an ORM's docs page runs: `docsExampleSuite()` extracts the first ```js
 * block after the page's "## A runnable example" heading, runs it as a user would (a child
 * process, against the built package resolved by name, on a free port instead of 3000), and
 * checks that the flavour page is a MISS, then a HIT, and a MISS with the new name after the
 * example's admin route renames the flavour (`POST /admin/flavours/vanilla?name=...`) through the
 * ORM, never calling the dumper itself (and with `invalidateOnUnsafe` off, so that the POST's
 * redirect does not invalidate the page instead of the ORM).
 *
 * ```ts
 * docsExampleSuite({ doc: 'docs/drizzle.md', write: 'db.update() by predicate' });
 * ```
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

export interface DocsExampleOptions {
  /** The docs page, relative to the repository root. */
  readonly doc: string;
  /** How the example's admin route writes, for the test's name. */
  readonly write: string;
}

export function docsExampleSuite({ doc, write }: DocsExampleOptions): void {
  const file = join(root, '.tmp', `${basename(doc, '.md')}-docs-example-${process.pid}.mjs`);
  let child: ChildProcess | undefined;
  let base: string;

  beforeAll(async () => {
    execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
    const docs = readFileSync(join(root, doc), 'utf8');
    const code = /```js\n([\s\S]*?)```/.exec(docs.slice(docs.indexOf('## A runnable example')))![1]!;
    const listen = 'http.createServer(withDumper(dumper, app)).listen(3000);';
    expect(code).toContain(listen);
    // The admin route's POST would invalidate its redirect's target by itself (the option
    // invalidateOnUnsafe): off here, so that only the ORM's own invalidation can turn the page
    // back into a MISS.
    const create = 'const dumper = createDumper();';
    expect(code).toContain(create);
    mkdirSync(join(root, '.tmp'), { recursive: true });
    writeFileSync(
      file,
      code
        .replace(create, 'const dumper = createDumper({ invalidateOnUnsafe: false });')
        .replace(listen, "const server = http.createServer(withDumper(dumper, app)).listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));"),
    );
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

  test(`the example caches the flavour page and re-renders it after ${write}`, async () => {
    const get = async (path: string) => {
      const r = await fetch(base + path);
      return { status: r.status, cache: r.headers.get('x-cache'), body: await r.text() };
    };
    expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'MISS', body: '<h1>Vanilla</h1>' });
    expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'HIT', body: '<h1>Vanilla</h1>' });
    const post = await fetch(`${base}/admin/flavours/vanilla?name=Vanilla%20bean`, { method: 'POST', redirect: 'manual' });
    expect(post.status).toBe(303);
    expect(await get('/flavours/vanilla/')).toEqual({ status: 200, cache: 'MISS', body: '<h1>Vanilla bean</h1>' });
    expect((await get('/flavours/vanilla/')).cache).toBe('HIT');
  });
}
