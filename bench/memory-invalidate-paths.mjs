#!/usr/bin/env node
// MemoryStore invalidating many paths at once: what the call costs, and the freeing after it.
//
//   npm run build && node bench/memory-invalidate-paths.mjs
//   node bench/memory-invalidate-paths.mjs --dist=.tmp/before/dist --dist=dist --entries=100000,1000000 \
//     --paths=10000 --body=2000
//
// For each size in `--entries` and each `--dist` (a build of src/, see bench/memory-flood.mjs for
// building another commit), in a child process of its own: that many entries shaped like the
// dumper's (a key, eight header strings, a `--body`-byte body, tags: its path tag and `layout`)
// are stored with `set()`; then one `invalidate()` of `--paths` (10,000) of their path tags, spread
// over the store (every n-th page), as `dumper.invalidate()` of that many paths makes it, timed
// (wall clock, and the main thread's time on a CPU from Linux's schedstat: the process's CPU time
// would add the garbage collector's helper threads, busy after the fill). Until `size` shows the entries gone, a `setImmediate` chain
// measures the longest gap between two turns of the event loop and `get()`s one of the invalidated
// keys on every turn (an invalidated entry must never be answered: the count is printed). Prints
// Markdown; writes nothing.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { option, number } from './lib/options.mjs';
import { childResult } from './lib/ipc.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The main thread's time on a CPU so far, in ms (Linux schedstat; `process.cpuUsage()` adds V8's helper threads). */
function threadCpuMs() {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'latin1').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

async function run(dist, count, o) {
  const { MemoryStore } = await import(pathToFileURL(path.resolve(ROOT, dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: 2 ** 45 });
  const prefix = 'dumper.cached_path.';
  const layout = `${prefix}layout`;
  const date = new Date(1_700_000_000_000).toUTCString();
  const limits = { maxVariantsPerPath: 16, variant: false };
  const key = (i) => `${prefix}bench.test/p/${i}`;
  const tag = (i) => `${prefix}/p/${i}`;
  for (let i = 0; i < count; i++) {
    const p = tag(i);
    const etag = `"${(i * 2654435761).toString(16).padStart(16, '0')}"`;
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', String(o.body)];
    store.set(key(i), { status: 200, headers, body: Buffer.allocUnsafeSlow(o.body).fill(i & 0xff), etag, storedAt: 0, seq: 0, path: p, tags: [p, layout] }, limits);
  }
  const step = Math.max(1, Math.floor(count / o.paths));
  const chosen = Array.from({ length: Math.min(o.paths, count) }, (_, j) => j * step);
  const tags = chosen.map(tag);
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const sizeBefore = store.size;
  const s0 = threadCpuMs();
  const t0 = performance.now();
  store.invalidate(tags);
  const callMs = performance.now() - t0;
  const callCpuMs = threadCpuMs() - s0;
  const heldAfterCall = store.size;
  let served = 0;
  let maxGap = 0;
  let turns = 0;
  let last = performance.now();
  const target = sizeBefore - chosen.length;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      turns++;
      if (store.get(key(chosen[turns % chosen.length])) !== undefined) served++;
      if (store.size <= target) resolve();
      else setImmediate(tick);
    };
    setImmediate(tick);
  });
  return { dist, count, paths: chosen.length, callMs, callCpuMs, heldAfterCall, freedMs: performance.now() - t0, maxGap, turns, served, left: store.size };
}

if (process.argv[2] === '--child') {
  process.send(await run(process.argv[3], Number(process.argv[4]), JSON.parse(process.argv[5])));
  process.exit(0);
}

const o = { paths: number('paths', 10_000), body: number('body', 2000) };
const sizes = option('entries', ['100000,1000000'])[0].split(',').map(Number);
const results = [];
for (const count of sizes) {
  for (const dist of option('dist', ['dist'])) {
    const r = await childResult(fileURLToPath(import.meta.url), ['--child', dist, String(count), JSON.stringify(o)], ['--max-old-space-size=16384', '--expose-gc']);
    process.stderr.write(`${JSON.stringify(r)}\n`);
    results.push(r);
  }
}
const f = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`\nMemoryStore, invalidate() of ${f(o.paths)} paths of an entry each (${f(o.body)}-byte bodies)\n`);
console.log('| build | entries | the call (main thread on a CPU) | entries held after the call | freed in | longest gap between two turns meanwhile | invalidated entries served |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.dist} | ${f(r.count)} | ${f(r.callMs, 2)} ms (${f(r.callCpuMs, 1)} ms) | ${f(r.heldAfterCall)} | ${f(r.freedMs, 0)} ms | ${f(r.maxGap, 1)} ms | ${r.served} |`,
  );
}
