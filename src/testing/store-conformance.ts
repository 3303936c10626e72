/**
 * The store conformance suite. Every store that ships with page-dumper runs it, and a third-party
 * store runs it in three lines with any test runner that has `test(name, fn)`:
 *
 * ```ts
 * import { test } from 'vitest';            // or node:test, jest, mocha's it
 * import { runStoreConformance } from 'page-dumper/testing';
 * runStoreConformance({ test, create: () => new MyStore({ namespace: crypto.randomUUID() }) });
 * ```
 */
import assert from 'node:assert/strict';
import {
  hasQueue,
  isEnumerable,
  type EncodedBody,
  type EntryInfo,
  type EntryListOptions,
  type EnumerableStore,
  type PurgeQueueStore,
  type SetOptions,
  type Store,
  type StoredEntry,
} from '../core/store.js';

export interface StoreConformanceOptions {
  /** Registers one test case; `vitest`'s, `node:test`'s and jest's `test` all fit. */
  test: (name: string, fn: () => Promise<void>) => unknown;
  /** Makes a fresh, empty store. Shared stores should use a fresh key prefix or database each time. */
  create: () => Store | Promise<Store>;
  /** Prepended to every test name. @default 'store conformance: ' */
  prefix?: string;
}

/** What the dumper passes for a plain page (no query string)... */
const LIMITS: SetOptions = { maxVariantsPerPath: 256, variant: false };
/** ... and for a query-string variant. */
const VARIANT: SetOptions = { maxVariantsPerPath: 256, variant: true };

function entry(seq: number, path: string, extra: Partial<StoredEntry> = {}): StoredEntry {
  const body = extra.body ?? new TextEncoder().encode(`<h1>${path}</h1>`);
  return {
    status: 200,
    headers: ['content-type', 'text/html; charset=utf-8', 'etag', '"e1"', 'content-length', String(body.byteLength)],
    body,
    etag: '"e1"',
    storedAt: 1_700_000_000_000,
    seq,
    path,
    tags: [path],
    ...extra,
  };
}

function bytes(e: StoredEntry | undefined): number[] {
  assert.ok(e, 'expected an entry');
  return [...e.body];
}

/**
 * Encoded bodies for tests: binary bytes unique to `seed` and each coding (a store that mixed them
 * up would fail), one a view into a larger buffer at an offset (a store that read `.buffer` whole
 * would fail).
 */
function encodings(seed: number, codings: ReadonlyArray<EncodedBody['coding']> = ['zstd', 'br', 'gzip']): EncodedBody[] {
  return codings.map((coding, i) => {
    const length = 300 + 97 * i + seed;
    const bytes = new Uint8Array(length);
    for (let j = 0; j < length; j++) bytes[j] = (j * 31 + i * 7 + seed) % 256;
    if (i !== 1) return { coding, body: bytes };
    const larger = new Uint8Array(length + 64).fill(0xee);
    larger.set(bytes, 32);
    return { coding, body: larger.subarray(32, 32 + length) };
  });
}

/** The encodings of an entry, as plain data: `[]` for none (absent or empty). */
function encodingsOf(e: StoredEntry | undefined): Array<[string, number[]]> {
  assert.ok(e, 'expected an entry');
  return (e.encodings ?? []).map((x) => [x.coding, [...x.body]]);
}

export function runStoreConformance({ test, create, prefix = 'store conformance: ' }: StoreConformanceOptions): void {
  const t = (name: string, fn: (store: Store) => Promise<void>) =>
    test(prefix + name, async () => {
      const store = await create();
      try {
        await fn(store);
      } finally {
        await store.close?.();
      }
    });

  t('sequence() is a number that reading does not change', async (s) => {
    const a = await s.sequence();
    const b = await s.sequence();
    assert.equal(typeof a, 'number');
    assert.ok(Number.isSafeInteger(a));
    assert.equal(a, b);
  });

  t('get() of an unknown key is undefined', async (s) => {
    assert.equal(await s.get('nope'), undefined);
  });

  t('set() then get() returns the same status, headers, body, etag, tags and times', async (s) => {
    const seq = await s.sequence();
    const e = entry(seq, '/a', { tags: ['/a', 'flavour:1'] });
    assert.equal(await s.set('k:/a', e, LIMITS), true);
    // Read three times: a store may answer later reads from a copy or a tier of its own, which
    // must answer the same entry, its seq the one it was stored with (not a number of its own).
    for (let read = 1; read <= 3; read++) {
      const got = await s.get('k:/a');
      assert.ok(got, `read ${read}`);
      assert.equal(got.status, 200);
      assert.deepEqual([...got.headers], [...e.headers]);
      assert.deepEqual(bytes(got), [...e.body]);
      assert.equal(got.etag, e.etag);
      assert.equal(got.storedAt, e.storedAt);
      assert.equal(got.seq, seq, `read ${read}: seq`);
      assert.equal(got.path, '/a');
      assert.deepEqual([...got.tags], ['/a', 'flavour:1']);
    }
  });

  t('get() answers the seq the entry was stored with, not the current one, however often it is read', async (s) => {
    const first = await s.sequence();
    await s.invalidate(['/other']);
    const second = await s.sequence();
    assert.ok(second > first);
    // Two entries stored at two numbers, neither the current one when they are read.
    assert.equal(await s.set('k:/one', entry(first, '/one'), LIMITS), true);
    assert.equal(await s.set('k:/two?q=1', entry(second, '/two'), VARIANT), true);
    await s.invalidate(['/another']);
    for (let read = 1; read <= 3; read++) {
      assert.equal((await s.get('k:/one'))?.seq, first, `read ${read}`);
      assert.equal((await s.get('k:/two?q=1'))?.seq, second, `read ${read}: the variant`);
    }
  });

  t('binary bodies survive byte for byte', async (s) => {
    const body = new Uint8Array(256 * 4);
    for (let i = 0; i < body.length; i++) body[i] = i % 256;
    await s.set('k:/bin', entry(await s.sequence(), '/bin', { body }), LIMITS);
    assert.deepEqual(bytes(await s.get('k:/bin')), [...body]);
  });

  t('an empty body is stored', async (s) => {
    await s.set('k:/empty', entry(await s.sequence(), '/empty', { body: new Uint8Array(0) }), LIMITS);
    assert.deepEqual(bytes(await s.get('k:/empty')), []);
  });

  t('set() replaces the entry under the same key', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/a', entry(seq, '/a', { body: new Uint8Array([1]) }), LIMITS);
    await s.set('k:/a', entry(seq, '/a', { body: new Uint8Array([2]) }), LIMITS);
    assert.deepEqual(bytes(await s.get('k:/a')), [2]);
  });

  t('invalidate() increases the sequence number and returns it', async (s) => {
    const before = await s.sequence();
    const n = await s.invalidate(['/a']);
    assert.ok(n > before, `expected ${n} > ${before}`);
    assert.equal(await s.sequence(), n);
    const m = await s.invalidate(['/b']);
    assert.ok(m > n);
  });

  t('invalidate() drops every entry carrying a tag, and only those', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/a', entry(seq, '/a'), LIMITS);
    await s.set('k:/a?x=1', entry(seq, '/a'), VARIANT);
    await s.set('k:/b', entry(seq, '/b', { tags: ['/b', 'flavour:1'] }), LIMITS);
    await s.set('k:/c', entry(seq, '/c'), LIMITS);
    await s.invalidate(['/a', 'flavour:1']);
    assert.equal(await s.get('k:/a'), undefined);
    assert.equal(await s.get('k:/a?x=1'), undefined);
    assert.equal(await s.get('k:/b'), undefined);
    assert.ok(await s.get('k:/c'));
  });

  t('invalidate([]) is harmless', async (s) => {
    await s.set('k:/a', entry(await s.sequence(), '/a'), LIMITS);
    await s.invalidate([]);
    assert.ok(await s.get('k:/a'));
  });

  t('a fill that started before an invalidation of one of its tags is refused', async (s) => {
    const seq = await s.sequence();
    await s.invalidate(['flavour:1']);
    const ok = await s.set('k:/a', entry(seq, '/a', { tags: ['/a', 'flavour:1'] }), LIMITS);
    assert.equal(ok, false);
    assert.equal(await s.get('k:/a'), undefined);
  });

  t('a fill that started before an invalidation of an unrelated tag is stored', async (s) => {
    const seq = await s.sequence();
    await s.invalidate(['/other']);
    assert.equal(await s.set('k:/a', entry(seq, '/a'), LIMITS), true);
    assert.ok(await s.get('k:/a'));
  });

  t('a fill that started after the invalidation is stored', async (s) => {
    await s.invalidate(['/a']);
    const seq = await s.sequence();
    assert.equal(await s.set('k:/a', entry(seq, '/a'), LIMITS), true);
    assert.ok(await s.get('k:/a'));
  });

  t('an invalidation racing many fills leaves no fill that started before it', async (s) => {
    const before = await s.sequence();
    const fills = Array.from({ length: 20 }, (_, i) => s.set(`k:/r?i=${i}`, entry(before, '/r'), VARIANT));
    const inv = s.invalidate(['/r']);
    await Promise.all([...fills, inv]);
    for (let i = 0; i < 20; i++) assert.equal(await s.get(`k:/r?i=${i}`), undefined, `variant ${i} survived`);
  });

  t('concurrent invalidations get distinct sequence numbers', async (s) => {
    const seqs = await Promise.all(Array.from({ length: 25 }, (_, i) => s.invalidate([`/p${i}`])));
    assert.equal(new Set(seqs).size, 25);
  });

  t('clear() drops everything and refuses fills that started before it', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/a', entry(seq, '/a'), LIMITS);
    await s.clear();
    assert.equal(await s.get('k:/a'), undefined);
    assert.equal(await s.set('k:/b', entry(seq, '/b'), LIMITS), false);
    assert.equal(await s.set('k:/b', entry(await s.sequence(), '/b'), LIMITS), true);
  });

  // A tag on every page (`layout`): a store may make its entries invalid at once and free them
  // later (the stores of page-dumper do past a thousand entries). Whatever it does, none of them
  // is served, nor stored again by a fill that started before, and what is stored afterwards is.
  const MANY = 2000;
  /** Stores `MANY` entries tagged `layout` (and `k:/keep`, not tagged) at `seq`, a hundred at a time. */
  const fillMany = async (s: Store, seq: number): Promise<void> => {
    for (let from = 0; from < MANY; from += 100) {
      const sets: Array<Promise<boolean> | boolean> = [];
      for (let i = from; i < from + 100; i++) sets.push(s.set(`k:/m${i}`, entry(seq, `/m${i}`, { tags: [`/m${i}`, 'layout'] }), LIMITS));
      assert.ok((await Promise.all(sets)).every(Boolean), 'every entry stored');
    }
    assert.equal(await s.set('k:/keep', entry(seq, '/keep'), LIMITS), true);
  };

  /** How many of the `MANY` entries `get()` answers, a hundred reads at a time. */
  const served = async (s: Store): Promise<number> => {
    let n = 0;
    for (let from = 0; from < MANY; from += 100) {
      const got = await Promise.all(Array.from({ length: 100 }, (_, i) => s.get(`k:/m${from + i}`)));
      n += got.filter((x) => x !== undefined).length;
    }
    return n;
  };

  t('a tag on 2,000 entries: invalidating it drops them all, and entries stored afterwards are kept', async (s) => {
    await fillMany(s, await s.sequence());
    await s.invalidate(['layout']);
    assert.equal(await served(s), 0, 'entries of the invalidated tag served');
    assert.ok(await s.get('k:/keep'), 'an entry without the tag is kept');
    // Stored again after the invalidation (same keys, same tag): served, whatever the store still
    // has to free of the old ones.
    const seq = await s.sequence();
    for (const i of [0, 1, MANY - 1]) assert.equal(await s.set(`k:/m${i}`, entry(seq, `/m${i}`, { tags: [`/m${i}`, 'layout'], body: new Uint8Array([i % 256]) }), LIMITS), true);
    assert.equal(await s.set('k:/new', entry(seq, '/new', { tags: ['/new', 'layout'] }), LIMITS), true);
    for (let read = 0; read < 3; read++) {
      for (const i of [0, 1, MANY - 1]) assert.deepEqual(bytes(await s.get(`k:/m${i}`)), [i % 256], `k:/m${i}, read ${read}`);
      assert.ok(await s.get('k:/new'), `k:/new, read ${read}`);
      assert.equal(await s.get(`k:/m${MANY - 2}`), undefined);
    }
    // Invalidated again: the entries stored since go too.
    await s.invalidate(['layout']);
    assert.equal(await s.get('k:/m0'), undefined);
    assert.equal(await s.get('k:/new'), undefined);
    assert.ok(await s.get('k:/keep'));
  });

  t('a tag on 2,000 entries: a fill that started before its invalidation is refused', async (s) => {
    const seq = await s.sequence();
    await fillMany(s, seq);
    await s.invalidate(['layout']);
    // Rendered before the invalidation, stored after it: a new key and a key that held an entry.
    assert.equal(await s.set('k:/late', entry(seq, '/late', { tags: ['/late', 'layout'] }), LIMITS), false);
    assert.equal(await s.set('k:/m7', entry(seq, '/m7', { tags: ['/m7', 'layout'] }), LIMITS), false);
    assert.equal(await s.get('k:/late'), undefined);
    assert.equal(await s.get('k:/m7'), undefined);
    // Without the tag, the same fill is stored.
    assert.equal(await s.set('k:/other', entry(seq, '/other'), LIMITS), true);
  });

  t('clear() with 2,000 entries: none is served, entries stored afterwards are', async (s) => {
    await fillMany(s, await s.sequence());
    await s.clear();
    assert.equal(await served(s), 0, 'entries from before clear() served');
    assert.equal(await s.get('k:/keep'), undefined);
    const seq = await s.sequence();
    assert.equal(await s.set('k:/m3', entry(seq, '/m3', { tags: ['/m3', 'layout'] }), LIMITS), true);
    for (let read = 0; read < 3; read++) assert.ok(await s.get('k:/m3'), `read ${read}`);
  });

  // maxVariantsPerPath: one more variant evicts one (the least recently used, or in a shared store
  // the least recently stored; with no reads in between both are the oldest), and never refuses.
  // Plain entries are never counted and never evicted for a variant: a flood of junk query
  // strings must neither push the page out nor keep it out.

  t('maxVariantsPerPath: one variant more evicts the oldest variant of the path, never refuses', async (s) => {
    const seq = await s.sequence();
    const two: SetOptions = { maxVariantsPerPath: 2, variant: true };
    assert.equal(await s.set('k:/v?1', entry(seq, '/v'), two), true);
    assert.equal(await s.set('k:/v?2', entry(seq, '/v'), two), true);
    assert.equal(await s.set('k:/v?3', entry(seq, '/v'), two), true, 'a third variant was refused');
    assert.equal(await s.get('k:/v?1'), undefined, 'the oldest variant was kept');
    assert.ok(await s.get('k:/v?2'));
    assert.ok(await s.get('k:/v?3'));
    assert.equal(await s.set('k:/v?4', entry(seq, '/v'), two), true);
    assert.equal(await s.get('k:/v?2'), undefined);
    assert.ok(await s.get('k:/v?3'));
    assert.ok(await s.get('k:/v?4'));
  });

  t('maxVariantsPerPath: the plain entry survives a flood of variants of its path', async (s) => {
    const seq = await s.sequence();
    const four: SetOptions = { maxVariantsPerPath: 4, variant: true };
    const plain: SetOptions = { maxVariantsPerPath: 4, variant: false };
    // Variants first: the plain page is not locked out by them.
    for (let i = 0; i < 10; i++) assert.equal(await s.set(`k:/p?x=${i}`, entry(seq, '/p'), four), true, `variant ${i} was refused`);
    assert.equal(await s.set('k:/p', entry(seq, '/p', { body: new Uint8Array([7]) }), plain), true, 'the plain page was refused');
    // Then a flood: every junk variant is stored, none pushes the plain page out.
    for (let i = 10; i < 300; i++) assert.equal(await s.set(`k:/p?x=${i}`, entry(seq, '/p'), four), true, `variant ${i} was refused`);
    assert.deepEqual(bytes(await s.get('k:/p')), [7], 'the plain page was evicted by variants');
    const kept: number[] = [];
    for (let i = 0; i < 300; i++) if ((await s.get(`k:/p?x=${i}`)) !== undefined) kept.push(i);
    assert.deepEqual(kept, [296, 297, 298, 299]);
    // The plain page can still be stored again.
    assert.equal(await s.set('k:/p', entry(seq, '/p', { body: new Uint8Array([8]) }), plain), true);
    assert.deepEqual(bytes(await s.get('k:/p')), [8]);
  });

  t('maxVariantsPerPath: plain entries of a path are not counted, however many', async (s) => {
    const seq = await s.sequence();
    const one: SetOptions = { maxVariantsPerPath: 1, variant: false };
    // Other hosts and other spellings of one path are plain entries with the same path tag.
    for (const key of ['site1:/a', 'site2:/a', 'site1:/A/', 'site1:/a/']) assert.equal(await s.set(key, entry(seq, '/a'), one), true, key);
    assert.equal(await s.set('site1:/a?q=1', entry(seq, '/a'), { maxVariantsPerPath: 1, variant: true }), true);
    assert.equal(await s.set('site1:/a?q=2', entry(seq, '/a'), { maxVariantsPerPath: 1, variant: true }), true);
    for (const key of ['site1:/a', 'site2:/a', 'site1:/A/', 'site1:/a/', 'site1:/a?q=2']) assert.ok(await s.get(key), `${key} was evicted`);
    assert.equal(await s.get('site1:/a?q=1'), undefined);
  });

  t('maxVariantsPerPath: "variant" is what the options say, never read from the key', async (s) => {
    const seq = await s.sequence();
    const one: SetOptions = { maxVariantsPerPath: 1, variant: true };
    // A key prefix may hold a '?': these are plain pages, never counted nor evicted for variants.
    for (const key of ['cache?v=1:/q', 'cache?v=1:/Q/']) {
      assert.equal(await s.set(key, entry(seq, '/q'), { maxVariantsPerPath: 1, variant: false }), true, key);
    }
    assert.equal(await s.set('cache?v=1:/q?a=1', entry(seq, '/q'), one), true);
    assert.equal(await s.set('cache?v=1:/q?a=2', entry(seq, '/q'), one), true, 'a variant was refused');
    for (const key of ['cache?v=1:/q', 'cache?v=1:/Q/', 'cache?v=1:/q?a=2']) assert.ok(await s.get(key), `${key} was evicted`);
    assert.equal(await s.get('cache?v=1:/q?a=1'), undefined, 'the older variant was kept');
  });

  t('maxVariantsPerPath: replacing a variant is not one more variant', async (s) => {
    const seq = await s.sequence();
    const two: SetOptions = { maxVariantsPerPath: 2, variant: true };
    assert.equal(await s.set('k:/v?1', entry(seq, '/v'), two), true);
    assert.equal(await s.set('k:/v?2', entry(seq, '/v', { body: new Uint8Array([2]) }), two), true);
    for (let round = 0; round < 3; round++) {
      assert.equal(await s.set('k:/v?1', entry(seq, '/v', { body: new Uint8Array([10 + round]) }), two), true);
      assert.equal(await s.set('k:/v?2', entry(seq, '/v', { body: new Uint8Array([20 + round]) }), two), true);
    }
    assert.deepEqual(bytes(await s.get('k:/v?1')), [12]);
    assert.deepEqual(bytes(await s.get('k:/v?2')), [22]);
  });

  t('maxVariantsPerPath: variants of other paths are not counted', async (s) => {
    const seq = await s.sequence();
    const two: SetOptions = { maxVariantsPerPath: 2, variant: true };
    for (const path of ['/v', '/w', '/x']) {
      for (let i = 0; i < 2; i++) assert.equal(await s.set(`k:${path}?${i}`, entry(seq, path), two), true);
    }
    for (const path of ['/v', '/w', '/x']) for (let i = 0; i < 2; i++) assert.ok(await s.get(`k:${path}?${i}`), `${path}?${i} was evicted`);
  });

  t('anonymousOnly: true is kept with the entry', async (s) => {
    const seq = await s.sequence();
    assert.equal(await s.set('k:/anon', entry(seq, '/anon', { anonymousOnly: true }), LIMITS), true);
    assert.equal(await s.set('k:/anon?q=1', entry(seq, '/anon', { anonymousOnly: true }), VARIANT), true);
    assert.equal((await s.get('k:/anon'))?.anonymousOnly, true);
    assert.equal((await s.get('k:/anon?q=1'))?.anonymousOnly, true);
    // Read again (a store may answer the second read from a copy of the first).
    assert.equal((await s.get('k:/anon'))?.anonymousOnly, true);
  });

  t('anonymousOnly: absent or false comes back as not anonymous-only', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/absent', entry(seq, '/absent'), LIMITS);
    await s.set('k:/false', entry(seq, '/false', { anonymousOnly: false }), LIMITS);
    for (const key of ['k:/absent', 'k:/false']) {
      const got = await s.get(key);
      assert.ok(got, key);
      assert.notEqual(got.anonymousOnly, true, `${key} came back anonymousOnly`);
      assert.ok(got.anonymousOnly === undefined || got.anonymousOnly === false, `${key}: anonymousOnly is ${String(got.anonymousOnly)}`);
    }
  });

  t('anonymousOnly: replacing an entry replaces its flag', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/r', entry(seq, '/r', { anonymousOnly: true }), LIMITS);
    await s.set('k:/r', entry(seq, '/r'), LIMITS);
    assert.notEqual((await s.get('k:/r'))?.anonymousOnly, true);
    await s.set('k:/r', entry(seq, '/r', { anonymousOnly: true }), LIMITS);
    assert.equal((await s.get('k:/r'))?.anonymousOnly, true);
  });

  // encodings: the body compressed, stored first without them, then set again with them. The store
  // keeps them with the entry, as they were given, and drops them with it.

  t('encodings: kept with the entry, in order, coding names and bytes exactly', async (s) => {
    const seq = await s.sequence();
    const given = encodings(1);
    assert.equal(await s.set('k:/enc', entry(seq, '/enc', { encodings: given }), LIMITS), true);
    assert.equal(await s.set('k:/enc?q=1', entry(seq, '/enc', { encodings: encodings(2, ['gzip']), anonymousOnly: true }), VARIANT), true);
    const expected = given.map((e): [string, number[]] => [e.coding, [...e.body]]);
    // Read twice: a store may answer the second read from a copy of the first.
    for (let read = 0; read < 2; read++) {
      const got = await s.get('k:/enc');
      assert.deepEqual(encodingsOf(got), expected, `read ${read + 1}`);
      assert.deepEqual(bytes(got), [...new TextEncoder().encode('<h1>/enc</h1>')], `read ${read + 1}: the body`);
      const variant = await s.get('k:/enc?q=1');
      assert.deepEqual(encodingsOf(variant), [['gzip', [...encodings(2, ['gzip'])[0]!.body]]], `read ${read + 1}: the variant`);
      assert.equal(variant?.anonymousOnly, true);
    }
  });

  t('encodings: absent or empty come back as none', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/absent', entry(seq, '/absent'), LIMITS);
    await s.set('k:/empty', entry(seq, '/empty', { encodings: [] }), LIMITS);
    for (const key of ['k:/absent', 'k:/empty', 'k:/absent', 'k:/empty']) assert.deepEqual(encodingsOf(await s.get(key)), [], key);
  });

  t('encodings: the same entry set again with them replaces it and is served, plain page or variant', async (s) => {
    const seq = await s.sequence();
    const two: SetOptions = { maxVariantsPerPath: 2, variant: true };
    const one: SetOptions = { maxVariantsPerPath: 1, variant: false };
    const plain = entry(seq, '/re', { tags: ['/re', 'flavour:1'] });
    const variant = entry(seq, '/re', { body: new Uint8Array([9, 9]) });
    assert.equal(await s.set('k:/re', plain, one), true);
    assert.equal(await s.set('k:/re?v=1', variant, two), true);
    assert.equal(await s.set('k:/re?v=2', entry(seq, '/re', { body: new Uint8Array([2]) }), two), true);
    // Served once without encodings (a store may keep a copy of what it served).
    assert.deepEqual(encodingsOf(await s.get('k:/re')), []);
    assert.deepEqual(encodingsOf(await s.get('k:/re?v=1')), []);
    // Set again, with the limits the first set had: the same entry with its encodings.
    assert.equal(await s.set('k:/re', { ...plain, encodings: encodings(3) }, one), true, 'the plain page with encodings was refused');
    assert.equal(await s.set('k:/re?v=1', { ...variant, encodings: encodings(4, ['br']) }, two), true, 'the variant with encodings was refused');
    const page = await s.get('k:/re');
    assert.deepEqual(encodingsOf(page), encodingsOf({ ...plain, encodings: encodings(3) }));
    assert.deepEqual(bytes(page), [...plain.body]);
    assert.deepEqual([...page!.tags], ['/re', 'flavour:1']);
    assert.deepEqual(encodingsOf(await s.get('k:/re?v=1')), [['br', [...encodings(4, ['br'])[0]!.body]]]);
    assert.deepEqual(bytes(await s.get('k:/re?v=1')), [9, 9]);
    // Replacing a variant is not one more: the other variant of the path is still there.
    assert.deepEqual(bytes(await s.get('k:/re?v=2')), [2], 'another variant of the path was evicted');
    // A later set without encodings (a new render) leaves none of the old ones behind.
    assert.equal(await s.set('k:/re', entry(seq, '/re', { body: new Uint8Array([5]) }), one), true);
    assert.deepEqual(encodingsOf(await s.get('k:/re')), [], 'encodings of the replaced entry were served with the new body');
    assert.deepEqual(bytes(await s.get('k:/re')), [5]);
  });

  t('encodings: the set with them is refused once one of the entry\'s tags was invalidated after its seq', async (s) => {
    const seq = await s.sequence();
    const e = entry(seq, '/inv', { tags: ['/inv', 'flavour:1'] });
    assert.equal(await s.set('k:/inv', e, LIMITS), true);
    assert.equal(await s.set('k:/inv?q=1', entry(seq, '/inv', { tags: ['/inv', 'flavour:1'] }), VARIANT), true);
    assert.ok(await s.get('k:/inv'));
    await s.invalidate(['flavour:1']);
    assert.equal(await s.set('k:/inv', { ...e, encodings: encodings(5) }, LIMITS), false, 'a stale entry was stored again with its encodings');
    assert.equal(await s.set('k:/inv?q=1', entry(seq, '/inv', { tags: ['/inv', 'flavour:1'], encodings: encodings(5) }), VARIANT), false);
    assert.equal(await s.get('k:/inv'), undefined);
    assert.equal(await s.get('k:/inv?q=1'), undefined);
  });

  t('encodings: the entry get() answers, set again with them, is stored while valid and refused once a tag was invalidated', async (s) => {
    const seq = await s.sequence();
    assert.equal(await s.set('k:/got', entry(seq, '/got', { tags: ['/got', 'flavour:1'] }), LIMITS), true);
    assert.equal(await s.set('k:/got?q=1', entry(seq, '/got', { tags: ['/got', 'flavour:2'] }), VARIANT), true);
    // What the dumper does with an entry it served without encodings: the entry as get()
    // answered it (read twice, the second read may come from a copy), set again with them.
    await s.get('k:/got');
    const got = await s.get('k:/got');
    assert.ok(got);
    assert.equal(await s.set('k:/got', { ...got, encodings: encodings(10) }, LIMITS), true, 'a valid entry from get() was refused');
    assert.equal(encodingsOf(await s.get('k:/got')).length, 3);
    await s.get('k:/got?q=1');
    const variant = await s.get('k:/got?q=1');
    assert.ok(variant);
    const again = await s.get('k:/got');
    assert.ok(again);
    await s.invalidate(['flavour:1', 'flavour:2']);
    assert.equal(await s.set('k:/got', { ...again, encodings: encodings(11) }, LIMITS), false, 'a stale entry from get() was stored again');
    assert.equal(await s.set('k:/got?q=1', { ...variant, encodings: encodings(12) }, VARIANT), false, 'a stale variant from get() was stored again');
    assert.equal(await s.get('k:/got'), undefined);
    assert.equal(await s.get('k:/got?q=1'), undefined);
  });

  t('encodings: the set with them is refused after clear()', async (s) => {
    const seq = await s.sequence();
    const e = entry(seq, '/clr');
    assert.equal(await s.set('k:/clr', e, LIMITS), true);
    assert.ok(await s.get('k:/clr'));
    await s.clear();
    assert.equal(await s.set('k:/clr', { ...e, encodings: encodings(6) }, LIMITS), false, 'an entry from before clear() was stored again');
    assert.equal(await s.get('k:/clr'), undefined);
  });

  t('encodings: invalidate() drops them with the entry', async (s) => {
    const seq = await s.sequence();
    assert.equal(await s.set('k:/drop', entry(seq, '/drop', { encodings: encodings(7) }), LIMITS), true);
    assert.equal(await s.set('k:/drop?q=1', entry(seq, '/drop', { encodings: encodings(8) }), VARIANT), true);
    assert.equal(await s.set('k:/keep', entry(seq, '/keep', { encodings: encodings(9) }), LIMITS), true);
    assert.equal(encodingsOf(await s.get('k:/drop')).length, 3);
    await s.invalidate(['/drop']);
    assert.equal(await s.get('k:/drop'), undefined);
    assert.equal(await s.get('k:/drop?q=1'), undefined);
    assert.deepEqual(encodingsOf(await s.get('k:/keep')), encodingsOf({ ...entry(seq, '/keep'), encodings: encodings(9) }));
    // Rendered again after the invalidation, without encodings yet: none of the old ones come back.
    const after = await s.sequence();
    assert.equal(await s.set('k:/drop', entry(after, '/drop', { body: new Uint8Array([1]) }), LIMITS), true);
    assert.equal(await s.set('k:/drop?q=1', entry(after, '/drop', { body: new Uint8Array([2]) }), VARIANT), true);
    assert.deepEqual(encodingsOf(await s.get('k:/drop')), []);
    assert.deepEqual(encodingsOf(await s.get('k:/drop?q=1')), []);
  });

  // ---------------------------------------------------------------- the purge queue (optional)
  // A store with the queue methods has all five, and they keep their contract (see
  // `PurgeQueueStore`). A store without them skips nothing here: these cases assert it has none.
  const q = (name: string, fn: (store: Store & PurgeQueueStore) => Promise<void>) =>
    t(name, async (s) => {
      const some = ['queuePush', 'queueClaim', 'queueAck', 'queueRetry', 'queueStats'].filter((m) => typeof (s as unknown as Record<string, unknown>)[m] === 'function');
      if (!hasQueue(s)) {
        assert.deepEqual(some, [], 'a store has all five queue methods or none');
        return;
      }
      await fn(s);
    });

  q('queue: push hands out increasing ids; claim takes due items once per lease; ack removes them', async (s) => {
    const now = 1_800_000_000_000;
    const ids = [...(await s.queuePush('q1', ['a', 'b', 'c'], now))];
    assert.equal(ids.length, 3);
    assert.ok(ids[0]! < ids[1]! && ids[1]! < ids[2]!, `ids not increasing: ${ids.join(',')}`);
    const more = await s.queuePush('q1', ['d'], now + 60_000);
    assert.ok(more[0]! > ids[2]!);
    assert.deepEqual(await s.queueStats('q1'), { size: 4, firstId: ids[0], lastId: more[0], nextDue: now });
    const first = await s.queueClaim('q1', { max: 2, now, lease: 1000 });
    assert.equal(first.length, 2);
    assert.ok(first.every((i) => i.attempts === 1));
    const second = await s.queueClaim('q1', { max: 10, now, lease: 1000 });
    assert.deepEqual(
      [...first, ...second].map((i) => i.payload).sort(),
      ['a', 'b', 'c'],
      'every due item is claimed once, none that is not due yet',
    );
    assert.deepEqual(await s.queueClaim('q1', { max: 10, now: now + 999, lease: 1000 }), [], 'claimed items are invisible while their lease runs');
    await s.queueAck('q1', first.map((i) => i.id));
    // The lease ran out: what was not acknowledged is claimed again, its attempt counted.
    const again = await s.queueClaim('q1', { max: 10, now: now + 1000, lease: 1000 });
    assert.deepEqual(again.map((i) => [i.id, i.payload, i.attempts]), second.map((i) => [i.id, i.payload, 2]));
    await s.queueAck('q1', again.map((i) => i.id));
    const stats = await s.queueStats('q1');
    assert.deepEqual(stats, { size: 1, firstId: more[0], lastId: more[0], nextDue: now + 60_000 });
    const late = await s.queueClaim('q1', { max: 10, now: now + 60_000, lease: 1000 });
    assert.deepEqual(late.map((i) => i.payload), ['d']);
    await s.queueAck('q1', [late[0]!.id, 999_999_999]);
    assert.deepEqual(await s.queueStats('q1'), { size: 0, firstId: undefined, lastId: undefined, nextDue: undefined });
  });

  q('queue: retry makes items due later; queues are separate; clear() keeps them', async (s) => {
    const now = 1_800_000_000_000;
    await s.queuePush('qa', ['x', 'y'], now);
    await s.queuePush('qb', ['z'], now);
    const claimed = await s.queueClaim('qa', { max: 10, now, lease: 30_000 });
    assert.deepEqual(claimed.map((i) => i.payload).sort(), ['x', 'y']);
    await s.queueRetry('qa', claimed.map((i) => i.id), now + 5000);
    assert.equal((await s.queueStats('qa')).nextDue, now + 5000);
    assert.deepEqual(await s.queueClaim('qa', { max: 10, now: now + 4999, lease: 30_000 }), []);
    await s.clear();
    const back = await s.queueClaim('qa', { max: 10, now: now + 5000, lease: 30_000 });
    assert.deepEqual(back.map((i) => [i.payload, i.attempts]).sort(), [['x', 2], ['y', 2]]);
    const other = await s.queueClaim('qb', { max: 10, now, lease: 30_000 });
    assert.deepEqual(other.map((i) => i.payload), ['z']);
    // A retry of an item already acknowledged does not bring it back.
    await s.queueAck('qb', [other[0]!.id]);
    await s.queueRetry('qb', [other[0]!.id], now);
    assert.equal((await s.queueStats('qb')).size, 0);
  });

  q('queue: a claim of fewer than are due takes some of the due items (any order), the next the others; never one not due', async (s) => {
    const now = 1_800_000_000_000;
    // Pushed in one order, due in the other: a store may hand them out by id or by due time.
    await s.queuePush('qo', ['later'], now + 1000);
    await s.queuePush('qo', ['sooner'], now);
    await s.queuePush('qo', ['not due'], now + 60_000);
    const first = await s.queueClaim('qo', { max: 1, now: now + 2000, lease: 30_000 });
    assert.equal(first.length, 1);
    const second = await s.queueClaim('qo', { max: 1, now: now + 2000, lease: 30_000 });
    assert.equal(second.length, 1);
    assert.deepEqual([first[0]!.payload, second[0]!.payload].sort(), ['later', 'sooner']);
    assert.deepEqual(await s.queueClaim('qo', { max: 10, now: now + 2000, lease: 30_000 }), [], 'an item not yet due is not claimed');
  });

  q('queue: payloads come back byte for byte', async (s) => {
    const payloads = ['/ice-cream', 'pd.h.AbC-_9', 'tag with spaces, commas', 'é ünïcode ✓', 'x'.repeat(2000)];
    await s.queuePush('qp', payloads, 0);
    const got = await s.queueClaim('qp', { max: 100, now: 1, lease: 1 });
    assert.deepEqual(got.map((i) => i.payload).sort(), [...payloads].sort());
  });

  // ---------------------------------------------------------------- enumeration (optional)
  // A store with `entries()` and `info()` keeps their contract (see `EnumerableStore`); a store
  // without them skips nothing here: these cases assert it has neither.
  const e = (name: string, fn: (store: Store & EnumerableStore) => Promise<void>) =>
    t(name, async (s) => {
      const some = ['entries', 'info'].filter((m) => typeof (s as unknown as Record<string, unknown>)[m] === 'function');
      if (!isEnumerable(s)) {
        assert.deepEqual(some, [], 'a store has both enumeration methods or neither');
        return;
      }
      await fn(s);
    });
  /** Every entry listed, page after page of `limit`, each page checked to hold at most `limit`. */
  const all = async (s: Store & EnumerableStore, options: Omit<EntryListOptions, 'cursor'> = {}): Promise<EntryInfo[]> => {
    const out: EntryInfo[] = [];
    let cursor: string | undefined;
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 1000, 'entries() keeps answering cursors');
      const page = await s.entries({ ...options, cursor });
      assert.ok(page.entries.length <= (options.limit ?? 100), `a page of ${page.entries.length} entries, limit ${options.limit ?? 100}`);
      out.push(...page.entries);
      cursor = page.cursor;
      if (cursor === undefined) return out;
      assert.equal(typeof cursor, 'string');
    }
  };
  const keysOf = (list: readonly EntryInfo[]) => list.map((x) => x.key).sort();

  e('entries(): every entry once, over pages, with its metadata and no body; info() counts them', async (s) => {
    const empty = await s.info();
    assert.equal(empty.entries, 0);
    assert.equal(empty.sequence, await s.sequence());
    const seq = await s.sequence();
    const keys: string[] = [];
    for (let i = 0; i < 7; i++) {
      const key = `k:/p${i}`;
      keys.push(key);
      assert.equal(await s.set(key, entry(seq, `/p${i}`, { tags: [`/p${i}`, 'site', `n:${i % 2}`], storedAt: 1_700_000_000_000 + i }), LIMITS), true);
    }
    assert.equal(await s.set('k:/p0?x=1', entry(seq, '/p0', { body: new Uint8Array(10) }), VARIANT), true);
    keys.push('k:/p0?x=1');
    for (const limit of [1, 3, 100]) {
      const listed = await all(s, { limit });
      assert.deepEqual(keysOf(listed), [...keys].sort(), `limit ${limit}`);
    }
    const listed = await all(s);
    const p3 = listed.find((x) => x.key === 'k:/p3')!;
    const stored = entry(seq, '/p3', { tags: ['/p3', 'site', 'n:1'], storedAt: 1_700_000_000_003 });
    assert.equal(p3.status, 200);
    assert.deepEqual([...p3.headers], [...stored.headers]);
    assert.equal(p3.etag, stored.etag);
    assert.equal(p3.storedAt, 1_700_000_000_003);
    assert.equal(p3.seq, seq);
    assert.equal(p3.path, '/p3');
    assert.deepEqual([...p3.tags], ['/p3', 'site', 'n:1']);
    assert.equal(p3.anonymousOnly, false);
    assert.equal(p3.bodyBytes, stored.body.byteLength);
    assert.deepEqual(p3.encodings, []);
    assert.ok(p3.bytes >= stored.body.byteLength, 'bytes counts at least the body');
    assert.equal((p3 as unknown as Record<string, unknown>).body, undefined, 'no body');
    assert.equal(listed.find((x) => x.key === 'k:/p0?x=1')!.bodyBytes, 10);
    const info = await s.info();
    assert.equal(info.entries, 8);
    assert.ok(info.bytes >= listed.reduce((n, x) => n + x.bodyBytes, 0));
    // /p0 … /p6, site, n:0, n:1.
    assert.equal(info.tags, 10);
    assert.equal(info.sequence, await s.sequence());
  });

  e('entries(): filtered by tag, by path prefix, by both', async (s) => {
    const seq = await s.sequence();
    const put = (key: string, path: string, tags: string[] = []) => s.set(key, entry(seq, path, { tags: [path, ...tags] }), LIMITS);
    await put('k:/blog', '/blog', ['post:1']);
    await put('k:/blog/one', '/blog/one', ['post:1', 'author:a']);
    // Prefix tags as prefixInvalidation makes them: tags in the range of the path prefix too.
    await put('k:/blog/two', '/blog/two', ['post:2', 'author:a', '/*', '/blog/*']);
    await put('k:/blogroll', '/blogroll');
    await put('k:/shop/blog', '/shop/blog', ['author:a']);
    await put('k:/', '/', ['post:2']);
    for (const limit of [1, 2, 100]) {
      assert.deepEqual(keysOf(await all(s, { tag: 'author:a', limit })), ['k:/blog/one', 'k:/blog/two', 'k:/shop/blog'], `tag, limit ${limit}`);
      assert.deepEqual(keysOf(await all(s, { pathPrefix: '/blog', limit })), ['k:/blog', 'k:/blog/one', 'k:/blog/two', 'k:/blogroll'], `prefix, limit ${limit}`);
      assert.deepEqual(keysOf(await all(s, { pathPrefix: '/blog/', limit })), ['k:/blog/one', 'k:/blog/two'], `prefix with slash, limit ${limit}`);
      assert.deepEqual(keysOf(await all(s, { pathPrefix: '/blog/', tag: 'post:1', limit })), ['k:/blog/one'], `both, limit ${limit}`);
    }
    // A prefix tag of another page (`/blog/*`) is not a path: it lists nothing of its own.
    await put('k:/x', '/x', ['/blog/*']);
    assert.deepEqual(keysOf(await all(s, { pathPrefix: '/blog/' })), ['k:/blog/one', 'k:/blog/two']);
    assert.deepEqual(keysOf(await all(s, { tag: 'nothing' })), []);
    assert.deepEqual(keysOf(await all(s, { pathPrefix: '/nothing' })), []);
  });

  e('entries(): never an entry get() would not answer (invalidated, cleared)', async (s) => {
    const seq = await s.sequence();
    await s.set('k:/a', entry(seq, '/a', { tags: ['/a', 'x'] }), LIMITS);
    await s.set('k:/b', entry(seq, '/b', { tags: ['/b', 'y'] }), LIMITS);
    await s.set('k:/c', entry(seq, '/c', { tags: ['/c', 'x'] }), LIMITS);
    await s.invalidate(['x']);
    assert.deepEqual(keysOf(await all(s)), ['k:/b']);
    assert.deepEqual(keysOf(await all(s, { tag: 'x' })), []);
    assert.equal((await s.info()).entries, 1);
    await s.clear();
    assert.deepEqual(keysOf(await all(s)), []);
    assert.deepEqual(keysOf(await all(s, { pathPrefix: '/' })), []);
    assert.deepEqual(keysOf(await all(s, { tag: 'y' })), []);
    const info = await s.info();
    assert.equal(info.entries, 0);
    assert.equal(info.bytes, 0);
  });

  e('entries(): a tag on 2,000 entries invalidated, or a clear(): none listed nor counted', async (s) => {
    await fillMany(s, await s.sequence());
    const keep = (await all(s, { pathPrefix: '/keep' }))[0];
    assert.ok(keep);
    await s.invalidate(['layout']);
    assert.deepEqual(keysOf(await all(s, { limit: 500 })), ['k:/keep']);
    assert.deepEqual(keysOf(await all(s, { tag: 'layout' })), []);
    assert.deepEqual(keysOf(await all(s, { pathPrefix: '/m1' })), []);
    let info = await s.info();
    assert.equal(info.entries, 1);
    assert.equal(info.bytes, keep.bytes);
    const seq = await s.sequence();
    await s.set('k:/m5', entry(seq, '/m5', { tags: ['/m5', 'layout'] }), LIMITS);
    assert.deepEqual(keysOf(await all(s, { tag: 'layout' })), ['k:/m5']);
    assert.equal((await s.info()).entries, 2);
    await fillMany(s, await s.sequence());
    await s.clear();
    assert.deepEqual(keysOf(await all(s, { limit: 500 })), []);
    info = await s.info();
    assert.equal(info.entries, 0);
    assert.equal(info.bytes, 0);
  });

  e('entries(): encodings by coding and size, the anonymous-only flag', async (s) => {
    const seq = await s.sequence();
    const enc = encodings(3, ['br', 'gzip']);
    await s.set('k:/e', entry(seq, '/e', { encodings: enc, anonymousOnly: true }), LIMITS);
    const [x] = await all(s);
    assert.ok(x);
    assert.deepEqual(x.encodings, enc.map((c) => ({ coding: c.coding, bytes: c.body.byteLength })));
    assert.equal(x.anonymousOnly, true);
    assert.ok(x.bytes >= x.bodyBytes + enc.reduce((n, c) => n + c.body.byteLength, 0), 'bytes counts the encoded bodies');
    assert.ok((await s.info()).bytes >= x.bytes - 1024, 'info() counts them too');
  });

  t('entries of other keys are independent', async (s) => {
    const seq = await s.sequence();
    await s.set('site1:/a', entry(seq, '/a', { body: new Uint8Array([1]) }), LIMITS);
    await s.set('site2:/a', entry(seq, '/a', { body: new Uint8Array([2]) }), LIMITS);
    assert.deepEqual(bytes(await s.get('site1:/a')), [1]);
    assert.deepEqual(bytes(await s.get('site2:/a')), [2]);
  });
}
