#!/usr/bin/env node
// RedisStore under faults, before and after, in one run:
//
// 1. Stall latency. A private redis-server is frozen with `DEBUG SLEEP 2` while N requests for
//    cached pages arrive together at `http.createServer(withDumper(dumper, app))` on a RedisStore
//    (commandTimeout 250 ms). Each request's latency (until its last byte) is measured; max and
//    p99 are compared with commandTimeout, which the README promises as a hit's wait for Redis.
//    A second wave arrives 500 ms into the stall (the circuit breaker is open by then). The store
//    alone, without the dumper: how long its calls take to fail during the stall, for calls sent
//    at once and for calls sent 30 ms later (queued behind the first in ioredis's auto-pipeline).
// 2. Stale reads across a crash. Three app processes (test/stores/fixtures/app-server.mjs) share
//    a RedisStore on a private redis-server; 12 clients read and write at random while Redis is
//    killed (SIGKILL) and restarted, CYCLES times per mode: "kept" restarts from a SAVE taken
//    400 ms before the kill, "wiped" restarts empty. Every read is checked against the writes that
//    had answered before it was sent, as in test/stores/multiprocess.test.ts.
//
//   node bench/redis-stall.mjs                      before = 020869b, after = the working tree
//   node bench/redis-stall.mjs --before=<git ref>   another baseline; --no-before for after only
//   node bench/redis-stall.mjs --quick              fewer rounds and cycles
//
// Each build compiles only the entry points it needs (src/index.ts, http/node, stores/redis) into
// .tmp/, emitting JavaScript even when another part of src/ has type errors. Prints a Markdown
// report on stdout; progress on stderr. Needs redis-server on PATH (DEBUG needs
// --enable-debug-command, which the private server is started with).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { buildSrc } from './lib/build-src.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = args.includes('--quick');
const BEFORE = args.includes('--no-before') ? undefined : (flag('before') ?? '020869b');
const ROUNDS = Number(flag('rounds') ?? (quick ? 2 : 5));
const CYCLES = Number(flag('cycles') ?? (quick ? 2 : 5));
const REQUESTS = Number(flag('requests') ?? 50);
const COMMAND_TIMEOUT = 250;
const log = (s) => process.stderr.write(`${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ builds

const ENTRIES = ['index.ts', 'http/node/index.ts', 'stores/redis/index.ts'];

/** Compiles `src` (the working tree's, or a git ref's) into a directory of its own. */
function build(name, ref) {
  return { name, ref: ref ?? 'working tree', ...buildSrc({ name: `redis-${name}`, ref, entries: ENTRIES }) };
}

const load = (dist, path) => import(pathToFileURL(join(dist, path)).href);

// ------------------------------------------------------------------ a private redis-server

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function reachable(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(200, () => (socket.destroy(), resolve(false)));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Sends one command on a connection of its own; resolves with the first reply line (or '' if none comes). */
function command(port, line, waitMs = 5000) {
  return new Promise((resolve) => {
    let data = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`${line}\r\n`));
    socket.setEncoding('utf8');
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) socket.end();
    });
    socket.on('close', () => (clearTimeout(timer), resolve(data.trim())));
    socket.on('error', () => {});
  });
}

class RedisServer {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}`;
  }
  static async start() {
    const s = new RedisServer(await freePort(), mkdtempSync(join(os.tmpdir(), 'bench-redis-')));
    await s.restart();
    return s;
  }
  async restart() {
    const a = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--dbfilename', 'dump.rdb', '--enable-debug-command', 'yes'];
    this.child = spawn('redis-server', a, { stdio: 'ignore' });
    for (let i = 0; !(await reachable(this.port)); i++) {
      if (i > 250) throw new Error('redis-server did not start');
      await sleep(20);
    }
  }
  /** SIGKILL: a restart comes back with the last SAVE (`keep`) or empty. */
  async kill({ keep }) {
    const child = this.child;
    this.child = undefined;
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
    if (!keep) rmSync(join(this.dir, 'dump.rdb'), { force: true });
    while (await reachable(this.port)) await sleep(10);
  }
  async destroy() {
    if (this.child) await this.kill({ keep: false });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ 1. stall latency

function get(port, path) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get({ port, host: '127.0.0.1', path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: performance.now() - started, status: res.statusCode, cache: res.headers['x-cache'] }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request hung')));
    req.on('error', reject);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function stallRound(b) {
  const { createDumper } = await load(b.dist, 'index.js');
  const { withDumper } = await load(b.dist, 'http/node/index.js');
  const { RedisStore } = await load(b.dist, 'stores/redis/index.js');
  const redis = await RedisServer.start();
  const store = new RedisStore({ url: redis.url, prefix: 'stall:', commandTimeout: COMMAND_TIMEOUT });
  const dumper = createDumper({ store, logger: false });
  const bare = new RedisStore({ url: redis.url, prefix: 'bare:', commandTimeout: COMMAND_TIMEOUT });
  await bare.sequence();
  await bare.invalidate(['/x']); // the next sequence() asks Redis
  const server = http.createServer(withDumper(dumper, (req, res) => res.end(`page ${req.url}`)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  try {
    const paths = Array.from({ length: REQUESTS }, (_, i) => `/p${i}`);
    for (let round = 0; round < 20; round++) {
      const answers = await Promise.all(paths.map((p) => get(port, p)));
      if (answers.every((a) => a.cache === 'HIT')) break;
      await sleep(20);
    }
    void command(redis.port, 'DEBUG SLEEP 2', 5000);
    await sleep(20); // the server is asleep once it has read the command
    const wave1 = Promise.all(paths.map((p) => get(port, p)));
    // The store alone (a second one, so that the dumper's circuit breaker plays no part).
    const call = (promise) => {
      const started = performance.now();
      return Promise.resolve(promise).then(
        () => ({ ms: performance.now() - started, failed: false }),
        () => ({ ms: performance.now() - started, failed: true }),
      );
    };
    const direct = [];
    for (let i = 0; i < 10; i++) direct.push(call(bare.get(`k:/d${i}`)), call(bare.sequence()));
    await sleep(30);
    const queued = [];
    for (let i = 0; i < 10; i++) queued.push(call(bare.get(`k:/q${i}`)), call(bare.sequence()));
    await sleep(470);
    const wave2 = await Promise.all(paths.map((p) => get(port, p)));
    const first = await wave1;
    return { first, second: wave2, direct: await Promise.all(direct), queued: await Promise.all(queued) };
  } finally {
    await new Promise((r) => server.close(r));
    await dumper.close();
    await bare.close();
    await redis.destroy();
  }
}

async function stall(b) {
  const first = [];
  const second = [];
  const direct = [];
  const queued = [];
  let bad = 0;
  let answered = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const r = await stallRound(b);
    for (const a of r.first) (first.push(a.ms), a.status !== 200 && bad++);
    for (const a of r.second) (second.push(a.ms), a.status !== 200 && bad++);
    for (const c of r.direct) (direct.push(c.ms), c.failed || answered++);
    for (const c of r.queued) (queued.push(c.ms), c.failed || answered++);
    log(`  ${b.name} stall round ${i + 1}: first wave max ${Math.max(...r.first.map((a) => a.ms)).toFixed(0)} ms`);
  }
  for (const list of [first, second, direct, queued]) list.sort((x, y) => x - y);
  return { first, second, direct, queued, bad, answered };
}

// ------------------------------------------------------------------ 2. stale reads across a crash

const FIXTURE = join(ROOT, 'test/stores/fixtures/app-server.mjs');

function startApp(name, env) {
  const child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env, NAME: name }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
  return new Promise((ok, fail) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      const m = /LISTENING (\d+)/.exec(d);
      if (m) ok({ name, port: Number(m[1]), child });
    });
    child.once('exit', (code) => fail(new Error(`${name} exited with ${code}: ${output}`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(app, method, path) {
  return new Promise((ok, fail) => {
    const req = http.request({ port: app.port, host: '127.0.0.1', path, method, agent, headers: { host: 'shop.test' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => ok({ status: res.statusCode, cache: res.headers['x-cache'], body }));
    });
    req.on('error', fail);
    req.end();
  });
}

async function crash(b, keep, items = 24) {
  const dir = mkdtempSync(join(b.dir, 'crash-'));
  const DATA_DB = join(dir, 'data.sqlite');
  const db = new Database(DATA_DB);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)');
  for (let id = 1; id <= items; id++) db.prepare('INSERT INTO items (id, version) VALUES (?, 0)').run(id);
  db.close();
  const redis = await RedisServer.start();
  const env = { STORE: 'redis', DATA_DB, REDIS_URL: redis.url, REDIS_PREFIX: 'crash:', PAGE_DUMPER_DIST: b.dist, STORE_COOLDOWN: '200' };
  const apps = await Promise.all(['A', 'B', 'C'].map((n) => startApp(n, env)));
  const answered = new Map(Array.from({ length: items }, (_, i) => [i + 1, [{ at: 0, version: 0 }]]));
  const floorAt = (id, t) => answered.get(id).reduce((v, w) => (w.at <= t && w.version > v ? w.version : v), 0);
  const r = { reads: 0, writes: 0, hits: 0, hitsAfter: 0, stale: 0, staleHits: 0, staleAfter: 0, checked: 0 };
  let phase = 'before';
  let done = false;
  const pick = (list) => list[Math.floor(Math.random() * list.length)];
  const ids = [...answered.keys()];
  async function client() {
    while (!done) {
      const app = pick(apps);
      if (Math.random() < 0.05) {
        const id = pick(ids);
        const res = await request(app, 'POST', `/item/${id}`);
        answered.get(id).push({ at: performance.now(), version: JSON.parse(res.body).version });
        r.writes++;
        continue;
      }
      const path = Math.random() < 0.25 ? '/items' : `/item/${pick(ids)}`;
      const sentAt = performance.now();
      const sentIn = phase;
      const res = await request(app, 'GET', path);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
      r.reads++;
      if (res.cache === 'HIT') {
        r.hits++;
        if (sentIn === 'back') r.hitsAfter++;
      }
      let stale = false;
      for (const m of res.body.matchAll(/data-id="(\d+)" data-version="(\d+)"/g)) {
        r.checked++;
        if (Number(m[2]) < floorAt(Number(m[1]), sentAt)) stale = true;
      }
      if (stale) {
        r.stale++;
        if (res.cache === 'HIT') r.staleHits++;
        if (sentIn === 'back') r.staleAfter++;
      }
    }
  }
  const clients = Array.from({ length: 12 }, client);
  try {
    for (let c = 0; c < CYCLES; c++) {
      phase = 'before';
      await sleep(1000);
      if (keep) {
        const ok = await command(redis.port, 'SAVE');
        if (ok !== '+OK') throw new Error(`SAVE answered ${ok}`);
        await sleep(400);
      }
      await redis.kill({ keep });
      phase = 'down';
      await sleep(300);
      await redis.restart();
      phase = 'back';
      await sleep(2000);
      log(`  ${b.name} ${keep ? 'kept' : 'wiped'} cycle ${c + 1}: ${r.stale} stale so far`);
    }
  } finally {
    done = true;
    await Promise.allSettled(clients);
    await Promise.all(apps.map((a) => new Promise((res) => (a.child.once('exit', res), a.child.kill('SIGTERM')))));
    await redis.destroy();
  }
  return r;
}

// ------------------------------------------------------------------ report

const builds = [];
try {
  if (BEFORE !== undefined) {
    log(`building before (${BEFORE})`);
    builds.push(build('before', BEFORE));
  }
  log('building after (working tree)');
  builds.push(build('after', undefined));
  const core = execFileSync('git', ['-C', ROOT, 'log', '-1', '--format=%h', '--', 'src/core'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
  const results = [];
  for (const b of builds) {
    log(`${b.name}: stall`);
    const s = await stall(b);
    log(`${b.name}: crash, data kept`);
    const kept = await crash(b, true);
    log(`${b.name}: crash, data wiped`);
    const wiped = await crash(b, false);
    results.push({ b, s, kept, wiped });
  }
  const f = (ms) => `${ms.toFixed(0)} ms`;
  const x = (ms) => `${(ms / COMMAND_TIMEOUT).toFixed(1)}x`;
  const out = [];
  out.push(`Run ${new Date().toISOString().slice(0, 16)}Z, \`node bench/redis-stall.mjs${args.length ? ` ${args.join(' ')}` : ''}\`, ` +
    `Node ${process.version}, ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2]}, ${os.cpus().length} CPUs. ` +
    `after = the working tree (src/core last committed at ${core}${dirty ? ', with uncommitted changes in src/' : ''}).`);
  out.push('');
  out.push(`**Stall latency**: ${REQUESTS} requests for cached pages arrive together at the front door while Redis sleeps 2 s (\`DEBUG SLEEP 2\`), ` +
    `commandTimeout ${COMMAND_TIMEOUT} ms; a second wave of ${REQUESTS} 500 ms into the stall. ${ROUNDS} rounds; latency until the last byte.`);
  out.push('');
  out.push('| build | first wave p50 | p99 | max | max / commandTimeout | second wave max | non-200 |');
  out.push('|---|---|---|---|---|---|---|');
  for (const { b, s } of results) {
    out.push(`| ${b.name} (${b.ref}) | ${f(pct(s.first, 50))} | ${f(pct(s.first, 99))} | ${f(s.first.at(-1))} | ${x(s.first.at(-1))} | ${f(s.second.at(-1))} | ${s.bad} |`);
  }
  out.push('');
  out.push(`The store alone during the same stall: 10 \`get()\` and 10 \`sequence()\` calls at once, and 20 more 30 ms later (queued behind the first), time until each failed:`);
  out.push('');
  out.push('| build | at once: max | max / commandTimeout | 30 ms later: max | max / commandTimeout | calls that did not fail |');
  out.push('|---|---|---|---|---|---|');
  for (const { b, s } of results) {
    out.push(`| ${b.name} | ${f(s.direct.at(-1))} | ${x(s.direct.at(-1))} | ${f(s.queued.at(-1))} | ${x(s.queued.at(-1))} | ${s.answered} |`);
  }
  out.push('');
  out.push(`**Stale reads across a crash**: three app processes, 12 clients (5 % writes, 24 items), Redis killed (SIGKILL) and restarted ${CYCLES} times per mode; ` +
    '"kept": restarted from a SAVE taken 400 ms before the kill (writes after it, and the invalidations Redis had acknowledged, are lost); "wiped": restarted empty. ' +
    'A read is stale when it shows an item older than a write that had answered before the read was sent.');
  out.push('');
  out.push('| build | mode | reads | hits (sent after a restart) | writes | stale reads | of them HITs | sent after a restart |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const { b, kept, wiped } of results) {
    for (const [mode, r] of [['kept', kept], ['wiped', wiped]]) {
      out.push(`| ${b.name} | ${mode} | ${r.reads} | ${r.hits} (${r.hitsAfter}) | ${r.writes} | **${r.stale}** | ${r.staleHits} | ${r.staleAfter} |`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  agent.destroy();
  for (const b of builds) rmSync(b.dir, { recursive: true, force: true });
}
