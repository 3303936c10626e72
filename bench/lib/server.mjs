// One benchmark server, run as a child process: `node bench/lib/server.mjs <variant>`.
// The node and Express variants are here; the Fastify, Koa and Hono ones are in frameworks.mjs.
// Listens on 127.0.0.1 (ephemeral port), then tells the parent over IPC:
//   -> { type: 'ready', port, variant }
//   <- { cmd: 'stats' }  -> { type: 'stats', renders, cpu, rss }   (cpu in microseconds, user+system)
//      with `threads: true` (bench/compressed.mjs) also `threads: { main, all }`, CPU µs of the main thread and of
//      every thread from /proc, and `counters`, what the miss variants of bench/compressed.mjs stored
//   <- { cmd: 'flush', deferred? }  -> { type: 'flushed' }   (after `dumper.flushCompression({ deferred })`, when there is a dumper)
//   <- { cmd: 'exit' }   -> exits (lets --cpu-prof write its profile)
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { createDumper, MemoryStore } from 'page-dumper';
import { dumperMiddleware, withDumper } from 'page-dumper/node';
import { compressedVariants, counters, threadCpu } from './compressed.mjs';
import { frameworkVariants } from './frameworks.mjs';
import { CONTENT_TYPE, ETAG, PAGE } from './page.mjs';

const require = createRequire(import.meta.url);

/** Simulated data access of the origin, in ms. */
const DATA_MS = Number(process.env.BENCH_DATA_MS ?? 5);
const RAW_HEAD = ['content-type', CONTENT_TYPE, 'content-length', String(PAGE.length), 'etag', ETAG];
export const ROUTE = '/page/:id';

let renders = 0;
/** The variant's dumper, if any (its store size is reported with the stats). */
let dumper;
const made = (options) => (dumper = createDumper(options));
/**
 * Experiment knob (bench/profile.mjs, not used by run.mjs): BENCH_MISS_STORE_BYTES sets the miss
 * variant's MemoryStore maxBytes; `1` makes the store refuse every entry, isolating the cost of
 * capture and the fill protocol from the cost of keeping 64 MiB of pages.
 */
const missStore = () => {
  const bytes = process.env.BENCH_MISS_STORE_BYTES;
  return bytes === undefined ? undefined : { store: new MemoryStore({ maxBytes: Number(bytes) }) };
};

/** The origin route: 5 ms of "data access", then the page, with the same three headers. */
function originRoute(req, res) {
  setTimeout(() => {
    renders++;
    res.set('Content-Type', CONTENT_TYPE);
    res.set('ETag', ETAG); // set, so Express does not hash the body itself on every render
    res.send(PAGE);
  }, DATA_MS);
}

function originApp(before) {
  const app = express();
  for (const mw of before) app.use(mw);
  app.get(ROUTE, originRoute);
  return app;
}

const variants = {
  /** node:http sending the bytes: the ceiling of any node server on this machine. */
  bare: () =>
    http.createServer((req, res) => {
      res.writeHead(200, RAW_HEAD);
      res.end(PAGE);
    }),
  /** page-dumper's front door around the Express origin: hits never reach Express. */
  'front-door': () => http.createServer(withDumper(made(), originApp([]))),
  /** page-dumper as the first Express middleware. */
  'express-middleware': () => http.createServer(originApp([dumperMiddleware(made())])),
  /** Express whose first middleware sends the bytes: the ceiling of any Express middleware. */
  'express-ceiling': () =>
    http.createServer(
      originApp([
        (req, res) => {
          res.writeHead(200, RAW_HEAD);
          res.end(PAGE);
        },
      ]),
    ),
  /** apicache (in-memory) in front of the same origin route. */
  apicache: () => {
    const apicache = require('apicache');
    return http.createServer(originApp([apicache.middleware('1 hour')]));
  },
  /**
   * The front door on each store (bench/stores.mjs). The shared stores' servers read their
   * address from BENCH_REDIS_URL and BENCH_SQLITE_PATH.
   */
  'store-memory': () => http.createServer(withDumper(made(), originApp([]))),
  'store-redis': async () => {
    const { RedisStore } = await import('page-dumper/redis');
    return http.createServer(withDumper(made({ store: new RedisStore({ url: process.env.BENCH_REDIS_URL }) }), originApp([])));
  },
  'store-redis-local': async () => {
    const { RedisStore } = await import('page-dumper/redis');
    const store = new RedisStore({ url: process.env.BENCH_REDIS_URL, prefix: 'bench-local:', localTier: true });
    return http.createServer(withDumper(made({ store }), originApp([])));
  },
  'store-sqlite': async () => {
    const { SqliteStore } = await import('page-dumper/sqlite');
    return http.createServer(withDumper(made({ store: new SqliteStore({ path: process.env.BENCH_SQLITE_PATH }) }), originApp([])));
  },
  /** The origin alone, no cache. */
  origin: () => http.createServer(originApp([])),
  /** The origin behind dumperMiddleware, driven with a unique path per request: every request is a miss that is rendered and stored. */
  'origin+dumper-miss': () => http.createServer(originApp([dumperMiddleware(made(missStore()))])),
  // Fastify, Koa and Hono (bench/frameworks.mjs): factories returning a promise of the server.
  ...frameworkVariants({ made, rendered: () => renders++, dataMs: DATA_MS }),
  // Compressed hits (bench/compressed.mjs): br bare routes, compression() in front, misses with and without compress.
  ...compressedVariants({ made, originApp }),
};

export const VARIANTS = Object.keys(variants);

// CPU profiling of a window of the server's life (bench/profile.mjs), through the inspector.
let session;
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
async function profileStart(intervalUs = 100) {
  const inspector = await import('node:inspector');
  session = new inspector.Session();
  session.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalUs });
  await post('Profiler.start');
}
async function profileStop() {
  const { profile } = await post('Profiler.stop');
  session.disconnect();
  return JSON.stringify(profile);
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const name = isMain ? process.argv[2] : undefined;
if (isMain) {
  const make = variants[name];
  if (make === undefined) {
    console.error(`unknown variant ${name}; one of: ${VARIANTS.join(', ')}`);
    process.exit(2);
  }
  const server = await make();
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    if (process.send) process.send({ type: 'ready', port, variant: name });
    else console.log(`${name} listening on http://127.0.0.1:${port}/page/1`);
  });
  process.on('message', (msg) => {
    if (msg?.cmd === 'stats') {
      const cpu = process.cpuUsage();
      const store = dumper && { size: dumper.store.size, bytes: dumper.store.bytes };
      const extra = msg.threads === true ? { threads: threadCpu(), counters } : undefined;
      process.send({ type: 'stats', renders, cpu: cpu.user + cpu.system, rss: process.memoryUsage.rss(), store, ...extra });
    } else if (msg?.cmd === 'flush') {
      Promise.resolve(dumper?.flushCompression({ deferred: msg.deferred !== false })).then(() => process.send({ type: 'flushed' }));
    } else if (msg?.cmd === 'profile-start') {
      profileStart(msg.intervalUs).then(() => process.send({ type: 'profiling' }));
    } else if (msg?.cmd === 'profile-stop') {
      profileStop().then((profile) => process.send({ type: 'profile', profile }));
    } else if (msg?.cmd === 'exit') {
      server.closeAllConnections?.();
      server.close();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}
