// Shared by bench/run.mjs and bench/profile.mjs: the variants, building, starting a server child
// process, verifying it and measuring it.
import { execFileSync, fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE, PAGE_SHA1 } from './page.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = fileURLToPath(new URL('./server.mjs', import.meta.url));

/**
 * kind: 'static' sends the bytes itself (no origin); 'hit' must be answered from a cache (the
 * origin must not render during a measurement); 'render' renders every request (unique paths).
 * ref: the variant its ratio is reported against.
 */
export const VARIANTS = [
  { name: 'bare', kind: 'static', ref: 'bare', what: 'node:http sends the bytes (ceiling)' },
  { name: 'front-door', kind: 'hit', xCache: 'HIT', ref: 'bare', what: '`http.createServer(withDumper(dumper, app))`, hits' },
  { name: 'express-middleware', kind: 'hit', xCache: 'HIT', ref: 'express-ceiling', what: '`app.use(dumperMiddleware(dumper))` first, hits' },
  { name: 'express-ceiling', kind: 'static', ref: 'bare', what: 'Express, first middleware sends the bytes (Express ceiling)' },
  { name: 'apicache', kind: 'hit', ref: 'express-ceiling', what: "Express + `apicache.middleware('1 hour')`, hits" },
  { name: 'origin', kind: 'render', ref: 'origin', what: 'Express origin, 5 ms data access, no cache' },
  {
    name: 'origin+dumper-miss',
    kind: 'render',
    xCache: 'MISS',
    ref: 'origin',
    what: 'origin behind `dumperMiddleware`, every request a miss that is stored',
  },
];

/**
 * The variants of bench/frameworks.mjs (servers in lib/frameworks.mjs); `bare` is the node:http
 * one above. Listed in the order they are measured in (rotated each round), each dumper variant
 * close after its bare reference; `diagnostic` ones only help explain a gap.
 */
export const FRAMEWORK_VARIANTS = [
  VARIANTS.find((v) => v.name === 'bare'),
  {
    name: 'fastify-hook-ceiling',
    kind: 'static',
    ref: 'fastify-bare',
    diagnostic: true,
    what: 'Fastify `onRequest` hook sends the bytes (ceiling of a plugin answering there)',
  },
  { name: 'fastify-bare', kind: 'static', ref: 'bare', what: 'Fastify route `reply.headers(h).send(PAGE)` (Fastify ceiling)' },
  { name: 'fastify-dumper', kind: 'hit', xCache: 'HIT', ref: 'fastify-bare', what: '`app.register(fastifyDumper, { dumper })`, hits' },
  { name: 'koa-bare', kind: 'static', ref: 'bare', what: 'Koa middleware `ctx.set(h); ctx.body = PAGE` (Koa ceiling)' },
  { name: 'koa-dumper', kind: 'hit', xCache: 'HIT', ref: 'koa-bare', what: '`app.use(koaDumper(dumper))` first, hits' },
  {
    name: 'hono-middleware-ceiling',
    kind: 'static',
    ref: 'hono-bare',
    diagnostic: true,
    what: 'Hono, first middleware `c.body(PAGE, 200, h)` (ceiling of any Hono middleware)',
  },
  {
    name: 'hono-fetch-ceiling',
    kind: 'static',
    ref: 'hono-bare',
    diagnostic: true,
    what: '@hono/node-server, `async () => new Response(PAGE, { headers: h })` (ceiling of any async fetch wrapper)',
  },
  { name: 'hono-bare', kind: 'static', ref: 'bare', what: 'Hono route `c.body(PAGE, 200, h)` on @hono/node-server (Hono ceiling)' },
  { name: 'hono-dumper', kind: 'hit', xCache: 'HIT', ref: 'hono-bare', what: '`app.use(honoDumper(dumper))` first, hits' },
  { name: 'hono-front-door', kind: 'hit', xCache: 'HIT', ref: 'hono-bare', what: '`dumperFetch(dumper, app.fetch)` on @hono/node-server, hits' },
];

/** The variants of bench/stores.mjs: the front door on each store, hits. */
export const STORE_VARIANTS = [
  { name: 'store-memory', kind: 'hit', xCache: 'HIT', ref: 'store-memory', what: '`withDumper`, MemoryStore (the default)' },
  { name: 'store-redis', kind: 'hit', xCache: 'HIT', ref: 'store-memory', what: '`withDumper`, RedisStore' },
  { name: 'store-redis-local', kind: 'hit', xCache: 'HIT', ref: 'store-memory', what: '`withDumper`, RedisStore with `localTier: true`' },
  { name: 'store-sqlite', kind: 'hit', xCache: 'HIT', ref: 'store-memory', what: '`withDumper`, SqliteStore (WAL file)' },
];

/** A variant of any benchmark by name (bench/profile.mjs profiles them all). */
export function variantNamed(name) {
  const all = [...VARIANTS, ...FRAMEWORK_VARIANTS, ...STORE_VARIANTS];
  const v = all.find((x) => x.name === name);
  if (v === undefined) {
    throw new Error(`unknown variant ${name}; one of ${[...new Set(all.map((x) => x.name))].join(', ')}`);
  }
  return v;
}

// ------------------------------------------------------------------------------------ build

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export function ensureBuilt(force) {
  const helper = join(ROOT, 'scripts/build-if-needed.mjs');
  const outputs = ['dist/index.js', 'dist/http/node/index.js', 'dist/core/dumper.js', 'dist/stores/memory/index.js'].map((p) => join(ROOT, p));
  const run = (cmd, args) => execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  let failed = false;
  if (existsSync(helper)) {
    try {
      run(process.execPath, [helper]);
    } catch {
      failed = true;
      if (!outputs.every(existsSync)) throw new Error('the build failed and dist/ is missing');
      process.stderr.write('warning: the build failed; measuring the dist/ that is there\n');
    }
  } else if (force || !outputs.every(existsSync)) {
    process.stderr.write('building dist/ (npx tsc -p tsconfig.build.json)\n');
    run('npx', ['tsc', '-p', 'tsconfig.build.json']);
  }
  if (!outputs.every(existsSync)) throw new Error('dist/ is incomplete after the build');
  const built = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  const stale = failed || newestMtime(join(ROOT, 'src')) > built;
  if (stale) process.stderr.write('warning: src/ has files newer than dist/; the benchmark measures dist/ (pass --build to rebuild)\n');
  return { stale };
}

// ------------------------------------------------------------------------------------ servers

export function startServer(variant, dataMs) {
  const child = fork(SERVER, [variant.name], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', BENCH_DATA_MS: String(dataMs) },
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map();
  child.on('message', (msg) => {
    const w = waiting.get(msg?.type);
    if (w) {
      waiting.delete(msg.type);
      w(msg);
    }
  });
  const next = (type, ms = 15_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${variant.name}: no ${type} message from the server in ${ms} ms`)), ms);
      waiting.set(type, (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  const server = {
    variant,
    child,
    port: 0,
    /** Sends a command to the server and waits for its reply message of type `reply`. */
    call: async (msg, reply, ms) => {
      const p = next(reply, ms);
      child.send(msg);
      return p;
    },
    stats: () => server.call({ cmd: 'stats' }, 'stats'),
    stop: () => {
      server.stopped = true;
      if (child.exitCode === null && child.connected) child.send({ cmd: 'exit' });
      setTimeout(() => child.exitCode === null && child.kill(), 2000).unref();
    },
  };
  const ready = next('ready').then((m) => {
    server.port = m.port;
    return server;
  });
  child.on('exit', (code) => {
    if (code !== 0 && !stopping && !server.stopped) {
      console.error(`server ${variant.name} exited with code ${code}`);
      process.exitCode = 1;
    }
  });
  return ready;
}

let stopping = false;
/** Servers that exit from now on are expected to. */
export function stoppingServers() {
  stopping = true;
}

// ------------------------------------------------------------------------------------ checks

export class BenchFailure extends Error {}

function check(cond, message) {
  if (!cond) throw new BenchFailure(message);
}

async function get(server, path) {
  // identity, as wrk asks for it (it sends no Accept-Encoding): fetch() would otherwise ask for
  // gzip and br, and decode the compressed copy page-dumper answers with.
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { 'accept-encoding': 'identity' } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body };
}

function checkPage(name, r) {
  check(r.status === 200, `${name}: status ${r.status}, expected 200`);
  check(r.body.length === PAGE.length, `${name}: body is ${r.body.length} bytes, expected ${PAGE.length}`);
  check(createHash('sha1').update(r.body).digest('hex') === PAGE_SHA1, `${name}: body differs from the page`);
  check(r.headers.get('content-length') === String(PAGE.length), `${name}: content-length ${r.headers.get('content-length')}`);
  check(r.headers.get('etag') !== null, `${name}: no etag`);
}

/** Primes caches and verifies status, bytes and cache behaviour before anything is measured. */
export async function verify(server) {
  const v = server.variant;
  const s0 = await server.stats();
  if (v.kind === 'render') {
    const path = `/page/verify-${randomBytes(4).toString('hex')}`;
    const r = await get(server, path);
    checkPage(v.name, r);
    if (v.xCache) check(r.headers.get('x-cache') === v.xCache, `${v.name}: X-Cache ${r.headers.get('x-cache')}, expected ${v.xCache}`);
    const s1 = await server.stats();
    check(s1.renders === s0.renders + 1, `${v.name}: the origin did not render the request`);
    if (v.name === 'origin+dumper-miss' && process.env.BENCH_MISS_STORE_BYTES === undefined) {
      // The miss was stored: the same path again is a hit (the unique paths under load are too).
      await new Promise((r) => setTimeout(r, 50));
      const again = await get(server, path);
      checkPage(v.name, again);
      check(again.headers.get('x-cache') === 'HIT', `${v.name}: a repeated path was not a hit, so misses are not stored`);
    }
    return;
  }
  const first = await get(server, '/page/1'); // fills the cache
  checkPage(v.name, first);
  await new Promise((r) => setTimeout(r, 50));
  const s1 = await server.stats();
  const r = await get(server, '/page/1');
  checkPage(v.name, r);
  if (v.xCache) check(r.headers.get('x-cache') === v.xCache, `${v.name}: X-Cache ${r.headers.get('x-cache')}, expected ${v.xCache}`);
  const s2 = await server.stats();
  if (v.kind === 'hit') check(s2.renders === s1.renders, `${v.name}: the second request reached the origin (not a hit)`);
}

/** Checks one measurement: no errors, full responses, and hits/misses as promised. */
function checkRun(v, r, before, after, connections) {
  check(r.errors === 0, `${v.name}: ${r.errors} socket errors/timeouts`);
  check(r.non2xx === 0, `${v.name}: ${r.non2xx} non-2xx responses`);
  check(r.requests > 0, `${v.name}: no requests completed`);
  const perResponse = r.bytes / r.requests;
  // v.bodyBytes: the body a variant sends when it is not the page as it is (a compressed copy).
  const body = v.bodyBytes ?? PAGE.length;
  check(perResponse >= body && perResponse < body + 1024, `${v.name}: ${perResponse.toFixed(0)} bytes per response, expected the ${body}-byte ${v.bodyBytes === undefined ? 'page' : 'body'} plus headers`);
  const renders = after.renders - before.renders;
  if (v.kind === 'hit') check(renders === 0, `${v.name}: the origin rendered ${renders} times during a hit measurement`);
  if (v.kind === 'render') {
    check(renders >= r.requests && renders <= r.requests + 2 * connections, `${v.name}: ${renders} renders for ${r.requests} requests`);
  }
}

// ------------------------------------------------------------------------------------ stats

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const fmt = (n) => Math.round(n).toLocaleString('en-US');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One measurement of `seconds` on `server`: `GET /page/1` on every request, or, with
 * `opts.cycle = { base, count }`, requests going round base + 1 ... base + count. With
 * `opts.headers` (`['Name: value', ...]`), every request carries those headers.
 */
export async function measure(server, lg, opts, seconds) {
  const v = server.variant;
  const before = await server.stats();
  const uniquePrefix = v.kind === 'render' ? `/page/u${randomBytes(3).toString('hex')}-` : undefined;
  const r = await lg.run({ url: `http://127.0.0.1:${server.port}/page/1`, connections: opts.connections, seconds, uniquePrefix, cycle: opts.cycle, headers: opts.headers });
  await sleep(2 * opts.dataMs + 20); // let renders of requests cut off by the load generator land
  const after = await server.stats();
  checkRun(v, r, before, after, opts.connections);
  return { ...r, cpuPerReq: (after.cpu - before.cpu) / r.requests, rss: after.rss, store: after.store };
}

