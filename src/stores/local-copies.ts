/**
 * Decoded entries a process keeps beside a shared store (SqliteStore, RedisStore), each with the
 * identity of the stored entry it was read from. A copy is never served on trust: the store first
 * asks the shared store which entry the key holds now, and serves the copy only if it is that one.
 * What the copy saves is reading, sending and decoding the body.
 *
 * Bounded by bytes; the least recently used copy goes first.
 */
import type { StoredEntry } from '../core/store.js';

/** What a store keeps per key: the identity of the stored entry, and the entry. */
export interface LocalCopy<Id> {
  readonly id: Id;
  readonly entry: StoredEntry;
}

/** Bytes counted per copy on top of its body, headers, key and tags. */
const COPY_OVERHEAD = 128;

export class LocalCopies<C extends LocalCopy<unknown>> {
  /** key → copy and its size; the Map's order is the recency order (oldest first). */
  readonly #copies = new Map<string, { copy: C; size: number }>();
  #used = 0;

  constructor(readonly maxBytes: number) {}

  /** The copy kept for `key`, made the most recently used. */
  get(key: string): C | undefined {
    const kept = this.#copies.get(key);
    if (kept === undefined) return undefined;
    if (this.#copies.size > 1) {
      this.#copies.delete(key);
      this.#copies.set(key, kept);
    }
    return kept.copy;
  }

  /** The copy kept for `key`, its recency unchanged. */
  peek(key: string): C | undefined {
    return this.#copies.get(key)?.copy;
  }

  /** Keeps `copy` for `key` (replacing any other), unless it alone is larger than the bound. */
  keep(key: string, copy: C): void {
    if (this.maxBytes === 0) return;
    this.forget(key);
    const entry = copy.entry;
    let size = COPY_OVERHEAD + key.length * 2 + entry.body.byteLength;
    for (const h of entry.headers) size += h.length * 2;
    for (const t of entry.tags) size += t.length * 2;
    if (size > this.maxBytes) return;
    this.#copies.set(key, { copy, size });
    this.#used += size;
    while (this.#used > this.maxBytes) this.forget(this.#copies.keys().next().value!);
  }

  forget(key: string): void {
    const kept = this.#copies.get(key);
    if (kept === undefined) return;
    this.#copies.delete(key);
    this.#used -= kept.size;
  }

  clear(): void {
    this.#copies.clear();
    this.#used = 0;
  }
}
