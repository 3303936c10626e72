#!/usr/bin/env node
// Edge caches: what purging a real Varnish costs, and what the tag header costs a hit.
//
//   node bench/edge.mjs                       full run (needs varnishd with varnish-modules' xkey)
//   node bench/edge.mjs --rounds=3 --duration=2 --stores=memory
//
// Part 1, invalidation. 10,000 paths, then 10,000 tags, invalidated (a) in one call and (b) in
// 10,000 calls of one each (what an ORM integration does row by row), on each store (--stores:
// memory, sqlite, redis when 127.0.0.1:6379 answers), with no purger (the store alone) and with
// one varnishPurger in front of a real varnishd running varnish/page-dumper.vcl. Reported: the wall
// time until the invalidate calls have returned (their purges are queued by then); with the
// purger, until flushPurges() resolves: every purge acknowledged by Varnish, including the race's
// second purge of each invalidation (raceWindow = 200 ms here, so at least 200 ms after the last
// call); and the PURGE requests Varnish answered (one per purge() call).
//
// Part 2, hits. Two origin processes serve the same 14 KB page (bench/lib/page.mjs) through
// withDumper, tagged with its path and three render tags: one without purgers, one with a
// varnishPurger (every hit carries xkey, Surrogate-Control and Cache-Control). autocannon loads
// each directly (no Varnish in between: this is the origin's cost of the headers), --rounds (7)
// of --duration (3 s) each, alternating, --connections (50). Reported: median req/s of each and
// their ratio, from the same run.
//
// The sources are compiled into .tmp/bench-edge/ first (tsc), so the script measures src/ as it is.
import { execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const BUILD = join(ROOT, '.tmp', 'bench-edge');

function args() {
  const out = { rounds: 7, duration: 3, connections: 50, stores: 'memory,sqlite,redis', n: 10_000 };
  for (const a of process.argv.slice(2)) {
    const m = /^--([a-z]+)=(.*)$/.exec(a);
    if (!m || !(m[1] in out)) throw new Error(`unknown argument ${a}; known: ${Object.keys(out).map((k) => `--${k}=`).join(' ')}`);
    out[m[1]] = typeof out[m[1]] === 'number' ? Number(m[2]) : m[2];
  }
  return out;
}

function build() {
  mkdirSync(BUILD, { recursive: true });
  const entries = ['index.ts', 'edge/index.ts', 'http/node/index.ts', 'stores/sqlite/index.ts', 'stores/redis/index.ts'];
  writeFileSync(
    join(BUILD, 'tsconfig.json'),
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.build.json'),
      compilerOptions: { rootDir: join(ROOT, 'src'), outDir: join(BUILD, 'dist'), declaration: false },
      files: entries.map((e) => join(ROOT, 'src', e)),
      include: [],
    }),
  );
  spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(BUILD, 'tsconfig.json')], { stdio: 'ignore' });
  for (const e of entries) if (!existsSync(join(BUILD, 'dist', e.replace(/\.ts$/, '.js')))) throw new Error(`the build did not write ${e}`);
}

const load = (p) => import(pathToFileURL(join(BUILD, 'dist', p)).href);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function reachable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const done = (ok) => (s.destroy(), resolve(ok));
    s.setTimeout(300, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function startVarnish(backendPort) {
  const varnishd = ['/usr/sbin/varnishd', ...(process.env.PATH ?? '').split(':').map((d) => `${d}/varnishd`)].find((p) => existsSync(p));
  if (!varnishd) throw new Error('varnishd is not installed (apt-get install varnish varnish-modules)');
  const dir = mkdtempSync(join(os.tmpdir(), 'page-dumper-bench-varnish-'));
  chmodSync(dir, 0o755);
  writeFileSync(
    join(dir, 'site.vcl'),
    `vcl 4.1;\nimport std;\nbackend default { .host = "127.0.0.1"; .port = "${backendPort}"; }\ninclude "${join(ROOT, 'varnish/page-dumper.vcl')}";\n` +
      'sub vcl_recv { call page_dumper_recv; }\nsub vcl_backend_response { call page_dumper_backend_response; }\nsub vcl_deliver { call page_dumper_deliver; }\n',
  );
  const port = await freePort();
  const child = spawn(varnishd, ['-F', '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', join(dir, 'site.vcl'), '-n', join(dir, 'n'), '-s', 'malloc,64m'], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !(await reachable(port)); i++) await new Promise((r) => setTimeout(r, 50));
  return {
    url: `http://127.0.0.1:${port}`,
    stop() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ms = (t) => `${Math.round(t).toLocaleString('en-US')} ms`;

async function invalidation(opts) {
  const { createDumper, MemoryStore } = await load('index.js');
  const { varnishPurger } = await load('edge/index.js');
  const stores = {
    memory: async () => new MemoryStore(),
    sqlite: async () => {
      const { SqliteStore } = await load('stores/sqlite/index.js');
      const dir = mkdtempSync(join(os.tmpdir(), 'page-dumper-bench-edge-'));
      return new SqliteStore({ path: join(dir, 'cache.db') });
    },
    redis: async () => {
      const { RedisStore } = await load('stores/redis/index.js');
      return new RedisStore({ url: 'redis://127.0.0.1:6379', prefix: `bench-edge:${process.pid}:${Date.now()}:` });
    },
  };
  const wanted = opts.stores.split(',');
  const hasRedis = await reachable(6379);
  const backend = http.createServer((_req, res) => res.end('x')).listen(0, '127.0.0.1');
  await new Promise((r) => backend.once('listening', r));
  const varnish = await startVarnish(backend.address().port);
  const rows = [];
  try {
    const n = opts.n;
    const paths = Array.from({ length: n }, (_, i) => `/products/${i}/`);
    const tags = Array.from({ length: n }, (_, i) => `product:${i}`);
    for (const storeName of wanted) {
      if (!(storeName in stores)) throw new Error(`unknown store ${storeName}`);
      if (storeName === 'redis' && !hasRedis) continue;
      for (const [what, list, call] of [
        [`${n.toLocaleString('en-US')} paths, one call`, paths, (d, l) => d.invalidate(l)],
        [`${n.toLocaleString('en-US')} tags, one call`, tags, (d, l) => d.invalidateTags(l)],
        [`${n.toLocaleString('en-US')} paths, one call each`, paths, async (d, l) => { for (const p of l) await d.invalidate(p); }],
        [`${n.toLocaleString('en-US')} tags, one call each`, tags, async (d, l) => { for (const t of l) await d.invalidateTags(t); }],
      ]) {
        for (const withPurger of [false, true]) {
          const dumper = createDumper({
            store: await stores[storeName](),
            logger: false,
            ...(withPurger ? { purgers: [varnishPurger({ url: varnish.url })], edge: { raceWindow: 200 } } : {}),
          });
          const t0 = performance.now();
          await call(dumper, list);
          const returned = performance.now() - t0;
          let flushed;
          if (withPurger) {
            await dumper.flushPurges();
            flushed = performance.now() - t0;
          }
          rows.push({ store: storeName, what, purger: withPurger ? 'varnish' : 'none', returned, flushed, requests: dumper.purgeStats.sent, failed: dumper.purgeStats.failed });
          await dumper.close();
          process.stderr.write('.');
        }
      }
    }
  } finally {
    varnish.stop();
    backend.close();
  }
  process.stderr.write('\n');
  return rows;
}

// ------------------------------------------------------------------------------------ hits

async function serve(tagged) {
  const { createDumper } = await load('index.js');
  const { varnishPurger } = await load('edge/index.js');
  const { withDumper } = await load('http/node/index.js');
  const { PAGE, CONTENT_TYPE, ETAG } = await import(pathToFileURL(join(ROOT, 'bench/lib/page.mjs')).href);
  const dumper = createDumper({
    logger: false,
    trackRenders: true,
    ...(tagged ? { purgers: [varnishPurger({ url: 'http://127.0.0.1:9' })] } : {}),
  });
  const server = http.createServer(
    withDumper(dumper, (req, res) => {
      dumper.tag('flavour:vanilla', 'flavour:chocolate', 'menu');
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': PAGE.length, etag: ETAG });
      res.end(PAGE);
    }),
  );
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

async function hits(opts) {
  const autocannon = (await import('autocannon')).default;
  const start = (tagged) =>
    new Promise((resolve) => {
      const child = fork(SELF, ['--serve', tagged ? 'tagged' : 'plain'], { stdio: 'inherit' });
      child.once('message', (m) => resolve({ child, url: `http://127.0.0.1:${m.port}/page/1` }));
    });
  const servers = { off: await start(false), on: await start(true) };
  const check = async (s, tagged) => {
    await fetch(s.url);
    const r = await fetch(s.url);
    if (r.headers.get('x-cache') !== 'HIT') throw new Error('not a hit');
    if ((r.headers.get('xkey') !== null) !== tagged) throw new Error('tag header is not as expected');
    await r.arrayBuffer();
  };
  await check(servers.off, false);
  await check(servers.on, true);
  const run = (url, duration) =>
    new Promise((resolve, reject) => autocannon({ url, connections: opts.connections, duration, pipelining: 1 }, (e, r) => (e ? reject(e) : resolve(r))));
  // Warm-up.
  await run(servers.off.url, 1);
  await run(servers.on.url, 1);
  const rps = { off: [], on: [] };
  for (let i = 0; i < opts.rounds; i++) {
    for (const k of i % 2 === 0 ? ['off', 'on'] : ['on', 'off']) {
      const r = await run(servers[k].url, opts.duration);
      if (r.non2xx !== 0 || r.errors !== 0) throw new Error(`${k}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      rps[k].push(r.requests.average);
      process.stderr.write('.');
    }
  }
  process.stderr.write('\n');
  for (const s of Object.values(servers)) s.child.kill();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { off: median(rps.off), on: median(rps.on), rounds: rps };
}

// ------------------------------------------------------------------------------------ main

if (process.argv[2] === '--serve') {
  await serve(process.argv[3] === 'tagged');
} else {
  const opts = args();
  build();
  const varnishVersion = execFileSync('/usr/sbin/varnishd', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0];
  console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${varnishVersion}`);
  const rows = await invalidation(opts);
  console.log('\n| store | invalidation | purger | calls returned | flushPurges() resolved | PURGE requests |');
  console.log('|---|---|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.store} | ${r.what} | ${r.purger} | ${ms(r.returned)} | ${r.flushed === undefined ? '—' : ms(r.flushed)} | ${r.purger === 'none' ? '—' : r.requests}${r.failed ? ` (${r.failed} failed)` : ''} |`,
    );
  }
  const h = await hits(opts);
  console.log(`\nhits (${opts.rounds} rounds x ${opts.duration} s, ${opts.connections} connections, alternating): ` +
    `tag header off ${Math.round(h.off).toLocaleString('en-US')} req/s, on ${Math.round(h.on).toLocaleString('en-US')} req/s, on/off ${(h.on / h.off).toFixed(3)}`);
  console.log(`rounds off: ${h.rounds.off.map((x) => Math.round(x)).join(', ')}`);
  console.log(`rounds on:  ${h.rounds.on.map((x) => Math.round(x)).join(', ')}`);
}
