// MemoryStore: an invalidation whose tags reach more than 1,000 entries together (many paths of an
// entry each) is lazy, as one tag on many entries is (test/stores/lazy-invalidation.test.ts): the
// entries are invalid at once and freed afterwards, in bounded slices.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import { makeEntry, shardOf } from '../../src/stores/memory/index.js';
import { pageEntry, storeLimits } from '../support/entries.js';

const limits = storeLimits;
const entry = (path: string, seq: number, tags: string[] = [path]) => pageEntry(path, seq, tags);
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const paths = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `/p${from + i}`);

/** Turns of the event loop until the store holds `size` entries, with the entries freed in each. */
async function freedTo(s: MemoryStore, size: number): Promise<number[]> {
  const slices: number[] = [];
  let before = s.size;
  while (s.size > size) {
    await turn();
    slices.push(before - s.size);
    before = s.size;
    expect(slices.length).toBeLessThan(100);
  }
  return slices;
}

describe('MemoryStore: many paths in one invalidation', () => {
  test('5,000 paths of an entry each: invalid at once, none freed in the call, freed in slices of at most 2,000', async () => {
    const s = new MemoryStore();
    for (let i = 0; i < 10; i++) s.set(`k:/keep${i}`, entry(`/keep${i}`, 0), limits);
    const left = s.bytes;
    for (const p of paths(5000)) s.set(`k:${p}`, entry(p, 0), limits);
    const inFlight = s.sequence();
    s.invalidate(paths(5000));
    expect(s.size).toBe(5010);
    expect(s.entries({ limit: 10_000 }).entries.map((e) => e.key).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `k:/keep${i}`).sort());
    expect(s.get('k:/p4999')).toBeUndefined();
    expect(s.get('k:/p0')).toBeUndefined();
    expect(s.size).toBe(5008); // the entries read were freed by the read
    // A fill that started before the invalidation is refused; one that started after is kept.
    expect(s.set('k:/p1', entry('/p1', inFlight), limits)).toBe(false);
    expect(s.set('k:/p2', entry('/p2', s.sequence()), limits)).toBe(true);
    const slices = await freedTo(s, 11);
    expect(Math.max(...slices)).toBeLessThanOrEqual(2000);
    expect(slices.length).toBeGreaterThanOrEqual(3);
    expect(s.size).toBe(11);
    expect(s.get('k:/p2')).toBeDefined();
    expect(s.get('k:/keep9')).toBeDefined();
    s.delete('k:/p2');
    expect(s.bytes).toBe(left);
    expect(s.info()).toMatchObject({ entries: 10, tags: 10 });
  });

  test('an entry stored again during the freeing is kept, served, and listed under its tag', async () => {
    const s = new MemoryStore();
    for (const p of paths(3000)) s.set(`k:${p}`, entry(p, 0), limits);
    s.invalidate(paths(3000));
    for (const p of ['/p0', '/p1500', '/p2999']) s.set(`k:${p}`, entry(p, s.sequence()), limits);
    await freedTo(s, 3);
    for (const p of ['/p0', '/p1500', '/p2999']) {
      expect(s.get(`k:${p}`)).toBeDefined();
      expect(s.entries({ tag: p }).entries.map((e) => e.key)).toEqual([`k:${p}`]);
    }
    // And, once the freeing is over (it forgets its marks in its last slice, which may come a turn
    // after the last entry it freed: `info()` finishes it), a second invalidation of them frees
    // them (three entries: at once).
    expect(s.info().entries).toBe(3);
    s.invalidate(['/p0', '/p1500', '/p2999']);
    expect(s.size).toBe(0);
  });

  test('more than 1,000 tags with a shared one: an entry stored since under the shared tag stays listed, and is reached by its next invalidation', async () => {
    const s = new MemoryStore();
    for (const p of paths(1500)) s.set(`k:${p}`, entry(p, 0, [p, 'site']), limits);
    s.invalidate(['site', ...paths(1500)]); // 'site' first: its Set leaves the index with /new in it
    s.set('k:/new', entry('/new', s.sequence(), ['/new', 'site']), limits);
    expect(s.entries({ tag: 'site' }).entries.map((e) => e.key)).toEqual(['k:/new']);
    expect(s.get('k:/p3')).toBeUndefined();
    await freedTo(s, 1);
    expect(s.entries({ tag: 'site' }).entries.map((e) => e.key)).toEqual(['k:/new']);
    expect(s.info()).toMatchObject({ entries: 1, tags: 2 });
    s.invalidate(['site']);
    expect(s.size).toBe(0);
    expect(s.info()).toMatchObject({ entries: 0, tags: 0 });
  });

  test('the entries counted are those of all the tags together: 1,000 are freed in the call, 1,001 after it; more than 1,000 tags are marked', () => {
    const s = new MemoryStore();
    for (const p of paths(1001)) s.set(`k:${p}`, entry(p, 0), limits);
    s.invalidate(paths(1000));
    expect(s.size).toBe(1);
    for (const p of paths(1000)) s.set(`k:${p}`, entry(p, s.sequence()), limits);
    s.invalidate(paths(1001));
    expect(s.size).toBe(1001);
    expect(s.entries().entries).toEqual([]);
    // Tags shared: two tags on 600 entries each reach 1,200 entries (counted per tag).
    const t = new MemoryStore();
    for (const p of paths(600)) t.set(`k:${p}`, entry(p, 0, [p, 'a', 'b']), limits);
    t.invalidate(['a', 'b']);
    expect(t.size).toBe(600);
    expect(t.get('k:/p0')).toBeUndefined();
    expect(t.info().entries).toBe(0);
    // More tags than 1,000, whatever they carry: marked, not looked up in the call.
    const u = new MemoryStore();
    u.set('k:/x', entry('/x', 0), limits);
    u.set('k:/y', entry('/y', 0), limits);
    u.invalidate([...paths(1500, 50_000), '/x']);
    expect(u.size).toBe(2);
    expect(u.get('k:/x')).toBeUndefined();
    expect(u.info()).toMatchObject({ entries: 1, tags: 1 });
    expect(u.get('k:/y')).toBeDefined();
  });

  test('keys alike at their end (the same query string) are spread over the shards of the indexes', () => {
    for (const end of ['?page=2', '?sort=price&page=2', '']) {
      const used = new Set(Array.from({ length: 2000 }, (_, i) => shardOf(`dumper.cached_path.shop.test/products/${i}${end}`)));
      expect(used.size).toBe(64);
    }
  });

  test('a tag on more entries than one Set holds (4,096): listed, reached and freed as its entries come and go', async () => {
    const s = new MemoryStore();
    const site = (p: string, seq = 0) => entry(p, seq, [p, 'site']);
    const listed = () => s.entries({ tag: 'site', limit: 100_000 }).entries.map((e) => e.key);
    for (const p of paths(6000)) s.set(`k:${p}`, site(p), limits);
    for (let i = 0; i < 100; i++) s.set(`k:/q${i}?page=2`, site(`/q${i}`), { maxVariantsPerPath: 2, variant: true });
    expect(listed()).toHaveLength(6100);
    // 500 paths: freed in the call, each key taken out of the tag's keys.
    s.invalidate(paths(500));
    expect(s.size).toBe(5600);
    expect(listed()).toEqual([...paths(5500, 500).map((p) => `k:${p}`), ...Array.from({ length: 100 }, (_, i) => `k:/q${i}?page=2`)]);
    for (const p of paths(500)) s.set(`k:${p}`, site(p, s.sequence()), limits);
    expect(new Set(listed()).size).toBe(6100);
    // 6,099 paths: lazy; once freed, the tag lists its one entry left, and reaches it.
    s.invalidate([...paths(5999, 1), ...Array.from({ length: 100 }, (_, i) => `/q${i}`)]);
    await freedTo(s, 1);
    expect(listed()).toEqual(['k:/p0']);
    expect(s.info()).toMatchObject({ entries: 1, tags: 2 });
    // Filled again past 4,096, then the tag itself, lazily: nothing of it served, all of it freed.
    for (const p of paths(5000, 1)) s.set(`k:${p}`, site(p, s.sequence()), limits);
    const before = s.sequence();
    s.invalidate(['site']);
    s.set('k:/after', site('/after', s.sequence()), limits);
    expect(s.set('k:/late', site('/late', before), limits)).toBe(false);
    expect(s.get('k:/p0')).toBeUndefined();
    expect(s.get('k:/p4999')).toBeUndefined();
    await freedTo(s, 1);
    expect(listed()).toEqual(['k:/after']);
    expect(s.info()).toMatchObject({ entries: 1, tags: 2 });
    // Its keys counted right as they go: 5,000, of which 4,500 invalidated by their paths (at once,
    // 900 a call), leave 500, which an invalidation of the tag reaches at once (up to 1,000 are).
    s.clear();
    for (const p of paths(5000)) s.set(`k:${p}`, site(p, s.sequence()), limits);
    for (let from = 0; from < 4500; from += 900) s.invalidate(paths(900, from));
    expect(s.size).toBe(500);
    s.invalidate(['site']);
    expect(s.size).toBe(0);
  });

  test('info() finishes the freeing; clear() ends it; the tags left in the index are those stored since', async () => {
    const s = new MemoryStore();
    for (const p of paths(2500)) s.set(`k:${p}`, entry(p, 0, [p, 'site']), limits);
    s.invalidate(paths(2500));
    s.set('k:/new', entry('/new', s.sequence(), ['/new', 'site']), limits);
    expect(s.info()).toMatchObject({ entries: 1, tags: 2 });
    expect(s.entries({ tag: 'site' }).entries.map((e) => e.key)).toEqual(['k:/new']);
    for (const p of paths(2500, 10_000)) s.set(`k:${p}`, entry(p, s.sequence()), limits);
    s.invalidate(paths(2500, 10_000));
    s.clear();
    expect(s.size).toBe(0);
    for (const p of paths(5)) s.set(`k:${p}`, entry(p, s.sequence()), limits);
    await turn();
    await turn();
    expect(s.size).toBe(5);
    expect(s.bytes).toBeGreaterThan(0);
  });
});

// A later invalidation of a tag whose earlier lazy invalidation is still being freed: the entries
// stored in between, held only by that freeing, are never served.
const laterOpts = { variant: false, maxVariantsPerPath: 100 };
const laterTurn = () => new Promise<void>((r) => setImmediate(r));
function laterEntry(store: MemoryStore, path: string, tags: string[]) {
  return makeEntry({ status: 200, headers: ['etag', '"x"'], body: new Uint8Array(4), etag: '"x"', storedAt: 0, seq: store.sequence(), path, tags: [path, ...tags] });
}
describe('MemoryStore: many-tag lazy invalidation + later eager invalidation of one tag', () => {
  afterEach(() => vi.restoreAllMocks());

  test('an entry invalidated after it was stored is never served', async () => {
    // Slices deterministic: RECLAIM_TURN_MS never runs out, each turn walks 2,000 slots exactly.
    vi.spyOn(performance, 'now').mockReturnValue(0);
    const store = new MemoryStore({ maxBytes: 256 * 2 ** 20, maxTrackedTags: 100_000 });
    // 1. An invalidation of more than LAZY_TAG_ENTRIES tags: lazy, the tag index is not looked at.
    const many = Array.from({ length: 1500 }, (_, i) => `x:${i}`);
    store.invalidate([...many, 'T']);
    // 2. 1,200 pages stored afterwards (fills begun after the invalidation: valid), tagged T.
    const keys: string[] = [];
    for (let i = 0; i < 1200; i++) {
      const key = `k/p${i}`;
      expect(store.set(key, laterEntry(store, `/p${i}`, ['T']), laterOpts)).toBe(true);
      keys.push(key);
    }
    // 3. One background slice: 1,500 budget on the x:* tags, then T's Set leaves the index and
    //    500 of its 1,200 keys are listed again; 700 are only in the detached Set.
    await laterTurn();
    // 4. The data behind T changes: T is invalidated. 500 reached (<= 1,000): eager.
    store.invalidate(['T']);
    // Every page tagged T was stored before this invalidation: none may be served.
    const served = keys.filter((k) => store.get(k) !== undefined).length;
    expect(served).toBe(0);
  });

  test('a tag invalidated lazily twice with no store between: its mark lasts until the second freeing is over', async () => {
    // Slices of a few hundred removals, as on a busy machine.
    let t = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => ++t);
    const s = new MemoryStore();
    const named = (n: number, p: string) => Array.from({ length: n }, (_, i) => `/${p}${i}`);
    for (const p of named(3000, 'p')) s.set(`k:${p}`, laterEntry(s, p, ['layout']), laterOpts);
    // A write of 1,500 paths and the layout (its freeing reaches `layout` last), then the layout
    // alone, before any store: its keys leave the index with the second.
    s.invalidate([...named(1500, 'gone'), 'layout']);
    s.invalidate(['layout']);
    let served = 0;
    for (let i = 0; i < 40; i++) {
      await laterTurn();
      // Each key read once (a read of an invalid entry frees it).
      for (let j = i; j < 3000; j += 40) if (s.get(`k:/p${j}`) !== undefined) served++;
    }
    expect(served).toBe(0);
    // Pages stored since, then the layout again while the freeing runs: none of them served.
    for (const p of named(1200, 'n')) s.set(`k:${p}`, laterEntry(s, p, ['layout']), laterOpts);
    s.invalidate(['layout']);
    s.info();
    expect(named(1200, 'n').filter((p) => s.get(`k:${p}`) !== undefined)).toEqual([]);
  });

  test('a page stored again without a tag whose freeing is under way keeps its entry when the tag is invalidated again', () => {
    const s = new MemoryStore();
    for (let i = 0; i < 2000; i++) s.set(`k:/p${i}`, laterEntry(s, `/p${i}`, ['layout']), laterOpts);
    s.invalidate(['layout']); // its 2,000 keys leave the index, to be walked later
    s.set('k:/p5', laterEntry(s, '/p5', []), laterOpts); // rendered again, without the layout
    s.invalidate(['layout']);
    expect(s.get('k:/p5')).toBeDefined();
    s.info(); // finishes the freeing
    expect(s.get('k:/p5')).toBeDefined();
    expect(s.size).toBe(1);
  });

  test('...nor after the background freeing finishes (the entries are re-listed as valid)', async () => {
    vi.spyOn(performance, 'now').mockReturnValue(0);
    const store = new MemoryStore({ maxBytes: 256 * 2 ** 20, maxTrackedTags: 100_000 });
    store.invalidate([...Array.from({ length: 1500 }, (_, i) => `x:${i}`), 'T']);
    const keys = Array.from({ length: 1200 }, (_, i) => `k/p${i}`);
    keys.forEach((k, i) => store.set(k, laterEntry(store, `/p${i}`, ['T']), laterOpts));
    await laterTurn();
    store.invalidate(['T']);
    store.info(); // finishes the freeing
    const listed = store.entries({ tag: 'T', limit: 10_000 }).entries.length;
    const served = keys.filter((k) => store.get(k) !== undefined).length;
    expect({ listed, served }).toEqual({ listed: 0, served: 0 });
  });
});

describe('MemoryStore: many-tag lazy invalidation, then a (few-tag) lazy invalidation of the same tag', () => {
  afterEach(() => vi.restoreAllMocks());

  test('entries stored between the two invalidations are not served once the freeing ends', async () => {
    vi.spyOn(performance, 'now').mockReturnValue(0);
    const store = new MemoryStore({ maxBytes: 256 * 2 ** 20, maxTrackedTags: 100_000 });
    store.invalidate([...Array.from({ length: 1500 }, (_, i) => `x:${i}`), 'T']); // job 1, mark m1
    const keys = Array.from({ length: 2500 }, (_, i) => `k/p${i}`);
    keys.forEach((k, i) => store.set(k, laterEntry(store, `/p${i}`, ['T']), laterOpts)); // ids > m1
    await laterTurn(); // job 1 detaches T's Set of 2,500, re-lists 500
    const more = Array.from({ length: 600 }, (_, i) => `k/q${i}`);
    more.forEach((k, i) => store.set(k, laterEntry(store, `/q${i}`, ['T']), laterOpts));
    // Index now lists 1,100 entries of T (> 1,000): lazy, few tags -> detaches those 1,100 (job 2, mark m2).
    store.invalidate(['T']);
    store.info(); // freeing to its end (same as letting the background slices run)
    const served = [...keys, ...more].filter((k) => store.get(k) !== undefined).length;
    expect(served).toBe(0);
  });
});

describe('MemoryStore: two-tag lazy invalidation (one tag on a single entry), then an eager one', () => {
  afterEach(() => vi.restoreAllMocks());

  test('an entry invalidated after it was stored is never served', async () => {
    vi.spyOn(performance, 'now').mockReturnValue(0);
    const store = new MemoryStore({ maxBytes: 256 * 2 ** 20 });
    for (let i = 0; i < 1001; i++) store.set(`k/b${i}`, laterEntry(store, `/b${i}`, ['big']), laterOpts);
    store.set('k/t', laterEntry(store, '/t', ['T']), laterOpts);
    // 1,002 entries together: lazy; big's Set is detached now, T's lone key (a string) stays in the index.
    store.invalidate(['big', 'T']);
    const keys = Array.from({ length: 1200 }, (_, i) => `k/p${i}`);
    keys.forEach((k, i) => store.set(k, laterEntry(store, `/p${i}`, ['T']), laterOpts)); // valid: stored after
    await laterTurn(); // 1,001 budget on big, then T's Set (1,200, all valid) leaves the index, 999 re-listed
    store.invalidate(['T']); // 999 in the index: eager
    const served = keys.filter((k) => store.get(k) !== undefined).length;
    store.info();
    const servedAfter = keys.filter((k) => store.get(k) !== undefined).length;
    expect({ served, servedAfter }).toEqual({ served: 0, servedAfter: 0 });
  });
});
