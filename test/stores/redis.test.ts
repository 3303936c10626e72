import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { createDumper, type EncodedBody, type StoredEntry } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { listEntries } from '../../src/core/store.js';
import { runStoreConformance } from '../../src/testing/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { RedisServer } from '../support/redis-server.js';
import { needService, definedIf } from '../support/services.js';
import { nodeRequest, writeNode, Site } from '../support/site.js';

const hasRedis = await needService('redis');
const URL = 'redis://127.0.0.1:6379';
// Every key of this file is under one run prefix, deleted at the end.
const run = `pdtest:${randomUUID().slice(0, 8)}:`;
const prefix = () => `${run}${randomUUID().slice(0, 8)}:`;

const limits = { maxVariantsPerPath: 256, variant: false };
function entry(seq: number, path: string, extra: Partial<StoredEntry> = {}): StoredEntry {
  const body = extra.body ?? new TextEncoder().encode(`<p>${path}</p>`);
  return { status: 200, headers: ['content-type', 'text/html'], body, etag: '"e"', storedAt: 1, seq, path, tags: [path], ...extra };
}

/** Encoded bodies of the given sizes, each filled with its own byte. */
const encoded = (...sizes: number[]): EncodedBody[] =>
  sizes.map((size, i) => ({ coding: (['br', 'gzip', 'zstd'] as const)[i]!, body: new Uint8Array(size).fill(i + 1) }));
/** The encodings of an entry as plain data. */
const encodingsOf = (e: StoredEntry | undefined) => e?.encodings?.map((x) => [x.coding, [...x.body]]);

/**
 * Counts what a client sends: commands by name, and round trips. A round trip starts with a
 * command sent while no earlier one awaits its reply; commands sent before that reply comes
 * (pipelined, automatically or not) travel in the same round trip.
 */
function counting(client: Redis): Map<string, number> & { roundTrips: number } {
  const counts = Object.assign(new Map<string, number>(), { roundTrips: 0 });
  let awaiting = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: { name: string; promise: Promise<unknown> }, ...rest: unknown[]) => {
    counts.set(command.name, (counts.get(command.name) ?? 0) + 1);
    if (awaiting === 0) counts.roundTrips++;
    awaiting++;
    const done = () => void awaiting--;
    command.promise.then(done, done);
    return (send as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof client.sendCommand;
  const clear = counts.clear.bind(counts);
  counts.clear = () => {
    clear();
    counts.roundTrips = 0;
  };
  return counts;
}
const total = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

const until = async (check: () => boolean | Promise<boolean>, what: string) => {
  const end = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Whether the store answers `key` from its local tier (synchronously), after one fetch to fill it. */
async function heldLocally(store: RedisStore, key: string): Promise<boolean> {
  await store.get(key);
  const answer = store.get(key);
  return !(answer instanceof Promise) && answer !== undefined;
}

definedIf(hasRedis, describe)('RedisStore', () => {
  const admin = hasRedis ? new Redis(URL) : undefined;
  afterAll(async () => {
    if (!admin) return;
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `{${run}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await admin.unlink(...keys);
    } while (cursor !== '0');
    admin.disconnect();
  });

  runStoreConformance({ test, create: () => new RedisStore({ url: URL, prefix: prefix() }), prefix: 'RedisStore conformance: ' });
  runStoreConformance({
    test,
    create: () => new RedisStore({ url: URL, prefix: prefix(), localTier: true }),
    prefix: 'RedisStore with local tier conformance: ',
  });

  test('entries() and info() leave out entries that are invalid but not freed (index lost, floor raised), as get() would', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    const redis = new Redis(URL);
    try {
      const seq = await store.sequence();
      for (const path of ['/a', '/b', '/c']) expect(await store.set(`k:${path}`, entry(seq, path), limits)).toBe(true);
      // The index set of /a is gone (evicted): its invalidation records the point but frees nothing.
      await redis.del(`{${p}}t:/a`);
      await store.invalidate(['/a']);
      expect(await redis.exists(`{${p}}e:k:/a`)).toBe(1);
      // Every page: on a Redis shared with other data, a page may end before the matches do.
      const keys = async (options = {}) => {
        const out: string[] = [];
        for await (const e of listEntries(store, options)) out.push(e.key);
        return out.sort();
      };
      expect(await keys()).toEqual(['k:/b', 'k:/c']);
      expect(await keys({ pathPrefix: '/a' })).toEqual([]);
      expect((await store.info()).entries).toBe(2);
      // A floor above every entry (what a raise after a lost connection does): none is listed.
      const now = await redis.hget(`{${p}}m`, 'seq');
      await redis.hset(`{${p}}m`, 'floor', String(Number(now) + 1), 'seq', String(Number(now) + 1));
      expect(await keys()).toEqual([]);
      expect(await store.info()).toMatchObject({ entries: 0, bytes: 0 });
      expect(await redis.exists(`{${p}}e:k:/b`)).toBe(1);
    } finally {
      redis.disconnect();
      await store.close();
    }
  });

  test('entries() pages through a keyspace larger than one SCAN batch, each entry once', async () => {
    const store = new RedisStore({ url: URL, prefix: prefix() });
    try {
      const seq = await store.sequence();
      const want: string[] = [];
      for (let i = 0; i < 450; i++) {
        want.push(`k:/p${i}`);
        await store.set(`k:/p${i}`, entry(seq, `/p${i}`, { tags: [`/p${i}`, i % 3 === 0 ? 'three' : 'other'] }), limits);
      }
      const all = async (options: { limit: number; tag?: string }) => {
        const got: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.entries({ ...options, cursor });
          expect(page.entries.length).toBeLessThanOrEqual(options.limit);
          got.push(...page.entries.map((e) => e.key));
          cursor = page.cursor;
        } while (cursor !== undefined);
        return got;
      };
      for (const limit of [7, 100, 1000]) {
        const got = await all({ limit });
        expect(got.length, `limit ${limit}`).toBe(450);
        expect(new Set(got)).toEqual(new Set(want));
      }
      const three = await all({ limit: 11, tag: 'three' });
      expect(three.sort()).toEqual(want.filter((_, i) => i % 3 === 0).sort());
      expect((await store.info()).entries).toBe(450);
    } finally {
      await store.close();
    }
  }, 30_000);

  test('options are checked when the store is made', () => {
    expect(() => new RedisStore({ prefix: 'a{b}' })).toThrow(
      new TypeError('page-dumper: RedisStore option "prefix" must be a non-empty string without braces, got "a{b}"'),
    );
    expect(() => new RedisStore({ ttl: -1 })).toThrow(
      new TypeError('page-dumper: RedisStore option "ttl" must be a non-negative integer, got -1'),
    );
    expect(() => new RedisStore({ localBytes: 1.5 })).toThrow(
      new TypeError('page-dumper: RedisStore option "localBytes" must be a non-negative integer, got 1.5'),
    );
    expect(() => new RedisStore({ maxTrackedTags: 0 })).toThrow(
      new TypeError('page-dumper: RedisStore option "maxTrackedTags" must be a positive integer, got 0'),
    );
    expect(() => new RedisStore({ client: {} as Redis })).toThrow(
      new TypeError('page-dumper: RedisStore option "client" must be an ioredis Redis or Cluster client'),
    );
    // A Cluster client that reads from replicas would check copies against lagging data.
    for (const scaleReads of ['slave', 'all'] as const) {
      const cluster = new Cluster([{ host: '127.0.0.1', port: 6379 }], { scaleReads, lazyConnect: true });
      expect(() => new RedisStore({ client: cluster })).toThrow(
        new TypeError(`page-dumper: RedisStore needs a Cluster client that reads from masters (scaleReads: 'master'), got scaleReads: '${scaleReads}'`),
      );
      cluster.disconnect();
    }
    const masters = new Cluster([{ host: '127.0.0.1', port: 6379 }], { lazyConnect: true });
    void new RedisStore({ client: masters }).close();
    masters.disconnect();
    expect(() => new RedisStore({ localTier: { heartbeat: 0 } })).toThrow(
      new TypeError('page-dumper: RedisStore option "localTier.heartbeat" must be a positive integer, got 0'),
    );
    expect(() => new RedisStore({ localTier: 'yes' as never })).toThrow(
      new TypeError('page-dumper: RedisStore option "localTier" must be a boolean or { maxBytes }, got yes'),
    );
  });

  test('all keys live under {prefix}, and invalidation frees entries, their index sets and the variants of the path', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    const seq = await store.sequence();
    const variant = { maxVariantsPerPath: 256, variant: true };
    await store.set('k:/a', entry(seq, '/a'), limits);
    await store.set('k:/a?x=1', entry(seq, '/a', { tags: ['/a', 'flavour:1'] }), variant);
    await store.set('k:/a?x=2', entry(seq, '/a'), variant);
    const keys = (await admin!.keys(`*${p}*`)).sort();
    expect(keys.every((k) => k.startsWith(`{${p}}`))).toBe(true);
    expect(keys).toEqual(
      [`{${p}}e:k:/a`, `{${p}}e:k:/a?x=1`, `{${p}}e:k:/a?x=2`, `{${p}}m`, `{${p}}t:/a`, `{${p}}t:flavour:1`, `{${p}}v:/a`].sort(),
    );
    // Only the variants are in the path's variants set, in storing order.
    expect(await admin!.zrange(`{${p}}v:/a`, 0, -1)).toEqual([`{${p}}e:k:/a?x=1`, `{${p}}e:k:/a?x=2`]);
    await store.invalidate(['/a']);
    expect((await admin!.keys(`*${p}*`)).sort()).toEqual([`{${p}}m`, `{${p}}t:flavour:1`, `{${p}}z`]);
    await store.close();
  });

  test('a hit, a fill and an invalidation are one round trip each; 10,000 paths are 20 scripts', async () => {
    const client = new Redis(URL);
    await client.ping(); // the connection handshake is not the store's
    const p = prefix();
    const store = new RedisStore({ client, prefix: p });
    const counts = counting(client);
    const seq = await store.sequence();
    expect(counts.roundTrips).toBe(1);
    for (let i = 0; i < 50; i++) await store.set(`k:/a?v=${i}`, entry(seq, '/a'), limits);
    expect(counts.roundTrips).toBe(51);
    counts.clear();
    // The process that stored an entry keeps a copy: a hit asks Redis only for the entry's fill id
    // and its tags' points, in one round trip, and Redis sends no page.
    expect(await store.get('k:/a?v=7')).toBeDefined();
    expect(counts.roundTrips).toBe(1);
    expect([...counts]).toEqual([['hget', 1], ['hmget', 1]]);
    counts.clear();
    // Another process: its first get of an entry runs the get script, which sends the page ...
    const otherClient = new Redis(URL);
    await otherClient.ping();
    const other = new RedisStore({ client: otherClient, prefix: p });
    const otherCounts = counting(otherClient);
    expect(await other.get('k:/a?v=7')).toBeDefined();
    expect(otherCounts.roundTrips).toBe(1);
    expect([...otherCounts]).toEqual([['evalsha', 1]]);
    otherCounts.clear();
    // ... keeps no copy of a page fetched once (under uniform access to many pages, copies would
    // be kept only to be evicted unused), so the second runs it too, and keeps a copy ...
    expect(await other.get('k:/a?v=7')).toBeDefined();
    expect([...otherCounts]).toEqual([['evalsha', 1]]);
    otherCounts.clear();
    // ... so the next one is the two plain reads.
    expect(await other.get('k:/a?v=7')).toBeDefined();
    expect(otherCounts.roundTrips).toBe(1);
    expect([...otherCounts]).toEqual([['hget', 1], ['hmget', 1]]);
    // Gets asked for together share one round trip, and one read of the tags' points.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => store.get(`k:/a?v=${i}`)));
    expect(many.every((e) => e !== undefined)).toBe(true);
    expect(counts.roundTrips).toBe(1);
    expect(counts.get('hmget')).toBe(1);
    counts.clear();
    // Gets of one key asked for together share one fetch and one answer.
    const same = await Promise.all(Array.from({ length: 20 }, () => store.get('k:/a?v=7')));
    expect(new Set(same).size).toBe(1);
    expect(same[0]?.path).toBe('/a');
    expect([...counts]).toEqual([['hget', 1], ['hmget', 1]]);
    counts.clear();
    await store.invalidate(['/a', '/b', 'flavour:1']);
    expect(counts.roundTrips).toBe(1);
    expect(await store.get('k:/a?v=7')).toBeUndefined();
    expect(await other.get('k:/a?v=7')).toBeUndefined();
    counts.clear();
    // 10,000 paths: a script per 500, each sent in a turn of its own without waiting for the one
    // before (test/stores/redis-many-paths.test.ts), so how many round trips they make depends on
    // how fast Redis answers.
    const paths = Array.from({ length: 10_000 }, (_, i) => `/page/${i}`);
    await store.invalidate(paths);
    expect([...counts]).toEqual([['evalsha', 20]]);
    await Promise.all([store.close(), other.close()]);
    client.disconnect();
    otherClient.disconnect();
  });

  test('a copy saves the page, not the check: Redis sends a few bytes per hit instead of the page', async () => {
    const p = prefix();
    const body = new Uint8Array(20_000).fill(65);
    const received = async (localBytes: number) => {
      const client = new Redis(URL);
      await client.ping();
      const store = new RedisStore({ client, prefix: p, localBytes });
      // The script, twice: the page comes, and is kept at its second fetch.
      expect((await store.get('k:/big'))?.body.byteLength).toBe(20_000);
      expect((await store.get('k:/big'))?.body.byteLength).toBe(20_000);
      let bytes = 0;
      (client.stream as NodeJS.ReadableStream).on('data', (d: Buffer) => (bytes += d.length));
      const hit = await store.get('k:/big');
      expect(Buffer.from(hit!.body).equals(Buffer.from(body))).toBe(true);
      await store.close();
      client.disconnect();
      return bytes;
    };
    const writer = new RedisStore({ url: URL, prefix: p });
    expect(await writer.set('k:/big', entry(await writer.sequence(), '/big', { body }), limits)).toBe(true);
    await writer.close();
    expect(await received(16 * 2 ** 20)).toBeLessThan(200);
    expect(await received(0)).toBeGreaterThan(20_000);
  });

  test('through the dumper: a HIT is one round trip, a MISS two (no separate sequence read)', async () => {
    const client = new Redis(URL);
    await client.ping();
    const store = new RedisStore({ client, prefix: prefix() });
    const dumper = createDumper({ store, logger: false });
    const site = new Site(dumper);
    const m = await listen(withDumper(dumper, (req, res) => void site.handle(nodeRequest(req)).then((r) => writeNode(res, r))));
    const counts = counting(client);
    expect((await fetch(`${m.url}/page/a`)).headers.get('x-cache')).toBe('MISS');
    expect(counts.roundTrips).toBe(2);
    for (let i = 0; i < 3; i++) {
      counts.clear();
      expect((await fetch(`${m.url}/page/a`)).headers.get('x-cache')).toBe('HIT');
      expect(counts.roundTrips).toBe(1);
    }
    await m.close();
    await dumper.close();
    client.disconnect();
  });

  describe("a hit from this process's copy is checked against Redis every time", () => {
    // Each case stores an entry (the store keeps a copy) and gets it, then changes Redis behind
    // the store's back in a way the plain reads must notice, and checks the next get.
    async function withCopy(extra: Partial<StoredEntry> = {}) {
      const p = prefix();
      const store = new RedisStore({ url: URL, prefix: p });
      const other = new RedisStore({ url: URL, prefix: p });
      const seq = await store.sequence();
      expect(await store.set('k:/r', entry(seq, '/r', extra), limits)).toBe(true);
      expect(await store.get('k:/r')).toBeDefined();
      expect(await store.get('k:/r')).toBeDefined(); // from the copy, checked
      return { store, other, seq, meta: `{${p}}m`, key: `{${p}}e:k:/r` };
    }

    test('an entry rendered again with other tags, even at the same sequence number, is checked against its own tags', async () => {
      const { store, other, seq, meta } = await withCopy();
      // Another process stores the page again, from a render that began at the same sequence
      // number but was tagged flavour:9 this time ...
      expect(await other.set('k:/r', entry(seq, '/r', { tags: ['/r', 'flavour:9'] }), limits)).toBe(true);
      // ... and flavour:9 is invalidated without the entry being freed (its index set lost).
      await admin!.hset(meta, 't:flavour:9', String(seq + 5), 'seq', String(seq + 5));
      // The points of the copy's tags (only /r) say valid; the entry's own tags do not.
      expect(await store.get('k:/r')).toBeUndefined();
      await Promise.all([store.close(), other.close()]);
    });

    test('an entry stored again by another process is fetched again, not answered from the copy', async () => {
      const { store, other, seq } = await withCopy();
      const body = new TextEncoder().encode('<p>rendered again</p>');
      expect(await other.set('k:/r', entry(seq, '/r', { body }), limits)).toBe(true);
      const got = await store.get('k:/r');
      expect(new TextDecoder().decode(got!.body)).toBe('<p>rendered again</p>');
      await Promise.all([store.close(), other.close()]);
    });

    test("a tag invalidated without freeing the entry (its index set lost) is noticed", async () => {
      const { store, other, seq, meta, key } = await withCopy();
      await admin!.hset(meta, 't:/r', String(seq + 10), 'seq', String(seq + 10));
      expect(await store.get('k:/r')).toBeUndefined();
      // The get script ran and freed the entry.
      expect(await admin!.exists(key)).toBe(0);
      await Promise.all([store.close(), other.close()]);
    });

    test('in one batch, each entry is judged by its own tags', async () => {
      const { store, other, seq, meta } = await withCopy();
      expect(await store.set('k:/s', entry(seq, '/s', { tags: ['/s', 'flavour:2'] }), limits)).toBe(true);
      expect(await store.get('k:/s')).toBeDefined();
      // flavour:2 is invalidated without the entry being freed: only /s's entry is stale.
      await admin!.hset(meta, 't:flavour:2', String(seq + 3), 'seq', String(seq + 3));
      const [r, st] = await Promise.all([store.get('k:/r'), store.get('k:/s')]);
      expect(r?.path).toBe('/r');
      expect(st).toBeUndefined();
      await Promise.all([store.close(), other.close()]);
    });

    test('a floor raised above the entry (clear() elsewhere) is noticed', async () => {
      const { store, other, seq, meta } = await withCopy();
      await admin!.hset(meta, 'floor', String(seq + 1), 'seq', String(seq + 1));
      expect(await store.get('k:/r')).toBeUndefined();
      await Promise.all([store.close(), other.close()]);
    });

    test('the meta hash lost (FLUSHALL, eviction) with the entry still there: not served', async () => {
      const { store, other, meta } = await withCopy();
      await admin!.del(meta);
      expect(await store.get('k:/r')).toBeUndefined();
      await Promise.all([store.close(), other.close()]);
    });

    test('an entry gone: a miss that still carries the sequence number for the fill', async () => {
      const { store, other, key, seq } = await withCopy();
      await admin!.del(key);
      expect(await store.get('k:/r')).toBeUndefined();
      // The fill after that miss needs no round trip of its own for the sequence number.
      expect(store.sequence()).toBe(seq);
      await Promise.all([store.close(), other.close()]);
    });
  });

  test('two stores on one prefix (two processes) see each other at once', async () => {
    const p = prefix();
    const a = new RedisStore({ url: URL, prefix: p });
    const b = new RedisStore({ url: URL, prefix: p });
    await a.set('k', entry(await a.sequence(), '/a'), limits);
    expect((await b.get('k'))?.path).toBe('/a');
    await b.invalidate(['/a']);
    expect(await a.get('k')).toBeUndefined();
    // A render that started in A before B's invalidation is refused.
    const old = await a.sequence();
    await b.invalidate(['/a']);
    expect(await a.set('k', entry(old, '/a'), limits)).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  test('a lost meta key (FLUSHALL, eviction, restart) makes every older entry and render invalid', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    const seq = await store.sequence();
    await store.set('k:/a', entry(seq, '/a'), limits);
    const inFlight = await store.sequence();
    await admin!.del(`{${p}}m`);
    expect(await store.get('k:/a')).toBeUndefined();
    expect(await store.set('k:/b', entry(inFlight, '/b'), limits)).toBe(false);
    const fresh = await store.sequence();
    expect(fresh).toBeGreaterThan(inFlight);
    expect(await store.set('k:/b', entry(fresh, '/b'), limits)).toBe(true);
    expect(await store.get('k:/b')).toBeDefined();
    await store.close();
  });

  test('a lost index set does not bring a stale entry back: the hit checks the tag points', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    await store.set('k:/a', entry(await store.sequence(), '/a', { tags: ['/a', 'x'] }), limits);
    await admin!.del(`{${p}}t:x`);
    await store.invalidate(['x']);
    expect(await admin!.exists(`{${p}}e:k:/a`)).toBe(1);
    expect(await store.get('k:/a')).toBeUndefined();
    expect(await admin!.exists(`{${p}}e:k:/a`)).toBe(0);
    await store.close();
  });

  test('ttl sets an expiry on entries and their index sets', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p, ttl: 60_000 });
    await store.set('k:/a', entry(await store.sequence(), '/a'), limits);
    for (const key of [`{${p}}e:k:/a`, `{${p}}t:/a`]) {
      const ttl = await admin!.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
    expect(await admin!.pttl(`{${p}}m`)).toBe(-1);
    await store.close();
  });

  test('ttl counts from the first store of an entry: set again with its compressed copies, it keeps the time it had left', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p, ttl: 2_000 });
    const e = entry(await store.sequence(), '/a');
    await store.set('k:/a', e, limits);
    await new Promise((r) => setTimeout(r, 800));
    expect(await store.set('k:/a', { ...e, encodings: [{ coding: 'gzip', body: new Uint8Array([1, 2, 3]) }] }, limits)).toBe(true);
    // At least 800 ms of the 2,000 have passed: had the set started the clock again, 2,000 would be left.
    expect(await admin!.pttl(`{${p}}e:k:/a`)).toBeLessThanOrEqual(1_200);
    expect((await store.get('k:/a'))?.encodings?.[0]?.coding).toBe('gzip');
    // Another entry (a new render) gets the whole ttl.
    await store.set('k:/a', entry(await store.sequence(), '/a', { body: new Uint8Array([9]) }), limits);
    expect(await admin!.pttl(`{${p}}e:k:/a`)).toBeGreaterThan(1_200);
    await store.close();
  });

  test('past maxVariantsPerPath the least recently stored variant is evicted, in Redis, with its index membership', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    const seq = await store.sequence();
    const two = { maxVariantsPerPath: 2, variant: true };
    const key = (k: string) => `{${p}}e:${k}`;
    expect(await store.set('k:/a', entry(seq, '/a'), limits)).toBe(true); // the plain page: never counted
    expect(await store.set('k:/a?1', entry(seq, '/a'), two)).toBe(true);
    expect(await store.set('k:/a?2', entry(seq, '/a'), two)).toBe(true);
    expect(await store.set('k:/a?3', entry(seq, '/a'), two)).toBe(true);
    expect(await admin!.exists(key('k:/a?1'))).toBe(0);
    expect(await admin!.sismember(`{${p}}t:/a`, key('k:/a?1'))).toBe(0);
    expect(await admin!.zrange(`{${p}}v:/a`, 0, -1)).toEqual([key('k:/a?2'), key('k:/a?3')]);
    // Storing a variant again makes it the most recent.
    expect(await store.set('k:/a?2', entry(seq, '/a'), two)).toBe(true);
    expect(await store.set('k:/a?4', entry(seq, '/a'), two)).toBe(true);
    expect(await admin!.zrange(`{${p}}v:/a`, 0, -1)).toEqual([key('k:/a?2'), key('k:/a?4')]);
    // A variant that expired (or that Redis evicted) makes room when its turn comes, without a victim.
    await admin!.del(key('k:/a?2'));
    expect(await store.set('k:/a?5', entry(seq, '/a'), two)).toBe(true);
    expect(await admin!.exists(key('k:/a?4'))).toBe(1);
    expect(await admin!.exists(key('k:/a'))).toBe(1);
    // Another process, without copies, finds the same.
    const other = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
    expect(await other.get('k:/a?3')).toBeUndefined();
    expect(await other.get('k:/a?4')).toBeDefined();
    expect(await other.get('k:/a')).toBeDefined();
    await Promise.all([store.close(), other.close()]);
  });

  test('an evicted variant leaves the index sets of all its tags: a junk-variant flood grows none of them', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
    const seq = await store.sequence();
    const five = { maxVariantsPerPath: 5, variant: true };
    for (let i = 0; i < 50; i++) {
      expect(await store.set(`k:/s?q=${i}`, entry(seq, '/s', { tags: ['/s', '/s/prefix', 'table:flavour'] }), five)).toBe(true);
    }
    expect(await admin!.zcard(`{${p}}v:/s`)).toBe(5);
    expect(await admin!.scard(`{${p}}t:/s`)).toBe(5);
    expect(await admin!.scard(`{${p}}t:/s/prefix`)).toBe(5);
    expect(await admin!.scard(`{${p}}t:table:flavour`)).toBe(5);
    await store.close();
  });

  test('anonymousOnly is stored with the entry: another process reads it back', async () => {
    const p = prefix();
    const writer = new RedisStore({ url: URL, prefix: p });
    const reader = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
    const seq = await writer.sequence();
    await writer.set('k:/anon', entry(seq, '/anon', { anonymousOnly: true }), limits);
    await writer.set('k:/all', entry(seq, '/all'), limits);
    expect((await reader.get('k:/anon'))?.anonymousOnly).toBe(true);
    expect((await reader.get('k:/all'))?.anonymousOnly).toBeUndefined();
    await Promise.all([writer.close(), reader.close()]);
  });

  describe('encodings', () => {
    test("are kept beside the entry, in the hash's field c: the encoded entry stays what every version reads", async () => {
      const p = prefix();
      const writer = new RedisStore({ url: URL, prefix: p });
      const reader = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
      const seq = await writer.sequence();
      const e = entry(seq, '/e', { body: new TextEncoder().encode('<p>the page</p>') });
      await writer.set('k:/e', { ...e, encodings: encoded(300, 200) }, limits);
      await writer.set('k:/plain', e, limits);
      const key = `{${p}}e:k:/e`;
      expect((await admin!.hkeys(key)).sort()).toEqual(['c', 'i', 's', 't', 'v']);
      // An entry without encodings is stored as before they existed: no field c, read back without any.
      expect((await admin!.hkeys(`{${p}}e:k:/plain`)).sort()).toEqual(['i', 's', 't', 'v']);
      expect(await reader.get('k:/plain')).not.toHaveProperty('encodings');
      // A process of a version before encodings reads v alone: a head and the body, nothing else.
      const v = (await admin!.hgetBuffer(key, 'v'))!;
      const n = v.readUInt32BE(0);
      expect(JSON.parse(v.toString('utf8', 4, 4 + n))).toHaveLength(8);
      expect(v.subarray(4 + n).toString()).toBe('<p>the page</p>');
      expect(encodingsOf(await reader.get('k:/e'))).toEqual(encodingsOf({ ...e, encodings: encoded(300, 200) }));
      // Stored again without them (a new render): the field goes with the old entry.
      await writer.set('k:/e', e, limits);
      expect((await admin!.hkeys(key)).sort()).toEqual(['i', 's', 't', 'v']);
      expect(await reader.get('k:/e')).not.toHaveProperty('encodings');
      await Promise.all([writer.close(), reader.close()]);
    });

    test("a copy without them: another process's set of the entry with them is served, and a hit from the new copy moves a few bytes", async () => {
      const p = prefix();
      const client = new Redis(URL);
      await client.ping();
      const a = new RedisStore({ client, prefix: p });
      const b = new RedisStore({ url: URL, prefix: p });
      const seq = await a.sequence();
      const e = entry(seq, '/c', { body: new Uint8Array(5000).fill(65) });
      expect(await a.set('k:/c', e, limits)).toBe(true);
      expect(await a.get('k:/c')).not.toHaveProperty('encodings'); // from A's copy
      // B stores the same entry again with its encodings (the fill protocol lets it: nothing was invalidated).
      expect(await b.set('k:/c', { ...e, encodings: encoded(20_000, 10_000) }, limits)).toBe(true);
      const counts = counting(client);
      expect(encodingsOf(await a.get('k:/c'))).toEqual(encodingsOf({ ...e, encodings: encoded(20_000, 10_000) }));
      // The copy's fill id no longer matched: the get script ran and sent the new entry.
      expect([...counts]).toEqual([['hget', 1], ['hmget', 1], ['evalsha', 1]]);
      counts.clear();
      let bytes = 0;
      (client.stream as NodeJS.ReadableStream).on('data', (d: Buffer) => (bytes += d.length));
      const hit = await a.get('k:/c');
      expect(hit?.encodings?.map((x) => x.body.byteLength)).toEqual([20_000, 10_000]);
      expect([...counts]).toEqual([['hget', 1], ['hmget', 1]]);
      expect(bytes).toBeLessThan(200);
      await Promise.all([a.close(), b.close()]);
      client.disconnect();
    });

    test('count toward localBytes', async () => {
      const p = prefix();
      const writer = new RedisStore({ url: URL, prefix: p });
      const seq = await writer.sequence();
      await writer.set('k:/small', entry(seq, '/small', { body: new Uint8Array(3000) }), limits);
      await writer.set('k:/big', entry(seq, '/big', { body: new Uint8Array(3000), encodings: encoded(3000) }), limits);
      await writer.close();
      // Room for a copy of a 3,000-byte page, not for one with 3,000 bytes of encodings more.
      const client = new Redis(URL);
      await client.ping();
      const reader = new RedisStore({ client, prefix: p, localBytes: 5000 });
      const counts = counting(client);
      for (const key of ['k:/small', 'k:/big']) {
        // Fetched twice: a copy is kept at the second fetch when there is room.
        await reader.get(key);
        await reader.get(key);
        counts.clear();
        expect((await reader.get(key))?.body.byteLength).toBe(3000);
        expect([...counts], key).toEqual(key === 'k:/small' ? [['hget', 1], ['hmget', 1]] : [['evalsha', 1]]);
      }
      await reader.close();
      client.disconnect();
    });
  });

  test('invalidation points are bounded: the oldest half folds into a floor', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p, maxTrackedTags: 10 });
    const before = await store.sequence();
    await store.set('k:/old', entry(before, '/old'), limits);
    for (let i = 0; i < 11; i++) await store.invalidate([`tag:${i}`]);
    expect(await admin!.zcard(`{${p}}z`)).toBe(5);
    expect(await admin!.hlen(`{${p}}m`)).toBe(8); // seq, floor, generation and 5 points
    // The old entry is older than the folded points: it is re-rendered, never served.
    expect(await store.get('k:/old')).toBeUndefined();
    expect(await store.set('k:/late', entry(before, '/late'), limits)).toBe(false);
    const now = await store.sequence();
    expect(await store.set('k:/new', entry(now, '/new'), limits)).toBe(true);
    expect(await store.get('k:/new')).toBeDefined();
    await store.close();
  });

  test('the fold never lowers the floor (the age order outliving a lost meta hash, a floor raised since)', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p, maxTrackedTags: 4 });
    const other = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
    for (let i = 0; i < 4; i++) await store.invalidate([`tag:${i}`]);
    const old = await store.sequence();
    await store.set('k:/old', entry(old, '/old'), limits);
    // The floor moves above the entry (a new meta hash, a raise) while the four points stay listed.
    await admin!.hset(`{${p}}m`, 'seq', String(old + 100), 'floor', String(old + 100));
    await store.invalidate(['tag:4']); // five points: the oldest three fold
    expect(await admin!.hget(`{${p}}m`, 'floor')).toBe(String(old + 100));
    expect(await other.get('k:/old')).toBeUndefined(); // the get script
    expect(await store.get('k:/old')).toBeUndefined(); // the checked copy
    await Promise.all([store.close(), other.close()]);
  });

  test('a sequence number above the current one (a Redis back with an older or restarted sequence) is never trusted', async () => {
    const p = prefix();
    const store = new RedisStore({ url: URL, prefix: p });
    const other = new RedisStore({ url: URL, prefix: p, localBytes: 0 });
    const seq = await store.sequence();
    expect(await store.set('k:/a', entry(seq, '/a'), limits)).toBe(true);
    const inFlight = await store.sequence();
    // The meta hash comes back lower than numbers handed out before: a clock that went back, a
    // failover to a replica that had not seen the last invalidations.
    await admin!.hset(`{${p}}m`, 'seq', String(seq - 1000), 'floor', String(seq - 1000));
    expect(await store.set('k:/b', entry(inFlight, '/b'), limits)).toBe(false);
    expect(await other.get('k:/a')).toBeUndefined(); // the get script
    expect(await store.get('k:/a')).toBeUndefined(); // the checked copy
    await Promise.all([store.close(), other.close()]);
  });

  test('clear() drops everything, refuses renders in flight and empties local tiers', async () => {
    const p = prefix();
    const a = new RedisStore({ url: URL, prefix: p, localTier: true });
    const b = new RedisStore({ url: URL, prefix: p, localTier: true });
    await a.set('k:/a', entry(await a.sequence(), '/a'), limits);
    await until(() => heldLocally(b, 'k:/a'), 'b to hold /a locally');
    const inFlight = await a.sequence();
    await a.clear();
    expect(await a.get('k:/a')).toBeUndefined();
    expect(await a.set('k:/b', entry(inFlight, '/b'), limits)).toBe(false);
    await until(async () => (await b.get('k:/a')) === undefined, 'b to drop /a');
    expect(await admin!.keys(`{${p}}e:*`)).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });

  describe('local tier', () => {
    test('a repeated hit is answered in process, synchronously', async () => {
      const store = new RedisStore({ url: URL, prefix: prefix(), localTier: true });
      await store.set('k:/a', entry(await store.sequence(), '/a'), limits);
      await until(() => heldLocally(store, 'k:/a'), 'the local tier to hold /a');
      const local = store.get('k:/a') as StoredEntry;
      expect(new TextDecoder().decode(local.body)).toBe('<p>/a</p>');
      await store.close();
    });

    test("the invalidating process drops its own copy before invalidate() resolves; others by pub/sub", async () => {
      const p = prefix();
      const a = new RedisStore({ url: URL, prefix: p, localTier: true });
      const b = new RedisStore({ url: URL, prefix: p, localTier: true });
      await a.set('k:/a', entry(await a.sequence(), '/a'), limits);
      await until(() => heldLocally(a, 'k:/a'), 'a to hold /a locally');
      await until(() => heldLocally(b, 'k:/a'), 'b to hold /a locally');
      await a.invalidate(['/a']);
      expect(a.get('k:/a')).toBeInstanceOf(Promise); // not local any more
      expect(await a.get('k:/a')).toBeUndefined();
      await until(async () => (await b.get('k:/a')) === undefined, 'b to drop /a');
      await Promise.all([a.close(), b.close()]);
    });

    /** The store's answer for `key` if its tier has one (synchronous), without asking Redis otherwise. */
    const fromTier = (store: RedisStore, key: string): StoredEntry | undefined => {
      const answer = store.get(key);
      if (answer instanceof Promise) {
        answer.catch(() => {});
        return undefined;
      }
      return answer;
    };

    test("an entry from the tier carries the seq it was stored with, in Redis's numbering: set again after another process's invalidation, it is refused", async () => {
      const p = prefix();
      const a = new RedisStore({ url: URL, prefix: p, localTier: true });
      const b = new RedisStore({ url: URL, prefix: p, localTier: true });
      // Every process of a site has the tier on: its messages keep the tiers coherent.
      const writer = new RedisStore({ url: URL, prefix: p, localTier: true });
      // Numbers from Redis are far from the tier's own (which start at 0 in each process).
      const seq = await a.sequence();
      expect(seq).toBeGreaterThan(1e12);
      const e = entry(seq, '/t', { tags: ['/t', 'flavour:1'] });
      expect(await a.set('k:/t', e, limits)).toBe(true);
      expect(await a.set('k:/u', entry(seq, '/u', { tags: ['/u', 'flavour:1'] }), limits)).toBe(true);
      // A holds what it stored, B what it fetched: both in their tiers, both with the entry's seq.
      await until(() => heldLocally(a, 'k:/t'), 'a to hold /t locally');
      await until(() => heldLocally(b, 'k:/t'), 'b to hold /t locally');
      await until(() => heldLocally(b, 'k:/u'), 'b to hold /u locally');
      const [fromA, fromB, otherFromB] = [fromTier(a, 'k:/t')!, fromTier(b, 'k:/t')!, fromTier(b, 'k:/u')!];
      expect([fromA.seq, fromB.seq, otherFromB.seq]).toEqual([seq, seq, seq]);
      // Valid: what the dumper does with a page it served without encodings is stored.
      expect(await b.set('k:/u', { ...otherFromB, encodings: encoded(100) }, limits)).toBe(true);
      // Another process invalidates a tag of both; the tiers may not have heard of it yet, Redis has.
      await writer.invalidate(['flavour:1']);
      expect(await a.set('k:/t', { ...fromA, encodings: encoded(100) }, limits)).toBe(false);
      expect(await b.set('k:/t', { ...fromB, encodings: encoded(100) }, limits)).toBe(false);
      expect(await b.set('k:/u', { ...otherFromB, encodings: encoded(200) }, limits)).toBe(false);
      expect(await admin!.exists(`{${p}}e:k:/t`, `{${p}}e:k:/u`)).toBe(0);
      // And after clear() elsewhere, an entry rendered since is refused too.
      const later = await a.sequence();
      expect(await a.set('k:/t', entry(later, '/t'), limits)).toBe(true);
      await until(() => heldLocally(b, 'k:/t'), 'b to hold the new /t locally');
      const again = fromTier(b, 'k:/t')!;
      expect(again.seq).toBe(later);
      await writer.clear();
      expect(await b.set('k:/t', { ...again, encodings: encoded(100) }, limits)).toBe(false);
      await Promise.all([a.close(), b.close(), writer.close()]);
    });

    test("another process's set of a key reaches this process's tier: after B sets K again with encodings, A's gets return them", async () => {
      const p = prefix();
      const a = new RedisStore({ url: URL, prefix: p, localTier: true });
      const b = new RedisStore({ url: URL, prefix: p, localTier: true });
      const e = entry(await a.sequence(), '/c', { body: new Uint8Array(3000).fill(65) });
      const withEncodings = { ...e, encodings: encoded(300, 200) };
      for (const key of ['k:/c', 'k:/c?v=1']) {
        const options = key.includes('?') ? { maxVariantsPerPath: 256, variant: true } : limits;
        expect(await a.set(key, e, options)).toBe(true);
        await until(() => heldLocally(a, key), `a to hold ${key} locally`);
        await until(() => heldLocally(b, key), `b to hold ${key} locally`);
        expect(fromTier(a, key)).not.toHaveProperty('encodings');
        // B stores the same entry again with its encodings: its own tier serves them at once ...
        expect(await b.set(key, withEncodings, options)).toBe(true);
        expect(encodingsOf(fromTier(b, key))).toEqual(encodingsOf(withEncodings));
        // ... and A's, once the message has arrived: its tier drops the old entry, the next get
        // asks Redis and answers the new one, which the tier then serves.
        await until(async () => encodingsOf(await a.get(key)) !== undefined, `a's get of ${key} to answer the encodings`);
        expect(encodingsOf(await a.get(key))).toEqual(encodingsOf(withEncodings));
        await until(() => heldLocally(a, key), `a to hold the new ${key} locally`);
        expect(encodingsOf(fromTier(a, key))).toEqual(encodingsOf(withEncodings));
        expect(fromTier(a, key)?.seq).toBe(e.seq);
      }
      await Promise.all([a.close(), b.close()]);
    });

    test("a store's own sets leave its tier alone; each set is one message on setChannel, only with the tier on", async () => {
      const p = prefix();
      const a = new RedisStore({ url: URL, prefix: p, localTier: true });
      const b = new RedisStore({ url: URL, prefix: p, localTier: true });
      const plain = new RedisStore({ url: URL, prefix: p });
      expect(a.setChannel).toBe(`{${p}}sets`);
      const listener = admin!.duplicate();
      const heard: string[] = [];
      listener.on('message', (_channel: string, message: string) => heard.push(message));
      await listener.subscribe(a.setChannel);
      const seq = await a.sequence();
      expect(await a.set('k:/y', entry(seq, '/y'), limits)).toBe(true);
      await until(() => heldLocally(a, 'k:/y'), 'a to hold /y locally');
      expect(await plain.set('k:/plain', entry(seq, '/plain'), limits)).toBe(true); // no message
      expect(await a.set('k:/own', entry(seq, '/own'), limits)).toBe(true);
      expect(fromTier(a, 'k:/own')).toBeDefined(); // kept at once
      // B's invalidation is published after A's set: once A's tier has dropped /y, A has heard its own set.
      await b.invalidate(['/y']);
      await until(() => fromTier(a, 'k:/y') === undefined, 'a to drop /y');
      expect(fromTier(a, 'k:/own')?.path).toBe('/own');
      await until(() => heard.length >= 2, 'the messages');
      expect(heard).toHaveLength(2);
      expect(heard[0]).toMatch(/^\S+ k:\/y$/);
      expect(heard[1]).toMatch(/^\S+ k:\/own$/);
      listener.disconnect();
      await Promise.all([a.close(), b.close(), plain.close()]);
    });

    // A fetch whose answer is held back (the client's reply delayed until the test lets it
    // through), while another process's invalidation or set is heard: the answer is returned, as
    // it was valid when Redis read it, but the tier does not keep it.
    for (const what of ['an invalidation of one of its tags', 'a set of the key'] as const) {
      test(`a fetch begun before ${what} is heard does not enter the tier`, async () => {
        const p = prefix();
        const client = new Redis(URL);
        await client.ping();
        const a = new RedisStore({ client, prefix: p, localTier: true, localBytes: 0, commandTimeout: 5000 });
        const b = new RedisStore({ url: URL, prefix: p, localTier: true });
        const seq = await b.sequence();
        expect(await b.set('k:/k', entry(seq, '/k'), limits)).toBe(true);
        expect(await b.set('k:/y', entry(seq, '/y'), limits)).toBe(true);
        // A holds /y (which tells when A has heard a later message), not /k.
        await until(() => heldLocally(a, 'k:/y'), 'a to hold /y locally');
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        // The store's scripts go through evalshaBuffer: the first one from now on (the get) is held.
        const scripts = client as unknown as { evalshaBuffer: (...args: unknown[]) => Promise<unknown> };
        const real = scripts.evalshaBuffer.bind(client);
        let hold = true;
        let redisAnswered = false;
        scripts.evalshaBuffer = (...args) => {
          const reply = real(...args);
          if (!hold) return reply;
          hold = false;
          return reply.then(async (v) => {
            redisAnswered = true;
            await held;
            return v;
          });
        };
        const pending = a.get('k:/k');
        expect(pending).toBeInstanceOf(Promise);
        // Redis answers the old entry; the store sees the answer only once released.
        await until(() => redisAnswered, "Redis's answer");
        if (what === 'a set of the key') {
          expect(await b.set('k:/k', entry(seq, '/k', { encodings: encoded(50) }), limits)).toBe(true);
          expect(await b.set('k:/y', entry(seq, '/y', { body: new Uint8Array([2]) }), limits)).toBe(true);
        } else {
          await b.invalidate(['/k', '/y']);
        }
        // Once A's tier has dropped /y, it has heard the message about /k too (one connection, in order).
        await until(() => fromTier(a, 'k:/y') === undefined, 'a to drop /y');
        release();
        const answered = await pending;
        expect(answered?.path).toBe('/k');
        expect(answered).not.toHaveProperty('encodings');
        // Not kept: the next get asks Redis.
        const next = a.get('k:/k');
        expect(next).toBeInstanceOf(Promise);
        if (what === 'a set of the key') expect(encodingsOf(await next)).toEqual(encodingsOf({ ...entry(seq, '/k'), encodings: encoded(50) }));
        else expect(await next).toBeUndefined();
        await Promise.all([a.close(), b.close()]);
        client.disconnect();
      });
    }

    test('while the subscription is down the tier is empty and bypassed', async () => {
      const server = await RedisServer.start();
      try {
        const p = prefix();
        const store = new RedisStore({ url: server.url, prefix: p, localTier: true });
        const writer = new RedisStore({ url: server.url, prefix: p });
        const admin2 = new Redis(server.url);
        await store.set('k:/a', entry(await store.sequence(), '/a'), limits);
        await until(() => heldLocally(store, 'k:/a'), 'the local tier to hold /a');
        await admin2.client('KILL', 'TYPE', 'pubsub');
        await until(() => store.get('k:/a') instanceof Promise, 'the tier to be bypassed');
        // Another process invalidates while this store's subscription is down: the message is
        // lost, and the page is still never served from the tier.
        await writer.invalidate(['/a']);
        expect(await store.get('k:/a')).toBeUndefined();
        // Once resubscribed, the tier is used again, starting empty.
        await writer.set('k:/a', entry(await writer.sequence(), '/a', { body: new Uint8Array([2]) }), limits);
        await until(() => heldLocally(store, 'k:/a'), 'the tier to be back');
        expect([...(store.get('k:/a') as StoredEntry).body]).toEqual([2]);
        await Promise.all([store.close(), writer.close()]);
        admin2.disconnect();
      } finally {
        await server.destroy();
      }
    });
  });

  // The behaviour suite checks what is served, not how a slow Redis is handled (redis-faults does):
  // a command timeout far above the default 250 ms, so a loaded machine cannot open the circuit
  // breaker in the middle of a test and turn an expected HIT into a BYPASS.
  httpBehaviourSuite('withDumper + RedisStore', (dumper, site) => listen(withDumper(dumper, (req, res) => void site.handle(nodeRequest(req)).then((r) => writeNode(res, r)))), {
    store: () => new RedisStore({ url: URL, prefix: prefix(), commandTimeout: 5000 }),
  });
  httpBehaviourSuite(
    'withDumper + RedisStore with local tier',
    (dumper, site) => listen(withDumper(dumper, (req, res) => void site.handle(nodeRequest(req)).then((r) => writeNode(res, r)))),
    { store: () => new RedisStore({ url: URL, prefix: prefix(), localTier: true, commandTimeout: 5000 }) },
  );
});
