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

/** One entry in the recency list. */
interface Slot {
  readonly key: string;
  readonly entry: StoredEntry;
  readonly size: number;
  /** Stored with `variant: true`: counted against `maxVariantsPerPath` of its path. */
  readonly variant: boolean;
  /** The store's clock when the slot last became the most recently used (see `#link`). */
  used: number;
  newer: Slot | undefined;
  older: Slot | undefined;
}

/** The slot of `group` used least recently: a scan, made only when a variant must go. */
function leastRecentlyUsed(group: Set<Slot>): Slot | undefined {
  let oldest: Slot | undefined;
  for (const slot of group) if (oldest === undefined || slot.used < oldest.used) oldest = slot;
  return oldest;
}

/**
 * The default store: a byte-bounded LRU in this process. Invalidation deletes the affected
 * entries at once (a tag → keys index), so a hit is one Map lookup and a few pointer moves in the
 * recency list: no check, no allocation. Answers synchronously, so a hit allocates no promise.
 *
 * Query-string variants of one path (`variant: true`) are bounded by `maxVariantsPerPath`: one
 * more evicts the least recently used of them. The plain page of the path is not one of them, so a
 * flood of junk query strings never evicts it nor keeps it out.
 */
export class MemoryStore implements Store {
  readonly maxBytes: number;
  readonly #maxTrackedTags: number;
  readonly #slots = new Map<string, Slot>();
  #newest: Slot | undefined;
  #oldest: Slot | undefined;
  /** Counts up each time a slot becomes the most recently used: orders the variants of a path. */
  #clock = 0;
  /** tag → keys of the entries carrying it. */
  readonly #byTag = new Map<string, Set<string>>();
  /** path → the slots of its query-string variants (plain entries are not in it). */
  readonly #variants = new Map<string, Set<Slot>>();
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
    return this.#slots.size;
  }

  /** Bytes accounted to the entries held. */
  get bytes(): number {
    return this.#bytes;
  }

  sequence(): number {
    return this.#seq;
  }

  get(key: string): StoredEntry | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    if (slot !== this.#newest) {
      this.#unlink(slot);
      this.#link(slot);
    }
    return slot.entry;
  }

  set(key: string, entry: StoredEntry, options: SetOptions): boolean {
    if (entry.seq < this.#floor) return false;
    for (const tag of entry.tags) {
      const at = this.#tagSeq.get(tag);
      if (at !== undefined && at > entry.seq) return false;
    }
    const variant = options.variant === true;
    const size = entrySize(key, entry);
    if (size > this.maxBytes) return false;
    // Replacing a key is not one more variant: the old slot goes before the variants are counted.
    this.#remove(key);
    if (variant) {
      const group = this.#variants.get(entry.path);
      if (group !== undefined) {
        while (group.size > 0 && group.size >= options.maxVariantsPerPath) this.#remove(leastRecentlyUsed(group)!.key);
      }
    }
    const slot: Slot = { key, entry, size, variant, used: 0, newer: undefined, older: undefined };
    this.#slots.set(key, slot);
    this.#link(slot);
    this.#bytes += size;
    for (const tag of entry.tags) {
      let keys = this.#byTag.get(tag);
      if (keys === undefined) this.#byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
    if (variant) {
      let group = this.#variants.get(entry.path);
      if (group === undefined) this.#variants.set(entry.path, (group = new Set()));
      group.add(slot);
    }
    while (this.#bytes > this.maxBytes && this.#oldest !== undefined) this.#remove(this.#oldest.key);
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
    this.#slots.clear();
    this.#newest = this.#oldest = undefined;
    this.#byTag.clear();
    this.#variants.clear();
    this.#tagSeq.clear();
    this.#bytes = 0;
  }

  close(): void {
    this.clear();
  }

  /**
   * Makes `slot` the most recently used. Stamping it costs a hit one field write; the variants
   * of a path are compared by their stamps only when one must be evicted.
   */
  #link(slot: Slot): void {
    slot.used = ++this.#clock;
    slot.older = this.#newest;
    slot.newer = undefined;
    if (this.#newest !== undefined) this.#newest.newer = slot;
    this.#newest = slot;
    if (this.#oldest === undefined) this.#oldest = slot;
  }

  #unlink(slot: Slot): void {
    if (slot.newer !== undefined) slot.newer.older = slot.older;
    else this.#newest = slot.older;
    if (slot.older !== undefined) slot.older.newer = slot.newer;
    else this.#oldest = slot.newer;
    slot.newer = slot.older = undefined;
  }

  #remove(key: string): void {
    const slot = this.#slots.get(key);
    if (slot === undefined) return;
    this.#slots.delete(key);
    this.#unlink(slot);
    this.#bytes -= slot.size;
    for (const tag of slot.entry.tags) {
      const keys = this.#byTag.get(tag);
      if (keys === undefined) continue;
      keys.delete(key);
      if (keys.size === 0) this.#byTag.delete(tag);
    }
    if (slot.variant) {
      const group = this.#variants.get(slot.entry.path);
      if (group !== undefined) {
        group.delete(slot);
        if (group.size === 0) this.#variants.delete(slot.entry.path);
      }
    }
  }
}
