/**
 * The core's side of edge caches, with purgers that record what they are asked (no edge needed):
 * options, the headers every cacheable response carries (hits and misses, through a real
 * node:http server), the fan-out of every kind of invalidation, batching, retries with backoff,
 * Retry-After, and the observability of it all.
 */
import http from 'node:http';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, PurgeError, type Dumper, type Purger, type QueueStats, type Store } from '../../src/index.js';
import { needService } from '../support/services.js';
import { batches, EDGE_ALL_TAG, edgeBucket, edgeHeaderValue, edgeTag, purgeTags } from '../../src/core/purge.js';
import { listen } from '../support/listen.js';

/** A purger that records every purge() call; `fail(n)` makes the next n calls reject. */
function recorder(id = 'rec', overrides: Partial<Purger> = {}) {
  const calls: string[][] = [];
  let failures: Array<() => Error> = [];
  const purger: Purger = {
    id,
    tagHeader: { name: 'x-tags', separator: ' ', maxBytes: 2048, maxTagBytes: 64 },
    freshnessHeader: 'surrogate-control',
    maxBatch: 1000,
    async purge(tags) {
      const f = failures.shift();
      calls.push([...tags]);
      if (f) throw f();
    },
    ...overrides,
  };
  return {
    purger,
    calls,
    /** Every tag purged so far, sorted, once each. */
    purged: () => [...new Set(calls.flat())].sort(),
    fail(...errors: Array<() => Error>) {
      failures = errors;
    },
  };
}

function logger() {
  const lines: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];
  const at = (level: string) => (message: string, fields: Record<string, unknown>) => lines.push({ level, message: message.replace(/^dumper: /, ''), fields });
  return { lines, logger: { debug: at('debug'), warn: at('warn'), error: at('error') } };
}

let dumpers: Dumper[] = [];
afterEach(async () => {
  await Promise.all(dumpers.map((d) => d.close()));
  dumpers = [];
});
function make(options: Parameters<typeof createDumper>[0]): Dumper {
  const d = createDumper({ logger: false, ...options });
  dumpers.push(d);
  return d;
}

/**
 * The race's second purge comes late (an hour): what a test sees is the first purge alone. Such
 * tests wait with `until()`, not `flushPurges()`, which waits for the second purge too.
 */
const NO_ECHO = { raceWindow: 3_600_000 };
/** The second purge soon after the first: `flushPurges()` is quick. */
const QUICK = { raceWindow: 20 };

/** Waits until `cond()` holds (at most 10 s, then fails the test with `what`). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('options', () => {
  test('purgers and edge are validated, with a TypeError naming the option', () => {
    const { purger } = recorder();
    expect(() => createDumper({ purgers: purger as never })).toThrow(new TypeError('page-dumper: option "purgers" must be an array of purgers, got an object'));
    expect(() => createDumper({ purgers: [{ ...purger, purge: undefined } as never] })).toThrow(
      new TypeError('page-dumper: option "purgers" [0] must have a purge() method'),
    );
    expect(() => createDumper({ purgers: [{ ...purger, tagHeader: { ...purger.tagHeader, separator: ';' } } as never] })).toThrow(
      new TypeError('page-dumper: option "purgers" [0] tagHeader.separator must be " " or ","'),
    );
    expect(() => createDumper({ purgers: [purger, purger] })).toThrow(new TypeError('page-dumper: option "purgers" lists the edge "rec" twice'));
    expect(() => createDumper({ edge: { raceWindow: 0 } })).toThrow(new TypeError('page-dumper: option "edge.raceWindow" must be a positive integer, got number 0'));
    expect(() => createDumper({ edge: { race: 1 } as never })).toThrow(new TypeError('page-dumper: option "edge" has an unknown field "race"'));
  });
});

describe('edge tags', () => {
  test('tags every edge takes travel as they are; long ones and ones with separators are hashed', () => {
    expect(edgeTag('/ice-cream/vanilla', 64)).toBe('/ice-cream/vanilla');
    expect(edgeTag('flavour:42', 64)).toBe('flavour:42');
    const long = edgeTag('x'.repeat(65), 64);
    expect(long).toMatch(/^pd\.h\.[A-Za-z0-9_-]{22}$/);
    expect(edgeTag('x'.repeat(65), 64)).toBe(long);
    expect(edgeTag('a b', 64)).toMatch(/^pd\.h\./);
    expect(edgeTag('a,b', 64)).not.toBe(edgeTag('a b', 64));
  });

  test('a page with more tags than the header takes carries the buckets of its tags, and purging a tag purges its bucket', () => {
    const header = { name: 'x', separator: ' ', maxBytes: 1024, maxTagBytes: 64 } as const;
    const few = edgeHeaderValue(header, '/p', ['a', 'b']);
    expect(few).toBe(`${EDGE_ALL_TAG} /p a b`);
    const many = Array.from({ length: 400 }, (_, i) => `product:${i}`);
    const value = edgeHeaderValue(header, '/p', many);
    expect(Buffer.byteLength(value)).toBeLessThanOrEqual(1024);
    const sent = value.split(' ');
    expect(sent.slice(0, 2)).toEqual([EDGE_ALL_TAG, '/p']);
    // Every tag left out is reachable through its bucket, which a purge of the tag also purges.
    for (const t of many) {
      expect(sent).not.toContain(t);
      expect(sent).toContain(edgeBucket(t));
      expect(purgeTags(header, [t])).toEqual([t, edgeBucket(t)]);
    }
    const commas = edgeHeaderValue({ ...header, separator: ',' }, '/p', ['a']);
    expect(commas).toBe(`${EDGE_ALL_TAG}, /p, a`);
  });

  test('claimed items are batched by count and bytes, a tag sent once per batch', () => {
    const items = ['a', 'b', 'a', 'c', 'd'].map((payload, i) => ({ id: i + 1, payload, attempts: 1 }));
    expect(batches(items, 2, undefined)).toEqual([
      { tags: ['a', 'b'], ids: [1, 2, 3], first: ['a', 'b'], firstIds: [1, 2] },
      { tags: ['c', 'd'], ids: [4, 5], first: ['c', 'd'], firstIds: [4, 5] },
    ]);
    // A second purge (marked with a leading space) is sent like a first, and owes no third.
    const seconds = [' a', 'a', ' b'].map((payload, i) => ({ id: i + 1, payload, attempts: 1 }));
    expect(batches(seconds, 10, undefined)).toEqual([{ tags: ['a', 'b'], ids: [1, 2, 3], first: ['a'], firstIds: [2] }]);
    const wide = ['aaaa', 'bbbb', 'cccc'].map((payload, i) => ({ id: i + 1, payload, attempts: 1 }));
    // "aaaa bbbb" is 9 bytes: a third tag would make 14.
    expect(batches(wide, 100, 9).map((b) => b.tags)).toEqual([['aaaa', 'bbbb'], ['cccc']]);
  });
});

describe('headers for the edge', () => {
  test('misses and hits carry the tags, the edge lifetime and a revalidate for browsers; a page for a visitor with cookies is no-store', async () => {
    const { purger } = recorder();
    const dumper = make({ purgers: [purger], prefixInvalidation: true, trackRenders: true, edge: NO_ECHO });
    const server = await listen(
      withDumper(dumper, (req, res) => {
        dumper.tag('flavour:1');
        if (req.url === '/own') res.setHeader('cache-control', 'public, max-age=60');
        res.end('page');
      }),
    );
    try {
      const read = (path: string, headers: http.OutgoingHttpHeaders = {}) =>
        new Promise<http.IncomingHttpHeaders>((resolve, reject) =>
          http.get(`${server.url}${path}`, { headers }, (r) => resolve(r.resume().headers)).on('error', reject),
        );
      const miss = await read('/shop/vanilla');
      expect(miss['x-cache']).toBe('MISS');
      expect(miss['x-tags']).toBe(`${EDGE_ALL_TAG} /shop/vanilla /* /shop/* flavour:1`);
      expect(miss['surrogate-control']).toBe('max-age=31536000');
      expect(miss['cache-control']).toBe('max-age=0, must-revalidate');
      const hit = await read('/shop/vanilla');
      expect(hit['x-cache']).toBe('HIT');
      expect(hit['x-tags']).toBe(miss['x-tags']);
      expect(hit['surrogate-control']).toBe('max-age=31536000');
      expect(hit['cache-control']).toBe('max-age=0, must-revalidate');
      // A 304 keeps them too (an edge revalidating its copy updates it from the 304).
      const etag = hit.etag!;
      const nm = await read('/shop/vanilla', { 'if-none-match': etag });
      expect(nm['x-tags']).toBe(miss['x-tags']);
      // The app's own Cache-Control is left for browsers.
      expect((await read('/own'))['cache-control']).toBe('public, max-age=60');
      expect((await read('/own'))['cache-control']).toBe('public, max-age=60');
      // A visitor with cookies gets a page rendered for them: the edge must not keep it.
      const personal = await read('/other', { cookie: 'session=1' });
      expect(personal['x-tags']).toBeUndefined();
      expect(personal['surrogate-control']).toBe('no-store');
    } finally {
      await server.close();
    }
  });

  test('a render that adds tags after its head went out gets its edge copy purged by path', async () => {
    const a = recorder();
    const dumper = make({ purgers: [a.purger], trackRenders: true, edge: NO_ECHO });
    const server = await listen(
      withDumper(dumper, (req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('head ');
        if (req.url === '/late') dumper.tag('late-tag');
        res.end('body');
      }),
    );
    try {
      const late = await fetch(`${server.url}/late`);
      expect(late.headers.get('x-tags')).toBe(`${EDGE_ALL_TAG} /late`);
      await late.text();
      await until(() => a.calls.length !== 0, 'the purge of the late page');
      expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, ['/late']).sort());
      // A page whose tags were all in its head is not purged.
      await (await fetch(`${server.url}/early`)).text();
      await dumper.flushCompression();
      await new Promise((r) => setTimeout(r, 50));
      expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, ['/late']).sort());
    } finally {
      await server.close();
    }
  });

  test('without purgers no edge header is sent', async () => {
    const dumper = make({});
    const server = await listen(withDumper(dumper, (_req, res) => res.end('page')));
    try {
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${server.url}/p`);
        expect(r.headers.get('surrogate-control')).toBeNull();
        expect(r.headers.get('cache-control')).toBeNull();
      }
    } finally {
      await server.close();
    }
  });
});

class Flavour {
  constructor(readonly slug: string) {}
  dependentPaths() {
    return [`/flavours/${this.slug}/`];
  }
  dependentTags() {
    return [`flavour:${this.slug}`];
  }
}

describe('fan-out', () => {
  test('every kind of invalidation reaches every purger, queued when the call returns', async () => {
    const a = recorder('a');
    const b = recorder('b');
    const dumper = make({ purgers: [a.purger, b.purger], prefixInvalidation: true, edge: QUICK });
    dumper.register(Flavour);
    const expectPurged = async (tags: string[]) => {
      await dumper.flushPurges();
      const want = purgeTags(a.purger.tagHeader, tags).sort();
      expect(a.purged()).toEqual(want);
      expect(b.purged()).toEqual(want);
      a.calls.length = 0;
      b.calls.length = 0;
    };
    await dumper.invalidate(['/Ice-Cream/', 'https://example.com/a?q=1']);
    await expectPurged(['/ice-cream', '/a']);
    await dumper.invalidateTags('menu');
    await expectPurged(['menu']);
    await dumper.invalidatePrefix('/shop');
    await expectPurged(['/shop', '/shop/*']);
    await dumper.changed(new Flavour('mint'));
    await expectPurged(['/flavours/mint', 'flavour:mint']);
    await dumper.invalidateDependents([await dumper.dependentsOf(new Flavour('a')), await dumper.dependentsOf(new Flavour('b'))]);
    await expectPurged(['/flavours/a', 'flavour:a', '/flavours/b', 'flavour:b']);
    await dumper.invalidateAll();
    await dumper.flushPurges();
    expect(a.purged()).toEqual([EDGE_ALL_TAG]);
    expect(b.purged()).toEqual([EDGE_ALL_TAG]);
  });

  test('a successful unsafe request purges its target', async () => {
    const a = recorder();
    const dumper = make({ purgers: [a.purger], edge: NO_ECHO });
    const server = await listen(withDumper(dumper, (_req, res) => res.end('ok')));
    try {
      await fetch(`${server.url}/cart`, { method: 'POST' });
      await until(() => a.calls.length !== 0, 'the purge');
      expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, ['/cart']).sort());
    } finally {
      await server.close();
    }
  });

  test('each invalidation is purged twice: at once, and again raceWindow after the edge acknowledged it', async () => {
    const a = recorder();
    const store = new MemoryStore();
    const queue = 'dumper.cached_path.purge rec';
    const dumper = make({ store, purgers: [a.purger], edge: { raceWindow: 60_000 } });
    await dumper.invalidateTags('menu');
    expect((store.queueStats(queue) as QueueStats).size).toBe(2); // the tag and its bucket
    await until(() => dumper.purgeStats.sent === 1, 'the first purge');
    // Acknowledged, and queued again for a minute later: pushed before the first was acknowledged.
    const stats = store.queueStats(queue) as QueueStats;
    expect(stats.size).toBe(2);
    expect(stats.nextDue!).toBeGreaterThan(Date.now() + 50_000);
    expect(dumper.purgeStats).toEqual({ queued: 4, sent: 1, failed: 0, retried: 0 });
    // Sent once due: the same tags, and no third purge after it.
    const due = store.queueClaim(queue, { max: 10, now: stats.nextDue!, lease: 1 });
    store.queueRetry(queue, due.map((i) => i.id), 0);
    await until(() => dumper.purgeStats.sent === 2, 'the second purge');
    expect(a.calls[1]).toEqual(a.calls[0]);
    await dumper.flushPurges();
    expect(dumper.purgeStats).toEqual({ queued: 4, sent: 2, failed: 0, retried: 0 });
    expect((store.queueStats(queue) as QueueStats).size).toBe(0);
  });
});

describe('delivery', () => {
  test('batches respect maxBatch and maxBatchBytes', async () => {
    const a = recorder('a', { maxBatch: 3 });
    const b = recorder('b', { maxBatch: 1000, maxBatchBytes: 100 });
    const dumper = make({ purgers: [a.purger, b.purger], edge: NO_ECHO });
    const tags = Array.from({ length: 20 }, (_, i) => `tag-number-${i}`);
    await dumper.invalidateTags(tags);
    const all = purgeTags(a.purger.tagHeader, tags).sort();
    await until(() => a.purged().length === all.length && b.purged().length === all.length, 'every tag purged');
    expect(a.purged()).toEqual(all);
    expect(b.purged()).toEqual(all);
    expect(Math.max(...a.calls.map((c) => c.length))).toBe(3);
    expect(a.calls.length).toBe(Math.ceil(all.length / 3));
    for (const c of b.calls) expect(Buffer.byteLength(c.join(' '))).toBeLessThanOrEqual(100);
    expect(b.calls.length).toBeGreaterThan(1);
  });

  test('invalidations made one at a time (with I/O between them) are gathered into few requests', async () => {
    // The clock is the test's: one write per millisecond, exactly.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const a = recorder();
      const dumper = make({ purgers: [a.purger], edge: NO_ECHO });
      const tags = Array.from({ length: 50 }, (_, i) => `t${i}`);
      for (const t of tags) {
        await dumper.invalidateTags(t);
        await vi.advanceTimersByTimeAsync(1);
      }
      await vi.advanceTimersByTimeAsync(100);
      expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, tags).sort());
      // Without the pause that lets purges gather, each write is a request of its own (50).
      expect(a.calls.length).toBeLessThanOrEqual(6);
      dumpers.splice(dumpers.indexOf(dumper), 1);
      await dumper.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test('a failed purge is retried with a doubling backoff, and logged as failed, retried and sent', async () => {
    const a = recorder();
    const log = logger();
    const store = new MemoryStore();
    const delays: number[] = [];
    const retry = store.queueRetry.bind(store);
    store.queueRetry = (queue, ids, notBefore) => {
      delays.push(notBefore - Date.now());
      retry(queue, ids, notBefore);
    };
    const dumper = make({ store, purgers: [a.purger], logger: log.logger, edge: { ...NO_ECHO, retryDelay: 20 } });
    a.fail(
      () => new Error('down'),
      () => new Error('down'),
      () => new Error('down'),
    );
    await dumper.invalidateTags('menu');
    await until(() => dumper.purgeStats.sent === 1, 'the purge to go through');
    expect(a.calls.length).toBe(4);
    expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, ['menu']).sort());
    // 20, 40, 80 ms: computed, not measured (each is the due time set minus the time it was set).
    expect(delays.length).toBe(3);
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(20 * 2 ** i - 2);
      expect(d).toBeLessThanOrEqual(20 * 2 ** i);
    });
    expect(dumper.purgeStats).toEqual({ queued: 4, sent: 1, failed: 3, retried: 3 }); // queued: with the second purge, due later
    const messages = log.lines.map((l) => `${l.level} ${l.message}`);
    expect(messages.filter((m) => m === 'warn purge failed; retrying later').length).toBe(3);
    expect(messages).toContain('debug purge queued');
    expect(messages).toContain('debug purge sent');
    const warn = log.lines.find((l) => l.level === 'warn')!;
    expect(warn.fields).toMatchObject({ purger: 'rec', attempts: 1, retryIn: 20 });
  });

  test('Retry-After from a 429 decides when the purge is tried again', async () => {
    const a = recorder();
    const store = new MemoryStore();
    const dumper = make({ store, purgers: [a.purger], edge: { ...NO_ECHO, retryDelay: 10 } });
    a.fail(() => new PurgeError('429', { status: 429, retryAfter: 120_000 }));
    const before = Date.now();
    await dumper.invalidateTags('menu');
    for (let i = 0; i < 100 && dumper.purgeStats.retried === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(dumper.purgeStats.retried).toBe(1);
    const stats = store.queueStats('dumper.cached_path.purge rec');
    // Due two minutes after the failure, not retryDelay (10 ms) after it.
    expect(stats.nextDue!).toBeGreaterThanOrEqual(before + 120_000);
    expect(stats.size).toBe(2); // the tag and its bucket (their second purge comes once they are sent)
  });

  test.each(['SqliteStore', 'RedisStore'] as const)('three dumpers on one %s deliver each purge once', async (kind) => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { randomUUID } = await import('node:crypto');
    const dir = mkdtempSync(`${tmpdir()}/page-dumper-purge-`);
    const prefix = `purge-once:${randomUUID().slice(0, 8)}:`;
    const open = async (): Promise<Store> => {
      if (kind === 'SqliteStore') {
        const { SqliteStore } = await import('../../src/stores/sqlite/index.js');
        return new SqliteStore({ path: `${dir}/c.db` });
      }
      if (!(await needService('redis'))) return new MemoryStore();
      const { RedisStore } = await import('../../src/stores/redis/index.js');
      return new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 2000 });
    };
    try {
      const sent: string[] = [];
      const shared = (): Purger => ({
        ...recorder('edge').purger,
        maxBatch: 5,
        async purge(tags) {
          await new Promise((r) => setTimeout(r, 5));
          sent.push(...tags);
        },
      });
      const dumpers3 = [make({ store: await open(), purgers: [shared()], edge: QUICK })];
      dumpers3.push(make({ store: await open(), purgers: [shared()], edge: QUICK }), make({ store: await open(), purgers: [shared()], edge: QUICK }));
      const tags = Array.from({ length: 40 }, (_, i) => `t${i}`);
      await dumpers3[0]!.invalidateTags(tags);
      await Promise.all(dumpers3.map((d) => d.flushPurges()));
      // Each tag twice: the first purge and the race's second one, each sent by one process only.
      const want = purgeTags(shared().tagHeader, tags);
      expect(sent.length).toBe(2 * want.length);
      for (const t of want) expect(sent.filter((x) => x === t).length).toBe(2);
      expect(dumpers3.filter((d) => d.purgeStats.sent > 0).length).toBeGreaterThan(1);
    } finally {
      await Promise.all(dumpers.map((d) => d.close()));
      dumpers = [];
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a store whose queue push fails keeps the purge and pushes it later', async () => {
    const a = recorder();
    const store = new MemoryStore();
    const push = store.queuePush.bind(store);
    let refuse = 1;
    store.queuePush = (queue, payloads, notBefore) => {
      if (refuse-- > 0) throw new Error('store down');
      return push(queue, payloads, notBefore);
    };
    const dumper = make({ store, purgers: [a.purger], edge: { ...QUICK, retryDelay: 10 } });
    await dumper.invalidateTags('menu');
    await dumper.flushPurges();
    expect(a.purged()).toEqual(purgeTags(a.purger.tagHeader, ['menu']).sort());
  });
});
