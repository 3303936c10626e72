#!/usr/bin/env node
// MemoryStore freeing the entries of a tag carried by every one of them: the longest event-loop
// stall while it runs in the background, without HTTP (bench/scale.mjs measures the same through
// a server, beside other things; this is the part it found stalling).
//
//   npm run build && node bench/memory-reclaim.mjs
//   node bench/memory-reclaim.mjs --entries=1000000 --dist=.tmp/before/dist --dist=dist
//
// For each `--dist` (repeatable; default dist: a build of src/, see bench/memory-flood.mjs for
// building another commit), in a child process of its own (`node --expose-gc
// --max-old-space-size=16384`, plus `--node-arg=...` flags, repeatable, e.g.
// `--node-arg=--cpu-prof`):
// 1. `--entries` (1,000,000) entries are stored with `store.set()` in a MemoryStore too large to
//    evict, each shaped like the entry the dumper stores for a page (a key, eight header strings
//    with the etag among them, a `--body`-byte (2,000) body in a buffer of its own, tags: its path
//    tag and `layout`, every string a fresh one), then a full GC.
// 2. `store.invalidate(['layout'])` is timed, and then, until `store.size` is 0 (polled every
//    10 ms): the longest event-loop stall (`monitorEventLoopDelay`, 1 ms resolution), the longest
//    gap between two turns seen by a `setImmediate` chain (what a request waiting for the loop
//    waits at most), and the longest garbage-collection pause (`PerformanceObserver` 'gc'), over
//    the call and the freeing. `get()` of a random key every turn checks that no invalidated
//    entry is ever answered.
// Prints Markdown; writes nothing.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { option, number } from './lib/options.mjs';
import { childResult } from './lib/ipc.mjs';
import { fresh } from './lib/page.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const log = (s) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function run(dist, count, bodySize) {
  const { MemoryStore } = await import(pathToFileURL(path.resolve(ROOT, dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: 2 ** 40 });
  const prefix = 'dumper.cached_path.';
  const layout = `${prefix}layout`;
  const date = new Date(1_700_000_000_000).toUTCString();
  const limits = { maxVariantsPerPath: 16, variant: false };
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const p = fresh(`${prefix}/p/${i}`);
    const key = fresh(`${prefix}scale.test/p/${i}`);
    const etag = fresh(`"${(i * 2654435761).toString(16).padStart(16, '0')}-${bodySize.toString(16)}"`);
    const body = Buffer.allocUnsafeSlow(bodySize).fill(i & 0xff);
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', String(bodySize)].map(fresh);
    headers[3] = etag;
    const entry = { status: 200, headers, body, etag, storedAt: 1_700_000_000_000, seq: 0, path: p, tags: [p, layout] };
    if (!store.set(key, entry, limits)) throw new Error(`entry ${i} was refused`);
    if (i % 100_000 === 99_999) log(`${dist}: ${i + 1} stored`);
  }
  const fillMs = performance.now() - t0;
  for (let i = 0; i < 2; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
  if (store.size !== count) throw new Error(`the store holds ${store.size} entries, not ${count}`);

  let gcMax = 0;
  let gcTotal = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMax = Math.max(gcMax, e.duration);
      gcTotal += e.duration;
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  // The gap between two turns of the loop, with what the main thread did meanwhile (Linux
  // schedstat: time on a CPU, time runnable but waiting for one), and a hit attempted every turn.
  let gapMax = 0;
  let gapRun = NaN;
  let gapWait = NaN;
  let runMax = 0;
  let served = 0;
  let running = true;
  let last = performance.now();
  let sched = schedstat();
  const turn = () => {
    const now = performance.now();
    const s = schedstat();
    const run = (s[0] - sched[0]) / 1e6;
    if (now - last > gapMax) [gapMax, gapRun, gapWait] = [now - last, run, (s[1] - sched[1]) / 1e6];
    runMax = Math.max(runMax, run);
    last = now;
    sched = s;
    if (store.get(`${prefix}scale.test/p/${Math.floor(Math.random() * count)}`) !== undefined) served++;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);

  const c0 = performance.now();
  store.invalidate([layout]);
  const callMs = performance.now() - c0;
  while (store.size > 0) await new Promise((r) => setTimeout(r, 10));
  const freeMs = performance.now() - c0;
  running = false;
  await new Promise((r) => setTimeout(r, 20));
  h.disable();
  gcObserver.disconnect();
  return { dist, count, fillMs, callMs, freeMs, stallMs: h.max / 1e6, gapMs: gapMax, gapRunMs: gapRun, gapWaitMs: gapWait, runMaxMs: runMax, gcMaxMs: gcMax, gcTotalMs: gcTotal, served };
}

/** The main thread's time on a CPU and waiting for one, in ns (/proc/thread-self/schedstat); NaN elsewhere. */
function schedstat() {
  try {
    return readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ').map(Number);
  } catch {
    return [NaN, NaN];
  }
}

if (process.argv[2] === '--child') {
  const [dist, count, bodySize] = process.argv.slice(3);
  process.send(await run(dist, Number(count), Number(bodySize)));
  process.exit(0);
}

const dists = option('dist', ['dist']);
const count = number('entries', 1_000_000);
const bodySize = number('body', 2000);
const nodeArgs = option('node-arg', []);
const results = [];
for (const dist of dists) {
  log(`${dist}: ${count} entries`);
  const result = await childResult(fileURLToPath(import.meta.url), ['--child', dist, String(count), String(bodySize)], ['--expose-gc', '--max-old-space-size=16384', ...nodeArgs]);
  log(JSON.stringify(result));
  results.push(result);
}
const f = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`\nMemoryStore, ${f(count)} entries of ${f(bodySize)} bytes, invalidate(['layout']) (on every entry)\n`);
console.log(
  '| build | fill /s | the call | freed in | longest stall (loop delay) | longest gap between turns (on a CPU / waiting for one) | most CPU time between two turns | longest GC pause (total) | invalidated entries served |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.dist} | ${f((r.count / r.fillMs) * 1000)} | ${f(r.callMs, 2)} ms | ${f(r.freeMs / 1000, 1)} s | ${f(r.stallMs)} ms | ${f(r.gapMs, 1)} ms (${f(r.gapRunMs, 1)} / ${f(r.gapWaitMs, 1)}) | ${f(r.runMaxMs, 1)} ms | ${f(r.gcMaxMs, 1)} ms (${f(r.gcTotalMs)} ms) | ${r.served} |`,
  );
}
