// The server process of bench/scale.mjs: one store (MemoryStore, SqliteStore or RedisStore) behind
// `createDumper` and `http.createServer(withDumper(dumper, app))`, driven over IPC by the parent.
// The app renders a page of about 2 KB under /p/<i>, tagged with its path and `layout`; the
// parent fills the store through the store API directly (entries shaped like the one the dumper
// stored for /p/0), measures hits over HTTP, and asks this process to invalidate, reporting the
// wall time, the longest event-loop stall (monitorEventLoopDelay, 1 ms resolution) and, for
// Redis, the commands sent.
//
//   node bench/scale-server.mjs <dist> <store> <sqlite path | redis url> <prefix>
import http from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serveHandlers } from './lib/ipc.mjs';
import { fillStore } from './lib/scale-fill.mjs';

const [dist, kind, where, prefix] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createDumper } = await load('index.js');
const { withDumper } = await load('http/node/index.js');

const BODY_BYTES = 2000;
const page = (i) => {
  const head = `<!doctype html><title>page ${i}</title><h1>Page ${i}</h1><p>`;
  return head + 'x'.repeat(BODY_BYTES - head.length - 4) + '</p>';
};

let commands = 0;
/** The longest garbage-collection pause since it was last reset: what explains a stall the store did not cause. */
let gcMax = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMax = Math.max(gcMax, e.duration);
    for (const p of probes) p.gc.push({ at: e.startTime, ms: e.duration });
  }
}).observe({ entryTypes: ['gc'] });
/**
 * What the longest gap between two ticks of a 1 ms timer was made of, while a probe runs: this
 * thread's CPU time in it, its time waiting for a core (both from the kernel's schedstat), the
 * garbage-collection pauses in it, and the longest SqliteStore call in it. The rest of the gap the
 * thread was off a core of its own accord: sleeping, or blocked in a read, a write or a lock.
 */
const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const sched = () => {
  try {
    const [run, wait] = readFileSync(SCHEDSTAT, 'latin1').split(' ');
    return { cpu: Number(run) / 1e6, wait: Number(wait) / 1e6 };
  } catch {
    return { cpu: NaN, wait: NaN };
  }
};
/** The probes running (`startProbe`): a stallStart..stallStop one, and one per timed operation. */
const probes = new Set();
/** Microseconds of the monotonic clock that V8's CPU profiles (`--cpu-prof`) time their samples by. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
function startProbe() {
  let last = performance.now();
  let lastUs = monotonicUs();
  let lastSched = sched();
  const p = { worst: undefined, gc: [], call: { ms: 0, at: 0, name: '' } };
  p.timer = setInterval(() => {
    const now = performance.now();
    const us = monotonicUs();
    const s = sched();
    const gap = now - last;
    if (p.worst === undefined || gap > p.worst.gapMs) {
      p.worst = { from: last, to: now, fromUs: lastUs, toUs: us, gapMs: gap, cpuMs: s.cpu - lastSched.cpu, waitMs: s.wait - lastSched.wait };
    }
    last = now;
    lastUs = us;
    lastSched = s;
  }, 1);
  p.stop = () => {
    clearInterval(p.timer);
    probes.delete(p);
    const w = p.worst;
    if (w === undefined) return undefined;
    const inGap = (t0, ms) => Math.max(0, Math.min(w.to, t0 + ms) - Math.max(w.from, t0));
    const round = (x) => Math.round(x * 10) / 10;
    return {
      gapMs: round(w.gapMs),
      cpuMs: round(w.cpuMs),
      waitForCoreMs: round(w.waitMs),
      gcMs: round(p.gc.reduce((sum, g) => sum + inGap(g.at, g.ms), 0)),
      offCoreMs: round(w.gapMs - w.cpuMs - w.waitMs),
      ...(p.call.at >= w.from && p.call.at <= w.to ? { longestStoreCall: `${p.call.name}() ${round(p.call.ms)} ms` } : {}),
      // The gap on the clock of a CPU profile of this process (bench/stall-profile.mjs).
      pid: process.pid,
      monotonicUs: [w.fromUs, w.toUs],
    };
  };
  probes.add(p);
  return p;
}
let probe;

let store;
if (kind === 'memory') {
  const { MemoryStore } = await load('index.js');
  store = new MemoryStore({ maxBytes: 8 * 2 ** 30 });
} else if (kind === 'sqlite') {
  const { SqliteStore } = await load('stores/sqlite/index.js');
  store = new SqliteStore({ path: where, maxBytes: 2 ** 40 });
} else {
  const { RedisStore } = await load('stores/redis/index.js');
  const { default: Redis } = await import('ioredis');
  const client = new Redis(where, { enableAutoPipelining: true });
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...a) => {
    commands++;
    return send(...a);
  };
  store = new RedisStore({ client, prefix, commandTimeout: 60_000 });
}
if (kind === 'sqlite') {
  // The longest call of each (synchronous but while a write waits for the lock), for the probes.
  for (const name of ['get', 'set', 'invalidate', 'clear']) {
    const call = store[name].bind(store);
    store[name] = (...args) => {
      const t0 = performance.now();
      const out = call(...args);
      const ms = performance.now() - t0;
      for (const p of probes) if (ms > p.call.ms) p.call = { ms, at: t0 + ms, name };
      return out;
    };
  }
}
// compress: false: a hit is a hit, not the first hit of an entry stored without its compressed
// copies (which would compress it then), whatever the number of entries.
const dumper = createDumper({ store, trackRenders: true, compress: false });
let renders = 0;
const app = (req, res) => {
  renders++;
  const i = Number(req.url.slice(3));
  dumper.tag('layout');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(page(i));
};
const server = http.createServer({ keepAliveTimeout: 60_000 }, withDumper(dumper, app));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;

/** The entry the dumper stored for /p/0, found by listing the store. */
let template;
async function learn() {
  await new Promise((resolve, reject) =>
    http.get({ port, host: '127.0.0.1', path: '/p/0', headers: { host: 'scale.test' } }, (res) => res.resume().on('end', resolve)).on('error', reject),
  );
  // A shared store may hold it already (a second process): the key is the host and the path.
  const known = `${dumper.keyPrefix}scale.test/p/0`;
  const got = await store.get(known);
  if (got !== undefined) template = { key: known, entry: got };
  for (let i = 0; i < 500 && template === undefined; i++) {
    const page0 = await store.entries({ pathPrefix: `${dumper.keyPrefix}/p/0`, limit: 10 });
    const found = page0.entries.find((e) => e.path === `${dumper.keyPrefix}/p/0`);
    if (found !== undefined) {
      const got = await store.get(found.key);
      if (got !== undefined) template = { key: found.key, entry: got };
    }
    if (template === undefined) await new Promise((r) => setTimeout(r, 10));
  }
  if (template === undefined) throw new Error(`the page /p/0 was not stored (${renders} renders): ${JSON.stringify(dumper.stats?.() ?? {})}`);
  return { key: template.key, tags: template.entry.tags, headers: template.entry.headers.length / 2, body: template.entry.body.byteLength };
}

/** Stores entries from..to-1 (see bench/lib/scale-fill.mjs). */
const fill = (from, to) => fillStore({ store, kind, template, page, from, to });

/**
 * Wall time, longest stall of this event loop (and what it was made of: see `startProbe`) and
 * Redis commands of `fn` (and the 100 ms after it).
 */
async function timed(fn) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const p = startProbe();
  const c0 = commands;
  gcMax = 0;
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const cmds = commands - c0;
  await new Promise((r) => setTimeout(r, 100));
  h.disable();
  return { ms, stallMs: h.max / 1e6, stall: p.stop(), commands: cmds, gcMs: gcMax };
}

let cpu0;
let loopH;
let stallAnatomy;
const handlers = {
  learn,
  fill: ({ from, to }) => fill(from, to),
  cpuStart() {
    cpu0 = process.cpuUsage();
    loopH = monitorEventLoopDelay({ resolution: 1 });
    loopH.enable();
    gcMax = 0;
    return renders;
  },
  cpuStop() {
    const d = process.cpuUsage(cpu0);
    loopH.disable();
    return { cpuUs: d.user + d.system, renders, stallMs: loopH.max / 1e6, gcMs: gcMax };
  },
  stallStart() {
    probe?.stop();
    probe = startProbe();
    loopH?.disable();
    loopH = monitorEventLoopDelay({ resolution: 1 });
    loopH.enable();
    gcMax = 0;
  },
  stallStop() {
    loopH.disable();
    stallAnatomy = probe?.stop();
    probe = undefined;
    return loopH.max / 1e6;
  },
  /** What the longest gap of the last stallStart..stallStop was made of (see `startProbe`). */
  stallAnatomy: () => stallAnatomy,
  gcMax: () => gcMax,
  async op({ op, n }) {
    if (op === 'paths') return timed(() => dumper.invalidate(Array.from({ length: n }, (_, i) => `/p/${i}`)));
    // `n` paths spread over the store (every `step`-th page from `first`): entries far apart in it.
    if (op === 'scattered') return timed(() => dumper.invalidate(Array.from({ length: n.count }, (_, i) => `/p/${n.first + i * n.step}`)));
    if (op === 'tag') return timed(() => dumper.invalidateTags('layout'));
    if (op === 'all') return timed(() => dumper.invalidateAll());
    throw new Error(op);
  },
  /** What is still held, by the store's own count, and the process's memory. */
  async size() {
    const m = process.memoryUsage();
    const out = { rss: m.rss, heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, external: m.external };
    if (kind === 'memory') Object.assign(out, { entries: store.size, bytes: store.bytes });
    if (kind === 'sqlite') {
      Object.assign(out, { entries: store.size, bytes: store.bytes });
      const size = (p) => {
        try {
          return statSync(p).size;
        } catch {
          return 0;
        }
      };
      out.file = size(where) + size(`${where}-wal`);
    }
    return out;
  },
  renders: () => renders,
  /**
   * `store.get()` of random stored keys, no HTTP: this process's CPU per get (user + system), what
   * grows with the number of entries if anything does. Synchronous stores in one loop; RedisStore
   * 100 gets at a time.
   */
  async getLoop({ n, count }) {
    const head = template.key.slice(0, template.key.lastIndexOf('/p/0') + 3);
    const keyOf = () => head + Math.floor(Math.random() * n);
    const c0 = process.cpuUsage();
    let found = 0;
    if (kind === 'redis') {
      for (let i = 0; i < count; i += 100) {
        const got = await Promise.all(Array.from({ length: 100 }, () => store.get(keyOf())));
        found += got.filter(Boolean).length;
      }
    } else {
      for (let i = 0; i < count; i++) if (store.get(keyOf()) !== undefined) found++;
    }
    const d = process.cpuUsage(c0);
    return { cpuUsPerGet: (d.user + d.system) / count, found, count };
  },
  gc() {
    globalThis.gc?.();
  },
  async close() {
    server.closeAllConnections();
    server.close();
    await dumper.close();
    setTimeout(() => process.exit(0), 50).unref();
  },
};

serveHandlers(handlers);
// Learnt here, at the top level: a request made from the IPC message handler's async context
// reaches the app in a context the dumper cannot attribute its tags in.
const learnt = await learn();
handlers.learn = () => learnt;
process.send({ ready: port });
