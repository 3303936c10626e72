/**
 * The shared stores across real processes: several app processes (test/stores/fixtures/app-server.mjs)
 * share one page cache (a SqliteStore file, or a RedisStore prefix on the machine's Redis) and one
 * data file. After a write through one process has answered, no process serves the old page; under
 * concurrent readers and writers spread over the processes, no response shows data older than what
 * a write had committed before that request was sent. The same check, run against processes that
 * skip the invalidation, finds stale pages: it can fail.
 *
 * RedisStore with its local tier is held to its documented promise instead: a page may be older
 * than a write only for as long as the pub/sub message takes to arrive. Its check allows a grace
 * period (GRACE_MS) and prints how many reads fell inside it.
 *
 * A crash of Redis in the middle of the load (a redis-server of the test's own, killed with
 * SIGKILL and restarted, once from a snapshot taken a moment before, once empty) must not make any
 * process serve a page older than a write that had answered, whether that write's invalidation
 * failed while Redis was away or was lost with the data Redis had not saved. The same check, with
 * the processes' floor raise after a lost connection turned off, finds stale pages.
 *
 * The children run plain JavaScript, so the package is compiled first (only the entry points they
 * use) into a directory of its own under .tmp/, never touching dist/. The same build runs the
 * example of docs/stores.md, a cluster of two workers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RedisServer } from '../support/redis-server.js';
import { needService, definedIf } from '../support/services.js';

const hasRedis = await needService('redis');
const REDIS_URL = 'redis://127.0.0.1:6379';
/** Every Redis key of this file is under this prefix, deleted at the end. */
const redisRun = `pdtest:mp:${randomUUID().slice(0, 8)}:`;
/** How long after a write's answer the local tier may still show the old page (it is ~0.1 ms at p99 on loopback). */
const GRACE_MS = 50;

const root = resolve(import.meta.dirname, '../..');
const fixture = join(root, 'test/stores/fixtures/app-server.mjs');
let build: string;

beforeAll(() => {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  build = mkdtempSync(join(root, '.tmp', 'multiprocess-'));
  const entries = ['index.ts', 'http/node/index.ts', 'stores/sqlite/index.ts', 'stores/redis/index.ts'];
  writeFileSync(
    join(build, 'tsconfig.json'),
    JSON.stringify({
      extends: join(root, 'tsconfig.build.json'),
      compilerOptions: { rootDir: join(root, 'src'), outDir: join(build, 'dist'), declaration: false },
      files: entries.map((e) => join(root, 'src', e)),
      include: [],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(build, 'tsconfig.json')], { encoding: 'utf8' });
  // A type error elsewhere still emits JavaScript; only missing output stops the test.
  for (const e of entries) {
    const out = join(build, 'dist', e.replace(/\.ts$/, '.js'));
    if (!existsSync(out)) throw new Error(`the build did not write ${out}:\n${tsc.stdout}${tsc.stderr}`);
  }
  // The package's own exports, so that code in `build` imports 'page-dumper/sqlite' by name.
  copyFileSync(join(root, 'package.json'), join(build, 'package.json'));
}, 180_000);

afterAll(async () => {
  if (build) rmSync(build, { recursive: true, force: true });
  if (!hasRedis) return;
  const redis = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisRun}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  await redis.quit();
});

interface App {
  name: string;
  url: string;
  child: ChildProcess;
}

const running = new Set<ChildProcess>();

function stop(child: ChildProcess): Promise<void> {
  running.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}

afterAll(async () => {
  await Promise.all([...running].map(stop));
});

/** Starts one app process and resolves once it listens. */
function startApp(name: string, env: Record<string, string>): Promise<App> {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, ...env, NAME: name, PAGE_DUMPER_DIST: join(build, 'dist') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  return new Promise((ok, fail) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const m = /LISTENING (\d+)/.exec(d);
      if (m) ok({ name, url: `http://127.0.0.1:${m[1]}`, child });
    });
    child.once('exit', (code) => fail(new Error(`${name} exited with ${code}: ${output}`)));
  });
}

type StoreKind = 'sqlite' | 'redis' | 'redis-local';

/**
 * The environment of the app processes of one test: a data file with `items` items at version 0,
 * and a page cache of its own (a SQLite file beside it, or a fresh Redis prefix).
 */
function setup(store: StoreKind, items: number): Record<string, string> {
  const { CACHE_DB, DATA_DB } = files(items);
  if (store === 'sqlite') return { STORE: store, CACHE_DB, DATA_DB };
  return { STORE: store, DATA_DB, REDIS_URL, REDIS_PREFIX: `${redisRun}${randomUUID().slice(0, 8)}:` };
}

/** A cache file and a data file with `items` items at version 0, in a directory of their own. */
function files(items: number): { CACHE_DB: string; DATA_DB: string } {
  const dir = mkdtempSync(join(build, 'run-'));
  const DATA_DB = join(dir, 'data.sqlite');
  const db = new Database(DATA_DB);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO items (id, version) VALUES (?, 0)');
  for (let id = 1; id <= items; id++) insert.run(id);
  db.close();
  return { CACHE_DB: join(dir, 'pages.sqlite'), DATA_DB };
}

interface Page {
  cache: string | undefined;
  /** item id → version shown. */
  versions: Map<number, number>;
  by: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
afterAll(() => agent.destroy());

/**
 * One request with the Host a load balancer would pass on: the same for every process (the host
 * is part of the key, and each process listens on its own port).
 */
function request(app: App, method: string, path: string): Promise<{ status: number; cache: string | undefined; body: string }> {
  return new Promise((ok, fail) => {
    const req = http.request(app.url + path, { method, agent, headers: { host: 'shop.test' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => ok({ status: res.statusCode!, cache: res.headers['x-cache'] as string | undefined, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

async function read(app: App, path: string): Promise<Page> {
  const res = await request(app, 'GET', path);
  if (res.status !== 200) throw new Error(`GET ${path} on ${app.name}: ${res.status} ${res.body}`);
  const versions = new Map<number, number>();
  for (const m of res.body.matchAll(/data-id="(\d+)" data-version="(\d+)"/g)) versions.set(Number(m[1]), Number(m[2]));
  return { cache: res.cache, versions, by: /rendered by (\w+)/.exec(res.body)?.[1] ?? '?' };
}

async function write(app: App, id: number): Promise<number> {
  const res = await request(app, 'POST', `/item/${id}`);
  if (res.status !== 200) throw new Error(`POST /item/${id} on ${app.name}: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { version: number }).version;
}

interface LoadResult {
  /** Reads that hit, by the phase of the run they were sent in (see `LoadOptions.phase`). */
  hitsIn: Map<string, number>;
  checked: number;
  reads: number;
  writes: number;
  hits: number;
  stale: string[];
  /** Reads older than a write that had answered before they were sent, but by less than the grace period. */
  withinGrace: number;
  /** Hits served by a process other than the one that rendered the page. */
  crossHits: number;
}

interface LoadOptions {
  clients: number;
  /** Whether a loop sends one more request: a count, or until the test says stop. */
  more: () => boolean;
  graceMs?: number;
  /** The phase of the test a request is sent in, for `hitsIn` and the stale reports. */
  phase?: () => string;
  /** The share of requests that are writes. @default 0.1 */
  writes?: number;
}

/**
 * `clients` concurrent loops send `requests` requests in all to random processes: a tenth are
 * writes, the rest read one item or the list. Every read is checked against the versions whose
 * writes had answered before it was sent (`graceMs` earlier, for the local tier).
 */
function load(apps: App[], items: number, requests: number, clients: number, graceMs = 0): Promise<LoadResult> {
  let sent = 0;
  return run(apps, items, { clients, graceMs, more: () => sent++ < requests });
}

async function run(apps: App[], items: number, { clients, more, graceMs = 0, phase = () => '', writes = 0.1 }: LoadOptions): Promise<LoadResult> {
  /** item id → the versions its writes answered, with when they answered. */
  const answered = new Map<number, Array<{ at: number; version: number }>>();
  for (let id = 1; id <= items; id++) answered.set(id, [{ at: 0, version: 0 }]);
  /** The highest version of `id` whose write answered at or before `t`. */
  const floorAt = (id: number, t: number) => {
    let v = 0;
    for (const w of answered.get(id)!) if (w.at <= t && w.version > v) v = w.version;
    return v;
  };
  const result: LoadResult = { hitsIn: new Map(), checked: 0, reads: 0, writes: 0, hits: 0, stale: [], withinGrace: 0, crossHits: 0 };
  const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)]!;
  const ids = [...answered.keys()];
  async function client(): Promise<void> {
    while (more()) {
      const app = pick(apps);
      if (Math.random() < writes) {
        const id = pick(ids);
        const version = await write(app, id);
        answered.get(id)!.push({ at: performance.now(), version });
        result.writes++;
        continue;
      }
      const path = Math.random() < 0.25 ? '/items' : `/item/${pick(ids)}`;
      const sentAt = performance.now();
      const sentIn = phase();
      const page = await read(app, path);
      result.reads++;
      if (page.cache === 'HIT') {
        result.hits++;
        result.hitsIn.set(sentIn, (result.hitsIn.get(sentIn) ?? 0) + 1);
        if (page.by !== app.name) result.crossHits++;
      }
      if (page.versions.size === 0) throw new Error(`GET ${path}: no versions in the page`);
      for (const [id, version] of page.versions) {
        result.checked++;
        const floor = floorAt(id, sentAt - graceMs);
        if (version < floor) result.stale.push(`${sentIn}${app.name} ${path} (${page.cache}, by ${page.by}): item ${id} version ${version} < ${floor}`);
        else if (version < floorAt(id, sentAt)) result.withinGrace++;
      }
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  return result;
}

const STORES: Array<{ store: StoreKind; title: string; skip: boolean; graceMs: number }> = [
  { store: 'sqlite', title: 'SqliteStore', skip: false, graceMs: 0 },
  { store: 'redis', title: 'RedisStore', skip: !hasRedis, graceMs: 0 },
  { store: 'redis-local', title: 'RedisStore with the local tier', skip: !hasRedis, graceMs: GRACE_MS },
];

describe.each(STORES.filter((s) => !s.skip))('$title shared by several app processes', ({ store, title, graceMs }) => {
  test('after a write through process A has answered, process B never serves the old page', async () => {
    const env = setup(store, 2);
    const [a, b] = await Promise.all([startApp('A', env), startApp('B', env)]);
    try {
      for (let round = 1; round <= 5; round++) {
        const at = (what: string) => `round ${round}: ${what}`;
        // B has the pages cached: the item, and the list (reached through the item's tag).
        await read(b, '/item/1');
        await read(b, '/items');
        expect((await read(b, '/item/1')).cache, at('B /item/1 before the write')).toBe('HIT');
        expect((await read(b, '/items')).cache, at('B /items before the write')).toBe('HIT');
        // A page B rendered is served by A from the same file.
        expect(await read(a, '/item/1'), at('A /item/1 before the write')).toMatchObject({ cache: 'HIT', by: 'B' });

        expect(await write(a, 1)).toBe(round);
        // The local tier's promise is "once the message has arrived" (see GRACE_MS).
        if (graceMs > 0) await new Promise((r) => setTimeout(r, graceMs));
        const item = await read(b, '/item/1');
        expect(item.versions.get(1), at('B /item/1 after the write')).toBe(round);
        expect(item.cache, at('B /item/1 after the write')).toBe('MISS');
        const list = await read(b, '/items');
        expect(list.versions.get(1), at('B /items after the write')).toBe(round);
        expect(list.versions.get(2), at('B /items after the write')).toBe(0);
        // Item 2's page was not touched by item 1's write.
        await read(b, '/item/2');
        expect((await read(b, '/item/2')).cache, at('B /item/2')).toBe('HIT');
        expect((await read(a, '/item/2')).cache, at('A /item/2')).toBe('HIT');
      }
    } finally {
      await Promise.all([stop(a.child), stop(b.child)]);
    }
  });

  test(`many readers and writers over three processes: zero stale responses${graceMs > 0 ? ` (${graceMs} ms after the write)` : ''}`, async () => {
    const env = setup(store, 4);
    const apps = await Promise.all(['A', 'B', 'C'].map((n) => startApp(n, env)));
    try {
      const r = await load(apps, 4, 900, 12, graceMs);
      process.stdout.write(
        `${title}, 3 processes: ${r.reads} reads (${r.hits} hits, ${r.crossHits} of them rendered by another process), ` +
          `${r.writes} writes, ${r.checked} versions checked, ${r.stale.length} stale` +
          (graceMs > 0 ? `, ${r.withinGrace} older than a write by less than ${graceMs} ms` : '') +
          '\n',
      );
      expect(r.stale).toEqual([]);
      expect(r.writes).toBeGreaterThan(0);
      // The cache was in use, across processes: the check was not run against misses only.
      expect(r.crossHits).toBeGreaterThan(0);
      expect(r.checked).toBeGreaterThan(800);
    } finally {
      await Promise.all(apps.map((a) => stop(a.child)));
    }
  });

  test('the same check finds stale pages when the write does not invalidate', async () => {
    const env = { ...setup(store, 4), NO_INVALIDATE: '1' };
    const apps = await Promise.all(['A', 'B'].map((n) => startApp(n, env)));
    try {
      const r = await load(apps, 4, 300, 6);
      expect(r.stale.length).toBeGreaterThan(0);
    } finally {
      await Promise.all(apps.map((a) => stop(a.child)));
    }
  });
});

const CRASHES = [
  { title: 'restarted from a snapshot taken just before (data kept)', persist: true, floor: true },
  { title: 'restarted empty (data wiped)', persist: false, floor: true },
  { title: 'restarted from a snapshot, with the floor raise turned off: the check finds stale pages', persist: true, floor: false },
];

definedIf(hasRedis, describe)('RedisStore shared by three processes: Redis killed (SIGKILL) under load and', () => {
  test.each(CRASHES)('$title', async ({ persist, floor }) => {
    const server = await RedisServer.start({ persist });
    // Items enough, and writes few enough, that the writes made while Redis is down (whose
    // invalidations every process replays before it reads the store again) do not happen to reach
    // every page that the writes lost with the snapshot had invalidated.
    const items = 24;
    const env: Record<string, string> = {
      ...setup('redis', items),
      REDIS_URL: server.url,
      // The circuit breaker's first pause: caching resumes soon after Redis is back, so that the
      // pages served from the store after the restart are many.
      STORE_COOLDOWN: '200',
      ...(floor ? {} : { NO_RECONNECT_FLOOR: '1' }),
    };
    const apps = await Promise.all(['A', 'B', 'C'].map((n) => startApp(n, env)));
    try {
      let phase = 'before: ';
      let done = false;
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const running = run(apps, items, { clients: 12, more: () => !done, phase: () => phase, writes: 0.05 });
      try {
        await sleep(700);
        if (persist) {
          // What Redis will come back with; the writes of the next 400 ms are then lost with it,
          // invalidations it had acknowledged included.
          await server.save();
          phase = 'after the snapshot: ';
          await sleep(400);
        }
        await server.kill();
        phase = 'Redis down: ';
        await sleep(300);
        await server.restart();
        phase = 'Redis back: ';
        await sleep(2000);
      } finally {
        done = true;
      }
      const r = await running;
      const after = r.hitsIn.get('Redis back: ') ?? 0;
      process.stdout.write(
        `RedisStore, Redis ${persist ? 'restarted from a snapshot' : 'restarted empty'}${floor ? '' : ', floor raise off'}: ` +
          `${r.reads} reads (${r.hits} hits, ${after} of them sent after the restart), ${r.writes} writes, ` +
          `${r.checked} versions checked, ${r.stale.length} stale` +
          (r.stale.length > 0 ? ` (first: ${r.stale[0]})` : '') +
          '\n',
      );
      if (floor) {
        expect(r.stale).toEqual([]);
        // The store was in use again after the restart: the check was not run against misses only.
        expect(after).toBeGreaterThan(0);
      } else {
        expect(r.stale.length).toBeGreaterThan(0);
      }
      expect(r.writes).toBeGreaterThan(0);
    } finally {
      await Promise.all(apps.map((a) => stop(a.child)));
      await server.destroy();
    }
  });
});

describe('entry points', () => {
  test('importing page-dumper does not load better-sqlite3; page-dumper/sqlite does', () => {
    const loaded = (entry: string) =>
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createRequire } from 'node:module';
           await import(${JSON.stringify(join(build, 'dist', entry))});
           const cache = createRequire(import.meta.url).cache;
           console.log(Object.keys(cache).some((f) => f.includes('better-sqlite3')));`,
        ],
        { encoding: 'utf8', cwd: build },
      ).stdout.trim();
    expect(loaded('index.js')).toBe('false');
    expect(loaded('http/node/index.js')).toBe('false');
    expect(loaded('stores/sqlite/index.js')).toBe('true');
    expect(loaded('stores/redis/index.js')).toBe('false');
  });
});

describe('docs/stores.md', () => {
  test('the SqliteStore example runs: two cluster workers share the cache, a write re-renders for both', async () => {
    const doc = readFileSync(join(root, 'docs/stores.md'), 'utf8');
    const start = doc.indexOf('## SqliteStore');
    expect(start).not.toBe(-1);
    const next = doc.indexOf('\n## ', start + 1);
    const section = doc.slice(start, next === -1 ? undefined : next);
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toContain("from 'page-dumper/sqlite'");
    const dir = mkdtempSync(join(build, 'example-'));
    // Inside `build`, whose package.json names it page-dumper: the imports resolve to its dist/.
    const file = join(build, `${dir.slice(build.length + 1)}.mjs`);
    writeFileSync(file, code!);
    const child = spawn(process.execPath, [file], { cwd: dir, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    try {
      const base = await new Promise<string>((ok, fail) => {
        child.stdout!.setEncoding('utf8').on('data', (d: string) => {
          output += d;
          const m = /(http:\/\/localhost:\d+)\/ice-cream\//.exec(output);
          if (m) ok(m[1]!);
        });
        child.once('exit', (code) => fail(new Error(`the example exited with ${code}: ${output}`)));
      });
      // Both workers must listen before the round-robin can reach both.
      await new Promise<void>((ok) => {
        const check = () => ((output.match(/worker \d+: http/g) ?? []).length >= 2 ? ok() : setTimeout(check, 20));
        check();
      });
      // A connection of its own for every request: the primary hands connections to the workers
      // in turn, so consecutive requests go to both.
      const get = (path: string) =>
        new Promise<{ cache: string | undefined; body: string }>((ok, fail) => {
          http
            .get(base + path, { agent: false }, (res) => {
              let body = '';
              res.setEncoding('utf8').on('data', (d: string) => (body += d));
              res.on('end', () => ok({ cache: res.headers['x-cache'] as string | undefined, body }));
            })
            .on('error', fail);
        });
      // A worker stores a page once its response has gone out: the next request, on another
      // worker, may come a moment earlier.
      const warm = async (path: string) => {
        for (let i = 0; i < 50; i++) {
          const page = await get(path);
          if (page.cache === 'HIT') return page;
          await new Promise((r) => setTimeout(r, 10));
        }
        throw new Error(`${path} is never a HIT`);
      };
      expect(await get('/ice-cream/vanilla/')).toMatchObject({ cache: 'MISS', body: '<h1>Vanilla</h1>' });
      await warm('/ice-cream/vanilla/');
      for (let i = 0; i < 4; i++) expect(await get('/ice-cream/vanilla/')).toEqual({ cache: 'HIT', body: '<h1>Vanilla</h1>' });
      expect(await warm('/ice-cream/')).toMatchObject({ body: '<ul><li>Chocolate</li><li>Vanilla</li></ul>' });
      const post = await fetch(base + '/ice-cream/vanilla/', { method: 'POST', body: 'Vanilla bean' });
      expect(post.status).toBe(204);
      // Whichever worker answers, the old page is gone at once.
      expect(await get('/ice-cream/vanilla/')).toEqual({ cache: 'MISS', body: '<h1>Vanilla bean</h1>' });
      expect(await get('/ice-cream/')).toEqual({ cache: 'MISS', body: '<ul><li>Chocolate</li><li>Vanilla bean</li></ul>' });
      await warm('/ice-cream/vanilla/');
      for (let i = 0; i < 4; i++) expect(await get('/ice-cream/vanilla/')).toEqual({ cache: 'HIT', body: '<h1>Vanilla bean</h1>' });
    } finally {
      // The primary and its workers are one process group.
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // already gone
      }
      await new Promise((done) => (child.exitCode !== null || child.signalCode !== null ? done(undefined) : child.once('exit', done)));
    }
  });
});
