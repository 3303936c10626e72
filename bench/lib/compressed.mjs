// The server variants of bench/compressed.mjs (compressed hits), run by bench/lib/server.mjs like
// every other variant (`node bench/lib/server.mjs bare-br` runs one by hand).
//
// The `-bare-br` variants send the page compressed with brotli exactly as page-dumper stores it
// (quality 9, a 64 KiB window, the size hint and text mode: `brotliParams()` in
// src/core/encoding.ts), made once at startup, with the headers a compressed hit sends:
// content-type, content-length, the br entity tag, content-encoding and vary. They always send br
// (they do not read Accept-Encoding): the benchmark's requests always accept it.
//
// The dumper variants of this benchmark that are not here are the existing ones (`front-door`,
// `express-middleware`, `fastify-dumper`, `koa-dumper`, `hono-dumper`), whose `createDumper()`
// compresses by default; the benchmark warms each and waits for `dumper.flushCompression()`
// (the server's `flush` command) before it measures.
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import zlib from 'node:zlib';
import { CONTENT_TYPE, ETAG, PAGE } from './page.mjs';

const ROUTE = '/page/:id';
const PAGE_PREFIX = '/page/';
const Z = zlib.constants;

/** The page as page-dumper's default `compress` stores it in br (quality 9, lgwin 16). */
export function brotliPage(page = PAGE) {
  return zlib.brotliCompressSync(page, {
    params: {
      [Z.BROTLI_PARAM_QUALITY]: 9,
      [Z.BROTLI_PARAM_LGWIN]: 16,
      [Z.BROTLI_PARAM_SIZE_HINT]: page.byteLength,
      [Z.BROTLI_PARAM_MODE]: Z.BROTLI_MODE_TEXT,
    },
  });
}

/** The page in gzip at page-dumper's default level (6). */
export function gzipPage(page = PAGE) {
  return zlib.gzipSync(page, { level: 6 });
}

/** The entity tag page-dumper gives the br copy of a page whose ETag is `etag` (`encodingEtag()`). */
export const ETAG_BR = `${ETAG.slice(0, -1)}-br"`;

let brCache;
/** The br bytes, made on first use (the other variants of server.mjs never make them). */
export const pageBr = () => (brCache ??= brotliPage());

/** The headers of a br hit, as an object. */
export const brHeaders = () => ({
  'content-type': CONTENT_TYPE,
  'content-length': String(pageBr().length),
  etag: ETAG_BR,
  'content-encoding': 'br',
  vary: 'Accept-Encoding',
});

/**
 * Counts what the miss variants' stores are asked to keep: `fills` (an entry stored after a
 * miss, without encodings) and `compressed` (the same entry stored again with its encodings,
 * once the compressor has made them). Reported with the server's stats.
 */
export const counters = { fills: 0, compressed: 0 };

/** A MemoryStore whose `set` counts into `counters` (the same wrapper for both miss variants). */
async function countingStore() {
  const { MemoryStore } = await import('page-dumper');
  const store = new MemoryStore();
  const set = store.set;
  store.set = function countedSet(key, entry, options) {
    if (entry.encodings !== undefined && entry.encodings.length > 0) counters.compressed++;
    else counters.fills++;
    return set.call(this, key, entry, options);
  };
  return store;
}

/**
 * @param {{ made: (options?: object) => import('page-dumper').Dumper, originApp: (before: Function[]) => import('express').Express }} ctx
 *   made: creates the variant's dumper (flushed by the server's `flush` command);
 *   originApp: server.mjs's Express origin (5 ms data access) with middleware in front.
 * @returns {Record<string, () => http.Server | Promise<http.Server>>}
 */
export function compressedVariants({ made, originApp }) {
  return {
    /** node:http sending the precompressed br bytes: the ceiling of a compressed hit. */
    'bare-br': () => {
      const body = pageBr();
      const head = Object.entries(brHeaders()).flat();
      return http.createServer((req, res) => {
        res.writeHead(200, head);
        res.end(body);
      });
    },
    /** Today's setup: compression() in front of a dumper that does not compress; every hit compressed per request. */
    'express-compression-before': async () => {
      const { dumperMiddleware } = await import('page-dumper/node');
      const { default: compression } = await import('compression');
      return http.createServer(originApp([compression(), dumperMiddleware(made({ compress: false }))]));
    },
    /** origin+dumper-miss with the default compress (every request a miss, rendered, stored, then compressed). */
    'miss-compress': async () => {
      const { dumperMiddleware } = await import('page-dumper/node');
      return http.createServer(originApp([dumperMiddleware(made({ store: await countingStore() }))]));
    },
    /** The same with `compress: false`. */
    'miss-compress-off': async () => {
      const { dumperMiddleware } = await import('page-dumper/node');
      return http.createServer(originApp([dumperMiddleware(made({ store: await countingStore(), compress: false }))]));
    },
    /** Fastify route sending the br bytes with the br headers. */
    'fastify-bare-br': async () => {
      const { default: Fastify } = await import('fastify');
      const app = Fastify({ logger: false });
      const body = pageBr();
      const headers = brHeaders();
      app.get(ROUTE, (req, reply) => reply.headers(headers).send(body));
      await app.ready();
      return app.server;
    },
    /** Koa middleware setting the br headers and body. */
    'koa-bare-br': async () => {
      const { default: Koa } = await import('koa');
      const app = new Koa();
      const body = pageBr();
      const headers = brHeaders();
      app.use((ctx, next) => {
        if (ctx.method !== 'GET' || !ctx.path.startsWith(PAGE_PREFIX)) return next();
        ctx.set(headers);
        ctx.body = body;
      });
      return http.createServer(app.callback());
    },
    /** Hono route `c.body(br, 200, brHeaders)` on @hono/node-server. */
    'hono-bare-br': async () => {
      const { Hono } = await import('hono');
      const { createAdaptorServer } = await import('@hono/node-server');
      const app = new Hono();
      const body = pageBr();
      const headers = brHeaders();
      app.get(ROUTE, (c) => c.body(body, 200, headers));
      return createAdaptorServer({ fetch: app.fetch });
    },
  };
}

/**
 * CPU time of this process's threads from /proc (Linux), in µs: `main`, the main thread (the
 * event loop: JavaScript, the HTTP parser, the socket writes), and `all`, every thread (the main
 * one, libuv's thread pool where zlib compresses, V8's GC and compiler threads). `undefined`
 * where /proc is not there.
 */
export function threadCpu() {
  try {
    let main = 0;
    let all = 0;
    for (const t of readdirSync('/proc/self/task')) {
      let ns;
      try {
        ns = Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        continue; // a thread that ended meanwhile
      }
      all += ns;
      if (Number(t) === process.pid) main = ns;
    }
    return { main: main / 1000, all: all / 1000 };
  } catch {
    return undefined;
  }
}
