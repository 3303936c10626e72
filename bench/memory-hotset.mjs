#!/usr/bin/env node
// MemoryStore at its byte bound under a flood of new keys: does the hot set stay in?
//
//   npm run build && node bench/memory-hotset.mjs
//   node bench/memory-hotset.mjs --dist=.tmp/before/dist --dist=dist --pages=1000000 --hot=0.01 \
//     --hot-share=0.9 --requests=3000000 --max-bytes=67108864 --body=2000
//
// Through the store API, with the dumper's entry shape and its order of calls: each request is
// `get(key)`; a miss is followed by `set(key, entry)` at the sequence number read before it, as the
// dumper stores a page it rendered (a key, eight header strings with the etag among them, a
// `--body`-byte body in a buffer of its own, the path tag; every string a fresh one). There is no
// HTTP, no rendering and no compression: what is measured is the store's eviction alone.
//
// The site has `--pages` (1,000,000) pages; the first `--hot` (1 %) of them take `--hot-share`
// (90 %) of the requests, uniformly; the other requests go to the 99 % others, uniformly, so that
// nearly all of them are a page never requested before: a flood of new keys, each stored and each
// pushing the store past `--max-bytes` (the default bound, 64 MiB), where it evicts. The hit rate
// of the hot pages is counted after each of them was requested once (the first request of a page
// is a miss in any cache), over `--requests` requests, per tenth of the run so that a drift shows.
// Each `--dist` (repeatable; default dist, see bench/memory-flood.mjs for building another commit)
// runs in a child process of its own. Prints Markdown; writes nothing.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mulberry32, fresh } from './lib/page.mjs';
import { option, number } from './lib/options.mjs';
import { childResult } from './lib/ipc.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The same requests for every build. */
const random = mulberry32;

async function run(dist, o) {
  const { MemoryStore } = await import(pathToFileURL(path.resolve(ROOT, dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: o.maxBytes });
  const prefix = 'dumper.cached_path.';
  const date = new Date(1_700_000_000_000).toUTCString();
  const limits = { maxVariantsPerPath: 16, variant: false };
  const entryFor = (i, seq) => {
    const p = fresh(`${prefix}/p/${i}`);
    const etag = fresh(`"${(i * 2654435761).toString(16).padStart(16, '0')}-${o.body.toString(16)}"`);
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', String(o.body)].map(fresh);
    headers[3] = etag;
    return { status: 200, headers, body: Buffer.allocUnsafeSlow(o.body).fill(i & 0xff), etag, storedAt: 1_700_000_000_000, seq, path: p, tags: [p] };
  };
  const hotPages = Math.max(1, Math.round(o.pages * o.hot));
  const next = random(42);
  const seen = new Uint8Array(hotPages);
  const tenths = Array.from({ length: 10 }, () => ({ hot: 0, hotHits: 0 }));
  let hits = 0;
  let hot = 0;
  let hotHits = 0;
  let evictedBytesMax = 0;
  const c0 = process.cpuUsage();
  for (let r = 0; r < o.requests; r++) {
    const isHot = next() < o.hotShare;
    const i = isHot ? Math.floor(next() * hotPages) : hotPages + Math.floor(next() * (o.pages - hotPages));
    const key = `${prefix}hot.test/p/${i}`;
    const seq = store.sequence();
    const got = store.get(key);
    if (got !== undefined) hits++;
    else store.set(key, entryFor(i, seq), limits);
    if (isHot) {
      if (seen[i] === 1) {
        const t = tenths[Math.floor((r * 10) / o.requests)];
        hot++;
        t.hot++;
        if (got !== undefined) {
          hotHits++;
          t.hotHits++;
        }
      }
      seen[i] = 1;
    }
    evictedBytesMax = Math.max(evictedBytesMax, store.bytes);
  }
  const d = process.cpuUsage(c0);
  return {
    dist,
    hotPages,
    hotBytes: hotPages * (store.bytes / Math.max(1, store.size)),
    entries: store.size,
    bytes: store.bytes,
    maxBytes: store.maxBytes,
    peakBytes: evictedBytesMax,
    hitRate: hits / o.requests,
    hotHitRate: hotHits / hot,
    tenths: tenths.map((t) => t.hotHits / t.hot),
    usPerRequest: (d.user + d.system) / o.requests,
  };
}

const o = {
  pages: number('pages', 1_000_000),
  hot: number('hot', 0.01),
  hotShare: number('hot-share', 0.9),
  requests: number('requests', 3_000_000),
  maxBytes: number('max-bytes', 64 * 2 ** 20),
  body: number('body', 2000),
};

if (process.argv[2] === '--child') {
  process.send(await run(process.argv[3], JSON.parse(process.argv[4])));
  process.exit(0);
}

const results = [];
for (const dist of option('dist', ['dist'])) {
  const r = await childResult(fileURLToPath(import.meta.url), ['--child', dist, JSON.stringify(o)], ['--max-old-space-size=8192']);
  process.stderr.write(`${JSON.stringify(r)}\n`);
  results.push(r);
}
const f = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const pct = (x) => `${(x * 100).toFixed(2)} %`;
console.log(
  `\nMemoryStore (maxBytes ${f(o.maxBytes / 2 ** 20, 1)} MiB), ${f(o.pages)} pages of ${f(o.body)} bytes, ` +
    `${pct(o.hot)} of them taking ${pct(o.hotShare)} of ${f(o.requests)} requests, the others a flood of new keys\n`,
);
console.log('| build | hot pages (their bytes, counted) | entries held at the end | hot-set hit rate | by tenth of the run (min–max) | all requests | CPU µs per request |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(
    `| ${r.dist} | ${f(r.hotPages)} (${f(r.hotBytes / 2 ** 20, 1)} MiB) | ${f(r.entries)} | ${pct(r.hotHitRate)} | ${pct(Math.min(...r.tenths))}–${pct(Math.max(...r.tenths))} | ${pct(r.hitRate)} | ${f(r.usPerRequest, 2)} |`,
  );
}
