#!/usr/bin/env node
// Memory under a flood of small pages: what a MemoryStore counts (`store.bytes`) against what the
// process really holds, after a forced GC.
//
//   npm run build && node bench/memory-flood.mjs
//   node bench/memory-flood.mjs --pages=300000 --body=1024 --dist=.tmp/before/dist --dist=dist
//
// Two parts, each in child processes started with `node --expose-gc`:
//
// 1. Per entry (`--entries`, 100,000; a process per shape): entries shaped like the dumper's (a
//    key, a path tag, eight header strings, the etag among them, a `--body`-byte body in a buffer
//    of its own; every string a fresh one) are stored in a MemoryStore too large to evict, and the
//    JS heap and ArrayBuffer bytes they add, after gc(), are compared with what the store counts
//    for them. Shapes: plain pages with their path tag only; with one more tag of their own; with
//    one more tag every entry shares; query-string variants, 10 per path; and the same plain pages
//    in the LocalCopies that SqliteStore and RedisStore keep. `held − counted` is what is not
//    counted per entry: the constants in src/stores/memory/index.ts and src/stores/local-copies.ts
//    come from this table, and with them it is close to 0 (negative: the store counts more than
//    it holds, as it counts a string shared by all entries once per entry). The last column is
//    what lives outside the JS heap and the ArrayBuffers (the C++ side of each body's
//    ArrayBuffer, the allocator's rounding), from RSS: rough.
//
// 2. The flood: `http.createServer(withDumper(dumper, app))` with `createDumper({ store: new
//    MemoryStore() })` (the default store, 64 MiB; `--max-bytes=N` for another), on 127.0.0.1, is
//    sent `--pages` (300,000) requests for unique paths `/p/<i>` (distinct paths:
//    `maxVariantsPerPath` plays no part), `--connections` (32) at a time. The app answers each with
//    a page of `--body` (1024) ASCII characters, sent as a string. Every response must be a 200
//    with the page's bytes and `X-Cache: MISS`; afterwards the newest pages must be hits and the
//    first one evicted. The server then runs gc() and reports `process.memoryUsage()` and the
//    store's counters, as ratios to `maxBytes`.
//
// `--dist=DIR` (repeatable; default dist) is a build of src/: `npm run build` for dist/, and for
// another commit, inside this repository so that it resolves node_modules:
//   mkdir -p .tmp/before && git archive 020869b src tsconfig.json tsconfig.build.json | tar -x -C .tmp/before
//   (cd .tmp/before && npx tsc -p tsconfig.build.json --outDir dist)
// The flood runs once per build, in order; the per-entry part on the last one.
// Prints Markdown; writes nothing.
import { execFileSync, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { option, number } from './lib/options.mjs';
import { fresh } from './lib/page.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 2 ** 20;

const load = (dist, p) => import(pathToFileURL(path.resolve(ROOT, dist, p)).href);
const log = (s) => process.stderr.write(`${s}\n`);

/** A full collection, twice, with a turn of the event loop between (finalizers, weak callbacks). */
async function collect() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
}

/** A page of exactly `size` ASCII characters, unique to `i`. */
function page(i, size) {
  const head = `<!doctype html><html><head><title>Page ${i}</title></head><body><h1>Page ${i}</h1><p>`;
  const tail = '</p></body></html>\n';
  return head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail;
}

// ------------------------------------------------------------------------ part 1: per entry

const SHAPES = {
  plain: { own: 0, shared: 0, variants: 1 },
  '+1 tag of its own': { own: 1, shared: 0, variants: 1 },
  '+1 tag every entry shares': { own: 0, shared: 1, variants: 1 },
  'variants, 10 per path': { own: 0, shared: 0, variants: 10 },
  'LocalCopies (the copies SqliteStore and RedisStore keep), plain': { own: 0, shared: 0, variants: 1, copies: true },
};

/** Stores `count` entries of one shape in a MemoryStore (or LocalCopies) too large to evict; what they add, per entry. */
async function perEntry(dist, shapeName, count, bodySize) {
  const { MemoryStore } = await load(dist, 'index.js');
  const { LocalCopies } = await load(dist, 'stores/local-copies.js');
  const shape = SHAPES[shapeName];
  const date = new Date(1_700_000_000_000).toUTCString();
  await collect();
  const before = process.memoryUsage();
  const store = shape.copies ? new LocalCopies(2 ** 40) : new MemoryStore({ maxBytes: 2 ** 40 });
  for (let i = 0; i < count; i++) {
    const n = Math.floor(i / shape.variants);
    const path = fresh(`/p/${n}`);
    const key = fresh(`dumper.cached_path.127.0.0.1:40000/p/${n}${shape.variants > 1 ? `?v=${i % shape.variants}` : ''}`);
    const tags = [path];
    if (shape.own) tags.push(fresh(`item:${i}`));
    if (shape.shared) tags.push('site');
    const etag = fresh(`"${(i * 2654435761).toString(16).padStart(16, '0')}-${bodySize.toString(16)}"`);
    const body = Buffer.allocUnsafeSlow(bodySize).fill(i & 0xff);
    const headers = ['content-type', 'text/html; charset=utf-8', 'etag', etag, 'date', date, 'content-length', String(bodySize)].map(fresh);
    headers[3] = etag;
    const entry = { status: 200, headers, body, etag, storedAt: 1_700_000_000_000 + i, seq: 0, path, tags };
    if (shape.copies) store.keep(key, { id: i, entry });
    else if (!store.set(key, entry, { maxVariantsPerPath: 256, variant: shape.variants > 1 })) throw new Error('an entry was refused');
  }
  await collect();
  const after = process.memoryUsage();
  if (!shape.copies && store.size !== count) throw new Error(`the store holds ${store.size} entries, not ${count}`);
  const heap = after.heapUsed - before.heapUsed;
  const buffers = after.arrayBuffers - before.arrayBuffers;
  const outside = after.rss - before.rss - (after.heapTotal - before.heapTotal) - buffers;
  return { name: shapeName, held: (heap + buffers) / count, heap: heap / count, buffers: buffers / count, counted: store.bytes / count, outside: outside / count };
}

// ------------------------------------------------------------------------ part 2: the flood

async function serve(dist, bodySize, maxBytes) {
  const { createDumper, MemoryStore } = await load(dist, 'index.js');
  const { withDumper } = await load(dist, 'http/node/index.js');
  const store = new MemoryStore(maxBytes === undefined ? {} : { maxBytes });
  const dumper = createDumper({ store, logger: false });
  let renders = 0;
  const app = (req, res) => {
    renders++;
    const i = Number(/^\/p\/(\d+)$/.exec(req.url ?? '')?.[1] ?? -1);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(i, bodySize));
  };
  const server = http.createServer(withDumper(dumper, app));
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const measure = async () => {
    await collect();
    return { memory: process.memoryUsage(), bytes: store.bytes, entries: store.size, maxBytes: store.maxBytes, renders };
  };
  process.on('message', async (m) => {
    if (m === 'measure') process.send({ measured: await measure() });
    if (m === 'stop') server.close(() => dumper.close().then(() => process.exit(0)));
  });
  process.send({ port: server.address().port });
}

function get(agent, port, target) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: target, agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, cache: res.headers['x-cache'], body: Buffer.concat(chunks).toString('latin1') }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

function ask(child, message, field) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m && m[field] !== undefined) {
        child.off('message', on);
        resolve(m[field]);
      }
    };
    child.on('message', on);
    if (message !== undefined) child.send(message);
  });
}

async function flood(dist, pages, bodySize, connections, maxBytes) {
  const args = ['--child=serve', `--dist=${dist}`, `--body=${bodySize}`, ...(maxBytes === undefined ? [] : [`--max-bytes=${maxBytes}`])];
  const child = fork(fileURLToPath(import.meta.url), args, {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const port = await ask(child, undefined, 'port');
    const baseline = await ask(child, 'measure', 'measured');
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    const check = (r, i, cache) => {
      if (r.status !== 200 || r.cache !== cache || r.body !== page(i, bodySize)) {
        throw new Error(`/p/${i}: status ${r.status}, X-Cache ${r.cache}, ${r.body.length} bytes (expected 200, ${cache}, the page)`);
      }
    };
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: connections }, async () => {
        for (let i = next++; i < pages; i = next++) {
          check(await get(agent, port, `/p/${i}`), i, 'MISS');
          if (i % 50_000 === 0 && i > 0) log(`  ${i} pages, ${((Date.now() - started) / 1000).toFixed(0)} s`);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    // Held and evicted, as a byte-bounded LRU should: the newest pages hit, the first is gone.
    // (Unless the store was made too small to hold a page: --max-bytes.)
    const held = (await ask(child, 'measure', 'measured')).entries;
    for (let i = pages - Math.min(100, held); i < pages; i++) check(await get(agent, port, `/p/${i}`), i, 'HIT');
    if (held < pages) check(await get(agent, port, '/p/0'), 0, 'MISS');
    agent.destroy();
    const after = await ask(child, 'measure', 'measured');
    const expected = pages + (after.entries < pages ? 1 : 0);
    if (after.renders !== expected) throw new Error(`the app rendered ${after.renders} times, not ${expected}`);
    return { dist, baseline, after, seconds };
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.send('stop');
    await exited;
  }
}

// ------------------------------------------------------------------------ report

const f0 = (n) => Math.round(n).toLocaleString('en-US');
const f2 = (n) => n.toFixed(2);
const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

function describeBuild(dist) {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dist === 'dist' ? `dist/ (working tree at ${head}${dirty ? ', src/ with uncommitted changes' : ''})` : dist;
  } catch {
    return dist;
  }
}

async function main() {
  const child = option('child', [undefined])[0];
  const dists = option('dist', ['dist']);
  const bodySize = number('body', 1024);
  const maxBytes = option('max-bytes', [undefined])[0];
  if (child === 'serve') return serve(dists[0], bodySize, maxBytes === undefined ? undefined : Number(maxBytes));
  if (child === 'entry') {
    const results = await perEntry(dists[0], option('shape', [])[0], number('entries', 100_000), bodySize);
    process.send({ results }, () => process.exit(0));
    return;
  }
  for (const d of dists) {
    if (!existsSync(path.resolve(ROOT, d, 'index.js'))) throw new Error(`${d}/index.js is missing: npm run build first (or pass --dist=DIR)`);
  }
  const pages = number('pages', 300_000);
  const connections = number('connections', 32);
  const entries = number('entries', 100_000);
  const started = new Date().toISOString();

  const measured = dists.at(-1);
  log(`per entry: ${entries} entries, ${measured}`);
  const perEntryResults = [];
  for (const shape of Object.keys(SHAPES)) {
    // A process per shape: memory freed by one shape and reused by the next would blur the RSS.
    const one = fork(fileURLToPath(import.meta.url), ['--child=entry', `--dist=${measured}`, `--shape=${shape}`, `--entries=${entries}`, `--body=${bodySize}`], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    perEntryResults.push(await ask(one, undefined, 'results'));
  }

  const floods = [];
  for (const d of pages > 0 ? dists : []) {
    log(`flood: ${pages} pages through ${d}`);
    floods.push(await flood(d, pages, bodySize, connections, maxBytes));
  }

  const out = [];
  out.push(`Command: \`node bench/memory-flood.mjs${process.argv.slice(2).map((a) => ` ${a}`).join('')}\``, '');
  out.push(`- Date: ${started} – ${new Date().toISOString()}; ${os.cpus().length} cores, ${os.cpus()[0]?.model.trim()}; Node ${process.version}`);
  out.push(`- Builds: ${dists.map(describeBuild).join('; ')}`);
  out.push('');
  out.push(`### Per entry, in process (${f0(entries)} entries of a ${f0(bodySize)}-byte body; ${measured})`, '');
  out.push('| shape | held per entry (heap + ArrayBuffers) | of which heap | of which ArrayBuffers | counted by the store | held − counted | outside heap and ArrayBuffers (RSS, rough) |');
  out.push('|---|--:|--:|--:|--:|--:|--:|');
  for (const r of perEntryResults) {
    out.push(`| ${r.name} | ${f0(r.held)} | ${f0(r.heap)} | ${f0(r.buffers)} | ${f0(r.counted)} | ${f0(r.held - r.counted)} | ${f0(r.outside)} |`);
  }
  if (floods.length === 0) return void process.stdout.write(`${out.join('\n')}\n`);
  out.push('');
  const storeName = maxBytes === undefined ? 'the default MemoryStore' : `a MemoryStore of maxBytes ${maxBytes}`;
  out.push(`### The flood (${f0(pages)} unique ${f0(bodySize)}-byte pages, ${connections} connections, \`withDumper\`, ${storeName})`, '');
  out.push('| build | maxBytes | entries held | `store.bytes` | arrayBuffers | heapUsed | heapUsed + arrayBuffers | heapTotal | RSS | (heapUsed + arrayBuffers) − baseline, per held entry, − counted | req/s (pace of the run, not a throughput measure) |');
  out.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const r of floods) {
    const { memory: m, bytes, entries: n, maxBytes: max } = r.after;
    const b = r.baseline.memory;
    const ratio = (x) => (max < MiB ? mib(x) : `${mib(x)} (${f2(x / max)} ×)`);
    const grown = m.heapUsed + m.arrayBuffers - (b.heapUsed + b.arrayBuffers);
    out.push(
      `| ${r.dist} | ${mib(max)} | ${f0(n)} | ${ratio(bytes)} | ${ratio(m.arrayBuffers)} | ${ratio(m.heapUsed)} | ${ratio(m.heapUsed + m.arrayBuffers)} | ${ratio(m.heapTotal)} | ${ratio(m.rss)} | ${n === 0 ? '–' : `${f0((grown - bytes) / n)} B`} | ${f0(pages / r.seconds)} |`,
    );
  }
  out.push('');
  const b = floods[0].baseline.memory;
  out.push(`Baseline of the server before the flood (after gc()): heapUsed ${mib(b.heapUsed)}, arrayBuffers ${mib(b.arrayBuffers)}, heapTotal ${mib(b.heapTotal)}, RSS ${mib(b.rss)}.`);
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
