/**
 * RedisStore against a real redis-server that the test starts, stops, freezes and restarts on its
 * own port: requests are always answered by the app (no hang, no 5xx), and invalidations issued
 * while Redis was unreachable are not lost.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { listen } from '../support/listen.js';
import { RedisServer } from '../support/redis-server.js';
import { needService } from '../support/services.js';

// A private redis-server needs the binary, which comes with the Redis service.
const hasRedis = await needService('redis');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

describe.skipIf(!hasRedis)('RedisStore faults (own redis-server)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function server(persist = false) {
    const s = await RedisServer.start({ persist });
    cleanup.push(() => s.destroy());
    return s;
  }
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
