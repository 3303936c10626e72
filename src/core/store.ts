/** A value or a promise of it: in-process stores answer synchronously, so a hit allocates no promise. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * One stored response. Entries are immutable once stored; a store may keep the object it was
 * given (the memory store does) or serialize it (shared stores do).
 */
export interface StoredEntry {
  /** HTTP status, one of the dumper's `statuses` (200 by default). */
  readonly status: number;
  /**
   * Response headers as a flat list `[name, value, name, value, ...]`, names lower-case. Includes
   * `etag`, `content-length` and `date` (when the page was generated); excludes hop-by-hop
   * headers and `age`, which is made per reply.
   */
  readonly headers: readonly string[];
  /** The complete response body. */
  readonly body: Uint8Array;
  /** The entity tag served with the entry, as it appears in `headers`. */
  readonly etag: string;
  /** When the response was stored, in milliseconds since the epoch (for `Age`). */
  readonly storedAt: number;
  /** The store's sequence number, read before the response was rendered. */
  readonly seq: number;
  /**
   * The canonical path tag of the page. Always also the first element of `tags`; stores use it
   * to bound the number of query-string variants of one path.
   */
  readonly path: string;
  /** Every tag of the entry: its path tag first, then prefix tags and tags added during the render. */
  readonly tags: readonly string[];
  /**
   * The render read the request's cookies, and the request carried none (after ignored cookies
   * were removed): the page is the anonymous one, served only to requests without cookies. A
   * store must keep this flag with the entry. Absent or `false`: served to every request.
   */
  readonly anonymousOnly?: boolean;
  /**
   * The body compressed, one element per content coding, each coding at most once. The dumper
   * stores an entry first without them (so a miss never waits on a compressor), then, once they
   * are made off the request path, `set`s the same entry again with them: the fill protocol
   * applies to that `set` as to the first. A store must keep them with the entry, in order, count
   * their bytes in its size bound, and drop them with the entry. Absent or empty: none yet.
   */
  readonly encodings?: readonly EncodedBody[];
}

/** A content coding the dumper compresses bodies with (RFC 9110 §8.4.1), as `Content-Encoding` names it. */
export type ContentCoding = 'br' | 'gzip' | 'zstd';

/** The body of an entry in one content coding. */
export interface EncodedBody {
  readonly coding: ContentCoding;
  /** The whole body in that coding. */
  readonly body: Uint8Array;
}

/** Limits the dumper passes with every `set`. */
export interface SetOptions {
  /**
   * How many query-string variants of one path (entries with the same `path` that are stored with
   * `variant: true`) the store keeps. Storing one more evicts the least recently used variant of
   * that path (a shared store may evict the least recently stored one instead). Never refuses.
   */
  readonly maxVariantsPerPath: number;
  /**
   * Whether this entry is a query-string variant of its path (its key has a query string). Plain
   * entries are never counted against `maxVariantsPerPath` and never evicted to make room for a
   * variant, so a flood of junk query strings cannot push the page itself out.
   */
  readonly variant: boolean;
}

/**
 * The storage contract. Every method may answer synchronously or with a promise.
 *
 * The contract (checked by `runStoreConformance` from `page-dumper/testing`):
 * - `sequence()` reads the current sequence number without changing it.
 * - `invalidate(tags)` atomically increments the sequence number, records the new value as the
 *   invalidation point of every tag, and makes every entry carrying one of the tags unreachable;
 *   it resolves to the new sequence number.
 * - `set(key, entry)` stores the entry unless one of `entry.tags` was invalidated at a sequence
 *   number greater than `entry.seq` (or the store was cleared since), in which case it stores
 *   nothing and resolves to `false`. This is what closes the render/invalidate race.
 * - `get(key)` resolves to the entry only while none of its tags was invalidated after `entry.seq`,
 *   with the `seq` (and every other field) it was stored with: the dumper sets an entry it got
 *   again, with its compressed `encodings`, and relies on `seq` for the check above.
 * - `clear()` drops every entry and, like `invalidate`, refuses fills that started before it.
 */
export interface Store {
  sequence(): MaybePromise<number>;
  get(key: string): MaybePromise<StoredEntry | undefined>;
  set(key: string, entry: StoredEntry, options: SetOptions): MaybePromise<boolean>;
  invalidate(tags: readonly string[]): MaybePromise<number>;
  clear(): MaybePromise<void>;
  /** Releases connections, timers and files. The dumper calls it from `dumper.close()`. */
  close?(): MaybePromise<void>;
  /**
   * How logs and errors name this store: its kind and where it is, such as
   * `RedisStore redis://cache.internal:6379/2` or `SqliteStore /var/cache/site/pages.db`. Never a
   * password or a token. Optional: without it, the store's class name is used.
   */
  readonly label?: string;
  /**
   * A durable work queue, optional: a shared store that has one keeps the purges for edge caches
   * (`createDumper({ purgers })`) where every process sees them and a crash loses none. A store
   * without it leaves the dumper an in-process queue. See `PurgeQueueStore` for the contract.
   */
  queuePush?(queue: string, payloads: readonly string[], notBefore: number): MaybePromise<readonly number[]>;
  queueClaim?(queue: string, options: QueueClaimOptions): MaybePromise<readonly QueuedItem[]>;
  queueAck?(queue: string, ids: readonly number[]): MaybePromise<void>;
  queueRetry?(queue: string, ids: readonly number[], notBefore: number): MaybePromise<void>;
  queueStats?(queue: string): MaybePromise<QueueStats>;
  /**
   * Lists entries with their metadata (never their bodies), one page at a time, optional: what
   * operators' tools (the `page-dumper` CLI) read. See `EnumerableStore` for the contract.
   */
  entries?(options?: EntryListOptions): MaybePromise<EntryPage>;
  /** Counts what the store holds, optional (see `EnumerableStore`). */
  info?(): MaybePromise<StoreInfo>;
}

/** What `Store.entries()` lists: every filter given must hold. */
export interface EntryListOptions {
  /**
   * Only entries whose `path` (their path tag, with the dumper's key prefix) starts with this
   * string. A plain string prefix: `'dumper.cached_path./blog'` also lists `/blogroll`.
   */
  readonly pathPrefix?: string;
  /** Only entries carrying this tag (as stored, with the key prefix). */
  readonly tag?: string;
  /**
   * At most this many entries in the page (a store may answer fewer, even none, before the end:
   * only `cursor: undefined` says the listing is over).
   * @default 100
   */
  readonly limit?: number;
  /** Where to go on: the `cursor` of the previous page. Absent: from the start. */
  readonly cursor?: string;
}

/** One page of `Store.entries()`. */
export interface EntryPage {
  readonly entries: readonly EntryInfo[];
  /** Pass it back for the next page; `undefined` when there is none. */
  readonly cursor: string | undefined;
}

/** An entry as `Store.entries()` lists it: everything but the body bytes. */
export interface EntryInfo {
  readonly key: string;
  readonly status: number;
  /** Response headers as stored, `[name, value, ...]`. */
  readonly headers: readonly string[];
  readonly etag: string;
  readonly storedAt: number;
  readonly seq: number;
  readonly path: string;
  readonly tags: readonly string[];
  readonly anonymousOnly: boolean;
  /** Bytes of the body. */
  readonly bodyBytes: number;
  /** The encoded bodies stored with it: coding and bytes, in order (empty when none). */
  readonly encodings: ReadonlyArray<{ readonly coding: ContentCoding; readonly bytes: number }>;
  /** What the store counts for the entry against its size bound (its own measure: see each store). */
  readonly bytes: number;
}

/** What `Store.info()` answers. */
export interface StoreInfo {
  /** Entries held (that `get()` would still answer). */
  readonly entries: number;
  /** Bytes they take, as the store counts them (see `EntryInfo.bytes`). */
  readonly bytes: number;
  /** Distinct tags of the entries held (RedisStore: its tag index sets, which may outlive entries Redis expired or evicted). */
  readonly tags: number;
  /** The current sequence number (`sequence()`). */
  readonly sequence: number;
}

/**
 * The enumeration methods of a store (a store has both or neither). The contract, checked by
 * `runStoreConformance`:
 * - `entries({ pathPrefix, tag, limit, cursor })` answers a page of entries that `get()` would
 *   answer (never one invalidated or evicted), each at most once over the whole listing, with the
 *   fields it was stored with, and a cursor to go on with; it never holds every entry in memory
 *   nor blocks the store for long (Redis: SCAN, never KEYS; SQLite: indexed queries), so that it
 *   works on millions of entries. An entry stored or dropped during a listing may or may not be
 *   listed; every entry held for the whole listing is.
 * - `info()` counts entries, bytes and tags, and reads the sequence number.
 */
export type EnumerableStore = Required<Pick<Store, 'entries' | 'info'>>;

/** Whether a store has the enumeration methods. */
export function isEnumerable(store: Store): store is Store & EnumerableStore {
  return typeof store.entries === 'function' && typeof store.info === 'function';
}

/**
 * Every entry `store.entries(options)` lists, page after page (pages of `options.limit`).
 * Stops early when the caller breaks out of the loop.
 */
export async function* listEntries(store: Store & EnumerableStore, options: Omit<EntryListOptions, 'cursor'> = {}): AsyncGenerator<EntryInfo> {
  let cursor: string | undefined;
  do {
    const page = await store.entries({ ...options, cursor });
    yield* page.entries;
    cursor = page.cursor;
  } while (cursor !== undefined);
}

/** One item of a queue, as `queueClaim()` hands it out. */
export interface QueuedItem {
  /** Unique in its queue and increasing in push order; never reused. */
  readonly id: number;
  readonly payload: string;
  /** How many times it was claimed, this claim included (1 at the first). */
  readonly attempts: number;
}

export interface QueueClaimOptions {
  /** At most this many items. */
  readonly max: number;
  /** The caller's clock, milliseconds since the epoch: items due at or before it are claimed. */
  readonly now: number;
  /**
   * Milliseconds the claimed items stay invisible to other claims (they are due again at
   * `now + lease`): the claimer acks or retries them before that, or, if it died, someone else
   * claims them after it.
   */
  readonly lease: number;
}

export interface QueueStats {
  /** Items in the queue, claimed or not. */
  readonly size: number;
  /** The smallest id left, or `undefined` when the queue is empty. */
  readonly firstId: number | undefined;
  /** The largest id left, or `undefined` when the queue is empty. */
  readonly lastId: number | undefined;
  /** When the next item is due (ms since the epoch; claimed items at the end of their lease), or `undefined`. */
  readonly nextDue: number | undefined;
}

/**
 * The queue methods of a store, all of them (a store has all five or none). The contract, checked
 * by `runStoreConformance`:
 * - `queuePush(queue, payloads, notBefore)` appends one item per payload, due at `notBefore`,
 *   durably (as durably as the store keeps anything), and resolves to their ids, in order.
 * - `queueClaim(queue, { max, now, lease })` atomically takes up to `max` items due at `now`
 *   (which ones, when more are due, is the store's choice: oldest id first, or earliest due
 *   first as `RedisStore` does; every due item is taken by some claim), makes them due again at
 *   `now + lease`, counts the attempt, and resolves to them. Two concurrent claims (two processes) never get the same item while its lease runs.
 * - `queueAck(queue, ids)` removes the items (unknown ids are ignored).
 * - `queueRetry(queue, ids, notBefore)` makes the items due at `notBefore` (unknown ids are ignored).
 * - `queueStats(queue)` counts them. Queues of different names never see each other's items, and
 *   `clear()` leaves the queues alone: they hold work still to be done, not pages.
 */
export type PurgeQueueStore = Required<Pick<Store, 'queuePush' | 'queueClaim' | 'queueAck' | 'queueRetry' | 'queueStats'>>;

/** Whether a store has the queue methods. */
export function hasQueue(store: Store): store is Store & PurgeQueueStore {
  return (
    typeof store.queuePush === 'function' &&
    typeof store.queueClaim === 'function' &&
    typeof store.queueAck === 'function' &&
    typeof store.queueRetry === 'function' &&
    typeof store.queueStats === 'function'
  );
}

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}
