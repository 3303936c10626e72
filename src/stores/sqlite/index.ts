/**
 * page-dumper/sqlite: a store in one SQLite file (better-sqlite3), shared by every process on the
 * machine that opens the same file.
 *
 * ```ts
 * import { SqliteStore } from 'page-dumper/sqlite';
 * const dumper = createDumper({ store: new SqliteStore({ path: '/var/cache/site/pages.sqlite' }) });
 * ```
 *
 * Only this entry point imports better-sqlite3 (an optional peer dependency): `page-dumper` itself
 * never loads it.
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { DumperError } from '../../core/errors.js';
import type {
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
import { decodeEncodings, encodeEncodings, encodingSizes, LocalCopies, type LocalCopy } from '../local-copies.js';
import { listLimit, makeEntry } from '../memory/index.js';

export interface SqliteStoreOptions {
  /**
   * The database file, created (with its tables) if missing. Every process that opens the same
   * file shares the cache: an invalidation committed by one is seen by the next read of all.
   * The store opens it in WAL mode and closes it in `close()`. Give `path` or `database`.
   * The directory must exist. `':memory:'` works but is private to the store, like a MemoryStore.
   */
  path?: string;
  /**
   * An open better-sqlite3 database to keep the tables in (the app's own, say). Its settings are
   * left as they are (open it in WAL mode, `db.pragma('journal_mode = WAL')`, so that readers do
   * not wait for writers), and `close()` leaves it open. Give `path` or `database`.
   */
  database?: Database.Database;
  /**
   * Prefix of the store's table, index and trigger names, so that several stores (or the app's
   * own tables) can live in one file. Letters, digits and `_`, not starting with a digit.
   * @default 'page_dumper_'
   */
  tablePrefix?: string;
  /**
   * Upper bound of the bytes the entries take: bodies, encoded bodies (`encodings`), headers, keys
   * and tags, plus a fixed overhead per entry and per tag. The oldest stored entries are evicted
   * past it. The file is larger by SQLite's own page overhead, and keeps its size when entries go
   * (freed pages are reused, `VACUUM` gives them back).
   * @default 256 MiB
   */
  maxBytes?: number;
  /**
   * Upper bound of the number of entries, on top of `maxBytes`; the oldest stored are evicted
   * past it.
   * @default unbounded (only `maxBytes` applies)
   */
  maxEntries?: number;
  /**
   * How many tag invalidation points are kept before they are folded into one floor sequence
   * number (fills that started before the floor are then refused: safe, slightly fewer stores
   * for renders in flight at that moment).
   * @default 10000
   */
  maxTrackedTags?: number;
  /**
   * Bytes of entries this process keeps decoded, least recently used evicted past it. Such a copy
   * is never served on trust: a `get()` of a key with a copy first looks the key up in the file
   * (one index lookup, no row read) and serves the copy only if the row it was read from is still
   * the key's row. Rows are never updated in place and their ids never reused, so the same id
   * means the same entry. A hit from the copy skips reading and decoding the body; a key without
   * a copy costs one read of its row, as with `0`.
   *
   * A copy is made by this process's own `set()`, and by a read only at the key's second read
   * while it is among the last keys read without a copy (one remembered per 2 KiB of
   * `localBytes`, at least 64: for the default, 8,192 keys, about 1 MiB on top of the copies).
   * So hits spread evenly over many more entries than fit (a crawler walking a million pages)
   * neither pay for copies nor push out the copies of the pages read often. `0` turns it off.
   * @default 16 MiB
   */
  localBytes?: number;
  /**
   * How long, in milliseconds, a write (a fill, an invalidation, `clear()`, the purge queue's)
   * waits for another process's write lock before it fails with SQLITE_BUSY (the dumper then
   * answers from the app, and replays a failed invalidation later). The wait does not block the
   * event loop: a write that finds the lock taken answers with a promise and is tried again every
   * millisecond from a timer. `0` fails at once. Reads never wait (WAL). Only with `path`; an
   * injected `database` waits as long as its own timeout (better-sqlite3's `timeout` option).
   * @default 5000
   */
  busyTimeout?: number;
}

/**
 * WAL pages (4 KiB each by default) past which SQLite checkpoints in a commit of the store's own
 * connection once the background checkpointer runs (see the class comment): a backstop, reached
 * only when the checkpointer cannot keep up or has failed. SQLite's default is 1000.
 */
const CHECKPOINT_BACKSTOP = 16384;
/**
 * The size past which SQLite cuts the WAL file back (`journal_size_limit`). The cut is made in the
 * first commit after the WAL starts over, on the event loop, and costs what the file system takes
 * to free the pages: 20-25 ms for 50 MB on an idle machine, 100 ms and more on a busy one. Below
 * this size the WAL file is reused from its start instead. The checkpoints keep the WAL under
 * the backstop (64 MiB of 4 KiB pages) and a transaction, so only a WAL that readers kept from
 * starting over grows past this, and is cut back. Not cut by the checkpointer thread: the
 * TRUNCATE checkpoint that could do it starts the WAL over under a deferred transaction (the
 * app's own, around the store's calls), whose next write then fails with SQLITE_BUSY_SNAPSHOT.
 */
const WAL_KEPT_BYTES = 128 * 2 ** 20;
/**
 * The background thread of a store that opened its file (`path`), with a connection of its own:
 * - the checkpointer: asked with `0`, it runs a PASSIVE checkpoint (never waiting for readers or
 *   writers) and answers `{ checkpoint }` when it is done;
 * - the background deletes: asked with `'reclaim'`, it deletes what lazy invalidations and
 *   `clear()` marked (`workerData.reclaim`: the statements of `reclaimStatements`), in
 *   transactions scaled to about `RECLAIM_TX_MS` each, `RECLAIM_TURN_MS` of them per turn, a
 *   checkpoint after each turn, until none is left; then answers `{ reclaimed }`. Its connection
 *   never waits for the lock: a turn that finds it taken is tried again a millisecond later. So
 *   neither the deletes nor their checkpoints hold the event loop, however far apart on disk
 *   the entries are (a thousand scattered over a file of a million: seconds of page reads).
 * Plain CommonJS, evaluated by `Worker`: the same text serves both builds.
 */
const BACKGROUND_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
// A short wait while opening and preparing (another process may be recovering the WAL); none after.
const db = new Database(workerData.path, { fileMustExist: true, timeout: 1000 });
db.pragma('wal_autocheckpoint = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const { cleared, staleTags, range, unmark, anyStale, slice: first, min, max, txMs, turnMs } = workerData.reclaim;
const deleteCleared = db.prepare(cleared);
const tagsMarked = db.prepare(staleTags);
const deleteRange = db.prepare(range);
const unmarkTag = db.prepare(unmark);
const anyMarked = db.prepare(anyStale).pluck();
// As the store's own reclaimTx (for an injected database): see there.
const reclaimTx = db.transaction((n, until) => {
  if (deleteCleared.run(n).changes > 0) return true;
  let left = n;
  for (const { tag, mark } of tagsMarked.all(n)) {
    const done = deleteRange.run(tag, mark, left).changes;
    if (done === left) return true;
    unmarkTag.run(tag);
    left -= done;
    if (performance.now() > until) return true;
  }
  return anyMarked.get() === 1;
});
db.exec('PRAGMA busy_timeout = 0');
let closed = false;
let reclaiming = false;
let slice = first;
let backoff = 1;
function turn() {
  if (closed) return;
  const end = performance.now() + turnMs;
  let more = true;
  let wrote = false;
  try {
    while (more && performance.now() < end) {
      const t0 = performance.now();
      more = reclaimTx.immediate(slice, t0 + 2 * txMs);
      wrote = true;
      backoff = 1;
      const ms = performance.now() - t0;
      slice = Math.round(Math.min(max, Math.max(min, slice / 2, Math.min(slice * 2, (slice * txMs) / Math.max(ms, 0.01)))));
    }
  } catch (error) {
    if (!String(error && error.code).startsWith('SQLITE_BUSY')) {
      reclaiming = false;
      parentPort.postMessage({ reclaimed: false, error: String(error && error.message) });
      return;
    }
  }
  if (wrote) {
    try {
      checkpoint.get();
    } catch {}
  }
  if (!more) {
    reclaiming = false;
    parentPort.postMessage({ reclaimed: true });
    return;
  }
  // Busy: tried again a moment later, 1 ms at first, up to 50 ms while the lock stays taken.
  if (!wrote) backoff = Math.min(50, backoff * 2);
  setTimeout(turn, wrote ? 1 : backoff);
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    closed = true;
    db.close();
    parentPort.close();
    return;
  }
  if (m === 'reclaim') {
    // Sized afresh for what was just marked: entries stored together, deleted before, say nothing
    // of these.
    slice = first;
    if (!reclaiming) {
      reclaiming = true;
      setImmediate(turn);
    }
    return;
  }
  let answer;
  try {
    answer = checkpoint.get();
  } catch (error) {
    answer = { error: String(error && error.message) };
  }
  parentPort.postMessage({ checkpoint: answer });
});
`;

/** The statements that delete what lazy invalidations and `clear()` marked, for tables prefixed `p`. */
function reclaimStatements(p: string): { cleared: string; staleTags: string; range: string; unmark: string; anyStale: string } {
  return {
    cleared: `DELETE FROM ${p}entries WHERE id IN (SELECT id FROM ${p}entries WHERE id <= (SELECT cleared FROM ${p}state WHERE id = 1) ORDER BY id LIMIT ?)`,
    // One marked tag at a time, each a range of the tag index's key (tag, entry): the rows of
    // deleted entries go with them, so the range starts with what is left, and a tag whose range
    // is empty is unmarked at once, never searched again. (One statement over all the marked
    // tags, a join, searched every one of them again in each transaction: quadratic in the tags
    // of an invalidation of 10,000 paths; and left to itself, SQLite walked the whole tag index
    // instead, 90-180 ms at a million entries, even with no tag marked.)
    staleTags: `SELECT tag, mark FROM ${p}stale ORDER BY tag LIMIT ?`,
    range: `DELETE FROM ${p}entries WHERE id IN (SELECT entry FROM ${p}entry_tags WHERE tag = ? AND entry <= ? LIMIT ?)`,
    unmark: `DELETE FROM ${p}stale WHERE tag = ?`,
    anyStale: `SELECT EXISTS (SELECT 1 FROM ${p}stale)`,
  };
}

/** Bytes counted per entry on top of its body, headers, key and tags: the row, its rowid and key index. */
const ENTRY_OVERHEAD = 128;
/** Bytes counted per tag of an entry: its row in the tag index. */
const TAG_OVERHEAD = 24;
/** Bytes counted per query-string variant on top of its path: its row in the variant index. */
const VARIANT_OVERHEAD = 16;
/**
 * The layout of the tables, kept in the state row. A file of layout 1, 2 or 3 is upgraded in place
 * when opened (see `#upgrade`); a file of any other layout is refused at construction.
 */
const SCHEMA_VERSION = 4;
/**
 * An invalidation whose tags are carried by more entries than this (together) is made lazily:
 * its entries are invalid at once (reads check the tags in `stale`), and deleted afterwards, on
 * the background thread (see `BACKGROUND_THREAD`; with an injected `database`, a slice per turn
 * of the event loop). Deleting an entry in the invalidation's own transaction costs microseconds
 * in a small file, but in a large one its pages are far apart: at a million entries, 400-550 µs
 * each for entries spread over the file (the row, its key, its two tag rows, each a page of WAL,
 * synced), and 2.5 ms with the file out of the page cache, so 100 paths held the event loop 53 ms
 * and 1,000 paths 363 ms (BENCHMARKS.md, "SqliteStore: what the stalls were").
 */
const LAZY_ENTRIES = 16;
/**
 * Entries deleted per background transaction at first, and its bounds: after each, the slice is
 * scaled by `RECLAIM_TX_MS` over the time the transaction took (at most halved or doubled), so a
 * transaction takes about that. Entries stored together (a tag on every page, `clear()`) are
 * deleted a hundred or more at a time; entries spread over a large file, a few dozen.
 */
const RECLAIM_SLICE = 16;
const RECLAIM_SLICE_MIN = 4;
const RECLAIM_SLICE_MAX = 2000;
const RECLAIM_TX_MS = 2;
/** Tags per invalidation transaction (see `invalidate`): about 5 ms of marking at 5 µs a tag. */
const INVALIDATE_CHUNK = 1000;
/** Milliseconds of reclaiming per turn of the event loop, in transactions of the current slice. */
const RECLAIM_TURN_MS = 5;
/**
 * Keys remembered for admission to the local copies (see `#admit`): one per this many bytes of
 * `localBytes` (as many as copies of 2 KiB pages it holds: 8,192 for the default 16 MiB, about
 * 1 MiB of keys and set slots on top of the copies), and at least `SEEN_MIN`.
 */
const SEEN_BYTES = 2048;
const SEEN_MIN = 64;
const TABLE_PREFIX = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `PRAGMA synchronous` levels. */
const SYNC_FULL = 2;
/** Milliseconds between two tries of a write that found the file's write lock taken (see `#write`). */
const BUSY_RETRY_MS = 1;
/**
 * Fills waiting for the write lock (see `#write`) past which another fill is refused at once:
 * each holds its page, and a page not stored is only rendered again at its next request.
 */
const MAX_WAITING_FILLS = 256;

/** SQLite's answer that another connection holds the lock: SQLITE_BUSY or one of its extended codes. */
function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

type WriteKind = 'fill' | 'claim' | 'write';

/** A write that found the file's write lock taken, tried again every `BUSY_RETRY_MS` (see `#write`). */
interface WaitingWrite {
  readonly write: () => unknown;
  /** A fill (dropped at `close()`), a claim of queue items (refused then), or another write. */
  readonly kind: WriteKind;
  /** `performance.now()` past which it fails with the last SQLITE_BUSY error. */
  readonly until: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

interface EntryRow {
  id: number;
  anonymous_only: number;
  status: number;
  headers: string;
  tags: string;
  etag: string;
  stored_at: number;
  seq: number;
  path: string;
  body: Buffer;
  encodings: Buffer | null;
}

interface CountRow {
  bytes: number;
  entries: number;
}

function positiveInteger(name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`page-dumper: SqliteStore option "${name}" must be a positive integer, got ${String(value)}`);
  }
}

function byteLength(s: string): number {
  return Buffer.byteLength(s);
}

/**
 * A store in one SQLite file, for several processes on one machine (cluster workers, pm2, a
 * CLI next to the server): every read goes to the file, so an invalidation committed by one
 * process is seen by the next `get()` of every other, with no bus. The file survives restarts:
 * entries are kept and the sequence number never goes back.
 *
 * Answers synchronously (better-sqlite3 is synchronous), so a hit allocates no promise; a write
 * too, but while another connection holds the file's write lock (another process, or this
 * store's thread deleting): it then answers with a promise and waits off the event loop (see
 * `busyTimeout`). A hit never writes: it is either a lookup in the key's index that finds the row this process's copy
 * was decoded from (see `localBytes`), or one read of the row. A fill, an invalidation and `clear()`
 * are each one `BEGIN IMMEDIATE` transaction, which serializes them across processes: the
 * sequence bump, the tag invalidation points and the deletion of the entries they reach commit
 * together or not at all. Because invalidation deletes the entries it reaches in that same
 * transaction, and a fill checks the points in its own, a row in the table is valid but in two
 * cases, which a read checks without reading the row: an invalidation reaching more than 16
 * entries (a `layout` tag on every page, a few dozen paths) marks its tags with the last entry
 * id, and `clear()` marks every entry so; the rows are then deleted in the background, in
 * transactions of a few milliseconds (the number of rows adapts to what they cost), by the
 * process that made the mark (or the next one to open the file): on its background thread, or,
 * with an injected `database`, 5 ms per turn of the event loop. Deleting a million rows in the
 * invalidation's own transaction would hold the file's write lock, and the event loop, for many
 * seconds; in a large file, a hundred scattered ones already take tens of milliseconds (see
 * `LAZY_ENTRIES`).
 *
 * Checkpoints (copying the WAL into the file, then syncing both) run on a thread of their own
 * when the store opened the file (`path`): from its first write, the store asks a worker thread,
 * with a connection of its own, for a PASSIVE checkpoint after each of its commits (one at a
 * time, again when it ends if more was written). SQLite's automatic checkpoint would run them in
 * a commit, on this event loop: 1,000 pages copied and two syncs, which took up to hundreds of
 * milliseconds every dozen transactions of a large deletion. It stays on as a backstop, past 64
 * MiB of WAL, and takes over again if the thread fails. An injected `database` keeps its own
 * checkpoint settings. The same thread makes the background deletes, a checkpoint after each
 * turn of them: SQLite starts the WAL over only after a checkpoint copied all of it, so the WAL
 * holds about a turn's pages.
 *
 * Query-string variants of a path (`variant: true`) are bounded by `maxVariantsPerPath`: one more
 * evicts the least recently *stored* variant of that path, for the reason the byte bound evicts in
 * storing order (a hit never writes). Plain entries are neither counted nor evicted for variants.
 */
export class SqliteStore implements Store, PurgeQueueStore, EnumerableStore {
  /**
   * How logs and errors name the store: `SqliteStore <file>`, the file's absolute path (as
   * resolved against the working directory when the store was made), `SqliteStore :memory:` for
   * a private in-memory database, or with `database` the `name` it was opened with
   * (better-sqlite3's `Database#name`, the path as given to it).
   */
  readonly label: string;
  /** The database the tables live in. */
  readonly database: Database.Database;
  readonly tablePrefix: string;
  readonly maxBytes: number;
  readonly maxEntries: number;
  readonly localBytes: number;
  /** key → decoded entry, with the id of the row it was read from (see `localBytes`). */
  readonly #local: LocalCopies<LocalCopy<number>>;
  /**
   * Keys read from the file once, with no copy kept, each with its slot in `#seenRing` (see
   * `#admit`); `undefined` without local copies.
   */
  readonly #seen: Map<string, number> | undefined;
  /** The keys of `#seen` in the order read, by slot; the next one taken is `#seenNext`. */
  readonly #seenRing: Array<string | undefined> = [];
  #seenNext = 0;
  /** How many keys `#seen` remembers: one per `SEEN_BYTES` of `localBytes`, at least `SEEN_MIN`. */
  readonly #seenBound: number;
  readonly #owned: boolean;
  /** The connection's `synchronous` level outside invalidations (see `#durably`). */
  readonly #sync: number;
  /** `busyTimeout` of a store that opened its file; `undefined` with `database` (read from it each time). */
  readonly #busyTimeout: number | undefined;
  /** Writes waiting for the file's write lock, in the order they were asked for (see `#write`). */
  readonly #waiting: WaitingWrite[] = [];
  /** Of them, fills. */
  #waitingFills = 0;
  #waitTimer: NodeJS.Timeout | undefined;
  /**
   * The file is in WAL mode: a write may wait for the lock off the event loop (see `#write`). An
   * injected database in another journal mode keeps SQLite's own wait: there, a commit that finds
   * a reader must keep the lock it holds to get through, which giving up and trying again loses.
   */
  readonly #wal: boolean;
  #closed = false;
  /** The file, when the store opened it (`path`) and it is not `:memory:`: the checkpointer's. */
  readonly #file: string | undefined;
  /** The background checkpointer: not started yet, running, or `null` when unavailable. */
  #checkpointer: Worker | null | undefined;
  /** A checkpoint was asked of the checkpointer and it has not answered yet. */
  #checkpointing = false;
  /** This store committed a write since the last checkpoint was asked. */
  #unCheckpointed = false;
  /** A turn of reclaiming waits for the running checkpoint to end (see `#reclaimSlice`). */
  #reclaimWaiting = false;
  /** The background thread was asked to delete what is marked, and has not said it is done. */
  #reclaimOnThread = false;

  readonly #get: Database.Statement<[string], EntryRow>;
  readonly #idOf: Database.Statement<[string], number>;
  readonly #seq: Database.Statement<[], number>;
  readonly #counts: Database.Statement<[], CountRow>;
  /**
   * `PRAGMA` texts run with `exec`, never prepared: SQLite applies a pragma's setting when it
   * compiles the statement, so a prepared one sets it at `prepare()`, and not at its first run.
   */
  readonly #syncFull: string;
  readonly #syncRestore: string;
  readonly #set: (key: string, entry: StoredEntry, options: SetOptions, encodings: Buffer | undefined) => boolean;
  readonly #invalidate: (tags: readonly string[]) => number;
  readonly #clear: () => void;
  readonly #reclaimTx: () => boolean;
  readonly #pending: Database.Statement<[], number>;
  readonly #stale: Database.Statement<[], { entries: number; bytes: number }>;
  #reclaimTimer: NodeJS.Timeout | undefined;
  /** Entries deleted per background transaction now (see `RECLAIM_SLICE`). */
  #reclaimCount = RECLAIM_SLICE;

  constructor(options: SqliteStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('page-dumper: SqliteStore options must be an object with a "path" or a "database"');
    }
    const {
      path,
      database,
      tablePrefix = 'page_dumper_',
      maxBytes = 256 * 2 ** 20,
      maxEntries,
      maxTrackedTags = 10_000,
      localBytes = 16 * 2 ** 20,
      busyTimeout,
    } = options;
    if (path !== undefined && database !== undefined) {
      throw new TypeError('page-dumper: SqliteStore takes a "path" or a "database", not both');
    }
    if (path === undefined && database === undefined) {
      throw new TypeError('page-dumper: SqliteStore needs a "path" (a database file, created if missing) or a "database" (an open better-sqlite3 Database)');
    }
    if (path !== undefined && (typeof path !== 'string' || path === '')) {
      throw new TypeError(`page-dumper: SqliteStore option "path" must be a non-empty string, got ${path === '' ? 'an empty string' : typeof path}`);
    }
    if (database !== undefined && !isDatabase(database)) {
      throw new TypeError('page-dumper: SqliteStore option "database" must be an open better-sqlite3 Database');
    }
    if (typeof tablePrefix !== 'string' || !TABLE_PREFIX.test(tablePrefix)) {
      throw new TypeError(
        `page-dumper: SqliteStore option "tablePrefix" must be letters, digits and "_", not starting with a digit, got ${JSON.stringify(tablePrefix)}`,
      );
    }
    positiveInteger('maxBytes', maxBytes);
    if (maxEntries !== undefined) positiveInteger('maxEntries', maxEntries);
    positiveInteger('maxTrackedTags', maxTrackedTags);
    if (typeof localBytes !== 'number' || !Number.isSafeInteger(localBytes) || localBytes < 0) {
      throw new TypeError(`page-dumper: SqliteStore option "localBytes" must be a non-negative integer, got ${String(localBytes)}`);
    }
    if (busyTimeout !== undefined) {
      if (database !== undefined) {
        throw new TypeError('page-dumper: SqliteStore option "busyTimeout" applies to a "path" only; open the injected database with its own timeout');
      }
      if (typeof busyTimeout !== 'number' || !Number.isSafeInteger(busyTimeout) || busyTimeout < 0) {
        throw new TypeError(`page-dumper: SqliteStore option "busyTimeout" must be a non-negative integer (milliseconds), got ${String(busyTimeout)}`);
      }
    }
    this.label = `SqliteStore ${database !== undefined ? database.name : path === ':memory:' ? path : resolve(path!)}`;
    this.tablePrefix = tablePrefix;
    this.maxBytes = maxBytes;
    this.maxEntries = maxEntries ?? Number.POSITIVE_INFINITY;
    this.localBytes = localBytes;
    this.#local = new LocalCopies(localBytes);
    this.#seen = localBytes === 0 ? undefined : new Map();
    this.#seenBound = Math.max(SEEN_MIN, Math.floor(localBytes / SEEN_BYTES));
    this.#owned = database === undefined;
    this.#file = path !== undefined && path !== ':memory:' ? resolve(path) : undefined;
    this.#busyTimeout = database === undefined ? (busyTimeout ?? 5000) : undefined;

    let db: Database.Database | undefined = database;
    try {
      if (db === undefined) {
        db = new Database(path!, { timeout: this.#busyTimeout });
        // WAL: a read never waits for a write (nor a write for reads), and each read sees the
        // last committed transaction of every process. Setting it needs the file for a moment,
        // hence the busy timeout first (given to the constructor above).
        db.pragma('journal_mode = WAL');
        // NORMAL in WAL syncs at checkpoints instead of at every commit: a fill costs no fsync,
        // and the file stays consistent through a crash. A power loss may only lose the last
        // commits: harmless for a fill (a miss later), not for an invalidation, so those are
        // made durable one by one (see #durably).
        db.pragma('synchronous = NORMAL');
        // The WAL is reused after each checkpoint, but its file keeps its largest size unless told.
        db.pragma(`journal_size_limit = ${WAL_KEPT_BYTES}`);
      }
      this.database = db;
      this.#sync = Number(db.pragma('synchronous', { simple: true }));
      this.#createTables(db);
      const p = tablePrefix;
      const prepare = <P extends unknown[], R>(sql: string) => db!.prepare<P, R>(sql).safeIntegers(false);

      this.#get = prepare<[string], EntryRow>(
        `SELECT id, anonymous_only, status, headers, tags, etag, stored_at, seq, path, body, encodings FROM ${p}entries e WHERE key = ? AND ${valid(p)}`,
      );
      // Answered from the key's unique index alone (it holds the rowid), the state row and the
      // lazily invalidated tags (none but while a reclamation runs): no entry page is read.
      this.#idOf = prepare<[string], number>(`SELECT id FROM ${p}entries e WHERE key = ? AND ${valid(p)}`).pluck();
      this.#seq = prepare<[], number>(`SELECT seq FROM ${p}state WHERE id = 1`).pluck();
      this.#counts = prepare<[], CountRow>(`SELECT bytes, entries FROM ${p}state WHERE id = 1`);
      this.#syncFull = `PRAGMA synchronous = ${Math.max(this.#sync, SYNC_FULL)}`;
      this.#syncRestore = `PRAGMA synchronous = ${this.#sync}`;
      this.#wal = String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';

      // Tags travel as one JSON array (json_each): a statement per call, not one per tag, which
      // makes an invalidation of 10,000 paths about three times faster.
      const refusal = prepare<[string], { floor: number; point: number | null }>(
        `SELECT floor, (SELECT max(seq) FROM ${p}tag_points WHERE tag IN (SELECT value FROM json_each(?))) AS point FROM ${p}state WHERE id = 1`,
      );
      const deleteKey = prepare<[string], unknown>(`DELETE FROM ${p}entries WHERE key = ?`);
      // Both answered from the partial index of the variants alone.
      const variantCount = prepare<[string], number>(`SELECT count(*) FROM ${p}entries WHERE path = ? AND variant = 1`).pluck();
      const evictVariants = prepare<[string, number], unknown>(
        `DELETE FROM ${p}entries WHERE id IN (SELECT id FROM ${p}entries WHERE path = ? AND variant = 1 ORDER BY id LIMIT ?)`,
      );
      const insert = prepare<[string, string, number, number, number, number, string, string, string, number, number, Uint8Array, Buffer | null], unknown>(
        `INSERT INTO ${p}entries (key, path, variant, anonymous_only, seq, status, headers, tags, etag, stored_at, size, body, encodings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const insertTags = prepare<[number | bigint, string], unknown>(
        `INSERT OR IGNORE INTO ${p}entry_tags (tag, entry) SELECT value, ? FROM json_each(?)`,
      );
      const evictOldest = prepare<[], unknown>(`DELETE FROM ${p}entries WHERE id = (SELECT min(id) FROM ${p}entries)`);
      const bump = prepare<[], number>(`UPDATE ${p}state SET seq = seq + 1 WHERE id = 1 RETURNING seq`).pluck();
      const points = prepare<[number, string], unknown>(
        `INSERT INTO ${p}tag_points (tag, seq) SELECT value, ? FROM json_each(?) WHERE true ON CONFLICT (tag) DO UPDATE SET seq = excluded.seq`,
      );
      // Tags on more than LAZY_ENTRIES entries together (counted up to that), and any tag whose
      // earlier invalidation is still being reclaimed, are marked with the last entry id instead:
      // their entries up to it are invalid, and deleted later (see #reclaimSlice).
      const reach = prepare<[string], number>(
        `SELECT count(*) FROM (SELECT 1 FROM ${p}entry_tags WHERE tag IN (SELECT value FROM json_each(?)) LIMIT ${LAZY_ENTRIES + 1})`,
      ).pluck();
      const markStale = prepare<[string, number], unknown>(
        `INSERT INTO ${p}stale (tag, mark) SELECT value, (SELECT coalesce(max(id), 0) FROM ${p}entries) FROM json_each(?) j
         WHERE ? OR j.value IN (SELECT tag FROM ${p}stale)
         ON CONFLICT (tag) DO UPDATE SET mark = excluded.mark`,
      );
      const deleteTagged = prepare<[string], unknown>(
        `DELETE FROM ${p}entries WHERE id IN (SELECT entry FROM ${p}entry_tags WHERE tag IN (SELECT value FROM json_each(?) WHERE value NOT IN (SELECT tag FROM ${p}stale)))`,
      );
      const pointCount = prepare<[], number>(`SELECT count(*) FROM ${p}tag_points`).pluck();
      const fold = prepare<[number], unknown>(`UPDATE ${p}state SET floor = ? WHERE id = 1`);
      const dropPoints = prepare<[], unknown>(`DELETE FROM ${p}tag_points`);
      // Entries are not deleted here (a row at a time, with their tags: seconds for a million),
      // but made invalid by the id of the last one, and deleted later (see #reclaimSlice).
      const clearState = prepare<[], number>(
        `UPDATE ${p}state SET seq = seq + 1, floor = seq + 1, cleared = (SELECT coalesce(max(id), 0) FROM ${p}entries) WHERE id = 1 RETURNING seq`,
      ).pluck();
      const dropStale = prepare<[], unknown>(`DELETE FROM ${p}stale`);
      const counts = this.#counts;

      const maxEntriesBound = this.maxEntries;
      /** Stores the entry; its row id, or `undefined` when it is refused. */
      const setTx = db.transaction((key: string, entry: StoredEntry, options: SetOptions, encodings: Buffer | undefined): number | undefined => {
        const tags = JSON.stringify(entry.tags);
        const { floor, point } = refusal.get(tags)!;
        if (entry.seq < floor || (point !== null && point > entry.seq)) return undefined;
        const headers = JSON.stringify(entry.headers);
        let size = ENTRY_OVERHEAD + byteLength(key) + byteLength(entry.path) + byteLength(headers) + byteLength(tags) + byteLength(entry.etag);
        // The encoded bodies (with the few bytes naming them) count as the body does.
        size += entry.body.byteLength + (encodings?.length ?? 0);
        for (const tag of entry.tags) size += byteLength(tag) + TAG_OVERHEAD;
        const variant = options.variant === true;
        if (variant) size += byteLength(entry.path) + VARIANT_OVERHEAD;
        if (size > maxBytes) return undefined;
        // Replacing a key is not one more variant: the old row goes before the variants are counted.
        deleteKey.run(key);
        if (variant) {
          // The oldest stored variants go (see the class comment), as many as make room for this
          // one: more than one only after a larger maxVariantsPerPath was passed before.
          const excess = variantCount.get(entry.path)! - Math.max(options.maxVariantsPerPath, 1) + 1;
          if (excess > 0) evictVariants.run(entry.path, excess);
        }
        const { lastInsertRowid } = insert.run(
          key,
          entry.path,
          variant ? 1 : 0,
          entry.anonymousOnly === true ? 1 : 0,
          entry.seq,
          entry.status,
          headers,
          tags,
          entry.etag,
          entry.storedAt,
          size,
          entry.body,
          encodings ?? null,
        ) as Database.RunResult;
        insertTags.run(lastInsertRowid, tags);
        // Evicts in storing order (the rowid): a hit stays a pure read, with no write to record
        // its use. Recording it would take the file's one write lock on every hit, serializing
        // the hits of every process behind each other and behind every fill.
        for (;;) {
          const c = counts.get()!;
          if (c.bytes <= maxBytes && c.entries <= maxEntriesBound) break;
          evictOldest.run();
        }
        return Number(lastInsertRowid);
      });
      this.#set = (key, entry, options, encodings) => {
        const id = setTx.immediate(key, entry, options, encodings);
        this.#wrote();
        if (id === undefined) return false;
        this.#keep(key, id, entry);
        return true;
      };

      const maxTracked = maxTrackedTags;
      const invalidateTx = db.transaction((tags: readonly string[]): number => {
        const seq = bump.get()!;
        if (tags.length === 0) return seq;
        const json = JSON.stringify(tags);
        points.run(seq, json);
        markStale.run(json, reach.get(json)! > LAZY_ENTRIES ? 1 : 0);
        deleteTagged.run(json);
        if (pointCount.get()! > maxTracked) {
          fold.run(seq);
          dropPoints.run();
        }
        return seq;
      });
      this.#invalidate = (tags) => {
        const seq = invalidateTx.immediate(tags);
        this.#wrote();
        // Only when something is left to delete: this invalidation's lazy marks, or what another
        // one (of any process) left unfinished. Not a write transaction for nothing after each.
        if (this.#pending.get() === 1) this.#startReclaiming();
        return seq;
      };

      const clearTx = db.transaction((): void => {
        clearState.get();
        dropStale.run();
        dropPoints.run();
      });
      this.#clear = () => {
        clearTx.immediate();
        this.#wrote();
        this.#startReclaiming();
      };

      const reclaimSql = reclaimStatements(p);
      const deleteCleared = prepare<[number], unknown>(reclaimSql.cleared);
      const tagsMarked = prepare<[number], { tag: string; mark: number }>(reclaimSql.staleTags);
      const deleteRange = prepare<[string, number, number], unknown>(reclaimSql.range);
      const unmarkTag = prepare<[string], unknown>(reclaimSql.unmark);
      const anyMarked = prepare<[], number>(reclaimSql.anyStale).pluck();
      /** Deletes up to `slice` invalid entries; whether there may be more. */
      // The background thread's copy of it is in BACKGROUND_THREAD.
      const reclaimTx = db.transaction((slice: number, until: number): boolean => {
        if (deleteCleared.run(slice).changes > 0) return true;
        let left = slice;
        for (const { tag, mark } of tagsMarked.all(slice)) {
          const done = deleteRange.run(tag, mark, left).changes;
          if (done === left) return true;
          // No entry of the tag up to its mark is left, and none can come (the write lock is held
          // since the read of the mark; new entries get higher ids): its mark goes.
          unmarkTag.run(tag);
          left -= done;
          // A slice grown on entries stored together may reach entries scattered over the file.
          if (performance.now() > until) return true;
        }
        return anyMarked.get() === 1;
      });
      this.#reclaimTx = () => {
        const t0 = performance.now();
        const more = reclaimTx.immediate(this.#reclaimCount, t0 + 2 * RECLAIM_TX_MS);
        const ms = performance.now() - t0;
        const n = this.#reclaimCount;
        const scaled = Math.min(n * 2, Math.max(n / 2, (n * RECLAIM_TX_MS) / Math.max(ms, 0.01)));
        this.#reclaimCount = Math.round(Math.min(RECLAIM_SLICE_MAX, Math.max(RECLAIM_SLICE_MIN, scaled)));
        return more;
      };
      this.#pending = prepare<[], number>(
        `SELECT EXISTS (SELECT 1 FROM ${p}stale) OR EXISTS (SELECT 1 FROM ${p}entries WHERE id <= (SELECT cleared FROM ${p}state WHERE id = 1))`,
      ).pluck();
      // Only the marked rows are read: those up to the `clear()` mark (a range of ids), and those
      // in the marked tags' ranges of the tag index. (Checking every row took a second at a
      // million entries, while any mark was left.)
      this.#stale = prepare<[], { entries: number; bytes: number }>(
        `WITH c AS (SELECT cleared AS id FROM ${p}state WHERE id = 1),
         marked AS (
           SELECT id FROM ${p}entries WHERE id <= (SELECT id FROM c)
           UNION
           SELECT x.entry FROM ${p}stale s CROSS JOIN ${p}entry_tags x ON x.tag = s.tag AND x.entry <= s.mark WHERE x.entry > (SELECT id FROM c)
         )
         SELECT count(*) AS entries, coalesce(sum(e.size), 0) AS bytes FROM marked m JOIN ${p}entries e ON e.id = m.id`,
      );

      // Fail here, not on the first request, when the file cannot be written (read-only, full
      // disk, another program's lock): this writes without changing anything.
      db.transaction(() => db!.prepare(`UPDATE ${p}state SET seq = seq WHERE id = 1`).run()).immediate();
      // What a process that stopped in the middle of a reclamation left.
      if (this.#pending.get() === 1) this.#startReclaiming();
    } catch (error) {
      if (this.#owned && db?.open) db.close();
      if (error instanceof TypeError && String(error.message).startsWith('page-dumper:')) throw error;
      throw new DumperError(
        'DUMPER_STORE_FAILURE',
        `page-dumper: ${this.label}: could not use the database: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  }

  /** Number of entries held (by every process sharing the file). */
  get size(): number {
    return this.#open().#counts.get()!.entries;
  }

  /** Bytes accounted to the entries held (see `maxBytes`). */
  get bytes(): number {
    return this.#open().#counts.get()!.bytes;
  }

  sequence(): number {
    return this.#open().#seq.get()!;
  }

  get(key: string): StoredEntry | undefined {
    const local = this.#open().#local;
    // A copy is checked against the key's row by its id (the key's index alone); without one, the
    // row is read at once, its id with it: one lookup, not an id lookup then a row read.
    let admit = false;
    const kept = this.localBytes !== 0 ? local.get(key) : undefined;
    if (kept !== undefined) {
      const id = this.#idOf.get(key);
      if (id === kept.id) return kept.entry;
      local.forget(key);
      if (id === undefined) return undefined;
      // The key had a copy: a key read again, whose new row is kept at once.
      admit = true;
    }
    const row = this.#get.get(key);
    if (row === undefined) return undefined;
    const headers = JSON.parse(row.headers) as string[];
    const tags = JSON.parse(row.tags) as string[];
    // The flag and the encodings only on the entries that have them, as the dumper makes them.
    const entry = makeEntry({
      status: row.status,
      headers,
      body: row.body,
      etag: row.etag,
      storedAt: row.stored_at,
      seq: row.seq,
      path: row.path,
      tags,
      anonymousOnly: row.anonymous_only === 1,
      encodings: decodeEncodings(row.encodings),
    });
    return admit || this.#admit(key) ? this.#keep(key, row.id, entry) : entry;
  }

  /**
   * Whether a key read from the file (with no copy of it here) is worth a copy: only at its second
   * read while it is among the last `#seenBound` keys so read. A copy of a key read once costs a
   * compact copy of the entry and the eviction of another copy, and is never used when hits are
   * spread over far more entries than `localBytes` holds (a random walk over a million pages):
   * those keys stay out, and the copies of the keys read often stay in.
   */
  #admit(key: string): boolean {
    const seen = this.#seen;
    if (seen === undefined) return false;
    const ring = this.#seenRing;
    const slot = seen.get(key);
    if (slot !== undefined) {
      seen.delete(key);
      ring[slot] = undefined;
      return true;
    }
    // A ring of slots rather than the Set's own order: taking the oldest of a Map or Set that
    // keeps losing its first entries walks over the holes they leave, up to its capacity.
    const at = this.#seenNext;
    const old = ring[at];
    if (old !== undefined) seen.delete(old);
    ring[at] = key;
    seen.set(key, at);
    this.#seenNext = at + 1 === this.#seenBound ? 0 : at + 1;
    return false;
  }

  /**
   * Stores an entry, in one transaction. Answers `true` or `false` (refused: see `Store.set`) at
   * once, or a promise of it while another connection holds the file's write lock (see `#write`);
   * `false` at once when `MAX_WAITING_FILLS` fills already wait for it.
   */
  set(key: string, entry: StoredEntry, options: SetOptions): boolean | Promise<boolean> {
    this.#open();
    if (this.#waitingFills >= MAX_WAITING_FILLS) return false;
    // Encoded once, before the write lock is taken: copying the bodies holds up no other process.
    const encodings = encodeEncodings(entry.encodings);
    return this.#write(() => this.#set(key, entry, options, encodings), 'fill');
  }

  /**
   * Deletes what lazy invalidations and `clear()` left: on the background thread of a store that
   * opened its file, else a slice per turn of this event loop.
   */
  #startReclaiming(): void {
    if (this.#file !== undefined && this.#checkpointer !== null) {
      const thread = (this.#checkpointer ??= this.#startThread());
      if (thread !== null) {
        this.#reclaimOnThread = true;
        thread.postMessage('reclaim');
        return;
      }
    }
    // Sized afresh for what was just marked: entries stored together, deleted before, say nothing
    // of these.
    this.#reclaimCount = RECLAIM_SLICE;
    this.#reclaimTimer ??= setTimeout(this.#reclaimSlice, 0).unref();
  }

  readonly #reclaimSlice = (): void => {
    this.#reclaimTimer = undefined;
    if (this.#closed) return;
    // One turn per checkpoint: SQLite starts the WAL over (at the next commit) only once a
    // checkpoint has copied all of it, which a stream of turns would never leave it time to do
    // (the WAL would grow to the backstop). The turn runs when the checkpointer answers.
    if (this.#checkpointing) {
      this.#reclaimWaiting = true;
      return;
    }
    // The app's transaction (an injected `database`) is open across an await: a delete made in it
    // would hold the file's write lock until it ends, or be rolled back with it.
    if (this.database.inTransaction) {
      this.#reclaimTimer = setTimeout(this.#reclaimSlice, BUSY_RETRY_MS).unref();
      return;
    }
    let more = true;
    let wrote = false;
    const end = performance.now() + RECLAIM_TURN_MS;
    try {
      while (more && performance.now() < end) {
        more = this.#now(this.#reclaimTx);
        wrote = true;
      }
    } catch (error) {
      // Another process holds the write lock: tried again in a moment, this event loop free
      // meanwhile. Failing otherwise: the next invalidation or start goes on.
      if (isBusy(error)) this.#reclaimTimer = setTimeout(this.#reclaimSlice, BUSY_RETRY_MS).unref();
      return;
    } finally {
      // A checkpoint for what was committed; none for a turn that found the lock taken.
      if (wrote) this.#wrote();
    }
    if (more) this.#reclaimTimer = setTimeout(this.#reclaimSlice, 0).unref();
  };

  /**
   * One transaction for up to `INVALIDATE_CHUNK` tags; more are invalidated in transactions of
   * that many, about one per turn of the event loop (10,000 tags in one took 50 ms of the loop),
   * the promise resolving after the last; `close()` makes those left. Each commits with a sequence
   * number of its own: a fill that began before a chunk is refused for that chunk's tags, as it
   * would be for the whole.
   */
  invalidate(tags: readonly string[]): number | Promise<number> {
    this.#open();
    const one = (chunk: readonly string[]) => () => this.#durably(() => this.#invalidate(chunk));
    if (tags.length <= INVALIDATE_CHUNK) return this.#write(one(tags), 'write');
    const chunks: Array<() => number> = [];
    for (let i = 0; i < tags.length; i += INVALIDATE_CHUNK) chunks.push(one(tags.slice(i, i + INVALIDATE_CHUNK)));
    // Where writes run at once (the app's transaction, a file not in WAL mode), all of them.
    if (this.database.inTransaction || !this.#wal) return chunks.reduce((_, write) => write(), 0);
    // Otherwise queued as waiting writes: made one per turn of the event loop (each takes about
    // the turn's budget, see #retryWaiting), and those left at close() are made then.
    const seqs = chunks.map((write) => this.#enqueue(write, 'write'));
    return Promise.all(seqs).then((done) => done[done.length - 1]!);
  }

  clear(): void | Promise<void> {
    this.#open();
    return this.#write(() => {
      this.#durably(this.#clear);
      this.#local.clear();
      this.#seen?.clear();
      this.#seenRing.length = 0;
      this.#seenNext = 0;
    }, 'write');
  }

  // ------------------------------------------------------------ waiting for the write lock

  /**
   * Runs a write of this store, and answers with its result when the file's write lock was free.
   * When another process holds it, the write does not wait for it in this thread (better-sqlite3
   * would block the event loop, and SQLite's wait sleeps 1, 2, 5, 10... up to 100 ms between
   * tries, so a lock taken and released in quick turns, as another process's background deletes
   * do, kept a fill waiting for hundreds of milliseconds): it answers with a promise, and is
   * tried again every `BUSY_RETRY_MS` from a timer, after the writes waiting before it, until it
   * succeeds or `busyTimeout` has passed (it then fails with SQLite's SQLITE_BUSY error, as a
   * blocking wait would have). Inside the app's own transaction (an injected `database`) the write
   * runs at once, with the connection's own timeout: it cannot wait past that transaction. So
   * does every write to a file not in WAL mode (see `#wal`).
   */
  #write<T>(write: () => T, kind: WriteKind): T | Promise<T> {
    if (this.database.inTransaction || !this.#wal) return write();
    if (this.#waiting.length === 0) {
      try {
        return this.#now(write);
      } catch (error) {
        if (!isBusy(error) || this.#lockTimeout() === 0) throw error;
      }
    }
    return this.#enqueue(write, kind);
  }

  /** Queues `write` behind the waiting writes (see `#write`), tried at the next retry. */
  #enqueue<T>(write: () => T, kind: WriteKind): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ write, kind, until: performance.now() + this.#lockTimeout(), resolve: resolve as (value: unknown) => void, reject });
      if (kind === 'fill') this.#waitingFills++;
      // Not unref'd: a process that awaits an invalidation must not exit before it is written.
      this.#waitTimer ??= setTimeout(this.#retryWaiting, BUSY_RETRY_MS);
    });
  }

  /**
   * Tries the waiting writes in order, until one finds the lock taken again, for at most
   * `RECLAIM_TURN_MS` of this event loop: what is left goes on at the next turn.
   */
  readonly #retryWaiting = (): void => {
    this.#waitTimer = undefined;
    const waiting = this.#waiting;
    const end = performance.now() + RECLAIM_TURN_MS;
    let delay = BUSY_RETRY_MS;
    while (waiting.length !== 0) {
      const next = waiting[0]!;
      const now = performance.now();
      if (now >= end) {
        delay = 0;
        break;
      }
      // The app's transaction (an injected `database`) is open across an await: a write of this
      // store made in it would be rolled back with it. Tried again once it has ended, unless its
      // time is up.
      if (this.database.inTransaction) {
        if (now < next.until) break;
        this.#settle(next);
        next.reject(Object.assign(new Error(`page-dumper: ${this.label}: database is locked (a transaction of this connection stayed open)`), { code: 'SQLITE_BUSY' }));
        continue;
      }
      let result: unknown;
      try {
        result = this.#now(next.write);
      } catch (error) {
        if (isBusy(error) && performance.now() < next.until) break;
        this.#settle(next);
        next.reject(error);
        continue;
      }
      this.#settle(next);
      next.resolve(result);
    }
    if (waiting.length !== 0) this.#waitTimer = setTimeout(this.#retryWaiting, delay);
  };

  #settle(done: WaitingWrite): void {
    this.#waiting.shift();
    if (done.kind === 'fill') this.#waitingFills--;
  }

  /**
   * At `close()`: the waiting writes are made now, each waiting in this thread for what is left of
   * its time (an invalidation dropped would leave its pages served by every other process), but
   * fills, dropped (`false`), and claims of queue items, refused (a closing process would hold
   * leases it never works on).
   */
  #finishWaiting(): void {
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    const closed = () => new Error(`page-dumper: ${this.label} was closed before the write lock was free`);
    // An injected database the app closed first: nothing can be written.
    if (!this.database.open) {
      for (const w of this.#waiting.splice(0)) {
        if (w.kind === 'fill') w.resolve(false);
        else w.reject(closed());
      }
      this.#waitingFills = 0;
      return;
    }
    const timeout = this.#lockTimeout();
    try {
      for (const w of this.#waiting.splice(0)) {
        if (w.kind !== 'write' || this.database.inTransaction) {
          if (w.kind === 'fill') w.resolve(false);
          else w.reject(closed());
          continue;
        }
        try {
          this.database.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.ceil(w.until - performance.now()))}`);
          w.resolve(w.write());
        } catch (error) {
          w.reject(error);
        }
      }
    } finally {
      this.#waitingFills = 0;
      this.database.exec(`PRAGMA busy_timeout = ${timeout}`);
    }
  }

  /** Runs a write with the connection's busy timeout at 0: SQLITE_BUSY at once if another connection holds the lock. */
  #now<T>(write: () => T): T {
    const timeout = this.#lockTimeout();
    if (timeout === 0) return write();
    this.database.exec('PRAGMA busy_timeout = 0');
    try {
      return write();
    } finally {
      this.database.exec(`PRAGMA busy_timeout = ${timeout}`);
    }
  }

  /** How long a write may wait for the lock: `busyTimeout`, or the injected database's own timeout. */
  #lockTimeout(): number {
    // Read with a statement compiled now: a prepared one would answer the value of its compilation.
    return this.#busyTimeout ?? Number(this.database.pragma('busy_timeout', { simple: true }));
  }

  // ------------------------------------------------------------ enumeration

  #listStatements: ListStatements | undefined;

  #l(): ListStatements {
    this.#open();
    if (this.#listStatements !== undefined) return this.#listStatements;
    const p = this.tablePrefix;
    const prepare = <P extends unknown[]>(sql: string) => this.database.prepare<P, ListRow>(sql).safeIntegers(false);
    // Everything but the body; of the encoded bodies, their head alone (a few dozen bytes).
    const cols = `e.id, e.key, e.status, e.headers, e.tags, e.etag, e.stored_at, e.seq, e.path, e.anonymous_only, e.size, length(e.body) AS body_bytes, substr(e.encodings, 1, ${ENCODINGS_HEAD}) AS encodings_head`;
    this.#listStatements = {
      // Each is an index range: the rowid, the (tag, entry) key of the tag index.
      all: prepare(`SELECT ${cols} FROM ${p}entries e WHERE e.id > ? AND ${valid(p)} ORDER BY e.id LIMIT ?`),
      tag: prepare(`SELECT ${cols} FROM ${p}entry_tags t JOIN ${p}entries e ON e.id = t.entry WHERE t.tag = ? AND t.entry > ? AND ${valid(p)} ORDER BY t.entry LIMIT ?`),
      // An entry's path is one of its tags: the range of the tag index that starts with the
      // prefix, each entry once (on the row of its path tag).
      path: prepare(
        `SELECT ${cols}, t.tag AS cursor_tag FROM ${p}entry_tags t JOIN ${p}entries e ON e.id = t.entry WHERE t.tag >= ? AND t.tag < ? AND (t.tag, t.entry) > (?, ?) AND e.path = t.tag AND ${valid(p)} ORDER BY t.tag, t.entry LIMIT ?`,
      ),
      encodings: this.database.prepare<[number], Buffer | null>(`SELECT encodings FROM ${p}entries WHERE id = ?`).pluck().safeIntegers(false),
      tags: this.database.prepare<[], number>(`SELECT count(DISTINCT tag) FROM ${p}entry_tags`).pluck().safeIntegers(false),
    };
    return this.#listStatements;
  }

  /**
   * Lists entries through indexes: by row id, by the tag index for `tag`, by a range of the tag
   * index for `pathPrefix` (an entry's path is one of its tags). Each row is checked against the
   * marks of lazy invalidations and `clear()` (see `valid`), from the indexes.
   */
  entries(options: EntryListOptions = {}): EntryPage {
    const limit = listLimit(options);
    const l = this.#l();
    const { pathPrefix, tag } = options;
    const cursor = parseCursor(options.cursor);
    let rows: ListRow[];
    let next: (row: ListRow) => string;
    if (tag !== undefined) {
      rows = l.tag.all(tag, cursorId(cursor), limit + 1);
      next = (row) => String(row.id);
    } else if (pathPrefix !== undefined) {
      const [fromTag, fromId] = Array.isArray(cursor) ? cursor : [pathPrefix, 0];
      // Past every string that starts with the prefix (U+10FFFF sorts after every other character in UTF-8).
      rows = l.path.all(pathPrefix, `${pathPrefix}\u{10FFFF}`, fromTag, fromId, limit + 1);
      next = (row) => JSON.stringify([row.cursor_tag, row.id]);
    } else {
      rows = l.all.all(cursorId(cursor), limit + 1);
      next = (row) => String(row.id);
    }
    const more = rows.length > limit;
    if (more) rows.length = limit;
    const entries: EntryInfo[] = [];
    for (const row of rows) {
      if (pathPrefix !== undefined && !row.path.startsWith(pathPrefix)) continue;
      entries.push(this.#info(row));
    }
    return { entries, cursor: more ? next(rows[rows.length - 1]!) : undefined };
  }

  /**
   * Counts from the state row, less the entries invalid but not deleted yet (a lazily invalidated
   * tag, a `clear()`), which are read for it: while a reclamation runs, a read of the entries
   * still to be deleted.
   */
  info(): StoreInfo {
    const l = this.#open().#l();
    // One read transaction: the counts and what is still to delete from one state of the file,
    // which the background thread (or another process) deletes from meanwhile.
    return this.database.transaction((): StoreInfo => {
      const { entries, bytes } = this.#counts.get()!;
      const stale = this.#pending.get() === 1 ? this.#stale.get()! : { entries: 0, bytes: 0 };
      return { entries: entries - stale.entries, bytes: bytes - stale.bytes, tags: l.tags.get()!, sequence: this.#seq.get()! };
    }).deferred();
  }

  #info(row: ListRow): EntryInfo {
    let head = row.encodings_head;
    // A head longer than the part read (it never is: a few codings), read whole.
    if (head !== null && head.length >= 4 && 4 + head.readUInt32BE(0) > head.length) head = this.#l().encodings.get(row.id) ?? null;
    return {
      key: row.key,
      status: row.status,
      headers: JSON.parse(row.headers) as string[],
      etag: row.etag,
      storedAt: row.stored_at,
      seq: row.seq,
      path: row.path,
      tags: JSON.parse(row.tags) as string[],
      anonymousOnly: row.anonymous_only === 1,
      bodyBytes: row.body_bytes,
      encodings: encodingSizes(head),
      bytes: row.size,
    };
  }

  // ------------------------------------------------------------ the purge queue

  #queueStatements: QueueStatements | undefined;

  #q(): QueueStatements {
    this.#open();
    if (this.#queueStatements !== undefined) return this.#queueStatements;
    const p = this.tablePrefix;
    const db = this.database;
    const prepare = <P extends unknown[], R>(sql: string) => db.prepare<P, R>(sql).safeIntegers(false);
    this.#queueStatements = {
      push: prepare(`INSERT INTO ${p}queue (queue, payload, due) SELECT ?, value, ? FROM json_each(?) WHERE true RETURNING id`),
      // One statement: atomic across processes (it takes the write lock), so two claims never
      // get the same row while its lease runs.
      claim: prepare(
        `UPDATE ${p}queue SET due = ?, attempts = attempts + 1 WHERE id IN (SELECT id FROM ${p}queue WHERE queue = ? AND due <= ? ORDER BY id LIMIT ?) RETURNING id, payload, attempts`,
      ),
      ack: prepare(`DELETE FROM ${p}queue WHERE queue = ? AND id IN (SELECT value FROM json_each(?))`),
      retry: prepare(`UPDATE ${p}queue SET due = ? WHERE queue = ? AND id IN (SELECT value FROM json_each(?))`),
      stats: prepare(`SELECT count(*) AS size, min(id) AS firstId, max(id) AS lastId, min(due) AS nextDue FROM ${p}queue WHERE queue = ?`),
    };
    return this.#queueStatements;
  }

  // Each a write: a promise while another process holds the write lock (see `#write`).

  queuePush(queue: string, payloads: readonly string[], notBefore: number): number[] | Promise<number[]> {
    const q = this.#q();
    return this.#write(() => {
      // Synced like an invalidation: a purge lost in a power cut leaves a stale page at the edge.
      const rows = this.#durably(() => q.push.all(queue, notBefore, JSON.stringify(payloads))) as Array<{ id: number }>;
      this.#wrote();
      return rows.map((r) => r.id).sort((a, b) => a - b);
    }, 'write');
  }

  queueClaim(queue: string, options: QueueClaimOptions): QueuedItem[] | Promise<QueuedItem[]> {
    const q = this.#q();
    return this.#write(() => {
      const rows = q.claim.all(options.now + options.lease, queue, options.now, options.max) as QueuedItem[];
      return rows.sort((a, b) => a.id - b.id);
    }, 'claim');
  }

  queueAck(queue: string, ids: readonly number[]): void | Promise<void> {
    const q = this.#q();
    return this.#write(() => void q.ack.run(queue, JSON.stringify(ids)), 'write');
  }

  queueRetry(queue: string, ids: readonly number[], notBefore: number): void | Promise<void> {
    const q = this.#q();
    return this.#write(() => void q.retry.run(notBefore, queue, JSON.stringify(ids)), 'write');
  }

  queueStats(queue: string): QueueStats {
    const row = this.#q().stats.get(queue) as { size: number; firstId: number | null; lastId: number | null; nextDue: number | null };
    return { size: row.size, firstId: row.firstId ?? undefined, lastId: row.lastId ?? undefined, nextDue: row.nextDue ?? undefined };
  }

  /** Closes the database if the store opened it (`path`); an injected `database` stays open. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reclaimTimer);
    if (this.#waiting.length !== 0) this.#finishWaiting();
    this.#local.clear();
    this.#seen?.clear();
    this.#seenRing.length = 0;
    this.#seenNext = 0;
    if (this.#checkpointer) this.#checkpointer.postMessage('close');
    this.#checkpointer = null;
    if (this.#owned) this.database.close();
  }

  /**
   * After a commit of this store: asks the checkpointer for a checkpoint, unless one is running
   * (it is asked again when that one ends). Starts the checkpointer at the first write.
   */
  #wrote(): void {
    if (this.#file === undefined || this.#checkpointer === null) return;
    this.#unCheckpointed = true;
    if (this.#checkpointing) return;
    const worker = (this.#checkpointer ??= this.#startThread());
    if (worker === null) return;
    this.#unCheckpointed = false;
    this.#checkpointing = true;
    worker.postMessage(0);
  }

  /**
   * The checkpointer thread, with this connection's own automatic checkpoint raised to the
   * backstop; `null` (and SQLite's automatic checkpoint left on) when the thread cannot start.
   */
  #startThread(): Worker | null {
    const module = moduleFile(Database);
    if (module === undefined) return null;
    let worker: Worker;
    try {
      const reclaim = {
        ...reclaimStatements(this.tablePrefix),
        slice: RECLAIM_SLICE,
        min: RECLAIM_SLICE_MIN,
        max: RECLAIM_SLICE_MAX,
        txMs: RECLAIM_TX_MS,
        turnMs: RECLAIM_TURN_MS,
      };
      worker = new Worker(BACKGROUND_THREAD, { eval: true, workerData: { module, path: this.#file, reclaim } });
    } catch {
      return null;
    }
    worker.on('message', (m: { checkpoint?: unknown; reclaimed?: boolean }) => {
      if (m.reclaimed !== undefined) {
        this.#reclaimOnThread = false;
        // Failed otherwise than busy (a disk error, say): asked again a second later.
        if (!m.reclaimed && !this.#closed) setTimeout(() => this.#closed || this.#startReclaiming(), 1000).unref();
        return;
      }
      this.#checkpointing = false;
      if (this.#closed) return;
      if (this.#reclaimWaiting) {
        // Its commits ask for the next checkpoint, which covers any other write meanwhile.
        this.#reclaimWaiting = false;
        this.#reclaimSlice();
      } else if (this.#unCheckpointed) this.#wrote();
    });
    // A thread that failed (the file could not be opened, say) leaves the checkpoints to SQLite
    // again, in this connection's commits.
    worker.on('error', () => {
      if (this.#checkpointer !== worker) return;
      this.#checkpointer = null;
      this.#checkpointing = false;
      if (this.#closed) return;
      this.database.pragma('wal_autocheckpoint = 1000');
      if (this.#reclaimWaiting || this.#reclaimOnThread) {
        this.#reclaimWaiting = false;
        this.#reclaimOnThread = false;
        this.#startReclaiming();
      }
    });
    // After the listeners: adding a 'message' listener refs a worker again, and a thread that
    // keeps the process alive would stop a server that ends by letting its event loop drain.
    worker.unref();
    this.database.pragma(`wal_autocheckpoint = ${CHECKPOINT_BACKSTOP}`);
    return worker;
  }

  /** Keeps a decoded entry in this process (see `localBytes`); the entry kept, or the one given. */
  #keep(key: string, id: number, entry: StoredEntry): StoredEntry {
    // A row written or read inside the app's own transaction (an injected database) may be rolled
    // back, and its id given again to another entry: only committed rows are kept.
    if (this.database.inTransaction) return entry;
    return this.#local.keep(key, { id, entry })?.entry ?? entry;
  }

  #open(): this {
    if (this.#closed) throw new Error(`page-dumper: ${this.label} is closed`);
    return this;
  }

  /**
   * Runs an invalidation with the commit synced to disk. The app's own write is durable by the
   * time it invalidates; if the invalidation were not, a power loss could bring back, after the
   * reboot, entries that it had deleted: stale pages served forever. Syncing the WAL also makes
   * every earlier commit durable, so fills never need it.
   */
  #durably<T>(fn: () => T): T {
    // Inside the app's own transaction on an injected database the level cannot change (SQLite
    // refuses); the app's commit decides.
    if (this.#sync >= SYNC_FULL || this.database.inTransaction) return fn();
    this.database.exec(this.#syncFull);
    try {
      return fn();
    } finally {
      this.database.exec(this.#syncRestore);
    }
  }

  #createTables(db: Database.Database): void {
    const p = this.tablePrefix;
    db.transaction(() => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS ${p}state (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          version INTEGER NOT NULL,
          seq INTEGER NOT NULL,
          floor INTEGER NOT NULL,
          bytes INTEGER NOT NULL,
          entries INTEGER NOT NULL,
          -- Entries with an id up to this one are invalid (clear()), until deleted.
          cleared INTEGER NOT NULL DEFAULT 0
        );
        INSERT OR IGNORE INTO ${p}state (id, version, seq, floor, bytes, entries) VALUES (1, ${SCHEMA_VERSION}, 0, 0, 0, 0);
      `);
      const version = db.prepare<[], number>(`SELECT version FROM ${p}state WHERE id = 1`).pluck().safeIntegers(false).get();
      if (version === 1 || version === 2 || version === 3) this.#upgrade(db, version);
      else if (version !== SCHEMA_VERSION) {
        throw new Error(
          `its tables "${p}*" have layout version ${String(version)}, this version of page-dumper uses ${SCHEMA_VERSION} (and upgrades 1 to 3): use another tablePrefix, or drop them`,
        );
      }
      db.exec(`
        -- AUTOINCREMENT: an id is never reused, even after the newest row was deleted, so an id
        -- names one entry for good (the local copies rely on it).
        CREATE TABLE IF NOT EXISTS ${p}entries (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          key TEXT NOT NULL UNIQUE,
          path TEXT NOT NULL,
          -- 1 for a query-string variant, counted against maxVariantsPerPath of its path.
          variant INTEGER NOT NULL DEFAULT 0,
          -- 1 when the page is served only to requests without cookies (StoredEntry.anonymousOnly).
          anonymous_only INTEGER NOT NULL DEFAULT 0,
          seq INTEGER NOT NULL,
          status INTEGER NOT NULL,
          headers TEXT NOT NULL,
          tags TEXT NOT NULL,
          etag TEXT NOT NULL,
          stored_at INTEGER NOT NULL,
          size INTEGER NOT NULL,
          body BLOB NOT NULL,
          -- StoredEntry.encodings, encoded (see encodeEncodings); NULL when it has none.
          encodings BLOB
        );
        -- Only the variants: plain entries are never counted nor evicted for them.
        CREATE INDEX IF NOT EXISTS ${p}entries_variants ON ${p}entries (path) WHERE variant = 1;
        CREATE TABLE IF NOT EXISTS ${p}entry_tags (
          tag TEXT NOT NULL,
          entry INTEGER NOT NULL,
          PRIMARY KEY (tag, entry)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS ${p}entry_tags_entry ON ${p}entry_tags (entry);
        CREATE TABLE IF NOT EXISTS ${p}tag_points (
          tag TEXT PRIMARY KEY,
          seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        -- Lazily invalidated tags: their entries with an id up to mark are invalid, until deleted.
        CREATE TABLE IF NOT EXISTS ${p}stale (
          tag TEXT PRIMARY KEY,
          mark INTEGER NOT NULL
        ) WITHOUT ROWID;
        -- The purge queue (Store.queuePush and the others): purges for edge caches, kept until an
        -- edge acknowledged them. A table of its own, which layouts before it simply do not use.
        CREATE TABLE IF NOT EXISTS ${p}queue (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          queue TEXT NOT NULL,
          payload TEXT NOT NULL,
          due INTEGER NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS ${p}queue_due ON ${p}queue (queue, due);
        CREATE TRIGGER IF NOT EXISTS ${p}entry_added AFTER INSERT ON ${p}entries BEGIN
          UPDATE ${p}state SET bytes = bytes + new.size, entries = entries + 1 WHERE id = 1;
        END;
        CREATE TRIGGER IF NOT EXISTS ${p}entry_removed AFTER DELETE ON ${p}entries BEGIN
          DELETE FROM ${p}entry_tags WHERE entry = old.id;
          UPDATE ${p}state SET bytes = bytes - old.size, entries = entries - 1 WHERE id = 1;
        END;
      `);
    }).immediate();
  }

  /**
   * Layout 1 or 2 to 3, in the transaction that opens the file. Entries, invalidation points and
   * the sequence number stay.
   *
   * 1 to 2: two columns with defaults and the index of the variants instead of the index of every
   * path. The rows already there become plain entries (`variant = 0`): a row does not say whether
   * its key has a query string (the key prefix may hold a `?`), and counting a plain page as a
   * variant could get it evicted by junk variants, which is what the bound is there to prevent.
   * Until those rows go (evicted, invalidated, replaced), a path may hold them on top of
   * `maxVariantsPerPath` new variants. No row of layout 1 is anonymous-only: the flag came with
   * layout 2.
   *
   * 2 to 3: the `encodings` column, NULL in the rows already there (entries without encoded
   * bodies, which is what they were).
   *
   * 3 to 4: the `cleared` mark in the state row and the `stale` table of lazily invalidated tags
   * (see the class comment). A process of layout 3 still running on the file reads rows without
   * those checks: it may serve an entry of a lazily invalidated tag, or from before a `clear()`,
   * until the row is deleted. Restart every process on the file when upgrading.
   *
   * A process of a previous version still running on the file keeps working (its statements name
   * their columns: it reads entries without their encodings and stores entries without any),
   * though one of layout 1 counts a path's entries without an index until it is replaced; a
   * process of a previous version started afterwards refuses the file.
   */
  #upgrade(db: Database.Database, from: 1 | 2 | 3): void {
    const p = this.tablePrefix;
    if (from === 1) {
      db.exec(`
        ALTER TABLE ${p}entries ADD COLUMN variant INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ${p}entries ADD COLUMN anonymous_only INTEGER NOT NULL DEFAULT 0;
        DROP INDEX IF EXISTS ${p}entries_path;
      `);
    }
    if (from <= 2) db.exec(`ALTER TABLE ${p}entries ADD COLUMN encodings BLOB;`);
    db.exec(`
      ALTER TABLE ${p}state ADD COLUMN cleared INTEGER NOT NULL DEFAULT 0;
      UPDATE ${p}state SET version = ${SCHEMA_VERSION} WHERE id = 1;
    `);
  }
}

/**
 * The condition that the entry row `e` is valid: not below the `clear()` mark, and not carrying a
 * lazily invalidated tag from before its invalidation. The second is one look at an empty table
 * but while a reclamation runs; then the entry's tags (its rows in the tag index) are each looked
 * up among the marked ones.
 */
function valid(p: string): string {
  return `e.id > (SELECT cleared FROM ${p}state WHERE id = 1) AND (NOT EXISTS (SELECT 1 FROM ${p}stale) OR NOT EXISTS (SELECT 1 FROM ${p}entry_tags x JOIN ${p}stale s ON s.tag = x.tag WHERE x.entry = e.id AND s.mark >= e.id))`;
}

/** Bytes of the encoded bodies read to list an entry: enough for the head that names them. */
const ENCODINGS_HEAD = 512;

interface ListRow {
  id: number;
  key: string;
  status: number;
  headers: string;
  tags: string;
  etag: string;
  stored_at: number;
  seq: number;
  path: string;
  anonymous_only: number;
  size: number;
  body_bytes: number;
  encodings_head: Buffer | null;
  cursor_tag?: string;
}

interface ListStatements {
  readonly all: Database.Statement<[number, number], ListRow>;
  readonly tag: Database.Statement<[string, number, number], ListRow>;
  readonly path: Database.Statement<[string, string, string, number, number], ListRow>;
  readonly encodings: Database.Statement<[number], Buffer | null>;
  readonly tags: Database.Statement<[], number>;
}

/** A cursor of `entries()`: a row id, or a path tag and a row id. */
function parseCursor(cursor: string | undefined): number | [string, number] | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(cursor);
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && Number.isSafeInteger(value[1])) return value as [string, number];
  } catch {
    // Not one of ours: the error below.
  }
  throw new TypeError(`page-dumper: entries() got a cursor it did not make: ${JSON.stringify(cursor)}`);
}

function cursorId(cursor: number | [string, number] | undefined): number {
  if (Array.isArray(cursor)) throw new TypeError('page-dumper: entries() got the cursor of a listing by pathPrefix for another listing');
  return cursor ?? 0;
}

interface QueueStatements {
  readonly push: Database.Statement<[string, number, string], unknown>;
  readonly claim: Database.Statement<[number, string, number, number], unknown>;
  readonly ack: Database.Statement<[string, string], unknown>;
  readonly retry: Database.Statement<[number, string, string], unknown>;
  readonly stats: Database.Statement<[string], unknown>;
}

/**
 * The file better-sqlite3 was loaded from, for the checkpointer thread to load the same one: the
 * module whose exports are `Database` in Node's module cache (better-sqlite3 is CommonJS, in the
 * cache whether it was imported or required). `undefined` when not found there.
 */
function moduleFile(exports: unknown): string | undefined {
  try {
    const cache = createRequire(join(process.cwd(), 'page-dumper.js')).cache;
    for (const m of Object.values(cache)) if (m !== undefined && m.exports === exports) return m.filename;
  } catch {
    // No module cache: no checkpointer.
  }
  return undefined;
}

function isDatabase(value: unknown): value is Database.Database {
  const db = value as Partial<Database.Database> | null;
  return (
    typeof db === 'object' &&
    db !== null &&
    typeof db.prepare === 'function' &&
    typeof db.transaction === 'function' &&
    typeof db.pragma === 'function' &&
    db.open === true
  );
}
