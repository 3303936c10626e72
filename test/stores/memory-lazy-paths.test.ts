// MemoryStore: an invalidation whose tags reach more than 1,000 entries together (many paths of an
// entry each) is lazy, as one tag on many entries is (test/stores/lazy-invalidation.test.ts): the
// entries are invalid at once and freed afterwards, in bounded slices.
import { describe, expect, test } from 'vitest';
import { MemoryStore, type SetOptions, type StoredEntry } from '../../src/index.js';

const limits: SetOptions = { maxVariantsPerPath: 1000, variant: false };
const entry = (path: string, seq: number, tags: string[] = [path]): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new Uint8Array(100),
  etag: '"x"',
  storedAt: 0,
  seq,
  path,
  tags,
});
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
    // And a second invalidation of them frees them (three entries: at once).
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
