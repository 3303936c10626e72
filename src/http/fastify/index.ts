/**
 * page-dumper as a Fastify plugin:
 *
 * ```ts
 * import fastifyDumper from 'page-dumper/fastify';
 * await app.register(fastifyDumper, { dumper });
 * ```
 *
 * Hits are answered in `onRequest`, before body parsing, validation and the handler; responses
 * are captured in `onSend`, after serialization. Plugins whose `onSend` runs after this one (such
 * as `@fastify/compress` registered later) apply to hits too. `fastify.dumper` is the dumper.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { ReadStream } from 'node:fs';
import { parse } from 'node:querystring';
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { assertDumper, isBypass, type Dumper, type Fill, type MissPlan } from '../../core/dumper.js';
import { isPromise, type StoredEntry } from '../../core/store.js';
import { cacheStatusAtHead, edgeDefault, flatten, headerObject, isGone, isQueued, prepareRequest, watchUnsafe } from '../node/engine.js';

export interface FastifyDumperOptions {
  /** The dumper made by `createDumper()`. */
  dumper: Dumper;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The dumper registered with `fastifyDumper`. */
    dumper: Dumper;
  }
}

/**
 * A miss that may be stored: `onSend` records the response as the app made it, and the
 * response's `close` settles the fill, once every `onSend` hook has had its say.
 */
interface Capture {
  readonly dumper: Dumper;
  readonly reply: FastifyReply;
  readonly fill: Fill;
  /** Whether `onSend` saw the response. */
  seen: boolean;
  status: number;
  head: string[];
  /** The whole body, once it is known (a stream's when it has ended). */
  body: Uint8Array | undefined;
  /** This cache's `Cache-Status` member, sent with the head (see `cacheStatusAtHead`). */
  readonly member: { value: string } | undefined;
}
/** The capture of each request whose response may be stored. */
const captures = new WeakMap<FastifyRequest, Capture>();

/**
 * Stores or drops a captured response once Fastify has ended it: wrapped around the miss's own
 * `res.end()`, rather than an `onResponse` hook, which Fastify would run for every hit too, and
 * not at `close`, which waits for the socket (a response queued behind a pipelined one that
 * never ends would hold up every visitor waiting on this page).
 */
function settle(c: Capture, destroyed: boolean): void {
  const { dumper, reply, fill } = c;
  if (fill.done) return;
  if (!c.seen) return fill.abandon('no response was sent through onSend');
  // The body was whole when onSend saw it; a stream's only once it ended.
  if (c.body === undefined || destroyed) return fill.abandon('response aborted before it ended');
  // Something after onSend changed the status the client gets.
  if (reply.statusCode !== c.status) return fill.abandon(`status changed to ${reply.statusCode} after onSend`);
  const declared = reply.getHeader('content-length');
  if (declared !== undefined && Number(declared) !== c.body.byteLength) {
    return fill.abandon(`body of ${c.body.byteLength} bytes does not match Content-Length ${String(declared)}`);
  }
  // Hooks that ran after ours (a session plugin's onSend) may have made the response personal:
  // check the headers as sent.
  const veto = dumper.sentVeto(c.status, flatten(reply.getHeaders() as OutgoingHttpHeaders, {}));
  if (veto !== undefined) fill.abandon(veto);
  else void fill.complete(c.status, c.head, c.body);
}

/**
 * Adds the edge caches' headers when Fastify writes the response head, from the headers as sent:
 * a response that became personal after our onSend (`private`, `no-store`, `Set-Cookie`...) is
 * not stored, and is `no-store` for the edge.
 */
function edgeAtWriteHead(c: Capture): void {
  const { dumper, reply, fill, member } = c;
  const raw = reply.raw;
  const writeHead = raw.writeHead;
  raw.writeHead = function (this: typeof raw, ...args: unknown[]) {
    raw.writeHead = writeHead;
    const sent = flatten(reply.getHeaders() as OutgoingHttpHeaders, {});
    const veto = dumper.sentVeto(reply.statusCode, sent);
    if (veto !== undefined) {
      fill.abandon(veto);
      if (dumper.cacheStatus !== undefined && member !== undefined) member.value = dumper.cacheStatus.miss;
    }
    const edge = fill.edgeHeaders(sent);
    const given = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null && !Array.isArray(a)) as OutgoingHttpHeaders | undefined;
    for (let i = 0; i < edge.length; i += 2) {
      reply.header(edge[i]!, edge[i + 1]!);
      if (given !== undefined) given[edge[i]!] = edge[i + 1]!;
    }
    return (writeHead as (...a: unknown[]) => typeof raw).apply(this, args);
  } as typeof raw.writeHead;
}

type HookDone = (error?: Error) => void;

/**
 * One request, made once in `onRequest` and handed along. Every field is set in the
 * constructor: one shape on the hit path.
 */
class Exchange {
  readonly method: string;
  /** `request.raw.url` as the request came in. */
  readonly target: string;
  /** The store key, once the request turned out cacheable. */
  key = '';

  constructor(
    readonly dumper: Dumper,
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    /** Continues Fastify's onRequest hooks (the app), or fails the request. */
    readonly next: HookDone,
  ) {
    const raw = request.raw;
    this.method = raw.method ?? 'GET';
    this.target = raw.url ?? '/';
  }
}

/**
 * A stored entry as the reply. `from`: `'store'` when the store had it; `'render'` when it is
 * the entry a concurrent render of the same page just made (`MissPlan` `entry`).
 */
function replay(x: Exchange, entry: StoredEntry, from: 'store' | 'render'): FastifyReply {
  const { dumper, reply } = x;
  const r = dumper.reply(entry, x.method, x.request.headers, from === 'render');
  if (reply.statusCode !== r.status) reply.code(r.status);
  reply.headers(headerObject(r.headers)).header('age', r.age);
  if (r.status === 304) return reply.send();
  // A HEAD gets the body too: Fastify takes its Content-Length from it, and Node sends none.
  const body = r.representation.body;
  // Fastify sends a Buffer as it is; stores keep Buffers.
  return reply.send(Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
}

/** What the store said about a request's key: replay the entry, or start a miss. */
function onEntry(x: Exchange, entry: StoredEntry | undefined): void {
  const { dumper, next } = x;
  if (entry !== undefined) {
    if (dumper.log.debugEnabled) dumper.logDecision('found', { method: x.method, path: x.target, key: x.key });
    replay(x, entry, 'store');
    return;
  }
  if (dumper.log.debugEnabled) dumper.logDecision("didn't find", { method: x.method, path: x.target, key: x.key });
  const planned = dumper.beginFill(x.key, x.method, x.request.raw.headers);
  if (isPromise(planned)) {
    planned.then(
      (plan) => onPlan(x, plan),
      (error: unknown) => next(error as Error),
    );
  } else onPlan(x, planned);
}

/** A miss: serve a concurrent render's entry, or render, capturing the response when it may be stored. */
function onPlan(x: Exchange, plan: MissPlan): void {
  const { dumper, request, reply, next, target } = x;
  if (plan.kind === 'entry') {
    replay(x, plan.entry, 'render');
    return;
  }
  const statusHeader = dumper.cacheStatusHeader;
  if (statusHeader !== undefined) reply.header(statusHeader, 'MISS');
  // `stored` is set in onSend, when the response turns out storable.
  const member = dumper.cacheStatus === undefined ? undefined : cacheStatusAtHead(dumper, reply.raw, dumper.cacheStatus.miss);
  if (plan.kind === 'pass') return next();
  const fill = plan.fill;
  const res = reply.raw;
  // The client left while the store or a concurrent render was awaited: 'close' may have fired.
  if (isGone(res)) {
    fill.abandon('response closed before the app ran');
    return next();
  }
  const raw = request.raw;
  // Fastify answers HEAD with the GET route and hands its full payload to onSend: the method
  // stays HEAD, so Fastify still sends the right Content-Length and no body.
  if (isQueued(raw, res)) {
    // Behind a pipelined response that has not ended: see the node engine.
    fill.abandon('response queued behind a pipelined one');
    return next();
  }
  if (!prepareRequest(raw, fill, { target, headAsGet: false })) {
    fill.abandon('the request could not be given the URL of its key');
    return next();
  }
  // Fastify parsed the query string while routing, from the URL the client sent.
  if (raw.url !== target && !requery(request, target, raw.url ?? '/')) {
    fill.abandon('the query string could not be parsed again for the URL of its key (a custom querystringParser)');
    return next();
  }
  // @fastify/cookie registered before this plugin parsed the cookies already, out of our sight.
  if ((request as FastifyRequest & { cookies?: unknown }).cookies != null) fill.readCookies();
  const capture: Capture = { dumper, reply, fill, seen: false, status: 0, head: [], body: undefined, member };
  captures.set(request, capture);
  const end = res.end;
  let ending = false;
  res.end = function (this: typeof res, ...args: unknown[]) {
    const destroyed = isGone(this);
    ending = true;
    const out = (end as (...a: unknown[]) => typeof res).apply(this, args);
    settle(capture, destroyed);
    return out;
  } as typeof res.end;
  res.once('close', () => {
    // light-my-request (`app.inject()`) closes inside end(): the end wrapper settles that one.
    if (!fill.done && !ending) fill.abandon('response aborted before it ended');
  });
  fill.run(next);
}

/**
 * Gives `request.query` the parameters of the key's URL (`url`), parsed as Fastify parsed those of
 * the URL the client sent (`target`): with its default parser, which reads a query string as
 * `node:querystring` does. Whether that parser is the one in use is checked on this request (a
 * custom one, such as `qs` for nested parameters, parses differently); if not, returns false and
 * the query is left as it is.
 */
function requery(request: FastifyRequest, target: string, url: string): boolean {
  const parsed = request.query;
  if (parsed === null || typeof parsed !== 'object') return true;
  const q = target.indexOf('?');
  if (!sameQuery(parse(q === -1 ? '' : target.slice(q + 1)), parsed as Record<string, unknown>)) return false;
  const p = url.indexOf('?');
  (request as { query: unknown }).query = parse(p === -1 ? '' : url.slice(p + 1));
  return true;
}

function sameQuery(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    const x = a[k];
    const y = b[k];
    if (Array.isArray(x) ? !Array.isArray(y) || x.length !== y.length || x.some((v, i) => v !== y[i]) : x !== y) return false;
  }
  return true;
}

const plugin: FastifyPluginCallback<FastifyDumperOptions> = (fastify: FastifyInstance, options, done) => {
  const dumper = options?.dumper;
  try {
    assertDumper(dumper, 'fastifyDumper');
  } catch (error) {
    return done(error as Error);
  }
  const statusHeader = dumper.cacheStatusHeader;
  fastify.decorate('dumper', dumper);

  fastify.addHook('onRequest', function dumperOnRequest(request, reply, next) {
    const x = new Exchange(dumper, request, reply, next);
    const { method, target } = x;
    const raw = request.raw;
    if (dumper.edgePurging && (method === 'GET' || method === 'HEAD')) edgeDefault(dumper, reply.raw, method);
    const key = dumper.keyFor(method, target, raw.headers);
    if (isBypass(key)) {
      if (dumper.log.debugEnabled) dumper.logDecision('skipped getting', { method, path: target, key: '', reason: key.bypass });
      if (statusHeader !== undefined) reply.header(statusHeader, 'BYPASS');
      if (dumper.cacheStatus !== undefined) cacheStatusAtHead(dumper, reply.raw, dumper.cacheStatus.bypass[key.bypass]);
      if (key.bypass === 'method') watchUnsafe({ dumper, res: reply.raw, method, target, headers: reply });
      return next();
    }
    x.key = key;
    const found = dumper.get(key, raw.headers);
    if (isPromise(found)) {
      found.then(
        (entry) => onEntry(x, entry),
        () => onEntry(x, undefined),
      );
    } else onEntry(x, found);
  });

  fastify.addHook('onSend', function dumperOnSend(request, reply, payload, next) {
    const capture = captures.get(request);
    if (capture === undefined) return next(null, payload);
    if (capture.seen) {
      // Only Fastify's error path sends twice: a later onSend hook failed, and the client gets
      // what the error handler sends instead, whatever its status.
      capture.fill.abandon('the response was replaced after onSend (an error in a later hook)');
      return next(null, payload);
    }
    capture.seen = true;
    const fill = capture.fill;
    const status = (capture.status = reply.statusCode);
    const head = (capture.head = flatten(reply.getHeaders() as OutgoingHttpHeaders, {}));
    if (fill.head(status, head) !== undefined) return next(null, payload);
    // The edge caches' headers (option `purgers`), from the core; not part of the stored head.
    // Added as the head is written, not here: an onSend hook registered after ours (a session
    // plugin) may still make the response personal, and then the edge gets `no-store`.
    if (dumper.edgePurging) edgeAtWriteHead(capture);
    const max = dumper.maxEntryBytes;
    if (payload === null || payload === undefined || typeof payload === 'string' || payload instanceof Uint8Array) {
      const body = payload == null ? new Uint8Array(0) : typeof payload === 'string' ? Buffer.from(payload) : payload;
      if (body.byteLength > max) fill.abandon(`body larger than maxEntryBytes (${max})`);
      // An empty payload for HEAD may come from an explicit HEAD route: never the GET entry.
      else if (body.byteLength === 0 && request.raw.method === 'HEAD') fill.abandon('HEAD route sent no body');
      else {
        capture.body = body;
        if (dumper.cacheStatus !== undefined && capture.member !== undefined) capture.member.value = dumper.cacheStatus.stored;
      }
      return next(null, payload);
    }
    // A file from disk (`reply.send(fs.createReadStream(...))`): see Fill.staticFile().
    if (payload instanceof ReadStream) fill.staticFile();
    if (typeof (payload as Readable).pipe !== 'function') {
      fill.abandon('unsupported payload');
      return next(null, payload);
    }
    if (dumper.cacheStatus !== undefined && capture.member !== undefined && !fill.done) capture.member.value = dumper.cacheStatus.stored;
    // A stream: tee it as it flows to the client.
    let chunks: Buffer[] | undefined = [];
    let size = 0;
    const tee = new Transform({
      transform(chunk: Buffer | string, encoding, callback) {
        if (chunks !== undefined) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
          size += buf.byteLength;
          if (size > max) {
            chunks = undefined;
            fill.abandon(`body larger than maxEntryBytes (${max})`);
          } else chunks.push(buf);
        }
        callback(null, chunk);
      },
      flush(callback) {
        if (chunks !== undefined) capture.body = Buffer.concat(chunks, size);
        callback();
      },
    });
    const source = payload as Readable;
    source.on('error', (error) => {
      fill.abandon('the body stream failed');
      tee.destroy(error);
    });
    tee.on('close', () => {
      if (!tee.writableFinished) fill.abandon('response aborted before it finished');
    });
    return next(null, source.pipe(tee));
  });

  done();
};

/** The plugin: `app.register(fastifyDumper, { dumper })`. */
export const fastifyDumper = fp(plugin, { fastify: '5.x', name: 'page-dumper' });
export default fastifyDumper;
