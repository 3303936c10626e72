#!/usr/bin/env node
// Scale: how the costs of each store grow from 1,000 to 1,000,000 entries.
//
//   node --expose-gc bench/scale.mjs --store=memory --sizes=1000,100000,1000000
//   node bench/scale.mjs --store=sqlite|redis [--sizes=...] [--ref=<git ref>] [--hit-seconds=5]
//
// The working tree's src/ (or --ref's) is compiled into .tmp/bench-scale-*/. A server process
// (bench/scale-server.mjs: the dumper in front of an app rendering pages of 2,000 bytes under
// /p/<i>, each tagged with its path and `layout`) holds the store. At each size N, in order:
// 1. fill: entries 0..N-1 are stored through the store API directly, in batches (1,000 per
//    batch; 500 concurrent scripts for Redis), each shaped like the entry the dumper stored for
//    /p/0 (2,000-byte body, its headers, tags [path, layout]).
// 2. memory: MemoryStore accounted bytes and process RSS; SqliteStore file (+ WAL) size; Redis
//    `used_memory` (a private redis-server, no persistence). Per entry beyond the 2,000-byte body.
// 3. hits: bench/scale-load.mjs (its own process, 8 keep-alive connections, --hit-seconds) GETs
//    /p/<random below N>; every answer must be a HIT (no render). Server CPU per hit is
//    process.cpuUsage() in the server process over the run, divided by the requests. Then
//    `store.get()` alone in the server process: 200,000 random keys in a loop (RedisStore: 20,000,
//    100 at a time, with Redis's own CPU from INFO), CPU per get. The dumper runs with
//    `compress: false`: the entries are stored without compressed copies, and a hit must not be
//    the first one of an entry, which would compress it then.
// 4. start (SqliteStore, RedisStore): a new server process opens the filled store; the time from
//    spawn to its first HIT answer. That process then serves the hits during the invalidations.
// 5. invalidate one path, 10,000 paths (N at 1,000: the first stored), 1,000 paths spread over the
//    store (N/10 at 1,000: every N/1,000th page), the tag `layout` (on every entry), and
//    invalidateAll(): wall time of the call in the process that made it, Redis commands it sent,
//    the longest event-loop stall in that process and in the process serving hits at the time (the
//    same one for MemoryStore): the longest gap between ticks of a 1 ms timer, with what it was
//    made of (CPU, waiting for a core, GC, the longest SqliteStore call: in the JSON and on
//    stderr), or monitorEventLoopDelay's maximum if larger; then the time until the store's own
//    count (MemoryStore/SqliteStore `size`, Redis DBSIZE) shows the entries freed, with the longest
//    stall meanwhile. The entries are stored again between steps.
// Prints a Markdown table on stdout, progress on stderr, and writes .tmp/scale-<store>.json.
import { execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { buildSrc } from './lib/build-src.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const STORE = flag('store', 'memory');
const SIZES = flag('sizes', '1000,100000,1000000').split(',').map(Number);
const REF = flag('ref', undefined);
const HIT_SECONDS = Number(flag('hit-seconds', '5'));
const CONNECTIONS = 8;
const log = (...a) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);

// ------------------------------------------------------------------ build

const ENTRIES = ['index.ts', 'http/node/index.ts', 'stores/sqlite/index.ts', 'stores/redis/index.ts'];
function build() {
  return buildSrc({ name: 'scale', ref: REF, entries: ENTRIES }).dist;
}

// ------------------------------------------------------------------ processes

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** A scale-server.mjs process, with `call(name, arg)` over IPC. */
function startServer(dist, where, prefix) {
  const t0 = performance.now();
  const child = fork(join(ROOT, 'bench/scale-server.mjs'), [dist, STORE, where, prefix], {
    // SCALE_NODE_FLAGS adds flags, e.g. `--cpu-prof --cpu-prof-dir=.tmp/prof --cpu-prof-interval=250`
    // to take a stall apart with bench/stall-profile.mjs.
    execArgv: ['--max-old-space-size=16384', '--expose-gc', ...(process.env.SCALE_NODE_FLAGS ?? '').split(' ').filter(Boolean)],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 0;
  const waiting = new Map();
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.ready !== undefined) return resolve(m.ready);
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error !== undefined) w.reject(new Error(m.error));
      else w.resolve(m.ok);
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code})`)));
  });
  const call = (name, arg) =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      child.send({ id, name, arg });
    });
  return { child, call, ready, t0 };
}

function load(port, n, seconds) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [join(ROOT, 'bench/scale-load.mjs'), String(port), String(n), String(seconds), String(CONNECTIONS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`the load generator printed ${JSON.stringify(out)}`));
      }
    });
    c.on('error', reject);
  });
}

/** Hits going on until `stop()` (a load process killed then), for the stall of the process serving them. */
function background(port, n) {
  const c = spawn(process.execPath, [join(ROOT, 'bench/scale-load.mjs'), String(port), String(n), '3600', '4'], { stdio: 'ignore' });
  return () => c.kill('SIGTERM');
}

function firstHit(port, n) {
  return new Promise((resolve, reject) => {
    const i = Math.floor(Math.random() * n);
    http
      .get({ host: '127.0.0.1', port, path: `/p/${i}`, headers: { host: 'scale.test' } }, (res) => {
        res.resume().on('end', () => resolve(/HIT/.test(String(res.headers['x-cache']))));
      })
      .on('error', reject);
  });
}

// ------------------------------------------------------------------ redis

let redisProc;
let redis;
async function startRedis() {
  const port = await freePort();
  redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory', '0'], { stdio: 'ignore' });
  const { default: Redis } = await import('ioredis');
  redis = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true });
  for (let i = 0; i < 100; i++) {
    try {
      await redis.connect();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return `redis://127.0.0.1:${port}`;
}
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);

// ------------------------------------------------------------------ run

const dist = build();
log(`built ${REF ?? 'the working tree'} into ${dist}`);
const tmp = mkdtempSync(join(os.tmpdir(), 'pd-scale-'));
const where = STORE === 'sqlite' ? join(tmp, 'pages.sqlite') : STORE === 'redis' ? await startRedis() : '-';
const prefix = 'scale';
const shared = STORE !== 'memory';

/** The store's own count of what it holds: entries (MemoryStore, SqliteStore) or keys (Redis). */
async function held(a) {
  if (STORE === 'redis') return Number(await redis.dbsize());
  return (await a.call('size')).entries;
}

/** Waits until the store's count drops to `target()` or below; the time it took (ms), or undefined after `limit` ms. */
async function reclaimed(a, target, limit) {
  const t0 = performance.now();
  while (performance.now() - t0 < limit) {
    if ((await held(a)) <= (await target())) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

const results = [];
const redisBase = STORE === 'redis' ? await usedMemory() : 0;
const a = startServer(dist, where, prefix);
const portA = await a.ready;
const template = await a.call('learn');
await a.call('gc');
const base = await a.call('size');
log(`template: ${JSON.stringify(template)}`);
let filled = 0;
for (const n of SIZES) {
  const r = { store: STORE, n };
  results.push(r);
  log(`${STORE} ${n}: fill ${filled}..${n}`);
  r.fillMs = await a.call('fill', { from: filled, to: n });
  r.fillPerSec = ((n - filled) / r.fillMs) * 1000;
  filled = n;
  await a.call('gc');
  const size = await a.call('size');
  r.rssPerEntry = (size.rss - base.rss) / n;
  if (STORE === 'memory') r.accountedPerEntry = size.bytes / n;
  if (STORE === 'sqlite') r.filePerEntry = size.file / n;
  if (STORE === 'redis') r.redisPerEntry = ((await usedMemory()) - redisBase) / n;
  log(`${STORE} ${n}: filled in ${(r.fillMs / 1000).toFixed(1)} s; ${JSON.stringify(size)}`);

  // Hits.
  const renders0 = await a.call('cpuStart');
  const hits = await load(portA, n, HIT_SECONDS);
  const cpu = await a.call('cpuStop');
  r.hitsPerSec = (hits.requests / hits.ms) * 1000;
  r.cpuUsPerHit = cpu.cpuUs / hits.requests;
  r.notHit = hits.notHit + (cpu.renders - renders0);
  r.hitStallMs = cpu.stallMs;
  r.hitGcMs = cpu.gcMs;
  log(`${STORE} ${n}: ${Math.round(r.hitsPerSec)} hits/s, ${r.cpuUsPerHit.toFixed(1)} µs CPU/hit, ${r.notHit} not hit`);

  // The store alone: CPU per get() of a random key (in the sync stores, building the key is in it too).
  const redisCpu = async () => {
    const info = await redis.info('cpu');
    return (Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1])) * 1e6;
  };
  const rc0 = STORE === 'redis' ? await redisCpu() : 0;
  const loop = await a.call('getLoop', { n, count: STORE === 'redis' ? 20_000 : 200_000 });
  r.getCpuUs = loop.cpuUsPerGet;
  if (STORE === 'redis') r.redisCpuUsPerGet = ((await redisCpu()) - rc0) / loop.count;
  r.getFound = loop.found / loop.count;
  log(`${STORE} ${n}: get(): ${loop.cpuUsPerGet.toFixed(2)} µs CPU each${STORE === 'redis' ? `, Redis ${r.redisCpuUsPerGet.toFixed(2)} µs` : ''}, ${loop.found}/${loop.count} found`);

  // A second process: time to its first hit, then the server of hits during invalidations.
  let b = a;
  let portB = portA;
  if (shared) {
    b = startServer(dist, where, prefix);
    portB = await b.ready;
    const hit = await firstHit(portB, n);
    r.startMs = performance.now() - b.t0;
    r.startHit = hit;
    log(`${STORE} ${n}: a new process answered its first hit ${r.startMs.toFixed(0)} ms after spawn (hit: ${hit})`);
  }

  const rendered = async () => (await a.call('renders')) + (shared ? await b.call('renders') : 0);
  const invalidate = async (name, op, arg, left) => {
    await b.call('stallStart');
    const stop = background(portB, n);
    await new Promise((res) => setTimeout(res, 300));
    const renders0 = await rendered();
    const out = await a.call('op', { op, n: arg });
    stop();
    if (left !== undefined) await a.call('stallStart');
    out.servingStallMs = shared ? await b.call('stallStop') : out.stallMs;
    if (shared) out.servingStall = await b.call('stallAnatomy');
    if (!shared && left === undefined) await b.call('stallStop');
    r[name] = out;
    log(`${STORE} ${n}: ${name}: ${JSON.stringify(out)}`);
    if (left !== undefined) {
      // Until the store's count shows the entries gone (but those the hits rendered again since,
      // two keys each in Redis), with the longest stall meanwhile.
      const target = async () => left + ((await rendered()) - renders0) * (STORE === 'redis' ? 2 : 1);
      out.reclaimMs = await reclaimed(a, target, 600_000);
      out.reclaimStallMs = await a.call('stallStop');
      out.reclaimStall = await a.call('stallAnatomy');
      out.reclaimGcMs = await a.call('gcMax');
      log(`${STORE} ${n}: ${name}: freed in ${out.reclaimMs?.toFixed(0)} ms (stall ${out.reclaimStallMs} ms)`);
    }
  };
  const k = Math.min(10_000, n);
  await invalidate('one', 'paths', 1);
  await a.call('fill', { from: 0, to: 1 });
  await invalidate('paths', 'paths', k);
  await a.call('fill', { from: 0, to: k });
  // 1,000 paths spread over the whole store (100 at 1,000 entries), not the first ones stored.
  const spread = { count: Math.min(1000, n / 10), first: 7, step: Math.floor(n / Math.min(1000, n / 10)) };
  await invalidate('scattered', 'scattered', spread);
  for (let i = 0; i < spread.count; i++) await a.call('fill', { from: spread.first + i * spread.step, to: spread.first + i * spread.step + 1 });
  // Redis keeps the index set of each path (t:<path>) until the path itself is invalidated.
  await invalidate('tag', 'tag', undefined, STORE === 'redis' ? n + 20 : 0);
  log(`${STORE} ${n}: refill`);
  r.refillMs = await a.call('fill', { from: 0, to: n });
  await invalidate('all', 'all', undefined, STORE === 'redis' ? 20 : 0);
  filled = 0;
  if (shared) {
    await b.call('close');
  }
  writeFileSync(join(ROOT, '.tmp', `scale-${STORE}${REF ? `-${REF}` : ''}.json`), JSON.stringify(results, null, 2));
}
await a.call('close');
redis?.disconnect();
redisProc?.kill();
rmSync(tmp, { recursive: true, force: true });

// ------------------------------------------------------------------ report

const f = (x, d = 0) => (x === undefined ? '–' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
// The stalls: the longest gap between ticks of a 1 ms timer (bench/scale-server.mjs, startProbe),
// which monitorEventLoopDelay's maximum misses when the loop is held from the moment it is enabled.
const gap = (anatomy, histogramMs) => Math.max(anatomy?.gapMs ?? 0, histogramMs ?? 0);
const op = (o) => `${f(o.ms, o.ms < 10 ? 1 : 0)} ms${STORE === 'redis' ? ` / ${o.commands} cmd` : ''}, stall ${f(gap(o.stall, o.stallMs))} / ${f(gap(shared ? o.servingStall : o.stall, o.servingStallMs))} ms`;
const freed = (o) => (o.reclaimMs === undefined ? '' : `; freed in ${f(o.reclaimMs / 1000, 1)} s, stall ${f(gap(o.reclaimStall, o.reclaimStallMs))} ms`);
console.log(`\n### ${STORE}${REF ? ` (${REF})` : ''}\n`);
console.log('| entries | fill /s | memory /entry | hits/s | CPU µs/hit | get() CPU µs | first hit of a new process | invalidate 1 path | 10,000 paths | 1,000 scattered paths | tag on every entry | invalidateAll() |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const mem =
    STORE === 'memory'
      ? `${f(r.accountedPerEntry)} B counted, ${f(r.rssPerEntry)} B RSS growth`
      : STORE === 'sqlite'
        ? `${f(r.filePerEntry)} B file`
        : `${f(r.redisPerEntry)} B used_memory`;
  console.log(
    `| ${f(r.n)} | ${f(r.fillPerSec)} | ${mem} | ${f(r.hitsPerSec)}${r.notHit ? ` (${r.notHit} not hit)` : ''} | ${f(r.cpuUsPerHit, 1)} | ${f(r.getCpuUs, 2)}${r.redisCpuUsPerGet === undefined ? '' : ` (+${f(r.redisCpuUsPerGet, 2)} in Redis)`} | ${r.startMs === undefined ? '–' : `${f(r.startMs)} ms`} | ${op(r.one)} | ${op(r.paths)} | ${op(r.scattered)} | ${op(r.tag)}${freed(r.tag)} | ${op(r.all)}${freed(r.all)} |`,
  );
}
