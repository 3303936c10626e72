// RedisStore: an invalidation of many paths at once (10,000 paths, each on an entry or a few) is as
// lazy as one tag on many entries: the script records the invalidation points and renames the
// index sets into the reclaim queue, and frees no entry itself. What it leaves is never served, a
// render begun before it is refused, and the reclamation frees exactly what was invalidated.
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { INVALIDATE_TAGS_PER_SCRIPT, RedisStore } from '../../src/stores/redis/index.js';
import { INVALIDATE, LAZY_TAG_ENTRIES, RECLAIM } from '../../src/stores/redis/scripts.js';
import { definedIf, needService } from '../support/services.js';
import { pageEntry, storeLimits } from '../support/entries.js';

const hasRedis = await needService('redis');
const URL = 'redis://127.0.0.1:6379';

const limits = storeLimits;
const entry = pageEntry;

/** Runs `check` every millisecond or so until it holds, at most `turns` times. */
async function until(check: () => boolean | Promise<boolean>, turns = 5000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await check()) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
  throw new Error('the condition never held');
}

/** Every key of the prefix, by kind (`e`, `t`, `r`, ...: the letters after the hash tag). */
async function keysByKind(redis: Redis, p: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `{${p}}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of new Set(keys)) {
      const kind = /^\{[^}]*\}([a-z]+)/.exec(k)![1]!;
      out[kind] = (out[kind] ?? 0) + 1;
    }
  } while (cursor !== '0');
  return out;
}

async function fill(store: RedisStore, n: number, seq: number): Promise<void> {
  for (let from = 0; from < n; from += 250) {
    const sets = Array.from({ length: Math.min(250, n - from) }, (_, i) => store.set(`k:/p${from + i}`, entry(`/p${from + i}`, seq), limits));
    expect((await Promise.all(sets)).every(Boolean)).toBe(true);
  }
  expect(await store.set('k:/plain', entry('/plain', seq, ['/plain']), limits)).toBe(true);
}

/** The invalidation script run directly, as `RedisStore.invalidate` runs it, without the reclamation that follows. */
async function invalidateScript(redis: Redis, p: string, tags: string[]): Promise<[number, number]> {
  const pre = `{${p}}`;
  const keys = [`${pre}m`, `${pre}z`, ...tags.map((t) => `${pre}t:${t}`), ...tags.map((t) => `${pre}v:${t}`), `${pre}rq`];
  return (await redis.eval(INVALIDATE, keys.length, ...keys, '100000', '', ...tags)) as [number, number];
}

definedIf(hasRedis, describe)('RedisStore: many paths invalidated at once', () => {
  test('past LAZY_TAG_ENTRIES entries together, the script frees none: it renames and queues every index set; nothing invalidated is served, a render begun before is refused', async () => {
    expect(LAZY_TAG_ENTRIES).toBe(1000);
    const p = `pdtest:paths:${randomUUID().slice(0, 8)}:`;
    const store = new RedisStore({ url: URL, prefix: p, commandTimeout: 5000 });
    const redis = new Redis(URL);
    try {
      await fill(store, 3000, await store.sequence());
      const before = await keysByKind(redis, p);
      expect(before).toMatchObject({ e: 3001, t: 3002 });
      // A render begins before the invalidation.
      const inFlight = await store.sequence();
      // 1,500 paths, one entry each (and 1,500 more carrying the tag `layout`, not invalidated);
      // one path twice, one path with no entry.
      const paths = Array.from({ length: 1500 }, (_, i) => `/p${i * 2}`);
      const [seq, queued] = await invalidateScript(redis, p, [...paths, '/p0', '/nowhere']);
      expect(queued).toBe(1500);
      // Nothing freed inside the script: the entries are all there, their sets renamed and queued.
      expect(await keysByKind(redis, p)).toMatchObject({ e: 3001, t: 3002 - 1500, r: 1500 });
      expect(await redis.llen(`{${p}}rq`)).toBe(1500);
      expect(await redis.lindex(`{${p}}rq`, 0)).toBe(`${seq} {${p}}r:${seq}:/p0`);
      // The render begun before is refused; one begun after is stored.
      expect(await store.set('k:/p0', entry('/p0', inFlight), limits)).toBe(false);
      expect(await store.set('k:/p1', entry('/p1', inFlight), limits)).toBe(true);
      expect(await store.set('k:/p2', entry('/p2', seq), limits)).toBe(true);
      // Not one invalidated entry is served (the store holds a local copy of each: it is checked too).
      for (let i = 0; i < 3000; i++) {
        const got = await store.get(`k:/p${i}`);
        expect(got === undefined, `k:/p${i}`).toBe(i % 2 === 0 && i !== 2);
      }
      expect(await store.get('k:/plain')).toBeDefined();
      // The next invalidation from any process reclaims what is queued.
      await store.invalidate(['/nothing-here']);
      await until(async () => (await redis.llen(`{${p}}rq`)) === 0);
      // Left: the 1,500 odd pages, /p2 stored again, /plain; the index sets of those, and `layout`.
      // The gets above freed the invalid entries they read; the reclamation freed the sets.
      expect(await keysByKind(redis, p)).toEqual({ e: 1502, t: 1500 + 1 + 1 + 1, m: 1, z: 1 });
      expect(await store.info()).toMatchObject({ entries: 1502, tags: 1503 });
      expect(await store.get('k:/p2')).toBeDefined();
    } finally {
      redis.disconnect();
      await store.close();
    }
  }, 60_000);

  test('invalidate() of 2,000 paths: INVALIDATE_TAGS_PER_SCRIPT tags per script; freed in the background, a few scripts for all the sets, down to exactly what was not invalidated', async () => {
    expect(INVALIDATE_TAGS_PER_SCRIPT).toBe(500);
    const p = `pdtest:paths:${randomUUID().slice(0, 8)}:`;
    // A client that counts the invalidation and reclamation scripts sent.
    const client = new Redis(URL);
    const sha = (src: string) => createHash('sha1').update(src).digest('hex');
    const reclaimSha = sha(RECLAIM);
    const invalidateSha = sha(INVALIDATE);
    let reclaims = 0;
    const invalidations: number[] = [];
    // The turn of the event loop each invalidation script was sent in.
    let turn = 0;
    const sentIn: number[] = [];
    const send = client.sendCommand.bind(client);
    client.sendCommand = ((command: { name: string; args: unknown[] }) => {
      const first = String(command.args[0]);
      if ((command.name === 'evalsha' && first === reclaimSha) || (command.name === 'eval' && first === RECLAIM)) reclaims++;
      // KEYS: meta, order, an index set and a variants set per tag, the reclaim queue.
      if ((command.name === 'evalsha' && first === invalidateSha) || (command.name === 'eval' && first === INVALIDATE)) {
        invalidations.push((Number(command.args[1]) - 3) / 2);
        sentIn.push(turn);
      }
      return send(command as never);
    }) as typeof client.sendCommand;
    const store = new RedisStore({ client, prefix: p, commandTimeout: 5000, localBytes: 0 });
    const redis = new Redis(URL);
    try {
      await fill(store, 4000, await store.sequence());
      // Two more variants of each of the 2,000 paths invalidated: 1,500 entries per script of
      // 500 tags, past LAZY_TAG_ENTRIES, so that each script leaves them to the reclamation.
      const seq0 = await store.sequence();
      for (let from = 0; from < 2000; from += 250) {
        const sets = [];
        for (let i = from; i < from + 250; i++) for (const v of ['a', 'b']) sets.push(store.set(`k:/p${i}?${v}`, entry(`/p${i}`, seq0, [`/p${i}`]), { ...limits, variant: true }));
        expect((await Promise.all(sets)).every(Boolean)).toBe(true);
      }
      const paths = Array.from({ length: 2000 }, (_, i) => `/p${i}`);
      let turning = true;
      const count = () => {
        turn++;
        if (turning) setImmediate(count);
      };
      setImmediate(count);
      const seq = await store.invalidate(paths).finally(() => (turning = false));
      expect(invalidations).toEqual([500, 500, 500, 500]);
      // Each script in a turn of its own: the process is not held while all are built and sent.
      expect(new Set(sentIn).size).toBe(4);
      // Stored again at once, while the freeing runs: valid, and kept.
      expect(await store.set('k:/p5', entry('/p5', seq), limits)).toBe(true);
      await until(async () => (await redis.llen(`{${p}}rq`)) === 0);
      await until(async () => (await redis.exists(`{${p}}e:k:/p1999`)) === 0);
      for (let i = 0; i < 4000; i++) expect((await store.get(`k:/p${i}`)) === undefined, `k:/p${i}`).toBe(i < 2000 && i !== 5);
      expect(await store.get('k:/p7?a')).toBeUndefined();
      // 2,000 queued sets of three entries each: a few scripts, not one per set.
      expect(reclaims).toBeGreaterThanOrEqual(4);
      expect(reclaims).toBeLessThanOrEqual(40);
      expect(await keysByKind(redis, p)).toMatchObject({ e: 2002, t: 2000 + 1 + 1 + 1, m: 1, z: 1 });
      expect(await redis.keys(`{${p}}r:*`)).toEqual([]);
    } finally {
      redis.disconnect();
      await store.close();
      client.disconnect();
    }
  }, 60_000);

  test('up to LAZY_TAG_ENTRIES entries together, the script frees them itself (nothing queued)', async () => {
    const p = `pdtest:paths:${randomUUID().slice(0, 8)}:`;
    const store = new RedisStore({ url: URL, prefix: p, commandTimeout: 5000 });
    const redis = new Redis(URL);
    try {
      await fill(store, 1200, await store.sequence());
      // 1,000 entries listed by the 1,000 path tags: eager.
      const [, queued] = await invalidateScript(redis, p, Array.from({ length: 1000 }, (_, i) => `/p${i}`));
      expect(queued).toBe(0);
      expect(await keysByKind(redis, p)).toEqual({ e: 201, t: 202, m: 1, z: 1 });
    } finally {
      redis.disconnect();
      await store.close();
    }
  }, 60_000);

  test('close() while an invalidation is under way (a shutdown) lets it finish: another process serves none of it, and refuses a fill begun before it', async () => {
    for (const [n, wait] of [
      [1500, 'a turn'],
      [1500, 'none'],
      [10, 'none'],
    ] as const) {
      const p = `pdtest:paths:${randomUUID().slice(0, 8)}:`;
      const store = new RedisStore({ url: URL, prefix: p, commandTimeout: 5000 });
      const other = new RedisStore({ url: URL, prefix: p, commandTimeout: 5000 });
      try {
        const begun = await store.sequence();
        const paths = Array.from({ length: n }, (_, i) => `/p${i}`);
        for (let from = 0; from < n; from += 250) {
          const sets = paths.slice(from, from + 250).map((x) => store.set(`k:${x}`, entry(x, begun, [x]), limits));
          expect((await Promise.all(sets)).every(Boolean)).toBe(true);
        }
        const invalidated = store.invalidate(paths);
        if (wait === 'a turn') await new Promise((resolve) => setImmediate(resolve));
        await store.close();
        expect(await invalidated).toBeGreaterThan(begun);
        const served = [];
        for (const x of paths) if ((await other.get(`k:${x}`)) !== undefined) served.push(x);
        expect(served, `${n} paths, close() after ${wait}`).toEqual([]);
        expect(await other.set(`k:/p${n - 1}`, entry(`/p${n - 1}`, begun, [`/p${n - 1}`]), limits)).toBe(false);
      } finally {
        await store.close();
        await other.close();
      }
    }
  }, 60_000);
});
