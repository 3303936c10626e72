/**
 * page-dumper for any Web-standard handler, `(request: Request) => Response | Promise<Response>`:
 * Hono's `app.fetch`, Next.js route handlers, Bun, Deno, `@hono/node-server`...
 *
 * ```ts
 * const handler = dumperFetch(dumper, app.fetch);
 * ```
 */
import { assertDumper, isBypass, type Bypass, type Dumper, type Fill } from '../../core/dumper.js';
import { ageOf, notModified, notModifiedHeaders, readHeader, type HeaderSource } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';
import { nodeHeadersOf } from './node-request.js';

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
export function targetOf(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  return start === -1 ? '/' : url.slice(start);
}

/**
 * Serves one request: a stored page if there is one, else `app(request)`, whose response is
 * teed into the store as it streams to the client. What `dumperFetch` and `honoDumper` do.
 */
export async function serveFetch(dumper: Dumper, request: Request, app: (request: Request) => Response | Promise<Response>): Promise<Response> {
  return answer(dumper, request, app);
}

/**
 * @internal `serveFetch`, with a hit from a synchronous store answered synchronously: servers
 * take a Response that is not a promise on a shorter path (@hono/node-server writes it at once),
 * as they do for a bare route. Never throws: errors reject the promise, as from `serveFetch`.
 */
export function answer(dumper: Dumper, request: Request, app: (request: Request) => Response | Promise<Response>): Response | Promise<Response> {
  try {
    const method = request.method;
    const url = request.url;
    const target = targetOf(url);
    // From @hono/node-server, the key is read from the headers Node parsed, not from a Headers
    // object made for the purpose (see node-request.ts); from anywhere else, from request.headers.
    const node = nodeHeadersOf(request);
    let headers: HeaderSource;
    let hasHost: boolean;
    if (node !== undefined) {
      headers = node;
      hasHost = node.host !== undefined;
    } else {
      const h = request.headers;
      headers = h;
      hasHost = h.has('host');
    }
    const key = dumper.keyFor(method, hasHost ? target : url, headers);
    if (isBypass(key)) return bypass(dumper, request, app, method, target, key);
    const found = dumper.get(key);
    if (isPromise(found)) {
      return found.then((entry) =>
        entry !== undefined ? hit(dumper, entry, method, target, key, headers) : miss(dumper, request, app, method, target, key, headers),
      );
    }
    if (found !== undefined) return hit(dumper, found, method, target, key, headers);
    return miss(dumper, request, app, method, target, key, headers);
  } catch (error) {
    return Promise.reject(error);
  }
}

function hit(dumper: Dumper, entry: StoredEntry, method: string, target: string, key: string, headers: HeaderSource): Response {
  if (dumper.log.debugEnabled) dumper._logDecision('found', method, target, key);
  return replay(dumper, entry, method, headers);
}

async function bypass(
  dumper: Dumper,
  request: Request,
  app: (request: Request) => Response | Promise<Response>,
  method: string,
  target: string,
  key: Bypass,
): Promise<Response> {
  if (dumper.log.debugEnabled) dumper._logDecision('skipped getting', method, target, '', key.bypass);
  const response = await app(request);
  if (key.bypass === 'method') {
    dumper.afterUnsafe(method, target, response.status, response.headers.get('location') ?? undefined, response.headers.get('content-location') ?? undefined);
  }
  return withStatus(dumper, response, 'BYPASS');
}

async function miss(
  dumper: Dumper,
  request: Request,
  app: (request: Request) => Response | Promise<Response>,
  method: string,
  target: string,
  key: string,
  headers: HeaderSource,
): Promise<Response> {
  if (dumper.log.debugEnabled) dumper._logDecision("didn't find", method, target, key);
  const planned = dumper.beginFill(key, method, target);
  const plan = isPromise(planned) ? await planned : planned;
  if (plan.kind === 'entry') return replay(dumper, plan.entry, method, headers);
  if (plan.kind === 'pass') {
    if (dumper.log.debugEnabled) dumper._logDecision('not saving', method, target, key, plan.reason);
    return withStatus(dumper, await app(request), 'MISS');
  }
  return fill(dumper, plan.fill, request, app);
}

async function fill(dumper: Dumper, fill: Fill, request: Request, app: (request: Request) => Response | Promise<Response>): Promise<Response> {
  let response: Response;
  try {
    response = await fill.run(app, appRequest(dumper, request));
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
  if (fill.head(response.status, head) !== undefined) return withStatus(dumper, response, 'MISS');
  if (Number(response.headers.get('content-length') ?? 0) > max) {
    fill.abandon(`body larger than maxEntryBytes (${max})`);
    return withStatus(dumper, response, 'MISS');
  }
  const out = new Headers(response.headers);
  if (dumper.cacheStatusHeader !== undefined) out.set(dumper.cacheStatusHeader, 'MISS');
  const init = { status: response.status, statusText: response.statusText, headers: out };
  if (request.method === 'HEAD' || response.body === null) {
    // A HEAD was rendered as a GET to fill the entry: read the body here, send none.
    const body = response.body === null ? new Uint8Array(0) : new Uint8Array(await response.arrayBuffer());
    if (body.byteLength > max) fill.abandon(`body larger than maxEntryBytes (${max})`);
    else void fill.complete(response.status, head, body);
    return new Response(request.method === 'HEAD' ? null : body, init);
  }
  // Stream to the client and keep a copy; the copy is dropped past maxEntryBytes or on cancel.
  let chunks: Uint8Array[] | undefined = [];
  let size = 0;
  const tee = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (chunks !== undefined) {
        size += chunk.byteLength;
        if (size > max) {
          chunks = undefined;
          fill.abandon(`body larger than maxEntryBytes (${max})`);
        } else chunks.push(chunk);
      }
      controller.enqueue(chunk);
    },
    flush() {
      if (chunks === undefined) return;
      void fill.complete(response.status, head, concat(chunks, size));
    },
  });
  const body = response.body.pipeThrough(tee);
  return new Response(cancelAware(body, () => fill.abandon('response aborted before it finished')), init);
}

/** Calls `onCancel` when the consumer (the client) cancels the stream before its end. */
function cancelAware(stream: ReadableStream<Uint8Array>, onCancel: () => void): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      onCancel();
      return reader.cancel(reason);
    },
  });
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * The request the app sees on a miss that may be stored: a GET without conditional headers
 * (so it renders the full page, RFC 9111 §4.3.2), without ignored query parameters.
 */
function appRequest(dumper: Dumper, request: Request): Request {
  const url = request.url;
  const rewritten = dumper.rewriteTarget(targetOf(url));
  const h = request.headers;
  const conditional = h.has('if-none-match') || h.has('if-modified-since');
  if (request.method === 'GET' && rewritten === undefined && !conditional) return request;
  const headers = new Headers(h);
  headers.delete('if-none-match');
  headers.delete('if-modified-since');
  const target = rewritten === undefined ? url : url.slice(0, url.length - targetOf(url).length) + rewritten;
  return new Request(target, { method: 'GET', headers, signal: request.signal });
}

/** A stored entry as a Response: 304 when the request's validators match. */
export function replay(dumper: Dumper, entry: StoredEntry, method: string, requestHeaders: HeaderSource): Response {
  const inm = readHeader(requestHeaders, 'if-none-match');
  const ims = readHeader(requestHeaders, 'if-modified-since');
  const notMod = (inm !== undefined || ims !== undefined) && notModified(entry.etag, entry.headers, inm, ims);
  const headers = replyHeaders(dumper, entry, notMod);
  if (notMod) return new Response(null, { status: 304, headers });
  return new Response(method === 'HEAD' ? null : (entry.body as Uint8Array<ArrayBuffer>), { status: entry.status, headers });
}

/**
 * What every reply of one entry repeats, as plain objects: @hono/node-server writes a plain
 * object as it is, where it would turn a `Headers` back into one on every hit. Made once per
 * entry (entries are immutable) and copied per reply, since `age` and the cache status are not.
 */
interface Heads {
  /** The entry's headers, or `undefined` when they must go as a `Headers` (see `plainHeads`). */
  readonly full: Readonly<Record<string, string>> | undefined;
  /** The headers a 304 repeats (RFC 9110 §15.4.5), made at the first 304. */
  notModified: Readonly<Record<string, string>> | undefined;
}

const heads = new WeakMap<StoredEntry, Heads>();

function replyHeaders(dumper: Dumper, entry: StoredEntry, notMod: boolean): Headers | Record<string, string> {
  let h = heads.get(entry);
  if (h === undefined) {
    h = { full: plainHeads(entry.headers, true), notModified: undefined };
    heads.set(entry, h);
  }
  const base = notMod ? (h.notModified ??= plainHeads(notModifiedHeaders(entry.headers), false)) : h.full;
  const age = ageOf(entry.storedAt, Date.now());
  const status = dumper.cacheStatusHeader;
  if (base === undefined) {
    const list = notMod ? notModifiedHeaders(entry.headers) : entry.headers;
    const out = new Headers();
    for (let i = 0; i < list.length; i += 2) out.append(list[i]!, list[i + 1]!);
    out.set('age', age);
    if (status !== undefined) out.set(status, 'HIT');
    return out;
  }
  // Object.assign, not a spread: V8 (Node 20) copies these objects by spread over 10x slower.
  const out: Record<string, string> = Object.assign({}, base);
  out['age'] = age;
  if (status !== undefined) out[status] = 'HIT';
  return out;
}

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

/** The response with the cache-status header set (a copy when its headers are immutable). */
function withStatus(dumper: Dumper, response: Response, value: 'MISS' | 'BYPASS'): Response {
  const name = dumper.cacheStatusHeader;
  if (name === undefined) return response;
  try {
    response.headers.set(name, value);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.set(name, value);
    return copy;
  }
}
