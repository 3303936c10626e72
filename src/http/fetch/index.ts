/**
 * page-dumper for any Web-standard handler, `(request: Request) => Response | Promise<Response>`:
 * Hono's `app.fetch`, Next.js route handlers, Bun, Deno, `@hono/node-server`...
 *
 * ```ts
 * const handler = dumperFetch(dumper, app.fetch);
 * ```
 */
import { appendCacheStatus, assertDumper, isBypass, type Bypass, type Dumper, type Fill } from '../../core/dumper.js';
import type { HeaderSource } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';
import { prepareRequest } from '../node/engine.js';
import { incomingOf, nodeHeadersOf } from './node-request.js';

export type FetchHandler<A extends unknown[] = []> = (request: Request, ...rest: A) => Response | Promise<Response>;

/** Wraps a fetch handler so stored pages are answered without calling it. Extra arguments (env, context) pass through. */
export function dumperFetch<A extends unknown[]>(dumper: Dumper, handler: FetchHandler<A>): FetchHandler<A> {
  assertDumper(dumper, 'dumperFetch');
  if (typeof handler !== 'function') {
    throw new TypeError('page-dumper: dumperFetch(dumper, handler) needs a handler function');
  }
  return function dumperFetchHandler(request: Request, ...rest: A) {
    return answer(dumper, request, (r) => handler(r, ...rest));
  };
}

/** The origin-form target (path and query) of a request URL. */
function targetOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  return start === -1 ? '/' : url.slice(start);
}

type App = (request: Request) => Response | Promise<Response>;

/**
 * One request, made once by `answer()` and handed along. Every field is set in the constructor:
 * one shape on the hit path.
 */
class Exchange {
  readonly method: string;
  /** The origin-form target (path and query). */
  readonly target: string;
  /** What the key is made from: `target`, or the whole URL when the request has no `Host`. */
  readonly keyTarget: string;
  /**
   * Where the key and the reply read the request's headers: from @hono/node-server, the headers
   * Node parsed, not a Headers object made for the purpose (see node-request.ts); from anywhere
   * else, `request.headers`.
   */
  readonly headers: HeaderSource;
  /** The store key, once the request turned out cacheable. */
  key = '';

  constructor(
    readonly dumper: Dumper,
    readonly request: Request,
    readonly app: App,
  ) {
    this.method = request.method;
    const url = request.url;
    const target = (this.target = targetOf(url));
    const node = nodeHeadersOf(request);
    let hasHost: boolean;
    if (node !== undefined) {
      this.headers = node;
      hasHost = node.host !== undefined;
    } else {
      const h = request.headers;
      this.headers = h;
      hasHost = h.has('host');
    }
    this.keyTarget = hasHost ? target : url;
  }
}

/**
 * @internal Serves one request: a stored page if there is one, else `app(request)`, whose
 * response is teed into the store as it streams to the client (what `dumperFetch` and
 * `honoDumper` do). A hit from a synchronous store is answered synchronously: servers take a
 * Response that is not a promise on a shorter path (@hono/node-server writes it at once), as they
 * do for a bare route. Never throws: errors reject the promise.
 */
export function answer(dumper: Dumper, request: Request, app: App): Response | Promise<Response> {
  try {
    const x = new Exchange(dumper, request, app);
    const key = dumper.keyFor(x.method, x.keyTarget, x.headers);
    if (isBypass(key)) return bypass(x, key);
    x.key = key;
    const found = dumper.get(key, x.headers);
    if (isPromise(found)) {
      return found.then((entry) => (entry !== undefined ? hit(x, entry) : miss(x)));
    }
    if (found !== undefined) return hit(x, found);
    return miss(x);
  } catch (error) {
    return Promise.reject(error);
  }
}

function hit(x: Exchange, entry: StoredEntry): Response {
  const dumper = x.dumper;
  if (dumper.log.debugEnabled) dumper.logDecision('found', { method: x.method, path: x.target, key: x.key });
  return send(x, entry, 'store');
}

async function bypass(x: Exchange, key: Bypass): Promise<Response> {
  const { dumper, request, method, target } = x;
  if (dumper.log.debugEnabled) dumper.logDecision('skipped getting', { method, path: target, key: '', reason: key.bypass });
  const app = x.app;
  const response = await app(request);
  if (key.bypass === 'method') {
    dumper.afterUnsafe({
      method,
      target,
      host: new URL(request.url).host,
      forwardedHost: request.headers.get('x-forwarded-host') ?? undefined,
      status: response.status,
      location: response.headers.get('location') ?? undefined,
      contentLocation: response.headers.get('content-location') ?? undefined,
    });
  }
  return withStatus(dumper, response, method, key);
}

async function miss(x: Exchange): Promise<Response> {
  const { dumper, method } = x;
  if (dumper.log.debugEnabled) dumper.logDecision("didn't find", { method, path: x.target, key: x.key });
  const planned = dumper.beginFill(x.key, method, x.headers);
  const plan = isPromise(planned) ? await planned : planned;
  if (plan.kind === 'entry') return send(x, plan.entry, 'render');
  if (plan.kind === 'pass') {
    if (dumper.log.debugEnabled) dumper.logDecision('not saving', { method, path: x.target, key: x.key, reason: plan.reason });
    const app = x.app;
    return withStatus(dumper, await app(x.request), method);
  }
  return fill(x, plan.fill);
}

async function fill(x: Exchange, fill: Fill): Promise<Response> {
  const { dumper, request, app } = x;
  let response: Response;
  try {
    response = await fill.run(app, appRequest(request, fill));
  } catch (error) {
    fill.abandon('the app threw');
    throw error;
  }
  const head: string[] = [];
  response.headers.forEach((value, name) => {
    if (name === 'set-cookie') return;
    head.push(name, value);
  });
  for (const cookie of response.headers.getSetCookie()) head.push('set-cookie', cookie);
  const max = dumper.maxEntryBytes;
  if (fill.head(response.status, head) !== undefined) return withStatus(dumper, response, request.method);
  const declared = response.headers.get('content-length');
  if (Number(declared ?? 0) > max) {
    fill.abandon(`body larger than maxEntryBytes (${max})`);
    return withStatus(dumper, response, request.method);
  }
  const out = new Headers(response.headers);
  if (dumper.cacheStatusHeader !== undefined) out.set(dumper.cacheStatusHeader, 'MISS');
  if (dumper.cacheStatus !== undefined) out.set('cache-status', appendCacheStatus(out.get('cache-status') ?? undefined, dumper.cacheStatus.stored, dumper.cacheStatus.cache));
  // The edge caches' headers (option `purgers`), from the core.
  const edge = fill.edgeHeaders(head);
  for (let i = 0; i < edge.length; i += 2) out.set(edge[i]!, edge[i + 1]!);
  const init = { status: response.status, statusText: response.statusText, headers: out };
  const made: Made = { fill, status: response.status, head, declared };
  if (request.method === 'HEAD' || response.body === null) {
    // A HEAD was rendered as a GET to fill the entry: read the body here, send none.
    const body = response.body === null ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
    if (body.byteLength > max) fill.abandon(`body larger than maxEntryBytes (${max})`);
    else finish(made, [body], body.byteLength);
    return new Response(request.method === 'HEAD' ? null : body, init);
  }
  // One branch streams to the client at its pace; the other is read at once, so the fill ends
  // when the app's body does, not when a slow (or pipelined) client has taken it all.
  const [toClient, toStore] = response.body.tee();
  void keep(made, toStore, max);
  return new Response(toClient, init);
}

/** A response the app made on a miss that may be stored, all but its body. */
interface Made {
  readonly fill: Fill;
  readonly status: number;
  /** The headers to store. */
  readonly head: string[];
  /** Its `Content-Length`, if it declared one. */
  readonly declared: string | null;
}

/** Reads the stored branch of a body to its end (at most `max` bytes), and completes the fill with it. */
async function keep(made: Made, body: ReadableStream<Uint8Array>, max: number): Promise<void> {
  const fill = made.fill;
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > max) {
        fill.abandon(`body larger than maxEntryBytes (${max})`);
        // Cancelling one branch leaves the client's streaming.
        await reader.cancel();
        return;
      }
      chunks.push(value);
    }
  } catch {
    fill.abandon('the body stream failed');
    return;
  }
  finish(made, chunks, size);
}

/** Completes the fill with the body's `chunks` (`size` bytes in all), unless it is not the length declared. */
function finish(made: Made, chunks: Uint8Array[], size: number): void {
  const { fill, status, head, declared } = made;
  if (declared !== null && Number(declared) !== size) fill.abandon(`body of ${size} bytes does not match Content-Length ${declared}`);
  else void fill.complete(status, head, chunks);
}

/**
 * The request the app sees on a miss that may be stored: the request the key describes
 * (`fill.view`: normalized URL, lower-case host and forwarded headers, cookies without ignored
 * ones), as a GET without conditional headers (so it renders the full page, RFC 9111 §4.3.2).
 * Its `headers` report every look at the cookies to the fill.
 */
function appRequest(request: Request, fill: Fill): Request {
  const view = fill.view;
  const url = request.url;
  const headers = new Headers(request.headers);
  // @hono/node-server hands the app its Node request too (Hono's `c.env.incoming`): it gets the
  // same view, and reports its cookie reads as a Node request does. (After the copy above,
  // which is ours and no read of the app's.)
  const incoming = incomingOf(request);
  if (incoming !== undefined) prepareRequest(incoming, fill, { target: incoming.url ?? '/', headAsGet: false });
  headers.delete('if-none-match');
  headers.delete('if-modified-since');
  headers.set('host', view.host);
  setOrDelete(headers, 'x-forwarded-proto', view.forwardedProto);
  setOrDelete(headers, 'x-forwarded-host', view.forwardedHost);
  setOrDelete(headers, 'cookie', view.cookie);
  const target = url.slice(0, url.length - targetOf(url).length) + view.target;
  // Its `headers` (what apps and Hono read) report every look at the cookies, and so does a
  // `clone()`. (A copy made with `new Request(request)` reads the request's own list unseen.)
  const out = new Request(target, { method: 'GET', headers, signal: request.signal });
  Object.defineProperties(out, {
    headers: { value: cookieWatch(headers, fill), configurable: true },
    clone: {
      value: function clone(this: Request) {
        fill.readCookies();
        return Request.prototype.clone.call(this);
      },
      configurable: true,
    },
  });
  return out;
}

function setOrDelete(headers: Headers, name: string, value: string | undefined): void {
  if (value === undefined) headers.delete(name);
  else headers.set(name, value);
}

/**
 * Headers that tell the fill when the cookies are looked at: `get`/`has` of `cookie` (Hono's
 * `getCookie()`, a handler of its own), and any walk through all of them. Own methods in front of
 * `Headers.prototype`'s, which still do the work on the same object.
 */
function cookieWatch(init: Headers, fill: Fill): Headers {
  const h = new Headers(init);
  const proto = Headers.prototype;
  const named = (method: 'get' | 'has') =>
    function (this: Headers, name: string) {
      if (String(name).toLowerCase() === 'cookie') fill.readCookies();
      return (proto[method] as (n: string) => unknown).call(this, name);
    };
  const walk = (method: 'forEach' | 'entries' | 'keys' | 'values' | typeof Symbol.iterator) =>
    function (this: Headers, ...args: unknown[]) {
      // Even one that finds no cookie: a page that copied the headers and found none is the
      // anonymous page.
      fill.readCookies();
      return (proto[method] as (...a: unknown[]) => unknown).apply(this, args);
    };
  Object.defineProperties(h, {
    get: { value: named('get') },
    has: { value: named('has') },
    forEach: { value: walk('forEach') },
    entries: { value: walk('entries') },
    keys: { value: walk('keys') },
    values: { value: walk('values') },
    [Symbol.iterator]: { value: walk(Symbol.iterator) },
  });
  return h;
}

/** What `send()` reads of a request. */
interface Replayed {
  readonly dumper: Dumper;
  readonly method: string;
  /** The request's headers (content negotiation, validators). */
  readonly headers: HeaderSource;
}

/**
 * A stored entry as a Response, as `dumper.reply()` says. `from`: `'store'` when the store had it;
 * `'render'` when it is the entry a concurrent render of the same page just made (`MissPlan`
 * `entry`).
 */
function send(x: Replayed, entry: StoredEntry, from: 'store' | 'render'): Response {
  const r = x.dumper.reply(entry, x.method, x.headers, from === 'render');
  const status = r.status;
  let base = plain.get(r.headers);
  if (base === undefined) {
    base = plainHeads(r.headers, status !== 304) ?? null;
    plain.set(r.headers, base);
  }
  let headers: Headers | Record<string, string>;
  if (base === null) {
    headers = new Headers();
    const list = r.headers;
    for (let i = 0; i < list.length; i += 2) headers.append(list[i]!, list[i + 1]!);
    headers.set('age', r.age);
  } else {
    // Object.assign, not a spread: V8 (Node 20) copies these objects by spread over 10x slower.
    headers = Object.assign({}, base);
    headers['age'] = r.age;
  }
  return new Response((r.body ?? null) as Uint8Array<ArrayBuffer> | null, { status, headers });
}

/**
 * The reply headers of each representation as a plain object (`null`: they must go as a
 * `Headers`, see `plainHeads`): @hono/node-server writes a plain object as it is, where it would
 * turn a `Headers` back into one on every hit. Entries are immutable, and so is each list.
 */
const plain = new WeakMap<readonly string[], Readonly<Record<string, string>> | null>();

/**
 * A flat header list as an object, repeated names joined with ", " as `Headers` joins them; or
 * `undefined` when an object would not say the same as a `Headers`: a Set-Cookie (which is never
 * joined), a name an object cannot hold, or, for a reply with a body, no Content-Type
 * (@hono/node-server adds its default to a `Headers`, and a miss of the same page got it).
 */
function plainHeads(list: readonly string[], withBody: boolean): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  let typed = false;
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    if (name === 'set-cookie' || name === '__proto__') return undefined;
    if (name === 'content-type') typed = true;
    const prev = out[name];
    out[name] = prev === undefined ? value : `${prev}, ${value}`;
  }
  return typed || !withBody ? out : undefined;
}

/**
 * The response of a miss (`bypass` undefined) or a bypass that is not stored, with the
 * cache-status headers set (on a copy when its headers are immutable).
 */
function withStatus(dumper: Dumper, response: Response, method: string, bypass?: Bypass): Response {
  const name = dumper.cacheStatusHeader;
  const cacheStatus = dumper.cacheStatus;
  // Passed through without storing: `no-store` for the edge (see Dumper.passThroughHeaders).
  const edge = dumper.passThroughHeaders(method, (h) => response.headers.get(h) ?? undefined);
  if (name === undefined && cacheStatus === undefined && edge.length === 0) return response;
  const set = (headers: Headers): void => {
    if (name !== undefined) headers.set(name, bypass === undefined ? 'MISS' : 'BYPASS');
    if (cacheStatus !== undefined) {
      headers.set('cache-status', appendCacheStatus(headers.get('cache-status') ?? undefined, bypass === undefined ? cacheStatus.miss : cacheStatus.bypass[bypass.bypass], cacheStatus.cache));
    }
    for (let i = 0; i < edge.length; i += 2) headers.set(edge[i]!, edge[i + 1]!);
  };
  try {
    set(response.headers);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    set(copy.headers);
    return copy;
  }
}
