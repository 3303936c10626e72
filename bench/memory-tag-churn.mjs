#!/usr/bin/env node
// MemoryStore with a tag on every entry (`layout`) while pages are invalidated and stored again:
// the longest single `set()`, which is where V8 grows or rehashes a Set or Map of the indexes.
//
//   node bench/memory-tag-churn.mjs --ref=HEAD~1 --entries=1000000 --churn=200000
//
// The working tree's src/ and `--ref`'s are compiled (bench/lib/build-src.mjs); for each build, in
// a child process of its own (`--rounds` times, alternating): `--entries` entries shaped like the
// dumper's (a key, eight header strings, a 2,000-byte body, tags: the path's and `layout`), a
// tenth of them query-string variants, are stored; then `--churn` times a random page is
// invalidated by its path tag (as a write to it does) and stored again (as its next request
// renders it). Each `invalidate()` and `set()` is timed; printed: the longest, how many took over
// 10 ms, and the main thread's CPU per churned page (Linux schedstat). Prints Markdown.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSrc } from './lib/build-src.mjs';
import { childResult } from './lib/ipc.mjs';
import { number, option } from './lib/options.mjs';

const threadCpuMs = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'latin1').split(' ')[0]) / 1e6;

async function run(dist, o) {
  const { MemoryStore } = await import(pathToFileURL(path.join(dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: 2 ** 45 });
  const prefix = 'dumper.cached_path.';
  const layout = `${prefix}layout`;
  const date = new Date(1_700_000_000_000).toUTCString();
  const plain = { maxVariantsPerPath: 16, variant: false };
  const variant = { maxVariantsPerPath: 16, variant: true };
  const body = Buffer.alloc(2000, 120);
  // Every tenth page is the variant `?page=2` of a path of its own.
  const key = (i) => (i % 10 === 9 ? `${prefix}bench.test/p/${i}?page=2` : `${prefix}bench.test/p/${i}`);
  const pathTag = (i) => `${prefix}/p/${i}`;
  const store1 = (i) => {
    const p = pathTag(i);
    const etag = `"${(i * 2654435761).toString(16).padStart(16, '0')}"`;
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', '2000'];
    return store.set(key(i), { status: 200, headers, body, etag, storedAt: Date.now(), seq: store.sequence(), path: p, tags: [p, layout] }, i % 10 === 9 ? variant : plain);
  };
  for (let i = 0; i < o.entries; i++) store1(i);
  globalThis.gc?.();
  // The sweeping after a forced collection finishes first (it slowed the next call).
  await new Promise((resolve) => setTimeout(resolve, 1000));
  let longestSet = 0;
  let longestInvalidate = 0;
  let over10 = 0;
  let seed = 12345;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % o.entries);
  const c0 = threadCpuMs();
  for (let n = 0; n < o.churn; n++) {
    const i = random();
    let t = performance.now();
    store.invalidate([pathTag(i)]);
    let ms = performance.now() - t;
    longestInvalidate = Math.max(longestInvalidate, ms);
    if (ms > 10) over10++;
    t = performance.now();
    store1(i);
    ms = performance.now() - t;
    longestSet = Math.max(longestSet, ms);
    if (ms > 10) over10++;
    // A turn of the event loop now and then, as between requests.
    if (n % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  const cpuUs = ((threadCpuMs() - c0) * 1000) / o.churn;
  if (store.size !== o.entries) throw new Error(`${store.size} entries held, ${o.entries} expected`);
  return { longestSet, longestInvalidate, over10, cpuUs };
}

if (process.argv[2] === '--child') {
  process.send(await run(process.argv[3], JSON.parse(process.argv[4])));
  process.exit(0);
}

const o = { entries: number('entries', 1_000_000), churn: number('churn', 200_000) };
const rounds = number('rounds', 2);
const ref = option('ref', ['HEAD'])[0];
const builds = [
  { name: ref, dist: buildSrc({ name: 'churn-ref', ref, entries: ['index.ts'] }).dist },
  { name: 'working tree', dist: buildSrc({ name: 'churn-tree', ref: undefined, entries: ['index.ts'] }).dist },
];
const results = [];
for (let r = 0; r < rounds; r++) {
  for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
    const out = await childResult(fileURLToPath(import.meta.url), ['--child', b.dist, JSON.stringify(o)], ['--max-old-space-size=16384', '--expose-gc']);
    process.stderr.write(`${b.name}: ${JSON.stringify(out)}\n`);
    results.push({ name: b.name, ...out });
  }
}
const f = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`\nMemoryStore of ${f(o.entries)} entries, \`layout\` on each: ${f(o.churn)} pages invalidated and stored again\n`);
console.log('| build | longest set() | longest invalidate() | calls over 10 ms | main thread CPU per page |');
console.log('|---|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.name} | ${f(r.longestSet, 1)} ms | ${f(r.longestInvalidate, 1)} ms | ${r.over10} | ${f(r.cpuUs, 1)} µs |`);
}
