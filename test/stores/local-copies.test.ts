// The copies SqliteStore and RedisStore keep beside the shared store: bounded by bytes, the least
// recently used out first, whatever the order keys were kept, read and forgotten in.
import { expect, test } from 'vitest';
import type { StoredEntry } from '../../src/index.js';
import { LocalCopies } from '../../src/stores/local-copies.js';

const entry = (path: string): StoredEntry => ({ status: 200, headers: [], body: new Uint8Array(1000), etag: '"e"', storedAt: 0, seq: 1, path, tags: [path] });

test('the least recently used copy goes first; a read makes a copy the most recent; forget and clear keep the count exact', () => {
  const probe = new LocalCopies<{ id: number; entry: StoredEntry }>(1 << 20);
  probe.keep('k:/a', { id: 0, entry: entry('/a') });
  const one = probe.bytes;
  // Room for three copies.
  const copies = new LocalCopies<{ id: number; entry: StoredEntry }>(one * 3 + one / 2);
  for (const k of ['a', 'b', 'c']) copies.keep(`k:/${k}`, { id: 1, entry: entry(`/${k}`) });
  expect(copies.get('k:/a')?.id).toBe(1); // a is now the most recent: b is the oldest
  copies.keep('k:/d', { id: 2, entry: entry('/d') });
  expect(['a', 'b', 'c', 'd'].map((k) => copies.peek(`k:/${k}`) !== undefined)).toEqual([true, false, true, true]);
  // peek() leaves the order: c is still the oldest.
  copies.peek('k:/c');
  copies.keep('k:/e', { id: 3, entry: entry('/e') });
  expect(['a', 'c', 'd', 'e'].map((k) => copies.peek(`k:/${k}`) !== undefined)).toEqual([true, false, true, true]);
  // Kept again: replaced, and the most recent.
  copies.keep('k:/a', { id: 4, entry: entry('/a') });
  copies.keep('k:/f', { id: 5, entry: entry('/f') });
  expect(['a', 'd', 'e', 'f'].map((k) => copies.peek(`k:/${k}`)?.id)).toEqual([4, undefined, 3, 5]);
  expect(copies.bytes).toBe(one * 3);
  copies.forget('k:/e');
  copies.forget('k:/e');
  expect(copies.bytes).toBe(one * 2);
  // After forgetting the middle one, the order still holds: a is the oldest now.
  for (const k of ['g', 'h']) copies.keep(`k:/${k}`, { id: 6, entry: entry(`/${k}`) });
  expect(['a', 'f', 'g', 'h'].map((k) => copies.peek(`k:/${k}`) !== undefined)).toEqual([false, true, true, true]);
  copies.clear();
  expect(copies.bytes).toBe(0);
  copies.keep('k:/i', { id: 7, entry: entry('/i') });
  expect(copies.get('k:/i')?.id).toBe(7);
  expect(copies.bytes).toBe(one);
});
