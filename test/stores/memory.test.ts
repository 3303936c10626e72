import { describe, expect, test } from 'vitest';
import { MemoryStore, type StoredEntry } from '../../src/index.js';
import { runStoreConformance } from '../../src/testing/index.js';

runStoreConformance({ test, create: () => new MemoryStore(), prefix: 'MemoryStore conformance: ' });

const limits = { maxVariantsPerPath: 1000, variant: false };
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

describe('MemoryStore', () => {
  test('is bounded by bytes and evicts the least recently used entry', () => {
    const s = new MemoryStore({ maxBytes: 11_000 });
    s.set('a', entry('/a', 3000), limits);
    s.set('b', entry('/b', 3000), limits);
    s.set('c', entry('/c', 3000), limits);
    expect(s.size).toBe(3);
    s.get('a'); // a is now more recent than b
    s.set('d', entry('/d', 3000), limits);
    expect(s.get('b')).toBeUndefined();
    expect(s.get('a')).toBeDefined();
    expect(s.get('d')).toBeDefined();
    expect(s.bytes).toBeLessThanOrEqual(11_000);
  });

  test('refuses an entry larger than the whole store', () => {
    const s = new MemoryStore({ maxBytes: 1000 });
    expect(s.set('a', entry('/a', 5000), limits)).toBe(false);
    expect(s.size).toBe(0);
  });

  test('frees invalidated entries and their tag index at once', () => {
    const s = new MemoryStore();
    for (let i = 0; i < 100; i++) s.set(`k${i}`, { ...entry('/p', 10), tags: ['/p', `t${i}`] }, limits);
    expect(s.size).toBe(100);
    s.invalidate(['/p']);
    expect(s.size).toBe(0);
    expect(s.bytes).toBe(0);
  });

  test('folds old invalidation points into a floor: bounded memory, still no stale fill', () => {
    const s = new MemoryStore({ maxTrackedTags: 10 });
    const before = s.sequence();
    for (let i = 0; i < 50; i++) s.invalidate([`/t${i}`]);
    // The record of /t0's invalidation is gone, but a fill that started before it is still refused.
    expect(s.set('k', entry('/t0', 10, before), limits)).toBe(false);
    expect(s.set('k', entry('/t0', 10, s.sequence()), limits)).toBe(true);
  });

  test('validates its options', () => {
    expect(() => new MemoryStore({ maxBytes: 0 })).toThrow(
      new TypeError('page-dumper: MemoryStore option "maxBytes" must be a positive integer, got 0'),
    );
    expect(() => new MemoryStore({ maxBytes: 1.5 })).toThrow(TypeError);
  });
});
