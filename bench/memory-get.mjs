#!/usr/bin/env node
// MemoryStore `get()` and `set()` alone, in a loop: what a hit and a fill cost the store.
//
//   npm run build && node bench/memory-get.mjs
//   node bench/memory-get.mjs --dist=.tmp/before/dist --dist=dist --entries=1000,100000 --rounds=5
//
// For each size in `--entries` and each round (`--rounds`, 5), each `--dist` (a build of src/, see
// bench/memory-flood.mjs for building another commit) runs in a child process of its own, the
// builds alternating in each round: entries shaped like the dumper's (a key, eight header strings,
// a 2,000-byte body, tags: its path tag and `layout`) are stored with `set()` (timed: the fill),
// then `get()` of a random stored key, the key built anew each time as the dumper builds it from
// the request (prefix + host + path: a fresh string, hashed by the lookup), `--gets` (1,000,000)
// times, with the loop building the keys alone timed the same way and taken off. Prints the median
// over the rounds of the CPU time per call (this process's user + system, `process.cpuUsage()`)
// and the range; writes nothing.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { option } from './lib/options.mjs';
import { childResult } from './lib/ipc.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const cpu = (c0) => {
  const d = process.cpuUsage(c0);
  return d.user + d.system;
};

async function run(dist, count, gets) {
  const { MemoryStore } = await import(pathToFileURL(path.resolve(ROOT, dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: 2 ** 40 });
  const prefix = 'dumper.cached_path.';
  const layout = `${prefix}layout`;
  const head = `${prefix}bench.test/p/`;
  const date = new Date(1_700_000_000_000).toUTCString();
  const limits = { maxVariantsPerPath: 16, variant: false };
  const entries = [];
  for (let i = 0; i < count; i++) {
    const p = `${prefix}/p/${i}`;
    const etag = `"${(i * 2654435761).toString(16).padStart(16, '0')}-7d0"`;
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', '2000'];
    entries.push({ status: 200, headers, body: Buffer.allocUnsafeSlow(2000).fill(i & 0xff), etag, storedAt: 1_700_000_000_000, seq: 0, path: p, tags: [p, layout] });
  }
  let c0 = process.cpuUsage();
  for (let i = 0; i < count; i++) if (!store.set(head + i, entries[i], limits)) throw new Error(`entry ${i} was refused`);
  const setUs = cpu(c0) / count;
  // Random keys, drawn beforehand; each built again per call.
  const picks = Uint32Array.from({ length: gets }, () => Math.floor(Math.random() * count));
  let sink = 0;
  c0 = process.cpuUsage();
  for (let i = 0; i < gets; i++) sink += (head + picks[i]).length;
  const keysUs = cpu(c0) / gets;
  let found = 0;
  c0 = process.cpuUsage();
  for (let i = 0; i < gets; i++) if (store.get(head + picks[i]) !== undefined) found++;
  const getUs = cpu(c0) / gets - keysUs;
  if (found !== gets) throw new Error(`${gets - found} gets found nothing`);
  return { dist, count, setUs, getUs, sink };
}

if (process.argv[2] === '--child') {
  const [dist, count, gets] = process.argv.slice(3);
  process.send(await run(dist, Number(count), Number(gets)));
  process.exit(0);
}

const dists = option('dist', ['dist']);
const sizes = option('entries', ['1000,100000'])[0].split(',').map(Number);
const rounds = Number(option('rounds', ['5'])[0]);
const gets = Number(option('gets', ['1000000'])[0]);
const results = new Map();
for (const count of sizes) {
  for (let round = 0; round < rounds; round++) {
    for (const dist of dists) {
      const r = await childResult(fileURLToPath(import.meta.url), ['--child', dist, String(count), String(gets)]);
      process.stderr.write(`${JSON.stringify(r)}\n`);
      const key = `${count}\t${dist}`;
      if (!results.has(key)) results.set(key, []);
      results.get(key).push(r);
    }
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f = (x) => (x * 1000).toFixed(0);
console.log(`\nMemoryStore CPU per call, ns: median of ${rounds} rounds (range)\n`);
console.log('| entries | build | get() | set() |');
console.log('|---:|---|---:|---:|');
for (const [key, rs] of results) {
  const [count, dist] = key.split('\t');
  const g = rs.map((r) => r.getUs);
  const s = rs.map((r) => r.setUs);
  console.log(
    `| ${Number(count).toLocaleString('en-US')} | ${dist} | ${f(median(g))} (${f(Math.min(...g))}–${f(Math.max(...g))}) | ${f(median(s))} (${f(Math.min(...s))}–${f(Math.max(...s))}) |`,
  );
}
