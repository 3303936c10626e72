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
import { Transform, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { assertDumper, isBypass, type Dumper, type Fill } from '../../core/dumper.js';
import { ageOf, notModified, notModifiedHeaders } from '../../core/http.js';
import { isPromise, type StoredEntry } from '../../core/store.js';
import { flatten, headerObject, prepareRequest } from '../node/engine.js';

export interface FastifyDumperOptions {
  /** The dumper made by `createDumper()`. */
  dumper: Dumper;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The page-dumper instance registered with `fastify-dumper`. */
    dumper: Dumper;
  }
}

/** The fill of each request that may be stored, from `onRequest` to `onSend`. */
const fills = new WeakMap<FastifyRequest, Fill>();

/** A captured response, stored in `onResponse` once every `onSend` hook has had its say. */
interface Captured {
  readonly fill: Fill;
  readonly status: number;
  readonly head: string[];
  body: Uint8Array | undefined;
}
const captured = new WeakMap<FastifyRequest, Captured>();

function replay(dumper: Dumper, request: FastifyRequest, reply: FastifyReply, entry: StoredEntry): FastifyReply {
  const h = request.headers;
  const inm = h['if-none-match'];
  const ims = h['if-modified-since'];
  const status = dumper.cacheStatusHeader;
  const age = ageOf(entry.storedAt, Date.now());
  if ((inm !== undefined || ims !== undefined) && notModified(entry.etag, entry.headers, inm, ims)) {
    const list = notModifiedHeaders(entry.headers);
    for (let i = 0; i < list.length; i += 2) reply.header(list[i]!, list[i + 1]!);
    reply.header('age', age);
    if (status !== undefined) reply.header(status, 'HIT');
    return reply.code(304).send();
  }
  if (reply.statusCode !== entry.status) reply.code(entry.status);
  reply.headers(headerObject(entry)).header('age', age);
  if (status !== undefined) reply.header(status, 'HIT');
  // Fastify sends a Buffer as it is; a body captured from Fastify is one already.
  const body = entry.body;
  return reply.send(Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
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
    const raw = request.raw;
    const method = raw.method ?? 'GET';
    const target = raw.url ?? '/';
    const key = dumper.keyFor(method, target, raw.headers);
    if (isBypass(key)) {
      if (dumper.log.debugEnabled) dumper._logDecision('skipped getting', method, target, '', key.bypass);
      if (statusHeader !== undefined) reply.header(statusHeader, 'BYPASS');
      return next();
    }
    const found = dumper.get(key);
    const onEntry = (entry: StoredEntry | undefined): void => {
      if (entry !== undefined) {
        if (dumper.log.debugEnabled) dumper._logDecision('found', method, target, key);
        replay(dumper, request, reply, entry);
        return;
      }
      if (dumper.log.debugEnabled) dumper._logDecision("didn't find", method, target, key);
      const planned = dumper.beginFill(key, method, target);
      if (isPromise(planned)) planned.then(onPlan, (error: unknown) => next(error as Error));
      else onPlan(planned);
    };
    const onPlan = (plan: ReturnType<Dumper['beginFill']> extends infer P ? Awaited<P> : never): void => {
      if (plan.kind === 'entry') {
        replay(dumper, request, reply, plan.entry);
        return;
      }
      if (statusHeader !== undefined) reply.header(statusHeader, 'MISS');
      if (plan.kind === 'pass') return next();
      const fill = plan.fill;
      fills.set(request, fill);
      // Fastify answers HEAD with the GET route and hands its full payload to onSend: the
      // method stays HEAD, so Fastify still sends the right Content-Length and no body.
      prepareRequest(dumper, raw, false);
      // Fastify parsed the query string while routing: drop the ignored parameters there too.
      const query = request.query as Record<string, unknown> | undefined;
      if (query !== null && typeof query === 'object' && raw.url !== target) {
        const kept = new URL(raw.url ?? '/', 'http://x').searchParams;
        for (const name of Object.keys(query)) if (!kept.has(name)) delete query[name];
      }
      fill.run(next);
    };
    if (isPromise(found)) found.then(onEntry, () => onEntry(undefined));
    else onEntry(found);
  });

  fastify.addHook('onSend', function dumperOnSend(request, reply, payload, next) {
    const fill = fills.get(request);
    if (fill === undefined) return next(null, payload);
    fills.delete(request);
    const status = reply.statusCode;
    const head = flatten(reply.getHeaders() as import('node:http').OutgoingHttpHeaders, {});
    if (fill.head(status, head) !== undefined) return next(null, payload);
    const max = dumper.maxEntryBytes;
    if (payload === null || payload === undefined || typeof payload === 'string' || payload instanceof Uint8Array) {
      const body = payload == null ? new Uint8Array(0) : typeof payload === 'string' ? Buffer.from(payload) : payload;
      if (body.byteLength > max) fill.abandon(`body larger than maxEntryBytes (${max})`);
      // An empty payload for HEAD may come from an explicit HEAD route: never the GET entry.
      else if (body.byteLength === 0 && request.raw.method === 'HEAD') fill.abandon('HEAD route sent no body');
      else captured.set(request, { fill, status, head, body });
      return next(null, payload);
    }
    if (typeof (payload as Readable).pipe !== 'function') {
      fill.abandon('unsupported payload');
      return next(null, payload);
    }
    // A stream: tee it as it flows to the client.
    let chunks: Buffer[] | undefined = [];
    let size = 0;
    const capture: Captured = { fill, status, head, body: undefined };
    captured.set(request, capture);
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

  fastify.addHook('onResponse', function dumperOnResponse(request, reply, next) {
    const fill = fills.get(request);
    if (fill !== undefined) {
      fills.delete(request);
      fill.abandon('no response was sent through onSend');
    }
    const c = captured.get(request);
    if (c !== undefined) {
      captured.delete(request);
      // Hooks that ran after ours (a session plugin's onSend) may have made the response
      // personal: check the headers as sent.
      const sent: string[] = flatten(reply.getHeaders() as import('node:http').OutgoingHttpHeaders, {});
      const veto = dumper.sentVeto(c.status, sent);
      if (veto !== undefined) c.fill.abandon(veto);
      else if (c.body === undefined) c.fill.abandon('response aborted before it finished');
      else void c.fill.complete(c.status, c.head, c.body);
    }
    const method = request.raw.method;
    if (method !== 'GET' && method !== 'HEAD') {
      const loc = reply.getHeader('location');
      const cloc = reply.getHeader('content-location');
      dumper.afterUnsafe(method ?? '', request.raw.url ?? '/', reply.statusCode, typeof loc === 'string' ? loc : undefined, typeof cloc === 'string' ? cloc : undefined);
    }
    next();
  });

  done();
};

/** The plugin: `app.register(fastifyDumper, { dumper })`. */
export const fastifyDumper = fp(plugin, { fastify: '5.x', name: 'page-dumper' });
export default fastifyDumper;
