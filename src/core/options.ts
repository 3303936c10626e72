import { createHash } from 'node:crypto';
import type { DumperLogger } from './log.js';
import type { Store } from './store.js';
import { REFUSAL_REASONS, type RefusalReason } from './stats.js';
import { validatePurger, type Purger, type PurgeSettings } from './purge.js';
import { validateCompress, type CompressOptions } from './encoding.js';
import { validateRewarm, type RewarmOptions } from './rewarm.js';

/** Tracking parameters that never change what a page shows; left out of keys by default. */
export const DEFAULT_IGNORED_QUERY_PARAMS: readonly string[] = Object.freeze([
  'utm_*',
  'gclid',
  'gbraid',
  'wbraid',
  'dclid',
  'fbclid',
  'msclkid',
  'twclid',
  'mc_cid',
  'mc_eid',
  '_hsenc',
  '_hsmi',
]);

/**
 * Cookies that analytics and advertising scripts set in the browser and that no server reads:
 * removed from the request the app renders on a miss, so they neither make a page personal nor
 * keep a visitor away from the cached page.
 */
export const DEFAULT_IGNORED_COOKIES: readonly string[] = Object.freeze([
  '_ga',
  '_ga_*',
  '_gid',
  '_gat*',
  '_gcl_*',
  '_fbp',
  '_fbc',
  '_hj*',
  '_clck',
  '_clsk',
  '_uetsid',
  '_uetvid',
  '_ttp',
  '__utm*',
  '_pk_id*',
  '_pk_ses*',
  'ajs_anonymous_id',
  'ajs_user_id',
  'mp_*',
  '__hstc',
  '__hssc',
  '__hssrc',
  'hubspotutk',
]);

/**
 * The default of `ignore`: django-dumper's `^/admin/`, and `/admin` itself, which Express routes
 * to the same admin router.
 */
export const DEFAULT_IGNORE = /^\/admin(?:\/|$)/;

/** A path matcher: a RegExp, a regular-expression source string, or a predicate. */
export type PathMatcher = RegExp | string | ((path: string) => boolean);

export interface DumperOptions {
  /**
   * Where pages are kept (django-dumper's `DUMPER_CACHE_ALIAS`).
   * @default new MemoryStore() — 64 MiB, in this process only. Use a shared store
   * (`page-dumper/redis`, `page-dumper/sqlite`) when several processes serve the site.
   */
  store?: Store;
  /**
   * Compressed copies of every stored page, made once per page off the request path (zlib's
   * thread pool) and sent to clients that accept them (`Accept-Encoding`), with `Vary:
   * Accept-Encoding`, their own `Content-Length` and `ETag`: brotli, gzip, and Zstandard where
   * the running Node has it. Hits just after a miss are identity until the copies are made
   * (milliseconds later); a process whose event loop is busy leaves the compressing to each
   * page's first hit. Pages an app compressed itself are decoded when stored. `true` is the
   * defaults; `false` turns it off: every hit is sent uncompressed (compress at a proxy), also
   * for pages the app compressed, which are stored decoded.
   * @default { br: 9, gzip: 6, zstd: 10, types: DEFAULT_COMPRESSIBLE_TYPES, minBytes: 1024 }
   */
  compress?: CompressOptions | boolean;
  /**
   * Prepended to every key, so that several sites can share one store (`DUMPER_KEY_PREFIX`).
   * @default 'dumper.cached_path.'
   */
  keyPrefix?: string;
  /**
   * Paths that are neither stored nor served, even if an entry was stored before this setting
   * changed (`DUMPER_PATH_IGNORE_REGEX`). Matched against the raw path and its decoded,
   * lower-cased, dot-resolved form, because routers such as Express match case-insensitively:
   * `/ADMIN/` must not slip past `^/admin/`. `null` caches every path.
   * @default /^\/admin(?:\/|$)/ — `/admin`, `/admin/` and everything below
   */
  ignore?: PathMatcher | null;
  /**
   * Response statuses that are stored. Anything else (404, 301, 500...) goes to the app every time.
   * @default [200]
   */
  statuses?: readonly number[];
  /**
   * Store the responses of static file handlers too: `express.static`/`serve-static` and
   * `@fastify/static` (recognized by `Accept-Ranges: bytes`) and `koa-static`/`koa-send` (a file
   * stream as Koa's body). Off by default: a file changes with a deploy, never with a data write,
   * so nothing would invalidate it; its handler already answers from the file system with
   * validators (304s) at close to the speed of a hit; and bundles and images would push pages out
   * of a byte-bounded store. Serve them from a CDN or a reverse proxy.
   * @default false
   */
  staticFiles?: boolean;
  /**
   * The build of the site. Entries are stored under it, so pages rendered by another build (with
   * other templates, styles, scripts) are never served by this one, while processes still running
   * the old build keep serving theirs during a rolling deploy: nothing is flushed. Invalidations
   * reach every build's entries. `false` turns it off.
   * @default the first of these environment variables that is set: PAGE_DUMPER_VERSION,
   * SOURCE_VERSION, HEROKU_SLUG_COMMIT, RENDER_GIT_COMMIT, VERCEL_GIT_COMMIT_SHA,
   * RAILWAY_GIT_COMMIT_SHA, KOYEB_GIT_SHA, CF_PAGES_COMMIT_SHA, K_REVISION, FLY_IMAGE_REF,
   * GIT_COMMIT, COMMIT_SHA; else none.
   */
  version?: string | false;
  /**
   * Host allowlist (lower-case, with port if not the default). Requests for other hosts are
   * neither stored nor served. Without it the `Host` header is part of the key, so an unknown
   * host cannot poison a known one, but it can fill the store.
   * @default undefined (any host)
   */
  hosts?: readonly string[];
  /**
   * Query parameters left out of the key and removed from the URL the app sees on a miss, so a
   * page can never depend on them. Strings ending in `*` match a prefix.
   * @default DEFAULT_IGNORED_QUERY_PARAMS (utm_*, gclid, fbclid, msclkid, ...)
   */
  ignoreQueryParams?: ReadonlyArray<string | RegExp>;
  /**
   * Sort query parameters by name in the key, so `?a=1&b=2` and `?b=2&a=1` share an entry.
   * Repeated names keep their order.
   * @default true
   */
  sortQuery?: boolean;
  /**
   * Bodies larger than this many bytes are not stored (the response still streams to the client).
   * @default 2 MiB
   */
  maxEntryBytes?: number;
  /**
   * Requests whose target is longer than this many characters are not cached.
   * @default 4096
   */
  maxUrlLength?: number;
  /**
   * Query-string variants kept per path (all hosts and spellings of the path together). One more
   * evicts the least recently used variant of the same path (a shared store: the least recently
   * stored); the page without a query string is never counted nor evicted for them, so
   * `?nonce=<random>` cannot lock a page out of the store nor fill it with one path. Junk spread
   * over many paths is bounded by the store's own size, like any other traffic.
   * @default 256
   */
  maxVariantsPerPath?: number;
  /**
   * Give every entry the tags of its ancestor paths so `dumper.invalidatePrefix()` works. Costs
   * one tag per path segment on every entry (a shared store checks them on each hit).
   * @default false
   */
  prefixInvalidation?: boolean;
  /**
   * Cookies the site never reads (analytics, advertising). They are removed from the request the
   * app renders on a miss, and a request that carries only these counts as a request without
   * cookies. Every other cookie is watched: a page whose render read the request's cookies is
   * never served to another visitor, and a visitor with cookies is never given a page whose
   * render read cookies (the anonymous one). Strings ending in `*` match a prefix.
   * @default DEFAULT_IGNORED_COOKIES (_ga, _ga_*, _gid, _fbp, _hj*, ...)
   */
  ignoreCookies?: ReadonlyArray<string | RegExp>;
  /**
   * Requests carrying any of these cookies (a session cookie, say) neither read nor fill the
   * cache, whether or not the render reads them. Not needed for safety (see `ignoreCookies`);
   * it saves the store lookup for visitors who are known to get their own pages.
   * @default []
   */
  bypassCookies?: readonly string[];
  /**
   * Name of the response header that reports `HIT`, `MISS` or `BYPASS`; `false` sends none.
   * @default 'X-Cache'
   */
  cacheStatusHeader?: string | false;
  /**
   * Send the standard `Cache-Status` header (RFC 9211) too, beside `cacheStatusHeader`:
   * `page-dumper; hit` on hits (and their 304s), `page-dumper; fwd=uri-miss; stored` on a miss
   * whose response is being stored (`fwd=uri-miss` alone when it is not), and
   * `page-dumper; fwd=bypass; detail=<reason>` on a bypass (`fwd=method` for POST, PUT...).
   * `true` names the cache `page-dumper`; a string names it otherwise (a token: letters, digits
   * and `!#$%&'*+-.^_\`|~:/`, starting with a letter), so that the caches in front of a site
   * (a CDN, Varnish) and this one can be told apart in the list. A `Cache-Status` the app sends
   * (from a cache behind it) is kept, and this cache's member appended after it; this cache's own
   * member is never stored with a page.
   * @default false
   */
  cacheStatus?: boolean | string;
  /**
   * Where decisions are logged. By default the `debug` package under the `dumper` namespace
   * (`DEBUG=dumper`), and store faults to stderr. Pass `console`, a pino or winston logger, or
   * `false` for silence.
   */
  logger?: DumperLogger | false;
  /**
   * Which refusals to store a render are warned about through `logger` at warn level, once per
   * path and reason (the first 10 paths of each reason; `dumper.stats().refusals` counts every
   * refusal). By default those that usually mean a page meant for the cache is not cached
   * (`DEFAULT_WARNED_REFUSALS`): a `Set-Cookie`, a `Vary` on anything but `Accept-Encoding`, a
   * coding that cannot be decoded, a body over `maxEntryBytes`, a response the adapter cannot
   * store. Not by default: a `Cache-Control: private`/`no-store`/`no-cache` and a render that
   * read a visitor's cookies (usually the site's intent), a status other than 200, a client that
   * left, a store outage. `false` for none, or the list of reasons to warn about. The warning
   * names the request's path (never its query string): with secrets in paths, pass `false`.
   * Every decision, stored or not, is logged at debug level.
   * @default DEFAULT_WARNED_REFUSALS
   */
  warnings?: boolean | readonly RefusalReason[];
  /**
   * Concurrent misses for one key render once; the others wait at most this many milliseconds for
   * that render before going to the app themselves. `0` turns coalescing off.
   * @default 10000
   */
  coalesceTimeout?: number;
  /**
   * After a successful POST, PUT, PATCH or DELETE, invalidate its target path and the path its
   * `Location` names (RFC 9111 §4.4), once the response has gone out. A safety net: a request whose
   * client left before the app answered is not seen. `changed()` and the ORM integrations
   * invalidate on the write itself.
   * @default true
   */
  invalidateOnUnsafe?: boolean;
  /**
   * Track the render context of every miss from the start, so `dumper.tag()` is attributed from
   * the very first render. By default tracking starts at the first `dumper.tag()` call (the renders
   * in flight at that moment are not stored), because on Node 20 and 22 `AsyncLocalStorage`
   * slows every promise in the process once it is used: an app that never tags pages should not
   * pay for it.
   * @default false
   */
  trackRenders?: boolean;
  /**
   * After a store operation fails, skip the store for this many milliseconds (doubling on each
   * further failure, up to 30 s) instead of hammering it. Requests go to the app meanwhile.
   * @default 1000
   */
  storeCooldown?: number;
  /**
   * Edge caches in front of the site (`varnishPurger`, `fastlyPurger`, `cloudflarePurger` from
   * `page-dumper/purge`). Every cacheable response (hits and misses) then carries the page's tags
   * in each purger's header, and edge freshness headers (`Surrogate-Control` or
   * `CDN-Cache-Control`, RFC 9213) so the edge keeps the page while browsers revalidate; every
   * invalidation is queued to each of them and delivered once, by whichever process claims it.
   * The queue lives in the store when it has one (`SqliteStore`, `RedisStore`: nothing is lost in
   * a crash); with `MemoryStore` it lives in this process and a crash loses what is not yet sent.
   * @default [] (none)
   */
  purgers?: readonly Purger[];
  /**
   * How purges are timed (with `purgers`): `raceWindow` (ms, default 2000: the second purge
   * that removes pages rendered from data older than a write, and the bound on how long such a
   * page stays at the edge), `lease` (ms, 30000), `retryDelay` (ms, 500, doubled per attempt),
   * `maxRetryDelay` (ms, 60000), `pollInterval` (ms, 5000: how often the shared queue is looked
   * at for purges another process left), `edgeMaxAge` (seconds an edge keeps a page, a year).
   */
  edge?: Partial<PurgeSettings>;
  /**
   * Requests again, in the background, the pages an invalidation drops that visitors hit
   * recently, so that the next visitor gets a hit: `{ base: 'http://127.0.0.1:3000' }`, where
   * this process reaches the site itself (see `RewarmOptions` and docs/operations.md).
   * @default false (off)
   */
  rewarm?: RewarmOptions | false;
}

function fail(name: string, expected: string, got: unknown): never {
  const shown =
    got === null ? 'null' : Array.isArray(got) ? 'an array' : typeof got === 'object' ? 'an object' : `${typeof got} ${String(got)}`;
  throw new TypeError(`page-dumper: option "${name}" must be ${expected}, got ${shown}`);
}

function positiveInt(name: string, value: unknown, allowZero = false): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    fail(name, allowZero ? 'a non-negative integer' : 'a positive integer', value);
  }
}

const KNOWN = new Set<string>([
  'store', 'keyPrefix', 'ignore', 'statuses', 'staticFiles', 'version', 'hosts', 'ignoreQueryParams', 'ignoreCookies', 'sortQuery',
  'maxEntryBytes', 'maxUrlLength', 'maxVariantsPerPath', 'prefixInvalidation', 'bypassCookies',
  'cacheStatusHeader', 'cacheStatus', 'logger', 'warnings', 'coalesceTimeout', 'invalidateOnUnsafe', 'storeCooldown', 'trackRenders', 'compress',
  'purgers', 'edge', 'rewarm',
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VERSION = /^[A-Za-z0-9._:+/@-]{1,100}$/;

/** Environment variables that name the running build on common hosts, in order. */
export const VERSION_VARIABLES: readonly string[] = [
  'PAGE_DUMPER_VERSION',
  'SOURCE_VERSION',
  'HEROKU_SLUG_COMMIT',
  'RENDER_GIT_COMMIT',
  'VERCEL_GIT_COMMIT_SHA',
  'RAILWAY_GIT_COMMIT_SHA',
  'KOYEB_GIT_SHA',
  'CF_PAGES_COMMIT_SHA',
  'K_REVISION',
  'FLY_IMAGE_REF',
  'GIT_COMMIT',
  'COMMIT_SHA',
];

/** The `version` option's default: the running build's id from the environment, if a host set one. */
export function defaultVersion(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of VERSION_VARIABLES) {
    const v = env[name]?.trim();
    if (v) return VERSION.test(v) ? v : createHash('sha256').update(v).digest('base64url').slice(0, 22);
  }
  return undefined;
}

/** Validates options once, at creation; every message names the option and what was wrong. */
export function validateOptions(options: unknown): asserts options is DumperOptions {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError('page-dumper: createDumper() options must be an object');
  }
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k)) throw new TypeError(`page-dumper: unknown option "${k}"`);
  }
  validateRewarm(o.rewarm);
  if (o.store !== undefined) {
    const s = o.store as Record<string, unknown> | null;
    for (const m of ['sequence', 'get', 'set', 'invalidate', 'clear']) {
      if (!s || typeof s[m] !== 'function') fail('store', `a Store (missing method "${m}")`, o.store);
    }
  }
  if (o.keyPrefix !== undefined && typeof o.keyPrefix !== 'string') fail('keyPrefix', 'a string', o.keyPrefix);
  if (o.ignore !== undefined && o.ignore !== null) {
    if (typeof o.ignore === 'string') {
      try {
        new RegExp(o.ignore);
      } catch (cause) {
        throw new TypeError(`page-dumper: option "ignore" is not a valid regular expression: ${(cause as Error).message}`);
      }
    } else if (!(o.ignore instanceof RegExp) && typeof o.ignore !== 'function') {
      fail('ignore', 'a RegExp, a regular-expression string, a function or null', o.ignore);
    }
  }
  if (o.statuses !== undefined) {
    if (!Array.isArray(o.statuses) || o.statuses.length === 0) fail('statuses', 'a non-empty array of status codes', o.statuses);
    for (const s of o.statuses) {
      if (!Number.isInteger(s) || s < 200 || s > 599) fail('statuses', 'status codes between 200 and 599', s);
      if (s === 204 || s === 206 || s === 304) {
        throw new TypeError(`page-dumper: option "statuses" cannot include ${s}: it has no complete body to replay`);
      }
    }
  }
  if (o.staticFiles !== undefined && typeof o.staticFiles !== 'boolean') fail('staticFiles', 'a boolean', o.staticFiles);
  if (o.version !== undefined && o.version !== false) {
    if (typeof o.version !== 'string' || !VERSION.test(o.version)) {
      fail('version', 'a string of up to 100 letters, digits and ._:+/@- (a build id, a commit), or false', o.version);
    }
  }
  if (o.hosts !== undefined) {
    if (!Array.isArray(o.hosts) || o.hosts.some((h) => typeof h !== 'string' || h === '')) {
      fail('hosts', 'an array of host names', o.hosts);
    }
  }
  if (o.ignoreQueryParams !== undefined) {
    if (!Array.isArray(o.ignoreQueryParams) || o.ignoreQueryParams.some((p) => typeof p !== 'string' && !(p instanceof RegExp))) {
      fail('ignoreQueryParams', 'an array of parameter names or RegExps', o.ignoreQueryParams);
    }
  }
  if (o.ignoreCookies !== undefined) {
    if (!Array.isArray(o.ignoreCookies) || o.ignoreCookies.some((p) => (typeof p !== 'string' || p === '') && !(p instanceof RegExp))) {
      fail('ignoreCookies', 'an array of cookie names or RegExps', o.ignoreCookies);
    }
  }
  if (o.sortQuery !== undefined && typeof o.sortQuery !== 'boolean') fail('sortQuery', 'a boolean', o.sortQuery);
  if (o.maxEntryBytes !== undefined) positiveInt('maxEntryBytes', o.maxEntryBytes);
  if (o.maxUrlLength !== undefined) positiveInt('maxUrlLength', o.maxUrlLength);
  if (o.maxVariantsPerPath !== undefined) positiveInt('maxVariantsPerPath', o.maxVariantsPerPath);
  if (o.prefixInvalidation !== undefined && typeof o.prefixInvalidation !== 'boolean') {
    fail('prefixInvalidation', 'a boolean', o.prefixInvalidation);
  }
  if (o.bypassCookies !== undefined) {
    if (!Array.isArray(o.bypassCookies) || o.bypassCookies.some((c) => typeof c !== 'string' || c === '')) {
      fail('bypassCookies', 'an array of cookie names', o.bypassCookies);
    }
  }
  if (o.cacheStatusHeader !== undefined && o.cacheStatusHeader !== false) {
    if (typeof o.cacheStatusHeader !== 'string' || !TOKEN.test(o.cacheStatusHeader)) {
      fail('cacheStatusHeader', 'a header name or false', o.cacheStatusHeader);
    }
  }
  if (o.cacheStatus !== undefined && typeof o.cacheStatus !== 'boolean') {
    // An sf-token (RFC 8941 §3.3.4), as RFC 9211 §2 lets a cache name itself.
    if (typeof o.cacheStatus !== 'string' || !/^[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]{0,99}$/.test(o.cacheStatus)) {
      fail('cacheStatus', 'true, false or a cache name (a token such as "page-dumper" or "web-1.example")', o.cacheStatus);
    }
  }
  if (o.logger !== undefined && o.logger !== false) {
    const l = o.logger as Record<string, unknown> | null;
    if (!l || typeof l !== 'object' || typeof l.debug !== 'function') {
      fail('logger', 'an object with a debug() method (console, pino, winston) or false', o.logger);
    }
  }
  if (o.warnings !== undefined && typeof o.warnings !== 'boolean') {
    const list = o.warnings as unknown;
    const reasons = REFUSAL_REASONS.map((r) => JSON.stringify(r)).join(', ');
    if (!Array.isArray(list)) fail('warnings', `true, false or a list of refusal reasons (${reasons})`, o.warnings);
    const wrong = list.findIndex((r) => !(REFUSAL_REASONS as readonly unknown[]).includes(r));
    if (wrong !== -1) {
      throw new TypeError(`page-dumper: option "warnings" names ${String(JSON.stringify(list[wrong]) ?? list[wrong])}, which is not a refusal reason (${reasons})`);
    }
  }
  if (o.coalesceTimeout !== undefined) positiveInt('coalesceTimeout', o.coalesceTimeout, true);
  if (o.invalidateOnUnsafe !== undefined && typeof o.invalidateOnUnsafe !== 'boolean') {
    fail('invalidateOnUnsafe', 'a boolean', o.invalidateOnUnsafe);
  }
  if (o.storeCooldown !== undefined) positiveInt('storeCooldown', o.storeCooldown);
  if (o.trackRenders !== undefined && typeof o.trackRenders !== 'boolean') fail('trackRenders', 'a boolean', o.trackRenders);
  validateCompress(o.compress, fail);
  if (o.purgers !== undefined) {
    if (!Array.isArray(o.purgers)) fail('purgers', 'an array of purgers', o.purgers);
    o.purgers.forEach((p, i) => validatePurger(p, i));
    const ids = new Set<string>();
    for (const p of o.purgers as Purger[]) {
      if (ids.has(p.id)) throw new TypeError(`page-dumper: option "purgers" lists the edge "${p.id}" twice`);
      ids.add(p.id);
    }
  }
  if (o.edge !== undefined) {
    if (o.edge === null || typeof o.edge !== 'object' || Array.isArray(o.edge)) fail('edge', 'an object', o.edge);
    const e = o.edge as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (!EDGE_KEYS.has(k)) throw new TypeError(`page-dumper: option "edge" has an unknown field "${k}"`);
      positiveInt(`edge.${k}`, e[k]);
    }
  }
}

const EDGE_KEYS = new Set(['raceWindow', 'lease', 'retryDelay', 'maxRetryDelay', 'pollInterval', 'edgeMaxAge']);
