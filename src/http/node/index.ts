/**
 * page-dumper for node:http, Connect and Express.
 *
 * `withDumper(dumper, listener)` is the front door: hits are answered before the app is called.
 * `dumperMiddleware(dumper)` is the same engine as Connect/Express middleware; mount it first.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { isBypass, type Dumper, type Fill } from '../../core/dumper.js';
import { ageOf, notModified, notModifiedHeaders } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;
type Next = (err?: unknown) => void;

/** A Connect/Express middleware: `(req, res, next) => void`. */
export type DumperMiddleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/**
 * Wraps any node request listener (an Express or Connect app, `koaApp.callback()`, a plain
 * handler) so cached pages are served without calling it:
 * `http.createServer(withDumper(dumper, app))`.
 */
export function withDumper(dumper: Dumper, listener: Listener): Listener {
  if (typeof listener !== 'function') {
    throw new TypeError('page-dumper: withDumper(dumper, listener) needs a request listener function');
  }
  checkDumper(dumper, 'withDumper');
  return function dumperFrontDoor(req, res) {
    handle(dumper, req, res, req.url ?? '/', () => listener(req, res));
  };
}

/**
 * Connect/Express middleware: `app.use(dumperMiddleware(dumper))`, as the first middleware, so a
 * hit skips everything after it. Middleware mounted before it runs on every request, and the
 * headers it sets are not stored (they are set afresh each time).
 */
export function dumperMiddleware(dumper: Dumper): DumperMiddleware {
  checkDumper(dumper, 'dumperMiddleware');
  return function dumper_(req, res, next) {
    const original = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    handle(dumper, req, res, original, next);
  };
}

function checkDumper(dumper: Dumper, fn: string): void {
  if (dumper === null || typeof dumper !== 'object' || typeof dumper.keyFor !== 'function') {
    throw new TypeError(`page-dumper: ${fn}() needs a dumper made by createDumper()`);
  }
}

function handle(dumper: Dumper, req: IncomingMessage, res: ServerResponse, target: string, app: () => void): void {
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
      (entry) => (entry !== undefined ? hit(dumper, req, res, entry, method, target, key) : miss(dumper, req, res, app, key, method, target)),
      () => miss(dumper, req, res, app, key, method, target),
    );
  } else if (found !== undefined) {
    hit(dumper, req, res, found, method, target, key);
  } else {
    miss(dumper, req, res, app, key, method, target);
  }
}

function hit(dumper: Dumper, req: IncomingMessage, res: ServerResponse, entry: StoredEntry, method: string, target: string, key: string): void {
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
    return;
  }
  const head = entry.headers.slice();
  head.push('age', ageOf(entry.storedAt, Date.now()));
  if (status !== undefined) head.push(status, 'HIT');
  res.writeHead(entry.status, head);
  if (method === 'HEAD') res.end();
  else res.end(entry.body);
}

function miss(dumper: Dumper, req: IncomingMessage, res: ServerResponse, app: () => void, key: string, method: string, target: string): void {
  if (dumper.log.debugEnabled) dumper._logDecision("didn't find", method, target, key);
  dumper.beginFill(key, method, target).then(
    (plan) => {
      if (plan.kind === 'entry') return hit(dumper, req, res, plan.entry, method, target, key);
      if (dumper.cacheStatusHeader !== undefined) res.setHeader(dumper.cacheStatusHeader, 'MISS');
      if (plan.kind === 'pass') {
        if (dumper.log.debugEnabled) dumper._logDecision('not saving', method, target, key, plan.reason);
        return runApp(app);
      }
      const fill = plan.fill;
      prepareRequest(dumper, req);
      capture(dumper, res, fill);
      fill.run(runApp, app);
    },
    (error: unknown) => {
      dumper.log.error('unexpected error while handling a miss', { error: error as Error, key });
      if (!res.headersSent) runApp(app);
    },
  );
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
function prepareRequest(dumper: Dumper, req: IncomingMessage): void {
  if (req.method === 'HEAD') req.method = 'GET';
  delete req.headers['if-none-match'];
  delete req.headers['if-modified-since'];
  delete req.headers['if-match'];
  delete req.headers['if-unmodified-since'];
  delete req.headers['if-range'];
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

/** Appends headers in any shape `writeHead` accepts to a flat lower-case list. */
function pushHeaders(out: string[], headers: unknown): void {
  if (headers === undefined || headers === null) return;
  if (Array.isArray(headers)) {
    if (headers.length !== 0 && Array.isArray(headers[0])) {
      for (const pair of headers as Array<[string, unknown]>) pushValue(out, String(pair[0]).toLowerCase(), pair[1]);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) pushValue(out, String(headers[i]).toLowerCase(), headers[i + 1]);
    }
    return;
  }
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) pushValue(out, name.toLowerCase(), value);
}

function pushValue(out: string[], name: string, value: unknown): void {
  if (value === undefined) return;
  if (Array.isArray(value)) for (const v of value) out.push(name, String(v));
  else out.push(name, String(value));
}

/**
 * Tees what the app writes into the fill. The response streams to the client unchanged; the copy
 * is dropped as soon as the response turns out not to be storable or grows past `maxEntryBytes`.
 */
function capture(dumper: Dumper, res: ServerResponse, fill: Fill): void {
  // Headers set before the app ran (by middleware mounted before the dumper) are set again on
  // every request: storing them would replay one request's values (a request id) to everyone.
  const preset = res.getHeaders();
  const max = dumper.maxEntryBytes;
  let chunks: Uint8Array[] | undefined = [];
  let size = 0;
  let head: string[] | undefined;
  let status = 200;

  const stop = (reason: string) => {
    chunks = undefined;
    fill.abandon(reason);
  };
  const add = (chunk: unknown, encoding: unknown) => {
    if (chunks === undefined || chunk === undefined || chunk === null || typeof chunk === 'function') return;
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? chunk
          : undefined;
    if (buf === undefined) return stop('unsupported body chunk');
    size += buf.byteLength;
    if (size > max) return stop(`body larger than maxEntryBytes (${max})`);
    chunks.push(buf);
  };

  const writeHead = res.writeHead;
  const write = res.write;
  const end = res.end;
  res.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
    if (chunks !== undefined && head === undefined) {
      status = code;
      const extra = typeof rest[0] === 'string' ? rest[1] : rest[0];
      const flat: string[] = [];
      const current = this.getHeaders();
      const overridden = new Set<string>();
      if (extra !== undefined && extra !== null) {
        const tmp: string[] = [];
        pushHeaders(tmp, extra);
        for (let i = 0; i < tmp.length; i += 2) overridden.add(tmp[i]!);
        flat.push(...tmp);
      }
      for (const [name, value] of Object.entries(current)) {
        if (overridden.has(name)) continue;
        if (name in preset && String(preset[name]) === String(value)) continue;
        pushValue(flat, name, value);
      }
      head = flat;
      const declared = Number(this.getHeader('content-length') ?? NaN);
      if (declared > max) stop(`body larger than maxEntryBytes (${max})`);
      else if (fill.head(code, flat) !== undefined) chunks = undefined;
    }
    return (writeHead as (...a: unknown[]) => ServerResponse).call(this, code, ...rest);
  } as ServerResponse['writeHead'];
  res.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown, cb?: unknown) {
    add(chunk, encoding);
    return (write as (...a: unknown[]) => boolean).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['write'];
  res.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    add(chunk, encoding);
    return (end as (...a: unknown[]) => ServerResponse).apply(this, arguments as unknown as unknown[]);
  } as ServerResponse['end'];

  res.once('finish', () => {
    if (chunks === undefined || fill.done) return;
    // One copy: the entry must not pin the app's buffers (or Node's shared 8 KiB pool).
    const body = Buffer.concat(chunks, size);
    void fill.complete(status, head ?? [], body);
  });
  res.once('close', () => {
    if (!res.writableFinished) stop('response aborted before it finished');
  });
}
