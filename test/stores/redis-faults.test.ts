/**
 * RedisStore against a real redis-server that the test starts, stops, kills, freezes and restarts
 * on its own port: requests are always answered by the app (no hang, no 5xx), invalidations issued
 * while Redis was unreachable are not lost, nothing stored before a lost connection is served after
 * it, and every store call answers within `commandTimeout`, even queued behind a stalled one.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper, type StoredEntry } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { RedisStore, RedisStoreError } from '../../src/stores/redis/index.js';
import { listen } from '../support/listen.js';
import { partitionProxy, RedisServer } from '../support/redis-server.js';
import { needService, definedIf } from '../support/services.js';

// A private redis-server needs the binary, which comes with the Redis service.
const hasRedis = await needService('redis');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What each test started, stopped after it in reverse order. */
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A private redis-server for one test. */
async function server(persist = false) {
  const s = await RedisServer.start({ persist });
  cleanup.push(() => s.destroy());
  return s;
}

/** A site whose one page shows a version number that writers bump. */
async function app(server: RedisServer, prefix: string) {
  const store = new RedisStore({ url: server.url, prefix, commandTimeout: 100 });
  const dumper = createDumper({ store, storeCooldown: 100, logger: false });
  const state = { version: 1 };
  const m = await listen(
    withDumper(dumper, (req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`${req.url} v${state.version}`);
    }),
  );
  // Every process of the site answers one host name, as behind a load balancer.
  const get = (path = '/p') =>
    new Promise<{ status: number; cache: string | undefined; version: number }>((resolve, reject) => {
      const req = http.get({ port: m.port, host: '127.0.0.1', path, headers: { host: 'site.test' }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, cache: res.headers['x-cache'] as string | undefined, version: Number(body.split(' v')[1]) }));
        res.on('error', reject);
      });
      // A request that hangs fails the test: it is aborted long before the test times out.
      req.setTimeout(3000, () => req.destroy(new Error('request hung')));
      req.on('error', reject);
    });
  return { dumper, state, get, close: async () => (await m.close(), await dumper.close()) };
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

definedIf(hasRedis, describe)('RedisStore faults (own redis-server)', () => {
  async function site(s: RedisServer, prefix = `f:${randomUUID().slice(0, 8)}:`) {
    const a = await app(s, prefix);
    cleanup.push(a.close);
    return a;
  }

  test('Redis stopped: every request is answered by the app, none hangs; caching resumes after a restart', async () => {
    const s = await server();
    const a = await site(s);
    expect((await a.get()).cache).toBe('MISS');
    expect((await a.get()).cache).toBe('HIT');
    await s.stop();
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => a.get(`/p${i % 3}`)));
    expect(answers.map((r) => r.status)).toEqual(Array(30).fill(200));
    expect(answers.every((r) => r.cache !== 'HIT')).toBe(true);
    await s.restart();
    await eventually(async () => (await a.get()).cache === 'HIT', 'hits after the restart');
  });

  test('Redis frozen (slow): requests go to the app after the command timeout; none hangs', async () => {
    const s = await server();
    const a = await site(s);
    await a.get();
    expect((await a.get()).cache).toBe('HIT');
    s.pause();
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => a.get()));
      expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    } finally {
      s.resume();
    }
    await eventually(async () => (await a.get()).cache === 'HIT', 'hits after the freeze');
  });

  test('an invalidation issued while Redis is down is not lost: the writer never serves the old page, and the store has it soon after Redis returns', async () => {
    const s = await server(true); // the old entry survives the restart on disk
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const writer = await site(s, prefix);
    const reader = await site(s, prefix); // another process on the same store
    await writer.get();
    // The writer stores the page once its response has gone out: the reader may be a moment early.
    await eventually(async () => (await reader.get()).cache === 'HIT', 'the reader to find the page cached', 5000);
    expect(await reader.get()).toMatchObject({ cache: 'HIT', version: 1 });
    await s.stop();
    writer.state.version = 2;
    reader.state.version = 2; // both processes read the same database
    await writer.dumper.invalidate('/p'); // resolves although Redis is down
    await s.restart();
    // The writer replays before it reads anything from the store again: never version 1.
    for (let i = 0; i < 20; i++) expect((await writer.get()).version).toBe(2);
    // The replay also runs on a timer, so the other process soon finds the old page gone.
    await eventually(async () => (await reader.get()).version === 2, 'the reader to see version 2', 5000);
    for (let i = 0; i < 10; i++) expect((await reader.get()).version).toBe(2);
  });

  test('Redis restarted mid-load with writes going on: no 5xx, no stale page', async () => {
    const s = await server();
    const a = await site(s);
    let stop = false;
    let checked = 0;
    const bad: string[] = [];
    const reader = async () => {
      while (!stop) {
        const committed = a.state.version;
        const path = `/p${checked % 5}`;
        try {
          const r = await a.get(path);
          checked++;
          if (r.status !== 200) bad.push(`${path}: status ${r.status}`);
          else if (r.version < committed) bad.push(`${path}: v${r.version} served after v${committed} was committed`);
        } catch (error) {
          bad.push(`${path}: ${(error as Error).message}`);
        }
      }
    };
    const writer = async () => {
      while (!stop) {
        a.state.version++;
        await a.dumper.invalidate(['/p0', '/p1', '/p2', '/p3', '/p4']);
        await sleep(15);
      }
    };
    const load = [reader(), reader(), reader(), reader(), writer()];
    await sleep(300);
    await s.stop();
    await sleep(300);
    await s.restart();
    await sleep(500);
    stop = true;
    await Promise.all(load);
    expect(bad).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  });
});

const limits = { maxVariantsPerPath: 256, variant: false };
function entry(seq: number, path: string): StoredEntry {
  return { status: 200, headers: ['content-type', 'text/plain'], body: new TextEncoder().encode(path), etag: '"e"', storedAt: 1, seq, path, tags: [path] };
}

/**
 * The next time `emitter` emits `event`. Not `events.once`, which rejects on an 'error' first: a
 * client reconnecting to a Redis that is still down emits one per attempt.
 */
const next = (emitter: NodeJS.EventEmitter, event: string) => new Promise<void>((resolve) => emitter.once(event, () => resolve()));

/** What a store call that never answers in time is made to fail with, or 'hung' past a long guard. */
async function outcome(call: Promise<unknown>): Promise<string> {
  const guard = new Promise<string>((r) => setTimeout(() => r('hung'), 5000).unref());
  return Promise.race([
    call.then(
      () => 'answered',
      (error: unknown) => (error instanceof RedisStoreError ? error.code : `other: ${(error as Error).message}`),
    ),
    guard,
  ]);
}

definedIf(hasRedis, describe)('RedisStore after a lost connection, and under a stall (own redis-server)', () => {
  /** A client of the test's own, so that the test can cut its connection and see it come back. */
  function client(s: { port: number }) {
    const c = new Redis({ port: s.port, host: '127.0.0.1' });
    c.on('error', () => {});
    cleanup.push(() => c.disconnect());
    return c;
  }
  function store(options: ConstructorParameters<typeof RedisStore>[0]) {
    const st = new RedisStore(options);
    cleanup.push(() => st.close());
    return st;
  }
  /** Cuts a client's connection from the server's side, and waits until it is back. */
  async function cut(admin: Redis, c: Redis) {
    const id = await c.client('ID');
    const closed = next(c, 'close');
    await admin.client('KILL', 'ID', String(id));
    await closed;
    await next(c, 'ready');
  }

  test('a store that lost its connection raises the floor before it answers a get: no process serves a page stored before, nor stores a render begun before', async () => {
    const s = await server();
    const admin = client(s);
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const a = client(s);
    const A = store({ client: a, prefix });
    const B = store({ client: client(s), prefix, localBytes: 0 });
    await A.set('k:/p', entry(await A.sequence(), '/p'), limits);
    expect(await B.get('k:/p')).toBeDefined();
    const inFlight = await B.sequence(); // a render in B that began before A's loss
    await cut(admin, a);
    expect(await A.get('k:/p')).toBeUndefined();
    // Read once the raise has run.
    const after = await A.sequence();
    expect(after).toBeGreaterThan(inFlight);
    // B never lost its connection, and still serves nothing from before A's loss.
    expect(await B.get('k:/p')).toBeUndefined();
    expect(await B.set('k:/q', entry(inFlight, '/q'), limits)).toBe(false);
    // Caching goes on.
    expect(await B.set('k:/q', entry(after, '/q'), limits)).toBe(true);
    expect(await A.get('k:/q')).toBeDefined();
  });

  test('until the lost connection is back, gets and sequence() fail at once; a get sent before the loss and answered after it is a miss', async () => {
    const s = await server();
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const writer = store({ url: s.url, prefix });
    await writer.set('k:/p', entry(await writer.sequence(), '/p'), limits);
    // One store answers from its checked copy (HGET + HMGET), the other runs the get script.
    const withCopy = client(s);
    const noCopy = client(s);
    const A = store({ client: withCopy, prefix, commandTimeout: 10_000 });
    const B = store({ client: noCopy, prefix, commandTimeout: 10_000, localBytes: 0 });
    expect(await A.get('k:/p')).toBeDefined();
    expect(await A.get('k:/p')).toBeDefined();
    expect(await B.get('k:/p')).toBeDefined();
    // Frozen: the gets are sent and wait for their answers ...
    s.pause();
    const pending = [A.get('k:/p'), B.get('k:/p')];
    await sleep(50);
    // ... when the connections drop. ioredis reconnects and sends them again, before anything the
    // store sends once it is back (the floor raise): Redis answers them with the page.
    const back = [next(withCopy, 'ready'), next(noCopy, 'ready')];
    (withCopy.stream as import('node:net').Socket).destroy();
    (noCopy.stream as import('node:net').Socket).destroy();
    await sleep(20);
    s.resume();
    await Promise.all(back);
    expect(await Promise.all(pending)).toEqual([undefined, undefined]);

    // Redis gone: nothing waits in the offline queue.
    const closed = next(withCopy, 'close');
    await s.stop();
    await closed;
    expect(await outcome(Promise.resolve(A.get('k:/p')))).toBe('DUMPER_REDIS_OFFLINE');
    expect(await outcome(Promise.resolve(A.sequence()))).toBe('DUMPER_REDIS_OFFLINE');
    // A fill refused without a round trip: it is not worth sending.
    expect(await A.set('k:/q', entry(1, '/q'), limits)).toBe(false);
  });

  test('Redis back from an older snapshot (invalidations it had acknowledged are lost): nothing stored before is served, no render begun before is stored', async () => {
    const s = await server(true);
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const a = client(s);
    const b = client(s);
    const A = store({ client: a, prefix });
    const B = store({ client: b, prefix, localBytes: 0 });
    await A.set('k:/a', entry(await A.sequence(), '/a'), limits);
    await A.set('k:/b', entry(await A.sequence(), '/b'), limits);
    await s.save();
    // Acknowledged by Redis after the snapshot, then lost with it.
    await B.invalidate(['/a']);
    await B.invalidate(['/c']);
    const renderOfB = await B.sequence(); // a render of /b that reads the data before the next write
    await B.invalidate(['/b']);
    expect(await A.get('k:/a')).toBeUndefined();
    const lost = [next(a, 'close'), next(b, 'close')];
    await s.kill();
    await Promise.all(lost);
    const back = [next(a, 'ready'), next(b, 'ready')];
    await s.restart();
    await Promise.all(back);
    // The snapshot has /a and /b stored and valid. Once A and B have raised the floor ...
    expect(await A.get('k:/a')).toBeUndefined();
    expect(await B.get('k:/b')).toBeUndefined();
    await Promise.all([A.sequence(), B.sequence()]);
    // ... no process serves them, not even one that never lost a connection,
    const C = store({ url: s.url, prefix, localBytes: 0 });
    expect(await C.get('k:/a')).toBeUndefined();
    expect(await C.get('k:/b')).toBeUndefined();
    // and the render of /b that began before its lost invalidation is refused: the new floor is
    // above every number handed out before the crash, not only above the snapshot's. (A floor of
    // the snapshot's number plus one per raise, two here, would be the render's number exactly.)
    expect(await C.sequence()).toBeGreaterThan(renderOfB);
    expect(await B.set('k:/b', entry(renderOfB, '/b'), limits)).toBe(false);
  });

  test('a render begun before a raise is refused after it, even when the raise lands on its number (a clock behind the numbers handed out)', async () => {
    const s = await server(true);
    const admin = client(s);
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    // Numbers 10 s ahead of the server clock: what a raise on a primary whose clock was ahead (or a
    // clock stepped back since) leaves behind. The raise then lands on the snapshot's number + 1.
    const [sec, usec] = await admin.time();
    const ahead = String(Number(sec) * 1e6 + Number(usec) + 10e6);
    await admin.hset(`{${prefix}}m`, 'seq', ahead, 'floor', ahead);
    const p = client(s);
    const q = client(s);
    const other = client(s);
    const P = store({ client: p, prefix });
    const Q = store({ client: q, prefix, localBytes: 0 });
    const O = store({ client: other, prefix, localBytes: 0 });
    await Q.sequence();
    await s.save();
    // Acknowledged, then lost with the crash: two invalidations, as many as the raises to come.
    await Q.invalidate(['/b']);
    await Q.invalidate(['/c']);
    const renderOfP = await P.sequence(); // renders of /a that read the data before its write
    const renderOfO = await O.sequence();
    expect(renderOfO).toBe(renderOfP);
    await Q.invalidate(['/a']); // the write's invalidation: acknowledged, then lost
    await Q.close(); // the writer's process is gone
    const lost = [next(p, 'close'), next(other, 'close')];
    await s.kill();
    await Promise.all(lost);
    const back = [next(p, 'ready'), next(other, 'ready')];
    await s.restart();
    await Promise.all(back);
    // P and O raise the floor. Each raise one above the current number would land on the renders'
    // number: the clock, 10 s behind, does not lift it.
    await Promise.all([P.sequence(), O.sequence()]);
    // Neither render is stored, in the process that raised last or in the other one.
    expect(await P.set('k:/a', entry(renderOfP, '/a'), limits)).toBe(false);
    expect(await O.set('k:/a', entry(renderOfO, '/a'), limits)).toBe(false);
    const C = store({ url: s.url, prefix, localBytes: 0 });
    expect(await C.get('k:/a')).toBeUndefined();
    // Renders begun after the raises are stored.
    expect(await P.set('k:/a', entry(await P.sequence(), '/a'), limits)).toBe(true);
    expect(await C.get('k:/a')).toBeDefined();
  });

  test('a fill is refused once the generation it read its number under is replaced, whatever the numbers', async () => {
    const s = await server();
    const admin = client(s);
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const O = store({ url: s.url, prefix, localBytes: 0 });
    const render = await O.sequence();
    // Another process's raise that landed on this very number (its clock behind), with O's
    // connection untouched: O's render read its number before the raise, and is refused.
    await admin.hset(`{${prefix}}m`, 'seq', String(render), 'floor', String(render), 'g', 'another');
    expect(await O.set('k:/a', entry(render, '/a'), limits)).toBe(false);
    // A number read after it is stored.
    await admin.hset(`{${prefix}}m`, 'seq', String(render + 1));
    expect(await O.set('k:/a', entry(await O.sequence(), '/a'), limits)).toBe(true);
  });

  test('local tier: a subscription that stops delivering without closing (a partition) empties and bypasses the tier, until a ping is answered again', async () => {
    const s = await server();
    const proxy = await partitionProxy(s.port);
    cleanup.push(() => proxy.close());
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    // A reaches Redis through the proxy; B directly.
    const A = store({ url: proxy.url, prefix, localTier: { heartbeat: 50 }, commandTimeout: 100 });
    const B = store({ url: s.url, prefix, localTier: true });
    const tierHit = (st: RedisStore, key: string) => {
      const answer = st.get(key);
      return !(answer instanceof Promise) && answer !== undefined;
    };
    await A.set('k:/a', entry(await A.sequence(), '/a'), limits);
    await eventually(async () => tierHit(A, 'k:/a'), "A's tier to hold the page");
    proxy.partition();
    // B's write invalidates /a; A's subscription does not hear of it, and its connections stay open.
    await B.invalidate(['/a']);
    // A stops answering from its tier (its gets go to Redis, and fail on the store's timer).
    await eventually(async () => {
      const answer = A.get('k:/a');
      if (!(answer instanceof Promise)) return false;
      await answer.catch(() => {});
      return true;
    }, "A's tier to be bypassed");
    expect(tierHit(A, 'k:/a')).toBe(false);
    proxy.heal();
    // Back: the page is gone, and the tier serves again.
    await eventually(async () => (await Promise.resolve(A.get('k:/a')).catch(() => 'error')) === undefined, 'A to reach Redis again');
    await A.set('k:/b', entry(await A.sequence(), '/b'), limits);
    await eventually(async () => tierHit(A, 'k:/b'), "A's tier to serve again");
  });

  test('clear() answers once its script has: the scan that frees the pages runs after it, and a stalled one holds up nothing', async () => {
    const s = await server();
    for (const given of [true, false]) {
      const proxy = await partitionProxy(s.port);
      cleanup.push(() => proxy.close());
      const prefix = `f:${randomUUID().slice(0, 8)}:`;
      const c = given ? client(proxy) : undefined;
      const st = store(given ? { client: c, prefix, commandTimeout: 100 } : { url: proxy.url, prefix, commandTimeout: 100 });
      await st.set('k:/a', entry(await st.sequence(), '/a'), limits);
      // The connection stops delivering when the scan is sent: the floor has moved already.
      proxy.partitionOn('$4\r\nscan\r\n');
      expect(await outcome(st.clear())).toBe('answered');
      expect(await outcome(Promise.resolve(st.get('k:/a')))).not.toBe('hung');
      proxy.heal();
    }
  });

  test("a raise empties other processes' local tiers", async () => {
    const s = await server();
    const admin = client(s);
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const a = client(s);
    // Every process of a site has the tier on or off: its messages are what keep the tiers coherent.
    const A = store({ client: a, prefix, localTier: true });
    const B = store({ url: s.url, prefix, localTier: true });
    await A.set('k:/p', entry(await A.sequence(), '/p'), limits);
    await eventually(async () => {
      await B.get('k:/p');
      const answer = B.get('k:/p');
      return !(answer instanceof Promise) && answer !== undefined;
    }, "B's tier to hold the page");
    await cut(admin, a);
    await A.get('k:/p');
    await A.sequence();
    await eventually(async () => (await B.get('k:/p')) === undefined, "B's tier to drop the page");
  });

  test('Redis frozen: every store call fails on the store\'s own timer, calls queued behind a stalled one too', async () => {
    const s = await server();
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    // A given client without any commandTimeout of its own, and the store's own client
    // (auto-pipelining: a batch is sent only once the previous one has answered).
    const given = store({ client: client(s), prefix, commandTimeout: 100 });
    const own = store({ url: s.url, prefix, commandTimeout: 100 });
    const seq = await own.sequence();
    for (const st of [given, own]) {
      await st.set('k:/p', entry(seq, '/p'), limits);
      expect(await st.get('k:/p')).toBeDefined();
    }
    s.pause();
    try {
      const first = [given, own].flatMap((st) => [
        Promise.resolve(st.get('k:/p')),
        Promise.resolve(st.sequence()),
        st.set('k:/q', entry(seq, '/q'), limits),
        st.invalidate(['/x']),
      ]);
      await sleep(30);
      // Sent while the first calls wait: queued behind them.
      const second = [given, own].flatMap((st) => [Promise.resolve(st.get('k:/p')), Promise.resolve(st.get('k:/r'))]);
      const outcomes = await Promise.all([...first, ...second].map(outcome));
      expect(outcomes).toEqual(Array(outcomes.length).fill('DUMPER_REDIS_TIMEOUT'));
    } finally {
      s.resume();
    }
    // And they come back once Redis does.
    await eventually(async () => (await own.get('k:/p')) !== undefined, 'the page again');
  });

  test('Redis frozen: a request through withDumper is answered by the app, and the store calls it made failed on the store\'s timer', async () => {
    const s = await server();
    const prefix = `f:${randomUUID().slice(0, 8)}:`;
    const failures: string[] = [];
    let calls = 0;
    /** The store, with every failed call's code written down. */
    class Watched extends RedisStore {
      override get(key: string) {
        calls++;
        const r = super.get(key);
        if (r instanceof Promise) r.catch((e: unknown) => failures.push((e as RedisStoreError).code ?? 'other'));
        return r;
      }
      override sequence() {
        calls++;
        const r = super.sequence();
        if (r instanceof Promise) r.catch((e: unknown) => failures.push((e as RedisStoreError).code ?? 'other'));
        return r;
      }
    }
    // No commandTimeout on the client: only the store's bound applies.
    const watched = new Watched({ client: client(s), prefix, commandTimeout: 100 });
    const dumper = createDumper({ store: watched, logger: false });
    cleanup.push(() => dumper.close());
    const m = await listen(withDumper(dumper, (req, res) => res.end(`page ${req.url}`)));
    cleanup.push(() => m.close());
    const get = (path: string) =>
      new Promise<{ status: number; cache: string | undefined }>((resolve, reject) => {
        const req = http.get({ port: m.port, host: '127.0.0.1', path, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, cache: res.headers['x-cache'] as string | undefined }));
        });
        req.setTimeout(5000, () => req.destroy(new Error('request hung')));
        req.on('error', reject);
      });
    for (let i = 0; i < 5; i++) await get(`/p${i}`);
    await eventually(async () => (await get('/p0')).cache === 'HIT', 'a hit');
    calls = 0;
    s.pause();
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`/p${i % 5}`)));
      expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
      expect(answers.filter((r) => r.cache === 'HIT')).toEqual([]);
    } finally {
      s.resume();
    }
    expect(calls).toBeGreaterThan(0);
    expect(failures.length).toBeGreaterThan(0);
    expect(new Set(failures)).toEqual(new Set(['DUMPER_REDIS_TIMEOUT']));
  });
});
