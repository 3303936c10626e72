#!/usr/bin/env node
// Hits by size: does the CPU a cache hit costs the server, through HTTP, grow with the number of
// entries the store holds? Built to give an answer on a shared, busy machine.
//
//   npm run build:if-needed
//   node bench/hits-by-size.mjs [--stores=memory,sqlite,redis] [--small=1000] [--large=1000000]
//        [--large-sqlite=N] [--large-redis=N] [--rounds=10] [--seconds=3] [--connections=8]
//        [--local-bytes=N]   (SqliteStore/RedisStore `localBytes`; default: the store's default)
//        [--warm]            (before the rounds, GET every page once, in order)
//        [--hot=N]           (requests go to pages 0..N-1 only, on both sides: the same traffic
//                             on a site of --small and of --large pages)
//
// For each store, two server processes run side by side (bench/hits-by-size-server.mjs: dist/'s
// dumper, `compress: false`, in front of an app rendering 2,000-byte pages under /p/<i>, tagged
// with the path and `layout`), same code and options, same Node flags; one store holds --small
// entries, the other --large. They are separate stores: two SQLite files; two private
// `redis-server` processes (no persistence) on free ports. Each server fills its own store through
// the store API directly (entries shaped like the one the dumper stored for /p/0; batches of 1,000,
// SqliteStore one transaction per batch, RedisStore 500 sets in flight); all fills run at once.
// Then, store by store, one load process (this file with --load, its own keep-alive agent per
// server) GETs /p/<random below N>, one request in flight per connection, for --seconds per round;
// every answer is checked to be a 200 with X-Cache HIT and the server counts its renders (none
// expected). After a warm-up round on each, the rounds alternate in pairs A B, B A, A B ... (so a
// drift of the machine's load falls on both sides), --rounds per server. The server's CPU over a
// round (`process.cpuUsage()`, user + system, taken inside it over IPC) divided by the hits is the
// CPU per hit. Each pair gives a ratio large / small; the result is the median of those ratios.
// Redis: the redis-server's own CPU per hit too (INFO cpu). Last, one more round on each server
// under the V8 sampling profiler (node:inspector, 100 µs): self time per function, per hit. The
// samples are wall-clock: on a busy machine they count time the process waited for a core, and
// `dispatch` (the inspector call that starts the profiler, which walks the heap) grows with the
// heap; read them as where to look, not as CPU. GC: the main thread's pauses (PerformanceObserver),
// all and scavenges alone. --warm matters for MemoryStore: the dumper makes the representations of
// an entry at its first hit, and random hits on a million entries are mostly first hits.
// Prints Markdown on stdout, progress on stderr; writes .tmp/hits-by-size/run-<time>.json and
// the profiles beside it.
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { basename, join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;

// ------------------------------------------------------------------ load process

if (args[0] === '--load') {
  const agents = new Map();
  const agentFor = (port, connections) => {
    if (!agents.has(port)) agents.set(port, new http.Agent({ keepAlive: true, maxSockets: connections }));
    return agents.get(port);
  };
  process.on('disconnect', () => process.exit(0));
  process.on('message', async ({ port, n, seconds, connections, warm }) => {
    const agent = agentFor(port, connections);
    let requests = 0;
    let notHit = 0;
    let next = 0;
    const one = () =>
      new Promise((resolve, reject) => {
        const i = warm ? next++ : Math.floor(Math.random() * n);
        http
          .get({ host: '127.0.0.1', port, path: `/p/${i}`, agent, headers: { host: 'scale.test' } }, (res) => {
            if (res.statusCode !== 200 || !/HIT/.test(String(res.headers['x-cache']))) notHit++;
            res.resume().on('end', resolve);
          })
          .on('error', reject);
      });
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (warm ? next < n : performance.now() < end) {
          await one();
          requests++;
        }
      }),
    );
    process.send({ requests, notHit, ms: performance.now() - t0 });
  });
} else {
  await main();
}

// ------------------------------------------------------------------ orchestration

async function main() {
  const STORES = flag('stores', 'memory,sqlite,redis').split(',');
  const SMALL = Number(flag('small', '1000'));
  const LARGE = Number(flag('large', '1000000'));
  const largeOf = (s) => Number(flag(`large-${s}`, String(LARGE)));
  const ROUNDS = Number(flag('rounds', '10'));
  const SECONDS = Number(flag('seconds', '3'));
  const CONNECTIONS = Number(flag('connections', '8'));
  const LOCAL_BYTES = flag('local-bytes', '');
  const WARM = args.includes('--warm');
  const HOT = flag('hot', '') === '' ? undefined : Number(flag('hot', ''));
  if (HOT !== undefined && !(Number.isInteger(HOT) && HOT > 0 && HOT <= SMALL)) throw new Error(`--hot must be a whole number of pages from 1 to --small (${SMALL})`);
  const OUT = join(ROOT, '.tmp', 'hits-by-size');
  mkdirSync(OUT, { recursive: true });
  const DIST = join(ROOT, 'dist');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const log = (...a) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
  const load1 = () => os.loadavg()[0];

  const freePort = () =>
    new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });

  const { default: Redis } = await import('ioredis');
  const redisProcs = [];
  async function startRedis() {
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory', '0'], { stdio: 'ignore' });
    redisProcs.push(proc);
    // Until it accepts connections.
    for (let i = 0; ; i++) {
      const ok = await new Promise((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true))).on('error', () => resolve(false));
      });
      if (ok) break;
      if (i > 200) throw new Error(`redis-server on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const client = new Redis(port, '127.0.0.1');
    await client.ping();
    return { url: `redis://127.0.0.1:${port}`, client };
  }
  const redisCpu = async (client) => {
    const info = await client.info('cpu');
    const v = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)[1]);
    return (v('used_cpu_user') + v('used_cpu_sys')) * 1e6;
  };

  function startServer(kind, where, heapMiB) {
    const child = fork(join(ROOT, 'bench/hits-by-size-server.mjs'), [DIST, kind, where, LOCAL_BYTES], {
      execArgv: [`--max-old-space-size=${heapMiB}`],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let next = 0;
    const waiting = new Map();
    let onProgress = () => {};
    const ready = new Promise((resolve, reject) => {
      child.on('message', (m) => {
        if (m.ready !== undefined) return resolve(m.ready);
        if (m.progress !== undefined) return onProgress(m.progress);
        const w = waiting.get(m.id);
        waiting.delete(m.id);
        if (m.error !== undefined) w.reject(new Error(m.error));
        else w.resolve(m.ok);
      });
      child.on('exit', (code) => {
        reject(new Error(`the ${kind} server exited (${code})`));
        for (const w of waiting.values()) w.reject(new Error(`the ${kind} server exited (${code})`));
      });
    });
    const call = (name, arg) =>
      new Promise((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve, reject });
        child.send({ id, name, arg });
      });
    return { child, call, ready, setProgress: (f) => (onProgress = f) };
  }

  log('npm run build:if-needed');
  const b = spawnSync('npm', ['run', '--silent', 'build:if-needed'], { cwd: ROOT, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('the build failed');
  const head = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout.trimEnd();

  // -------------------------------------------------------------- start and fill
  const setups = [];
  for (const kind of STORES) {
    const sides = [];
    for (const [side, n] of [
      ['small', SMALL],
      ['large', largeOf(kind)],
    ]) {
      let where = '';
      let redis;
      if (kind === 'sqlite') {
        where = join(OUT, `${stamp}-${side}.sqlite`);
      } else if (kind === 'redis') {
        redis = await startRedis();
        where = redis.url;
      }
      // The same flags on both sides; room for a million MemoryStore entries (about 3.1 GB).
      const server = startServer(kind, where, kind === 'memory' ? 12288 : 4096);
      sides.push({ kind, side, n, where, redis, server, port: await server.ready });
    }
    setups.push({ kind, sides });
  }
  log(`servers up: ${setups.map((s) => `${s.kind} ${s.sides.map((x) => x.port).join('/')}`).join(', ')}`);
  const fills = await Promise.all(
    setups.flatMap((s) =>
      s.sides.map(async (x) => {
        x.server.setProgress((i) => log(`${x.kind} ${x.side}: ${i.toLocaleString('en-US')} stored`));
        const la0 = load1();
        const ms = await x.server.call('fill', { from: 1, to: x.n });
        x.fill = { ms, perSecond: ((x.n - 1) / ms) * 1000, load: [la0, load1()] };
        x.size = await x.server.call('size');
        log(`${x.kind} ${x.side} filled: ${x.n} in ${(ms / 1000).toFixed(1)} s`);
      }),
    ),
  );
  void fills;

  // -------------------------------------------------------------- rounds
  const loader = fork(new URL(import.meta.url).pathname, ['--load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const hit = (x, seconds) =>
    new Promise((resolve) => {
      loader.once('message', resolve);
      loader.send({ port: x.port, n: HOT ?? x.n, seconds, connections: CONNECTIONS });
    });
  async function round(x) {
    const la = load1();
    const r0 = x.redis ? await redisCpu(x.redis.client) : 0;
    await x.server.call('cpuStart');
    const h = await hit(x, SECONDS);
    const c = await x.server.call('cpuStop');
    const r1 = x.redis ? await redisCpu(x.redis.client) : 0;
    return {
      hits: h.requests,
      notHit: h.notHit,
      renders: c.renders,
      hitsPerSecond: (h.requests / h.ms) * 1000,
      usPerHit: (c.userUs + c.systemUs) / h.requests,
      userUsPerHit: c.userUs / h.requests,
      gcUsPerHit: (c.gcMs * 1000) / h.requests,
      gcCount: c.gcCount,
      minorGcUsPerHit: (c.minorMs * 1000) / h.requests,
      minorGcCount: c.minorCount,
      redisUsPerHit: x.redis ? (r1 - r0) / h.requests : undefined,
      load: la,
    };
  }

  const median = (a) => {
    const s = [...a].sort((p, q) => p - q);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const results = [];
  for (const s of setups) {
    const [A, B] = s.sides;
    if (WARM) {
      // Every page once, in order: no hit of the rounds is then the first of its entry.
      for (const x of [A, B]) {
        const t0 = performance.now();
        const h = await new Promise((resolve) => {
          loader.once('message', resolve);
          loader.send({ port: x.port, n: x.n, connections: CONNECTIONS, warm: true });
        });
        log(`${s.kind} ${x.side}: every page hit once, ${h.requests} requests (${h.notHit} not HIT) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
    log(`${s.kind}: warm-up`);
    await round(A);
    await round(B);
    const rounds = { small: [], large: [] };
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? [A, B] : [B, A];
      for (const x of order) rounds[x.side].push(await round(x));
      const a = rounds.small.at(-1);
      const bb = rounds.large.at(-1);
      log(`${s.kind} pair ${i + 1}: ${a.usPerHit.toFixed(1)} / ${bb.usPerHit.toFixed(1)} µs per hit (${(bb.usPerHit / a.usPerHit).toFixed(3)}), load ${a.load.toFixed(1)}`);
    }
    // Profiles: one more round each under the sampling profiler.
    const profiles = {};
    for (const x of [A, B]) {
      const file = join(OUT, `${stamp}-${s.kind}-${x.side}.cpuprofile`);
      await x.server.call('profStart');
      const h = await hit(x, SECONDS);
      await x.server.call('profStop', file);
      profiles[x.side] = { file, hits: h.requests, self: selfTimes(file) };
    }
    const ratios = rounds.small.map((a, i) => rounds.large[i].usPerHit / a.usPerHit);
    const res = {
      kind: s.kind,
      sides: s.sides.map((x) => ({ side: x.side, n: x.n, fill: x.fill, size: x.size, rounds: rounds[x.side] })),
      ratios,
      medianRatio: median(ratios),
      profiles,
    };
    results.push(res);
    log(`${s.kind}: median ratio ${res.medianRatio.toFixed(3)}`);
  }
  loader.disconnect();

  // -------------------------------------------------------------- clean up
  for (const s of setups)
    for (const x of s.sides) {
      await x.server.call('close').catch(() => {});
      if (x.redis) x.redis.client.disconnect();
      if (x.kind === 'sqlite') for (const f of [x.where, `${x.where}-wal`, `${x.where}-shm`]) rmSync(f, { force: true });
    }
  for (const p of redisProcs) p.kill();

  // -------------------------------------------------------------- report
  const json = join(OUT, `run-${stamp}.json`);
  writeFileSync(json, JSON.stringify({ head, dirty, localBytes: LOCAL_BYTES, warm: WARM, hot: HOT, node: process.version, cpus: os.cpus().length, rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, results }, null, 2));
  const f1 = (v) => v.toFixed(1);
  const f0 = (v) => Math.round(v).toLocaleString('en-US');
  const out = [];
  out.push(`Node ${process.version}, ${os.cpus().length} cores, HEAD ${head}${dirty ? ' (src/ with uncommitted changes: ' + dirty.split('\n').map((l) => l.slice(3)).join(', ') + ')' : ''}; ${ROUNDS} rounds of ${SECONDS} s per server, ${CONNECTIONS} keep-alive connections${LOCAL_BYTES ? `, localBytes ${LOCAL_BYTES}` : ''}${WARM ? ', every page hit once before the rounds' : ''}${HOT !== undefined ? `, requests to pages 0..${HOT - 1} only` : ''}.`);
  out.push('');
  out.push('| store | entries | fill | server CPU µs/hit, median (min–max of rounds) | GC pauses µs/hit, median (of which scavenges) | hits/s, median | ratio large/small per pair: median (min–max) | not HIT / renders |');
  out.push('|---|---:|---|---|---:|---:|---|---|');
  for (const r of results) {
    for (const x of r.sides) {
      const us = x.rounds.map((q) => q.usPerHit);
      const bad = x.rounds.reduce((t, q) => t + q.notHit, 0) + ' / ' + x.rounds.reduce((t, q) => t + q.renders, 0);
      const ratio = x.side === 'large' ? `**${r.medianRatio.toFixed(3)}** (${Math.min(...r.ratios).toFixed(2)}–${Math.max(...r.ratios).toFixed(2)})` : '';
      const redis = x.rounds[0].redisUsPerHit !== undefined ? `; redis-server ${f1(median(x.rounds.map((q) => q.redisUsPerHit)))}` : '';
      out.push(
        `| ${r.kind} | ${f0(x.n)} | ${f1(x.fill.ms / 1000)} s (${f0(x.fill.perSecond)}/s) | ${f1(median(us))} (${f1(Math.min(...us))}–${f1(Math.max(...us))})${redis} | ${f1(median(x.rounds.map((q) => q.gcUsPerHit)))} (${f1(median(x.rounds.map((q) => q.minorGcUsPerHit)))}) | ${f0(median(x.rounds.map((q) => q.hitsPerSecond)))} | ${ratio} | ${bad} |`,
      );
    }
  }
  out.push('');
  const loads = results.flatMap((r) => r.sides.flatMap((x) => x.rounds.map((q) => q.load)));
  out.push(`Load average (1 min) at the rounds: ${f1(Math.min(...loads))}–${f1(Math.max(...loads))}.`);
  out.push('');
  out.push('Per round, server CPU µs/hit, in the order run (pairs alternate small-large, large-small):');
  out.push('');
  for (const r of results) {
    out.push(`- ${r.kind}: small ${r.sides[0].rounds.map((q) => f1(q.usPerHit)).join(', ')}; large ${r.sides[1].rounds.map((q) => f1(q.usPerHit)).join(', ')}; ratios ${r.ratios.map((v) => v.toFixed(2)).join(', ')}`);
  }
  out.push('');
  out.push('Profiled round (V8 sampling profiler, 100 µs), self time µs per hit, the functions that differ most:');
  for (const r of results) {
    const a = r.profiles.small;
    const bp = r.profiles.large;
    const names = new Set([...a.self.keys(), ...bp.self.keys()]);
    const rows = [...names].map((k) => [k, (a.self.get(k) ?? 0) / a.hits, (bp.self.get(k) ?? 0) / bp.hits]);
    const total = (p) => [...p.self.values()].reduce((t, v) => t + v, 0) / p.hits;
    rows.sort((p, q) => Math.abs(q[2] - q[1]) - Math.abs(p[2] - p[1]));
    out.push('');
    out.push(`${r.kind} (sampled, idle excluded: ${f1(total(a))} small, ${f1(total(bp))} large):`);
    out.push('');
    out.push('| function | small | large |');
    out.push('|---|---:|---:|');
    for (const [k, x, y] of rows.slice(0, 10)) out.push(`| \`${k}\` | ${x.toFixed(2)} | ${y.toFixed(2)} |`);
  }
  process.stdout.write(out.join('\n') + '\n');
  log(`wrote ${json}`);
  process.exit(0);
}

/** Self time (µs) per function of a .cpuprofile, keyed by name and file:line. */
function selfTimes(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? basename(cf.url) + ':' + (cf.lineNumber + 1) : ''}`.trim();
    // Time the process waited is not CPU it spent.
    if (key !== '(idle)') self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return self;
}
