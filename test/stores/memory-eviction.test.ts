// MemoryStore's eviction is a segmented LRU: an entry read since it was stored is protected from a
// flood of entries stored once and never read, up to 90 % of `maxBytes`.
import { describe, expect, test } from 'vitest';
import { MemoryStore, type SetOptions, type StoredEntry } from '../../src/index.js';

const limits: SetOptions = { maxVariantsPerPath: 1000, variant: false };
const entry = (path: string, seq = 0): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new Uint8Array(3000),
  etag: '"x"',
  storedAt: 0,
  seq,
  // Paths of one length: every entry counts the same bytes.
  path,
  tags: [path],
});

/** What one entry counts (every key and path below has the same length). */
function one(): number {
  const s = new MemoryStore();
  s.set('k:/p/000', entry('/p/000'), limits);
  return s.bytes;
}

/** Stores `n` new keys, never read, checking the byte bound after each. */
function flood(s: MemoryStore, from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const key = `k:/f/${String(i).padStart(3, '0')}`;
    expect(s.set(key, entry(key.slice(2), s.sequence()), limits)).toBe(true);
    expect(s.bytes).toBeLessThanOrEqual(s.maxBytes);
  }
}

/** Whether `key` is held, without reading it (a read would change its place). */
const held = (s: MemoryStore, key: string) => s.entries({ limit: 1000 }).entries.some((e) => e.key === key);

describe('MemoryStore eviction under a flood of keys stored once', () => {
  test('an entry read once survives a flood that a plain LRU would evict it under; the bound holds', () => {
    const s = new MemoryStore({ maxBytes: 10 * one() + 100 });
    s.set('k:/p/000', entry('/p/000'), limits);
    s.set('k:/p/001', entry('/p/001'), limits);
    expect(s.get('k:/p/000')).toBeDefined();
    // 50 new keys, five times what the store holds: all but the entry read are pushed out in turn.
    flood(s, 0, 50);
    expect(s.size).toBe(10);
    expect(held(s, 'k:/p/000')).toBe(true);
    expect(held(s, 'k:/p/001')).toBe(false); // never read: evicted as a plain LRU would
    expect(held(s, 'k:/f/049')).toBe(true);
    expect(held(s, 'k:/f/040')).toBe(false);
    expect(s.get('k:/p/000')?.body.byteLength).toBe(3000);
  });

  test('read entries take at most 90 % of the bound: the least recently read go back on probation, evicted first', () => {
    const s = new MemoryStore({ maxBytes: 10 * one() + 100 });
    for (let i = 0; i < 10; i++) s.set(`k:/p/00${i}`, entry(`/p/00${i}`), limits);
    for (let i = 0; i < 10; i++) expect(s.get(`k:/p/00${i}`)).toBeDefined();
    // Nine fit in 90 %; /p/000, read first, went back on probation when /p/009 was read.
    flood(s, 0, 30);
    expect(held(s, 'k:/p/000')).toBe(false);
    for (let i = 1; i < 10; i++) expect(held(s, `k:/p/00${i}`)).toBe(true);
    expect(s.size).toBe(10);
  });

  test('a read entry pushed back on probation and read again is protected again', () => {
    const s = new MemoryStore({ maxBytes: 10 * one() + 100 });
    for (let i = 0; i < 10; i++) s.set(`k:/p/00${i}`, entry(`/p/00${i}`), limits);
    for (let i = 0; i < 10; i++) s.get(`k:/p/00${i}`);
    expect(s.get('k:/p/000')).toBeDefined(); // back in: /p/001 goes on probation instead
    flood(s, 0, 30);
    expect(held(s, 'k:/p/000')).toBe(true);
    expect(held(s, 'k:/p/001')).toBe(false);
  });

  test('a read entry stored again valid (its compressed copy, say) stays protected', () => {
    const s = new MemoryStore({ maxBytes: 10 * one() + 100 });
    s.set('k:/p/000', entry('/p/000'), limits);
    s.get('k:/p/000');
    s.set('k:/p/000', entry('/p/000'), limits);
    flood(s, 0, 30);
    expect(held(s, 'k:/p/000')).toBe(true);
    // Stored again after an invalidation: a new page, on probation.
    s.invalidate(['/p/000']);
    s.set('k:/p/000', entry('/p/000', s.sequence()), limits);
    flood(s, 100, 30);
    expect(held(s, 'k:/p/000')).toBe(false);
  });

  test('invalidated or cleared read entries leave their share of the protected list to others', () => {
    const s = new MemoryStore({ maxBytes: 10 * one() + 100 });
    for (let i = 0; i < 9; i++) {
      s.set(`k:/p/00${i}`, entry(`/p/00${i}`), limits);
      s.get(`k:/p/00${i}`);
    }
    s.invalidate(['/p/000', '/p/001', '/p/002', '/p/003', '/p/004', '/p/005']);
    for (let i = 0; i < 6; i++) {
      s.set(`k:/q/00${i}`, entry(`/q/00${i}`, s.sequence()), limits);
      s.get(`k:/q/00${i}`);
    }
    flood(s, 0, 30);
    // /p/006–008 and /q/000–005 were read since stored: nine, all kept.
    for (let i = 6; i < 9; i++) expect(held(s, `k:/p/00${i}`)).toBe(true);
    for (let i = 0; i < 6; i++) expect(held(s, `k:/q/00${i}`)).toBe(true);
    for (let i = 0; i < 6; i++) expect(held(s, `k:/p/00${i}`)).toBe(false);
    s.clear();
    for (let i = 0; i < 9; i++) {
      s.set(`k:/r/00${i}`, entry(`/r/00${i}`, s.sequence()), limits);
      s.get(`k:/r/00${i}`);
    }
    flood(s, 100, 30);
    for (let i = 0; i < 9; i++) expect(held(s, `k:/r/00${i}`)).toBe(true);
    expect(s.bytes).toBe(10 * one());
  });

  test('an entry larger than 90 % of the bound is stored, read and kept; the next one read takes its place', () => {
    const s = new MemoryStore({ maxBytes: one() + 100 });
    s.set('k:/p/000', entry('/p/000'), limits);
    expect(s.get('k:/p/000')).toBeDefined();
    expect(s.get('k:/p/000')).toBeDefined();
    expect(s.set('k:/p/001', entry('/p/001'), limits)).toBe(true);
    expect(s.size).toBe(1);
    expect(s.bytes).toBeLessThanOrEqual(s.maxBytes);
    expect(s.get('k:/p/001')).toBeDefined();
    expect(s.get('k:/p/000')).toBeUndefined();
  });
});
