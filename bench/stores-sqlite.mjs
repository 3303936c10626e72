#!/usr/bin/env node
// SqliteStore against MemoryStore, in the same run:
//   1. hits in one process: a loop of store.get() on 1,000 cached 14 KiB pages (rounds alternate)
//   2. fills: a loop of store.set() of 14 KiB pages
//   3. bytes per cached page in the file (14 KiB and 1 KiB pages), against what maxBytes counts
//   4. invalidating 10,000 paths in one call (with 10,000 entries to delete, and with none)
//   5. hits through withDumper over HTTP (autocannon, 50 connections), each server its own process
//
//   node bench/stores-sqlite.mjs                      rounds of 2 s, HTTP runs of 5 s
//   node bench/stores-sqlite.mjs --duration=1 --http=0  shorter; no HTTP part
//
// Self-contained: it compiles the entry points it needs into .tmp/ (dist/ is left alone) and
// writes its files under os.tmpdir(). Prints a Markdown table; writes nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PAGE } from './lib/page.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([a-z-]+)(?:=(.*))?$/.exec(a)?.slice(1) ?? [a, '']));
const limits = { maxVariantsPerPath: 256, variant: false };

// ------------------------------------------------------------------------ server child process
if (args.serve) {
  const load = (p) => import(pathToFileURL(join(args.dist, p)).href);
  const { createDumper, MemoryStore } = await load('index.js');
  const { withDumper } = await load('http/node/index.js');
  const { SqliteStore } = await load('stores/sqlite/index.js');
  const store = args.serve === 'sqlite' ? new SqliteStore({ path: args.file }) : new MemoryStore();
  const dumper = createDumper({ store, logger: false });
  const body = Buffer.from(PAGE);
  const server = http.createServer(withDumper(dumper, (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(body)));
  server.listen(0, '127.0.0.1', () => process.stdout.write(`PORT ${server.address().port}\n`));
  process.on('SIGTERM', () => server.close(() => dumper.close().then(() => process.exit(0))));
  await new Promise(() => {});
}

const duration = Number(args.duration ?? 2);
const httpSeconds = Number(args.http ?? 5);

// ------------------------------------------------------------------------ private build
mkdirSync(join(ROOT, '.tmp'), { recursive: true });
const build = mkdtempSync(join(ROOT, '.tmp', 'bench-sqlite-'));
const scratch = mkdtempSync(join(os.tmpdir(), 'page-dumper-bench-sqlite-'));
process.on('exit', () => {
  rmSync(build, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});
const entries = ['index.ts', 'http/node/index.ts', 'stores/sqlite/index.ts'];
writeFileSync(
  join(build, 'tsconfig.json'),
  JSON.stringify({
    extends: join(ROOT, 'tsconfig.build.json'),
    compilerOptions: { rootDir: join(ROOT, 'src'), outDir: join(build, 'dist'), declaration: false },
    files: entries.map((e) => join(ROOT, 'src', e)),
    include: [],
  }),
);
spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(build, 'tsconfig.json')], { stdio: 'ignore' });
for (const e of entries) if (!existsSync(join(build, 'dist', e.replace(/\.ts$/, '.js')))) throw new Error(`the build did not write ${e}`);
const dist = join(build, 'dist');
const { MemoryStore } = await import(pathToFileURL(join(dist, 'index.js')).href);
const { SqliteStore } = await import(pathToFileURL(join(dist, 'stores/sqlite/index.js')).href);

let files = 0;
const file = () => join(scratch, `s${++files}.sqlite`);
const body14 = PAGE;
const entry = (path, seq, body = body14) => ({
  status: 200,
  headers: ['content-type', 'text/html; charset=utf-8', 'etag', '"bench"', 'content-length', String(body.byteLength)],
  body,
  etag: '"bench"',
  storedAt: Date.now(),
  seq,
  path,
  tags: [path],
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const rows = [];
const row = (...cells) => rows.push(`| ${cells.join(' | ')} |`);

// ------------------------------------------------------------------------ 1. hits in one process
function hitRate(store, keys) {
  let n = 0;
  let sink = 0;
  const end = performance.now() + duration * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) sink += store.get(keys[(n + i) % keys.length]).body.byteLength;
    n += 1000;
  }
  if (sink === 0) throw new Error('no hits');
  return n / duration;
}
const keys = Array.from({ length: 1000 }, (_, i) => `bench:/p/${i}`);
const stores = {
  MemoryStore: new MemoryStore(),
  SqliteStore: new SqliteStore({ path: file() }),
  'SqliteStore, localBytes: 0': new SqliteStore({ path: file(), localBytes: 0 }),
};
for (const s of Object.values(stores)) for (const k of keys) s.set(k, entry(k, s.sequence()), limits);
const hits = Object.fromEntries(Object.keys(stores).map((name) => [name, []]));
for (let round = 0; round < 3; round++) for (const [name, s] of Object.entries(stores)) hits[name].push(hitRate(s, keys));
for (const name of ['SqliteStore', 'SqliteStore, localBytes: 0']) {
  const label = name === 'SqliteStore' ? 'store.get() hits/s, 14 KiB page (1,000 pages, all in the local copies)' : 'store.get() hits/s, 14 KiB page, local copies off (`localBytes: 0`)';
  row(label, fmt(median(hits.MemoryStore)), fmt(median(hits[name])), `${(median(hits[name]) / median(hits.MemoryStore)).toFixed(3)} x`);
}

// ------------------------------------------------------------------------ 2. fills
function fillRate(s) {
  let n = 0;
  const end = performance.now() + duration * 1000;
  while (performance.now() < end) {
    const k = `bench:/fill/${n % 5000}`;
    s.set(k, entry(k, s.sequence()), limits);
    n++;
  }
  return n / duration;
}
const fills = { MemoryStore: fillRate(stores.MemoryStore), SqliteStore: fillRate(stores.SqliteStore) };
row('store.set() fills/s, 14 KiB page', fmt(fills.MemoryStore), fmt(fills.SqliteStore), `${(fills.SqliteStore / fills.MemoryStore).toFixed(3)} x`);
for (const s of Object.values(stores)) s.close();

// ------------------------------------------------------------------------ 3. bytes per page
for (const [label, body] of [
  ['14 KiB', body14],
  ['1 KiB', body14.subarray(0, 1024)],
]) {
  const path = file();
  const s = new SqliteStore({ path });
  const n = 2000;
  for (let i = 0; i < n; i++) s.set(`bench:/b/${i}`, entry(`bench:/b/${i}`, 0, body), limits);
  s.database.pragma('wal_checkpoint(TRUNCATE)');
  const onDisk = statSync(path).size + (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0);
  row(`file bytes per cached ${label} page (maxBytes counts)`, '', `${fmt(onDisk / n)} (${fmt(s.bytes / n)})`, `${((onDisk / n - body.byteLength) / body.byteLength * 100).toFixed(0)}% over the body`);
  s.close();
}

// ------------------------------------------------------------------------ 4. invalidate 10,000 paths
function invalidateTime(make, withEntries) {
  const times = [];
  for (let round = 0; round < 3; round++) {
    const s = make();
    const tags = Array.from({ length: 10_000 }, (_, i) => `bench:/i/${i}`);
    if (withEntries) for (const t of tags) s.set(`k${t}`, entry(t, 0, body14.subarray(0, 1024)), limits);
    const t0 = performance.now();
    s.invalidate(tags);
    times.push(performance.now() - t0);
    if (withEntries && s.size !== 0) throw new Error('entries left after the invalidation');
    s.close();
  }
  return median(times);
}
for (const withEntries of [true, false]) {
  const m = invalidateTime(() => new MemoryStore(), withEntries);
  const q = invalidateTime(() => new SqliteStore({ path: file() }), withEntries);
  row(`invalidate 10,000 paths in one call, ms (${withEntries ? '10,000 entries deleted' : 'no entries'})`, m.toFixed(1), q.toFixed(1), '');
}

// ------------------------------------------------------------------------ 5. HTTP hits
if (httpSeconds > 0) {
  const autocannon = createRequire(import.meta.url)('autocannon');
  const rates = {};
  for (const kind of ['memory', 'sqlite']) {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), `--serve=${kind}`, `--dist=${dist}`, `--file=${file()}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise((ok) => child.stdout.on('data', (d) => /PORT (\d+)/.test(d) && ok(/PORT (\d+)/.exec(d)[1])));
    const url = `http://127.0.0.1:${port}/page`;
    for (let i = 0; i < 2; i++) await (await fetch(url)).arrayBuffer();
    const check = await fetch(url);
    await check.arrayBuffer();
    if (check.headers.get('x-cache') !== 'HIT') throw new Error(`${kind}: not a hit`);
    const result = await autocannon({ url, connections: 50, duration: httpSeconds });
    if (result.errors || result.non2xx) throw new Error(`${kind}: ${result.errors} errors, ${result.non2xx} non-2xx`);
    rates[kind] = result.requests.average;
    child.kill('SIGTERM');
    await new Promise((ok) => child.once('exit', ok));
  }
  row(`withDumper hits/s over HTTP (autocannon, 50 connections, ${httpSeconds} s)`, fmt(rates.memory), fmt(rates.sqlite), `${(rates.sqlite / rates.memory).toFixed(2)} x`);
}

console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, load average ${os.loadavg()[0].toFixed(1)}\n`);
console.log('| | MemoryStore | SqliteStore | |\n|---|---:|---:|---|');
console.log(rows.join('\n'));
