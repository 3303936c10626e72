/**
 * The node:http engine shared by `page-dumper/node`, `page-dumper/koa` and `page-dumper/fastify`:
 * it answers hits on the raw `ServerResponse` and tees what the app writes on a miss.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { isBypass, type Dumper, type Fill, type MissPlan } from '../../core/dumper.js';
import { ageOf, notModified, notModifiedHeaders } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';

export function checkDumper(dumper: Dumper, fn: string): void {
  if (dumper === null || typeof dumper !== 'object' || typeof dumper.keyFor !== 'function') {
    throw new TypeError(`page-dumper: ${fn}() needs a dumper made by createDumper()`);
  }
}

/**
 * Serves one request: a hit is written to `res` (then `served()` is called), anything else goes
 * to `app()`, with the response captured when it may be stored. `merge`: headers may already be
 * set on `res` (middleware), so the stored ones are merged rather than written as a list.
 */
export function handle(
  dumper: Dumper,
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
  app: () => void,
  merge: boolean,
  served?: () => void,
): void {
  const method = req.method ?? 'GET';
  const key = dumper.keyFor(method, target, req.headers);
  if (isBypass(key)) {
    if (dumper.log.debugEnabled) dumper._logDecision('skipped getting', method, target, '', key.bypass);
    if (dumper.cacheStatusHeader !== undefined) res.setHeader(dumper.cacheStatusHeader, 'BYPASS');
    if (key.bypass === 'method') watchUnsafe(dumper, res, method, target);
    app();
    return;
  }
  const found = dumper.get(key);
  if (isPromise(found)) {
    found.then(
      (entry) =>
        entry !== undefined
          ? hit(dumper, req, res, entry, method, target, key, merge, served)
          : miss(dumper, req, res, app, key, method, target, served),
      () => miss(dumper, req, res, app, key, method, target, served),
    );
  } else if (found !== undefined) {
    hit(dumper, req, res, found, method, target, key, merge, served);
  } else {
    miss(dumper, req, res, app, key, method, target, served);
  }
}

function hit(
  dumper: Dumper,
  req: IncomingMessage,
  res: ServerResponse,
  entry: StoredEntry,
  method: string,
  target: string,
  key: string,
  merge: boolean,
  served: (() => void) | undefined,
): void {
  if (dumper.log.debugEnabled) dumper._logDecision('found', method, target, key);
  const status = dumper.cacheStatusHeader;
  const h = req.headers;
  const inm = h['if-none-match'];
  const ims = h['if-modified-since'];
  if ((inm !== undefined || ims !== undefined) && notModified(entry.etag, entry.headers, inm, ims)) {
    const head = notModifiedHeaders(entry.headers);
    head.push('age', ageOf(entry.storedAt, Date.now()));
    if (status !== undefined) head.push(status, 'HIT');
    res.writeHead(304, head);
    res.end();
    served?.();
    return;
  }
  if (merge) {
    // Middleware: headers are already set on the response (Express's X-Powered-By, say), so
    // Node merges whatever writeHead() gets; it merges an object at half the cost of a list.
    res.setHeader('age', ageOf(entry.storedAt, Date.now()));
    if (status !== undefined) res.setHeader(status, 'HIT');
    res.writeHead(entry.status, headerObject(entry));
  } else {
    const head = entry.headers.slice();
    head.push('age', ageOf(entry.storedAt, Date.now()));
    if (status !== undefined) head.push(status, 'HIT');
    res.writeHead(entry.status, head);
  }
  if (method === 'HEAD') res.end();
  else res.end(entry.body);
  served?.();
}

const headerObjects = new WeakMap<StoredEntry, OutgoingHttpHeaders>();

/** The entry's headers as an object (repeated names become arrays), made once per entry. */
export function headerObject(entry: StoredEntry): OutgoingHttpHeaders {
  let o = headerObjects.get(entry);
  if (o === undefined) {
    o = {};
    const h = entry.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!;
      const prev = o[name];
      o[name] = prev === undefined ? h[i + 1]! : Array.isArray(prev) ? [...prev, h[i + 1]!] : [String(prev), h[i + 1]!];
    }
    headerObjects.set(entry, o);
  }
  return o;
}

function miss(
  dumper: Dumper,
  req: IncomingMessage,
  res: ServerResponse,
  app: () => void,
  key: string,
  method: string,
  target: string,
  served: (() => void) | undefined,
): void {
  if (dumper.log.debugEnabled) dumper._logDecision("didn't find", method, target, key);
  let plan: MissPlan | Promise<MissPlan>;
  try {
    plan = dumper.beginFill(key, method, target);
  } catch (error) {
    return missFailed(dumper, res, app, key, error);
  }
  if (isPromise(plan)) {
    plan.then(
      (p) => onPlan(dumper, req, res, app, key, method, target, p, served),
      (e: unknown) => missFailed(dumper, res, app, key, e),
    );
  } else onPlan(dumper, req, res, app, key, method, target, plan, served);
}

function onPlan(
  dumper: Dumper,
  req: IncomingMessage,
  res: ServerResponse,
  app: () => void,
  key: string,
  method: string,
  target: string,
  plan: MissPlan,
  served: (() => void) | undefined,
): void {
  if (plan.kind === 'entry') return hit(dumper, req, res, plan.entry, method, target, key, false, served);
  const status = dumper.cacheStatusHeader;
  if (status !== undefined) {
    res.setHeader(status, 'MISS');
  } else if (plan.kind === 'fill') {
    // capture() relies on Node merging writeHead()'s headers into those set with setHeader(),
    // which it does once setHeader() has been called on the response.
    res.setHeader('x-page-dumper', '');
    res.removeHeader('x-page-dumper');
  }
  if (plan.kind === 'pass') {
    if (dumper.log.debugEnabled) dumper._logDecision('not saving', method, target, key, plan.reason);
    return runApp(app);
  }
  const fill = plan.fill;
  prepareRequest(dumper, req);
  capture(dumper, res, fill);
  fill.run(runApp, app);
}

function missFailed(dumper: Dumper, res: ServerResponse, app: () => void, key: string, error: unknown): void {
  dumper.log.error('unexpected error while handling a miss', { error: error as Error, key });
  if (!res.headersSent) runApp(app);
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

/**
 * On a miss that may be stored: drop conditional headers, so the app renders the full page rather
 * than a 304 we could not store (RFC 9111 §4.3.2 lets a cache send its own unconditional request);
 * remove ignored query parameters from the URL the app sees; and render a HEAD as a GET, so it
 * fills the GET entry (Node still sends no body: the response was made for a HEAD request).
 */
export function prepareRequest(dumper: Dumper, req: IncomingMessage): void {
  if (req.method === 'HEAD') req.method = 'GET';
  const h = req.headers;
  // Delete only what is there: a delete turns the headers object into a slow dictionary.
  if (h['if-none-match'] !== undefined) delete h['if-none-match'];
  if (h['if-modified-since'] !== undefined) delete h['if-modified-since'];
  if (h['if-match'] !== undefined) delete h['if-match'];
  if (h['if-unmodified-since'] !== undefined) delete h['if-unmodified-since'];
  if (h['if-range'] !== undefined) delete h['if-range'];
  const r = req as IncomingMessage & { originalUrl?: string };
  if (r.url !== undefined) {
    const url = dumper.rewriteTarget(r.url);
    if (url !== undefined) r.url = url;
  }
  if (r.originalUrl !== undefined) {
    const url = dumper.rewriteTarget(r.originalUrl);
    if (url !== undefined) r.originalUrl = url;
  }
}

function watchUnsafe(dumper: Dumper, res: ServerResponse, method: string, target: string): void {
  if (method === 'OPTIONS' || method === 'TRACE') return;
  res.once('finish', () => {
    const loc = res.getHeader('location');
    const cloc = res.getHeader('content-location');
    dumper.afterUnsafe(method, target, res.statusCode, typeof loc === 'string' ? loc : undefined, typeof cloc === 'string' ? cloc : undefined);
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

/**
 * Tees what the app writes into the fill. The response streams to the client unchanged; the copy
 * is dropped as soon as the response turns out not to be storable or grows past `maxEntryBytes`.
 *
 * The head is read with `getHeaders()` at the app's first write, before the write is passed on:
 * the dumper has called `setHeader()` before the app ran, so Node has merged any headers given to
 * `writeHead()` into that set; and middleware mounted before the dumper (compression) sees the
 * head only after, so what it changes (Content-Encoding) applies to its own output, not to the
 * body captured here. One `close` listener does the work of `finish` and `close`: it fires once
 * the response is done, finished or not.
 */
class Capture {
  chunks: Uint8Array[] | undefined = [];
  size = 0;
  head: string[] | undefined;
  status = 200;
  constructor(
    readonly dumper: Dumper,
    readonly fill: Fill,
    /** Headers set before the app ran (middleware mounted before the dumper). */
    readonly preset: OutgoingHttpHeaders,
    readonly write: ServerResponse['write'],
    readonly end: ServerResponse['end'],
  ) {}

  stop(reason: string): void {
    this.chunks = undefined;
    this.fill.abandon(reason);
  }

  add(res: ServerResponse, chunk: unknown, encoding: unknown): void {
    const chunks = this.chunks;
    if (chunks === undefined) return;
    const max = this.dumper.maxEntryBytes;
    if (this.head === undefined) {
      this.status = res.statusCode;
      this.head = flatten(res.getHeaders(), this.preset);
      if (this.fill.head(this.status, this.head) !== undefined) return void (this.chunks = undefined);
      if (Number(res.getHeader('content-length') ?? 0) > max) return this.stop(`body larger than maxEntryBytes (${max})`);
    }
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (buf === undefined) return this.stop('unsupported body chunk');
    this.size += buf.byteLength;
    if (this.size > max) return this.stop(`body larger than maxEntryBytes (${max})`);
    chunks.push(buf);
  }

  close(res: ServerResponse): void {
    if (!res.writableFinished) return this.stop('response aborted before it finished');
    if (this.chunks === undefined || this.head === undefined || this.fill.done) return;
    void this.fill.complete(this.status, this.head, bodyOf(this.chunks, this.size));
  }
}

function capture(dumper: Dumper, res: ServerResponse, fill: Fill): void {
  const c = new Capture(dumper, fill, res.getHeaders(), res.write, res.end);
  // Each property added to an Express response costs ~2 µs (a hidden-class change): add two.
  res.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown) {
    c.add(this, chunk, encoding);
    return (c.write as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown) {
    c.add(this, chunk, encoding);
    return (c.end as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['end'];
  res.on('close', () => c.close(res));
}

/**
 * The stored body. A single chunk that owns its whole memory (Express's `res.send(string)`, our
 * own `Buffer.from(string)`) is kept as it is; anything else is copied once, so an entry never pins
 * a larger buffer (such as Node's shared 8 KiB pool) or an app's buffers.
 */
function bodyOf(chunks: Uint8Array[], size: number): Uint8Array {
  const only = chunks[0];
  if (chunks.length === 1 && only!.byteOffset === 0 && only!.byteLength === only!.buffer.byteLength) return only!;
  return Buffer.concat(chunks, size);
}
