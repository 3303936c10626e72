/**
 * The node:http engine shared by `page-dumper/node`, `page-dumper/koa` and `page-dumper/fastify`:
 * it answers hits on the raw `ServerResponse` and tees what the app writes on a miss.
 */
import { ReadStream } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { appendCacheStatus, isBypass, type Dumper, type Fill, type MissPlan } from '../../core/dumper.js';
import { codingOf } from '../../core/encoding.js';
import { flatGet } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';


/** What an adapter hands `handle()` for one request. */
export interface Handled {
  readonly dumper: Dumper;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The request target the key is made from: `req.originalUrl` under Express, else `req.url`. */
  readonly target: string;
  /** Runs the app (the listener, or the next middleware): anything but a hit goes there. */
  readonly app: () => void;
  /**
   * Headers may already be set on `res` (middleware mounted before the dumper), so a hit's
   * stored headers are merged into them rather than written as a list. Default false.
   */
  readonly merge?: boolean;
  /** Called once a hit has been written. */
  readonly served?: (() => void) | undefined;
}

/**
 * One request through the engine, made once by `handle()` and handed along. Every field is set
 * in the constructor, so every exchange has the same shape (one hidden class on the hit path).
 */
class Exchange {
  readonly dumper: Dumper;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly target: string;
  readonly app: () => void;
  readonly merge: boolean;
  readonly served: (() => void) | undefined;
  /** The method as the request came in (a miss that fills renders a HEAD as a GET). */
  readonly method: string;
  /** The store key, once the request turned out cacheable. */
  key = '';

  constructor(h: Handled) {
    this.dumper = h.dumper;
    this.req = h.req;
    this.res = h.res;
    this.target = h.target;
    this.app = h.app;
    this.merge = h.merge === true;
    this.served = h.served;
    this.method = h.req.method ?? 'GET';
  }
}

/**
 * Serves one request: a hit is written to `res` (then `served()` is called), anything else goes
 * to `app()`, with the response captured when it may be stored.
 */
export function handle(h: Handled): void {
  const x = new Exchange(h);
  const { dumper, res, method, target } = x;
  if (dumper.edgePurging && (method === 'GET' || method === 'HEAD')) edgeDefault(dumper, res, method);
  const key = dumper.keyFor(method, target, x.req.headers);
  if (isBypass(key)) {
    if (dumper.log.debugEnabled) dumper.logDecision('skipped getting', { method, path: target, key: '', reason: key.bypass });
    if (dumper.cacheStatusHeader !== undefined) res.setHeader(dumper.cacheStatusHeader, 'BYPASS');
    if (dumper.cacheStatus !== undefined) cacheStatusAtHead(dumper, res, dumper.cacheStatus.bypass[key.bypass]);
    if (key.bypass === 'method') watchUnsafe(x);
    const app = x.app;
    app();
    return;
  }
  x.key = key;
  const found = dumper.get(key, x.req.headers);
  if (isPromise(found)) {
    found
      .then(
        (entry) => {
          if (res.headersSent || isGone(res)) return; // answered or gone while we waited
          if (entry !== undefined) hit(x, entry, 'store');
          else miss(x);
        },
        () => miss(x),
      )
      .catch((error: unknown) => missFailed(x, error));
  } else if (found !== undefined) {
    hit(x, found, 'store');
  } else {
    miss(x);
  }
}

/**
 * Writes a stored entry. `from`: `'store'` when the store had it; `'render'` when it is the
 * entry a concurrent render of the same page just made (`MissPlan` `entry`), which is written as
 * a list whatever `merge` says.
 */
function hit(x: Exchange, entry: StoredEntry, from: 'store' | 'render'): void {
  const { dumper, res } = x;
  if (dumper.log.debugEnabled) dumper.logDecision('found', { method: x.method, path: x.target, key: x.key });
  const r = dumper.reply(entry, x.method, x.req.headers, from === 'render');
  if (from === 'store' && x.merge && r.status !== 304) {
    // Middleware: headers are already set on the response (Express's X-Powered-By, say), so
    // Node merges whatever writeHead() gets; it merges an object at half the cost of a list.
    res.setHeader('age', r.age);
    res.writeHead(r.status, headerObject(r.headers));
  } else {
    const head = r.headers.slice();
    head.push('age', r.age);
    res.writeHead(r.status, head);
  }
  if (r.body === undefined) res.end();
  else res.end(r.body);
  const served = x.served;
  served?.();
}

const headerObjects = new WeakMap<readonly string[], OutgoingHttpHeaders>();

/** A reply's headers (`Reply.headers`) as an object (repeated names become arrays), made once per list. */
export function headerObject(list: readonly string[]): OutgoingHttpHeaders {
  let o = headerObjects.get(list);
  if (o === undefined) {
    o = {};
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      const prev = o[name];
      o[name] = prev === undefined ? list[i + 1]! : Array.isArray(prev) ? [...prev, list[i + 1]!] : [String(prev), list[i + 1]!];
    }
    headerObjects.set(list, o);
  }
  return o;
}

function miss(x: Exchange): void {
  const dumper = x.dumper;
  if (dumper.log.debugEnabled) dumper.logDecision("didn't find", { method: x.method, path: x.target, key: x.key });
  let plan: MissPlan | Promise<MissPlan>;
  try {
    plan = dumper.beginFill(x.key, x.method, x.req.headers);
  } catch (error) {
    return missFailed(x, error);
  }
  if (isPromise(plan)) {
    plan.then((p) => onPlan(x, p)).catch((e: unknown) => missFailed(x, e));
  } else onPlan(x, plan);
}

function onPlan(x: Exchange, plan: MissPlan): void {
  const { dumper, req, res, app } = x;
  if (res.headersSent || isGone(res)) {
    // Answered by someone else, or the client left, while the store or a concurrent render was
    // awaited: 'close' has fired already, so a fill would never end.
    if (plan.kind === 'fill') plan.fill.abandon('response closed before the app ran');
    return;
  }
  if (plan.kind === 'entry') return hit(x, plan.entry, 'render');
  const status = dumper.cacheStatusHeader;
  const cacheStatus = dumper.cacheStatus;
  // `stored` is set when the response head turns out storable (Capture.onHead).
  const member = cacheStatus === undefined ? undefined : cacheStatusAtHead(dumper, res, cacheStatus.miss);
  if (status !== undefined) res.setHeader(status, 'MISS');
  else if (plan.kind === 'fill') {
    // capture() relies on Node merging writeHead()'s headers into those set with setHeader(),
    // which it does once setHeader() has been called on the response.
    res.setHeader('x-page-dumper', '');
    res.removeHeader('x-page-dumper');
  }
  if (plan.kind === 'pass') {
    if (dumper.log.debugEnabled) dumper.logDecision('not saving', { method: x.method, path: x.target, key: x.key, reason: plan.reason });
    return runApp(app);
  }
  const fill = plan.fill;
  if (isQueued(req, res)) {
    // Behind a pipelined response that has not ended, this one's writes wait for it, however
    // long that is: a fill here would hold up every visitor coalesced on it.
    fill.abandon('response queued behind a pipelined one');
    return runApp(app);
  }
  if (!prepareRequest(req, fill, { target: x.target })) {
    fill.abandon('the request could not be given the URL of its key (a mount path that normalizing changed)');
    return runApp(app);
  }
  capture(x, fill, member);
  fill.run(runApp, app);
}

function missFailed(x: Exchange, error: unknown): void {
  x.dumper.log.error('unexpected error while handling a miss', { error: error as Error, key: x.key });
  if (!x.res.headersSent) runApp(x.app);
}

/** Runs the app outside our promise chain, so its synchronous errors surface as they would without us. */
function runApp(app: () => void): void {
  try {
    app();
  } catch (error) {
    process.nextTick(() => {
      throw error;
    });
  }
}

/** How `prepareRequest()` prepares a request. */
export interface Preparing {
  /**
   * The target given to `keyFor`: `req.originalUrl` under Express, of which `req.url` may be the
   * part below a mount path.
   */
  readonly target: string;
  /**
   * Render a HEAD as a GET. Default true; false where HEAD is answered otherwise (Fastify runs
   * the GET route for it; the fetch adapter hands the app a GET request of its own).
   */
  readonly headAsGet?: boolean;
}

/**
 * On a miss that may be stored, gives the app the request its key describes (`fill.view`), so
 * that nothing the key leaves out can reach the stored page: the normalized target (no fragment,
 * no userinfo, no ignored parameters, percent-encoding as in the key), the lower-case `Host` and
 * forwarded headers of the key, and the cookies without ignored ones, with every read of them
 * reported to the fill. Also drops the validators, so the app renders the full page rather than a
 * 304 we could not store (RFC 9111 §4.3.2 lets a cache send its own unconditional request), and
 * renders a HEAD as a GET, so it fills the GET entry (Node still sends no body: the response was
 * made for a HEAD request). Returns false when the target cannot be given (normalizing changed
 * the mount path itself).
 */
export function prepareRequest(req: IncomingMessage, fill: Fill, how: Preparing): boolean {
  const target = how.target;
  if (how.headAsGet !== false && req.method === 'HEAD') req.method = 'GET';
  const h = req.headers;
  // Delete only what is there: a delete turns the headers object into a slow dictionary.
  if (h['if-none-match'] !== undefined) delete h['if-none-match'];
  if (h['if-modified-since'] !== undefined) delete h['if-modified-since'];
  const view = fill.view;
  if (target !== view.target) {
    const r = req as IncomingMessage & { originalUrl?: string; baseUrl?: string; query?: unknown; app?: { get?(name: string): unknown } };
    const url = r.url ?? target;
    let next = view.target;
    if (url !== target) {
      // Mounted (`app.use('/blog', ...)`): req.url is what follows the mount path.
      const mount = mountPath(target, url, r.baseUrl);
      if (mount === undefined || !view.target.startsWith(mount)) return false;
      next = view.target.slice(mount.length);
      if (next.charCodeAt(0) !== 47 /* / */) next = '/' + next;
    }
    r.url = next;
    if (r.originalUrl !== undefined) r.originalUrl = view.target;
    // Express 4 parsed req.query before any middleware ran; Express 5 parses it from req.url.
    if (Object.hasOwn(r, 'query')) {
      const parse = r.app?.get?.('query parser fn');
      if (typeof parse === 'function') {
        const q = view.target.indexOf('?');
        r.query = parse(q === -1 ? '' : view.target.slice(q + 1));
      }
    }
  }
  setHeader(h, 'host', view.host);
  if (h[':authority'] !== undefined) setHeader(h, ':authority', view.host);
  setHeader(h, 'x-forwarded-proto', view.forwardedProto);
  setHeader(h, 'x-forwarded-host', view.forwardedHost);
  trackCookies(req, fill);
  return true;
}

/**
 * The path a router was mounted at, from the full target and the part below it: Express says it
 * (`req.baseUrl`); Connect leaves the part below, which is `/` (`/?q` for `/blog?q`) when the
 * target is the mount path itself.
 */
function mountPath(target: string, url: string, baseUrl: string | undefined): string | undefined {
  if (typeof baseUrl === 'string') return baseUrl;
  if (target.endsWith(url)) return target.slice(0, target.length - url.length);
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return url === '/' + target.slice(path.length) ? path : undefined;
}

function setHeader(h: IncomingMessage['headers'], name: string, value: string | undefined): void {
  if (h[name] === value) return;
  if (value === undefined) delete h[name];
  else h[name] = value;
}

/**
 * Gives the app the request's cookies without ignored ones, and reports every look at them to the
 * fill: `req.headers` becomes a proxy that tells of every read of `cookie` (cookie-parser,
 * cookie-session, express-session, koa-session, Koa's `ctx.cookies`, `req.get('cookie')`) and of
 * every walk through all the headers (`{...req.headers}`, `Object.keys`), and so does any use of
 * `req.rawHeaders` (rebuilt to say what `req.headers` says) and of what Node derives from it
 * (`req.headersDistinct`). A walk counts even when there is no cookie: a page that copied the
 * headers and found none is the anonymous page. Cookies or a session that middleware mounted
 * before the dumper parsed already may have shaped the page unseen: that counts as a read too.
 */
function trackCookies(req: IncomingMessage, fill: Fill): void {
  const r = req as IncomingMessage & { cookies?: unknown; signedCookies?: unknown; session?: unknown };
  if (r.cookies != null || r.signedCookies != null || r.session != null) fill.readCookies();
  const headers = req.headers;
  setHeader(headers, 'cookie', fill.view.cookie);
  if ((req as { stream?: unknown }).stream !== undefined) return watchHttp2Cookie(headers, fill);
  const raw: string[] = [];
  const given = req.rawHeaders;
  for (let i = 0; i + 1 < given.length; i += 2) {
    const name = given[i]!.toLowerCase();
    if (name === 'cookie' || name === 'host' || name === 'x-forwarded-host' || name === 'x-forwarded-proto' || name === 'if-none-match' || name === 'if-modified-since') continue;
    raw.push(given[i]!, given[i + 1]!);
  }
  for (const name of ['host', 'x-forwarded-proto', 'x-forwarded-host', 'cookie']) {
    const value = headers[name];
    if (typeof value === 'string') raw.push(name, value);
  }
  const read = () => fill.readCookies();
  req.rawHeaders = new Proxy(raw, {
    get(target, key, receiver) {
      read();
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  req.headers = new Proxy(headers, {
    get(target, key, receiver) {
      if (key === 'cookie') read();
      return Reflect.get(target, key, receiver) as unknown;
    },
    has(target, key) {
      if (key === 'cookie') read();
      return Reflect.has(target, key);
    },
    getOwnPropertyDescriptor(target, key) {
      if (key === 'cookie') read();
      return Reflect.getOwnPropertyDescriptor(target, key);
    },
    ownKeys(target) {
      read();
      return Reflect.ownKeys(target);
    },
  });
}

/**
 * An HTTP/2 compatibility request's `headers` and `rawHeaders` cannot be replaced: a getter on its
 * `cookie` reports the reads of it (absent, it is not listed, so a walk of the headers of a
 * request without cookies is not seen there).
 */
function watchHttp2Cookie(headers: IncomingMessage['headers'], fill: Fill): void {
  let value = headers.cookie;
  Object.defineProperty(headers, 'cookie', {
    configurable: true,
    enumerable: value !== undefined,
    get() {
      fill.readCookies();
      return value;
    },
    set(v: string | undefined) {
      value = v;
    },
  });
}

/**
 * Whether a response waits behind an earlier one on its connection that the app has not ended
 * (HTTP/1.1 pipelining): Node gives it the socket only when the earlier one has finished. One
 * that has ended and is only being flushed (a keep-alive client that sent its next request as the
 * last byte arrived) is not waited on for long. HTTP/2 streams never wait so.
 */
export function isQueued(req: IncomingMessage, res: ServerResponse): boolean {
  if (res.socket !== null || (res as { stream?: unknown }).stream !== undefined) return false;
  // The response that holds the connection now (Node's own field for it).
  const holder = (req.socket as { _httpMessage?: { writableEnded?: boolean } | null } | null)?._httpMessage;
  return holder?.writableEnded !== true;
}

/**
 * Whether the client has gone (its response was destroyed). An HTTP/2 compatibility response has
 * no `destroyed` of its own: its stream has.
 */
export function isGone(res: ServerResponse): boolean {
  return res.destroyed || (res as { stream?: { destroyed?: boolean } }).stream?.destroyed === true;
}

/** An unsafe request whose response `watchUnsafe()` waits for. */
export interface Unsafe {
  readonly dumper: Dumper;
  readonly res: ServerResponse;
  readonly method: string;
  readonly target: string;
  /**
   * Where the response's headers are read: a framework's reply that keeps them until it writes
   * the head. Default: `res` itself.
   */
  readonly headers?: { getHeader(name: string): unknown };
}

/**
 * After an unsafe request's response, invalidates its target and the paths its `Location` and
 * `Content-Location` name (`invalidateOnUnsafe`).
 */
export function watchUnsafe(u: Unsafe): void {
  const { dumper, res, method, target } = u;
  const headers = u.headers ?? res;
  if (method === 'OPTIONS' || method === 'TRACE') return;
  // 'close', not 'finish': a client that leaves while the response is being sent does not stop
  // the invalidation. One that leaves before the app answers is not seen (nothing was sent).
  res.once('close', () => {
    if (!res.headersSent) return;
    const loc = headers.getHeader('location');
    const cloc = headers.getHeader('content-location');
    const h = (res.req as IncomingMessage | undefined)?.headers;
    const forwarded = h?.['x-forwarded-host'];
    dumper.afterUnsafe({
      method,
      target,
      host: h === undefined ? undefined : (h.host ?? (h[':authority'] as string | undefined)),
      forwardedHost: typeof forwarded === 'string' ? forwarded : undefined,
      status: res.statusCode,
      location: typeof loc === 'string' ? loc : undefined,
      contentLocation: typeof cloc === 'string' ? cloc : undefined,
    });
  });
}

/** Flattens `getHeaders()` to a lower-case `[name, value, ...]` list, leaving out `skip`ped values. */
export function flatten(headers: OutgoingHttpHeaders, skip: OutgoingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    // Headers set before the app ran (by middleware mounted before the dumper) are set again on
    // every request: storing them would replay one request's values (a request id) to everyone.
    if (skip[name] !== undefined && String(skip[name]) === String(value)) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}

/** Appends headers in any shape `writeHead` accepts to a flat lower-case list. */
function pushHeaders(out: string[], headers: unknown): void {
  if (headers === undefined || headers === null || typeof headers !== 'object') return;
  if (Array.isArray(headers)) {
    if (headers.length !== 0 && Array.isArray(headers[0])) {
      for (const pair of headers as Array<[string, unknown]>) pushValue(out, String(pair[0]).toLowerCase(), pair[1]);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) pushValue(out, String(headers[i]).toLowerCase(), headers[i + 1]);
    }
    return;
  }
  for (const name in headers as OutgoingHttpHeaders) pushValue(out, name.toLowerCase(), (headers as OutgoingHttpHeaders)[name]);
}

function pushValue(out: string[], name: string, value: unknown): void {
  if (value === undefined) return;
  if (Array.isArray(value)) for (const v of value) out.push(name, String(v));
  else out.push(name, String(value));
}

/**
 * Tees what the app writes into the fill. The response streams to the client unchanged; the copy
 * is dropped as soon as the response turns out not to be storable or grows past `maxEntryBytes`.
 *
 * The head is read in `writeHead()`. Hooks that middleware mounted after the dumper attach there
 * (express-session, cookie-session set their cookie in one) have run by then, while middleware
 * mounted before it (compression) changes the head only afterwards, for its own output, not for
 * the body captured here. The fill completes when the app ends the response, not when the socket
 * has flushed it: a response queued behind a pipelined one that never ends must not hold up the
 * visitors waiting on this page. At that moment the final headers are checked once more, so
 * nothing that makes a response personal slips past (`Content-Encoding` from compression mounted
 * in front is expected there); a response destroyed before it ended, or whose body does not match
 * its `Content-Length`, is not stored.
 */
class Capture {
  /**
   * The chunks written. The app's own buffers are kept as they are until the response ends, when
   * the fill copies them (Node itself still holds them until they are sent); strings are encoded.
   */
  chunks: Uint8Array[] | undefined = [];
  size = 0;
  /** Headers to store: the response's own, less those set before the app ran. */
  head: string[] | undefined;
  status = 200;
  /** The `Content-Length` the app declared, if any. */
  declared: string | undefined;
  /** `end()` has been called. */
  ending = false;
  readonly dumper: Dumper;
  /** Headers set before the app ran (middleware mounted before the dumper). */
  readonly preset: OutgoingHttpHeaders;
  /** The response's own methods, which the wrappers that `capture()` puts in their place call. */
  readonly writeHead: ServerResponse['writeHead'];
  readonly write: ServerResponse['write'];
  readonly end: ServerResponse['end'];

  constructor(
    x: Exchange,
    readonly fill: Fill,
    /** This cache's `Cache-Status` member, sent with the head (see `cacheStatusAtHead`). */
    readonly member: { value: string } | undefined,
  ) {
    const res = x.res;
    this.dumper = x.dumper;
    this.preset = res.getHeaders();
    this.writeHead = res.writeHead;
    this.write = res.write;
    this.end = res.end;
  }

  stop(reason: string): void {
    this.chunks = undefined;
    this.fill.abandon(reason);
  }

  onHead(res: ServerResponse, code: number, extra: unknown): void {
    if (this.chunks === undefined || this.head !== undefined) return;
    this.status = code;
    const current = res.getHeaders();
    // The safety check sees every header, including those set before the app ran.
    const all: string[] = [];
    pushHeaders(all, extra);
    const given = new Set<string>();
    for (let i = 0; i < all.length; i += 2) given.add(all[i]!);
    const stored = all.slice();
    for (const name in current) {
      if (given.has(name)) continue;
      pushValue(all, name, current[name]);
      const before = this.preset[name];
      if (before === undefined || String(before) !== String(current[name])) pushValue(stored, name, current[name]);
    }
    this.head = stored;
    // A Content-Encoding set before the app ran (by middleware mounted in front of the dumper)
    // would be left out of the stored head while the body the app writes is in that coding.
    if (codingOf(all) !== codingOf(stored)) return this.stop('Content-Encoding set before the dumper ran');
    if (this.dumper.responseVeto(code, all) !== undefined) {
      this.fill.head(code, all);
      this.chunks = undefined;
      return;
    }
    this.declared = flatGet(all, 'content-length');
    if (Number(this.declared ?? 0) > this.dumper.maxEntryBytes) return this.stop(`body larger than maxEntryBytes (${this.dumper.maxEntryBytes})`);
    // The edge caches' headers (option `purgers`), from the core; Node merges them with what
    // writeHead() is given (see onPlan).
    const edge = this.fill.edgeHeaders(all);
    for (let i = 0; i < edge.length; i += 2) res.setHeader(edge[i]!, edge[i + 1]!);
    const cacheStatus = this.dumper.cacheStatus;
    if (cacheStatus !== undefined && this.member !== undefined && !this.fill.done) this.member.value = cacheStatus.stored;
  }

  add(res: ServerResponse, chunk: unknown, encoding: unknown): void {
    const chunks = this.chunks;
    if (chunks === undefined || res.writableEnded) return;
    if (res.destroyed) return this.stop('response destroyed before it ended');
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (buf === undefined) return this.stop('unsupported body chunk');
    this.size += buf.byteLength;
    const max = this.dumper.maxEntryBytes;
    if (this.size > max) return this.stop(`body larger than maxEntryBytes (${max})`);
    chunks.push(buf);
  }

  /**
   * The app ended the response (`end()` has returned): store it if it is whole. `destroyed`: the
   * response was destroyed before `end()` was called (the app aborted it, or the client left).
   * Not `writableEnded`: middleware in front (compression) may end the socket's side later.
   */
  ended(res: ServerResponse, destroyed: boolean): void {
    if (this.chunks === undefined || this.fill.done) return;
    if (destroyed) return this.stop('response destroyed before it ended');
    if (this.head === undefined) return this.stop('no response head');
    if (this.declared !== undefined && Number(this.declared) !== this.size) {
      return this.stop(`body of ${this.size} bytes does not match Content-Length ${this.declared}`);
    }
    const final: string[] = [];
    pushHeaders(final, res.getHeaders());
    const veto = this.dumper.sentVeto(this.status, final);
    if (veto !== undefined) return this.stop(veto);
    void this.fill.complete(this.status, this.head, this.chunks);
  }
}

function capture(x: Exchange, fill: Fill, member: { value: string } | undefined): void {
  const res = x.res;
  const c = new Capture(x, fill, member);
  // Each property added to an Express response costs ~2 µs (a hidden-class change): three.
  res.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
    c.onHead(this, code, typeof rest[0] === 'string' ? rest[1] : rest[0]);
    return (c.writeHead as (...a: unknown[]) => ServerResponse).call(this, code, ...rest);
  } as ServerResponse['writeHead'];
  res.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown) {
    // An HTTP/2 response's end() writes its chunk through write(): captured once, by end().
    if (!c.ending) c.add(this, chunk, encoding);
    return (c.write as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown) {
    c.add(this, chunk, encoding);
    const destroyed = isGone(this);
    c.ending = true;
    const out = (c.end as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
    c.ended(this, destroyed);
    return out;
  } as ServerResponse['end'];
  // A file piped into the response (koa-static, koa-send, res.sendFile, a handler's own): see staticFile().
  res.on('pipe', (source: unknown) => {
    if (source instanceof ReadStream) fill.staticFile();
  });
  // Closed before the app ended it: the client left, or the app destroyed the response. A close
  // inside end() (a response that closes as it ends) is settled by the end wrapper.
  res.on('close', () => {
    if (fill.done || c.ending || c.chunks === undefined) return;
    // Every byte of the declared Content-Length was written: the response is whole, though end()
    // has not come yet. A file piped in (koa-static, res.sendFile) ends it at the stream's EOF, a
    // read after its last data, and a client that had the whole body may leave before that.
    if (c.head !== undefined && c.declared !== undefined && Number(c.declared) === c.size) {
      const chunks = c.chunks;
      c.ended(res, false);
      // What the app writes or ends with from now on is not part of the stored page.
      if (c.chunks === chunks) c.chunks = undefined;
      return;
    }
    c.stop('response aborted before it ended');
  });
}

/**
 * With purgers: a GET or HEAD response that goes out without the edge headers of a page the
 * dumper stores (passed through: bypassed, the store unavailable, a page it refused) gets each
 * freshness header it lacks as `no-store` when its head is written (see `Dumper.passThroughHeaders`).
 */
export function edgeDefault(dumper: Dumper, res: ServerResponse, method: string): void {
  const writeHead = res.writeHead;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    res.writeHead = writeHead;
    const given = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null) as OutgoingHttpHeaders | string[] | undefined;
    // A header's value, from those given to writeHead() (which take precedence) or set before.
    const get = (name: string): string | undefined => {
      const values: string[] = [];
      if (Array.isArray(given)) {
        for (let i = 0; i < given.length; i += 2) if (String(given[i]).toLowerCase() === name) values.push(String(given[i + 1]));
      } else if (given !== undefined) {
        for (const k in given) if (k.toLowerCase() === name && given[k] !== undefined) values.push(...[given[k]!].flat().map(String));
      }
      if (values.length === 0) {
        const set = res.getHeader(name);
        if (set !== undefined) values.push(...[set].flat().map(String));
      }
      return values.length === 0 ? undefined : values.join(', ');
    };
    const edge = dumper.passThroughHeaders(method, get);
    if (edge.length !== 0 && given !== undefined && !Array.isArray(given)) {
      // writeHead()'s own headers would replace what is set here: ours go in there too.
      for (let i = 0; i < edge.length; i += 2) for (const k in given) if (k.toLowerCase() === edge[i]) delete given[k];
    }
    for (let i = 0; i < edge.length; i += 2) res.setHeader(edge[i]!, edge[i + 1]!);
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

/**
 * Sends this cache's `Cache-Status` member (option `cacheStatus`) when the head is written,
 * appended to the members the app set by then, with `setHeader()` or in `writeHead()` (RFC 9211
 * §2: each cache appends its own member and keeps the others: a cache behind the app says what it
 * did too). Set at head time, not before the app runs, where the app's own header would replace
 * it. The member may be changed until the head is written (`stored`, once a miss turns out
 * storable).
 */
export function cacheStatusAtHead(dumper: Dumper, res: ServerResponse, member: string): { value: string } {
  const state = { value: member };
  const cache = dumper.cacheStatus!.cache;
  const writeHead = res.writeHead;
  let written = false;
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (!written) {
      written = true;
      const given: string[] = [];
      let inArgs = false;
      for (let i = 1; i < args.length; i++) {
        const a = args[i];
        if (typeof a !== 'object' || a === null) continue;
        const list: string[] = [];
        pushHeaders(list, a);
        const rest: string[] = [];
        for (let j = 0; j < list.length; j += 2) {
          if (list[j] === 'cache-status') given.push(list[j + 1]!);
          else rest.push(list[j]!, list[j + 1]!);
        }
        if (rest.length !== list.length) {
          inArgs = true;
          // writeHead()'s own headers replace those set before: the members go in once, below.
          args[i] = headerObject(rest);
        }
      }
      if (!inArgs) {
        const set = this.getHeader('cache-status');
        if (set !== undefined) for (const v of [set].flat()) given.push(String(v));
      }
      this.setHeader('cache-status', appendCacheStatus(given.length === 0 ? undefined : given.join(', '), state.value, cache));
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
  return state;
}
