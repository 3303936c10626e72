import { createHash } from 'node:crypto';
import { brandClass } from './brand.js';
import { DumperError } from './errors.js';
import type { Log } from './log.js';
import { MemoryQueue } from './queue.js';
import { hasQueue, type PurgeQueueStore, type QueuedItem, type Store } from './store.js';

/**
 * The response header that carries a page's tags to one edge cache, and that edge's documented
 * limits for it.
 */
export interface EdgeTagHeader {
  /** Header name, lower-case (`xkey`, `surrogate-key`, `cache-tag`). */
  readonly name: string;
  /** What separates two tags in the value. */
  readonly separator: ' ' | ',';
  /** Bytes of the header's value at most; a page with more tags than fit gets coarser ones (see `edgeHeaderValue`). */
  readonly maxBytes: number;
  /** Bytes of one tag at most; a longer tag (or one with a character outside `EDGE_TAG_SAFE`) is sent hashed. */
  readonly maxTagBytes: number;
}

/**
 * What a purger implements: one edge cache (or several instances of one) that the dumper labels
 * pages for and purges by tag. `page-dumper/purge` has `varnishPurger`, `fastlyPurger` and
 * `cloudflarePurger`; a purger for another edge is an object of this shape.
 */
export interface Purger {
  /**
   * Names the edge, the same in every process that purges it (`varnish http://cache-1:6081 ...`,
   * `fastly <service id>`): the durable queue of its purges is named after it, so that a purge
   * queued by one process is delivered by any of them, once.
   */
  readonly id: string;
  /** The header the tags travel in. */
  readonly tagHeader: EdgeTagHeader;
  /**
   * The header that tells this edge how long to keep a page (RFC 9213 `CDN-Cache-Control`, or
   * `Surrogate-Control`), lower-case. The dumper sends `max-age=<edgeMaxAge>` in it, and
   * `no-store` for a page it cannot vouch for. Edges strip it (or the shipped VCL does), and
   * browsers are told to revalidate.
   */
  readonly freshnessHeader: string;
  /** Most tags one `purge()` call may carry (the API's per-request limit). */
  readonly maxBatch: number;
  /** Most bytes the tags of one `purge()` call may take, separators included, when the API bounds it (a header). */
  readonly maxBatchBytes?: number;
  /**
   * Purges every page carrying any of `tags` (edge tags, as sent in `tagHeader`). Resolves once
   * the edge acknowledged it; rejects otherwise (a `PurgeError` with `retryAfter` for a 429 or
   * 503 that named one). Called with at most `maxBatch` tags.
   */
  purge(tags: readonly string[]): Promise<void>;
  /**
   * Purgers that together make this one, each with a queue of its own (one per Varnish
   * instance): the dumper delivers to each of them instead of calling `purge()`, so that a
   * deploy that adds, drops or reorders instances finds the queue of each instance it keeps.
   */
  readonly instances?: readonly Purger[];
}

/** A purge the edge did not acknowledge. */
export class PurgeError extends Error {
  /** The HTTP status the edge answered, if it answered. */
  readonly status: number | undefined;
  /** Milliseconds the edge asked to wait (`Retry-After`, RFC 9110 §10.2.3), if it did. */
  readonly retryAfter: number | undefined;
  constructor(message: string, options: { status?: number; retryAfter?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PurgeError';
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }
}
brandClass(PurgeError, 'PurgeError');

/**
 * `Retry-After` in milliseconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); `undefined`
 * when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(at - now, 0);
}

/** Characters every edge takes in a tag as they are: no separator, no whitespace, nothing to escape. */
export const EDGE_TAG_SAFE = /^[A-Za-z0-9/._~:*@+=-]+$/;

/** Carried by every page, purged by `invalidateAll()`. */
export const EDGE_ALL_TAG = 'pd.all';

/**
 * How many coarse tags a page with too many tags falls back to. A tag's bucket is purged with the
 * tag, so a page that carries the buckets of its tags instead of the tags is purged whenever one of
 * them is, and also by the purges of other tags in the same buckets: a page carrying `k` buckets by
 * about `k` in 64 of them. Past a few dozen tags that is nearly all 64, so nearly every tag purge
 * (the price of the limit; such pages are rare: see docs/edge.md).
 */
export const EDGE_BUCKETS = 64;

/** The form of a tag on the wire: itself when every edge takes it, else a hash of it (22 characters of SHA-256). */
export function edgeTag(tag: string, maxTagBytes: number): string {
  if (tag.length <= maxTagBytes && EDGE_TAG_SAFE.test(tag)) return tag;
  return 'pd.h.' + createHash('sha256').update(tag).digest('base64url').slice(0, 22);
}

/** The coarse tag standing for `edge` (an edge tag) on pages that have too many tags to list. */
export function edgeBucket(edge: string): string {
  // FNV-1a: cheap and stable across processes and releases, which is all a bucket needs.
  let h = 0x811c9dc5;
  for (let i = 0; i < edge.length; i++) {
    h ^= edge.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `pd.b${(h >>> 0) % EDGE_BUCKETS}`;
}

/**
 * The value of a purger's tag header for a page: the all-pages tag, the path tag, then the other
 * tags (ancestor tags, render tags). When they do not fit in `maxBytes`, everything but the first
 * two is replaced by the buckets of those tags (see `EDGE_BUCKETS`).
 */
export function edgeHeaderValue(header: EdgeTagHeader, pathTag: string, others: Iterable<string>): string {
  const sep = header.separator === ' ' ? ' ' : ', ';
  const seen = new Set<string>([EDGE_ALL_TAG, edgeTag(pathTag, header.maxTagBytes)]);
  const head = [...seen];
  const rest: string[] = [];
  for (const t of others) {
    const e = edgeTag(t, header.maxTagBytes);
    if (!seen.has(e)) {
      seen.add(e);
      rest.push(e);
    }
  }
  const full = [...head, ...rest].join(sep);
  if (Buffer.byteLength(full) <= header.maxBytes) return full;
  const buckets = new Set<string>();
  for (const e of rest) buckets.add(edgeBucket(e));
  return [...head, ...buckets].join(sep);
}

/** What the dispatcher counts, for `dumper.purgeStats`. */
export interface PurgeStats {
  /** Tags pushed to a queue (one per tag and purger, and once more for the race once sent, see `raceWindow`). */
  queued: number;
  /** Purge requests acknowledged by an edge. */
  sent: number;
  /** Purge requests that failed (each is retried). */
  failed: number;
  /** Batches put back in the queue to be tried again later. */
  retried: number;
}

export interface PurgeSettings {
  /**
   * Milliseconds after a purge was acknowledged at which it is sent a second time. A render that
   * began before a write and answered the edge after the write's purge left a stale page there;
   * the second purge removes it. Pages whose render took longer than half of this before their
   * headers went out are sent with `no-store` for the edge, so the bound holds for every page:
   * nothing is stale at the edge longer than `raceWindow` after the first purge reached it (plus
   * the time the second purge request itself takes).
   * @default 2000
   */
  readonly raceWindow: number;
  /** Milliseconds a claimed batch stays invisible to other processes (longer than a purge request may take). @default 30000 */
  readonly lease: number;
  /** Milliseconds before the first retry of a failed purge; doubled for each further attempt. @default 500 */
  readonly retryDelay: number;
  /** The longest wait between retries, in milliseconds. @default 60000 */
  readonly maxRetryDelay: number;
  /** Milliseconds between looks at the shared queue for purges another process left (it died mid-delivery). @default 5000 */
  readonly pollInterval: number;
  /** Seconds an edge keeps a page (`max-age` of the freshness header). @default 31536000 (a year) */
  readonly edgeMaxAge: number;
}

export const DEFAULT_PURGE_SETTINGS: PurgeSettings = Object.freeze({
  raceWindow: 2000,
  lease: 30_000,
  retryDelay: 500,
  maxRetryDelay: 60_000,
  pollInterval: 5000,
  edgeMaxAge: 31_536_000,
});

/** Options of `dumper.flushPurges()`. */
export interface FlushOptions {
  /** Milliseconds to wait at most; past it, the promise rejects. @default no limit */
  readonly timeout?: number;
  /** Stops waiting (the promise rejects) when it aborts. */
  readonly signal?: AbortSignal;
}

/**
 * Milliseconds the worker lets purges gather before it claims them, after an invalidation and
 * after a batch that was not full: a burst of writes (an import, a loop of saves) then costs a few
 * full requests instead of one request per write, for at most this much more latency.
 */
const LINGER = 10;
/**
 * How much later than now the purge of an invalidation is due (`enqueue(tags, true)`): it is pushed
 * before the store invalidates, so that a crash in between cannot lose it, and the store has
 * invalidated by the time it is sent (an edge that fetches the page again gets the new one). A
 * store slower than that: the race's second purge covers the early one.
 */
export const PURGE_AFTER_STORE = 50;

interface Lane {
  readonly purger: Purger;
  /** The queue's name in the store. */
  readonly queue: string;
  /** The highest id this process pushed (what `flush()` waits for). */
  highWater: number;
  /** Edge tags whose push failed (the store was down), with when they are due, and their ids once pushed. */
  readonly unpushed: Array<{ tags: string[]; due: number; ids?: readonly number[] }>;
  /** The `flush()` calls waiting on this lane: the highest id each waits for. */
  readonly flushes: Set<{ target: number }>;
  running: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
  /** Until when the edge asked (`Retry-After`) that nothing be sent to it: no batch is claimed before. */
  pausedUntil: number;
  /** Work was asked for while the worker ran: it runs once more. */
  wanted: boolean;
}

/**
 * Fans invalidations out to the purgers: every tag becomes one queue item per purger (in the
 * store's queue when it has one, so that every process delivers what any process queued, once),
 * and a worker per purger claims batches, sends them, and acknowledges or retries them.
 */
export class PurgeDispatcher {
  readonly purgers: readonly Purger[];
  readonly settings: PurgeSettings;
  readonly stats: PurgeStats = { queued: 0, sent: 0, failed: 0, retried: 0 };
  /** Whether the queue is in this process only (a crash loses it). */
  readonly inMemory: boolean;
  readonly #queue: PurgeQueueStore;
  readonly #log: Log;
  readonly #lanes: Lane[];
  /** Distinct freshness header names, for `headersFor`. */
  readonly #freshness: readonly string[];
  #closed = false;

  constructor(options: { purgers: readonly Purger[]; store: Store; keyPrefix: string; log: Log; settings: PurgeSettings }) {
    this.purgers = options.purgers;
    this.settings = options.settings;
    this.#log = options.log;
    if (hasQueue(options.store)) {
      this.#queue = options.store;
      this.inMemory = false;
    } else {
      this.#queue = new MemoryQueue();
      this.inMemory = true;
    }
    this.#lanes = options.purgers.flatMap((p) => (p.instances !== undefined && p.instances.length > 0 ? p.instances : [p])).map((purger) => ({
      purger,
      queue: `${options.keyPrefix}purge ${purger.id}`,
      highWater: 0,
      unpushed: [],
      flushes: new Set(),
      running: undefined,
      timer: undefined,
      timerAt: Infinity,
      pausedUntil: 0,
      wanted: false,
    }));
    this.#freshness = [...new Set(options.purgers.map((p) => p.freshnessHeader.toLowerCase()))];
    this.#edgeNames = new Set([...this.#freshness, ...options.purgers.map((p) => p.tagHeader.name.toLowerCase())]);
    // Purges another process queued and could not deliver (it died holding a lease, or exited
    // with retries due) are picked up by this one.
    for (const lane of this.#lanes) this.#schedule(lane, Date.now());
  }

  /** The freshness header(s) saying `no-store`. */
  get noStore(): readonly string[] {
    return (this.#noStore ??= Object.freeze(this.#freshness.flatMap((name) => [name, 'no-store'])));
  }

  #noStore: readonly string[] | undefined;
  #noStoreBare: readonly string[] | undefined;

  /**
   * The headers that keep a response the dumper cannot vouch for (`head`: its headers as sent,
   * flat, lower-case names) out of every edge: each freshness header as `no-store`, and `private`
   * in `Cache-Control` (after the app's directives, or `private, max-age=0, must-revalidate` when
   * it has none) unless it already says `private` or `no-store`. Not every edge reads `no-store`
   * in its freshness header: Fastly takes only a lifetime from `Surrogate-Control`, and passes
   * responses marked `private`.
   */
  noStoreFor(head: readonly string[]): readonly string[] {
    const cc = valuesOf(head, 'cache-control');
    if (cc.length === 0) return (this.#noStoreBare ??= Object.freeze([...this.noStore, 'cache-control', 'private, max-age=0, must-revalidate']));
    const value = cc.join(', ');
    if (/(?:^|,)\s*(?:private|no-store)\b/i.test(value)) return this.noStore;
    return [...this.noStore, 'cache-control', `${value}, private`];
  }

  /**
   * The headers for a GET or HEAD response the dumper passes through without storing it (it
   * carries no tags, so no purge would reach it at the edge): `noStoreFor()`, unless the app said
   * itself how shared caches may keep it — an edge freshness header of its own (then only the
   * ones it lacks are added), or `Cache-Control` with `public` or `s-maxage` (a static file, say):
   * then nothing. `get` reads a response header's value (lower-case name).
   */
  passThrough(get: (name: string) => string | undefined): readonly string[] {
    const own = this.#freshness.filter((name) => get(name) !== undefined);
    if (own.length !== 0) return this.noStore.filter((_, i, all) => i % 2 === 0 ? !own.includes(all[i]!) : !own.includes(all[i - 1]!));
    const cc = get('cache-control');
    if (cc !== undefined && /(?:^|,)\s*(?:public|s-maxage=)/i.test(cc) && !/(?:^|,)\s*(?:private|no-store)\b/i.test(cc)) return [];
    return this.noStoreFor(cc === undefined ? [] : ['cache-control', cc]);
  }
  /** The tag and freshness headers' names (lower case). */
  readonly #edgeNames: ReadonlySet<string>;

  /**
   * The headers an edge needs on a page with these tags (unprefixed: the path tag first), as a flat
   * lower-case list: each purger's tag header, the edge freshness header(s), and `Cache-Control:
   * max-age=0, must-revalidate` for browsers when the page has no `Cache-Control` of its own, so
   * that they revalidate every time (RFC 9111 §5.2.2.2; with the ETag, a 304) while the edge keeps
   * the page (RFC 9213 §2.1: the targeted field takes precedence there). Not `no-cache`, which
   * the dumper itself reads as "do not store". `fresh: false`: `no-store` for the edge (see
   * `raceWindow`).
   */
  headersFor(pathTag: string, others: readonly string[], head: readonly string[], fresh = true): readonly string[] {
    // The app's own edge headers (a tag header, a freshness header) are kept: merged with ours.
    let own = '';
    let hasCacheControl = false;
    for (let i = 0; i < head.length; i += 2) {
      const name = head[i]!;
      if (name === 'cache-control') hasCacheControl = true;
      else if (this.#edgeNames.has(name)) own += `\n${name}\n${head[i + 1]!}`;
    }
    // A shared store answers each hit with a new entry object, whose representations (and these
    // headers) are made again: the lists are kept by their tags, so a hit builds only the key.
    const key = `${fresh ? 1 : 0}${hasCacheControl ? 1 : 0}${pathTag}\n${others.join('\n')}\n${own}`;
    const known = this.#made.get(key);
    if (known !== undefined) return known;
    const out = this.#headers(pathTag, others, hasCacheControl, fresh, own === '' ? undefined : head);
    if (this.#made.size >= 10_000) this.#made.clear();
    this.#made.set(key, out);
    return out;
  }

  readonly #made = new Map<string, readonly string[]>();

  #headers(pathTag: string, others: readonly string[], hasCacheControl: boolean, fresh: boolean, head: readonly string[] | undefined): readonly string[] {
    const out: string[] = [];
    const named = new Set<string>();
    for (const p of this.purgers) {
      const name = p.tagHeader.name.toLowerCase();
      if (named.has(name)) continue;
      named.add(name);
      // The app's own tags stay: they join the page's tags, within the same limits (a header
      // over the edge's size would be refused, or cut where the page's own tags are).
      const theirs = head === undefined ? [] : valuesOf(head, name).flatMap((v) => v.split(p.tagHeader.separator === ' ' ? /\s+/ : /\s*,\s*/)).filter((t) => t !== '');
      out.push(name, edgeHeaderValue(p.tagHeader, pathTag, theirs.length === 0 ? others : [...others, ...theirs]));
    }
    const value = fresh ? `max-age=${this.settings.edgeMaxAge}` : 'no-store';
    for (const name of this.#freshness) {
      // The app said how long the edge keeps it: its value stands, and `no-store` when it says
      // `no-store` or `private` (which not every edge reads in this header).
      const theirs = head === undefined ? [] : valuesOf(head, name);
      if (theirs.length === 0) out.push(name, value);
      else if (!fresh || theirs.some((v) => /(?:^|,)\s*(?:no-store|private)\b/i.test(v))) out.push(name, 'no-store');
      else out.push(name, theirs.join(', '));
    }
    if (!hasCacheControl) out.push('cache-control', 'max-age=0, must-revalidate');
    return Object.freeze(out);
  }

  /**
   * Queues the purge of `tags` (unprefixed; `undefined`: every page) at every purger. Resolves
   * once they are pushed (a push the store refused is kept here and pushed again). The race's
   * second purge is queued by whoever delivers the first, `raceWindow` after the edge
   * acknowledged it (see `#deliver`): one push per batch instead of one more per invalidation.
   */
  async enqueue(tags: readonly string[] | undefined, beforeStore = false): Promise<void> {
    if (this.#closed || this.#lanes.length === 0) return;
    const now = Date.now();
    const due = beforeStore ? now + PURGE_AFTER_STORE : now;
    await Promise.all(
      this.#lanes.map(async (lane) => {
        const edge = tags === undefined ? [EDGE_ALL_TAG] : purgeTags(lane.purger.tagHeader, tags);
        if (edge.length === 0) return;
        await this.#push(lane, edge, due);
        this.#schedule(lane, due + LINGER);
      }),
    );
  }

  async #push(lane: Lane, tags: string[], due: number): Promise<void> {
    try {
      const ids = await this.#queue.queuePush(lane.queue, tags, due);
      for (const id of ids) if (id > lane.highWater) lane.highWater = id;
      this.stats.queued += tags.length;
      if (this.#log.debugEnabled) {
        this.#log.debug('purge queued', { purger: lane.purger.id, tags: tags.length, due: due > Date.now() ? new Date(due).toISOString() : 'now' });
      }
    } catch (error) {
      lane.unpushed.push({ tags, due });
      this.#log.error('purge could not be queued: kept in this process until the store takes it', {
        purger: lane.purger.id,
        tags: tags.length,
        error: new DumperError('DUMPER_PURGE_FAILURE', 'queue push failed', { cause: error }),
        cause: error as Error,
      });
      this.#schedule(lane, Date.now() + this.settings.retryDelay);
    }
  }

  /** Runs the lane's worker at `at` (or sooner, if it is already due sooner). */
  #schedule(lane: Lane, at: number): void {
    if (this.#closed) return;
    if (lane.timer !== undefined && lane.timerAt <= at) return;
    clearTimeout(lane.timer);
    lane.timerAt = at;
    lane.timer = setTimeout(() => {
      lane.timer = undefined;
      lane.timerAt = Infinity;
      void this.#run(lane);
    }, Math.max(at - Date.now(), 0));
    lane.timer.unref();
  }

  #run(lane: Lane): Promise<void> {
    if (lane.running !== undefined) {
      // Work was asked for while the worker runs (a push, a timer): it may have read the queue
      // before that push, so it goes round once more rather than sleep until the next poll.
      lane.wanted = true;
      return lane.running;
    }
    lane.running = (async () => {
      do {
        lane.wanted = false;
        await this.#work(lane);
      } while (lane.wanted && !this.#closed);
    })().finally(() => (lane.running = undefined));
    return lane.running;
  }

  /** Pushes what was kept, then claims and delivers batches until none is due; then sleeps until the next one. */
  async #work(lane: Lane): Promise<void> {
    try {
      while (lane.unpushed.length !== 0 && !this.#closed) {
        const entry = lane.unpushed[0]!;
        const ids = await this.#queue.queuePush(lane.queue, entry.tags, entry.due);
        entry.ids = ids;
        const tags = entry.tags;
        lane.unpushed.shift();
        for (const id of ids) if (id > lane.highWater) lane.highWater = id;
        this.stats.queued += tags.length;
      }
      while (!this.#closed) {
        // The edge asked for a pause (a 429 or 503 with Retry-After): the whole lane waits.
        if (lane.pausedUntil > Date.now()) {
          this.#schedule(lane, lane.pausedUntil);
          return;
        }
        const claimed = await this.#queue.queueClaim(lane.queue, { max: lane.purger.maxBatch, now: Date.now(), lease: this.settings.lease });
        if (claimed.length === 0) break;
        // An item without its payload (a store that lost it: Redis evicting the queue) names no tag
        // to purge: acknowledged, and logged, rather than sent as the empty tag.
        const items = claimed.filter((it) => it.payload !== '');
        if (items.length !== claimed.length) {
          await this.#queue.queueAck(lane.queue, claimed.filter((it) => it.payload === '').map((it) => it.id));
          this.#log.error('purge lost: the store lost its payload (Redis with purgers needs maxmemory-policy noeviction or volatile-*)', {
            purger: lane.purger.id,
            items: claimed.length - items.length,
          });
          if (items.length === 0) continue;
        }
        await this.#deliver(lane, items, Date.now());
        if (lane.pausedUntil > Date.now()) continue;
        if (items.length < lane.purger.maxBatch) {
          // A batch that was not full: invalidations are trickling in (one per write). Let them
          // gather for a moment rather than send one request for each.
          this.#schedule(lane, Date.now() + LINGER);
          return;
        }
      }
      if (this.#closed) return;
      const stats = await this.#queue.queueStats(lane.queue);
      const next = Math.min(stats.nextDue ?? Infinity, Date.now() + this.settings.pollInterval);
      this.#schedule(lane, next);
    } catch (error) {
      // The store failed: try again after a pause; the items stay in the queue (their leases run out).
      this.#log.error('purge queue unavailable', {
        purger: lane.purger.id,
        error: new DumperError('DUMPER_PURGE_FAILURE', 'purge queue failed', { cause: error }),
        cause: error as Error,
      });
      this.#schedule(lane, Date.now() + this.settings.retryDelay);
    }
  }

  /**
   * Sends a claimed batch (split by `maxBatchBytes`), acknowledging each part the edge took; the
   * rest is retried later. A batch of several parts whose sending outlasts half the lease renews
   * the lease of the parts not yet sent, so that no other process claims and sends them too.
   */
  async #deliver(lane: Lane, items: readonly QueuedItem[], leasedAt: number): Promise<void> {
    const purger = lane.purger;
    const parts = batches(items, purger.maxBatch, purger.maxBatchBytes);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i !== 0 && Date.now() - leasedAt > this.settings.lease / 2) {
        leasedAt = Date.now();
        await this.#queue.queueRetry(lane.queue, parts.slice(i).flatMap((p) => p.ids), leasedAt + this.settings.lease);
      }
      try {
        await purger.purge(part.tags);
        // The second purge, pushed before the first is acknowledged: a crash in between sends the
        // first again (harmless) rather than losing the second.
        if (part.first.length !== 0) {
          const again = part.first.map((t) => SECOND + t);
          const ids = await this.#queue.queuePush(lane.queue, again, Date.now() + this.settings.raceWindow);
          for (const id of ids) if (id > lane.highWater) lane.highWater = id;
          // A flush waiting for a first purge waits for its second one too.
          for (const f of lane.flushes) {
            for (let k = 0; k < ids.length; k++) if (part.firstIds[k]! <= f.target && ids[k]! > f.target) f.target = ids[k]!;
          }
          this.stats.queued += again.length;
          this.#schedule(lane, Date.now() + this.settings.raceWindow);
        }
      } catch (error) {
        this.stats.failed++;
        const left = parts.slice(i).flatMap((p) => p.ids);
        const attempts = Math.max(...items.map((it) => it.attempts));
        const backoff = Math.min(this.settings.retryDelay * 2 ** (attempts - 1), this.settings.maxRetryDelay);
        const asked = error instanceof PurgeError ? error.retryAfter : undefined;
        // `Retry-After: 0` (or a date past) is read as no wait asked: the backoff, not a hot loop.
        const wait = asked !== undefined && asked > 0 ? asked : backoff;
        // Asked to wait: nothing more goes to this edge until then, not only this batch.
        if (asked !== undefined) lane.pausedUntil = Date.now() + wait;
        await this.#queue.queueRetry(lane.queue, left, Date.now() + wait);
        this.stats.retried++;
        this.#log.warn('purge failed; retrying later', {
          purger: purger.id,
          tags: part.tags.length,
          attempts,
          retryIn: wait,
          ...(asked !== undefined ? { retryAfter: asked } : {}),
          error: error as Error,
        });
        return;
      }
      await this.#queue.queueAck(lane.queue, part.ids);
      this.stats.sent++;
      if (this.#log.debugEnabled) this.#log.debug('purge sent', { purger: purger.id, tags: part.tags.length });
    }
  }

  /**
   * Resolves once every purge queued so far has been acknowledged (by this process or another one
   * sharing the queue): what this process queued, and what the queue held when it was called
   * (purges another process left). The race's second purges of those, queued by this process,
   * are waited for too: that takes `raceWindow`. Purges queued after the call are not waited for,
   * so a flush under a steady stream of writes ends. Rejects (a `DumperError`,
   * `DUMPER_PURGE_FAILURE`) when `timeout` milliseconds pass or `signal` aborts first, and when the
   * dumper is closed first: the purges not acknowledged stay in a shared queue, for any process.
   */
  async flush(options: FlushOptions = {}): Promise<void> {
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout;
    const { signal } = options;
    const stop = (lane: Lane): never => {
      const what = `purges for ${lane.purger.id} not acknowledged`;
      if (this.#closed) {
        throw new DumperError('DUMPER_PURGE_FAILURE', `flushPurges(): the dumper was closed with ${what}${this.inMemory ? ' (lost: the queue was in this process)' : ' (a shared store keeps them queued for other processes)'}`);
      }
      if (signal?.aborted === true) throw new DumperError('DUMPER_PURGE_FAILURE', `flushPurges() aborted with ${what}`, { cause: signal.reason });
      throw new DumperError('DUMPER_PURGE_FAILURE', `flushPurges() timed out after ${options.timeout} ms with ${what} (is the edge answering? see the log)`);
    };
    const done = () => this.#closed || signal?.aborted === true || Date.now() >= deadline;
    await Promise.all(
      this.#lanes.map(async (lane) => {
        const before = (await this.#queue.queueStats(lane.queue)).lastId ?? 0;
        const waiting = { target: Math.max(lane.highWater, before) };
        const unpushed = [...lane.unpushed];
        lane.flushes.add(waiting);
        try {
          for (;;) {
            if (done()) stop(lane);
            await this.#run(lane);
            // Purges queued before the call whose push failed: waited for until pushed, then by id.
            if (unpushed.some((e) => e.ids === undefined)) {
              await sleep(Math.min(this.settings.retryDelay, Math.max(deadline - Date.now(), 0)));
              continue;
            }
            for (const e of unpushed) for (const id of e.ids!) if (id > waiting.target) waiting.target = id;
            unpushed.length = 0;
            const stats = await this.#queue.queueStats(lane.queue);
            if (stats.firstId === undefined || stats.firstId > waiting.target) return;
            if (done()) stop(lane);
            // Another process may hold some of them (leased) and acknowledge them any moment: look
            // again soon, not only when the next item is due.
            await sleep(Math.min(Math.max((stats.nextDue ?? 0) - Date.now(), 5), 50, Math.max(deadline - Date.now(), 0)));
          }
        } finally {
          lane.flushes.delete(waiting);
        }
      }),
    );
  }

  /** Stops the workers (a batch being sent is waited for). Queued purges stay in a shared queue. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const lane of this.#lanes) clearTimeout(lane.timer);
    await Promise.allSettled(this.#lanes.map((l) => l.running));
    if (this.inMemory) {
      const left = this.#lanes.reduce((n, l) => n + l.unpushed.length, 0);
      if (left !== 0) this.#log.warn('closed with purges never queued', { batches: left });
    }
  }
}

/** The edge tags that purge `tags` at an edge with this header: each tag and its bucket. */
export function purgeTags(header: EdgeTagHeader, tags: readonly string[]): string[] {
  const out = new Set<string>();
  for (const t of tags) {
    const e = edgeTag(t, header.maxTagBytes);
    out.add(e);
    out.add(edgeBucket(e));
  }
  return [...out];
}

/**
 * Marks a queue item as the race's second purge of its tag (edge tags never hold a space), which
 * is not followed by a third.
 */
const SECOND = ' ';

/** One purge call: its distinct tags, the items it settles, and the tags whose second purge it owes. */
export interface Batch {
  readonly tags: string[];
  readonly ids: number[];
  /** Tags of first purges in it (items without the `SECOND` mark): each gets a second purge once sent. */
  readonly first: string[];
  /** The id of the item that made each of `first` a first purge. */
  readonly firstIds: number[];
}

/** Splits claimed items into purge calls: distinct tags, at most `max` and `maxBytes` (space-separated) each. */
export function batches(items: readonly QueuedItem[], max: number, maxBytes: number | undefined): Batch[] {
  const out: Batch[] = [];
  let current: (Batch & { bytes: number; seen: Set<string>; firsts: Set<string> }) | undefined;
  for (const item of items) {
    const second = item.payload.startsWith(SECOND);
    const tag = second ? item.payload.slice(SECOND.length) : item.payload;
    if (current === undefined || !current.seen.has(tag)) {
      const bytes = Buffer.byteLength(tag) + 1;
      if (current === undefined || current.tags.length >= max || (maxBytes !== undefined && current.bytes + bytes > maxBytes + 1 && current.tags.length !== 0)) {
        current = { tags: [], ids: [], first: [], firstIds: [], bytes: 0, seen: new Set(), firsts: new Set() };
        out.push(current);
      }
      current.tags.push(tag);
      current.seen.add(tag);
      current.bytes += bytes;
    }
    current.ids.push(item.id);
    if (!second && !current.firsts.has(tag)) {
      current.firsts.add(tag);
      current.first.push(tag);
      current.firstIds.push(item.id);
    }
  }
  return out.map(({ tags, ids, first, firstIds }) => ({ tags, ids, first, firstIds }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Validates a purger given in `purgers`; the message names the option. */
export function validatePurger(p: unknown, index: number): void {
  const where = `page-dumper: option "purgers" [${index}]`;
  const o = p as Partial<Purger> | null;
  if (o === null || typeof o !== 'object') throw new TypeError(`${where} must be a purger (varnishPurger(), fastlyPurger(), cloudflarePurger())`);
  if (typeof o.id !== 'string' || o.id === '') throw new TypeError(`${where} must have a non-empty string "id"`);
  if (typeof o.purge !== 'function') throw new TypeError(`${where} must have a purge() method`);
  const h = o.tagHeader;
  if (h === null || typeof h !== 'object' || typeof h.name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.name)) {
    throw new TypeError(`${where} must have a "tagHeader" with a header name`);
  }
  if (h.separator !== ' ' && h.separator !== ',') throw new TypeError(`${where} tagHeader.separator must be " " or ","`);
  if (!Number.isInteger(h.maxBytes) || h.maxBytes < 1024) throw new TypeError(`${where} tagHeader.maxBytes must be an integer of at least 1024`);
  if (!Number.isInteger(h.maxTagBytes) || h.maxTagBytes < 32) throw new TypeError(`${where} tagHeader.maxTagBytes must be an integer of at least 32`);
  if (typeof o.freshnessHeader !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(o.freshnessHeader)) {
    throw new TypeError(`${where} must have a "freshnessHeader" header name`);
  }
  if (!Number.isInteger(o.maxBatch) || (o.maxBatch as number) < 1) throw new TypeError(`${where} maxBatch must be a positive integer`);
  if (o.maxBatchBytes !== undefined && (!Number.isInteger(o.maxBatchBytes) || o.maxBatchBytes < 64)) {
    throw new TypeError(`${where} maxBatchBytes must be an integer of at least 64`);
  }
}

function valuesOf(head: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < head.length; i += 2) if (head[i] === name) out.push(head[i + 1]!);
  return out;
}
