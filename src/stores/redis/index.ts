/**
 * `page-dumper/redis`: a store shared by every process and machine that talks to one Redis (or
 * Valkey). Every operation is one round trip: a Lua script, atomic on the server, or, for a hit on an
 * entry this process holds a copy of, two plain reads sent together.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
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
import { entryBytes, listLimit, makeEntry, MemoryStore, stringBytes } from '../memory/index.js';
import { CLEAR, GET, INVALIDATE, LIST, QUEUE_ACK, QUEUE_CLAIM, QUEUE_PUSH, QUEUE_RETRY, QUEUE_STATS, RAISE, RECLAIM, SEQUENCE, SET } from './scripts.js';

export interface RedisLocalTierOptions {
  /**
   * Upper bound of the local tier's memory, in bytes, in each process.
   * @default 16 MiB
   */
  maxBytes?: number;
  /**
   * How often, in milliseconds, the subscription is checked with a `PING` on its connection. A
   * ping not answered within `commandTimeout` counts as the subscription being down (a connection
   * that holds bytes without closing: a partition, a half-open socket): the tier is emptied and
   * bypassed until a ping is answered again, which proves that every message published before it
   * has arrived. So a tier that stops hearing invalidations stops serving at most `heartbeat` +
   * `commandTimeout` after the last message it could have missed.
   * @default 1000
   */
  heartbeat?: number;
}

export interface RedisStoreOptions {
  /**
   * A connected ioredis client or Cluster to use. The store never changes its options and does
   * not close it (you do). Give it a short `commandTimeout` (the store's own clients use 250 ms):
   * a hit waits for Redis at most that long before the request goes to the app.
   */
  client?: Redis | Cluster;
  /**
   * A Redis URL (`redis://host:6379/0`, `rediss://...`) for a client the store creates and closes.
   * Ignored when `client` is given.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
  /**
   * Every key the store writes starts with `{prefix}`: the braces are a Redis Cluster hash tag,
   * which keeps all of the store's keys in one slot (see the README on Redis Cluster). Give each
   * site its own prefix when sites share a Redis.
   * @default 'page-dumper:'
   */
  prefix?: string;
  /**
   * Time to live of each entry, in milliseconds; 0 keeps entries until they are invalidated (or
   * evicted by Redis's `maxmemory-policy`). Set one when Redis has no memory limit of its own.
   * @default 0
   */
  ttl?: number;
  /**
   * How many tag invalidation points are kept. Past it the oldest half is folded into a floor:
   * entries stored before the folded points are then re-rendered once (safe, never stale).
   * @default 100000
   */
  maxTrackedTags?: number;
  /**
   * The longest any store call waits for Redis, in milliseconds, with the store's own client or a
   * given one: past it the call rejects (a `RedisStoreError` with code `DUMPER_REDIS_TIMEOUT`) and
   * the request goes to the app. The store keeps its own timer per call, because a command queued
   * behind a stalled one (auto-pipelining sends a batch only once the previous one has answered) or
   * waiting offline would otherwise wait for those first. Also the `commandTimeout` of the clients
   * the store creates. The dumper's circuit breaker then stops asking for `storeCooldown`.
   * @default 250
   */
  commandTimeout?: number;
  /**
   * Bytes of entries each process keeps decoded, least recently used evicted past it. Such a copy
   * is never served on trust: every hit still asks Redis, in its one round trip, which entry the
   * key holds now and whether its tags were invalidated since, and serves the copy only if it is
   * that same entry, still valid. Redis then sends back a few bytes instead of the page. Unlike
   * `localTier`, this keeps the full promise: nothing is served that Redis would not serve. `0`
   * turns it off: every hit then runs the get script and receives the page. (With `localTier` on,
   * the copies serve the tier's misses; the two bounds add up.)
   *
   * Which pages get a copy: those this process stores, and those it fetches a second time while
   * it still remembers the first (it remembers about as many keys as the copies could hold, by a
   * 30-bit hash each, about 40 bytes a key, outside this bound). A page fetched once is not kept:
   * under uniform access to far more pages than fit, a copy would almost always be evicted before
   * its next hit, and keeping it costs more than it saves.
   * @default 16 MiB
   */
  localBytes?: number;
  /**
   * An in-process memory tier in front of Redis, kept coherent by Redis pub/sub: hits are as fast
   * as MemoryStore's. Off by default because it widens the promise: another process's
   * invalidation reaches this process's tier by pub/sub, so for the propagation delay (well under
   * a millisecond on loopback, see BENCHMARKS.md) this process may still serve the old page. The
   * process that invalidates is never behind itself, and the tier is emptied and bypassed whenever
   * the subscription is down. Another process's store of a key (a new render, the same entry
   * with its compressed bodies) reaches the tier the same way: the tier drops its entry of the key.
   * @default false
   */
  localTier?: boolean | RedisLocalTierOptions;
}

interface Script {
  readonly src: string;
  readonly sha: string;
}

function script(src: string): Script {
  return { src, sha: createHash('sha1').update(src).digest('hex') };
}

/** Entries freed per RECLAIM script: about a millisecond of Redis's time. */
const RECLAIM_SLICE = 500;

/**
 * The most tags one invalidation script takes: a longer list is invalidated by several scripts,
 * sent together and run one after the other, each holding Redis for a few milliseconds at most.
 */
export const INVALIDATE_TAGS_PER_SCRIPT = 500;

const SCRIPTS = {
  get: script(GET),
  sequence: script(SEQUENCE),
  set: script(SET),
  invalidate: script(INVALIDATE),
  reclaim: script(RECLAIM),
  clear: script(CLEAR),
  raise: script(RAISE),
  queuePush: script(QUEUE_PUSH),
  queueClaim: script(QUEUE_CLAIM),
  queueAck: script(QUEUE_ACK),
  queueRetry: script(QUEUE_RETRY),
  queueStats: script(QUEUE_STATS),
  list: script(LIST),
};

/**
 * A store call that failed without an answer from Redis: it took longer than `commandTimeout`
 * (`DUMPER_REDIS_TIMEOUT`), or the connection was lost and is not back (`DUMPER_REDIS_OFFLINE`);
 * or the database the URL or client options name does not exist on the server
 * (`DUMPER_REDIS_NO_DATABASE`: Redis has 16 unless its `databases` setting says otherwise; every
 * call fails, none falls back to database 0, until a reconnection finds the database there).
 * The dumper logs it as the `cause` of its `DUMPER_STORE_FAILURE` and sends the request to the app.
 */
export class RedisStoreError extends Error {
  readonly code: 'DUMPER_REDIS_TIMEOUT' | 'DUMPER_REDIS_OFFLINE' | 'DUMPER_REDIS_NO_DATABASE';
  constructor(code: RedisStoreError['code'], message: string) {
    super(message);
    this.name = 'RedisStoreError';
    this.code = code;
  }
}

/** How long a sequence number read by a miss may serve the fill that follows it. */
const MISS_SEQ_MS = 1000;

// An entry is one buffer: a 4-byte length, a JSON head with everything but the body, the body.
// The head's eighth element holds flags: ANONYMOUS_ONLY, and VARIANT (stored with `variant: true`,
// which a local tier needs to bound the entry as the dumper asked). Entries stored before the flags
// existed have seven elements and read back as plain pages served to every request, which is what
// they were.
//
// The encoded bodies (`StoredEntry.encodings`) are not in that buffer but beside it, in the entry
// hash's field `c` (see encodeEncodings), so that the buffer keeps the layout every version reads:
// a process of a version before encodings (its own get script reads `v` alone) serves the entry
// without them, and an entry it stored reads back here without any.
const ANONYMOUS_ONLY = 1;
const VARIANT = 2;

function encode(entry: StoredEntry, variant: boolean): Buffer {
  const head = Buffer.from(
    JSON.stringify([
      entry.status,
      entry.headers,
      entry.etag,
      entry.storedAt,
      entry.seq,
      entry.path,
      entry.tags,
      (entry.anonymousOnly === true ? ANONYMOUS_ONLY : 0) | (variant ? VARIANT : 0),
    ]),
  );
  const out = Buffer.allocUnsafe(4 + head.length + entry.body.byteLength);
  out.writeUInt32BE(head.length, 0);
  head.copy(out, 4);
  out.set(entry.body, 4 + head.length);
  return out;
}

/** A decoded entry (its encoded bodies from the hash field beside it), and whether it was stored as a query-string variant. */
function decode(buf: Buffer, encodings: Buffer | null): { entry: StoredEntry; variant: boolean } {
  const n = buf.readUInt32BE(0);
  const [status, headers, etag, storedAt, seq, path, tags, flags = 0] = JSON.parse(buf.toString('utf8', 4, 4 + n)) as [
    number,
    string[],
    string,
    number,
    number,
    string,
    string[],
    number | undefined,
  ];
  const body = buf.subarray(4 + n);
  // One object shape per kind of entry (with or without the flag, with or without encodings).
  const entry = makeEntry({ status, headers, body, etag, storedAt, seq, path, tags, anonymousOnly: (flags & ANONYMOUS_ONLY) !== 0, encodings: decodeEncodings(encodings) });
  return { entry, variant: (flags & VARIANT) !== 0 };
}

/** An entry read from Redis, and whether it was stored as a query-string variant (for the local tier). */
interface Fetched {
  readonly entry: StoredEntry;
  readonly variant: boolean;
}

/**
 * A decoded entry kept in this process (see `localBytes`): the id its fill gave it, and the meta
 * fields that decide its validity (`seq`, `floor`, and `t:<tag>` for each of its tags).
 */
interface RedisCopy extends LocalCopy<string>, Fetched {
  readonly fields: readonly string[];
}

/**
 * A get's answer: the entry, the current sequence number (a miss), or `undefined` (a miss that
 * carries no sequence number: the answer came from before a lost connection, or the floor has not
 * been raised since one).
 */
type GetAnswer = Fetched | number | undefined;

interface Waiter {
  readonly resolve: (answer: GetAnswer) => void;
  readonly reject: (error: unknown) => void;
}

/** The gets asked for in one turn of the event loop, sent together, under one timer. */
interface Batch {
  readonly gets: Map<string, Waiter[]>;
  timer: NodeJS.Timeout | undefined;
  /** Keys whose waiters are not answered yet; the timer is cleared when it reaches 0. */
  open: number;
}

/** How the local tier keeps a plain page fetched from Redis (variants: the last limits seen). */
const LOCAL_PLAIN: SetOptions = { maxVariantsPerPath: 256, variant: false };

/** How many keys the local tier remembers another process's set of (see `#heardSet`). */
const MAX_HEARD_SETS = 1000;

/**
 * Not part of the API, for the fault tests only: a store with this property set to `true` no longer
 * raises the floor after a lost connection, nor distrusts answers to commands sent before it (the
 * behaviour before they existed), so that a test can show that its check finds the stale pages
 * they prevent. A registered symbol, so that no export carries it.
 */
const WITHOUT_RECONNECT_FLOOR = Symbol.for('page-dumper.internal.testOnly.withoutReconnectFloor');

/** Fill ids: unique per process (a random origin) and per fill (a counter). */
const ORIGIN = randomBytes(9).toString('base64url');
let fills = 0;

function copyOf(id: string, entry: StoredEntry, variant: boolean): RedisCopy {
  const fields = ['seq', 'floor'];
  for (const tag of entry.tags) fields.push(`t:${tag}`);
  return { id, entry, variant, fields };
}

/**
 * Admission of copies: a page fetched by the get script is kept only when it was fetched before,
 * recently (see `Seen`). Bounds of the keys remembered, whatever the copies' capacity; the
 * smallest page size the window is sized for (a smaller page makes it no longer).
 */
const MIN_SEEN = 256;
const MAX_SEEN = 1 << 20;
const MIN_COPY_BYTES = 512;
/** The size of a copy assumed by `Seen` before it has measured any (bytes, with the copy's overhead). */
const ASSUMED_COPY_BYTES = 4096;

/** A 30-bit hash of a key (FNV-1a over its UTF-16 code units): a small integer, stored without allocation. */
function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/**
 * The keys whose pages were fetched once without being kept, by hash, in a window about as long
 * as the copies could hold (`localBytes` over the mean size of the copies offered): a page is kept
 * when it is fetched again while still remembered. Under uniform access to far more pages than the
 * copies hold, almost no fetch is the second within that window, so the copies are not churned (a
 * copy kept and evicted before its next hit costs copying its body and collecting it); a page hit
 * repeatedly is kept at its second fetch. Two keys of one hash count as one (a page kept early);
 * a hash leaves the window in the order it came (a ring), without walking the set.
 */
class Seen {
  readonly #hashes = new Set<number>();
  /** The hashes in the order they came, from `#head` for `#length`; allocated at the first use. */
  #ring: Int32Array | undefined;
  #head = 0;
  #length = 0;
  #meanBytes = ASSUMED_COPY_BYTES;

  constructor(readonly maxBytes: number) {}

  /** `true` when `key` was offered before and is still remembered (it is then forgotten); otherwise remembers it. */
  admit(key: string, copyBytes: number): boolean {
    const h = keyHash(key);
    if (this.#hashes.delete(h)) return true;
    this.#meanBytes += (copyBytes - this.#meanBytes) / 16;
    this.#add(h, Math.floor(this.maxBytes / this.#meanBytes));
    return false;
  }

  /** Remembers `key` as offered once (its copy was dropped while the key is in use). */
  remember(key: string): void {
    const h = keyHash(key);
    if (!this.#hashes.has(h)) this.#add(h, Math.floor(this.maxBytes / this.#meanBytes));
  }

  #add(h: number, room: number): void {
    const ring = (this.#ring ??= new Int32Array(Math.min(MAX_SEEN, Math.max(MIN_SEEN, Math.ceil(this.maxBytes / MIN_COPY_BYTES)))));
    room = Math.min(ring.length, Math.max(MIN_SEEN, room));
    // The oldest go (a hash remembered again since goes too: a page kept a little later).
    while (this.#length >= room) {
      this.#hashes.delete(ring[this.#head]!);
      this.#head = (this.#head + 1) % ring.length;
      this.#length--;
    }
    ring[(this.#head + this.#length) % ring.length] = h;
    this.#length++;
    this.#hashes.add(h);
  }

  clear(): void {
    this.#hashes.clear();
    this.#ring = undefined;
    this.#head = this.#length = 0;
  }
}

/** What a copy holds besides its entry, for `localBytes`: its fill id and its meta field names. */
function copyExtraBytes(copy: RedisCopy): number {
  let bytes = stringBytes(copy.id) + 16 + 8 * copy.fields.length;
  for (let i = 2; i < copy.fields.length; i++) bytes += stringBytes(copy.fields[i]!);
  return bytes;
}

/**
 * Decides a get from the plain reads: the id of the entry the key holds now (or null), and the meta
 * fields by name (`point`). Answers the copy, the sequence number for a miss, or undefined when
 * only the get script can tell.
 */
function checkCopy(copy: RedisCopy, id: string | null, point: (field: string) => string | null | undefined): RedisCopy | number | undefined {
  const seq = point('seq');
  const floor = point('floor');
  // The meta hash is gone (flushed, evicted) or has no generation yet: the script makes them.
  if (seq == null || floor == null || point('g') == null) return undefined;
  if (id === null) return Number(seq);
  if (id !== copy.id) return undefined;
  const s = copy.entry.seq;
  if (s < Number(floor) || s > Number(seq)) return undefined;
  const fields = copy.fields;
  for (let i = 2; i < fields.length; i++) {
    const p = point(fields[i]!);
    if (p != null && Number(p) > s) return undefined;
  }
  return copy;
}

function positiveInteger(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new TypeError(
      `page-dumper: RedisStore option "${name}" must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(value)}`,
    );
  }
  return value;
}

type Client = Redis | Cluster;

/**
 * A shared store on Redis or Valkey, through ioredis.
 *
 * - A hit is one round trip: the entry (or, for a copy this process holds, the entry's fill id) and
 *   its tags' invalidation points, read together, and sent with the other gets of the same tick.
 * - An invalidation of any number of paths and tags is one round trip: it bumps the sequence
 *   number, records it for every tag, and frees every entry carrying one of them; past 1,000
 *   entries together (one tag on many pages, or many paths at once) they are invalid at once and
 *   freed in the background, a slice per script, so that no script holds Redis for long.
 * - A fill is one round trip (the sequence number it needs comes with the miss that preceded it).
 * - Validity lives in one key, so a flush, a restart without persistence or an eviction loses all
 *   of it at once, and then nothing stored before is served again.
 */
export class RedisStore implements Store, PurgeQueueStore, EnumerableStore {
  /**
   * How logs and errors name this store: `RedisStore redis://host:port/db` (`rediss://` with TLS),
   * `RedisStore /path/to/redis.sock db 0` for a Unix socket, or, for a `client` given to the
   * store, `RedisStore (injected client) ...` with what its options say of where it connects (a
   * Cluster: its first startup nodes). Read from the client's options once, in the constructor;
   * never a username or a password.
   */
  readonly label: string;
  /** The pub/sub channel invalidations are published on (when the local tier is on). */
  readonly channel: string;
  /**
   * The pub/sub channel stores of entries are published on (when the local tier is on), as
   * `<store id> <key>`: other processes' local tiers drop their entry of the key.
   */
  readonly setChannel: string;
  /** This store's id in the messages of `setChannel`, followed by a space: its own are ignored. */
  readonly #setSender = `${ORIGIN}.s${++fills} `;
  readonly #client: Client;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #meta: string;
  readonly #order: string;
  readonly #ttl: number;
  readonly #maxTrackedTags: number;
  readonly #local: MemoryStore | undefined;
  readonly #timeout: number;
  readonly #heartbeat: number;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #subscriber: Client | undefined;
  #localReady = false;
  /**
   * Key → the tier's sequence number (see `#heardSet`) when another process's store of the key
   * was heard: a fetch or set of the key begun before it does not enter the tier. At most
   * MAX_HEARD_SETS keys; past them, `#heardFloor` refuses whatever began before the last message.
   */
  readonly #heardSets = new Map<string, number>();
  #heardFloor = 0;
  #missSeq = 0;
  #missAt = -Infinity;
  #closed = false;
  /** The limits the dumper last gave for a variant: the local tier bounds variants with them. */
  #variantLimits: SetOptions = { maxVariantsPerPath: 256, variant: true };
  /** The gets of this turn of the event loop, until they are sent. */
  #batch: Batch | undefined;
  /** Entry key → the entry this process last stored, or fetched twice, under it (see `localBytes`). */
  readonly #copies: LocalCopies<RedisCopy>;
  /** The keys fetched once by the get script and not kept: a second fetch keeps a copy. */
  readonly #seen: Seen;
  /**
   * Bumped whenever a connection to Redis closes. An answer to a command sent before is not
   * trusted: ioredis resends unanswered commands after reconnecting, before the floor is raised.
   */
  #epoch = 0;
  /**
   * A connection was lost and the floor has not been raised since (see `#raise`): no get answers an
   * entry and no fill is stored.
   */
  #fenced = false;
  #raising: Promise<void> | undefined;
  /**
   * The generations (see the META script) this store handed sequence numbers out under, oldest
   * first, each with the range of the numbers: a fill sends the generation of its number, and Redis
   * refuses it once another generation is current. A few are kept; `#droppedHi` is the highest
   * number of those dropped, below which a number of no kept generation is refused.
   */
  readonly #gens: Array<{ readonly g: string; lo: number; hi: number }> = [];
  #droppedHi = -Infinity;
  /** The highest number handed out: a raise goes above it. */
  #maxHanded = 0;
  /** The database the client's options name (0 for a Cluster, which has no other). */
  readonly #db: number;
  /**
   * `true` once the client's connection is known to use `#db` (always, for database 0); the check
   * running (a `SELECT` of it); or undefined: to be checked before the next command. ioredis
   * selects the database when it connects, but when Redis refuses (no such database) it only
   * emits an error, and the connection stays on database 0: the store then sends nothing until
   * its own check has passed. Reset when the connection closes.
   */
  #dbChecked: true | Promise<void> | undefined;
  /** The database does not exist (found by the check): every call fails with this until a reconnection. */
  #noDatabase: RedisStoreError | undefined;
  /** Listeners put on the client (and a Cluster's nodes), removed by close(). */
  readonly #listeners: Array<{ emitter: NodeJS.EventEmitter; event: string; fn: (...a: any[]) => void }> = [];

  constructor(options: RedisStoreOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('page-dumper: RedisStore options must be an object');
    }
    const {
      client,
      url,
      prefix = 'page-dumper:',
      ttl = 0,
      maxTrackedTags = 100_000,
      commandTimeout = 250,
      localBytes = 16 * 2 ** 20,
      localTier = false,
    } = options;
    if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
      throw new TypeError(`page-dumper: RedisStore option "prefix" must be a non-empty string without braces, got ${JSON.stringify(prefix)}`);
    }
    this.#ttl = positiveInteger('ttl', ttl, true);
    this.#maxTrackedTags = positiveInteger('maxTrackedTags', maxTrackedTags);
    this.#copies = new LocalCopies(positiveInteger('localBytes', localBytes, true));
    this.#seen = new Seen(this.#copies.maxBytes);
    this.#timeout = positiveInteger('commandTimeout', commandTimeout);
    if (client !== undefined && (client === null || typeof client !== 'object' || typeof (client as Redis).evalsha !== 'function')) {
      throw new TypeError('page-dumper: RedisStore option "client" must be an ioredis Redis or Cluster client');
    }
    if (client !== undefined && isCluster(client)) {
      const scaleReads = (client as unknown as { options?: { scaleReads?: unknown } }).options?.scaleReads;
      if (scaleReads !== undefined && scaleReads !== 'master') {
        // The checks of a copy (HGET, HMGET) are reads: a replica that lags would vouch for a page
        // that the master has already invalidated.
        throw new TypeError(
          `page-dumper: RedisStore needs a Cluster client that reads from masters (scaleReads: 'master'), got scaleReads: ${typeof scaleReads === 'string' ? `'${scaleReads}'` : typeof scaleReads}`,
        );
      }
    }
    if (url !== undefined && typeof url !== 'string') {
      throw new TypeError(`page-dumper: RedisStore option "url" must be a string, got ${String(url)}`);
    }
    let local: RedisLocalTierOptions | undefined;
    if (localTier === true) local = {};
    else if (localTier !== false && localTier !== undefined) {
      if (localTier === null || typeof localTier !== 'object') {
        throw new TypeError(`page-dumper: RedisStore option "localTier" must be a boolean or { maxBytes }, got ${String(localTier)}`);
      }
      local = localTier;
    }

    this.#prefix = `{${prefix}}`;
    this.#meta = `${this.#prefix}m`;
    this.#order = `${this.#prefix}z`;
    this.channel = `${this.#prefix}invalidations`;
    this.setChannel = `${this.#prefix}sets`;
    if (client !== undefined) {
      this.#client = client;
      this.#ownsClient = false;
    } else {
      const clientOptions: RedisOptions = {
        commandTimeout,
        connectTimeout: Math.max(1000, commandTimeout * 4),
        maxRetriesPerRequest: 1,
        enableAutoPipelining: true,
        // Reconnect quickly; while Redis is away every command fails within commandTimeout.
        retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
      };
      this.#client = new Redis(url ?? 'redis://127.0.0.1:6379', clientOptions);
      // Errors surface through the commands that fail; a connection error alone is not news.
      this.#client.on('error', () => {});
      this.#ownsClient = true;
    }
    this.label = `RedisStore ${client !== undefined ? `(injected ${isCluster(client) ? 'Cluster client' : 'client'}) ` : ''}${whereTo(this.#client)}`;
    const db = isCluster(this.#client) ? 0 : (this.#client as Redis).options?.db;
    this.#db = typeof db === 'number' && Number.isInteger(db) && db > 0 ? db : 0;
    this.#dbChecked = this.#db === 0 ? true : undefined;
    this.#heartbeat = 0;
    if (local !== undefined) {
      this.#heartbeat = positiveInteger('localTier.heartbeat', local.heartbeat ?? 1000);
      this.#local = new MemoryStore({ maxBytes: local.maxBytes ?? 16 * 2 ** 20 });
      this.#subscribe();
    }
    this.#watch();
  }

  sequence(): number | Promise<number> {
    if (this.#fenced) {
      // While Redis is still away, fail now rather than wait in the offline queue. Once it is
      // back, read the number after the raise: one read before would only get its fill refused.
      if (!this.#connected()) return Promise.reject(this.#offline());
      const raised = this.#raise();
      return this.#deadline('sequence', raised.then(() => this.#readSequence()));
    }
    if (performance.now() - this.#missAt < MISS_SEQ_MS) return this.#missSeq;
    return this.#deadline('sequence', this.#readSequence());
  }

  async #readSequence(): Promise<number> {
    const [seq, g] = (await this.#run(SCRIPTS.sequence, [this.#meta], [])) as [number, Buffer];
    return this.#handOut(seq, g.toString());
  }

  /** Records that `seq` was read under generation `g` (a fill may use it), and answers it. */
  #handOut(seq: number, g: string): number {
    if (seq > this.#maxHanded) this.#maxHanded = seq;
    const gens = this.#gens;
    const last = gens[gens.length - 1];
    if (last !== undefined && last.g === g) {
      if (seq < last.lo) last.lo = seq;
      if (seq > last.hi) last.hi = seq;
      return seq;
    }
    gens.push({ g, lo: seq, hi: seq });
    if (gens.length > 4) this.#droppedHi = Math.max(this.#droppedHi, gens.shift()!.hi);
    return seq;
  }

  /**
   * The generation a fill's number was read under: `''` for a number this store did not hand out
   * (Redis then checks the numbers alone), `undefined` when it cannot tell which of two
   * generations it was (the fill is refused: a raise may have landed on numbers handed out before).
   */
  #generationOf(seq: number): string | undefined {
    const gens = this.#gens;
    let found: string | undefined;
    for (const r of gens) {
      if (seq < r.lo || seq > r.hi) continue;
      if (found !== undefined) return undefined;
      found = r.g;
    }
    if (found !== undefined) return found;
    return seq <= this.#droppedHi ? undefined : '';
  }

  get(key: string): StoredEntry | undefined | Promise<StoredEntry | undefined> {
    if (this.#fenced) return this.#fencedGet();
    const local = this.#local;
    let localSeq = -1;
    if (local !== undefined && this.#localReady) {
      const hit = local.get(key);
      if (hit !== undefined) return hit;
      localSeq = local.sequence();
    }
    return this.#batchedGet(this.#entryKey(key)).then((reply) => {
      if (reply === undefined) return undefined;
      if (typeof reply === 'number') {
        this.#missSeq = reply;
        this.#missAt = performance.now();
        return undefined;
      }
      const entry = reply.entry;
      if (localSeq >= 0) this.#keepLocally(key, entry, reply.variant ? this.#variantLimits : LOCAL_PLAIN, localSeq);
      return entry;
    });
  }

  async set(key: string, entry: StoredEntry, options: SetOptions): Promise<boolean> {
    const entryKey = this.#entryKey(key);
    // Whatever the key held before is replaced, or the fill refused: no copy of it is served again.
    this.#copies.forget(entryKey);
    // Nothing is stored until the floor is raised: the render may have read its sequence number
    // before the connection was lost, and the raise would make it invalid anyway.
    if (this.#fenced) return false;
    const generation = this.#generationOf(entry.seq);
    if (generation === undefined) return false;
    if (options.variant) this.#variantLimits = options;
    const tags = entry.tags;
    // The path tag's index set and its variants come first.
    const keys = [this.#meta, entryKey, `${this.#prefix}t:${entry.path}`, `${this.#prefix}v:${entry.path}`];
    for (const tag of tags) if (tag !== entry.path) keys.push(`${this.#prefix}t:${tag}`);
    const id = `${ORIGIN}.${++fills}`;
    const args: Array<string | Buffer> = [
      encode(entry, options.variant),
      String(entry.seq),
      JSON.stringify(tags),
      String(this.#ttl),
      String(options.maxVariantsPerPath),
      id,
      options.variant ? '1' : '0',
      generation,
      encodeEncodings(entry.encodings) ?? '',
      this.#local ? this.setChannel : '',
      this.#setSender + key,
      ...tags,
    ];
    const local = this.#local;
    const localSeq = local !== undefined && this.#localReady ? local.sequence() : -1;
    const stored = (await this.#deadline('set', this.#run(SCRIPTS.set, keys, args))) === 1;
    if (stored) {
      // The process that rendered a page is likely to serve it next.
      const copy = copyOf(id, entry, options.variant);
      this.#copies.keep(entryKey, copy, copyExtraBytes(copy));
      // The tier answers this key with the new entry from now on, not one it fetched before (and
      // when it may not keep the new one, not the old one either).
      // With the dumper's limits: junk variants rendered here evict one another in the tier too.
      if (local !== undefined && !(localSeq >= 0 && this.#keepLocally(key, entry, options, localSeq))) local.delete(key);
    }
    return stored;
  }

  async invalidate(tags: readonly string[]): Promise<number> {
    if (tags.length <= INVALIDATE_TAGS_PER_SCRIPT) return this.#inFlight(this.#invalidate(tags));
    return this.#inFlight(this.#invalidateMany(tags));
  }

  /** Invalidations (and `clear()`s) under way: `close()` lets them finish, within `commandTimeout`. */
  readonly #invalidating = new Set<Promise<unknown>>();

  #inFlight<T>(work: Promise<T>): Promise<T> {
    this.#invalidating.add(work);
    const done = () => void this.#invalidating.delete(work);
    work.then(done, done);
    return work;
  }

  async #invalidateMany(tags: readonly string[]): Promise<number> {
    // Many tags at once (10,000 paths): one script each INVALIDATE_TAGS_PER_SCRIPT of them, which
    // Redis runs one after the other, serving other clients between them: it is never held for
    // the whole list (recording an invalidation point costs some microseconds a tag). Nor is this
    // process: each script is sent in a turn of the event loop of its own (building and encoding
    // one takes a millisecond or two; 10,000 paths in one turn held it 31 ms at a million
    // entries). The fill protocol needs no more: a render begun before the call holds a sequence
    // number below every script's, so it is refused whichever script names its tags; once the
    // call resolves, every tag is invalidated.
    const scripts: Array<Promise<number>> = [];
    for (let i = 0; i < tags.length; i += INVALIDATE_TAGS_PER_SCRIPT) {
      // Once close() has begun, the rest go at once, ahead of the connection's QUIT.
      if (i !== 0 && !this.#closed) await new Promise<void>((resolve) => setImmediate(resolve));
      const script = this.#invalidate(tags.slice(i, i + INVALIDATE_TAGS_PER_SCRIPT));
      // Heard below, with the others; not an unhandled rejection while the next turn comes.
      script.catch(() => undefined);
      scripts.push(script);
    }
    return Math.max(...(await Promise.all(scripts)));
  }

  async #invalidate(tags: readonly string[]): Promise<number> {
    const keys = [this.#meta, this.#order];
    for (const tag of tags) keys.push(`${this.#prefix}t:${tag}`);
    for (const tag of tags) keys.push(`${this.#prefix}v:${tag}`);
    keys.push(`${this.#prefix}rq`);
    // Sent even while Redis is away: ioredis queues it and sends it first thing after reconnecting,
    // so it may land before the dumper's replay. The caller still hears of the failure in time.
    const [seq, queued] = (await this.#deadline(
      'invalidate',
      this.#run(SCRIPTS.invalidate, keys, [String(this.#maxTrackedTags), this.#local ? this.channel : '', ...tags]),
    )) as [number, number];
    // This process never waits for its own message: what it invalidated is gone here at once.
    this.#local?.invalidate(tags);
    // More than LAZY_TAG_ENTRIES entries reached: they are invalid already, and freed from here
    // (or from whichever process invalidates next, should this one stop first).
    if (queued > 0) this.#reclaiming ??= this.#reclaim();
    return seq;
  }

  /** The reclamation running, if any (see `#reclaim`). */
  #reclaiming: Promise<void> | undefined;

  /**
   * Frees the entries of lazily invalidated tags, RECLAIM_SLICE per script (about a millisecond of
   * Redis's time), one script at a time, until none is queued. Stops on an error or at close():
   * what is left is freed after the next invalidation of a tag on many entries, or read as invalid.
   */
  async #reclaim(): Promise<void> {
    try {
      while (!this.#closed && ((await this.#deadline('reclaim', this.#run(SCRIPTS.reclaim, [`${this.#prefix}rq`], [String(RECLAIM_SLICE)]))) as number) > 0);
    } catch {
      // Nothing is served from what is left; the next reclamation goes on with it.
    } finally {
      this.#reclaiming = undefined;
    }
  }

  /**
   * Makes every entry invalid in one script (the floor moves above every sequence number handed
   * out), then frees them in the background, a SCAN batch at a time: the call does not wait for
   * a walk of every key.
   */
  async clear(): Promise<void> {
    await this.#inFlight(this.#deadline('clear', this.#run(SCRIPTS.clear, [this.#meta, this.#order], [this.#local ? this.channel : ''])));
    this.#local?.clear();
    this.#copies.clear();
    // Everything is already invalid (the floor moved); free the memory too. A failure leaves
    // invalid entries that reads free, or Redis's eviction and ttl.
    this.#deleteMatching(`${this.#prefix}[etv]:*`).catch(() => undefined);
  }

  /**
   * Stops the store's timers and subscription, lets the invalidations under way finish (within
   * `commandTimeout`), and quits the client it created (one passed in is left open).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#localReady = false;
    this.#local?.clear();
    this.#copies.clear();
    this.#seen.clear();
    clearInterval(this.#heartbeatTimer);
    this.#subscriber?.disconnect();
    for (const { emitter, event, fn } of this.#listeners.splice(0)) emitter.removeListener(event, fn);
    // An invalidation under way (a shutdown while a write's invalidation is sent) is finished
    // first: another process would serve what its unsent scripts name, and a closed dumper never
    // replays it. Within commandTimeout, as each of its scripts is.
    if (this.#invalidating.size !== 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#invalidating]),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeout))),
      ]);
      clearTimeout(timer);
    }
    if (this.#ownsClient) {
      try {
        await this.#client.quit();
      } catch {
        this.#client.disconnect();
      }
    }
  }

  // ------------------------------------------------------------ the purge queue

  #queueKeys(queue: string): { z: string; i: string; h: string } {
    return { z: `${this.#prefix}qz:${queue}`, i: `${this.#prefix}qi:${queue}`, h: `${this.#prefix}qh:${queue}` };
  }

  async queuePush(queue: string, payloads: readonly string[], notBefore: number): Promise<number[]> {
    if (payloads.length === 0) return [];
    const k = this.#queueKeys(queue);
    const ids = (await this.#deadline('queue', this.#run(SCRIPTS.queuePush, [k.z, k.i, k.h], [String(notBefore), ...payloads]))) as number[];
    return ids.map(Number);
  }

  async queueClaim(queue: string, options: QueueClaimOptions): Promise<QueuedItem[]> {
    const k = this.#queueKeys(queue);
    const args = [String(options.now), String(options.now + options.lease), String(options.max)];
    const flat = (await this.#deadline('queue', this.#run(SCRIPTS.queueClaim, [k.z, k.h, k.i], args))) as Array<number | Buffer>;
    const out: QueuedItem[] = [];
    const lost = Number(flat[0]);
    if (lost > 0) {
      process.emitWarning(
        `page-dumper: ${lost} purge(s) of queue "${queue}" dropped: their payload was evicted from Redis (with purgers, Redis needs maxmemory-policy noeviction or volatile-*)`,
        { code: 'PAGE_DUMPER_QUEUE_EVICTED' },
      );
    }
    for (let i = 1; i + 2 < flat.length; i += 3) {
      out.push({ id: Number(flat[i]), payload: String(flat[i + 1]), attempts: Number(flat[i + 2]) });
    }
    return out;
  }

  async queueAck(queue: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    const k = this.#queueKeys(queue);
    await this.#deadline('queue', this.#run(SCRIPTS.queueAck, [k.z, k.i, k.h], ids.map(String)));
  }

  async queueRetry(queue: string, ids: readonly number[], notBefore: number): Promise<void> {
    if (ids.length === 0) return;
    const k = this.#queueKeys(queue);
    await this.#deadline('queue', this.#run(SCRIPTS.queueRetry, [k.z], [String(notBefore), ...ids.map(String)]));
  }

  async queueStats(queue: string): Promise<QueueStats> {
    const k = this.#queueKeys(queue);
    const [size, first, last, due] = (await this.#deadline('queue', this.#run(SCRIPTS.queueStats, [k.z, k.i], []))) as [number, number | null, number | null, Buffer | null];
    return {
      size: Number(size),
      firstId: first === null ? undefined : Number(first),
      lastId: last === null ? undefined : Number(last),
      nextDue: due === null ? undefined : Number(String(due)),
    };
  }

  #entryKey(key: string): string {
    return `${this.#prefix}e:${key}`;
  }

  // ------------------------------------------------------------ enumeration

  /**
   * Lists entries with SCAN (SSCAN of the tag's index set for `tag`), never KEYS: each call walks
   * a bounded part of the keyspace, and a script checks, for each key found, what `get()` would
   * (floor, sequence number, its tags' points) and answers the entry's head, never its body. The keys
   * of one SCAN batch are answered in key order, so that a page may end in the middle of a batch
   * (the cursor names the batch and the last key answered). As with SCAN, an entry held for the
   * whole listing is listed, and may be listed twice if Redis resizes its table meanwhile.
   * `EntryInfo.bytes`: the bytes of the entry's fields and key in Redis (not Redis's overhead).
   */
  async entries(options: EntryListOptions = {}): Promise<EntryPage> {
    const limit = listLimit(options);
    if (this.#fenced) await this.#raise();
    await this.#deadline('entries', this.#databaseChecked());
    const { pathPrefix = '', tag } = options;
    const cursor = parseScanCursor(options.cursor);
    const nodes: Client[] = tag === undefined && isCluster(this.#client) ? this.#client.nodes('master') : [this.#client];
    let [node, scan, after] = cursor;
    const found: EntryInfo[] = [];
    const eKey = `${this.#prefix}e:`;
    const match = `${globEscape(eKey)}*`;
    const count = String(Math.max(limit, 100));
    // Bounds one call however sparse the matches are (a tag index full of dropped entries, a
    // keyspace of other data): the page may then be short, with a cursor to go on.
    for (let batches = 0; batches < 100 && node < nodes.length; batches++) {
      const [nextScan, keys] =
        tag === undefined
          ? await this.#deadline('entries', nodes[node]!.scan(scan, 'MATCH', match, 'COUNT', count))
          : await this.#deadline('entries', this.#client.sscan(`${this.#prefix}t:${tag}`, scan, 'COUNT', count));
      const candidates = [...new Set(keys)].filter((k) => k.startsWith(eKey) && (after === '' || k > after)).sort();
      const flat = candidates.length === 0 ? [] : ((await this.#deadline('entries', this.#run(SCRIPTS.list, [this.#meta, ...candidates], [pathPrefix, tag ?? '', '0']))) as unknown[]);
      for (let i = 0; i + 4 < flat.length; i += 5) {
        if (found.length === limit) {
          // The page is full in the middle of this batch: the next page scans it again, after this key.
          return { entries: found, cursor: JSON.stringify([node, scan, eKey + found[found.length - 1]!.key]) };
        }
        found.push(listed(String(flat[i]).slice(eKey.length), flat[i + 1] as Buffer, Number(flat[i + 2]), flat[i + 3] as Buffer, Number(flat[i + 4])));
      }
      after = '';
      scan = nextScan;
      if (scan === '0') {
        node++;
        if (node >= nodes.length) return { entries: found, cursor: undefined };
      }
      if (found.length === limit) return { entries: found, cursor: JSON.stringify([node, scan, '']) };
    }
    return { entries: found, cursor: JSON.stringify([node, scan, '']) };
  }

  /**
   * Counts with SCAN: the entries `get()` would answer and their bytes (see `entries`), and the
   * tag index sets (which may outlive entries Redis expired or evicted). Walks the whole store:
   * about a second per million keys on loopback.
   */
  async info(): Promise<StoreInfo> {
    if (this.#fenced) await this.#raise();
    await this.#deadline('info', this.#databaseChecked());
    const nodes: Client[] = isCluster(this.#client) ? this.#client.nodes('master') : [this.#client];
    let entries = 0;
    let bytes = 0;
    let tags = 0;
    const eMatch = `${globEscape(`${this.#prefix}e:`)}*`;
    const tMatch = `${globEscape(`${this.#prefix}t:`)}*`;
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#deadline('info', node.scan(cursor, 'MATCH', eMatch, 'COUNT', 1000));
        cursor = next;
        if (keys.length === 0) continue;
        const [n, b] = (await this.#deadline('info', this.#run(SCRIPTS.list, [this.#meta, ...new Set(keys)], ['', '', '1']))) as [number, number];
        entries += Number(n);
        bytes += Number(b);
      } while (cursor !== '0');
      do {
        const [next, keys] = await this.#deadline('info', node.scan(cursor, 'MATCH', tMatch, 'COUNT', 1000));
        cursor = next;
        tags += new Set(keys).size;
      } while (cursor !== '0');
    }
    return { entries, bytes, tags, sequence: await this.sequence() };
  }

  // ------------------------------------------------------------ the local tier

  /**
   * Keeps an entry fetched from Redis or stored there in the local tier, and answers whether it
   * did. Not when something was heard since the fetch or set began (`localSeq`, the tier's
   * sequence number read before it): an invalidation of one of its tags, a resubscription, a
   * raise or clear() (the tier refuses those fills itself), or another process's store of the key
   * (Redis may hold a newer entry).
   *
   * The tier checks its own numbers, read in this process, but keeps the entry as Redis has it,
   * with the sequence number it was stored with: `get()` answers `entry.seq` in Redis's
   * numbering whichever tier the entry comes from, so that a `set` of it again (with its
   * encodings) is checked by Redis against the invalidations since its render.
   */
  #keepLocally(key: string, entry: StoredEntry, options: SetOptions, localSeq: number): boolean {
    const local = this.#local;
    if (local === undefined || !this.#localReady || this.#fenced || localSeq < this.#heardFloor) return false;
    const heard = this.#heardSets.get(key);
    if (heard !== undefined && heard > localSeq) return false;
    return local.setAt(key, entry, options, localSeq);
  }

  /**
   * Another process stored an entry under `key`: the tier drops its entry of the key, and a fetch
   * or set of it begun before this moment does not enter the tier (its answer may be the entry
   * replaced). The next get asks Redis.
   */
  #heardSet(key: string): void {
    const local = this.#local!;
    // A number of the tier's above every one read before (no tag is recorded).
    const at = local.invalidate([]);
    local.delete(key);
    if (this.#heardSets.size >= MAX_HEARD_SETS) {
      this.#heardSets.clear();
      this.#heardFloor = at;
    } else this.#heardSets.set(key, at);
  }

  // ------------------------------------------------------------ lost connections and the floor

  /**
   * Follows the client's connection. A closed connection (Redis restarted or unreachable, a
   * failover, a Cluster node lost) makes the store fenced until it has raised the floor.
   *
   * Why every process raises it, and not only one whose invalidations failed: an invalidation that
   * this process could not send while Redis was away, or that Redis acknowledged and then lost (a
   * restart from an older snapshot), is known nowhere else. Any process reconnecting first would
   * serve the pages stored before, while the writer that knows of its failure may still be
   * reconnecting. Raising the floor makes every entry stored and every render begun before it
   * invalid for every process, in one constant-time script, before this process answers a get
   * with an entry.
   */
  #watch(): void {
    const client = this.#client;
    const on = (emitter: NodeJS.EventEmitter, event: string, fn: (...a: any[]) => void) => {
      emitter.on(event, fn);
      this.#listeners.push({ emitter, event, fn });
    };
    const lost = () => this.#lost();
    on(client, 'close', lost);
    // A new connection is checked again (the database may exist now, or no longer).
    if (this.#db !== 0) {
      on(client, 'close', () => {
        this.#dbChecked = undefined;
        this.#noDatabase = undefined;
      });
    }
    on(client, 'ready', () => {
      if (this.#fenced && !this.#closed) void this.#raise();
    });
    if (isCluster(client)) {
      // A Cluster's commands go through one connection per node; the store's slot is on one.
      for (const node of client.nodes('all')) on(node, 'close', lost);
      on(client, '+node', (node: Redis) => on(node, 'close', lost));
      on(client, '-node', lost);
    }
  }

  #lost(): void {
    if (this.#closed || (this as unknown as Record<symbol, unknown>)[WITHOUT_RECONNECT_FLOOR] === true) return;
    this.#epoch++;
    this.#fenced = true;
    this.#missAt = -Infinity;
    // All of these are about to be invalid; the copies would only fail their checks.
    this.#copies.clear();
    this.#local?.clear();
  }

  #connected(): boolean {
    return this.#client.status === 'ready';
  }

  #offline(): RedisStoreError {
    return new RedisStoreError('DUMPER_REDIS_OFFLINE', 'page-dumper: RedisStore lost its connection to Redis and is not reconnected yet');
  }

  /**
   * A get while fenced: a miss once the connection is back (the raise is then sent, and everything
   * stored before it is invalid anyway), a failure while it is not (the request goes straight to
   * the app instead of waiting in the offline queue).
   */
  #fencedGet(): undefined | Promise<undefined> {
    if (!this.#connected()) return Promise.reject(this.#offline());
    void this.#raise();
    return undefined;
  }

  /**
   * Raises the floor (see the RAISE script); resolves when it has run or failed. The store stays
   * fenced if the connection is lost again before the answer: the raise may not have run, and
   * another follows the next 'ready'.
   *
   * ioredis sends what it queued while offline (invalidations among them) and resends what was
   * unanswered before this script, as it is sent from the 'ready' event: those run first. An
   * invalidation that lands first is harmless, since the floor moves above every point it records;
   * a get is not trusted (see `#epoch`). Sent with EVAL, never EVALSHA: a Redis that restarted
   * answers NOSCRIPT, and the EVAL sent after it would run behind commands sent meanwhile.
   */
  #raise(): Promise<void> {
    if (this.#raising !== undefined) return this.#raising;
    const epoch = this.#epoch;
    const client = this.#client as unknown as { eval(...a: unknown[]): Promise<unknown> };
    const generation = `${ORIGIN}.r${++fills}`;
    const raised = this.#deadline(
      'raise',
      this.#databaseChecked().then(() => client.eval(SCRIPTS.raise.src, 1, this.#meta, this.#local ? this.channel : '', generation, String(this.#maxHanded))),
    );
    this.#raising = raised.then(
      () => {
        this.#raising = undefined;
        if (this.#epoch !== epoch || this.#closed) return;
        this.#fenced = false;
        this.#copies.clear();
        this.#local?.clear();
      },
      () => {
        // Still fenced: the next get or 'ready' tries again.
        this.#raising = undefined;
      },
    );
    return this.#raising;
  }

  // ------------------------------------------------------------ time bounds

  #timedOut(op: string): RedisStoreError {
    return new RedisStoreError('DUMPER_REDIS_TIMEOUT', `page-dumper: RedisStore ${op} got no answer from Redis within ${this.#timeout} ms`);
  }

  /**
   * `promise`, or a `DUMPER_REDIS_TIMEOUT` failure once `commandTimeout` has passed since the call.
   * ioredis starts its own timer only when it hands the command over, which with auto-pipelining
   * is once the previous batch has answered: behind a stalled command each batch waits one more
   * timeout. The command itself may still run later; every script is safe whenever it runs.
   */
  #deadline<T>(op: string, promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.#timedOut(op)), this.#timeout);
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          // ioredis's own timer (the store's clients have one of the same length): the store's error.
          reject(error instanceof Error && error.message === 'Command timed out' ? this.#timedOut(op) : error);
        },
      );
    });
  }

  // ------------------------------------------------------------ gets

  /**
   * Fetches one entry, answering it when valid or the current sequence number when not.
   *
   * Gets asked for in the same turn of the event loop are sent together, and with the store's own
   * client (auto-pipelining) in one write, under one timer. Gets of the same key in one turn share
   * one fetch and one answer, as if they had come one right after the other.
   *
   * For a key this process holds a copy of (see `localBytes`), the get is `HGET` of the entry's
   * fill id, and after the batch's `HGET`s one `HMGET` of the invalidation points of every tag
   * those copies have. When the key still holds the entry the copy was made from (ids are never
   * reused), the points decide its validity; they were read after the id, and they only ever
   * rise, so an entry valid at that moment was valid when the id was read. Redis then sends a few
   * bytes instead of the page. Anything else (no copy, an entry stored again since, one no longer
   * valid) goes to the get script, which also frees invalid entries.
   */
  #batchedGet(entryKey: string): Promise<GetAnswer> {
    return new Promise((resolve, reject) => {
      let batch = this.#batch;
      if (batch === undefined) {
        batch = this.#batch = { gets: new Map(), timer: undefined, open: 0 };
        batch.timer = setTimeout(this.#expire, this.#timeout, batch);
        setImmediate(this.#flushGets, batch);
      }
      const waiting = batch.gets.get(entryKey);
      if (waiting !== undefined) waiting.push({ resolve, reject });
      else {
        batch.gets.set(entryKey, [{ resolve, reject }]);
        batch.open++;
      }
    });
  }

  /** The batch's time is up: every get still waiting fails (later answers are ignored). */
  readonly #expire = (batch: Batch): void => {
    batch.timer = undefined;
    if (batch.open === 0) return;
    batch.open = 0;
    const error = this.#timedOut('get');
    for (const waiting of batch.gets.values()) for (const w of waiting) w.reject(error);
  };

  /** Answers the waiters of one key of a batch; the last key answered stops the batch's timer. */
  #settle(batch: Batch, waiting: Waiter[], answer: GetAnswer, error?: unknown): void {
    if (error !== undefined) for (const w of waiting) w.reject(error);
    else for (const w of waiting) w.resolve(answer);
    if (--batch.open === 0 && batch.timer !== undefined) {
      clearTimeout(batch.timer);
      batch.timer = undefined;
    }
  }

  readonly #flushGets = (batch: Batch): void => {
    if (this.#batch === batch) this.#batch = undefined;
    if (batch.open === 0) return; // expired already
    // The connection was lost since these gets were asked for.
    if (this.#fenced) {
      const error = this.#connected() ? undefined : this.#offline();
      if (error === undefined) void this.#raise();
      for (const waiting of batch.gets.values()) this.#settle(batch, waiting, undefined, error);
      return;
    }
    const epoch = this.#epoch;
    // Commands go through the client one by one, never as a pipeline of our own: ioredis writes
    // them in the order they were issued (auto-pipelined or not), so a get issued after an
    // invalidation reaches Redis after it. An explicit pipeline could overtake commands that ioredis
    // holds back while an auto-pipeline is in flight.
    const client = this.#client as unknown as {
      hget(key: string, field: string): Promise<string | null>;
      hmget(key: string, fields: string[]): Promise<Array<string | null>>;
    };
    /** meta field → its index in the batch's one HMGET. */
    const fields = new Map<string, number>([
      ['seq', 0],
      ['floor', 1],
      ['g', 2],
    ]);
    const checks: Array<{ entryKey: string; copy: RedisCopy; waiting: Waiter[]; id: Promise<string | null> }> = [];
    for (const [entryKey, waiting] of batch.gets) {
      // Plain reads only on a connection known to use the store's database.
      const copy = this.#dbChecked === true ? this.#copies.peek(entryKey) : undefined;
      if (copy === undefined) {
        this.#scriptGet(batch, epoch, entryKey, waiting);
        continue;
      }
      checks.push({ entryKey, copy, waiting, id: client.hget(entryKey, 'i') });
      for (const f of copy.fields) if (!fields.has(f)) fields.set(f, fields.size);
    }
    if (checks.length === 0) return;
    const points = client.hmget(this.#meta, [...fields.keys()]);
    for (const c of checks) {
      Promise.all([c.id, points]).then(
        ([id, values]) => {
          // Sent before the connection was lost and answered after (resent by ioredis): it may
          // have run before the floor was raised.
          if (this.#epoch !== epoch) return this.#settle(batch, c.waiting, undefined);
          const answer = checkCopy(c.copy, id, (field) => values[fields.get(field)!]);
          if (answer === undefined) {
            this.#copies.forget(c.entryKey);
            // Stored again (or its meta is gone): a key in use, whose new entry is kept at once.
            this.#seen.remember(c.entryKey);
            this.#scriptGet(batch, epoch, c.entryKey, c.waiting);
            return;
          }
          if (typeof answer === 'number') {
            this.#copies.forget(c.entryKey);
            this.#handOut(answer, values[2] ?? '');
          } else this.#copies.get(c.entryKey); // most recently used
          this.#settle(batch, c.waiting, answer);
        },
        (error: unknown) => this.#settle(batch, c.waiting, undefined, error),
      );
    }
  };

  /** The get script alone, for an entry the plain reads could not decide. */
  #scriptGet(batch: Batch, epoch: number, entryKey: string, waiting: Waiter[]): void {
    this.#run(SCRIPTS.get, [this.#meta, entryKey], []).then(
      (reply) => {
        if (this.#epoch !== epoch) return this.#settle(batch, waiting, undefined);
        let answer: Fetched | number;
        try {
          answer = this.#scriptReply(entryKey, reply);
        } catch (error) {
          return this.#settle(batch, waiting, undefined, error);
        }
        this.#settle(batch, waiting, answer);
      },
      (error: unknown) => this.#settle(batch, waiting, undefined, error),
    );
  }

  /** Decodes the get script's answer (`[entry, fill id, encoded bodies]` or `[seq, generation]`), and keeps a copy of the entry. */
  #scriptReply(entryKey: string, reply: unknown): Fetched | number {
    if (typeof (reply as unknown[])[0] === 'number') {
      this.#copies.forget(entryKey);
      const [seq, g] = reply as [number, Buffer];
      return this.#handOut(seq, g.toString());
    }
    const [buf, id, encodings = null] = reply as [Buffer, Buffer | null, Buffer | null | undefined];
    const fetched = decode(buf, encodings);
    if (id !== null && this.#copies.maxBytes !== 0 && this.#seen.admit(entryKey, entryBytes(entryKey, fetched.entry) + 160)) {
      // `keep` gives the copy a body of its own (the reply's buffer may be a slice of a larger
      // read); answer the copy kept, so that the reply's buffer can be collected.
      const copy = copyOf(id.toString(), fetched.entry, fetched.variant);
      return this.#copies.keep(entryKey, copy, copyExtraBytes(copy)) ?? fetched;
    }
    return fetched;
  }

  /** Runs a script (see `#runNow`) once the connection is known to use the store's database. */
  #run(s: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    if (this.#dbChecked !== true) return this.#databaseChecked().then(() => this.#runNow(s, keys, args));
    return this.#runNow(s, keys, args);
  }

  /**
   * Resolves once the connection is known to use the database the options name (see
   * `#dbChecked`), by a `SELECT` of it: sent after the one ioredis sends on connecting, before any
   * command of the store. Rejects with `DUMPER_REDIS_NO_DATABASE` when Redis has no such database.
   */
  #databaseChecked(): Promise<void> {
    if (this.#noDatabase !== undefined) return Promise.reject(this.#noDatabase);
    const checked = this.#dbChecked;
    if (checked === true) return Promise.resolve();
    if (checked !== undefined) return checked;
    const check: Promise<void> = (this.#client as Redis).select(this.#db).then(
      () => {
        if (this.#dbChecked === check) this.#dbChecked = true;
      },
      (error: unknown) => {
        if (this.#dbChecked === check) this.#dbChecked = undefined;
        const message = error instanceof Error ? error.message : String(error);
        if (!/DB index is out of range|invalid DB index/i.test(message)) throw error;
        this.#noDatabase = new RedisStoreError(
          'DUMPER_REDIS_NO_DATABASE',
          `page-dumper: ${this.label}: Redis has no database ${this.#db} (it answered "${message}"; the number of databases is its \`databases\` setting, 16 by default). The store does not fall back to database 0: every call fails until the URL or the server is changed and the store reconnects`,
        );
        throw this.#noDatabase;
      },
    );
    this.#dbChecked = check;
    return check;
  }

  /** EVALSHA, and EVAL once when the server does not know the script yet (new, restarted, flushed). */
  #runNow(s: Script, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    // ioredis flattens array arguments, which keeps 10,000-path invalidations off the JS stack.
    const client = this.#client as unknown as {
      evalshaBuffer(...a: unknown[]): Promise<unknown>;
      evalBuffer(...a: unknown[]): Promise<unknown>;
    };
    return client.evalshaBuffer(s.sha, keys.length, keys, args).catch((error: unknown) => {
      if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
        return client.evalBuffer(s.src, keys.length, keys, args);
      }
      throw error;
    });
  }

  /** Deletes the keys matching `pattern`, every command bounded by `commandTimeout` (see `#deadline`). */
  async #deleteMatching(pattern: string): Promise<void> {
    await this.#deadline('clear', this.#databaseChecked());
    const nodes = isCluster(this.#client) ? this.#client.nodes('master') : [this.#client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, found] = await this.#deadline('clear', node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
        cursor = next;
        if (found.length > 0) await this.#deadline('clear', node.unlink(...found));
      } while (cursor !== '0');
    }
  }

  #subscribe(): void {
    const local = this.#local!;
    const sub = this.#client.duplicate() as Client;
    this.#subscriber = sub;
    /** The subscription is active on the current connection (set once SUBSCRIBE has answered). */
    let subscribed = false;
    const down = () => {
      this.#localReady = false;
      local.clear();
    };
    const closed = () => {
      subscribed = false;
      down();
    };
    sub.on('error', () => {});
    if (sub.status === 'wait') sub.connect().catch(() => {});
    sub.on('close', closed);
    sub.on('end', closed);
    sub.on('ready', () => {
      sub.subscribe(this.channel, this.setChannel).then(
        () => {
          if (this.#closed) return;
          // Whatever was published while the subscription was down is lost: start empty.
          subscribed = true;
          local.clear();
          this.#localReady = true;
        },
        down,
      );
    });
    // The heartbeat: a connection may stop delivering without closing. A PING answered on the
    // subscription's own connection comes after every message published before Redis read it.
    let pinging = false;
    const beat = () => {
      if (this.#closed || pinging || !subscribed) return;
      // A Cluster subscribes through one node's connection, which its own commands do not use.
      const conn = (isCluster(sub) ? (sub as unknown as { subscriber?: { getInstance?(): Redis | undefined } }).subscriber?.getInstance?.() : sub) ?? sub;
      if (conn.status !== 'ready') return;
      pinging = true;
      const done = (ok: boolean) => {
        if (!pinging) return;
        pinging = false;
        clearTimeout(timer);
        if (!ok) down();
        else if (!this.#localReady && subscribed && !this.#closed) {
          local.clear();
          this.#localReady = true;
        }
      };
      const timer = setTimeout(() => {
        // Not answered in time: down until a later ping is answered (this one may still be).
        down();
      }, this.#timeout);
      (conn as Redis).ping().then(
        () => done(true),
        () => done(false),
      );
    };
    this.#heartbeatTimer = setInterval(beat, this.#heartbeat);
    this.#heartbeatTimer.unref();
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.setChannel) {
        // This store's own sets: its tier already holds what it stored.
        if (message.startsWith(this.#setSender)) return;
        const space = message.indexOf(' ');
        if (space === -1) down();
        else this.#heardSet(message.slice(space + 1));
        return;
      }
      if (channel !== this.channel) return;
      const space = message.indexOf(' ');
      const rest = message.slice(space + 1);
      if (rest === '*') local.clear();
      else {
        try {
          local.invalidate(JSON.parse(rest) as string[]);
        } catch {
          down();
        }
      }
    });
  }
}

/** `s` matched literally by a SCAN pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

/** A cursor of `entries()`: the node, the SCAN (or SSCAN) cursor of the batch, the last key answered of it. */
function parseScanCursor(cursor: string | undefined): [number, string, string] {
  if (cursor === undefined) return [0, '0', ''];
  try {
    const value: unknown = JSON.parse(cursor);
    if (Array.isArray(value) && value.length === 3 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string' && typeof value[2] === 'string') {
      return value as [number, string, string];
    }
  } catch {
    // Not one of ours: the error below.
  }
  throw new TypeError(`page-dumper: entries() got a cursor it did not make: ${JSON.stringify(cursor)}`);
}

/** An entry as the list script answers it: its key, JSON head, body bytes, head of encoded bodies, bytes. */
function listed(key: string, head: Buffer, bodyBytes: number, encodings: Buffer, bytes: number): EntryInfo {
  const [status, headers, etag, storedAt, seq, path, tags, flags = 0] = JSON.parse(head.toString()) as [
    number,
    string[],
    string,
    number,
    number,
    string,
    string[],
    number | undefined,
  ];
  return {
    key,
    status,
    headers,
    etag,
    storedAt,
    seq,
    path,
    tags,
    anonymousOnly: (flags & ANONYMOUS_ONLY) !== 0,
    bodyBytes,
    encodings: encodingSizes(encodings.length === 0 ? null : encodings),
    bytes,
  };
}

/** `host:port`, with brackets around an IPv6 address. */
function hostPort(host: unknown, port: unknown): string {
  const h = typeof host === 'string' && host !== '' ? host : 'localhost';
  return `${h.includes(':') ? `[${h}]` : h}:${typeof port === 'number' || typeof port === 'string' ? port : 6379}`;
}

/**
 * Where a client connects, for the store's label, from its options alone (ioredis has parsed any
 * URL into them): never a username or a password, which the options also hold.
 */
function whereTo(client: Client): string {
  if (isCluster(client)) {
    const nodes = (client as unknown as { startupNodes?: unknown[] }).startupNodes ?? [];
    const shown = nodes.slice(0, 3).map((node) => {
      if (typeof node === 'number') return hostPort('localhost', node);
      if (typeof node === 'string') {
        // A URL may carry credentials: only its host and port are kept.
        try {
          const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(node) ? node : `redis://${node}`);
          return hostPort(u.hostname.replace(/^\[|\]$/g, ''), u.port === '' ? 6379 : Number(u.port));
        } catch {
          return '(unparsed node)';
        }
      }
      const o = node as { host?: unknown; port?: unknown } | null;
      return hostPort(o?.host, o?.port);
    });
    return `${shown.join(',')}${nodes.length > 3 ? ',...' : ''}`;
  }
  const o = ((client as { options?: unknown }).options ?? {}) as {
    host?: unknown;
    port?: unknown;
    path?: unknown;
    db?: unknown;
    tls?: unknown;
    sentinels?: unknown;
    name?: unknown;
  };
  const db = typeof o.db === 'number' ? o.db : 0;
  if (typeof o.path === 'string' && o.path !== '') return `${o.path} db ${db}`;
  if (Array.isArray(o.sentinels) && o.sentinels.length > 0) {
    const sentinels = (o.sentinels as Array<{ host?: unknown; port?: unknown } | null>).slice(0, 3).map((x) => hostPort(x?.host, x?.port));
    return `sentinels ${sentinels.join(',')}${o.sentinels.length > 3 ? ',...' : ''} master ${typeof o.name === 'string' ? o.name : '?'} db ${db}`;
  }
  return `${o.tls ? 'rediss' : 'redis'}://${hostPort(o.host, o.port)}/${db}`;
}

function isCluster(client: Client): client is Cluster {
  return typeof (client as Cluster).nodes === 'function' && (client as { isCluster?: boolean }).isCluster === true;
}
