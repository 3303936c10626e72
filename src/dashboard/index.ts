/**
 * page-dumper's dashboard: a node request listener to mount at a path of your choice.
 *
 * ```ts
 * import { dashboardHandler } from 'page-dumper/dashboard';
 * const dashboard = dashboardHandler(dumper, { token: process.env.DASHBOARD_TOKEN! });
 * app.use('/_cache', dashboard); // Express, before dumperMiddleware
 * ```
 *
 * It shows the hit ratio and the requests over time, the store's entries and bytes, the most
 * requested pages, the recent invalidations and what caused them, the store's health, and purges
 * by path, tag, prefix or everything through the dumper's own invalidation methods. It requires
 * the token, answers `Cache-Control: no-store` and a strict Content-Security-Policy, and keeps
 * everything it remembers in fixed-size structures.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { assertDumper, type Dumper, type StoreHealth } from '../core/dumper.js';
import type { DumperStats } from '../core/stats.js';
import type { StoreInfo } from '../core/store.js';
import { dashboardPage, loginPage, SCRIPT, STYLE_HASH } from './assets.js';
import { cookie, Credentials, crossSite, MIN_TOKEN_LENGTH, safeEqual, sameOrigin, SESSION_COOKIE, type Session } from './auth.js';
import { Collector, type InvalidationRecord, type Sample } from './collector.js';

export { MIN_TOKEN_LENGTH, SESSION_COOKIE } from './auth.js';
export type { InvalidationRecord, Sample } from './collector.js';

export interface DashboardOptions {
  /**
   * The secret that opens the dashboard, at least 16 characters (make it random:
   * `openssl rand -base64 32`). Sent as `Authorization: Bearer <token>` by scripts, typed into the
   * login form by people; the session cookie the form sets holds an HMAC keyed by it, never the
   * token, and every session ends when the token changes. Required.
   */
  token: string;
  /**
   * The path the dashboard is mounted at, when the framework hands it the full URL: a bare
   * `http.createServer`, a Fastify route, Koa, Hono (`'/_cache'`). Not needed where the framework
   * strips the mount path and keeps the original in `req.originalUrl` (Express, Connect,
   * `@fastify/middie`); harmless there. Requests outside it are answered 404.
   * @default '' (the handler owns every path it is given)
   */
  basePath?: string;
  /**
   * How often the counters are sampled for the "over time" chart, in milliseconds.
   * @default 10_000
   */
  sampleInterval?: number;
  /**
   * How many samples are kept: with `sampleInterval`, how far back the chart goes.
   * @default 360 (an hour at 10 s)
   */
  samples?: number;
  /**
   * How many pages the "most requested" list shows.
   * @default 20
   */
  topPages?: number;
  /**
   * How many distinct paths are counted at most (the less requested half is dropped when one
   * more comes): the memory the list takes, whatever the number of distinct URLs. A page
   * requested more often than once in `trackedPages / 2` requests is never lost.
   * @default 1000
   */
  trackedPages?: number;
  /**
   * How many invalidations the "recent invalidations" list keeps (each with at most 20 paths or
   * tags shown).
   * @default 50
   */
  recentInvalidations?: number;
  /**
   * How long the store's count of entries and bytes (`store.info()`) is reused, in milliseconds.
   * A shared store counts by scanning (Redis: SCAN over every key), so it is not asked at every
   * refresh of the page; a purge from the dashboard counts again at once.
   * @default 30_000
   */
  storeInfoInterval?: number;
  /**
   * How often the open page asks for new numbers, in milliseconds.
   * @default 5000
   */
  refreshInterval?: number;
  /**
   * How long a login lasts, in milliseconds.
   * @default 43_200_000 (12 hours)
   */
  sessionMaxAge?: number;
  /**
   * Whether the session cookie is `Secure`. `'auto'`: when the request came over TLS, or through
   * a proxy that says `X-Forwarded-Proto: https`.
   * @default 'auto'
   */
  secureCookie?: boolean | 'auto';
  /**
   * The page's title.
   * @default 'page-dumper'
   */
  title?: string;
}

/** The request listener `dashboardHandler()` returns. */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Unsubscribes from the dumper's channels and stops sampling. Requests are answered 503 after it. */
  close(): void;
}

/** What `GET <mount>/api/stats` answers (and what the page shows). */
export interface DashboardData {
  readonly now: number;
  readonly sampleInterval: number;
  readonly totals: DumperStats;
  /** Cumulative counters sampled every `sampleInterval`, oldest first. */
  readonly samples: readonly Sample[];
  readonly store: {
    /** Whether the store can count its entries (`info()`). */
    readonly enumerable: boolean;
    readonly info: StoreInfo | undefined;
    /** When `info` was counted. */
    readonly at: number | undefined;
    /** Why the last count failed. */
    readonly error: string | undefined;
    /**
     * Whether a count is under way that took longer than the page waits (5 s): `info` and `at`
     * are those of the last count that finished, if any.
     */
    readonly counting: boolean;
  };
  readonly health: {
    readonly storeErrors: number;
    /** Store errors in the last minute (or since the oldest sample, when younger). */
    readonly recentStoreErrors: number;
    /** Whether the store failed within the last minute, or the circuit breaker is open now. */
    readonly failing: boolean;
    /** The dumper's own view: circuit breaker, invalidations waiting to be replayed. */
    readonly dumper: StoreHealth;
    readonly purges: Dumper['purgeStats'];
  };
  readonly top: ReadonlyArray<{ readonly path: string; readonly hits: number; readonly misses: number; readonly error: number }>;
  /** Newest first. */
  readonly invalidations: readonly InvalidationRecord[];
}

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src ${STYLE_HASH}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
].join('; ');

/** Sent with every response, whatever its status. */
const SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  // Never stored by page-dumper (a `no-store` render is refused), a proxy or the browser.
  ['cache-control', 'no-store'],
  ['content-security-policy', CSP],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'no-referrer'],
  ['x-frame-options', 'DENY'],
  ['cross-origin-opener-policy', 'same-origin'],
  ['cross-origin-resource-policy', 'same-origin'],
];

/** Request bodies (the login form, a purge) larger than this are refused. */
const MAX_BODY = 64 * 1024;
/** At most this many paths, tags or prefixes per purge. */
const MAX_PURGE_VALUES = 1000;
/** How long a count of the store (`info()`) may take before the page is answered without it. */
const INFO_TIMEOUT = 5000;
/** Characters a cookie's `Path` may hold (RFC 6265 §4.1.1, without `;` and `,`). */
const COOKIE_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+=:@%/]*$/;

function positiveInteger(options: DashboardOptions, name: keyof DashboardOptions, fallback: number, min = 1): number {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`page-dumper: dashboardHandler() option "${name}" must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

function validate(options: DashboardOptions | undefined) {
  if (options === null || typeof options !== 'object' || options.token === undefined) {
    throw new TypeError(`page-dumper: dashboardHandler(dumper, options) needs the option "token" (a secret of at least ${MIN_TOKEN_LENGTH} characters)`);
  }
  if (typeof options.token !== 'string' || options.token.length < MIN_TOKEN_LENGTH) {
    throw new TypeError(`page-dumper: dashboardHandler() option "token" must be a string of at least ${MIN_TOKEN_LENGTH} characters`);
  }
  let basePath = options.basePath ?? '';
  if (typeof basePath !== 'string' || (basePath !== '' && !COOKIE_PATH.test(basePath))) {
    throw new TypeError(`page-dumper: dashboardHandler() option "basePath" must be a path like "/_cache", got ${JSON.stringify(basePath)}`);
  }
  basePath = basePath.replace(/\/+$/, '');
  const secureCookie = options.secureCookie ?? 'auto';
  if (secureCookie !== 'auto' && typeof secureCookie !== 'boolean') {
    throw new TypeError(`page-dumper: dashboardHandler() option "secureCookie" must be true, false or 'auto', got ${String(secureCookie)}`);
  }
  const title = options.title ?? 'page-dumper';
  if (typeof title !== 'string') throw new TypeError('page-dumper: dashboardHandler() option "title" must be a string');
  return {
    token: options.token,
    basePath,
    sampleInterval: positiveInteger(options, 'sampleInterval', 10_000, 100),
    samples: positiveInteger(options, 'samples', 360, 2),
    topPages: positiveInteger(options, 'topPages', 20),
    trackedPages: positiveInteger(options, 'trackedPages', 1000, 2),
    recentInvalidations: positiveInteger(options, 'recentInvalidations', 50),
    storeInfoInterval: positiveInteger(options, 'storeInfoInterval', 30_000, 0),
    refreshInterval: positiveInteger(options, 'refreshInterval', 5000, 500),
    sessionMaxAge: positiveInteger(options, 'sessionMaxAge', 12 * 3600_000, 1000),
    secureCookie,
    title,
  };
}

type Settings = ReturnType<typeof validate>;

/** Where a request falls under the dashboard's mount. */
interface Location {
  /** The mount path ('' at the root): the session cookie's `Path`. */
  readonly mount: string;
  /** The path below it: '/', '/app.js', '/api/stats'... */
  readonly sub: string;
  /** Whether the URL had the slash after the mount (the page's relative links need it). */
  readonly slash: boolean;
  readonly query: string;
}

function splitQuery(url: string): [string, string] {
  const q = url.indexOf('?');
  return q === -1 ? [url, ''] : [url.slice(0, q), url.slice(q)];
}

/**
 * The mount and the sub-path of a request. With `basePath`, from the full URL (the original one
 * where the framework rewrote `req.url`); without, from what the framework stripped: Express and
 * middie keep the full URL in `req.originalUrl` and give the handler the rest in `req.url`.
 */
function locate(req: IncomingMessage, basePath: string): Location | undefined {
  const url = req.url ?? '/';
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  const full = typeof original === 'string' ? original : url;
  const [fullPath, query] = splitQuery(full);
  if (basePath !== '') {
    if (fullPath === basePath) return { mount: basePath, sub: '/', slash: false, query };
    if (!fullPath.startsWith(`${basePath}/`)) return undefined;
    return { mount: basePath, sub: fullPath.slice(basePath.length), slash: true, query };
  }
  const [urlPath] = splitQuery(url);
  if (full === url) return { mount: '', sub: urlPath, slash: true, query };
  if (urlPath !== '/' && fullPath.endsWith(urlPath)) return { mount: fullPath.slice(0, -urlPath.length), sub: urlPath, slash: true, query };
  if (urlPath === '/') {
    return fullPath.endsWith('/') ? { mount: fullPath.slice(0, -1), sub: '/', slash: true, query } : { mount: fullPath, sub: '/', slash: false, query };
  }
  return { mount: '', sub: urlPath, slash: true, query };
}

function send(res: ServerResponse, head: boolean, status: number, type: string, body: string, extra: ReadonlyArray<readonly [string, string]> = []): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = status;
  for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
  for (const [name, value] of extra) res.setHeader(name, value);
  res.setHeader('content-type', type);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, head: boolean, status: number, value: unknown, extra: ReadonlyArray<readonly [string, string]> = []): void {
  send(res, head, status, 'application/json; charset=utf-8', JSON.stringify(value), extra);
}

const UNAUTHORIZED: ReadonlyArray<readonly [string, string]> = [['www-authenticate', 'Bearer realm="page-dumper dashboard"']];

class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The fields of a request body: JSON or a form. A body a framework's parser already read
 * (`req.body`, as Express's `express.json()` or `express.urlencoded()` leave it) is taken as is.
 */
async function readFields(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  if (parsed !== null && typeof parsed === 'object' && !Buffer.isBuffer(parsed)) return parsed as Record<string, unknown>;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new BodyError(413, `a body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (type === 'application/json') {
    try {
      const value: unknown = JSON.parse(text);
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
      return value as Record<string, unknown>;
    } catch {
      throw new BodyError(400, 'the body is not a JSON object');
    }
  }
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(text));
  throw new BodyError(415, 'send application/json or a form');
}

/** The purge asked for: what kind, and the paths, tags or prefixes named. */
function purgeRequest(fields: Record<string, unknown>): { kind: 'path' | 'tag' | 'prefix' | 'all'; values: string[] } {
  const kind = fields.kind;
  if (kind !== 'path' && kind !== 'tag' && kind !== 'prefix' && kind !== 'all') throw new BodyError(400, 'kind must be path, tag, prefix or all');
  const raw = fields.values ?? fields.value;
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(/[\n,]/) : [];
  const values = [...new Set(list.map((v) => (typeof v === 'string' ? v.trim() : '')).filter((v) => v !== ''))];
  if (kind !== 'all' && values.length === 0) throw new BodyError(400, `name at least one ${kind}`);
  if (values.length > MAX_PURGE_VALUES) throw new BodyError(400, `at most ${MAX_PURGE_VALUES} values at once`);
  return { kind, values };
}

/**
 * The dashboard of a dumper, as a node request listener to mount at a path of your choice (see
 * the module's comment and docs/dashboard.md). A missing or weak `token` is a `TypeError`.
 */
export function dashboardHandler(dumper: Dumper, options: DashboardOptions): DashboardHandler {
  assertDumper(dumper, 'dashboardHandler');
  const settings = validate(options);
  return new Dashboard(dumper, settings).handler;
}

class Dashboard {
  readonly handler: DashboardHandler;
  readonly #dumper: Dumper;
  readonly #settings: Settings;
  readonly #credentials: Credentials;
  readonly #collector: Collector;
  #info: { value: StoreInfo | undefined; at: number | undefined; error: string | undefined } = { value: undefined, at: undefined, error: undefined };
  /** The count of the store under way (`info()`), until it settles, however long it takes. */
  #counting: Promise<void> | undefined;
  /** A count that started before this time (a purge) is counted again. */
  #staleBefore = 0;

  constructor(dumper: Dumper, settings: Settings) {
    this.#dumper = dumper;
    this.#settings = settings;
    this.#credentials = new Credentials(settings.token, settings.sessionMaxAge);
    this.#collector = new Collector(dumper, settings);
    const handler = ((req: IncomingMessage, res: ServerResponse) => {
      this.#handle(req, res).catch((error: unknown) => {
        if (error instanceof BodyError) sendJson(res, false, error.status, { error: error.message });
        else sendJson(res, false, 500, { error: 'the dashboard failed to answer' });
      });
    }) as DashboardHandler;
    handler.close = () => this.#collector.close();
    this.handler = handler;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    if (this.#collector.closed) return send(res, head, 503, 'text/plain; charset=utf-8', 'The dashboard is closed.\n');
    const at = locate(req, this.#settings.basePath);
    if (at === undefined) return send(res, head, 404, 'text/plain; charset=utf-8', 'Not found.\n');
    if (at.mount !== '' && !COOKIE_PATH.test(at.mount)) return send(res, head, 400, 'text/plain; charset=utf-8', 'Bad path.\n');
    const read = method === 'GET' || head;
    const route = `${read ? 'GET' : method} ${at.sub}`;
    const bearer = this.#credentials.bearer(one(req.headers.authorization));
    const session = bearer ? undefined : this.#credentials.session(cookie(req, SESSION_COOKIE));
    const authorized = bearer || session !== undefined;
    switch (route) {
      case 'GET /': {
        if (!at.slash) {
          // The page's links are relative (`app.js`, `api/stats`): they need the slash to resolve below the mount.
          return send(res, head, 308, 'text/plain; charset=utf-8', '', [['location', `${at.mount}/${at.query}`]]);
        }
        if (!authorized) return send(res, head, 401, 'text/html; charset=utf-8', loginPage(this.#settings.title, undefined), UNAUTHORIZED);
        // A bearer has no session: its page can read but not purge (a purge needs the CSRF token of a session).
        const csrf = session?.csrf ?? '';
        return send(res, head, 200, 'text/html; charset=utf-8', dashboardPage(this.#settings.title, csrf, this.#settings.refreshInterval));
      }
      case 'GET /app.js':
        if (!authorized) return send(res, head, 401, 'text/plain; charset=utf-8', 'Log in first.\n', UNAUTHORIZED);
        return send(res, head, 200, 'text/javascript; charset=utf-8', SCRIPT);
      case 'GET /api/stats':
        if (!authorized) return sendJson(res, head, 401, { error: 'the token is required' }, UNAUTHORIZED);
        return sendJson(res, head, 200, await this.data());
      case 'POST /login':
        return this.#login(req, res, at);
      case 'POST /logout': {
        if (!this.#csrfOk(req, session, await readFields(req))) return send(res, false, 403, 'text/plain; charset=utf-8', 'Cross-site request refused.\n');
        // The cookie is stateless: clearing it in this browser would leave a copy of it working.
        this.#credentials.end(session!);
        return send(res, false, 303, 'text/plain; charset=utf-8', '', [
          ['location', './'],
          ['set-cookie', this.#cookie(req, at, '', 0)],
        ]);
      }
      case 'POST /api/purge': {
        if (!authorized) return sendJson(res, false, 401, { error: 'the token is required' }, UNAUTHORIZED);
        const fields = await readFields(req);
        if (bearer ? crossSite(req) : !this.#csrfOk(req, session, fields)) return sendJson(res, false, 403, { error: 'cross-site request refused' });
        return this.#purge(res, fields);
      }
      default: {
        const known = ['/', '/app.js', '/api/stats', '/login', '/logout', '/api/purge'];
        if (!known.includes(at.sub)) return send(res, head, 404, 'text/plain; charset=utf-8', 'Not found.\n');
        const allow = ['/login', '/logout', '/api/purge'].includes(at.sub) ? 'POST' : 'GET, HEAD';
        return send(res, head, 405, 'text/plain; charset=utf-8', 'Method not allowed.\n', [['allow', allow]]);
      }
    }
  }

  /**
   * A state-changing request of a session: from the dashboard's own origin, carrying the
   * session's CSRF token (the `X-CSRF-Token` header the page's script sends, or the form's
   * `csrf` field). The cookie is `SameSite=Strict` besides.
   */
  #csrfOk(req: IncomingMessage, session: Session | undefined, fields: Record<string, unknown>): boolean {
    if (session === undefined || !sameOrigin(req)) return false;
    const header = one(req.headers['x-csrf-token']);
    const presented = header ?? (typeof fields.csrf === 'string' ? fields.csrf : undefined);
    return presented !== undefined && safeEqual(presented, session.csrf);
  }

  async #login(req: IncomingMessage, res: ServerResponse, at: Location): Promise<void> {
    const title = this.#settings.title;
    // Login CSRF: a cross-site form must not log the visitor in with someone else's token.
    if (!sameOrigin(req)) return send(res, false, 403, 'text/html; charset=utf-8', loginPage(title, 'Cross-site login refused.'));
    let fields: Record<string, unknown>;
    try {
      fields = await readFields(req);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      return send(res, false, error.status, 'text/html; charset=utf-8', loginPage(title, 'The login form could not be read.'));
    }
    const token = typeof fields.token === 'string' ? fields.token : '';
    if (!this.#credentials.check(token)) return send(res, false, 401, 'text/html; charset=utf-8', loginPage(title, 'Wrong token.'), UNAUTHORIZED);
    return send(res, false, 303, 'text/plain; charset=utf-8', '', [
      ['location', './'],
      ['set-cookie', this.#cookie(req, at, this.#credentials.issue(), Math.floor(this.#settings.sessionMaxAge / 1000))],
    ]);
  }

  #cookie(req: IncomingMessage, at: Location, value: string, maxAge: number): string {
    const setting = this.#settings.secureCookie;
    const secure =
      setting === 'auto' ? (req.socket as TLSSocket).encrypted === true || one(req.headers['x-forwarded-proto'])?.split(',')[0]?.trim().toLowerCase() === 'https' : setting;
    return `${SESSION_COOKIE}=${value}; Path=${at.mount === '' ? '/' : at.mount}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }

  async #purge(res: ServerResponse, fields: Record<string, unknown>): Promise<void> {
    const { kind, values } = purgeRequest(fields);
    const dumper = this.#dumper;
    try {
      await this.#collector.asDashboard(() => {
        switch (kind) {
          case 'path':
            return dumper.invalidate(values);
          case 'tag':
            return dumper.invalidateTags(values);
          case 'prefix':
            return dumper.invalidatePrefix(values);
          case 'all':
            return dumper.invalidateAll();
        }
      });
    } catch (error) {
      // A TypeError from the dumper: a bad tag, prefixes without `prefixInvalidation`.
      if (error instanceof TypeError) return sendJson(res, false, 400, { error: error.message.replace(/^page-dumper: /, '') });
      throw error;
    }
    this.#staleBefore = Date.now();
    this.#collector.sample();
    const what = kind === 'all' ? 'every page' : `${values.length} ${kind === 'prefix' ? 'prefix' : kind}${values.length === 1 ? '' : kind === 'prefix' ? 'es' : 's'}`;
    return sendJson(res, false, 200, { ok: true, kind, values, message: `Purged ${what}.` });
  }

  /**
   * Counts the store again when the last count is older than `storeInfoInterval`, or than the
   * last purge, and waits `INFO_TIMEOUT` at most for it. One count at a time: a count still under
   * way (a SCAN over a large Redis) is waited for again rather than started again, and the page
   * gets the last count meanwhile (`store.counting`).
   */
  async #storeInfo(): Promise<void> {
    const store = this.#dumper.store;
    if (typeof store.info !== 'function') return;
    const last = this.#info.at;
    if (this.#counting === undefined && last !== undefined && last > this.#staleBefore && Date.now() - last < this.#settings.storeInfoInterval) return;
    let counting = this.#counting;
    if (counting === undefined) {
      // Forgotten once settled (in a callback, so never before it is set, even for a count that throws at once).
      const started: Promise<void> = this.#count(store as Required<Pick<typeof store, 'info'>>).finally(() => {
        if (this.#counting === started) this.#counting = undefined;
      });
      counting = this.#counting = started;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, INFO_TIMEOUT);
    });
    try {
      await Promise.race([counting, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #count(store: Required<Pick<Dumper['store'], 'info'>>): Promise<void> {
    const started = Date.now();
    try {
      const value = await store.info();
      // The time the count started: a purge after it is not in it.
      this.#info = { value, at: started, error: undefined };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#info = { value: undefined, at: undefined, error: message.slice(0, 300) };
    }
  }

  /** What the page shows. */
  async data(): Promise<DashboardData> {
    await this.#storeInfo();
    const totals = this.#dumper.stats();
    const samples = this.#collector.samples.toArray();
    const now = Date.now();
    const minuteAgo = samples.find((s) => now - s.t <= 60_000) ?? samples[samples.length - 1];
    const recentStoreErrors = minuteAgo === undefined ? 0 : totals.storeErrors - minuteAgo.storeErrors;
    return {
      now,
      sampleInterval: this.#settings.sampleInterval,
      totals,
      samples,
      store: {
        enumerable: typeof this.#dumper.store.info === 'function',
        info: this.#info.value,
        at: this.#info.at,
        error: this.#info.error,
        counting: this.#counting !== undefined,
      },
      health: {
        storeErrors: totals.storeErrors,
        recentStoreErrors,
        failing: recentStoreErrors > 0 || this.#dumper.storeHealth.circuit === 'open',
        dumper: this.#dumper.storeHealth,
        purges: this.#dumper.purgeStats,
      },
      top: this.#collector.pages.top(this.#settings.topPages).map((c) => ({ path: c.key, hits: c.hits, misses: c.misses, error: c.error })),
      invalidations: this.#collector.invalidations.toArray().reverse(),
    };
  }
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
