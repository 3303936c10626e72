import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { brandClass } from './brand.js';
import { DumperError } from './errors.js';
import {
  choose,
  codingOf,
  compressible,
  compressPolicy,
  Compressor,
  decode,
  ownEncoding,
  representations,
  accepts,
  type CompressPolicy,
  type Representation,
  type Representations,
} from './encoding.js';
import { ageOf, notModified, readHeader, responseVeto, storedHeaders, type HeaderSource, type StoragePolicy } from './http.js';
import {
  canonicalPath,
  compileQueryIgnore,
  isIgnoredParam,
  normalizePercentEncoding,
  normalizeQuery,
  prefixTags,
  splitTarget,
  tagsForPrefix,
  type QueryIgnore,
} from './keys.js';
import { makeLog, type Log } from './log.js';
import { collectStrings, ModelRegistry, type ModelClass, type ModelInstance, type ModelOptions } from './models.js';
import { DEFAULT_IGNORE, DEFAULT_IGNORED_COOKIES, DEFAULT_IGNORED_QUERY_PARAMS, defaultVersion, validateOptions, type DumperOptions } from './options.js';
import { DEFAULT_PURGE_SETTINGS, PurgeDispatcher, type FlushOptions, type PurgeStats } from './purge.js';
import { Rewarmer, type RewarmStats } from './rewarm.js';
import { warm, type WarmOptions, type WarmReport } from './warm.js';
import { DEFAULT_WARNED_REFUSALS, RefusalWarnings } from './warnings.js';
import { isPromise, type EncodedBody, type MaybePromise, type SetOptions, type Store, type StoredEntry } from './store.js';
import {
  bypassChannel,
  Counters,
  hitChannel,
  invalidateChannel,
  missChannel,
  refusalChannel,
  refusalOf,
  storeChannel,
  type DumperStats,
  type InvalidationKind,
  type RefusalReason,
} from './stats.js';
import { MemoryStore } from '../stores/memory/index.js';

/** The paths and tags that show one instance of a registered model (see `Dumper.dependentsOf`). */
export interface Dependents {
  /** The registered model's name. */
  readonly model: string;
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  /**
   * The integration that reported the change (`typeorm`, `prisma`...), if it says: passed on to
   * the `page-dumper:invalidate` channel's subscribers.
   */
  readonly integration?: string;
}

function isDependents(value: Dependents | Iterable<Dependents>): value is Dependents {
  return !(Symbol.iterator in value) && Array.isArray((value as Dependents).paths);
}

/** Why a request neither reads nor fills the cache. */
export type BypassReason =
  | 'method'
  | 'authorization'
  | 'cookie'
  | 'no host'
  | 'bad host'
  | 'conditional request'
  | 'request body'
  | 'host not allowed'
  | 'ignored path'
  | 'bad url'
  | 'url too long'
  | 'store unavailable'
  | 'closed';

/** A request that bypasses the cache. The objects are shared constants: checking one allocates nothing. */
export interface Bypass {
  readonly bypass: BypassReason;
}

const BYPASS: { readonly [R in BypassReason]: Bypass } = Object.freeze({
  method: Object.freeze({ bypass: 'method' }),
  authorization: Object.freeze({ bypass: 'authorization' }),
  cookie: Object.freeze({ bypass: 'cookie' }),
  'no host': Object.freeze({ bypass: 'no host' }),
  'bad host': Object.freeze({ bypass: 'bad host' }),
  'conditional request': Object.freeze({ bypass: 'conditional request' }),
  'request body': Object.freeze({ bypass: 'request body' }),
  'host not allowed': Object.freeze({ bypass: 'host not allowed' }),
  'ignored path': Object.freeze({ bypass: 'ignored path' }),
  'bad url': Object.freeze({ bypass: 'bad url' }),
  'url too long': Object.freeze({ bypass: 'url too long' }),
  'store unavailable': Object.freeze({ bypass: 'store unavailable' }),
  closed: Object.freeze({ bypass: 'closed' }),
} as const);

/**
 * The `Cache-Status` field values (RFC 9211) a dumper sends with the option `cacheStatus`, made
 * once. Adapters set the header `cache-status` to one of them on the responses they pass to the
 * app; a hit carries `hit` in `Reply.headers` already.
 */
export interface CacheStatusValues {
  /** The cache's name, the first item of every value (`page-dumper` by default). */
  readonly cache: string;
  /** A hit, and a hit answered with 304: `page-dumper; hit`. */
  readonly hit: string;
  /** A miss whose response is not stored: `page-dumper; fwd=uri-miss`. */
  readonly miss: string;
  /** A miss whose response was handed to the store: `page-dumper; fwd=uri-miss; stored`. */
  readonly stored: string;
  /**
   * A request that waited for a concurrent render of its page and was given it (RFC 9211 §2.6):
   * `page-dumper; fwd=uri-miss; collapsed`. Counted as coalesced and as a hit in `stats()`.
   */
  readonly collapsed: string;
  /**
   * A bypass, by reason: `page-dumper; fwd=bypass; detail=ignored-path` (the reason as a token);
   * for an unsafe method, `page-dumper; fwd=method` (RFC 9211 §2.2: the method's semantics
   * require the request to go forward).
   */
  readonly bypass: Readonly<Record<BypassReason, string>>;
}

function cacheStatusValues(cache: string): CacheStatusValues {
  const bypass = {} as Record<BypassReason, string>;
  for (const reason of Object.keys(BYPASS) as BypassReason[]) {
    bypass[reason] = reason === 'method' ? `${cache}; fwd=method` : `${cache}; fwd=bypass; detail=${reason.replace(/ /g, '-')}`;
  }
  return Object.freeze({ cache, hit: `${cache}; hit`, miss: `${cache}; fwd=uri-miss`, stored: `${cache}; fwd=uri-miss; stored`, collapsed: `${cache}; fwd=uri-miss; collapsed`, bypass: Object.freeze(bypass) });
}

/**
 * `headers` without the `Cache-Status` members this cache added (RFC 9211 §2: a cache adds its own
 * member and keeps the others): a stored page must not replay the status of the request that
 * filled it. Members of caches behind the app are kept. The same array when there is none.
 */
function withoutOwnCacheStatus(headers: readonly string[], cache: string): readonly string[] {
  let found = false;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'cache-status') found = true;
  if (!found) return headers;
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name !== 'cache-status') {
      out.push(name, headers[i + 1]!);
      continue;
    }
    const kept = splitList(headers[i + 1]!).filter((member) => memberName(member) !== cache);
    if (kept.length !== 0) out.push(name, kept.join(', '));
  }
  return out;
}

/**
 * The `Cache-Status` value to send: the members `given` (those the app, or caches behind it, set),
 * without any of this cache's, then this cache's `member` (RFC 9211 §2: each cache appends its
 * own and keeps the others).
 */
export function appendCacheStatus(given: string | undefined, member: string, cache: string): string {
  if (given === undefined || given.trim() === '') return member;
  const kept = splitList(given).filter((m) => memberName(m) !== cache);
  return kept.length === 0 ? member : `${kept.join(', ')}, ${member}`;
}

/** A reply's headers with this cache's `hit` member turned into `collapsed` (see `Dumper.reply`). */
function collapsedHeaders(headers: readonly string[], values: CacheStatusValues): readonly string[] {
  const out = headers.slice();
  for (let i = 0; i < out.length; i += 2) if (out[i] === 'cache-status' && out[i + 1] === values.hit) out[i + 1] = values.collapsed;
  return out;
}

/** The members of a structured-field list (RFC 8941 §3.1), split at commas outside quoted strings. */
function splitList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) quoted = false;
    } else if (c === 34) quoted = true;
    else if (c === 44 /* , */) {
      const m = value.slice(start, i).trim();
      if (m !== '') out.push(m);
      start = i + 1;
    }
  }
  const m = value.slice(start).trim();
  if (m !== '') out.push(m);
  return out;
}

/** The cache named by a `Cache-Status` member: its token, or its string unquoted. */
function memberName(member: string): string {
  const semi = member.indexOf(';');
  const name = (semi === -1 ? member : member.slice(0, semi)).trim();
  return name.startsWith('"') && name.endsWith('"') && name.length >= 2 ? name.slice(1, -1).replace(/\\(.)/g, '$1') : name;
}

/** A host as RFC 3986 §3.2.2 allows it (reg-name or IP literal), with an optional port. */
const HOST = /^(?:(?:[a-z0-9._~!$&'()*+,;=-]|%[0-9a-f]{2})+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;
/** X-Forwarded-Host may list several hosts, comma-separated. */
const FORWARDED_HOST = /^[a-z0-9._~!$&'()*+,;=:[\] -]*$/i;
const FORWARDED_PROTO = /^[a-z0-9+.,\s-]*$/i;

/** The render context that `dumper.tag()` finds through AsyncLocalStorage. */
interface RenderContext {
  readonly dumper: Dumper;
  readonly tags: Set<string>;
  readonly fill: Fill;
}

/**
 * The render tracking of the process, one for every copy of this module: a process may load both
 * the ES module and the CommonJS build of page-dumper (an ES module app using an integration that
 * a CommonJS library requires), and both must see the same renders.
 */
interface RenderTracking {
  readonly renders: AsyncLocalStorage<RenderContext>;
  /**
   * Render contexts are tracked only once some render has called `dumper.tag()`. On Node 20 and
   * 22, the first `AsyncLocalStorage.run()` switches on async_hooks for the whole process, which
   * makes every promise of the app markedly slower (about 2x in a promise-heavy loop), so an app
   * that never tags pages must not pay for it. Until then, fills in flight are remembered in
   * `inflight`: when a `tag()` call finds no context, it cannot tell which render made it, so none
   * of them is stored.
   */
  trackContexts: boolean;
  /** Every fill between its `run()` and its end. */
  readonly inflight: Set<Fill>;
}

const tracking = ((globalThis as Record<symbol, unknown>)[Symbol.for('page-dumper.renders@0')] ??= {
  renders: new AsyncLocalStorage<RenderContext>(),
  trackContexts: false,
  inflight: new Set<Fill>(),
} satisfies RenderTracking) as RenderTracking;
const { renders, inflight } = tracking;

/** No fill in flight may be stored: a tag was added that cannot be attributed to one of them. */
function distrustInflight(): void {
  for (const fill of inflight) fill._untraceable();
  inflight.clear();
}

/** A coalesced miss: followers wait for the leader's entry (or for the word that there is none). */
interface Flight {
  /** Its key in the dumper's flights: the entry's key, and whether the request carries cookies. */
  readonly key: string;
  readonly promise: Promise<StoredEntry | undefined>;
  resolve(entry: StoredEntry | undefined): void;
}

const MAX_COOLDOWN = 30_000;
/** How many plain-path keys `keyFor` remembers before it starts again from empty. */
const MAX_KNOWN_KEYS = 10_000;

/**
 * The request an app is given on a fill: exactly what the key describes, so that nothing the
 * key leaves out (a fragment, userinfo, an ignored parameter, the letter case of a host, the
 * spelling of a percent-encoding, an analytics cookie) can reach the stored page. Adapters apply
 * it to the request before the app runs.
 */
export interface AppView {
  /** The origin-form target: the key's normalized path and query (no fragment, no ignored parameters). */
  readonly target: string;
  /** The `Host` the key was made for, lower-case. */
  readonly host: string;
  /** `X-Forwarded-Proto`, lower-case, or `undefined` when the key has none. */
  readonly forwardedProto: string | undefined;
  /** `X-Forwarded-Host`, lower-case, or `undefined` when the key has none. */
  readonly forwardedHost: string | undefined;
  /** The `Cookie` header without ignored cookies (`ignoreCookies`), or `undefined` when none is left. */
  readonly cookie: string | undefined;
}

/**
 * One render that may become a stored entry. Created by `dumper.beginFill()`; an adapter gives
 * the app the request `view` describes, runs the app inside `run()`, reports reads of the
 * request's cookies with `readCookies()`, the response head with `head()` and the whole body
 * with `complete()`, or calls `abandon()`.
 */
export class Fill {
  readonly key: string;
  readonly path: string;
  readonly method: string;
  /** The store's sequence number before the render started. */
  readonly seq: number;
  /** The request the app must see. */
  readonly view: AppView;
  readonly #dumper: Dumper;
  readonly #context: RenderContext;
  readonly #flight: Flight | undefined;
  #done = false;
  #untraceable = false;
  #cookiesRead = false;
  /** When the render began (`Date.now()`), for the edge's race bound; set only with purgers. */
  readonly #startedAt: number;
  /** How many render tags the edge headers sent with this response named; -1 when it was not offered to the edge. */
  #edgeTagsSent = -1;

  /** @internal */
  constructor(dumper: Dumper, start: FillStart, seq: number) {
    this.#dumper = dumper;
    this.key = start.key;
    this.view = start.view;
    this.path = start.path;
    this.method = start.method;
    this.seq = seq;
    this.#flight = start.flight;
    this.#context = { dumper, tags: new Set(), fill: this };
    this.#startedAt = dumper._purging === undefined ? 0 : Date.now();
  }

  /**
   * The headers for edge caches (see the option `purgers`) to add to this response as it goes out,
   * flat with lower-case names: the page's tags so far and the edge freshness header. Empty without
   * purgers. `head` is the response's headers (its own `Cache-Control` is kept). Adapters call it
   * when the response head is written, once the response is known to be storable. A render that
   * took more than half of `raceWindow` by then is sent `no-store` for the edge: a write during it
   * might be purged before the edge has this page, and the second purge might come too soon too.
   */
  edgeHeaders(head: readonly string[]): readonly string[] {
    const purging = this.#dumper._purging;
    if (purging === undefined) return NO_HEADERS;
    // A page the dumper cannot vouch for is marked `no-store` for the edge: one for a visitor with
    // cookies, one whose render read cookies (an edge does not tell visitors apart as the dumper
    // does), one whose tags are not known (see `_untraceable`).
    if (this.#done || this.view.cookie !== undefined || this.#cookiesRead || this.#untraceable) return purging.noStoreFor(head);
    const fresh = Date.now() - this.#startedAt <= purging.settings.raceWindow / 2;
    // Sent with a lifetime for the edge: checked again when the response ends (#edgeCheck).
    if (fresh) this.#edgeTagsSent = this.#context.tags.size;
    return purging.headersFor(this.path, this.#dumper._edgeOthers(this.path, this.#context.tags), head, fresh);
  }

  /**
   * After the head went out to the edge with this page's tags: if the render then added tags, read
   * cookies, or may have tagged without a context, the edge's copy is not what it was labelled as,
   * and is purged by its path (now and after `raceWindow`, once the edge surely has it).
   */
  #edgeCheck(): void {
    if (this.#edgeTagsSent === -1) return;
    const sent = this.#edgeTagsSent;
    this.#edgeTagsSent = -1;
    const purging = this.#dumper._purging!;
    // A body that ended more than half of raceWindow after the render began: an edge that keeps a
    // page only once all of it arrived (Fastly, Cloudflare; Varnish without streaming) may get it
    // after a write's two purges; this purge, and the race's second one after it, find it there.
    const late = Date.now() - this.#startedAt > purging.settings.raceWindow / 2;
    if (late || this.#context.tags.size > sent || this.#cookiesRead || this.#untraceable) void purging.enqueue([this.path]);
  }

  /** Runs the app so that `dumper.tag()` calls made while it renders tag this page. */
  run<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
    inflight.add(this);
    return tracking.trackContexts ? renders.run(this.#context, fn, ...args) : fn(...args);
  }

  /**
   * The render read the request's cookies (the `Cookie` header, or cookies a framework parsed from
   * it). A page rendered for a request with cookies is then not stored; one rendered for a
   * request without is stored as the anonymous page, never served to a request with cookies.
   */
  readCookies(): void {
    if (this.#cookiesRead) return;
    this.#cookiesRead = true;
    // This page will not be stored (see complete()): release the visitors waiting on it now, not
    // when it ends. The fill itself stays open, so that the render's own tag() calls are its own.
    if (this.view.cookie !== undefined) this.#dumper._finishFlight(this.#flight, undefined);
  }

  /**
   * The app answered with a file from disk (a file stream piped into the response, as koa-static
   * sends): not stored unless the option `staticFiles` is on. Adapters call it for the file
   * handlers that do not say `Accept-Ranges: bytes`.
   */
  staticFile(): void {
    if (!this.#dumper.storesStaticFiles) this.abandon('a static file (option staticFiles)');
  }

  /** @internal A `tag()` call may have come from this render, without a context to say so. */
  _untraceable(): void {
    this.#untraceable = true;
  }

  /** Whether the fill was completed or abandoned already. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Reports the status and headers (flat, lower-case names) as the app sends them. Returns why the
   * response will not be stored, or `undefined`. A veto releases coalesced followers at once.
   */
  head(status: number, headers: readonly string[]): string | undefined {
    const veto = this.#dumper.responseVeto(status, headers);
    if (veto !== undefined) this.abandon(veto);
    return veto;
  }

  /** Gives up on storing (the response is too big, was aborted, or is not storable). */
  abandon(reason: string): void {
    if (this.#done) return;
    this.#edgeCheck();
    this.#done = true;
    inflight.delete(this);
    this.#dumper._refused(this, reason);
    this.#dumper._finishFlight(this.#flight, undefined);
  }

  /**
   * Stores the finished response, unless one of its tags was invalidated since `seq`. The body
   * (one buffer, or the chunks in order) must be the whole body the app sent (adapters check it
   * against `Content-Length`); it is copied into memory of its own, so an app that reuses its
   * buffers cannot change the entry.
   */
  complete(status: number, headers: readonly string[], body: Uint8Array | readonly Uint8Array[]): MaybePromise<boolean> {
    if (this.#done) return false;
    this.#edgeCheck();
    const personal = this.#cookiesRead && this.view.cookie !== undefined;
    const veto = this.#untraceable
      ? 'the render may have called dumper.tag() before render contexts were tracked'
      : personal
        ? "the render read the request's cookies"
        : this.#dumper.responseVeto(status, headers);
    if (veto !== undefined) {
      this.abandon(veto);
      return false;
    }
    this.#done = true;
    inflight.delete(this);
    const coding = codingOf(headers);
    if (coding === undefined) return this.#finish(status, headers, ownCopy(body), undefined);
    // The app compressed the page itself (compression() mounted after the dumper, koa-compress,
    // Hono's compress()): the identity body is stored, and every client gets what it accepts.
    const encoded = ownCopy(body);
    return this.#dumper._background(decode(coding, encoded, this.#dumper.maxEntryBytes).then(
      (plain) => this.#finish(status, decodedHeaders(headers), ownCopy(plain), this.#dumper._appEncoding(coding, encoded)),
      (error: unknown) => {
        const reason =
          (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE'
            ? `decoded body larger than maxEntryBytes (${this.#dumper.maxEntryBytes})`
            : `the ${coding} body could not be decoded (${(error as Error).message})`;
        this.#dumper._refused(this, reason);
        this.#dumper._finishFlight(this.#flight, undefined);
        return false;
      },
    ));
  }

  #finish(status: number, headers: readonly string[], body: Uint8Array, encoding: EncodedBody | undefined): MaybePromise<boolean> {
    const entry = this.#dumper._entry(this, { status, headers, body, encoding }, { tags: this.#context.tags, cookiesRead: this.#cookiesRead });
    const stored = this.#dumper._store(this, entry);
    if (isPromise(stored)) {
      return this.#dumper._background(
        stored.then((ok) => {
          this.#dumper._finishFlight(this.#flight, ok ? entry : undefined);
          return ok;
        }),
      );
    }
    this.#dumper._finishFlight(this.#flight, stored ? entry : undefined);
    return stored;
  }
}

/** What a fill is for: the store key, the request the app sees, and the render it may lead. */
interface FillStart {
  readonly key: string;
  readonly view: AppView;
  /** The canonical path, without the key prefix. */
  readonly path: string;
  readonly method: string;
  readonly flight: Flight | undefined;
}

/** A finished response as it is stored: identity body, and the app's own coding of it if it sent one. */
interface FilledResponse {
  readonly status: number;
  readonly headers: readonly string[];
  readonly body: Uint8Array;
  readonly encoding: EncodedBody | undefined;
}

const NO_HEADERS: readonly string[] = Object.freeze([]);
const NONE: readonly string[] = NO_HEADERS;

/**
 * The headers of a response the app compressed, for its decoded body: no `Content-Encoding`, and
 * no strong `ETag`, which named the compressed bytes (a weak one names the page in any coding).
 */
function decodedHeaders(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'content-encoding' || (name === 'etag' && !headers[i + 1]!.trim().startsWith('W/'))) continue;
    out.push(name, headers[i + 1]!);
  }
  return out;
}

/**
 * A copy of `body` in memory of its own: not a slice of Node's shared 8 KiB pool (which would pin
 * the whole pool slab, so a store would hold far more than it counts), and not the app's buffer
 * (an app that reuses its output buffer would change the stored page).
 */
function ownCopy(body: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (body instanceof Uint8Array) {
    const out = Buffer.allocUnsafeSlow(body.byteLength);
    out.set(body);
    return out;
  }
  let size = 0;
  for (const c of body) size += c.byteLength;
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const c of body) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** A finished unsafe request, for `dumper.afterUnsafe()`. */
export interface UnsafeResponse {
  readonly method: string;
  /** The request target, as the client sent it. */
  readonly target: string;
  /** The request's `Host` (or `:authority`), if any: absolute URLs naming it are followed. */
  readonly host: string | undefined;
  /** The request's `X-Forwarded-Host`, if any: absolute URLs naming it are followed too. */
  readonly forwardedHost?: string | undefined;
  readonly status: number;
  readonly location?: string | undefined;
  readonly contentLocation?: string | undefined;
}

/**
 * The path a `Location` or `Content-Location` value names on the request's own site: a path, a
 * relative reference resolved against the target (RFC 3986 §5), or an absolute URL whose host
 * name is the request's `Host` or `X-Forwarded-Host` (any port, either scheme: invalidating a
 * page too many is harmless). `undefined` for another host or a value that is not a URL.
 */
function sameOriginPath(value: string, target: string, host: string | undefined, forwardedHost: string | undefined): string | undefined {
  if (value === '') return undefined;
  if (value.charCodeAt(0) === 47 /* / */ && value.charCodeAt(1) !== 47) return value;
  const names = [host, forwardedHost?.split(',')[0]?.trim()].flatMap((h) => {
    if (h === undefined || h === '' || !HOST.test(h)) return [];
    try {
      return [new URL(`http://${h}`).hostname];
    } catch {
      return []; // `[1:2]`: the shape of an IP literal, not one
    }
  });
  const base = splitTarget(target);
  let url: URL;
  try {
    url = new URL(value, `http://${names[0] ?? 'origin.invalid'}${base === undefined ? '/' : base.path}`);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.hostname !== 'origin.invalid' && !names.includes(url.hostname)) return undefined;
  return url.pathname;
}

/**
 * What an adapter sends for a stored entry (`dumper.reply()`): the status, every header but
 * `Age`, the value of `Age`, and the body (none for a 304 or a HEAD).
 */
export interface Reply {
  /** The entry's status, or 304. */
  readonly status: number;
  /**
   * Flat `[name, value, ...]` list, lower-case names, including the cache-status header. The same
   * array for every reply of one entry, representation and status: adapters may key caches of
   * other shapes of it on its identity, and must not change it.
   */
  readonly headers: readonly string[];
  /** The `Age` header's value (RFC 9111 §5.1). */
  readonly age: string;
  /** The bytes to send: `undefined` for a 304 and for a HEAD. */
  readonly body: Uint8Array | undefined;
  /** The representation sent (its content coding, body and entity tag). */
  readonly representation: Representation;
}

/** What `dumper.beginFill()` tells an adapter to do with a miss. */
export type MissPlan =
  /** Render with the app and report to the fill. */
  | { readonly kind: 'fill'; readonly fill: Fill }
  /** A concurrent render of the same key finished and was stored: serve it. */
  | { readonly kind: 'entry'; readonly entry: StoredEntry }
  /** Render with the app without storing. */
  | { readonly kind: 'pass'; readonly reason: string };

/** A `string | Bypass` from `dumper.keyFor()`: a key, or why there is none. */
export function isBypass(value: string | Bypass): value is Bypass {
  return typeof value !== 'string';
}

/** What `dumper.storeHealth` answers. */
export interface StoreHealth {
  /** `open`: store operations failed and requests go to the app until `openUntil`. */
  readonly circuit: 'open' | 'closed';
  readonly openUntil: number | undefined;
  /** Consecutive store failures (0 once the store answered again). */
  readonly failures: number;
  /** Tags whose invalidation failed and waits to be replayed into the store. */
  readonly pendingInvalidations: number;
  /** An `invalidateAll()` that failed and waits to be replayed. */
  readonly pendingClear: boolean;
}

/**
 * The engine. Applications call `register()`, `changed()`, `invalidate()`, `invalidateTags()`,
 * `tag()` and `close()`; HTTP adapters call `keyFor()`, `get()`, `reply()`, `beginFill()` and
 * `afterUnsafe()` (the members marked `@category Adapter`; see `page-dumper/adapter`). Create one
 * with `createDumper()`.
 */
export class Dumper {
  readonly store: Store;
  readonly keyPrefix: string;
  /** The build whose entries this dumper stores and serves (option `version`), if any. */
  readonly version: string | undefined;
  /** What every key starts with: the key prefix, then the version and a space. Tags have only the prefix. */
  readonly #keyHead: string;
  readonly statuses: readonly number[];
  /**
   * The largest body stored, in bytes (option `maxEntryBytes`).
   * @category Adapter
   */
  readonly maxEntryBytes: number;
  /**
   * Lower-case name of the cache-status header, or `undefined` when none is sent.
   * @category Adapter
   */
  readonly cacheStatusHeader: string | undefined;
  /**
   * The `Cache-Status` values (RFC 9211) to send (option `cacheStatus`), or `undefined` when none is sent.
   * @category Adapter
   */
  readonly cacheStatus: CacheStatusValues | undefined;
  /**
   * Where decisions are logged (option `logger`).
   * @category Adapter
   */
  readonly log: Log;

  readonly #policy: StoragePolicy;
  /** The once-per-path warnings about renders not stored (option `warnings`). */
  readonly #warnings: RefusalWarnings | undefined;
  readonly #ignore: ((path: string) => boolean) | undefined;
  readonly #hosts: ReadonlySet<string> | undefined;
  readonly #queryIgnore: QueryIgnore;
  readonly #cookieIgnore: QueryIgnore;
  readonly #sortQuery: boolean;
  readonly #maxUrlLength: number;
  /** Host header → plain request target → key (see `#rememberKey`). */
  readonly #knownKeys = new Map<string, Map<string, string>>();
  #knownCount = 0;
  /** What `set` is told, for a plain page and for a query-string variant. */
  readonly #setPlain: SetOptions;
  readonly #setVariant: SetOptions;
  readonly #prefixInvalidation: boolean;
  readonly #bypassCookies: readonly string[];
  readonly #coalesceTimeout: number;
  readonly #invalidateOnUnsafe: boolean;
  readonly #storeCooldown: number;
  readonly #models = new ModelRegistry();
  /** What is compressed and how; `undefined` with `compress: false`. */
  readonly #compress: CompressPolicy | undefined;
  readonly #compressor: Compressor | undefined;
  /** The representations of each entry served, made at its first hit. */
  readonly #reps = new WeakMap<StoredEntry, Representations>();
  /** Work a fill left running after the response: decoding, storing, compressing. */
  readonly #background = new Set<Promise<unknown>>();
  /** Keys whose compression this process left to their first hit (see `#stored`). */
  readonly #deferred = new Set<string>();
  /** Key → the entry last compressed for it (see `#compressLater`). */
  readonly #compressTried = new Map<string, string>();
  readonly #flights = new Map<string, Flight>();
  /** What `stats()` reports. */
  readonly #counters = new Counters();
  /** The header lists a hit adds to the entry's: the cache-status header and `Cache-Status`. */
  readonly #hitHeaders: readonly string[];

  #closed = false;
  /** Consecutive store failures; the circuit is open while `Date.now() < #openUntil`. */
  #failures = 0;
  #openUntil = 0;
  /** Tags whose invalidation the store has not yet confirmed; nothing is read until it has. */
  readonly #pendingTags = new Set<string>();
  #replayTimer: NodeJS.Timeout | undefined;
  #pendingClear = false;
  #flushing: Promise<void> | undefined;
  /** @internal The edge caches' purge queue and workers (option `purgers`), if any. */
  readonly _purging: PurgeDispatcher | undefined;
  /** The option `rewarm`. */
  readonly #rewarm: Rewarmer | undefined;

  /**
   * Whether edge caches are kept fresh (option `purgers`): a response the dumper passes through
   * then needs `passThroughHeaders()`.
   * @category Adapter
   */
  get edgePurging(): boolean {
    return this._purging !== undefined;
  }

  /**
   * The headers a GET or HEAD response the dumper passes through without storing gets for the
   * edge (bypassed, store unavailable, a follower whose leader's page was refused...): `no-store`
   * for the edge unless the app said how shared caches keep it. Such a page carries no tags, so no
   * purge would reach it; without them an edge might keep it for its fallback TTL. `get` reads a
   * header of the response as the app sends it (lower-case name). Empty without purgers.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  passThroughHeaders(method: string, get: (name: string) => string | undefined): readonly string[] {
    const purging = this._purging;
    if (purging === undefined || (method !== 'GET' && method !== 'HEAD')) return NO_HEADERS;
    const out = purging.passThrough(get);
    return out.length === 0 ? NO_HEADERS : out;
  }

  constructor(options: DumperOptions = {}) {
    validateOptions(options);
    this.store = options.store ?? new MemoryStore();
    this.keyPrefix = options.keyPrefix ?? 'dumper.cached_path.';
    this.version = options.version === false ? undefined : (options.version ?? defaultVersion());
    this.#keyHead = this.version === undefined ? this.keyPrefix : `${this.keyPrefix}${this.version} `;
    this.statuses = Object.freeze([...(options.statuses ?? [200])]);
    this.#policy = Object.freeze({ statuses: this.statuses, staticFiles: options.staticFiles ?? false });
    this.maxEntryBytes = options.maxEntryBytes ?? 2 * 2 ** 20;
    this.cacheStatusHeader = options.cacheStatusHeader === false ? undefined : (options.cacheStatusHeader ?? 'X-Cache').toLowerCase();
    const cacheStatus = options.cacheStatus ?? false;
    this.cacheStatus = cacheStatus === false ? undefined : cacheStatusValues(cacheStatus === true ? 'page-dumper' : cacheStatus);
    const hitHeaders: string[] = [];
    if (this.cacheStatusHeader !== undefined) hitHeaders.push(this.cacheStatusHeader, 'HIT');
    if (this.cacheStatus !== undefined) hitHeaders.push('cache-status', this.cacheStatus.hit);
    this.#hitHeaders = Object.freeze(hitHeaders);
    this.log = makeLog(options.logger);
    const warned = options.warnings ?? true;
    this.#warnings = warned === false ? undefined : new RefusalWarnings(this.log, warned === true ? DEFAULT_WARNED_REFUSALS : warned);
    const ignore = options.ignore === undefined ? DEFAULT_IGNORE : options.ignore;
    if (ignore === null) this.#ignore = undefined;
    else if (typeof ignore === 'function') this.#ignore = ignore;
    else {
      const re = typeof ignore === 'string' ? new RegExp(ignore) : ignore;
      this.#ignore = (p) => {
        re.lastIndex = 0;
        return re.test(p);
      };
    }
    this.#hosts = options.hosts && new Set(options.hosts.map((h) => h.toLowerCase()));
    this.#queryIgnore = compileQueryIgnore(options.ignoreQueryParams ?? DEFAULT_IGNORED_QUERY_PARAMS);
    this.#cookieIgnore = compileQueryIgnore(options.ignoreCookies ?? DEFAULT_IGNORED_COOKIES);
    this.#sortQuery = options.sortQuery ?? true;
    this.#maxUrlLength = options.maxUrlLength ?? 4096;
    const maxVariantsPerPath = options.maxVariantsPerPath ?? 256;
    this.#setPlain = Object.freeze({ maxVariantsPerPath, variant: false });
    this.#setVariant = Object.freeze({ maxVariantsPerPath, variant: true });
    this.#prefixInvalidation = options.prefixInvalidation ?? false;
    this.#bypassCookies = options.bypassCookies ?? [];
    this.#coalesceTimeout = options.coalesceTimeout ?? 10_000;
    this.#invalidateOnUnsafe = options.invalidateOnUnsafe ?? true;
    this.#storeCooldown = options.storeCooldown ?? 1000;
    if (options.trackRenders === true) tracking.trackContexts = true;
    this.#compress = compressPolicy(options.compress);
    this.#compressor = this.#compress && new Compressor(this.#compress.coders);
    const purgers = options.purgers ?? [];
    this._purging =
      purgers.length === 0
        ? undefined
        : new PurgeDispatcher({
            purgers,
            store: this.store,
            keyPrefix: this.keyPrefix,
            log: this.log,
            settings: Object.freeze({ ...DEFAULT_PURGE_SETTINGS, ...options.edge }),
          });
    this.#rewarm = options.rewarm ? new Rewarmer(options.rewarm, this.#keyHead, this.log) : undefined;
    if (this._purging?.inMemory === true && !(this.store instanceof MemoryStore)) {
      this.log.warn('the store has no queue: purges for edge caches are queued in this process only, and a crash loses those not yet sent', {});
    }
  }

  // ---------------------------------------------------------------- adapter API: requests

  /**
   * The key of a request, or why it bypasses the cache. Does no I/O and, for a plain path on an
   * allowed host, allocates only the key string, and for one it has seen before, nothing. Adapters
   * call it once per request: a bypass is counted here (`stats().bypasses`).
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  keyFor(method: string, target: string, headers: HeaderSource): string | Bypass {
    const key = this.#keyOf(method, target, headers);
    if (typeof key !== 'string') this.#bypassed(key.bypass, method, target);
    return key;
  }

  #bypassed(reason: BypassReason, method: string, target: string): void {
    this.#counters.bypasses[reason]++;
    if (bypassChannel.hasSubscribers) bypassChannel.publish({ dumper: this, method, target, reason });
  }

  /**
   * A snapshot of what this dumper counted since it was created: hits, misses, bypasses by
   * reason, renders stored and refused by reason, invalidations by kind, coalesced waits, store
   * errors and bytes (see `DumperStats`). Counting costs a few integer increments per request.
   */
  stats(): DumperStats {
    return this.#counters.snapshot();
  }

  #keyOf(method: string, target: string, headers: HeaderSource): string | Bypass {
    if (this.#closed) return BYPASS.closed;
    if (method !== 'GET' && method !== 'HEAD') return BYPASS.method;
    if (readHeader(headers, 'authorization') !== undefined) return BYPASS.authorization;
    // A GET with a body: the key cannot describe it, yet body parsers read it; and a fill must not
    // wait on a body that may never arrive while other visitors wait on the fill.
    if (readHeader(headers, 'transfer-encoding') !== undefined) return BYPASS['request body'];
    const length = readHeader(headers, 'content-length');
    if (length !== undefined && length !== '0') return BYPASS['request body'];
    // Only If-None-Match and If-Modified-Since are answered from the store. Range requests and
    // the other preconditions need the app (a 206, a 412), so they neither read nor fill.
    if (
      readHeader(headers, 'range') !== undefined ||
      readHeader(headers, 'if-match') !== undefined ||
      readHeader(headers, 'if-unmodified-since') !== undefined ||
      readHeader(headers, 'if-range') !== undefined
    ) {
      return BYPASS['conditional request'];
    }
    if (this.#bypassCookies.length !== 0 && this.#hasBypassCookie(readHeader(headers, 'cookie'))) return BYPASS.cookie;
    if (target.length > this.#maxUrlLength) return BYPASS['url too long'];
    let hostHeader = readHeader(headers, 'host');
    // HTTP/2 names the host in `:authority` (RFC 9113 §8.3.1), which Node's compatibility API
    // (and Fastify with `http2: true`) leaves among the headers. A Host that names another
    // host than `:authority` makes the request ambiguous: no key.
    if (typeof (headers as { get?: unknown }).get !== 'function') {
      const authority = (headers as Record<string, string | string[] | undefined>)[':authority'];
      if (authority !== undefined) {
        if (typeof authority !== 'string') return BYPASS['bad host'];
        if (hostHeader === undefined) hostHeader = authority;
        else if (hostHeader.toLowerCase() !== authority.toLowerCase()) return BYPASS['bad host'];
      }
    }
    let host = hostHeader;
    // A proxy's forwarded host and scheme change the absolute URLs an app renders: they are part
    // of the key (below), so a forged X-Forwarded-Host cannot poison the page everyone else gets.
    const fwdHost = readHeader(headers, 'x-forwarded-host');
    const fwdProto = readHeader(headers, 'x-forwarded-proto');
    let path: string;
    let query = '';
    const c0 = target.charCodeAt(0);
    const plain = c0 === 47 /* / */ && target.indexOf('?') === -1 && target.indexOf('#') === -1 && target.indexOf('%') === -1;
    if (plain) {
      // The key of a plain path on a host seen before, as computed then: the same string each
      // time, so the store's lookup finds its hash already computed.
      if (hostHeader !== undefined && fwdHost === undefined && fwdProto === undefined) {
        const known = this.#knownKeys.get(hostHeader)?.get(target);
        if (known !== undefined) return this.#ifUsable(known);
      }
      path = target;
    } else {
      const split = splitTarget(target);
      if (split === undefined) return BYPASS['bad url'];
      if (split.host !== undefined) {
        // Absolute-form (RFC 9112 §3.2.2): apps read Host, so the two must name the same host.
        if (host !== undefined && host.toLowerCase() !== split.host.toLowerCase()) return BYPASS['bad host'];
        host = split.host;
      }
      const p = normalizePercentEncoding(split.path);
      if (p === undefined) return BYPASS['bad url'];
      path = p;
      if (split.query !== '') {
        const q = normalizeQuery(split.query, this.#queryIgnore, this.#sortQuery);
        if (q === undefined) return BYPASS['bad url'];
        query = q.key;
      }
    }
    if (host === undefined || host === '') return BYPASS['no host'];
    // Only a real host (RFC 3986 §3.2.2) may be part of a key: `Host: a.example/x` would make
    // `/y` share a key with `/x/y` on a.example.
    if (!HOST.test(host)) return BYPASS['bad host'];
    host = host.toLowerCase();
    if (this.#hosts !== undefined && !this.#hosts.has(host)) return BYPASS['host not allowed'];
    if (this.#ignore !== undefined && this.#isIgnored(path)) return BYPASS['ignored path'];
    if (fwdHost !== undefined || fwdProto !== undefined) {
      if ((fwdHost !== undefined && !FORWARDED_HOST.test(fwdHost)) || (fwdProto !== undefined && !FORWARDED_PROTO.test(fwdProto))) {
        return BYPASS['bad host'];
      }
      host += `|${(fwdProto ?? '').toLowerCase()}|${(fwdHost ?? '').toLowerCase()}`;
    }
    if (query !== '') return this.#ifUsable(this.#keyHead + host + path + '?' + query);
    const key = this.#keyHead + host + path;
    if (plain && hostHeader !== undefined && fwdHost === undefined && fwdProto === undefined) this.#rememberKey(hostHeader, target, key);
    return this.#ifUsable(key);
  }

  /** `key`, unless the store is down or has invalidations to replay first. */
  #ifUsable(key: string): string | Bypass {
    if (this.#openUntil !== 0 || this.#pendingTags.size !== 0 || this.#pendingClear) {
      if (!this.#storeUsable()) return BYPASS['store unavailable'];
    }
    return key;
  }

  /**
   * Remembers the key of a plain path (no query, no percent-encoding) on a host, for `keyFor`.
   * Everything that decided it is fixed when the dumper is made (key prefix, host allowlist,
   * ignore pattern) or read again on every request (the bypass headers, the store's state).
   * Bounded: past MAX_KNOWN_KEYS, it starts again from empty.
   */
  #rememberKey(host: string, target: string, key: string): void {
    if (this.#knownCount >= MAX_KNOWN_KEYS) {
      this.#knownKeys.clear();
      this.#knownCount = 0;
    }
    let byTarget = this.#knownKeys.get(host);
    if (byTarget === undefined) this.#knownKeys.set(host, (byTarget = new Map()));
    if (!byTarget.has(target)) this.#knownCount++;
    byTarget.set(target, key);
  }

  /**
   * The stored entry for a request's key; `undefined` on a miss, when the store fails (never
   * throws), and when the entry is the anonymous page (its render read cookies) and the request
   * carries cookies: that visitor's page may differ, so the app renders it.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  get(key: string, headers: HeaderSource): MaybePromise<StoredEntry | undefined> {
    let result: MaybePromise<StoredEntry | undefined>;
    try {
      result = this.store.get(key);
    } catch (error) {
      this.#fault('get', error);
      return undefined;
    }
    if (isPromise(result)) {
      return result.then(
        (entry) => {
          if (this.#failures !== 0) this.#recovered();
          if (entry === undefined) return undefined;
          if (this.#rewarm !== undefined && !this.#rewarm.isOwn(headers)) this.#rewarm.hit(key, entry.tags);
          if (this.#compress !== undefined && (entry.encodings?.length ?? 0) < this.#compress.coders.length) this.#uncompressed(key, entry);
          return entry.anonymousOnly === true ? this.#anonymous(key, entry, headers) : entry;
        },
        (error: unknown) => {
          this.#fault('get', error);
          return undefined;
        },
      );
    }
    if (result === undefined) return undefined;
    if (this.#rewarm !== undefined && !this.#rewarm.isOwn(headers)) this.#rewarm.hit(key, result.tags);
    if (this.#compress !== undefined && (result.encodings?.length ?? 0) < this.#compress.coders.length) this.#uncompressed(key, result);
    return result.anonymousOnly === true ? this.#anonymous(key, result, headers) : result;
  }

  /**
   * What to send for a stored entry: the representation the request's `Accept-Encoding` picks
   * (RFC 9110 §12.5.3), or a 304 when the request's `If-None-Match` names a representation it
   * accepts (the one it holds; §13.1.2) or its `If-Modified-Since` is not older than the page.
   * Every adapter answers hits with it. `collapsed`: the request waited for a concurrent render of
   * its page (`MissPlan` `entry`), and its `Cache-Status` says so (RFC 9211 §2.6); still a hit in
   * `stats()`.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  reply(entry: StoredEntry, method: string, headers: HeaderSource, collapsed = false): Reply {
    const r = this.#reply(entry, method, headers);
    const values = this.cacheStatus;
    return collapsed && values !== undefined ? { ...r, headers: collapsedHeaders(r.headers, values) } : r;
  }

  #reply(entry: StoredEntry, method: string, headers: HeaderSource): Reply {
    const reps = this.#representationsOf(entry);
    const acceptEncoding = readHeader(headers, 'accept-encoding');
    const rep = choose(reps, acceptEncoding);
    const age = ageOf(entry.storedAt, Date.now());
    // Conditional headers apply to 2xx responses only (RFC 9110 §13.2.1).
    const inm = entry.status < 300 ? readHeader(headers, 'if-none-match') : undefined;
    if (inm !== undefined) {
      const held = heldRepresentation(reps, rep, inm, acceptEncoding);
      if (held !== undefined) return this.#notModified(entry, reps, method, held, age);
    } else if (entry.status < 300) {
      const ims = readHeader(headers, 'if-modified-since');
      if (ims !== undefined && notModified(entry.etag, entry.headers, undefined, ims)) return this.#notModified(entry, reps, method, rep, age);
    }
    const body = method === 'HEAD' ? undefined : rep.body;
    // A rewarm's own request (option `rewarm`) is no visitor: not counted, not published.
    if (this.#rewarm === undefined || !this.#rewarm.isOwn(headers)) {
      this.#counters.hit(body === undefined ? 0 : body.byteLength);
      if (hitChannel.hasSubscribers) this.#publishHit(entry, reps, method, entry.status, rep, body);
    }
    return { status: entry.status, headers: rep.headers, age, body, representation: rep };
  }

  #notModified(entry: StoredEntry, reps: Representations, method: string, rep: Representation, age: string): Reply {
    this.#counters.hit(0);
    this.#counters.notModified();
    if (hitChannel.hasSubscribers) this.#publishHit(entry, reps, method, 304, rep, undefined);
    return { status: 304, headers: rep.notModifiedHeaders, age, body: undefined, representation: rep };
  }

  #publishHit(entry: StoredEntry, reps: Representations, method: string, status: number, rep: Representation, body: Uint8Array | undefined): void {
    hitChannel.publish({
      dumper: this,
      method,
      // Sliced once per entry: the message is the only allocation a subscribed hit makes.
      path: (reps.path ??= entry.path.slice(this.keyPrefix.length)),
      status,
      coding: rep.coding,
      bytes: body === undefined ? 0 : body.byteLength,
      entry,
    });
  }

  /**
   * Compresses the pages stored so far whose compression was left to their first hit (see the
   * option `compress`), and resolves once the work that fills leave running after their response
   * (decoding a page the app compressed, storing, compressing) is done, including work started
   * while it waits. Pages stored so far are then served compressed, except those whose copies
   * the store refused (a write invalidated them meanwhile) or that a full compressor queue turned
   * down (their next hit asks again). Warm-up scripts and tests call it. `deferred: false` only
   * waits for the work under way, and leaves the pages left to their first hit as they are.
   */
  async flushCompression(options: { readonly deferred?: boolean } = {}): Promise<void> {
    for (;;) {
      while (this.#background.size !== 0) await Promise.allSettled([...this.#background]);
      if (this.#deferred.size === 0 || this.#closed || options.deferred === false) return;
      const keys = [...this.#deferred];
      this.#deferred.clear();
      for (const key of keys) {
        try {
          const entry = await this.store.get(key);
          if (entry !== undefined && compressible(entry, this.#compress!)) this.#compressLater(key, entry);
        } catch (error) {
          this.#fault('get', error);
        }
      }
    }
  }

  /** @internal Tracks work a fill leaves running after the response (see `flushCompression`). */
  _background<T>(work: Promise<T>): Promise<T> {
    this.#background.add(work);
    const forget = () => void this.#background.delete(work);
    work.then(forget, forget);
    return work;
  }

  /**
   * An entry served without some of the encodings this dumper makes: one stored by a process with
   * `compress: false` or other codings, one that holds only the app's own gzip, or one whose
   * compression was turned down while the compressor was busy. Compressed now, unless it was
   * stored less than a second ago by another process (which is compressing it, unless it left
   * that to the first hit: then the page's hits after a second do it). A coding whose
   * copy came out no smaller than the page is asked for again once per entry and process.
   */
  #uncompressed(key: string, entry: StoredEntry): void {
    const reps = this.#representationsOf(entry);
    if (!reps.compressible || reps.tried) return;
    if (!this.#deferred.delete(key) && Date.now() - entry.storedAt < 1000) return;
    reps.tried = this.#compressLater(key, entry);
  }

  /** The representations of an entry, made at its first hit (with `compress: false`, identity only). */
  #representationsOf(entry: StoredEntry): Representations {
    let reps = this.#reps.get(entry);
    if (reps === undefined) {
      const policy = this.#compress;
      const purging = this._purging;
      const edge =
        purging === undefined
          ? undefined
          : entry.anonymousOnly === true
            ? purging.noStoreFor(entry.headers)
            : purging.headersFor(entry.path.slice(this.keyPrefix.length), this.#unprefixed(entry.tags), entry.headers);
      reps = representations(entry, policy && entry.encodings, policy !== undefined && compressible(entry, policy), this.#hitHeaders, edge);
      this.#reps.set(entry, reps);
    }
    return reps;
  }

  /**
   * Makes the entry's encodings on zlib's thread pool and stores the entry again with them, under
   * the fill protocol: refused if one of its tags was invalidated since it was rendered. Once per
   * key and entry in this process. Returns false when the compressor was too busy to take it
   * (a later hit asks again).
   */
  #compressLater(key: string, entry: StoredEntry): boolean {
    const compressor = this.#compressor;
    if (compressor === undefined || this.#closed) return true;
    const mark = `${entry.seq} ${entry.storedAt} ${entry.etag}`;
    if (this.#compressTried.get(key) === mark) return true;
    const job = compressor.encode(entry.body, entry.encodings);
    if (job === undefined) {
      if (this.log.debugEnabled) this.log.debug('not compressing now: the compressor is busy', { key });
      return false;
    }
    if (this.#compressTried.size >= MAX_KNOWN_KEYS) this.#compressTried.clear();
    this.#compressTried.set(key, mark);
    void this._background(job
      .then((encodings) => {
        if (encodings.length === (entry.encodings?.length ?? 0) || this.#closed || !this.#storeUsable()) return;
        const variant = key.indexOf('?', this.#keyHead.length) !== -1;
        return Promise.resolve(this.store.set(key, { ...entry, encodings }, variant ? this.#setVariant : this.#setPlain)).then((ok) => {
          if (this.log.debugEnabled) {
            this.log.debug(ok ? 'compressed' : 'not saving compressed copies', {
              key,
              encodings: encodings.map((e) => `${e.coding} ${e.body.byteLength}`).join(', '),
              ...(ok ? {} : { reason: 'refused by the store: a tag was invalidated since the page was rendered' }),
            });
          }
        });
      })
      .catch((error: unknown) => this.#fault('set', error)));
    return true;
  }

  /** An anonymous page, unless the request carries cookies. */
  #anonymous(key: string, entry: StoredEntry, headers: HeaderSource): StoredEntry | undefined {
    if (this.#cookiesOf(readHeader(headers, 'cookie')) === undefined) return entry;
    if (this.log.debugEnabled) {
      this.log.debug('skipped getting', { path: entry.path.slice(this.keyPrefix.length), key, reason: 'the stored page is the anonymous one, and the request has cookies' });
    }
    return undefined;
  }

  /** The `Cookie` header without ignored cookies, or `undefined` when nothing is left. */
  #cookiesOf(header: string | undefined): string | undefined {
    if (header === undefined) return undefined;
    let kept: string | undefined;
    for (const part of header.split(';')) {
      const pair = part.trim();
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (isIgnoredParam((eq === -1 ? pair : pair.slice(0, eq)).trim(), this.#cookieIgnore)) continue;
      kept = kept === undefined ? pair : `${kept}; ${pair}`;
    }
    return kept;
  }

  /**
   * Starts handling a miss: joins a concurrent render of the same key, or reads the store's
   * sequence number and returns a `Fill` for the adapter to run the app in. `headers` are the
   * request's, as given to `keyFor()`.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  beginFill(key: string, method: string, headers: HeaderSource): MissPlan | Promise<MissPlan> {
    const view = this.#viewOf(key, headers);
    // A rewarm's own request (option `rewarm`) is no visitor's miss: not counted, not published.
    const visitor = this.#rewarm === undefined || !this.#rewarm.isOwn(headers);
    const q = view === undefined ? -1 : view.target.indexOf('?');
    const path = view && canonicalPath(q === -1 ? view.target : view.target.slice(0, q));
    if (view === undefined || path === undefined) {
      if (visitor) this.#missed(key, method, undefined, false);
      return { kind: 'pass', reason: 'bad url' };
    }
    // A store that just failed (this request's own get, say) is not asked again: a request
    // waits for a failing store once at most.
    if (this.#openUntil !== 0 && !this.#storeUsable()) {
      if (visitor) this.#missed(key, method, path, false);
      return { kind: 'pass', reason: 'store unavailable' };
    }
    let flight: Flight | undefined;
    if (this.#coalesceTimeout !== 0) {
      // Visitors with cookies and without follow separate leaders: a render for a visitor with
      // cookies that reads them is stored for no one, and must not hold up the anonymous visitors.
      const flightKey = view.cookie === undefined ? key : `${key}\n`;
      const existing = this.#flights.get(flightKey);
      if (existing !== undefined) {
        this.#counters.coalesced();
        return this.#follow(existing, view.cookie !== undefined, key, method, path);
      }
      let resolve!: (entry: StoredEntry | undefined) => void;
      const promise = new Promise<StoredEntry | undefined>((r) => (resolve = r));
      flight = { key: flightKey, promise, resolve };
      this.#flights.set(flightKey, flight);
    }
    if (visitor) this.#missed(key, method, path, false);
    let seq: MaybePromise<number>;
    try {
      seq = this.store.sequence();
    } catch (error) {
      return this.#noSequence(flight, error);
    }
    const start: FillStart = { key, view, path, method, flight };
    if (isPromise(seq)) {
      return seq.then(
        (n) => ({ kind: 'fill', fill: new Fill(this, start, n) }) as const,
        (error: unknown) => this.#noSequence(flight, error),
      );
    }
    return { kind: 'fill', fill: new Fill(this, start, seq) };
  }

  async #follow(flight: Flight, cookies: boolean, key: string, method: string, path: string): Promise<MissPlan> {
    const entry = await this.#wait(flight);
    // Given the entry, the request is a hit (counted by `reply()`); else it goes to the app, a miss.
    if (entry !== undefined && !(cookies && entry.anonymousOnly === true)) return { kind: 'entry', entry };
    this.#missed(key, method, path, true);
    return { kind: 'pass', reason: 'a concurrent render of this page was not stored, or was the anonymous page' };
  }

  #missed(key: string, method: string, path: string | undefined, coalesced: boolean): void {
    this.#counters.miss();
    if (missChannel.hasSubscribers) missChannel.publish({ dumper: this, key, method, path, coalesced });
  }

  /** The request a key describes (see `AppView`). */
  #viewOf(key: string, headers: HeaderSource): AppView | undefined {
    const rest = key.slice(this.#keyHead.length);
    const slash = rest.indexOf('/');
    if (slash === -1) return undefined;
    // Host, then `|proto|forwarded host` when either forwarded header was sent (see keyFor).
    const hostPart = rest.slice(0, slash);
    let host = hostPart;
    let forwardedProto: string | undefined;
    let forwardedHost: string | undefined;
    const bar = hostPart.indexOf('|');
    if (bar !== -1) {
      const bar2 = hostPart.indexOf('|', bar + 1);
      host = hostPart.slice(0, bar);
      forwardedProto = hostPart.slice(bar + 1, bar2) || undefined;
      forwardedHost = hostPart.slice(bar2 + 1) || undefined;
    }
    return { target: rest.slice(slash), host, forwardedProto, forwardedHost, cookie: this.#cookiesOf(readHeader(headers, 'cookie')) };
  }

  #noSequence(flight: Flight | undefined, error: unknown): MissPlan {
    this.#fault('sequence', error);
    this._finishFlight(flight, undefined);
    return { kind: 'pass', reason: 'store unavailable' };
  }

  /**
   * The second look at a response, at its end: the headers as sent, after hooks that ran later
   * (a session's cookie). `Content-Encoding` is left out: compression mounted in front of the
   * dumper applies to its own output, not to the body that was captured.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  sentVeto(status: number, sent: readonly string[]): string | undefined {
    const headers: string[] = [];
    for (let i = 0; i < sent.length; i += 2) if (sent[i] !== 'content-encoding') headers.push(sent[i]!, sent[i + 1]!);
    return responseVeto(status, headers, this.#policy);
  }

  /**
   * Whether responses of static file handlers are stored (option `staticFiles`).
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  get storesStaticFiles(): boolean {
    return this.#policy.staticFiles;
  }

  /**
   * Whether a response may be stored: `undefined` if so, else the reason (for the log).
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  responseVeto(status: number, headers: readonly string[]): string | undefined {
    return responseVeto(status, headers, this.#policy);
  }

  /**
   * Called by adapters when a request with an unsafe method (POST, PUT, PATCH, DELETE...)
   * finished. A successful one invalidates its target path and the `Location` and
   * `Content-Location` it answered with (RFC 9111 §4.4): paths, relative references resolved
   * against the target, and absolute URLs of the request's own host.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  afterUnsafe(done: UnsafeResponse): void {
    if (!this.#invalidateOnUnsafe || this.#closed) return;
    const { method, target, status } = done;
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'TRACE') return;
    if (status < 200 || status >= 400) return;
    const paths = [target];
    for (const v of [done.location, done.contentLocation]) {
      const path = v === undefined ? undefined : sameOriginPath(v, target, done.host, done.forwardedHost);
      if (path !== undefined) paths.push(path);
    }
    let tags: string[];
    try {
      tags = this.#pathTags(paths);
    } catch {
      return;
    }
    this.#invalidation('unsafe', { paths, method });
    void this.#invalidate(tags, { paths, after: method });
  }

  // ---------------------------------------------------------------- models

  /**
   * Registers a model, as `dumper.register(IceCream)` in django-dumper: its instances'
   * `dependentPaths()` are invalidated by `changed()` (which ORM integrations call on every save,
   * delete and many-to-many change). Or `register('IceCream', { dependentPaths(row) { ... } })`
   * for models that are not classes (Prisma rows, plain objects); `register<IceCreamRow>('IceCream',
   * { ... })` types the row. A class whose instances lack `dependentPaths()` takes options too.
   * A `dependentPaths` that returns a string (iterable character by character) is a type error.
   */
  register(model: ModelClass<ModelInstance>): this;
  register<C extends ModelClass>(model: C, options: ModelOptions<C['prototype']>): this;
  register<T = any>(model: string, options: ModelOptions<T>): this;
  register(model: ModelClass | string, options?: ModelOptions): this {
    const m = this.#models.register(model, options);
    if (this.log.debugEnabled) this.log.debug('registered model', { model: m.name });
    return this;
  }

  /** Whether a model class, an instance of one, or a model name is registered. */
  isRegistered(model: unknown): boolean {
    return this.#models.find(model) !== undefined;
  }

  /** Names of the registered models. */
  get models(): readonly string[] {
    return this.#models.names;
  }

  /**
   * Invalidates every page that shows an instance: its model's `dependentPaths()` and
   * `dependentTags()`. `changed(instance)` finds the model from the instance's class;
   * `changed('IceCream', row)` names it.
   */
  async changed(instance: object): Promise<void>;
  async changed(model: string | ModelClass, instance: object): Promise<void>;
  async changed(a: string | ModelClass | object, b?: object): Promise<void> {
    await this.invalidateDependents(await this.dependentsOf(a as string, b as object));
  }

  /**
   * What `changed()` would invalidate for an instance, without invalidating it: the paths and
   * tags its model names. ORM integrations compute this when a row is written (a deleted row
   * loses its id afterwards) and hand it to `invalidateDependents()` again after the commit.
   */
  async dependentsOf(instance: object): Promise<Dependents>;
  async dependentsOf(model: string | ModelClass, instance: object): Promise<Dependents>;
  async dependentsOf(a: string | ModelClass | object, b?: object): Promise<Dependents> {
    if (b === undefined && typeof a === 'function') {
      throw new TypeError(`page-dumper: changed(${a.name}) needs the instance that changed: changed(${a.name}, instance) or changed(instance)`);
    }
    const model = this.#models.find(a);
    const instance = b ?? a;
    if (model === undefined) {
      const what = typeof a === 'string' ? `"${a}"` : typeof a === 'function' ? a.name : (a as object).constructor?.name ?? 'object';
      throw new TypeError(`page-dumper: changed(): model ${what} is not registered; call dumper.register() first`);
    }
    const paths = await collectStrings(model.name, 'dependentPaths', model.dependentPaths(instance));
    const tags = model.dependentTags ? await collectStrings(model.name, 'dependentTags', model.dependentTags(instance)) : [];
    return { model: model.name, paths, tags };
  }

  /** Invalidates the paths and tags of `dependentsOf()` (one or several), in one store call. */
  async invalidateDependents(dependents: Dependents | Iterable<Dependents>): Promise<void> {
    const list: Dependents[] = isDependents(dependents) ? [dependents] : [...dependents];
    const paths: string[] = [];
    const tags: string[] = [];
    for (const d of list) {
      paths.push(...d.paths);
      tags.push(...d.tags);
    }
    for (const t of tags) checkTag(t, 'invalidateDependents');
    if (paths.length !== 0 || tags.length !== 0) {
      const integrations = new Set<string>();
      for (const d of list) if (typeof d.integration === 'string') integrations.add(d.integration);
      this.#invalidation('dependents', { paths, tags, models: [...new Set(list.map((d) => d.model))], integrations: [...integrations] });
    }
    if (this.log.debugEnabled) this.log.debug('invalidating instance', { model: [...new Set(list.map((d) => d.model))].join(', ') });
    await this.#invalidate([...new Set([...this.#pathTags(paths), ...tags])], { paths, tags });
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * Invalidates pages by path: every query-string variant, GET and HEAD, and every spelling that
   * routes to the same page (`/ice-cream/`, `/ice-cream`, `/ICE-CREAM/`). A query string or
   * fragment in a path is ignored; full URLs are accepted.
   */
  async invalidate(paths: Iterable<string> | string): Promise<void> {
    const list = typeof paths === 'string' ? [paths] : [...paths];
    const tags = this.#pathTags(list);
    if (list.length !== 0) this.#invalidation('paths', { paths: list });
    await this.#invalidate(tags, { paths: list });
  }

  /** Invalidates every page tagged with one of `tags` (by `dumper.tag()` during its render). */
  async invalidateTags(tags: Iterable<string> | string): Promise<void> {
    const list = typeof tags === 'string' ? [tags] : [...tags];
    for (const t of list) checkTag(t, 'invalidateTags');
    if (list.length !== 0) this.#invalidation('tags', { tags: list });
    await this.#invalidate(list, { tags: list });
  }

  /** Invalidates a path and everything below it. Needs `prefixInvalidation: true`. */
  async invalidatePrefix(prefixes: Iterable<string> | string): Promise<void> {
    if (!this.#prefixInvalidation) {
      throw new TypeError('page-dumper: invalidatePrefix() needs the option prefixInvalidation: true');
    }
    const list = typeof prefixes === 'string' ? [prefixes] : [...prefixes];
    const tags = this.#pathTags(list).flatMap(tagsForPrefix);
    if (list.length !== 0) this.#invalidation('prefix', { prefixes: list });
    await this.#invalidate(tags, { prefixes: list });
  }

  /** Drops every stored page (a deploy, a template change). */
  async invalidateAll(): Promise<void> {
    this.#invalidation('all', {});
    this.#detachFlights();
    // Queued before the store is cleared (see #invalidate).
    const purged = this._purging?.enqueue(undefined, true);
    if (purged !== undefined) await purged;
    try {
      await this.store.clear();
      if (this.#failures !== 0) this.#recovered();
      this.#rewarm?.invalidated(undefined);
      if (this.log.debugEnabled) this.log.debug('invalidated everything', {});
    } catch (error) {
      this.#pendingClear = true;
      this.#fault('clear', error);
      this.#scheduleReplay();
    }
  }

  /**
   * Tags the page being rendered, so `invalidateTags()` reaches it. Outside a page render (or in
   * one that will not be stored) it does nothing.
   */
  tag(...tags: string[]): void {
    for (const t of tags) checkTag(t, 'tag');
    const ctx = renders.getStore();
    if (ctx !== undefined) {
      if (ctx.dumper !== this) return;
      if (ctx.fill.done) {
        // A context outliving its render: work batched across requests (a DataLoader) runs in
        // the context of the request that started the batch, so this tag may belong to any page
        // in flight. None of them is stored.
        distrustInflight();
        if (this.log.debugEnabled) this.log.debug('tag() from a finished render: renders in flight are not stored', { tags });
        return;
      }
      for (const t of tags) ctx.tags.add(t);
      return;
    }
    if (!tracking.trackContexts) {
      tracking.trackContexts = true;
      distrustInflight();
      if (this.log.debugEnabled) this.log.debug('tracking render contexts from now on: dumper.tag() was called', { tags });
    }
  }

  /**
   * Resolves once every purge queued so far has been acknowledged by every edge cache (option
   * `purgers`), including the second purge sent `edge.raceWindow` after each first one this
   * process sent; purges queued after the call are not waited for. Failed purges are retried
   * meanwhile: an edge that keeps failing (down, a wrong token) keeps this waiting, unless
   * `timeout` (ms) or `signal` says when to give up. Rejects with a `DumperError`
   * (`DUMPER_PURGE_FAILURE`) then, and when the dumper is closed first. Without purgers it
   * resolves at once.
   */
  async flushPurges(options: FlushOptions = {}): Promise<void> {
    if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: flushPurges(options): options must be an object');
    const { timeout, signal } = options;
    if (timeout !== undefined && !(typeof timeout === 'number' && Number.isFinite(timeout) && timeout >= 0)) {
      throw new TypeError(`page-dumper: flushPurges() option "timeout" must be a number of milliseconds, got ${String(timeout)}`);
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('page-dumper: flushPurges() option "signal" must be an AbortSignal');
    await this._purging?.flush(options);
  }

  /** Purges queued, sent, failed and retried by this process so far (all zero without purgers). */
  get purgeStats(): Readonly<PurgeStats> {
    return { ...(this._purging?.stats ?? { queued: 0, sent: 0, failed: 0, retried: 0 }) };
  }

  /**
   * Requests pages from the running site (absolute URLs: `http://127.0.0.1:3000/ice-cream/`),
   * `concurrency` at a time (default 4), so that it renders and stores them before visitors ask,
   * through the fill protocol as for any visitor; resolves with what each gave (this dumper's
   * cache status header is read: HIT, MISS, BYPASS). See `WarmOptions` and docs/operations.md.
   */
  warm(urls: Iterable<string | URL>, options: WarmOptions = {}): Promise<WarmReport> {
    return warm(urls, { ...(this.cacheStatusHeader === undefined ? {} : { cacheHeader: this.cacheStatusHeader }), ...options });
  }

  /**
   * The store as the dumper sees it: `open` while the circuit breaker sends requests to the app
   * after store failures (until `openUntil`, ms since the epoch), the consecutive failures that
   * opened it, and the invalidations that failed and wait to be replayed into the store.
   */
  get storeHealth(): StoreHealth {
    const open = this.#openUntil > Date.now();
    return {
      circuit: open ? 'open' : 'closed',
      openUntil: open ? this.#openUntil : undefined,
      failures: this.#failures,
      pendingInvalidations: this.#pendingTags.size,
      pendingClear: this.#pendingClear,
    };
  }

  /** What the option `rewarm` has done so far (`undefined` without it). */
  get rewarmStats(): RewarmStats | undefined {
    return this.#rewarm?.stats;
  }

  /** Resolves once no rewarm request (option `rewarm`) is waiting or in flight. */
  async flushRewarm(): Promise<void> {
    await this.#rewarm?.settled();
  }

  /** Stops caching (requests bypass from now on), waits for the work under way, and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#replayTimer);
    this.#detachFlights();
    // Compressions not started are dropped (their results would not be stored after close);
    // the work under way (a zlib call, a store write) is waited for.
    this.#compressor?.close();
    this.#rewarm?.close();
    await this.#flushing;
    await this.flushCompression();
    await this._purging?.close();
    await this.store.close?.();
  }

  // ---------------------------------------------------------------- internals used by Fill

  /**
   * Logs a decision at debug level, as every adapter does (`found`, `didn't find`, `skipped
   * getting`, `not saving`), with the request's method, path and key, and the reason if any.
   * Check `dumper.log.debugEnabled` first on the hit path: nothing is built when it is off.
   * For HTTP adapters (`page-dumper/adapter`); applications do not call it.
   * @category Adapter
   */
  logDecision(what: 'found' | "didn't find" | 'skipped getting' | 'not saving' | 'cached', request: { readonly method: string; readonly path: string; readonly key: string; readonly reason?: string }): void {
    if (!this.log.debugEnabled) return;
    const { method, path, key, reason } = request;
    this.log.debug(what, reason === undefined ? { method, path, key } : { method, path, key, reason });
  }

  /** @internal */
  _entry(fill: Fill, response: FilledResponse, render: { readonly tags: ReadonlySet<string>; readonly cookiesRead: boolean }): StoredEntry {
    const { status, headers, body, encoding } = response;
    const now = Date.now();
    const own = this.cacheStatus === undefined ? headers : withoutOwnCacheStatus(headers, this.cacheStatus.cache);
    const stored = storedHeaders(own, body, this.cacheStatusHeader, now);
    // Tags live under the key prefix too, so sites sharing a store do not invalidate each other.
    const p = this.keyPrefix;
    const path = p + fill.path;
    const tags = [path];
    if (this.#prefixInvalidation) for (const t of prefixTags(fill.path)) tags.push(p + t);
    for (const t of render.tags) if (p + t !== path) tags.push(p + t);
    const entry: StoredEntry = {
      status,
      headers: stored.headers,
      body,
      etag: stored.etag,
      // A response that was already `Age` seconds old when it arrived (from a cache behind the
      // app) is that much older on every hit (RFC 9111 §5.1): count its age from then.
      storedAt: now - stored.age * 1000,
      seq: fill.seq,
      path,
      tags,
    };
    // Only an anonymous page carries the flag, so entries of pages that never read cookies stay
    // as they were.
    const withFlag: StoredEntry = render.cookiesRead ? { ...entry, anonymousOnly: true } : entry;
    return encoding === undefined ? withFlag : { ...withFlag, encodings: [encoding] };
  }

  /** @internal The tags of a page other than its path tag, unprefixed: ancestor tags, then render tags. */
  _edgeOthers(path: string, renderTags: ReadonlySet<string>): string[] {
    const out = this.#prefixInvalidation ? prefixTags(path) : [];
    for (const t of renderTags) if (t !== path) out.push(t);
    return out;
  }

  #unprefixed(tags: readonly string[]): string[] {
    const n = this.keyPrefix.length;
    const out: string[] = [];
    for (let i = 1; i < tags.length; i++) out.push(tags[i]!.slice(n));
    return out;
  }

  /** @internal The app's own compression of a page, kept when it is one of the codings made. */
  _appEncoding(coding: string, body: Uint8Array): EncodedBody | undefined {
    return this.#compress === undefined ? undefined : ownEncoding(coding, body, this.#compress.coders);
  }

  /** @internal */
  _store(fill: Fill, entry: StoredEntry): MaybePromise<boolean> {
    if (!this.#storeUsable()) {
      this._refused(fill, 'store unavailable');
      return false;
    }
    let result: MaybePromise<boolean>;
    try {
      // The host and the key prefix come first; a `?` after them starts the query string.
      const variant = fill.key.indexOf('?', this.#keyHead.length) !== -1;
      result = this.store.set(fill.key, entry, variant ? this.#setVariant : this.#setPlain);
    } catch (error) {
      this.#fault('set', error);
      this._refused(fill, 'the store failed', 'store error');
      return false;
    }
    if (isPromise(result)) {
      return result.then(
        (ok) => this.#stored(fill, ok, entry),
        (error: unknown) => {
          this.#fault('set', error);
          this._refused(fill, 'the store failed', 'store error');
          return false;
        },
      );
    }
    return this.#stored(fill, result, entry);
  }

  #stored(fill: Fill, ok: boolean, entry: StoredEntry): boolean {
    if (this.#failures !== 0) this.#recovered();
    if (ok && this.#compress !== undefined && compressible(entry, this.#compress)) {
      // Compressing is work for spare time: a process whose event loop is busy (a flood of misses)
      // leaves it to the page's first hit, so misses cost what they cost without compression
      // and pages that are never asked for again are never compressed.
      if (!this.#compressor!.busy && !loopBusy()) this.#compressLater(fill.key, entry);
      else {
        if (this.#deferred.size >= MAX_KNOWN_KEYS) this.#deferred.clear();
        this.#deferred.add(fill.key);
      }
    }
    if (!ok) {
      this._refused(fill, 'refused by the store: a tag was invalidated during the render, or a limit was reached', 'store refused');
      return false;
    }
    if (this.log.debugEnabled) this.logDecision('cached', { method: fill.method, path: fill.path, key: fill.key });
    this.#counters.stored(entry.body.byteLength);
    // A page rewarmed (or rendered again for a visitor) may carry other tags than when it was hit.
    this.#rewarm?.stored(fill.key, entry.tags);
    if (storeChannel.hasSubscribers) {
      storeChannel.publish({ dumper: this, key: fill.key, method: fill.method, path: fill.path, tags: this.#unprefixedAll(entry.tags), bytes: entry.body.byteLength, seq: entry.seq });
    }
    return true;
  }

  /** @internal A fill that is not stored: logged, counted, published. `reason` defaults to what `detail` says. */
  _refused(fill: Fill, detail: string, reason: RefusalReason = refusalOf(detail)): void {
    this.logDecision('not saving', { method: fill.method, path: fill.path, key: fill.key, reason: detail });
    this.#counters.refusals[reason]++;
    if (this.#warnings !== undefined) {
      const target = fill.view.target;
      const q = target.indexOf('?');
      this.#warnings.refused(fill.method, fill.path, q === -1 ? target : target.slice(0, q), reason, detail);
    }
    if (refusalChannel.hasSubscribers) refusalChannel.publish({ dumper: this, key: fill.key, method: fill.method, path: fill.path, reason, detail });
  }

  #unprefixedAll(tags: readonly string[]): string[] {
    const n = this.keyPrefix.length;
    return tags.map((t) => t.slice(n));
  }

  /** @internal */
  _finishFlight(flight: Flight | undefined, entry: StoredEntry | undefined): void {
    if (flight === undefined) return;
    if (this.#flights.get(flight.key) === flight) this.#flights.delete(flight.key);
    flight.resolve(entry);
  }

  // ---------------------------------------------------------------- private

  #hasBypassCookie(cookie: string | undefined): boolean {
    if (cookie === undefined) return false;
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      const name = (eq === -1 ? part : part.slice(0, eq)).trim();
      if (this.#bypassCookies.includes(name)) return true;
    }
    return false;
  }

  #isIgnored(path: string): boolean {
    const ignore = this.#ignore!;
    if (ignore(path)) return true;
    // Routers decode, case-fold (Express by default) and collapse slashes: test those spellings too.
    if (!/[%A-Z]|\/\/|\/\.|\\/.test(path)) return false;
    let decoded = path;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return true;
    }
    const folded = decoded.toLowerCase();
    const collapsed = folded.replace(/\\/g, '/').replace(/\/{2,}/g, '/');
    const resolved = (canonicalPath(collapsed) ?? collapsed) + (collapsed.endsWith('/') && collapsed !== '/' ? '/' : '');
    return ignore(decoded) || ignore(folded) || ignore(collapsed) || ignore(resolved);
  }

  #pathTags(paths: readonly string[]): string[] {
    const tags: string[] = [];
    for (const p of paths) {
      if (typeof p !== 'string') {
        throw new TypeError(`page-dumper: paths must be strings, got ${p === null ? 'null' : typeof p}`);
      }
      let path = p;
      if (!path.startsWith('/')) {
        const split = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(path) ? splitTarget(path) : undefined;
        if (split === undefined) {
          throw new TypeError(`page-dumper: a path must start with "/" (or be a full URL), got ${JSON.stringify(p)}`);
        }
        path = split.path;
      }
      const cut = path.search(/[?#]/);
      if (cut !== -1) path = path.slice(0, cut);
      // An undecodable path can still be a key (it bypasses), so invalidate its raw spelling.
      tags.push(canonicalPath(path) ?? path.toLowerCase());
    }
    return tags;
  }

  /** Counts an invalidation asked for, and publishes it on `page-dumper:invalidate`. */
  #invalidation(
    kind: InvalidationKind,
    what: {
      readonly paths?: readonly string[];
      readonly tags?: readonly string[];
      readonly prefixes?: readonly string[];
      readonly models?: readonly string[];
      readonly integrations?: readonly string[];
      readonly method?: string;
    },
  ): void {
    this.#counters.invalidations[kind]++;
    if (!invalidateChannel.hasSubscribers) return;
    invalidateChannel.publish({
      dumper: this,
      kind,
      paths: what.paths ?? NONE,
      tags: what.tags ?? NONE,
      prefixes: what.prefixes ?? NONE,
      models: what.models ?? NONE,
      integrations: what.integrations ?? NONE,
      method: what.method,
    });
  }

  async #invalidate(tags: string[], what: Record<string, unknown>): Promise<void> {
    if (tags.length === 0) return;
    const distinct = [...new Set(tags)];
    const unique = distinct.map((t) => this.keyPrefix + t);
    // The edge's purge is queued first, due a moment later: a crash between the two cannot lose it
    // (the store's invalidation without its purge would leave the edge stale for edgeMaxAge), and
    // by the time it is sent the store has invalidated, so an edge that fetches the page again
    // gets the new one (a slower store: the race's second purge covers it). Whether or not the
    // store takes it: the edge's copies are stale either way.
    const purged = this._purging?.enqueue(distinct, true);
    if (purged !== undefined) await purged;
    try {
      await this.store.invalidate(unique);
      if (this.#failures !== 0) this.#recovered();
      this.#rewarm?.invalidated(unique);
      if (this.log.debugEnabled) this.log.debug('invalidated', { ...what, tags: unique });
    } catch (error) {
      for (const t of unique) this.#pendingTags.add(t);
      this.#fault('invalidate', error);
      this.#scheduleReplay();
    }
  }

  /**
   * Retries failed invalidations on a timer too, not only when a request comes: with a shared
   * store, other processes read it and cannot know what this one failed to write, so the sooner
   * the store has it, the shorter their window. The timer backs off with the circuit breaker.
   */
  #scheduleReplay(): void {
    if (this.#replayTimer !== undefined || this.#closed) return;
    const delay = Math.max(this.#openUntil - Date.now(), 50);
    this.#replayTimer = setTimeout(() => {
      this.#replayTimer = undefined;
      if (this.#closed || (this.#pendingTags.size === 0 && !this.#pendingClear)) return;
      this.#flushing ??= this.#flushPending().finally(() => (this.#flushing = undefined));
      void this.#flushing.then(() => {
        if (this.#pendingTags.size !== 0 || this.#pendingClear) this.#scheduleReplay();
      });
    }, delay);
    this.#replayTimer.unref();
  }

  #detachFlights(): void {
    for (const [key, flight] of this.#flights) {
      this.#flights.delete(key);
      flight.resolve(undefined);
    }
  }

  async #wait(flight: Flight): Promise<StoredEntry | undefined> {
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve(undefined);
      }, this.#coalesceTimeout);
    });
    try {
      return await Promise.race([flight.promise, timeout]);
    } finally {
      clearTimeout(timer);
      // A render that outlives the wait is not waited for again: later misses start their own.
      if (timedOut && this.#flights.get(flight.key) === flight) this.#flights.delete(flight.key);
    }
  }

  /**
   * Whether reads and fills may use the store now. False while the circuit is open, and while
   * invalidations that failed have not been replayed: an entry that may have missed one is never
   * served.
   */
  #storeUsable(): boolean {
    if (this.#openUntil !== 0) {
      if (Date.now() < this.#openUntil) return false;
    }
    if (this.#pendingTags.size !== 0 || this.#pendingClear) {
      this.#flushing ??= this.#flushPending().finally(() => (this.#flushing = undefined));
      return false;
    }
    return true;
  }

  async #flushPending(): Promise<void> {
    try {
      // Until the store takes an invalidation, other processes still serve (and edges fetch again)
      // the pages it drops: the purges sent when it was asked for did not cover those, so the
      // edge is purged again once the store has it.
      if (this.#pendingClear) {
        await this.store.clear();
        this.#pendingClear = false;
        void this._purging?.enqueue(undefined);
        this.#rewarm?.invalidated(undefined);
      }
      if (this.#pendingTags.size !== 0) {
        const tags = [...this.#pendingTags];
        await this.store.invalidate(tags);
        for (const t of tags) this.#pendingTags.delete(t);
        this.log.warn('replayed invalidations that failed while the store was unavailable', { tags });
        void this._purging?.enqueue(this.#unprefixedAll(tags));
        this.#rewarm?.invalidated(tags);
      }
      this.#recovered();
    } catch (error) {
      this.#fault('replay invalidations', error);
    }
  }

  #fault(op: string, error: unknown): void {
    this.#counters.storeError();
    // Operations that were in flight when the circuit opened fail together; they are one failure,
    // or a burst of concurrent requests would push the cooldown to its maximum at once.
    if (this.#openUntil > Date.now()) {
      if (this.log.debugEnabled) this.log.debug(`store ${op} failed while the circuit is open`, { error: error as Error });
      return;
    }
    this.#failures++;
    const cooldown = Math.min(this.#storeCooldown * 2 ** (this.#failures - 1), MAX_COOLDOWN);
    this.#openUntil = Date.now() + cooldown;
    const wrapped = new DumperError('DUMPER_STORE_FAILURE', `store ${op} failed: ${this.#describeFault(error)}`, { cause: error });
    if (this.#failures === 1) {
      this.log.error(`${wrapped.message}; requests go to the app for ${cooldown} ms`, { store: this.storeLabel, code: wrapped.code, error: wrapped });
    } else if (this.log.debugEnabled) {
      this.log.debug(`store ${op} failed again`, { error: error as Error, failures: this.#failures, cooldown });
    }
  }

  /**
   * How logs and errors name the store: its `label` (kind and address), or its class name.
   */
  get storeLabel(): string {
    const label = this.store.label;
    if (typeof label === 'string' && label !== '') return label;
    const name = (this.store as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== '' && name !== 'Object' ? name : 'the store';
  }

  /** The store's label and the client's message, without saying the label twice. */
  #describeFault(error: unknown): string {
    const label = this.storeLabel;
    const message = error instanceof Error ? error.message : String(error);
    return message.includes(label) ? message : `${label}: ${message}`;
  }

  #recovered(): void {
    if (this.#failures !== 0 || this.#openUntil !== 0) {
      this.log.warn(`store recovered (${this.storeLabel})`, { failures: this.#failures });
    }
    this.#failures = 0;
    this.#openUntil = 0;
  }
}

/**
 * The representation a conditional request holds, by its `If-None-Match` (weak comparison, RFC
 * 9110 §13.1.2): the one it would be sent, or another it accepts (a client that stored the
 * identity page before the compressed ones were made); `*` holds any.
 */
function heldRepresentation(reps: Representations, chosen: Representation, ifNoneMatch: string, acceptEncoding: string | undefined): Representation | undefined {
  if (ifNoneMatch.trim() === '*') return chosen;
  let other: Representation | undefined;
  for (const candidate of ifNoneMatch.split(',')) {
    const tag = opaqueTag(candidate);
    if (tag === opaqueTag(chosen.etag)) return chosen;
    if (other === undefined) {
      for (const r of reps.list) if (r !== chosen && opaqueTag(r.etag) === tag && accepts(acceptEncoding, r)) other = r;
    }
  }
  return other;
}

function opaqueTag(tag: string): string {
  const t = tag.trim();
  return t.startsWith('W/') ? t.slice(2) : t;
}

/**
 * Whether the event loop was busy more than half the time lately (measured over at least 100 ms,
 * between calls). One `performance.eventLoopUtilization()` call per 100 ms at most.
 */
let loopSample = performance.eventLoopUtilization();
let loopSampledAt = performance.now();
let loopWasBusy = false;
function loopBusy(): boolean {
  const now = performance.now();
  if (now - loopSampledAt >= 100) {
    const sample = performance.eventLoopUtilization();
    loopWasBusy = performance.eventLoopUtilization(sample, loopSample).utilization > 0.5;
    loopSample = sample;
    loopSampledAt = now;
  }
  return loopWasBusy;
}

function checkTag(tag: unknown, method: string): void {
  if (typeof tag !== 'string' || tag === '') {
    throw new TypeError(`page-dumper: ${method}() takes non-empty strings, got ${tag === '' ? 'an empty string' : typeof tag}`);
  }
}

/** Throws a `TypeError` naming `fn` unless `value` is a dumper; adapters call it when they are set up. */
export function assertDumper(value: unknown, fn: string): asserts value is Dumper {
  if (value === null || typeof value !== 'object' || typeof (value as Dumper).keyFor !== 'function') {
    throw new TypeError(`page-dumper: ${fn}() needs a dumper made by createDumper()`);
  }
}

brandClass(Dumper, 'Dumper');

/** Creates a dumper. Options are validated here: a mistake is a `TypeError` naming the option. */
export function createDumper(options?: DumperOptions): Dumper {
  return new Dumper(options);
}
