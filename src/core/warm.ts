/**
 * Warming: requesting pages before visitors do, so that the site renders and stores them through
 * the normal fill protocol (a page rendered while its data changed is not stored, as for any
 * visitor). `warm()` only makes requests; what is stored is the site's dumper's decision.
 */
import http from 'node:http';
import https from 'node:https';

export interface WarmOptions {
  /**
   * Requests in flight at once. Keep it below what the site renders comfortably: every miss is a
   * render.
   * @default 4
   */
  concurrency?: number;
  /** The fetch to use (one that reaches an app in process, say). Not with `base`. @default globalThis.fetch */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /**
   * Where the site runs, when the URLs are its public ones (`http://127.0.0.1:3000` for
   * `https://shop.example/...`): each URL is requested on this origin, its path and query kept,
   * with the headers a proxy in front of the site would send for it (`Host: shop.example`, see
   * `forwarded`), so that the page is stored under the key visitors of the public URL get.
   * Requests go through `node:http`/`node:https` (fetch cannot send a `Host` of its own).
   * @default none: each URL is requested as it is, with `fetch`
   */
  base?: string | URL;
  /**
   * With `base`: which forwarded headers the site's proxy adds, besides passing the public
   * `Host` on. They are part of the dumper's keys, so they must be those visitors' requests
   * carry: `'none'`, `'proto'` (`X-Forwarded-Proto`: nginx's usual `proxy_set_header
   * X-Forwarded-Proto $scheme`, load balancers, Heroku), `'all'` (`X-Forwarded-Proto` and
   * `X-Forwarded-Host`: Caddy, Traefik). A `host` in `headers` replaces the public one (a proxy
   * that sends its upstream's address as `Host`).
   * @default 'proto' for an https URL on an http base (a proxy terminated TLS), 'none' otherwise
   */
  forwarded?: Forwarded;
  /**
   * Headers sent with every request. Requests the dumper bypasses store nothing: no
   * `Authorization`, no cookies that `bypassCookies` names.
   */
  headers?: Record<string, string>;
  /** Stops warming: no request is started after it fires, those in flight are aborted, and `warm()` rejects with its reason. */
  signal?: AbortSignal;
  /**
   * Milliseconds one request may take, its body included, before it counts as an error.
   * @default 30000
   */
  timeout?: number;
  /**
   * The response header that says HIT, MISS or BYPASS (the dumper's `cacheStatusHeader`).
   * @default 'x-cache'
   */
  cacheHeader?: string;
  /**
   * The `Cache-Status` member (RFC 9211) read when a response has no `cacheHeader`: the name the
   * dumper's option `cacheStatus` gives. `hit` counts as HIT (a `collapsed` miss too, as the
   * dumper counts it), `fwd=bypass` and `fwd=method` as BYPASS, another `fwd` as MISS.
   * @default the last member: the cache nearest to `warm()`, the site's dumper when the site is requested directly
   */
  cacheStatus?: string;
}

/** Which forwarded headers a proxy in front of the site adds (see `WarmOptions.forwarded`). */
export type Forwarded = 'none' | 'proto' | 'all';

const FORWARDED: readonly Forwarded[] = ['none', 'proto', 'all'];

/**
 * The headers that make a request on `base` the one a visitor of `url` sends through the site's
 * proxy: the public `Host`, and the forwarded headers `forwarded` names. The dumper keys a page
 * by Host and, when they are present, `X-Forwarded-Proto` and `X-Forwarded-Host`.
 */
export function visitorHeaders(url: URL, base: URL, forwarded: Forwarded | undefined): Record<string, string> {
  const mode = forwarded ?? (url.protocol === 'https:' && base.protocol === 'http:' ? 'proto' : 'none');
  const headers: Record<string, string> = { host: url.host };
  if (mode !== 'none') headers['x-forwarded-proto'] = url.protocol.slice(0, -1);
  if (mode === 'all') headers['x-forwarded-host'] = url.host;
  return headers;
}

/**
 * GET `url`'s path and query on `base`'s origin with `headers` (a `host` among them is sent as
 * it is); resolves with the response, its body unread.
 */
export function getOnBase(base: URL, url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<http.IncomingMessage> {
  const client = base.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      { protocol: base.protocol, hostname: base.hostname.replace(/^\[|\]$/g, ''), port: base.port, method: 'GET', path: url.pathname + url.search, headers, signal },
      resolve,
    );
    req.on('error', reject);
    req.end();
  });
}

/** Lower-cased header names: a header given twice in two spellings is sent once. */
function lowerNames(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  return out;
}

/** What one URL gave. */
export interface WarmResult {
  readonly url: string;
  /** The HTTP status, when a response came. */
  readonly status?: number;
  /** The cache header's value (`HIT`, `MISS`, `BYPASS`), when the response had one. */
  readonly cache?: string;
  /** Why it counts as an error: the request failed, or the status was 400 or more. */
  readonly error?: string;
}

export interface WarmReport {
  /** URLs requested. */
  readonly total: number;
  /** Responses that said HIT: the page was stored already. */
  readonly hit: number;
  /** Responses that said MISS: rendered now, and stored unless the dumper refused it. */
  readonly miss: number;
  /** Responses that said BYPASS: the dumper does not cache that request. */
  readonly bypass: number;
  /** Responses without the header, or another value (a page the dumper never saw). */
  readonly other: number;
  /** Requests that failed, and responses with a status of 400 or more. */
  readonly errors: number;
  /** One per URL, in the order given. */
  readonly results: readonly WarmResult[];
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`page-dumper: warm() option "${name}" must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Requests every URL with GET, `concurrency` at a time, reading each body whole (a response the
 * client abandons is not stored), and counts what the cache header said. Redirects are not
 * followed: a redirect is a page of its own. Never rejects for a page that fails (it is counted in
 * `errors`), only for bad arguments and for `signal`.
 */
export async function warm(urls: Iterable<string | URL>, options: WarmOptions = {}): Promise<WarmReport> {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: warm() options must be an object');
  const concurrency = positiveInteger('concurrency', options.concurrency ?? 4);
  const timeout = positiveInteger('timeout', options.timeout ?? 30_000);
  const doFetch = options.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new TypeError('page-dumper: warm() option "fetch" must be a function');
  let base: URL | undefined;
  if (options.base !== undefined) {
    if (options.fetch !== undefined) throw new TypeError('page-dumper: warm() options "base" and "fetch" do not go together: with a base, requests go through node:http');
    try {
      base = new URL(String(options.base));
    } catch {
      // Below.
    }
    if (base === undefined || (base.protocol !== 'http:' && base.protocol !== 'https:')) {
      throw new TypeError(`page-dumper: warm() option "base" must be an http(s) URL, got ${JSON.stringify(String(options.base))}`);
    }
  }
  const forwarded = options.forwarded;
  if (forwarded !== undefined && !FORWARDED.includes(forwarded)) {
    throw new TypeError(`page-dumper: warm() option "forwarded" must be 'none', 'proto' or 'all', got ${JSON.stringify(forwarded)}`);
  }
  const cacheHeader = options.cacheHeader ?? 'x-cache';
  if (typeof cacheHeader !== 'string' || cacheHeader === '') throw new TypeError('page-dumper: warm() option "cacheHeader" must be a header name');
  const cacheStatus = options.cacheStatus;
  if (cacheStatus !== undefined && (typeof cacheStatus !== 'string' || cacheStatus === '')) {
    throw new TypeError('page-dumper: warm() option "cacheStatus" must be a Cache-Status member name');
  }
  const list: string[] = [];
  for (const u of urls) {
    let parsed: URL;
    try {
      parsed = new URL(String(u));
    } catch {
      throw new TypeError(`page-dumper: warm() takes absolute http(s) URLs, got ${JSON.stringify(String(u))}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`page-dumper: warm() takes absolute http(s) URLs, got ${JSON.stringify(String(u))}`);
    }
    list.push(parsed.href);
  }
  const { signal } = options;
  signal?.throwIfAborted();
  const headers = lowerNames(options.headers);

  const results: WarmResult[] = new Array(list.length);
  let next = 0;
  const one = async (url: string): Promise<WarmResult> => {
    const timer = AbortSignal.timeout(timeout);
    const signals = [timer];
    if (signal !== undefined) signals.push(signal);
    try {
      let status: number;
      let header: (name: string) => string | undefined;
      if (base === undefined) {
        const res = await doFetch(url, { method: 'GET', headers, redirect: 'manual', signal: AbortSignal.any(signals) });
        // Read to the end: the dumper stores a page once its response is complete.
        await res.arrayBuffer();
        status = res.status;
        header = (name) => res.headers.get(name) ?? undefined;
      } else {
        const target = new URL(url);
        const res = await getOnBase(base, target, { ...visitorHeaders(target, base, forwarded), ...headers }, AbortSignal.any(signals));
        for await (const _ of res);
        status = res.statusCode ?? 0;
        header = (name) => {
          const v = res.headers[name.toLowerCase()];
          return Array.isArray(v) ? v.join(', ') : v;
        };
      }
      const cache = header(cacheHeader)?.trim().split(/[\s,;]/)[0]?.toUpperCase() || fromCacheStatus(header('cache-status') ?? null, cacheStatus);
      const result: WarmResult = { url, status, ...(cache !== undefined && { cache }) };
      return status >= 400 ? { ...result, error: `HTTP ${status}` } : result;
    } catch (error) {
      signal?.throwIfAborted();
      if (timer.aborted) return { url, error: `no answer within ${timeout} ms` };
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      const message = error instanceof Error ? error.message : String(error);
      return { url, error: cause ? `${message}: ${cause}` : message };
    }
  };
  const worker = async () => {
    while (next < list.length) {
      signal?.throwIfAborted();
      const i = next++;
      results[i] = await one(list[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));

  let hit = 0;
  let miss = 0;
  let bypass = 0;
  let other = 0;
  let errors = 0;
  for (const r of results) {
    if (r.error !== undefined) errors++;
    else if (r.cache === 'HIT') hit++;
    else if (r.cache === 'MISS') miss++;
    else if (r.cache === 'BYPASS') bypass++;
    else other++;
  }
  return { total: list.length, hit, miss, bypass, other, errors, results };
}

/**
 * HIT, MISS or BYPASS from a `Cache-Status` field (RFC 9211 §2): the member named `name`, or the
 * last one. `undefined` when there is none.
 */
function fromCacheStatus(field: string | null, name: string | undefined): string | undefined {
  if (field === null) return undefined;
  // Members are separated by commas outside quoted strings (a `detail` may be one).
  const members: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      members.push(field.slice(start, i));
      start = i + 1;
    }
  }
  members.push(field.slice(start));
  const unquote = (v: string) => (v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v);
  let member: string[] | undefined;
  for (const m of members) {
    const parts = m.split(';').map((p) => p.trim());
    if (name === undefined || unquote(parts[0]!) === name) member = parts;
  }
  if (member === undefined) return undefined;
  const params = new Map<string, string>();
  for (const p of member.slice(1)) {
    const eq = p.indexOf('=');
    if (eq === -1) params.set(p.toLowerCase(), '');
    else params.set(p.slice(0, eq).trim().toLowerCase(), unquote(p.slice(eq + 1).trim()).toLowerCase());
  }
  if (params.has('hit')) return 'HIT';
  const fwd = params.get('fwd');
  if (fwd === undefined) return undefined;
  if (fwd === 'bypass' || fwd === 'method') return 'BYPASS';
  // A request that waited for a concurrent render: a hit for the dumper (and its X-Cache).
  return params.has('collapsed') ? 'HIT' : 'MISS';
}

/** A sitemap's kind and the URLs its `<loc>` elements name, in order. */
export interface Sitemap {
  /** `urlset`: pages; `sitemapindex`: other sitemaps. */
  readonly kind: 'urlset' | 'sitemapindex';
  readonly locs: readonly string[];
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function xmlText(s: string): string {
  const cdata = /^\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(s);
  if (cdata) return cdata[1]!.trim();
  return s.trim().replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return XML_ENTITIES[name] ?? whole;
  });
}

/**
 * Reads a sitemap (sitemaps.org protocol 0.9): a `<urlset>` of `<url><loc>` or a
 * `<sitemapindex>` of `<sitemap><loc>`. Only `<loc>` elements of the sitemap namespace (no
 * prefix) count: the `<image:loc>` of extensions are not pages. Throws a `TypeError` for a
 * document that is neither.
 */
export function parseSitemap(xml: string): Sitemap {
  // One pass with indexOf from the current position: a lazy regex would scan to the end again
  // for every unclosed `<loc>` or `<!--`, quadratic in a hostile 50 MiB sitemap.
  const text = withoutComments(xml);
  const root = /<(urlset|sitemapindex)[\s>/]/.exec(text);
  if (root === null) throw new TypeError('page-dumper: not a sitemap: no <urlset> or <sitemapindex> element');
  const locs: string[] = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf('<loc', at);
    if (open === -1) break;
    const after = text.charCodeAt(open + 4);
    // `<loc>` or `<loc attr...>`, not `<locale>`.
    if (after !== 62 /* > */ && !isXmlSpace(after)) {
      at = open + 4;
      continue;
    }
    const start = text.indexOf('>', open + 4) + 1;
    if (start === 0) break;
    const end = closingLoc(text, start);
    // No `</loc>` after this one: none after any later `<loc>` either.
    if (end === undefined) break;
    const loc = xmlText(text.slice(start, end.at));
    if (loc !== '') locs.push(loc);
    at = end.next;
  }
  return { kind: root[1] as Sitemap['kind'], locs };
}

function isXmlSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/** `xml` without its comments; an unclosed `<!--` comments out the rest. */
function withoutComments(xml: string): string {
  let open = xml.indexOf('<!--');
  if (open === -1) return xml;
  let out = '';
  let at = 0;
  while (open !== -1) {
    out += xml.slice(at, open);
    const close = xml.indexOf('-->', open + 4);
    if (close === -1) return out;
    at = close + 3;
    open = xml.indexOf('<!--', at);
  }
  return out + xml.slice(at);
}

/** The first `</loc\s*>` from `from`: where it starts and where the text after it starts. */
function closingLoc(text: string, from: number): { at: number; next: number } | undefined {
  let at = text.indexOf('</loc', from);
  while (at !== -1) {
    let i = at + 5;
    while (isXmlSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 62 /* > */) return { at, next: i + 1 };
    at = text.indexOf('</loc', at + 5);
  }
  return undefined;
}
