// Server CPU time per cache hit through the Hono adapters, against a bare Hono route serving the
// same bytes: a measure that holds on a busy machine, where req/s does not.
//
//   npm run build && node bench/hit-cpu.mjs
//   node bench/hit-cpu.mjs --dist=/tmp/pd-before --dist=dist --rounds=9 --requests=20000
//
// Each server is its own child process on 127.0.0.1 (@hono/node-server, the page of lib/page.mjs
// with the headers of lib/frameworks.mjs). A raw-socket client in this process sends --requests
// (20000) requests per measurement over --connections (50) keep-alive connections, in waves of
// one request per connection (see load()), and checks every response (200, the page's length,
// X-Cache: HIT from the dumper variants); the server reports process.cpuUsage() (user + system)
// before and after. Rounds alternate over the variants, so A and B share the machine's weather;
// the report gives the median CPU µs per request over --rounds (7), the min–max, and
// bare / variant (the throughput ratio a CPU-bound server would reach). Wall-clock req/s is
// printed but not trusted.
//
// Variants: hono-bare (route `c.body(PAGE, 200, headers)`), hono-middleware-ceiling (a first
// middleware sends the bytes), hono-fetch-ceiling (an async fetch handler returns them), and for
// every --dist: hono-dumper@DIR (`app.use(honoDumper(dumper))`) and hono-front-door@DIR
// (`dumperFetch(dumper, app.fetch)`). --dist is a build of src/ (`npm run build` makes dist/;
// `npx tsc -p tsconfig.build.json --outDir DIR` another, which must resolve this repository's
// node_modules: inside the repository, or beside a `node_modules` symlink). `--variants=a,b`
// keeps the variants whose name starts with one of the prefixes; `--warmup=N` hit requests per
// server before the rounds (20000).
//
// `--fastify` measures Fastify instead: fastify-bare (route `reply.headers(h).send(PAGE)`),
// fastify-hook-ceiling (an onRequest hook sends the bytes), fastify-hooks-ceiling (the same, plus
// an onSend hook that does nothing, as the plugin has) and fastify-dumper@DIR.
//
// `--store=memory|redis|redis-local` (repeatable) gives the dumper variants that store (RedisStore
// on BENCH_REDIS_URL, default redis://127.0.0.1:6379, under the prefix `hit-cpu:<store>:`; `redis-local` with
// the local tier), for a per-hit comparison of stores that noisy req/s cannot give.
//
// `--callgrind` runs the servers under valgrind and counts the instructions per hit instead
// (user space only, all threads, GC and JIT included): indifferent to what else the machine
// runs, so builds compare on a busy one, but slow (~10 min for every variant at --rounds=3
// --requests=6000), and a round can still catch a JIT compile or a major GC: read the median of
// three or more. It is not a time: syscalls and cache misses are not in it. `--keep-dumps` keeps
// callgrind's files (one per measurement) for `callgrind_annotate`, which names V8's own functions
// (garbage collection, compilers, inline-cache misses) though not JavaScript compiled at run time.
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CONTENT_TYPE, ETAG, PAGE } from './lib/page.mjs';
import { option } from './lib/options.mjs';

const HEADERS = { 'content-type': CONTENT_TYPE, 'content-length': String(PAGE.length), etag: ETAG };
const ROUTE = '/page/:id';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// ------------------------------------------------------------------------------ server side

/** The Fastify variants: a bare route, an onRequest hook sending the bytes (alone, or with an idle onSend hook), and the plugin. */
async function fastifyServer(kind, dist) {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  let renders = 0;
  if (kind === 'fastify-bare') app.get(ROUTE, (req, reply) => reply.headers(HEADERS).send(PAGE));
  else if (kind === 'fastify-hook-ceiling') {
    app.addHook('onRequest', (req, reply) => void reply.headers(HEADERS).send(PAGE));
    app.get(ROUTE, (req, reply) => reply.headers(HEADERS).send(PAGE)); // never reached
  } else if (kind === 'fastify-hooks-ceiling') {
    // The hook ceiling plus the other hook the plugin registers (onSend), doing nothing.
    app.addHook('onRequest', (req, reply) => void reply.headers(HEADERS).send(PAGE));
    app.addHook('onSend', (req, reply, payload, done) => done(null, payload));
    app.get(ROUTE, (req, reply) => reply.headers(HEADERS).send(PAGE));
  } else if (kind === 'fastify-dumper') {
    const load = (p) => import(pathToFileURL(path.resolve(ROOT, dist, p)).href);
    const { createDumper } = await load('index.js');
    const { fastifyDumper } = await load('http/fastify/index.js');
    await app.register(fastifyDumper, { dumper: createDumper({ logger: false }) });
    app.get(ROUTE, async (req, reply) => {
      await new Promise((r) => setTimeout(r, 5));
      renders++;
      return reply.headers(HEADERS).send(PAGE);
    });
  } else throw new Error(`unknown variant ${kind}`);
  await app.ready();
  return { server: app.server, renders: () => renders };
}

async function server(kind, dist, storeKind = 'memory') {
  if (kind.startsWith('fastify-')) return fastifyServer(kind, dist);
  const { Hono } = await import('hono');
  const { createAdaptorServer } = await import('@hono/node-server');
  const app = new Hono();
  let dumper;
  if (kind === 'hono-bare') {
    app.get(ROUTE, (c) => c.body(PAGE, 200, HEADERS));
    return { server: createAdaptorServer({ fetch: app.fetch }) };
  }
  if (kind === 'hono-middleware-ceiling') {
    app.use((c) => c.body(PAGE, 200, HEADERS));
    // Never reached, but a route makes Hono compose the middleware, as behind honoDumper.
    app.get(ROUTE, (c) => c.body(PAGE, 200, HEADERS));
    return { server: createAdaptorServer({ fetch: app.fetch }) };
  }
  if (kind === 'hono-fetch-ceiling') {
    return { server: createAdaptorServer({ fetch: async () => new Response(PAGE, { status: 200, headers: HEADERS }) }) };
  }
  const load = (p) => import(pathToFileURL(path.resolve(ROOT, dist, p)).href);
  const { createDumper } = await load('index.js');
  let store;
  if (storeKind === 'redis' || storeKind === 'redis-local') {
    const { RedisStore } = await load('stores/redis/index.js');
    // One prefix per store kind, emptied at start: runs reuse the same few keys instead of leaving new ones.
    // Under valgrind every call is many times slower: the default 250 ms would time out setup.
    const commandTimeout = process.env.HIT_CPU_GRIND === '1' ? 10_000 : undefined;
    store = new RedisStore({ url: process.env.BENCH_REDIS_URL, prefix: `hit-cpu:${storeKind}:`, localTier: storeKind === 'redis-local', commandTimeout });
    await store.clear();
    // The local tier is used once its subscription is up.
    await new Promise((r) => setTimeout(r, 200));
  } else if (storeKind !== 'memory') throw new Error(`unknown store ${storeKind}`);
  dumper = createDumper({ logger: false, store });
  let fetch = app.fetch;
  if (kind === 'hono-dumper') {
    const { honoDumper } = await load('http/hono/index.js');
    app.use(honoDumper(dumper));
  } else if (kind === 'hono-front-door') {
    const { dumperFetch } = await load('http/fetch/index.js');
    fetch = dumperFetch(dumper, app.fetch);
  } else throw new Error(`unknown variant ${kind}`);
  let renders = 0;
  // The origin: 5 ms of data access, then the page (rendered once, then every request is a hit).
  app.get(ROUTE, async (c) => {
    await new Promise((r) => setTimeout(r, 5));
    renders++;
    return c.body(PAGE, 200, HEADERS);
  });
  return { server: createAdaptorServer({ fetch }), renders: () => renders };
}

// ------------------------------------------------------------------------------ client side

/** With `grind` (a directory), the server runs under callgrind, instrumentation off until measured. */
function start(name, kind, dist, grind, storeKind) {
  const options = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] };
  if (grind !== undefined) {
    options.execPath = 'valgrind';
    options.execArgv = ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${grind}/cg.%p`, `--log-file=${grind}/vg.%p.log`, process.execPath];
    options.env = { ...process.env, HIT_CPU_GRIND: '1' };
  }
  const child = fork(fileURLToPath(import.meta.url), ['--serve', kind, dist ?? '', storeKind ?? 'memory'], options);
  const waiters = [];
  child.on('message', (m) => waiters.shift()?.(m));
  const next = () => new Promise((resolve) => waiters.push(resolve));
  return next().then((ready) => ({
    name,
    child,
    /** Instructions executed while `run()` runs (callgrind only). */
    async instructions(run) {
      const ctl = (...args) => execFileSync('callgrind_control', [...args, String(child.pid)], { stdio: 'ignore' });
      ctl('-i', 'on');
      ctl('-z');
      await run();
      ctl('-d');
      ctl('-i', 'off');
      const prefix = `cg.${child.pid}.`;
      const last = fs
        .readdirSync(grind)
        .filter((f) => f.startsWith(prefix))
        .sort((a, b) => Number(b.slice(prefix.length)) - Number(a.slice(prefix.length)))[0];
      const totals = /^(?:totals|summary): (\d+)/m.exec(fs.readFileSync(path.join(grind, last), 'utf8'));
      return Number(totals[1]);
    },
    port: ready.port,
    hit: kind.startsWith('hono-dumper') || kind.startsWith('hono-front-door') || kind === 'fastify-dumper',
    stats: () => {
      const p = next();
      child.send({ cmd: 'stats' });
      return p;
    },
  }));
}

/**
 * Sends `total` GETs over `connections` keep-alive sockets in waves: one request on every socket,
 * the next wave when every response of this one is in. So the server always finds about
 * `connections` requests at once, however fast this client is on a busy machine (per-request
 * costs depend on how many requests one event-loop turn serves). Checks every response.
 */
function load(port, total, connections, mustHit) {
  const request = Buffer.from(`GET /page/1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const n = Math.min(connections, total);
  let sent = 0;
  let done = 0;
  let pending = 0;
  let connected = 0;
  return new Promise((resolve, reject) => {
    let t0;
    const sockets = [];
    const fail = (e) => {
      for (const s of sockets) s.destroy();
      reject(e);
    };
    const wave = () => {
      if (done === total) {
        for (const x of sockets) x.end();
        return resolve(Number(process.hrtime.bigint() - t0) / 1e9);
      }
      for (const s of sockets) {
        if (sent === total) break;
        sent++;
        pending++;
        s.write(request);
      }
    };
    for (let i = 0; i < n; i++) {
      const s = net.connect(port, '127.0.0.1');
      sockets.push(s);
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      s.on('connect', () => {
        if (++connected === n) {
          t0 = process.hrtime.bigint();
          wave();
        }
      });
      s.on('error', fail);
      s.on('data', (chunk) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) return;
          const head = buf.toString('latin1', 0, end);
          const m = /\r\ncontent-length: *(\d+)/i.exec(head);
          const length = m ? Number(m[1]) : -1;
          if (buf.length < end + 4 + length) return;
          if (!head.startsWith('HTTP/1.1 200') || length !== PAGE.length || (mustHit && !/\r\nx-cache: HIT/i.test(head))) {
            return fail(new Error(`unexpected response on port ${port}: ${head}`));
          }
          buf = buf.subarray(end + 4 + length);
          done++;
          if (--pending === 0) wave();
        }
      });
    }
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  const rounds = Number(option('rounds', ['7'])[0]);
  const requests = Number(option('requests', ['20000'])[0]);
  const connections = Number(option('connections', ['50'])[0]);
  const warmup = Number(option('warmup', ['20000'])[0]);
  const dists = option('dist', ['dist']);
  const stores = option('store', ['memory']);
  const filter = option('variants', undefined)?.flatMap((v) => v.split(','));
  const grind = process.argv.includes('--callgrind') ? fs.mkdtempSync(path.join(os.tmpdir(), 'hit-cpu-')) : undefined;
  const fastify = process.argv.includes('--fastify');
  const plan = fastify
    ? [
        ['fastify-bare', 'fastify-bare'],
        ['fastify-hook-ceiling', 'fastify-hook-ceiling'],
        ['fastify-hooks-ceiling', 'fastify-hooks-ceiling'],
        ...dists.map((d) => [`fastify-dumper@${d}`, 'fastify-dumper', d]),
      ]
    : [
    ['hono-bare', 'hono-bare'],
    ['hono-middleware-ceiling', 'hono-middleware-ceiling'],
    ['hono-fetch-ceiling', 'hono-fetch-ceiling'],
    ...dists.flatMap((d) =>
      stores.flatMap((st) => {
        const suffix = stores.length > 1 || st !== 'memory' ? `+${st}` : '';
        return [
          [`hono-dumper@${d}${suffix}`, 'hono-dumper', d, st],
          [`hono-front-door@${d}${suffix}`, 'hono-front-door', d, st],
        ];
      }),
    ),
  ];
  const chosen = plan.filter(([name]) => filter === undefined || filter.some((f) => name.startsWith(f)));
  const servers = [];
  for (const [name, kind, dist, st] of chosen) servers.push(await start(name, kind, dist, grind, st));
  const cpu = new Map(servers.map((s) => [s.name, []]));
  const rps = new Map(servers.map((s) => [s.name, []]));
  try {
    for (const s of servers) {
      // Prime (the miss that fills the entry), then warm up on hits.
      const r = await fetch(`http://127.0.0.1:${s.port}/page/1`);
      if (r.status !== 200 || Buffer.compare(Buffer.from(await r.arrayBuffer()), PAGE) !== 0) throw new Error(`${s.name}: wrong page`);
      await load(s.port, warmup, connections, s.hit);
    }
    for (let round = 0; round < rounds; round++) {
      // Rotate the order, so no variant always runs first (or right after the same neighbour).
      for (let i = 0; i < servers.length; i++) {
        const s = servers[(i + round) % servers.length];
        const a = await s.stats();
        let seconds = 0;
        const run = async () => void (seconds = await load(s.port, requests, connections, s.hit));
        const ir = grind === undefined ? undefined : await s.instructions(run);
        if (grind === undefined) await run();
        const b = await s.stats();
        if (s.hit && b.renders !== a.renders) throw new Error(`${s.name}: the origin rendered during a hit round`);
        cpu.get(s.name).push(ir === undefined ? (b.cpu - a.cpu) / requests : ir / requests);
        rps.get(s.name).push(requests / seconds);
      }
      process.stderr.write(`round ${round + 1}/${rounds}\n`);
    }
  } finally {
    await Promise.all(
      servers.map((s) => {
        const exited = new Promise((resolve) => s.child.once('exit', resolve));
        s.child.kill();
        return exited;
      }),
    );
    if (grind !== undefined && process.argv.includes('--keep-dumps')) console.log(`callgrind dumps kept in ${grind} (cg.<pid>.<n>; callgrind_annotate reads them)`);
    else if (grind !== undefined) fs.rmSync(grind, { recursive: true, force: true });
  }
  const reference = fastify ? 'fastify-bare' : 'hono-bare';
  const bare = cpu.has(reference) ? median(cpu.get(reference)) : undefined;
  console.log(`\n${requests} requests per measurement, ${connections} connections, ${rounds} rounds, node ${process.version}\n`);
  const unit = grind === undefined ? 'server CPU µs/hit' : 'server instructions/hit (callgrind)';
  console.log(`| variant | ${unit} (median) | min–max | bare / variant | req/s (median, noisy) |`);
  console.log('|---|---:|---:|---:|---:|');
  for (const s of servers) {
    const xs = cpu.get(s.name);
    const m = median(xs);
    const ratio = bare === undefined ? '' : (bare / m).toFixed(3);
    const f = (x) => (grind === undefined ? x.toFixed(2) : String(Math.round(x)));
    console.log(`| ${s.name} | ${f(m)} | ${f(Math.min(...xs))}–${f(Math.max(...xs))} | ${ratio} | ${Math.round(median(rps.get(s.name)))} |`);
  }
}

// ------------------------------------------------------------------------------ entry

if (process.argv[2] === '--serve') {
  const { server: s, renders } = await server(process.argv[3], process.argv[4], process.argv[5]);
  s.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: s.address().port }));
  process.on('message', (msg) => {
    if (msg?.cmd === 'stats') {
      const cpu = process.cpuUsage();
      process.send({ type: 'stats', cpu: cpu.user + cpu.system, renders: renders?.() ?? 0 });
    }
  });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
