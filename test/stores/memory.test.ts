import http from 'node:http';
import { describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type EncodedBody, type SetOptions, type StoredEntry } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { runStoreConformance } from '../../src/testing/index.js';
import { makeEntry } from '../../src/stores/memory/index.js';

runStoreConformance({ test, create: () => new MemoryStore(), prefix: 'MemoryStore conformance: ' });

const limits: SetOptions = { maxVariantsPerPath: 1000, variant: false };
const variants = (maxVariantsPerPath: number): SetOptions => ({ maxVariantsPerPath, variant: true });
const entry = (path: string, size: number, seq = 0): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new Uint8Array(size),
  etag: '"x"',
  storedAt: 0,
  seq,
  path,
  tags: [path],
});

/** Encoded bodies of the given sizes, in buffers of their own. */
const encoded = (...sizes: number[]): EncodedBody[] =>
  sizes.map((size, i) => ({ coding: (['br', 'gzip', 'zstd'] as const)[i]!, body: Buffer.allocUnsafeSlow(size).fill(i + 1) }));

/** What the store counts for one entry, alone in a store of its own. */
function counted(key: string, e: StoredEntry, options = limits): number {
  const s = new MemoryStore();
  expect(s.set(key, e, options)).toBe(true);
  return s.bytes;
}

describe('MemoryStore', () => {
  test('is bounded by bytes and evicts the least recently used entry', () => {
    const one = counted('a', entry('/a', 3000));
    const s = new MemoryStore({ maxBytes: 3 * one + one / 2 });
    s.set('a', entry('/a', 3000), limits);
    s.set('b', entry('/b', 3000), limits);
    s.set('c', entry('/c', 3000), limits);
    expect(s.size).toBe(3);
    s.get('a'); // a is now more recent than b
    s.set('d', entry('/d', 3000), limits);
    expect(s.get('b')).toBeUndefined();
    expect(s.get('a')).toBeDefined();
    expect(s.get('d')).toBeDefined();
    expect(s.bytes).toBeLessThanOrEqual(s.maxBytes);
  });

  test('refuses an entry larger than the whole store, and keeps the entry it would have replaced', () => {
    const s = new MemoryStore({ maxBytes: 2000 });
    expect(s.set('a', entry('/a', 5000), limits)).toBe(false);
    expect(s.size).toBe(0);
    expect(s.set('a', entry('/a', 10), limits)).toBe(true);
    expect(s.set('a', entry('/a', 5000), limits)).toBe(false);
    expect(s.get('a')?.body.byteLength).toBe(10);
  });

  test('one variant more evicts the least recently used variant: a hit counts as a use', () => {
    const s = new MemoryStore();
    const two = variants(2);
    s.set('k:/v?1', entry('/v', 10), two);
    s.set('k:/v?2', entry('/v', 10), two);
    expect(s.get('k:/v?1')).toBeDefined(); // ?1 is now more recent than ?2
    expect(s.set('k:/v?3', entry('/v', 10), two)).toBe(true);
    expect(s.get('k:/v?2')).toBeUndefined();
    expect(s.get('k:/v?1')).toBeDefined();
    expect(s.get('k:/v?3')).toBeDefined();
    // Hits on the plain page and on other paths do not disturb the order of the variants.
    s.set('k:/v', entry('/v', 10), limits);
    s.get('k:/v');
    s.get('k:/v?1'); // ?3 is the least recently used variant now
    expect(s.set('k:/v?4', entry('/v', 10), two)).toBe(true);
    expect(s.get('k:/v?3')).toBeUndefined();
    expect(s.get('k:/v?1')).toBeDefined();
    expect(s.get('k:/v')).toBeDefined();
    expect(s.size).toBe(3);
  });

  test('an invalidation or clear() of a path frees its variants: as many can be stored again', () => {
    const s = new MemoryStore();
    const three = variants(3);
    for (let i = 0; i < 3; i++) s.set(`k:/v?${i}`, entry('/v', 10), three);
    s.invalidate(['/v']);
    expect(s.size).toBe(0);
    for (let i = 0; i < 3; i++) s.set(`k:/v?n${i}`, entry('/v', 10, s.sequence()), three);
    expect(s.size).toBe(3);
    s.clear();
    for (let i = 0; i < 3; i++) s.set(`k:/v?c${i}`, entry('/v', 10, s.sequence()), three);
    for (let i = 0; i < 3; i++) expect(s.get(`k:/v?c${i}`)).toBeDefined();
    expect(s.bytes).toBe(3 * counted('k:/v?c0', entry('/v', 10), three));
  });

  test('frees invalidated entries and their tag index at once', () => {
    const s = new MemoryStore();
    for (let i = 0; i < 100; i++) s.set(`k${i}`, { ...entry('/p', 10), tags: ['/p', `t${i}`] }, limits);
    expect(s.size).toBe(100);
    s.invalidate(['/p']);
    expect(s.size).toBe(0);
    expect(s.bytes).toBe(0);
  });

  test('a tag shared by entries reaches all of them, as their number goes up and down', () => {
    const s = new MemoryStore();
    const tagged = (path: string): StoredEntry => ({ ...entry(path, 10), tags: [path, 'site'] });
    s.set('a', tagged('/a'), limits);
    s.set('b', tagged('/b'), limits);
    s.invalidate(['/a']); // 'site' is left with one entry
    s.set('c', tagged('/c'), limits);
    s.set('c', tagged('/c'), limits); // replaced, not added twice
    s.set('d', tagged('/d'), limits);
    s.invalidate(['/d']);
    s.set('e', entry('/e', 10), limits);
    s.invalidate(['site']);
    expect([s.get('a'), s.get('b'), s.get('c'), s.get('d')]).toEqual([undefined, undefined, undefined, undefined]);
    expect(s.get('e')).toBeDefined();
    expect(s.size).toBe(1);
  });

  test('makeEntry: one object, one shape per kind, whatever the order and the extra fields given', () => {
    const body = new Uint8Array(3);
    const base = { status: 200, headers: ['etag', '"e"'], body, etag: '"e"', storedAt: 1, seq: 2, path: '/a', tags: ['/a'] };
    const order = ['status', 'headers', 'body', 'etag', 'storedAt', 'seq', 'path', 'tags'];
    const shuffled = { tags: ['/a'], seq: 2, extra: 'x', path: '/a', etag: '"e"', storedAt: 1, body, headers: ['etag', '"e"'], status: 200 };
    expect(Object.keys(makeEntry(shuffled))).toEqual(order);
    expect(Object.keys(makeEntry({ ...base, anonymousOnly: false, encodings: [] }))).toEqual(order);
    const br = encoded(2);
    const full = makeEntry({ ...base, encodings: br, anonymousOnly: true });
    expect(Object.keys(full)).toEqual([...order, 'anonymousOnly', 'encodings']);
    expect(full.encodings).toBe(br);
    expect(full.body).toBe(body);
  });

  test('is labelled with its kind and its bound, which the dumper names it by', async () => {
    expect(new MemoryStore().label).toBe('MemoryStore (64 MiB)');
    expect(new MemoryStore({ maxBytes: 2 ** 30 }).label).toBe('MemoryStore (1 GiB)');
    expect(new MemoryStore({ maxBytes: 1536 * 1024 }).label).toBe('MemoryStore (1536 KiB)');
    expect(new MemoryStore({ maxBytes: 1000 }).label).toBe('MemoryStore (1000 bytes)');
    const dumper = createDumper({ store: new MemoryStore({ maxBytes: 8 * 2 ** 20 }), logger: false });
    expect(dumper.storeLabel).toBe('MemoryStore (8 MiB)');
    await dumper.close();
  });

  test('entries() lists in storing order over pages, a key stored again last, whatever the keys', () => {
    const s = new MemoryStore();
    const keys = Array.from({ length: 500 }, (_, i) => `k:/p/${(i * 7919) % 1000}`);
    for (const key of keys) s.set(key, entry(key.slice(2), 10), limits);
    s.set(keys[3]!, entry(keys[3]!.slice(2), 20), limits);
    s.invalidate([keys[10]!.slice(2)]);
    const expected = keys.filter((_, i) => i !== 3 && i !== 10).concat(keys[3]!);
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = s.entries({ limit: 7, cursor });
      expect(page.entries.length).toBeLessThanOrEqual(7);
      listed.push(...page.entries.map((x) => x.key));
      cursor = page.cursor;
    } while (cursor !== undefined);
    expect(listed).toEqual(expected);
    expect(s.info().entries).toBe(499);
  });

  test('folds old invalidation points into a floor: bounded memory, still no stale fill', () => {
    const s = new MemoryStore({ maxTrackedTags: 10 });
    const before = s.sequence();
    for (let i = 0; i < 50; i++) s.invalidate([`/t${i}`]);
    // The record of /t0's invalidation is gone, but a fill that started before it is still refused.
    expect(s.set('k', entry('/t0', 10, before), limits)).toBe(false);
    expect(s.set('k', entry('/t0', 10, s.sequence()), limits)).toBe(true);
  });

  describe('counts what an entry keeps alive', () => {
    test('a body that is a view into a larger buffer is copied into one of its own', () => {
      const s = new MemoryStore();
      // Buffer.from of a short string is a slice of Node's shared 8 KiB pool.
      const pooled = Buffer.from('<p>small page</p>');
      expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.byteLength);
      const big = new Uint8Array(100_000).fill(7);
      const view = big.subarray(10, 20);
      s.set('pooled', { ...entry('/pooled', 0), body: pooled }, limits);
      s.set('view', { ...entry('/view', 0), body: view }, limits);
      for (const [key, original] of [['pooled', pooled], ['view', view]] as const) {
        const body = s.get(key)!.body;
        expect(body).not.toBe(original);
        expect([...body]).toEqual([...original]);
        expect(body.byteOffset).toBe(0);
        expect(body.buffer.byteLength).toBe(original.byteLength);
      }
      expect(Buffer.isBuffer(s.get('pooled')!.body)).toBe(true);
      // A body that owns its buffer is kept as it is.
      const own = Buffer.allocUnsafeSlow(100).fill(1);
      s.set('own', { ...entry('/own', 0), body: own }, limits);
      expect(s.get('own')!.body).toBe(own);
    });

    test('the store keeps its own arrays: a caller changing its arrays later changes nothing', () => {
      const s = new MemoryStore();
      const e = { ...entry('/a', 10), headers: ['content-type', 'text/html'], tags: ['/a', 'flavour:1'] };
      s.set('a', e, limits);
      e.headers.push('set-cookie', 'x=1');
      e.tags.length = 1;
      expect(s.get('a')!.headers).toEqual(['content-type', 'text/html']);
      s.invalidate(['flavour:1']);
      expect(s.get('a')).toBeUndefined();
    });

    test('body bytes, strings at one byte per Latin-1 character and two otherwise, a fixed overhead per entry', () => {
      const base = counted('k', entry('/a', 0));
      // Past a fixed overhead of several hundred bytes (the objects around an entry)...
      expect(base).toBeGreaterThan(400);
      // ...the body counts byte for byte,
      expect(counted('k', entry('/a', 1000)) - base).toBe(1000);
      // and a string by its characters: one byte each when all are Latin-1, two otherwise.
      const latin1 = counted(`k${'é'.repeat(800)}`, entry('/a', 0)) - base;
      const twoByte = counted(`k${'€'.repeat(800)}`, entry('/a', 0)) - base;
      expect(latin1).toBeGreaterThanOrEqual(800);
      expect(latin1).toBeLessThan(820);
      expect(twoByte).toBeGreaterThanOrEqual(1600);
      expect(twoByte).toBeLessThan(1620);
      // More tags and more headers cost more; a variant costs its place in its path's set.
      expect(counted('k', { ...entry('/a', 0), tags: ['/a', 't'] })).toBeGreaterThan(base);
      expect(counted('k', { ...entry('/a', 0), headers: ['content-type', 'text/html', 'x', 'y'] })).toBeGreaterThan(base);
      expect(counted('k', entry('/a', 0), variants(10))).toBeGreaterThan(base);
    });
  });

  describe('encodings', () => {
    test('maxBytes counts encoded bodies: their bytes and the objects around each', () => {
      const plain = counted('k', entry('/a', 1000));
      const withTwo = counted('k', { ...entry('/a', 1000), encodings: encoded(3000, 2000) });
      // The bytes of both, plus a few hundred bytes of objects per encoded body (measured ~230).
      expect(withTwo - plain).toBeGreaterThanOrEqual(5000 + 2 * 200);
      expect(withTwo - plain).toBeLessThan(5000 + 2 * 300 + 100);
      // Absent and empty cost nothing.
      expect(counted('k', { ...entry('/a', 1000), encodings: [] })).toBe(plain);
      // Room for three entries without encodings, not for three with them: the first one goes.
      const s = new MemoryStore({ maxBytes: 2 * withTwo + plain });
      for (const key of ['a', 'b', 'c']) expect(s.set(key, { ...entry(`/${key}`, 1000), encodings: encoded(3000, 2000) }, limits)).toBe(true);
      expect(s.get('a')).toBeUndefined();
      expect(s.get('b')?.encodings).toHaveLength(2);
      expect(s.get('c')?.encodings).toHaveLength(2);
      expect(s.bytes).toBe(2 * withTwo);
      // An entry whose encodings alone pass the bound is refused; the one it would replace stays.
      expect(s.set('b', { ...entry('/b', 1000), encodings: encoded(3 * withTwo) }, limits)).toBe(false);
      expect(s.get('b')?.encodings).toHaveLength(2);
    });

    test('the same entry set again with them: replaced, counted once, other variants of the path kept', () => {
      for (const options of [limits, variants(2)]) {
        const s = new MemoryStore();
        const e = entry('/v', 1000);
        expect(s.set('k:/v?other', entry('/v', 10), variants(2))).toBe(true);
        expect(s.set('k:/v?x', e, options)).toBe(true);
        const first = s.get('k:/v?x');
        expect(first?.encodings).toBeUndefined();
        expect(s.set('k:/v?x', { ...e, encodings: encoded(600, 400) }, options)).toBe(true);
        expect(s.set('k:/v?x', { ...e, encodings: encoded(600, 400) }, options)).toBe(true); // twice: still one
        const again = s.get('k:/v?x');
        expect(again).not.toBe(first);
        expect(again?.encodings?.map((x) => [x.coding, x.body.byteLength])).toEqual([['br', 600], ['gzip', 400]]);
        expect(s.size).toBe(2);
        expect(s.get('k:/v?other')).toBeDefined();
        expect(s.bytes).toBe(counted('k:/v?other', entry('/v', 10), variants(2)) + counted('k:/v?x', { ...e, encodings: encoded(600, 400) }, options));
        // Dropped with the entry: nothing left counted.
        s.invalidate(['/v']);
        expect(s.size).toBe(0);
        expect(s.bytes).toBe(0);
      }
    });

    test('kept in memory of their own, one object shape per kind of entry, the same object on every hit', () => {
      const s = new MemoryStore();
      // Views: a slice of Node's pool, and a subarray of a larger buffer.
      const pooled = Buffer.from('gzip bytes, short');
      const view = new Uint8Array(10_000).fill(3).subarray(100, 200);
      const own = Buffer.allocUnsafeSlow(50).fill(4);
      const given: EncodedBody[] = [
        { coding: 'gzip', body: pooled },
        { coding: 'br', body: view },
        { coding: 'zstd', body: own },
      ];
      s.set('k', { ...entry('/a', 10), encodings: given }, limits);
      const got = s.get('k')!;
      expect(s.get('k')).toBe(got);
      expect(got.encodings).not.toBe(given);
      for (const [i, original] of [pooled, view, own].entries()) {
        const body = got.encodings![i]!.body;
        expect([...body]).toEqual([...original]);
        expect(body.byteOffset).toBe(0);
        expect(body.buffer.byteLength).toBe(original.byteLength);
      }
      expect(got.encodings![2]!.body).toBe(own); // a body that owns its buffer is kept as it is
      // The store's own array: a caller changing its array later changes nothing.
      given.length = 0;
      expect(s.get('k')!.encodings).toHaveLength(3);
      // Fields in one order for each kind; no encodings property on an entry without them.
      const base = ['status', 'headers', 'body', 'etag', 'storedAt', 'seq', 'path', 'tags'];
      expect(Object.keys(got)).toEqual([...base, 'encodings']);
      expect(got.encodings!.map((x) => Object.keys(x))).toEqual([['coding', 'body'], ['coding', 'body'], ['coding', 'body']]);
      s.set('anon', { ...entry('/a', 10), encodings: encoded(5), anonymousOnly: true }, limits);
      expect(Object.keys(s.get('anon')!)).toEqual([...base, 'anonymousOnly', 'encodings']);
      s.set('none', { ...entry('/a', 10), encodings: [] }, limits);
      s.set('undef', { ...entry('/a', 10), encodings: undefined }, limits);
      expect(Object.keys(s.get('none')!)).toEqual(base);
      expect(Object.keys(s.get('undef')!)).toEqual(base);
    });
  });

  test('through the dumper: 300 junk query strings neither push the page out nor keep it out', async () => {
    const store = new MemoryStore();
    const dumper = createDumper({ store, logger: false, maxVariantsPerPath: 8 });
    let renders = 0;
    const app: http.RequestListener = (req, res) => {
      renders++;
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<p>${req.url}</p>`);
    };
    const server = http.createServer(withDumper(dumper, app));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const get = async (target: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${target}`);
      return { cache: r.headers.get('x-cache'), body: await r.text() };
    };
    try {
      // The junk comes first: the page is still stored when it is asked for.
      for (let i = 0; i < 20; i++) expect((await get(`/page?x=${i}`)).cache).toBe('MISS');
      expect(await get('/page')).toEqual({ cache: 'MISS', body: '<p>/page</p>' });
      expect(await get('/page')).toEqual({ cache: 'HIT', body: '<p>/page</p>' });
      // Then more junk: every variant is stored (the newest 8 are kept), the page stays.
      for (let i = 20; i < 300; i++) expect((await get(`/page?x=${i}`)).cache).toBe('MISS');
      expect(await get('/page')).toEqual({ cache: 'HIT', body: '<p>/page</p>' });
      expect((await get('/page?x=299')).cache).toBe('HIT');
      expect((await get('/page?x=0')).cache).toBe('MISS');
      expect(store.size).toBe(1 + 8);
      expect(renders).toBe(302);
    } finally {
      await new Promise((r) => server.close(r));
      await dumper.close();
    }
  });

  test('validates its options', () => {
    expect(() => new MemoryStore({ maxBytes: 0 })).toThrow(
      new TypeError('page-dumper: MemoryStore option "maxBytes" must be a positive integer, got 0'),
    );
    expect(() => new MemoryStore({ maxBytes: 1.5 })).toThrow(TypeError);
  });
});
