import { brandClass } from '../../core/brand.js';
import { MemoryQueue } from '../../core/queue.js';
import type {
  ContentCoding,
  EncodedBody,
  EntryInfo,
  EntryListOptions,
  EntryPage,
  EnumerableStore,
  PurgeQueueStore,
  QueueClaimOptions,
  QueuedItem,
  QueueStats,
  SetOptions,
  Store,
  StoredEntry,
  StoreInfo,
} from '../../core/store.js';

export interface MemoryStoreOptions {
  /**
   * Upper bound of the memory the store's entries take, in bytes. Past it, entries are evicted
   * least recently used first, those never read since they were stored before those read (see
   * `MemoryStore`). What is counted is what an entry keeps alive: its body and its encoded bodies
   * (`encodings`), its strings (key, headers, tags) at their size in V8, and the objects around
   * them (the entry, its arrays, each body's Uint8Array and ArrayBuffer, the store's slot and
   * index entries), as measured on Node 20 by `bench/memory-flood.mjs`: about 960 bytes besides
   * the body for a typical page, so a 1 KiB page counts about 2,000, and about 230 per encoded
   * body besides its bytes. A body that is a view into a larger buffer (a slice of Node's shared
   * 8 KiB pool, say) is copied into one of its own, so that it cannot pin more than it is counted
   * for. Not counted: about 200 bytes per body outside the JS heap (each body's ArrayBuffer
   * bookkeeping in C++, the allocator's rounding), and what the process keeps beyond its live
   * objects: V8 keeps heap pages it no longer needs, the allocator keeps freed memory. Under a
   * flood of 1 KiB pages, the JS heap and ArrayBuffers held 1.06 × `maxBytes` (with the empty
   * process's 4.5 MiB) and the RSS reached 3.9 ×; the same server storing nothing reached 1.5 ×
   * (see BENCHMARKS.md).
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

// What an entry keeps alive, in bytes, on Node 20 (x64), measured by `bench/memory-flood.mjs` and
// rounded up: the store counts these rather than trusting a guess, so that `maxBytes` bounds the
// memory the entries really take.

/**
 * An entry's objects besides its strings and body bytes: the entry object, its two arrays (their
 * slots are counted with each string), the body's Uint8Array and ArrayBuffer objects.
 */
const ENTRY_OBJECTS = 392;
/** A slot of an array: one pointer. */
const POINTER = 8;
/** The MemoryStore's own per entry: its slot, its place in the key Map and in the tag index under its path. */
const SLOT_OVERHEAD = 160;
/** Per tag beyond the path: its place in the tag index. */
const TAG_INDEX = 40;
/** Per query-string variant: its place in its path's variant set. */
const VARIANT_OVERHEAD = 56;
/** A V8 string's header (map, hash, length); objects are 8-byte aligned. */
const STRING_HEADER = 16;
const TWO_BYTE = /[^\u0000-\u00ff]/;

/**
 * What a string takes in V8: one byte per character when all are Latin-1, two otherwise.
 * @internal
 */
export function stringBytes(s: string): number {
  const chars = TWO_BYTE.test(s) ? s.length * 2 : s.length;
  return (STRING_HEADER + chars + 7) & ~7;
}

/**
 * Per encoded body (`StoredEntry.encodings`): its `{ coding, body }` object, its slot in the
 * encodings array, its body's Uint8Array and ArrayBuffer objects (230 measured). Its coding name
 * is one of the strings every entry shares (see `compact`).
 */
const ENCODING_OBJECTS = 232;
/** An entry's encodings array and the entry's property pointing to it, when it has encodings (56 measured). */
const ENCODINGS_ARRAY = 64;

/**
 * The bytes an entry kept in this process takes, with its key: body, encoded bodies, strings and
 * objects (see `compact` for why they are the store's own). Whatever holds it adds its own
 * per-entry overhead.
 * @internal
 */
export function entryBytes(key: string, entry: StoredEntry): number {
  // The etag is one of the header values and the path is the first tag: the same strings.
  let n = ENTRY_OBJECTS + stringBytes(key) + entry.body.byteLength;
  for (const h of entry.headers) n += POINTER + stringBytes(h);
  for (const t of entry.tags) n += POINTER + stringBytes(t);
  const encodings = entry.encodings;
  if (encodings !== undefined && encodings.length > 0) {
    n += ENCODINGS_ARRAY;
    for (const e of encodings) {
      n += ENCODING_OBJECTS + e.body.byteLength;
      if (sharedCoding(e.coding) === undefined) n += stringBytes(e.coding);
    }
  }
  return n;
}

function slotBytes(key: string, entry: StoredEntry, variant: boolean): number {
  const n = entryBytes(key, entry) + SLOT_OVERHEAD + Math.max(0, entry.tags.length - 1) * TAG_INDEX;
  return variant ? n + VARIANT_OVERHEAD : n;
}

/** The one string of a known coding name, shared by every entry; `undefined` for another name. */
function sharedCoding(coding: string): ContentCoding | undefined {
  return coding === 'br' ? 'br' : coding === 'gzip' ? 'gzip' : coding === 'zstd' ? 'zstd' : undefined;
}

/**
 * `body`, or a copy of it in a buffer of its own when it is a view into a larger one. A Buffer
 * from allocUnsafeSlow: never a slice of the pool itself, and adapters that send Buffers
 * (Fastify) need no view per hit.
 */
function ownBody(body: Uint8Array): Uint8Array {
  if (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) return body;
  const copy = Buffer.allocUnsafeSlow(body.byteLength);
  copy.set(body);
  return copy;
}

/**
 * An entry with one object shape per kind (with or without `anonymousOnly`, with or without
 * encodings), its fields in one order, whatever the order and the extra fields of `fields`: the
 * stores make their entries here. `anonymousOnly` absent or `false`: the entry has no such
 * property; `encodings` empty or absent: none either, as cheap as before encodings existed.
 * @internal
 */
export function makeEntry(fields: StoredEntry): StoredEntry {
  return shaped(fields);
}

/** `makeEntry`'s work: the fields of `fields` the entry keeps, in one order. */
function shaped(fields: StoredEntry): StoredEntry {
  const { status, headers, body, etag, storedAt, seq, path, tags, encodings } = fields;
  const anonymousOnly = fields.anonymousOnly === true;
  if (encodings === undefined || encodings.length === 0) {
    return anonymousOnly
      ? { status, headers, body, etag, storedAt, seq, path, tags, anonymousOnly: true }
      : { status, headers, body, etag, storedAt, seq, path, tags };
  }
  return anonymousOnly
    ? { status, headers, body, etag, storedAt, seq, path, tags, anonymousOnly: true, encodings }
    : { status, headers, body, etag, storedAt, seq, path, tags, encodings };
}

/**
 * The entry as the store keeps it: bodies (the body and each encoded body) that own their whole
 * buffer, and arrays of their exact length. A view into a larger buffer keeps all of that buffer
 * alive (a 1 KB page sliced from Node's 8 KiB pool pins the pool; encoded bodies read from a
 * shared store are views into one reply), and an array built by `push` has room for 17 elements
 * or more (a 2-tag array takes 200 bytes instead of 64): either would make the store hold more
 * than it counts, several times more for a small body from the pool. It does not rely on its
 * callers to have avoided either.
 * @internal
 */
export function compact(entry: StoredEntry): StoredEntry {
  const { status, etag, storedAt, seq, path, anonymousOnly } = entry;
  let encodings: EncodedBody[] | undefined;
  if (entry.encodings !== undefined && entry.encodings.length > 0) {
    // One object shape for every encoded body, its coding name the string all entries share.
    encodings = entry.encodings.map(({ coding, body }) => ({ coding: sharedCoding(coding) ?? coding, body: ownBody(body) }));
  }
  return makeEntry({ status, headers: entry.headers.slice(), body: ownBody(entry.body), etag, storedAt, seq, path, tags: entry.tags.slice(), anonymousOnly, encodings });
}

/**
 * An entry's metadata as `Store.entries()` lists it, `bytes` being what its store counts for it.
 * @internal
 */
export function entryInfo(key: string, entry: StoredEntry, bytes: number): EntryInfo {
  return {
    key,
    status: entry.status,
    headers: entry.headers,
    etag: entry.etag,
    storedAt: entry.storedAt,
    seq: entry.seq,
    path: entry.path,
    tags: entry.tags,
    anonymousOnly: entry.anonymousOnly === true,
    bodyBytes: entry.body.byteLength,
    encodings: (entry.encodings ?? []).map((e) => ({ coding: e.coding, bytes: e.body.byteLength })),
    bytes,
  };
}

/**
 * The page size of `entries()` when none is given, and the check of one given: a positive integer.
 * @internal
 */
export function listLimit(options: EntryListOptions): number {
  const { limit = 100 } = options;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1) {
    throw new TypeError(`page-dumper: entries() option "limit" must be a positive integer, got ${String(limit)}`);
  }
  return limit;
}

/**
 * An invalidation whose tags are carried by more entries than this, together (one tag on every
 * page, or 10,000 paths of an entry each), is lazy: it records the id of the last slot made for
 * each tag, `get()` treats the tags' slots made up to it as gone, and the slots are removed in
 * the background, `RECLAIM_SLICE` at a time (see `invalidate`). Fewer entries are removed at
 * once, as cheap as recording them.
 * @internal
 */
export const LAZY_TAG_ENTRIES = 1000;
/**
 * Slots removed per turn of the event loop when a lazily invalidated tag is reclaimed, at most: about
 * a millisecond's worth in a store of a thousand entries; in a large store (cache misses), the
 * turn also ends after `RECLAIM_TURN_MS`.
 */
const RECLAIM_SLICE = 2000;
const RECLAIM_TURN_MS = 4;

/** The entries of the tags of one lazy invalidation, still to be removed. */
interface Reclaim {
  readonly tags: readonly string[];
  /** Slots of the tags with an id up to this one are invalid. */
  readonly mark: number;
  /** The keys of tags taken out of the tag index by the invalidation itself. */
  readonly detached: Map<string, TagKeys> | undefined;
  /** The index in `tags` of the tag whose keys are being walked. */
  next: number;
  /** The keys of that tag, when they are a Set taken out of the tag index: walked once. */
  keys: Iterator<string> | undefined;
}

/**
 * The share of `maxBytes` that entries read since they were stored (the protected list) may
 * take: the rest is left to entries on probation, new ones and those the protected list pushed
 * out, so that a flood of pages stored once and never read again evicts among themselves and not
 * the pages being read (see `MemoryStore`). 90 %: with a hot set taking 98 % of the bound under a
 * flood of new keys, 80 % kept 92.5 % of its hits, 90 % kept 95.3 %, 95 % kept 97.3 %
 * (`bench/memory-hotset.mjs --pages=2200000 --requests=1000000`); a larger share leaves a page less time on probation to be read
 * a second time, before the flood evicts it.
 */
const PROTECTED_SHARE = 0.9;

/** One entry in one of the two recency lists. */
interface Slot {
  /** Increasing in storing order (the order of the slots Map): the cursor of `entries()`. */
  readonly id: number;
  readonly key: string;
  readonly entry: StoredEntry;
  readonly size: number;
  /** Stored with `variant: true`: counted against `maxVariantsPerPath` of its path. */
  readonly variant: boolean;
  /** The store's clock when the slot was last stored or read: orders the variants of a path. */
  used: number;
  /** In the protected list (read since it was stored), not on probation. */
  protected: boolean;
  newer: Slot | undefined;
  older: Slot | undefined;
}

/**
 * The store's indexes as large as its entries (key → slot, tag → keys, path → variants, and the
 * keys of a tag on many entries: `KeyShards`) are each split in this many Maps or Sets, by a hash
 * of the key, tag or path (`shardOf`). V8 rehashes a Map whole, in one call, when it
 * grows past a power of two or shrinks below a quarter of its capacity: removing a million entries
 * from one Map copies the 262,143 left in a single `delete` (about 60 ms, twice, as the two indexes
 * shrink together: the background removal's turn stalled for 130 ms and more). A shard holds a 64th
 * of the entries, and copies a 64th of that (see BENCHMARKS.md, "Scale").
 */
const SHARDS = 64;

/** The characters of a key, from its end, that its shard is worked out from (see `shardOf`). */
const SHARD_CHARS = 128;

/**
 * The shard of a key or a tag: a hash (FNV-1a) of its length and its last 128 characters (all of
 * a key but a long one), taking the top bits, the best mixed. A hash of the last 8 characters
 * alone put every key ending in the same query string (`?page=2`) in one shard, which then grew
 * and was rehashed as one Map; a hash of all of it cost a long key (junk query strings) in
 * proportion to its length.
 * @internal
 */
export function shardOf(s: string): number {
  const n = s.length;
  let h = (0x811c9dc5 ^ n) | 0;
  for (let i = n > SHARD_CHARS ? n - SHARD_CHARS : 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 26;
}

/** `SHARDS` empty Maps. */
function shards<V>(): Map<string, V>[] {
  return Array.from({ length: SHARDS }, () => new Map<string, V>());
}

/**
 * A tag's keys in one Set up to this many; past it, in `SHARDS` Sets (`KeyShards`). V8 rehashes a
 * Set whole when an `add` finds it full (deleted keys hold their places until then): one `add` to
 * the Set of a tag on a million pages (`layout`) copied the million, 129 ms.
 */
const KEY_SHARDS_FROM = 4096;

/** The keys of a tag carried by more than `KEY_SHARDS_FROM` entries, in `SHARDS` Sets by `shardOf(key)`. */
class KeyShards {
  readonly #sets = Array.from({ length: SHARDS }, () => new Set<string>());
  size = 0;

  constructor(keys: Iterable<string>) {
    for (const key of keys) this.add(key);
  }

  add(key: string): void {
    const set = this.#sets[shardOf(key)]!;
    const before = set.size;
    set.add(key);
    this.size += set.size - before;
  }

  delete(key: string): void {
    if (this.#sets[shardOf(key)]!.delete(key)) this.size--;
  }

  *values(): IterableIterator<string> {
    for (const set of this.#sets) yield* set;
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.values();
  }
}

/** The keys of a tag carried by more than one entry. */
type TagKeys = Set<string> | KeyShards;

/** `n` bytes in the largest binary unit that divides it: `64 MiB`, `1536 KiB`, `1000 bytes`. */
function byteSize(n: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} bytes`;
}

/** The slot of `group` used least recently: a scan, made only when a variant must go. */
function leastRecentlyUsed(group: Set<Slot>): Slot | undefined {
  let oldest: Slot | undefined;
  for (const slot of group) if (oldest === undefined || slot.used < oldest.used) oldest = slot;
  return oldest;
}

/**
 * The default store: byte-bounded, in this process, its eviction a segmented LRU. An entry is
 * stored on probation; its first read moves it to the protected list, which takes at most 90 % of
 * `maxBytes` (past that, its least recently used entry goes back to probation, as the most
 * recent there). Eviction takes the least recently used entry on probation, and the protected
 * list's only when nothing else is on probation. So a flood of pages stored once and never read
 * again (a crawler, junk query strings) evicts its own pages and those read least recently, not
 * the pages that take most hits, as a plain LRU would once the hot pages take most of the bound.
 * Invalidation deletes the affected entries at once (a tag → keys index), so a hit is one Map
 * lookup and a few pointer moves in the recency lists: no check, no allocation. An invalidation
 * reaching more than a thousand entries is the exception: its entries are removed in the
 * background, and until they are, a hit checks its tags (see `invalidate`). Answers
 * synchronously, so a hit allocates no promise.
 *
 * Query-string variants of one path (`variant: true`) are bounded by `maxVariantsPerPath`: one
 * more evicts the least recently used of them. The plain page of the path is not one of them, so a
 * flood of junk query strings never evicts it nor keeps it out.
 */
export class MemoryStore implements Store, PurgeQueueStore, EnumerableStore {
  readonly maxBytes: number;
  /** How logs and errors name the store: its kind and its bound, `MemoryStore (64 MiB)`. */
  readonly label: string;
  readonly #maxTrackedTags: number;
  /** key → slot, in `SHARDS` Maps by `shardOf(key)`, each in storing order. */
  readonly #slots = shards<Slot>();
  /** The slots held, in all shards. */
  #count = 0;
  /** The probation list: entries not read since they were stored, or pushed out of the protected list. */
  #newest: Slot | undefined;
  #oldest: Slot | undefined;
  /** The protected list: entries read since they were stored. */
  #newestProtected: Slot | undefined;
  #oldestProtected: Slot | undefined;
  /** Bytes of the protected list's entries, at most `#protectedMax` but while one is moved in. */
  #protectedBytes = 0;
  readonly #protectedMax: number;
  /** Counts up at each store and each read: orders the variants of a path (`Slot.used`). */
  #clock = 0;
  /**
   * tag → the key of the one entry carrying it, or the keys of all of them. Most tags (a page's
   * path tag) have one entry: a string saves a Set of about 150 bytes per entry. In `SHARDS` Maps
   * by `shardOf(tag)`.
   */
  readonly #byTag = shards<string | TagKeys>();
  /** path → the slots of its query-string variants (plain entries are not in it), in `SHARDS` Maps. */
  readonly #variants = shards<Set<Slot>>();
  /** tag → sequence number of its last invalidation. */
  readonly #tagSeq = new Map<string, number>();
  /**
   * Lazily invalidated tag → the id of the last slot made when it was invalidated: slots carrying
   * it with an id up to that are invalid until removed. Empty but while a reclamation runs, so a
   * hit checks nothing more than its size. (While one runs, a hit looks each of its tags up here.)
   */
  readonly #stale = new Map<string, number>();
  /** The lazy invalidations whose slots are still to be removed, oldest first. */
  #reclaims: Reclaim[] = [];
  #reclaimTimer: NodeJS.Immediate | undefined;
  #seq = 0;
  /** The id of the last slot made (see `Slot.id`). */
  #lastId = 0;
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
    this.label = `MemoryStore (${byteSize(maxBytes)})`;
    this.#maxTrackedTags = maxTrackedTags;
    this.#protectedMax = Math.floor(maxBytes * PROTECTED_SHARE);
  }

  /** Number of entries held, lazily invalidated ones not yet removed included (see `invalidate`). */
  get size(): number {
    return this.#count;
  }

  /** Bytes accounted to the entries held, as `size` counts them (see `maxBytes`). */
  get bytes(): number {
    return this.#bytes;
  }

  sequence(): number {
    return this.#seq;
  }

  get(key: string): StoredEntry | undefined {
    const slot = this.#slots[shardOf(key)]!.get(key);
    if (slot === undefined) return undefined;
    if (this.#stale.size !== 0 && this.#isStale(slot)) {
      this.#remove(key);
      return undefined;
    }
    slot.used = ++this.#clock;
    if (slot.protected) {
      if (slot !== this.#newestProtected) {
        this.#unlink(slot);
        this.#linkProtected(slot);
      }
    } else this.#protect(slot);
    return slot.entry;
  }

  set(key: string, entry: StoredEntry, options: SetOptions): boolean {
    return this.setAt(key, entry, options, entry.seq);
  }

  /**
   * `set`, with the fill protocol checked at `seq` (this store's number, read before the entry was
   * fetched) instead of at `entry.seq`, which is kept as it is: for a store used as a tier in front
   * of another, whose entries carry the other store's numbers (RedisStore's local tier).
   * @internal
   */
  setAt(key: string, entry: StoredEntry, options: SetOptions, seq: number): boolean {
    if (seq < this.#floor) return false;
    for (const tag of entry.tags) {
      const at = this.#tagSeq.get(tag);
      if (at !== undefined && at > seq) return false;
    }
    const variant = options.variant === true;
    const size = slotBytes(key, entry, variant);
    if (size > this.maxBytes) return false;
    entry = compact(entry);
    // Replacing a key is not one more variant: the old slot goes before the variants are counted.
    // An entry read since it was stored, stored again valid (its compressed copy), stays protected.
    const old = this.#slots[shardOf(key)]!.get(key);
    const keep = old !== undefined && old.protected && !(this.#stale.size !== 0 && this.#isStale(old));
    this.#remove(key);
    if (variant) {
      const group = this.#variants[shardOf(entry.path)]!.get(entry.path);
      if (group !== undefined) {
        while (group.size > 0 && group.size >= options.maxVariantsPerPath) this.#remove(leastRecentlyUsed(group)!.key);
      }
    }
    const slot: Slot = { id: ++this.#lastId, key, entry, size, variant, used: ++this.#clock, protected: false, newer: undefined, older: undefined };
    this.#slots[shardOf(key)]!.set(key, slot);
    this.#count++;
    this.#link(slot);
    this.#bytes += size;
    if (keep) this.#protect(slot);
    for (const tag of entry.tags) this.#index(tag, key);
    if (variant) {
      const variants = this.#variants[shardOf(entry.path)]!;
      let group = variants.get(entry.path);
      if (group === undefined) variants.set(entry.path, (group = new Set()));
      group.add(slot);
    }
    // Probation's least recently used first; the new slot itself last (it fits alone: see above).
    while (this.#bytes > this.maxBytes) {
      const victim = this.#oldest !== undefined && this.#oldest !== slot ? this.#oldest : (this.#oldestProtected ?? slot);
      this.#remove(victim.key);
    }
    return true;
  }

  /**
   * Invalidates the tags. When the tags are carried by at most `LAZY_TAG_ENTRIES` entries
   * together, the entries are removed at once; when by more (`layout`, on every page, or 10,000
   * paths of an entry each), they are invalid at once and removed in the background, a slice of
   * at most a few milliseconds per turn of the event loop, so that invalidating a tag on a
   * million entries, or 10,000 paths, does not stall the process. More than `LAZY_TAG_ENTRIES`
   * tags are not even looked up in the call: it records two numbers per tag. Meanwhile `get()`
   * checks the tags of the entry it finds (one Map lookup per tag), `entries()` leaves the
   * invalid ones out, `size` and `bytes` still count them, and `info()` finishes the removal
   * first. (While the freeing walks a tag's entries, `entries({ tag })` may leave out entries of
   * the tag stored after the invalidation, until it reaches them.)
   */
  invalidate(tags: readonly string[]): number {
    const seq = ++this.#seq;
    for (const tag of tags) this.#tagSeq.set(tag, seq);
    // More than `LAZY_TAG_ENTRIES` tags: lazy without a look at the tag index (a cache miss per
    // tag in a large store); marking a tag that has no entry costs as little.
    const many = tags.length > LAZY_TAG_ENTRIES;
    // A tag whose earlier lazy invalidation is still being freed: some of its entries (stored
    // since, not walked yet) are listed only in the Set that freeing holds, out of the index, so
    // only a mark of its own reaches them.
    let lazy = many || (this.#stale.size !== 0 && tags.some((t) => this.#stale.has(t)));
    if (!lazy) {
      let reached = 0;
      for (const tag of tags) {
        const keys = this.#byTag[shardOf(tag)]!.get(tag);
        if (keys !== undefined) reached += typeof keys === 'string' ? 1 : keys.size;
      }
      lazy = reached > LAZY_TAG_ENTRIES;
    }
    if (!lazy) {
      for (const tag of tags) {
        const keys = this.#byTag[shardOf(tag)]!.get(tag);
        if (typeof keys === 'string') this.#remove(keys);
        else if (keys !== undefined) for (const key of [...keys]) this.#remove(key);
      }
    } else {
      // The tags' slots made up to now are invalid. A few tags (`layout`): their Sets of keys
      // leave the tag index now, which lists only the entries stored from now on; they are
      // walked, never shrunk (V8 would rehash a Set of a million in one removal). Many tags: the
      // index is not looked at here; each tag's Set leaves it when the freeing reaches the tag.
      // A mark of its own (an id no slot gets), so that a reclamation of the same tag before it,
      // ending first, does not forget the tag's mark while this one still holds its keys: with
      // the last slot's id, two lazy invalidations with no store between them shared one.
      const mark = ++this.#lastId;
      let detached: Map<string, TagKeys> | undefined;
      for (const tag of tags) {
        this.#stale.set(tag, mark);
        if (many) continue;
        const byTag = this.#byTag[shardOf(tag)]!;
        const keys = byTag.get(tag);
        if (keys === undefined || typeof keys === 'string') continue;
        byTag.delete(tag);
        (detached ??= new Map()).set(tag, keys);
      }
      this.#reclaims.push({ tags: tags.slice(), mark, detached, next: 0, keys: undefined });
      this.#reclaimTimer ??= setImmediate(this.#reclaimSlice).unref();
    }
    if (this.#tagSeq.size > this.#maxTrackedTags) {
      this.#floor = seq;
      this.#tagSeq.clear();
    }
    return seq;
  }

  /**
   * Drops the entry of `key`, if any. Unlike `invalidate`, records nothing: fills of the key are
   * not refused.
   * @internal
   */
  delete(key: string): void {
    this.#remove(key);
  }

  clear(): void {
    this.#floor = ++this.#seq;
    this.#stale.clear();
    this.#reclaims = [];
    if (this.#reclaimTimer !== undefined) clearImmediate(this.#reclaimTimer);
    this.#reclaimTimer = undefined;
    for (const slots of this.#slots) slots.clear();
    this.#count = 0;
    this.#newest = this.#oldest = undefined;
    this.#newestProtected = this.#oldestProtected = undefined;
    this.#protectedBytes = 0;
    for (const byTag of this.#byTag) byTag.clear();
    for (const variants of this.#variants) variants.clear();
    this.#tagSeq.clear();
    this.#bytes = 0;
  }

  close(): void {
    this.clear();
  }

  /**
   * Lists entries in storing order, without changing their recency. The cursor is the id of the
   * last slot listed: a page walks the store from its oldest entry (a few milliseconds for
   * 100,000 entries), a tag's entries are found through the tag index.
   */
  entries(options: EntryListOptions = {}): EntryPage {
    const limit = listLimit(options);
    const after = options.cursor === undefined ? 0 : Number(options.cursor);
    if (!Number.isSafeInteger(after) || after < 0) throw new TypeError(`page-dumper: entries() got a cursor it did not make: ${JSON.stringify(options.cursor)}`);
    const { pathPrefix, tag } = options;
    const found: Slot[] = [];
    const stale = this.#stale.size !== 0;
    const fits = (slot: Slot) =>
      slot.id > after && (pathPrefix === undefined || slot.entry.path.startsWith(pathPrefix)) && !(stale && this.#isStale(slot));
    if (tag !== undefined) {
      const keys = this.#byTag[shardOf(tag)]!.get(tag);
      for (const key of typeof keys === 'string' ? [keys] : (keys ?? [])) {
        const slot = this.#slots[shardOf(key)]!.get(key);
        if (slot !== undefined && fits(slot)) found.push(slot);
      }
      found.sort((a, b) => a.id - b.id);
      if (found.length > limit) {
        found.length = limit;
        return { entries: found.map((x) => entryInfo(x.key, x.entry, x.size)), cursor: String(found[limit - 1]!.id) };
      }
      return { entries: found.map((x) => entryInfo(x.key, x.entry, x.size)), cursor: undefined };
    }
    // Each shard is in storing order: the first `limit` + 1 slots that fit in each, merged, hold
    // the page's and tell whether there is more.
    for (const slots of this.#slots) {
      let n = 0;
      for (const slot of slots.values()) {
        if (!fits(slot)) continue;
        found.push(slot);
        if (++n > limit) break;
      }
    }
    found.sort((a, b) => a.id - b.id);
    if (found.length > limit) {
      found.length = limit;
      return { entries: found.map((x) => entryInfo(x.key, x.entry, x.size)), cursor: String(found[limit - 1]!.id) };
    }
    return { entries: found.map((x) => entryInfo(x.key, x.entry, x.size)), cursor: undefined };
  }

  /** Counts what `get()` would answer: removes first what lazily invalidated tags left (see `invalidate`). */
  info(): StoreInfo {
    while (this.#reclaims.length > 0) this.#reclaim(Number.POSITIVE_INFINITY);
    let tags = 0;
    for (const byTag of this.#byTag) tags += byTag.size;
    return { entries: this.#count, bytes: this.#bytes, tags, sequence: this.#seq };
  }

  /**
   * The purge queue (see `Store.queuePush`), in this process's memory like the entries: a crash
   * loses the purges not yet acknowledged, and processes do not share it.
   */
  readonly #queue = new MemoryQueue();

  queuePush(queue: string, payloads: readonly string[], notBefore: number): number[] {
    return this.#queue.queuePush(queue, payloads, notBefore);
  }

  queueClaim(queue: string, options: QueueClaimOptions): QueuedItem[] {
    return this.#queue.queueClaim(queue, options);
  }

  queueAck(queue: string, ids: readonly number[]): void {
    this.#queue.queueAck(queue, ids);
  }

  queueRetry(queue: string, ids: readonly number[], notBefore: number): void {
    this.#queue.queueRetry(queue, ids, notBefore);
  }

  queueStats(queue: string): QueueStats {
    return this.#queue.queueStats(queue);
  }

  /**
   * Makes `slot` the most recent on probation. (Its `used` stamp is set by a store or a read
   * only: the variants of a path are compared by their stamps when one must be evicted.)
   */
  #link(slot: Slot): void {
    slot.protected = false;
    slot.older = this.#newest;
    slot.newer = undefined;
    if (this.#newest !== undefined) this.#newest.newer = slot;
    this.#newest = slot;
    if (this.#oldest === undefined) this.#oldest = slot;
  }

  /** Makes `slot` the most recent in the protected list. */
  #linkProtected(slot: Slot): void {
    slot.protected = true;
    slot.older = this.#newestProtected;
    slot.newer = undefined;
    if (this.#newestProtected !== undefined) this.#newestProtected.newer = slot;
    this.#newestProtected = slot;
    if (this.#oldestProtected === undefined) this.#oldestProtected = slot;
  }

  /**
   * Moves `slot`, read on probation, to the protected list; the protected list's least recently
   * used entries go back to probation, as its most recent, while the list is over its share.
   */
  #protect(slot: Slot): void {
    this.#unlink(slot);
    this.#linkProtected(slot);
    this.#protectedBytes += slot.size;
    while (this.#protectedBytes > this.#protectedMax && this.#oldestProtected !== slot) {
      const out = this.#oldestProtected!;
      this.#unlink(out);
      this.#protectedBytes -= out.size;
      this.#link(out);
    }
  }

  /** Lists `key` in the tag index under `tag`. */
  #index(tag: string, key: string): void {
    const byTag = this.#byTag[shardOf(tag)]!;
    const keys = byTag.get(tag);
    if (keys === undefined) byTag.set(tag, key);
    else if (typeof keys !== 'string') {
      keys.add(key);
      if (keys.size > KEY_SHARDS_FROM && keys instanceof Set) byTag.set(tag, new KeyShards(keys));
    } else if (keys !== key) byTag.set(tag, new Set([keys, key]));
  }

  /** Whether one of the slot's tags was lazily invalidated after the slot was made. */
  #isStale(slot: Slot): boolean {
    for (const tag of slot.entry.tags) {
      const mark = this.#stale.get(tag);
      if (mark !== undefined && slot.id <= mark) return true;
    }
    return false;
  }

  readonly #reclaimSlice = (): void => {
    this.#reclaimTimer = undefined;
    const end = performance.now() + RECLAIM_TURN_MS;
    for (let n = 0; n < RECLAIM_SLICE && this.#reclaims.length > 0 && performance.now() < end; n += 100) this.#reclaim(100);
    if (this.#reclaims.length > 0) this.#reclaimTimer = setImmediate(this.#reclaimSlice).unref();
  };

  /**
   * Removes up to `budget` slots of lazily invalidated tags, oldest invalidation first (and,
   * the last slice of an invalidation, forgets its marks: one Map removal per tag).
   */
  #reclaim(budget: number): void {
    while (budget > 0 && this.#reclaims.length > 0) {
      const job = this.#reclaims[0]!;
      for (;;) {
        if (job.next === job.tags.length) {
          this.#reclaims.shift();
          // A later invalidation of the same tag has a reclamation of its own, with its own mark.
          for (const tag of job.tags) if (this.#stale.get(tag) === job.mark) this.#stale.delete(tag);
          break;
        }
        const tag = job.tags[job.next]!;
        if (job.keys === undefined) {
          let held = job.detached?.get(tag);
          if (held === undefined) {
            // What the index holds for the tag now: its invalid slots, and those stored since.
            const byTag = this.#byTag[shardOf(tag)]!;
            const keys = byTag.get(tag);
            if (typeof keys !== 'object') {
              job.next++;
              if (keys !== undefined) this.#removeUpTo(keys, Math.max(job.mark, this.#stale.get(tag) ?? 0));
              if (--budget === 0) return;
              continue;
            }
            byTag.delete(tag);
            held = keys;
          }
          job.keys = held.values();
        }
        const next = job.keys.next();
        if (next.done === true) {
          job.keys = undefined;
          job.next++;
          continue;
        }
        const key = next.value;
        const slot = this.#slots[shardOf(key)]!.get(key);
        if (slot !== undefined) {
          // Invalid under this invalidation's mark, or a later one of the same tag's (whose own
          // freeing does not see what this one holds), if it still carries the tag: a page
          // stored again without it is not the tag's any more (the Set walked here, out of the
          // index, still lists its key).
          if (slot.entry.tags.includes(tag)) {
            if (slot.id <= Math.max(job.mark, this.#stale.get(tag) ?? 0)) this.#remove(key);
            // Stored since the invalidation, before the Set left the index: listed again.
            else this.#index(tag, key);
          }
        }
        if (--budget === 0) return;
      }
    }
  }

  /** Removes the entry of `key` if its slot was made up to `mark` (not stored again since). */
  #removeUpTo(key: string, mark: number): void {
    const slot = this.#slots[shardOf(key)]!.get(key);
    if (slot !== undefined && slot.id <= mark) this.#remove(key);
  }

  /** Takes `slot` out of its list (`slot.protected` says which). */
  #unlink(slot: Slot): void {
    if (slot.protected) {
      if (slot.newer !== undefined) slot.newer.older = slot.older;
      else this.#newestProtected = slot.older;
      if (slot.older !== undefined) slot.older.newer = slot.newer;
      else this.#oldestProtected = slot.newer;
    } else {
      if (slot.newer !== undefined) slot.newer.older = slot.older;
      else this.#newest = slot.older;
      if (slot.older !== undefined) slot.older.newer = slot.newer;
      else this.#oldest = slot.newer;
    }
    slot.newer = slot.older = undefined;
  }

  #remove(key: string): void {
    const slots = this.#slots[shardOf(key)]!;
    const slot = slots.get(key);
    if (slot === undefined) return;
    slots.delete(key);
    this.#count--;
    this.#unlink(slot);
    if (slot.protected) this.#protectedBytes -= slot.size;
    this.#bytes -= slot.size;
    for (const tag of slot.entry.tags) {
      const byTag = this.#byTag[shardOf(tag)]!;
      const keys = byTag.get(tag);
      if (keys === key) byTag.delete(tag);
      else if (typeof keys === 'object') {
        keys.delete(key);
        if (keys.size === 1) byTag.set(tag, keys.values().next().value!);
      }
    }
    if (slot.variant) {
      const variants = this.#variants[shardOf(slot.entry.path)]!;
      const group = variants.get(slot.entry.path);
      if (group !== undefined) {
        group.delete(slot);
        if (group.size === 0) variants.delete(slot.entry.path);
      }
    }
  }
}
brandClass(MemoryStore, 'MemoryStore');
