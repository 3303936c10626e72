// RedisStore's local copies (`localBytes`): which pages a process keeps a copy of. A page fetched
// by the get script is kept at its second fetch within a window of recent fetches, not its first,
// so that a scan over far more pages than the copies hold does not evict the pages hit repeatedly.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import type { StoredEntry } from '../../src/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { needService, definedIf } from '../support/services.js';

const hasRedis = await needService('redis');
const URL = 'redis://127.0.0.1:6379';
// Every key of this file is under one run prefix, deleted at the end.
const run = `pdtest:${randomUUID().slice(0, 8)}:`;
const prefix = () => `${run}${randomUUID().slice(0, 8)}:`;

const limits = { maxVariantsPerPath: 256, variant: false };
/** A 3,000-byte page: a copy of one takes about 3,700 bytes of `localBytes`. */
function entry(seq: number, path: string): StoredEntry {
  const body = new Uint8Array(3000).fill(path.length);
  return { status: 200, headers: ['content-type', 'text/html'], body, etag: '"e"', storedAt: 1, seq, path, tags: [path] };
}

/** Counts the commands a client sends, by name. */
function counting(client: Redis): Map<string, number> {
  const counts = new Map<string, number>();
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    counts.set(command.name, (counts.get(command.name) ?? 0) + 1);
    return (send as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof client.sendCommand;
  return counts;
}

/** Stores `paths` (keys `k:<path>`) from another process, which keeps no copies. */
async function stored(p: string, paths: string[]): Promise<void> {
  const writer = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
  const seq = await writer.sequence();
  for (let i = 0; i < paths.length; i += 100) {
    const sets = await Promise.all(paths.slice(i, i + 100).map((path) => writer.set(`k:${path}`, entry(seq, path), limits)));
    expect(sets.every(Boolean)).toBe(true);
  }
  await writer.close();
}

/** A reader process with its own counted client. */
async function reader(p: string, localBytes?: number) {
  const client = new Redis(URL);
  await client.ping();
  const store = new RedisStore({ client, prefix: p, localBytes });
  const counts = counting(client);
  /** The commands one get of `path` sent (and checks that it was a hit). */
  const get = async (path: string) => {
    counts.clear();
    expect((await store.get(`k:${path}`))?.path).toBe(path);
    return Object.fromEntries(counts);
  };
  const close = async () => {
    await store.close();
    client.disconnect();
  };
  return { store, get, close };
}

const SCRIPT = { evalsha: 1 };
const COPY = { hget: 1, hmget: 1 };

definedIf(hasRedis, describe)('RedisStore local copies: admission', () => {
  afterAll(async () => {
    const client = new Redis(URL);
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${run}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== '0');
    client.disconnect();
  });

  test('a page fetched once is not copied; fetched again, it is, and later hits are the two plain reads', async () => {
    const p = prefix();
    await stored(p, ['/a']);
    const r = await reader(p);
    expect(await r.get('/a')).toEqual(SCRIPT); // the page comes, no copy kept
    expect(await r.get('/a')).toEqual(SCRIPT); // the page comes again, and is kept
    expect(await r.get('/a')).toEqual(COPY);
    expect(await r.get('/a')).toEqual(COPY);
    await r.close();
  });

  test('the process that stored a page keeps a copy at once', async () => {
    const p = prefix();
    const client = new Redis(URL);
    await client.ping();
    const store = new RedisStore({ client, prefix: p });
    expect(await store.set('k:/s', entry(await store.sequence(), '/s'), limits)).toBe(true);
    const counts = counting(client);
    expect((await store.get('k:/s'))?.path).toBe('/s');
    expect(Object.fromEntries(counts)).toEqual(COPY);
    await store.close();
    client.disconnect();
  });

  test('a scan of many pages, each fetched once, does not evict the copies of the pages hit repeatedly', async () => {
    const p = prefix();
    const hot = ['/h0', '/h1', '/h2', '/h3', '/h4'];
    const cold = Array.from({ length: 300 }, (_, i) => `/c${i}`);
    await stored(p, [...hot, ...cold]);
    // Room for about 18 copies: the scan is 16 times as many pages.
    const r = await reader(p, 20 * 3400);
    for (const path of hot) {
      await r.get(path);
      await r.get(path);
      expect(await r.get(path), path).toEqual(COPY);
    }
    for (let i = 0; i < cold.length; i += 50) {
      const pages = await Promise.all(cold.slice(i, i + 50).map((path) => r.store.get(`k:${path}`)));
      expect(pages.every((e) => e !== undefined)).toBe(true);
    }
    for (const path of hot) expect(await r.get(path), path).toEqual(COPY);
    await r.close();
  });

  test('a page fetched again only after many others is not copied then (the window is bounded)', async () => {
    const p = prefix();
    const others = Array.from({ length: 600 }, (_, i) => `/o${i}`);
    await stored(p, ['/x', ...others]);
    const r = await reader(p, 20 * 3400);
    expect(await r.get('/x')).toEqual(SCRIPT);
    for (let i = 0; i < others.length; i += 50) await Promise.all(others.slice(i, i + 50).map((path) => r.store.get(`k:${path}`)));
    // Forgotten: this fetch counts as its first again ...
    expect(await r.get('/x')).toEqual(SCRIPT);
    expect(await r.get('/x')).toEqual(SCRIPT);
    // ... and that one as its second.
    expect(await r.get('/x')).toEqual(COPY);
    await r.close();
  });

  test('the copies stay within localBytes: of three pages each fetched twice, room for two keeps the last two', async () => {
    const p = prefix();
    await stored(p, ['/a', '/b', '/c']);
    // A copy of a 3,000-byte page takes about 3,700 bytes: two fit in 8,000, not three.
    const r = await reader(p, 8000);
    for (const path of ['/a', '/b', '/c']) {
      expect(await r.get(path), path).toEqual(SCRIPT);
      expect(await r.get(path), path).toEqual(SCRIPT);
    }
    expect(await r.get('/c')).toEqual(COPY);
    expect(await r.get('/b')).toEqual(COPY);
    expect(await r.get('/a')).toEqual(SCRIPT); // evicted by /c's copy
    await r.close();
  });

  test('a copy found stale because another process stored the page again is replaced at the next fetch', async () => {
    const p = prefix();
    await stored(p, ['/r']);
    const r = await reader(p);
    await r.get('/r');
    await r.get('/r');
    expect(await r.get('/r')).toEqual(COPY);
    await stored(p, ['/r']); // a new fill id
    // The copy's id no longer matches: the script sends the new entry, which is kept at once (the
    // page is in use here) ...
    expect(await r.get('/r')).toEqual({ ...COPY, ...SCRIPT });
    // ... so the next hit is the two plain reads again.
    expect(await r.get('/r')).toEqual(COPY);
    await r.close();
  });

  test('localBytes: 0 keeps no copy, whatever the fetches', async () => {
    const p = prefix();
    await stored(p, ['/z']);
    const r = await reader(p, 0);
    for (let i = 0; i < 4; i++) expect(await r.get('/z')).toEqual(SCRIPT);
    await r.close();
  });
});
