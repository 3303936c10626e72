import type { SetOptions, Store, StoredEntry } from '../../core/store.js';

export interface MemoryStoreOptions {
  /**
   * Upper bound of the memory the store's entries take, in bytes (bodies, headers, keys and a
   * fixed per-entry overhead). Least recently used entries are evicted past it.
   * @default 64 MiB
   */
  maxBytes?: number;
  /**
   * How many tag invalidation points are remembered before they are folded into one floor
   * sequence number (fills that started before the floor are then refused: safe, slightly
   * fewer stores for renders in flight at that moment).
   * @default 10000
   */
  maxTrackedTags?: number;
}

/** Bytes counted per entry on top of its body, headers and key: the Map slots, the entry object, tag sets. */
const ENTRY_OVERHEAD = 256;

function entrySize(key: string, entry: StoredEntry): number {
  let n = ENTRY_OVERHEAD + key.length * 2 + entry.body.byteLength;
  for (const h of entry.headers) n += h.length * 2;
  for (const t of entry.tags) n += t.length * 2 + 48;
  return n;
}

/**
 * The default store: a byte-bounded LRU in this process. Invalidation deletes the affected
 * entries at once (a tag → keys index), so a hit is one Map lookup and no check. Answers
 * synchronously, so a hit allocates no promise.
 */
export class MemoryStore implements Store {
  readonly maxBytes: number;
  readonly #maxTrackedTags: number;
  /** key → entry, in least- to most-recently-used order. */
  readonly #entries = new Map<string, StoredEntry>();
  readonly #sizes = new Map<string, number>();
  /** tag → keys of the entries carrying it. */
  readonly #byTag = new Map<string, Set<string>>();
  /** tag → sequence number of its last invalidation. */
  readonly #tagSeq = new Map<string, number>();
  #seq = 0;
  /** Fills that started before this sequence number are refused. */
  #floor = 0;
  #bytes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('page-dumper: MemoryStore options must be an object');
    }
    const { maxBytes = 64 * 2 ** 20, maxTrackedTags = 10_000 } = options;
    if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new TypeError(`page-dumper: MemoryStore option "maxBytes" must be a positive integer, got ${String(maxBytes)}`);
    }
    if (typeof maxTrackedTags !== 'number' || !Number.isInteger(maxTrackedTags) || maxTrackedTags < 1) {
      throw new TypeError(
        `page-dumper: MemoryStore option "maxTrackedTags" must be a positive integer, got ${String(maxTrackedTags)}`,
      );
    }
    this.maxBytes = maxBytes;
    this.#maxTrackedTags = maxTrackedTags;
  }

  /** Number of entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes accounted to the entries held. */
  get bytes(): number {
    return this.#bytes;
  }

  sequence(): number {
    return this.#seq;
  }

  get(key: string): StoredEntry | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      // Move to the most-recently-used end. Two Map operations, no allocation.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, entry: StoredEntry, options: SetOptions): boolean {
    if (entry.seq < this.#floor) return false;
    for (const tag of entry.tags) {
      const at = this.#tagSeq.get(tag);
      if (at !== undefined && at > entry.seq) return false;
    }
    const size = entrySize(key, entry);
    if (size > this.maxBytes) return false;
    if (this.#entries.has(key)) this.#remove(key);
    const variants = this.#byTag.get(entry.path);
    if (variants !== undefined && variants.size >= options.maxVariantsPerPath) return false;
    this.#entries.set(key, entry);
    this.#sizes.set(key, size);
    this.#bytes += size;
    for (const tag of entry.tags) {
      let keys = this.#byTag.get(tag);
      if (keys === undefined) this.#byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
    while (this.#bytes > this.maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#remove(oldest.value);
    }
    return true;
  }

  invalidate(tags: readonly string[]): number {
    const seq = ++this.#seq;
    for (const tag of tags) {
      this.#tagSeq.set(tag, seq);
      const keys = this.#byTag.get(tag);
      if (keys !== undefined) for (const key of [...keys]) this.#remove(key);
    }
    if (this.#tagSeq.size > this.#maxTrackedTags) {
      this.#floor = seq;
      this.#tagSeq.clear();
    }
    return seq;
  }

  clear(): void {
    this.#floor = ++this.#seq;
    this.#entries.clear();
    this.#sizes.clear();
    this.#byTag.clear();
    this.#tagSeq.clear();
    this.#bytes = 0;
  }

  close(): void {
    this.clear();
  }

  #remove(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= this.#sizes.get(key) ?? 0;
    this.#sizes.delete(key);
    for (const tag of entry.tags) {
      const keys = this.#byTag.get(tag);
      if (keys === undefined) continue;
      keys.delete(key);
      if (keys.size === 0) this.#byTag.delete(tag);
    }
  }
}
