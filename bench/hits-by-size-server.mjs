// The server process of bench/hits-by-size.mjs: one store (MemoryStore, SqliteStore or RedisStore)
// behind `createDumper({ compress: false })` and `http.createServer(withDumper(dumper, app))`, the
// app rendering a page of 2,000 bytes under /p/<i>, tagged with its path and `layout`. Driven over
// IPC by the parent: `fill` stores entries 0..n-1 through the store API directly (each shaped like
// the entry the dumper stored for /p/0), `cpuStart`/`cpuStop` bracket a round of hits and return
// this process's CPU (`process.cpuUsage()`, user + system) and garbage-collection time over it,
// `profStart`/`profStop` record a V8 CPU profile of a round (node:inspector) into a file.
//
//   node --max-old-space-size=<MiB> bench/hits-by-size-server.mjs <dist> <store> <sqlite path | redis url> [localBytes]
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { constants as perfConstants, PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveHandlers } from './lib/ipc.mjs';
import { fillStore } from './lib/scale-fill.mjs';

const [dist, kind, where, local] = process.argv.slice(2);
/** SqliteStore/RedisStore `localBytes` (decoded copies kept in the process), when given. */
const localBytes = local === undefined || local === '' ? {} : { localBytes: Number(local) };
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createDumper, MemoryStore } = await load('index.js');
const { withDumper } = await load('http/node/index.js');

const BODY_BYTES = 2000;
const page = (i) => {
  const head = `<!doctype html><title>page ${i}</title><h1>Page ${i}</h1><p>`;
  return head + 'x'.repeat(BODY_BYTES - head.length - 4) + '</p>';
};

/** Garbage-collection pauses since the last reset: time (ms) and count, all and scavenges alone. */
let gcMs = 0;
let gcCount = 0;
let minorMs = 0;
let minorCount = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    gcCount++;
    if (e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
      minorMs += e.duration;
      minorCount++;
    }
  }
}).observe({ entryTypes: ['gc'] });

let store;
let client;
if (kind === 'memory') {
  // About 3,100 bytes are counted per entry of a 2,000-byte body: 8 GiB holds a million with room.
  store = new MemoryStore({ maxBytes: 8 * 2 ** 30 });
} else if (kind === 'sqlite') {
  const { SqliteStore } = await load('stores/sqlite/index.js');
  store = new SqliteStore({ path: where, maxBytes: 2 ** 40, ...localBytes });
} else if (kind === 'redis') {
  const { RedisStore } = await load('stores/redis/index.js');
  const { default: Redis } = await import('ioredis');
  client = new Redis(where, { enableAutoPipelining: true });
  store = new RedisStore({ client, commandTimeout: 60_000, ...localBytes });
} else {
  throw new Error(`unknown store ${kind}`);
}
const dumper = createDumper({ store, trackRenders: true, compress: false });
let renders = 0;
const app = (req, res) => {
  renders++;
  const i = Number(req.url.slice(3));
  dumper.tag('layout');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(page(i));
};
const server = http.createServer({ keepAliveTimeout: 600_000 }, withDumper(dumper, app));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;

// The entry the dumper stores for /p/0 (rendered once through HTTP), the model of every filled entry.
await new Promise((resolve, reject) =>
  http.get({ port, host: '127.0.0.1', path: '/p/0', headers: { host: 'scale.test' } }, (res) => res.resume().on('end', resolve)).on('error', reject),
);
let template;
for (let i = 0; i < 500 && template === undefined; i++) {
  const listed = await store.entries({ pathPrefix: `${dumper.keyPrefix}/p/0`, limit: 10 });
  const found = listed.entries.find((e) => e.path === `${dumper.keyPrefix}/p/0`);
  if (found !== undefined) {
    const got = await store.get(found.key);
    if (got !== undefined) template = { key: found.key, entry: got };
  }
  if (template === undefined) await new Promise((r) => setTimeout(r, 10));
}
if (template === undefined) throw new Error(`the page /p/0 was not stored (${renders} renders)`);

/** Stores entries from..to-1 (see bench/lib/scale-fill.mjs), reporting progress to the parent. */
const fill = (from, to) => fillStore({ store, kind, template, page, from, to, progress: (done) => process.send({ progress: done }) });

let cpu0;
let renders0;
let session;
const handlers = {
  fill: ({ from, to }) => fill(from, to),
  cpuStart() {
    gcMs = 0;
    gcCount = 0;
    minorMs = 0;
    minorCount = 0;
    renders0 = renders;
    cpu0 = process.cpuUsage();
  },
  cpuStop() {
    const d = process.cpuUsage(cpu0);
    return { userUs: d.user, systemUs: d.system, gcMs, gcCount, minorMs, minorCount, renders: renders - renders0 };
  },
  async profStart() {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  },
  async profStop(file) {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    writeFileSync(file, JSON.stringify(profile));
  },
  size() {
    const m = process.memoryUsage();
    const out = { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
    if (kind !== 'redis') Object.assign(out, { entries: store.size, bytes: store.bytes });
    return out;
  },
  async close() {
    server.closeAllConnections();
    server.close();
    await dumper.close();
    setTimeout(() => process.exit(0), 50).unref();
  },
};

serveHandlers(handlers);
process.send({ ready: port });
