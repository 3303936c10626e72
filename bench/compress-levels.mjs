// What each content coding and level costs and saves on the benchmark page, to choose the
// defaults of the `compress` option: CPU time per compression (what the thread pool spends once
// per stored page), the size it gives, and the time to decompress it (what a client spends).
//
//   node bench/compress-levels.mjs [--bytes=15360] [--reps=200]
//
// Runs the synchronous zlib calls on the main thread, one after another: the same work the
// thread pool does for the asynchronous ones, measured without its scheduling. zstd rows appear
// where node:zlib has zstd (Node >= 22.15).
import zlib from 'node:zlib';
import { buildPage } from './lib/page.mjs';

const arg = (name, fallback) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? fallback : Number(a.slice(name.length + 3));
};
const bytes = arg('bytes', 0);
const reps = arg('reps', 200);
let page = Buffer.from(buildPage());
if (bytes > page.length) {
  // Longer pages: more of the same listing (real pages repeat their markup), not random bytes.
  page = Buffer.concat(Array.from({ length: Math.ceil(bytes / page.length) }, () => page)).subarray(0, bytes);
}

const { constants: C } = zlib;
const brotli = (quality, lgwin) => (b) =>
  zlib.brotliCompressSync(b, {
    params: { [C.BROTLI_PARAM_QUALITY]: quality, [C.BROTLI_PARAM_LGWIN]: lgwin, [C.BROTLI_PARAM_SIZE_HINT]: b.length },
  });
const rows = [];
const lgwinFor = Math.min(Math.max(Math.ceil(Math.log2(page.length)), 16), 22);
for (const q of [5, 7, 9, 10, 11]) {
  rows.push([`br q${q} lgwin ${lgwinFor}`, brotli(q, lgwinFor), (b) => zlib.brotliDecompressSync(b)]);
}
rows.push([`br q9 lgwin 22 (zlib's default window)`, brotli(9, 22), (b) => zlib.brotliDecompressSync(b)]);
rows.push([`br q11 lgwin 22 (zlib's default)`, (b) => zlib.brotliCompressSync(b), (b) => zlib.brotliDecompressSync(b)]);
for (const level of [1, 6, 9]) rows.push([`gzip ${level}`, (b) => zlib.gzipSync(b, { level }), (b) => zlib.gunzipSync(b)]);
if (typeof zlib.zstdCompressSync === 'function') {
  for (const level of [3, 10, 15, 19]) {
    rows.push([
      `zstd ${level}`,
      (b) => zlib.zstdCompressSync(b, { params: { [C.ZSTD_c_compressionLevel]: level, [C.ZSTD_c_checksumFlag]: 0 } }),
      (b) => zlib.zstdDecompressSync(b),
    ]);
  }
}

function cpuMs(fn, n) {
  fn();
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / n;
}

console.log(`node ${process.version}, page ${page.length} bytes, ${reps} repetitions (fewer for slow levels)\n`);
console.log('| coding | bytes | ratio | compress CPU ms | decompress CPU ms |');
console.log('|---|---:|---:|---:|---:|');
for (const [name, compress, decompress] of rows) {
  const out = compress(page);
  if (!decompress(out).equals(page)) throw new Error(`${name}: does not round-trip`);
  const first = cpuMs(() => compress(page), 3);
  const n = Math.max(5, Math.min(reps, Math.floor(400 / Math.max(first, 0.01))));
  const c = cpuMs(() => compress(page), n);
  const d = cpuMs(() => decompress(out), reps);
  console.log(`| ${name} | ${out.length} | ${(page.length / out.length).toFixed(2)} | ${c.toFixed(3)} | ${d.toFixed(3)} |`);
}
