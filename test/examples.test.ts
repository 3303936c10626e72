/**
 * The framework examples (examples/fastify, koa, hono, nestjs, nextjs) run as a user runs them,
 * each in its own process on a free port, against the built package resolved by name: a page is
 * a MISS then a HIT, an admin write (`dumper.changed()`) turns the pages that show the changed
 * flavour back into a MISS with the new content, and a tagged page is invalidated by
 * `dumper.invalidateTags()`. And every code block of docs/frameworks.md is copied from an example.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const nextBin = join(root, 'node_modules/next/dist/bin/next');
const nextDir = join(root, 'examples/nextjs');

interface Example {
  name: string;
  args: string[];
  env?: Record<string, string>;
  /** Finds the origin in what the server prints when it is listening. */
  url: RegExp;
  /** Our own examples exit 0 on SIGTERM after closing the server and the dumper. */
  ownMain: boolean;
}

const printed = /: (http:\/\/127\.0\.0\.1:\d+)\/ice-cream\n/;
const examples: Example[] = [
  { name: 'Fastify (fastifyDumper)', args: ['examples/fastify/server.js'], url: printed, ownMain: true },
  { name: 'Koa (koaDumper)', args: ['examples/koa/server.js'], url: printed, ownMain: true },
  { name: 'Hono (honoDumper)', args: ['examples/hono/server.js'], url: printed, ownMain: true },
  { name: 'Hono (dumperFetch front door)', args: ['examples/hono/server.js'], env: { FRONT_DOOR: '1' }, url: printed, ownMain: true },
  { name: 'NestJS on Express (dumperMiddleware)', args: ['examples/nestjs/dist/main.js'], env: { PLATFORM: 'express' }, url: printed, ownMain: true },
  { name: 'NestJS on Express (withDumper front door)', args: ['examples/nestjs/dist/main.js'], env: { PLATFORM: 'express-front-door' }, url: printed, ownMain: true },
  { name: 'NestJS on Fastify (fastifyDumper)', args: ['examples/nestjs/dist/main.js'], env: { PLATFORM: 'fastify' }, url: printed, ownMain: true },
  { name: 'Next.js route handlers (dumperFetch)', args: [nextBin, 'start', nextDir, '-H', '127.0.0.1'], env: { NODE_ENV: 'production' }, url: /Local:\s+(http:\/\/127\.0\.0\.1:\d+)/, ownMain: false },
];

/** The environment of a shell, not of vitest (which sets NODE_ENV=test). */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', DEBUG: '', NEXT_TELEMETRY_DISABLED: '1', ...extra };
  if (extra.NODE_ENV === undefined) delete env.NODE_ENV;
  return env;
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(args: string[], env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`${args.join(' ')} exited with ${code}:\n${output}`))));
  });
}

/** The newest modification time of the files under `dir` (skipping `skip` directories). */
function newest(dir: string, skip: string[] = []): number {
  let max = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip.includes(entry.name)) continue;
    const path = join(dir, entry.name);
    max = Math.max(max, entry.isDirectory() ? newest(path, skip) : statSync(path).mtimeMs);
  }
  return max;
}

/** `next build`, unless .next/ is newer than the example, the built package and Next itself. */
async function buildNextIfNeeded(): Promise<void> {
  const id = join(nextDir, '.next', 'BUILD_ID');
  if (existsSync(id)) {
    const inputs = Math.max(newest(nextDir, ['.next']), newest(join(root, 'dist')), statSync(join(root, 'node_modules/next/package.json')).mtimeMs);
    if (statSync(id).mtimeMs > inputs) return;
  }
  await run([nextBin, 'build', nextDir], { NODE_ENV: 'production' });
}

interface Server {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

function startServer(example: Example): Promise<Server> {
  const child = spawn(process.execPath, example.args, { cwd: root, env: childEnv(example.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise<Server>((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`${example.name}: no URL printed within 30 s; stdout: ${stdout}; stderr: ${stderr}`)), 30_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = example.url.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolveStart({ child, url: m[1]!, exited });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${example.name} exited with ${code}; stdout: ${stdout}; stderr: ${stderr}`));
    });
  });
}

const servers = new Map<string, Server>();

beforeAll(async () => {
  // The examples import 'page-dumper' by name, which resolves to dist/: build it unless up to date.
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
  // The NestJS example is TypeScript (incremental: fast when nothing changed); Next.js builds once.
  await Promise.all([run([join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'examples/nestjs/tsconfig.json')]), buildNextIfNeeded()]);
  const started = await Promise.allSettled(examples.map(async (e) => servers.set(e.name, await startServer(e))));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
}, 240_000);

afterAll(async () => {
  await Promise.all(
    [...servers.values()].map(async ({ child, exited }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }),
  );
});

interface Page {
  status: number;
  cache: string | null;
  body: string;
}

describe.each(examples)('$name', (example) => {
  const site = () => servers.get(example.name)!;

  async function get(path: string, method = 'GET'): Promise<Page> {
    const res = await fetch(site().url + path, { method });
    return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text() };
  }

  async function post(path: string, json: unknown): Promise<unknown> {
    const res = await fetch(site().url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
    const text = await res.text();
    expect(res.status, `POST ${path}: ${text}`).toBe(200);
    // The admin is never cached; with the dumper in front of it, it says so.
    expect([null, 'BYPASS']).toContain(res.headers.get('x-cache'));
    return JSON.parse(text);
  }

  /** Gets a page until it is cached: the second request must be a HIT. */
  async function warm(path: string): Promise<Page> {
    await get(path);
    const page = await get(path);
    expect(page.cache, path).toBe('HIT');
    return page;
  }

  test('a page is a MISS, then a HIT with the same body; HEAD is answered from it; a 404 is never stored', async () => {
    const first = await get('/ice-cream/pistachio');
    expect([first.status, first.cache]).toEqual([200, 'MISS']);
    expect(first.body).toContain('<h1>Pistachio</h1>');
    const second = await get('/ice-cream/pistachio');
    expect([second.status, second.cache]).toEqual([200, 'HIT']);
    expect(second.body).toBe(first.body);
    const head = await get('/ice-cream/pistachio', 'HEAD');
    expect([head.status, head.cache, head.body]).toEqual([200, 'HIT', '']);
    for (let i = 0; i < 2; i++) {
      const missing = await get('/ice-cream/rum-raisin');
      expect([missing.status, missing.cache]).toEqual([404, 'MISS']);
    }
  });

  test('an admin write calls dumper.changed(): the pages that show the flavour are a MISS with the new name, the others stay a HIT', async () => {
    const before = await warm('/ice-cream/vanilla');
    await warm('/ice-cream');
    await warm('/specials'); // vanilla is a special: tagged flavour:vanilla, IceCream's dependentTags
    await warm('/ice-cream/chocolate');

    expect(await post('/admin/ice-cream/vanilla', { name: 'Vanilla <bean>', price: 3.25 })).toMatchObject({ slug: 'vanilla', name: 'Vanilla <bean>' });

    const detail = await get('/ice-cream/vanilla');
    expect(detail.cache).toBe('MISS');
    expect(detail.body).toContain('<h1>Vanilla &#60;bean&#62;</h1>');
    expect(detail.body).toContain('€3.25');
    expect(detail.body).not.toBe(before.body);
    for (const path of ['/ice-cream', '/specials']) {
      const page = await get(path);
      expect(page.cache, path).toBe('MISS');
      expect(page.body, path).toContain('Vanilla &#60;bean&#62;');
    }
    expect((await get('/ice-cream/chocolate')).cache).toBe('HIT');
    expect((await get('/ice-cream/vanilla')).cache).toBe('HIT');
  });

  test('a page tagged with dumper.tag() is invalidated by dumper.invalidateTags()', async () => {
    await warm('/specials');
    await warm('/ice-cream');
    expect(await post('/admin/specials', { slugs: ['chocolate', 'pistachio'] })).toEqual({ specials: ['chocolate', 'pistachio'] });
    const specials = await get('/specials');
    expect(specials.cache).toBe('MISS');
    expect(specials.body).toMatch(/<li>Chocolate<\/li><li>Pistachio<\/li>/);
    expect(specials.body).not.toContain('Vanilla');
    expect((await get('/specials')).cache).toBe('HIT');
    // Only the tagged page: the list is still served from the cache.
    expect((await get('/ice-cream')).cache).toBe('HIT');
  });

  if (example.ownMain) {
    test('SIGTERM closes the server and the dumper, and the process exits 0', async () => {
      const { child, exited } = site();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    });
  }
});

describe('docs/frameworks.md', () => {
  const docs = readFileSync(join(root, 'docs/frameworks.md'), 'utf8');
  const blocks = [...docs.matchAll(/```(?:js|ts)\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());

  test('has code blocks for every example', () => {
    expect(blocks.length).toBeGreaterThan(8);
    for (const file of ['examples/fastify/server.js', 'examples/koa/server.js', 'examples/hono/server.js', 'examples/nestjs/src/main.ts', 'examples/nestjs/src/dumper.module.ts', 'examples/nextjs/lib/site.js']) {
      expect(blocks.some((b) => b.startsWith(`// ${file}\n`)), file).toBe(true);
    }
  });

  // Each block starts with `// <file>`; its lines appear in that file in the same order (a line
  // `// ...` stands for lines left out). So the guide cannot drift from the tested examples.
  test.each(blocks.map((b, i) => [i + 1, b.slice(0, b.indexOf('\n')), b] as const))('block %i (%s) is copied from its example', (_, first, block) => {
    const file = /^\/\/ (examples\/\S+)$/.exec(first)?.[1];
    expect(file, `a code block must start with "// examples/<file>": ${first}`).toBeDefined();
    const source = readFileSync(join(root, file!), 'utf8').split('\n').map((l) => l.trim());
    let at = 0;
    for (const line of block.split('\n').slice(1).map((l) => l.trim())) {
      if (line === '' || line === '// ...') continue;
      const found = source.indexOf(line, at);
      expect(found, `${file} has no line "${line}" after line ${at}`).toBeGreaterThanOrEqual(0);
      at = found + 1;
    }
  });
});

describe('an example started on a port that is taken', () => {
  // The demo (npm start) and the framework examples with a main of their own.
  const mains = [
    { name: 'the demo (npm start)', args: ['examples/ice-cream/server.js'], env: undefined as Record<string, string> | undefined, says: 'page-dumper demo' },
    ...examples.filter((e) => e.ownMain && e.env?.PLATFORM !== 'express-front-door').map((e) => ({ name: e.name, args: e.args, env: e.env, says: '' })),
  ];

  test.each(mains)('$name exits with 1 and one line naming the port', async (main) => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, main.args, { cwd: root, env: childEnv({ ...main.env, PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code).toBe(1);
      expect(stdout).toBe('');
      // NestJS's own logger reports the failed listen() first, as it does in any Nest app.
      const lines = stderr.split('\n').filter((line) => line !== '' && !line.includes('[Nest]'));
      expect(lines).toEqual([expect.stringMatching(new RegExp(`^page-dumper [^:]*: port ${port} is already in use; start it on another one with PORT=<port>$`))]);
      if (!main.args[0]!.includes('nestjs')) expect(stderr.endsWith('\n') && !stderr.includes('[Nest]') && stderr.split('\n').length === 2).toBe(true);
      if (main.says !== '') expect(stderr.startsWith(main.says + ':')).toBe(true);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  }, 60_000);
});
