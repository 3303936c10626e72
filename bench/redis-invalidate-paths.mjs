#!/usr/bin/env node
// RedisStore: `dumper.invalidate(paths)` of 10,000 paths (each the path of one stored page) in a
// store of N entries: how long the call takes, how long Redis is held, and how long until the
// entries are freed. The step "10,000 paths" of bench/scale.mjs, alone, with a fast fill.
//
//   node bench/redis-invalidate-paths.mjs [--sizes=100000,1000000] [--paths=10000] [--rounds=3] [--ref=<git ref>]
//
// The working tree's src/ (or --ref's) is compiled into .tmp/bench-redis-paths-*/ (the entry
// points src/index.ts, http/node and stores/redis; JavaScript is emitted even when another part of
// src/ has type errors). A private redis-server (no persistence, no memory limit) on a free port
// holds the store (prefix `scale`). The dumper (`compress: false`, `trackRenders: true`) renders /p/0 once through
// `withDumper`, which gives the shape of every entry: its key, tags ([path, `layout`]), headers.
// The fill then writes entries 0..N-1 with Lua scripts of 1,000 entries each, the hash and index
// sets exactly as the store's set script writes them (2,000-byte bodies), under one sequence
// number read from the store; 200 random keys must then be hits of `store.get()`.
// Each round: the dumper invalidates /p/0../p/<paths-1> in one call, and the bench records
// - the wall time of the call and the Redis commands the store's client sent for it;
// - the longest event-loop stall of this process over the call and 100 ms after
//   (monitorEventLoopDelay, 1 ms);
// - Redis held: the longest round trip of PINGs sent one after another on a connection of their
//   own, during the call; and Redis's own time in the longest script (SLOWLOG, which logs each
//   command taking 1 ms or more, with its duration measured inside Redis: not skewed by the
//   load on the machine the way client-side times are);
// - freed: the time from the call until DBSIZE shows the entries and their index sets gone, with
//   the longest script and the longest PING meanwhile;
// then stores the 10,000 entries again for the next round. Prints a Markdown table on stdout
// with the load average, progress on stderr.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { buildSrc } from './lib/build-src.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;
const SIZES = flag('sizes', '100000,1000000').split(',').map(Number);
const PATHS = Number(flag('paths', '10000'));
const ROUNDS = Number(flag('rounds', '3'));
const REF = flag('ref', undefined);
const LIMIT_MS = Number(flag("limit-seconds", "600")) * 1000;
const log = (...a) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
const loadavg = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

// ------------------------------------------------------------------ build

const ENTRIES = ['index.ts', 'http/node/index.ts', 'stores/redis/index.ts'];
function build() {
  return buildSrc({ name: 'redis-paths', ref: REF, entries: ENTRIES }).dist;
}

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Waits until something accepts connections on the port. */
async function listening(port) {
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => resolve(c.end() && true)).on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function connect(url, options = {}) {
  const r = new Redis(url, { lazyConnect: true, ...options });
  await r.connect();
  return r;
}

// ------------------------------------------------------------------ setup

const dist = build();
log(`built ${REF ?? 'the working tree'} into ${dist}`);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { createDumper } = await load('index.js');
const { withDumper } = await load('http/node/index.js');
const { RedisStore } = await load('stores/redis/index.js');
const scripts = await load('stores/redis/scripts.js');
const sha = (s) => createHash('sha1').update(s).digest('hex');
const INVALIDATE_SHA = sha(scripts.INVALIDATE);
const RECLAIM_SHA = sha(scripts.RECLAIM);

const port = await freePort();
const redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory', '0'], {
  stdio: 'ignore',
});
// The private server goes with this process, however it ends.
process.on('exit', () => redisProc.kill());
const REDIS_URL = `redis://127.0.0.1:${port}`;
await listening(port);
const admin = await connect(REDIS_URL);
const pinger = await connect(REDIS_URL);
await admin.config('SET', 'slowlog-log-slower-than', '1000');
await admin.config('SET', 'slowlog-max-len', '100000');

let commands = 0;
const client = await connect(REDIS_URL, { enableAutoPipelining: true });
const send = client.sendCommand.bind(client);
client.sendCommand = (...a) => {
  commands++;
  return send(...a);
};
const store = new RedisStore({ client, prefix: 'scale', commandTimeout: 60_000 });
const dumper = createDumper({ store, compress: false, trackRenders: true });
const BODY_BYTES = 2000;
const page = (i) => {
  const head = `<!doctype html><title>page ${i}</title><h1>Page ${i}</h1><p>`;
  return head + 'x'.repeat(BODY_BYTES - head.length - 4) + '</p>';
};
const server = http.createServer(
  withDumper(dumper, (req, res) => {
    dumper.tag('layout');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(Number(req.url.slice(3))));
  }),
);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
await new Promise((resolve, reject) =>
  http
    .get({ port: server.address().port, host: '127.0.0.1', path: '/p/0', headers: { host: 'scale.test' } }, (res) => res.resume().on('end', resolve))
    .on('error', reject),
);
// The entry the dumper stored for /p/0: its hash in Redis.
let templateKey;
for (let i = 0; i < 500 && templateKey === undefined; i++) {
  const keys = await admin.keys('{scale}e:*');
  templateKey = keys.find((k) => k.endsWith('/p/0'));
  if (templateKey === undefined) await new Promise((r) => setTimeout(r, 10));
}
if (templateKey === undefined) throw new Error(`the page /p/0 was not stored: ${JSON.stringify(await admin.keys('*'))}`);
const t = await admin.hgetallBuffer(templateKey);
const headLength = t.v.readUInt32BE(0);
const head = JSON.parse(t.v.toString('utf8', 4, 4 + headLength));
const tags = JSON.parse(t.t.toString());
log(`template ${templateKey}: tags ${JSON.stringify(tags)}, head ${headLength} bytes`);
server.close();

// ------------------------------------------------------------------ fill

/** Writes entries [from, to) as the set script does (no ttl, plain pages), 1,000 per script. */
const FILL = `
local s = ARGV[1]
local layout = ARGV[2]
for i = 3, #ARGV, 4 do
  local e = ARGV[i]
  redis.call('HSET', e, 'v', ARGV[i + 1], 's', s, 't', ARGV[i + 2], 'i', 'fill.' .. e)
  redis.call('SADD', ARGV[i + 3], e)
  redis.call('SADD', layout, e)
end
return 0
`;
async function fill(from, to) {
  const seq = await store.sequence();
  const t0 = performance.now();
  const swap = (s, i) => (typeof s === 'string' ? s.replaceAll('/p/0', `/p/${i}`) : s);
  const layoutSet = `{scale}t:${tags.find((x) => !x.endsWith('/p/0'))}`;
  const pending = [];
  for (let from1 = from; from1 < to; from1 += 1000) {
    const a = [String(seq), layoutSet];
    for (let i = from1; i < Math.min(to, from1 + 1000); i++) {
      const body = Buffer.from(page(i));
      const h = head.map((x) => (Array.isArray(x) ? x.map((y, j) => (x[j - 1] === 'content-length' ? String(body.length) : swap(y, i))) : swap(x, i)));
      h[4] = seq;
      const hb = Buffer.from(JSON.stringify(h));
      const v = Buffer.allocUnsafe(4 + hb.length + body.length);
      v.writeUInt32BE(hb.length, 0);
      hb.copy(v, 4);
      body.copy(v, 4 + hb.length);
      const entryTags = tags.map((x) => swap(x, i));
      a.push(swap(templateKey, i), v, JSON.stringify(entryTags), `{scale}t:${entryTags[0]}`);
    }
    pending.push(admin.eval(FILL, 0, ...a));
    if (pending.length >= 8) await pending.shift();
  }
  await Promise.all(pending);
  return { ms: performance.now() - t0, seq };
}

async function checkHits(n) {
  const keyHead = templateKey.slice('{scale}e:'.length, -'/p/0'.length);
  let found = 0;
  for (let k = 0; k < 200; k++) if ((await store.get(`${keyHead}/p/${Math.floor(Math.random() * n)}`)) !== undefined) found++;
  if (found !== 200) throw new Error(`only ${found} of 200 random keys were hits after the fill`);
}

// ------------------------------------------------------------------ measure

/** PINGs one after another until stopped: the longest round trip. */
function pings() {
  let stop = false;
  let max = 0;
  const done = (async () => {
    while (!stop) {
      const t0 = performance.now();
      await pinger.ping();
      max = Math.max(max, performance.now() - t0);
    }
  })();
  return async () => {
    stop = true;
    await done;
    return max;
  };
}

/** The longest command of each script logged since the last reset, in ms of Redis's time. */
async function slowest() {
  const out = { invalidate: 0, reclaim: 0, other: 0 };
  for (const [, , us, argv] of await admin.slowlog('GET', -1)) {
    // EVALSHA names the script by its digest; EVAL (the first run) by its source, cut short by SLOWLOG.
    const arg = String(argv[1]);
    const is = (digest, src) => arg === digest || arg.startsWith(src.slice(0, 100));
    const kind = is(INVALIDATE_SHA, scripts.INVALIDATE) ? 'invalidate' : is(RECLAIM_SHA, scripts.RECLAIM) ? 'reclaim' : 'other';
    out[kind] = Math.max(out[kind], us / 1000);
  }
  await admin.slowlog('RESET');
  return out;
}

const rows = [];
let filled = 0;
for (const n of SIZES) {
  log(`${n}: fill ${filled}..${n}`);
  const f = await fill(filled, n);
  filled = n;
  log(`${n}: filled in ${(f.ms / 1000).toFixed(1)} s, DBSIZE ${await admin.dbsize()}`);
  await checkHits(n);
  const k = Math.min(PATHS, n);
  const paths = Array.from({ length: k }, (_, i) => `/p/${i}`);
  for (let round = 1; round <= ROUNDS; round++) {
    await new Promise((r) => setTimeout(r, 500));
    const before = await admin.dbsize();
    // The first invalidation creates the age order of the invalidation points (`{scale}z`).
    const created = 1 - (await admin.exists('{scale}z'));
    await admin.slowlog('RESET');
    const stopPings = pings();
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const c0 = commands;
    const load0 = loadavg();
    const t0 = performance.now();
    await dumper.invalidate(paths);
    const ms = performance.now() - t0;
    const cmds = commands - c0;
    const callPing = await stopPings();
    await new Promise((r) => setTimeout(r, 100));
    h.disable();
    const callSlow = await slowest();
    // Freed: each path's entry and its index set.
    const stopPings2 = pings();
    let freedMs;
    const target = before - 2 * k + created;
    while (performance.now() - t0 < LIMIT_MS) {
      if ((await admin.dbsize()) <= target) {
        freedMs = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (freedMs === undefined) log(`not freed: DBSIZE ${await admin.dbsize()}, target ${target}, queue ${await admin.llen('{scale}rq')}`);
    const freePing = await stopPings2();
    const freeSlow = await slowest();
    const row = {
      n,
      round,
      ms,
      commands: cmds,
      stallMs: h.max / 1e6,
      pingMs: callPing,
      scriptMs: callSlow.invalidate,
      freedMs,
      freePingMs: freePing,
      reclaimScriptMs: Math.max(freeSlow.reclaim, callSlow.reclaim),
      load: load0,
    };
    rows.push(row);
    log(`${n} round ${round}: ${JSON.stringify(row)}`);
    // The entries again, for the next round.
    await fill(0, k);
    await checkHits(k);
  }
}

await store.close();
client.disconnect();
admin.disconnect();
pinger.disconnect();
redisProc.kill();

const fmt = (x, d = 0) => (x === undefined ? '–' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
console.log(`\n### ${PATHS.toLocaleString('en-US')} paths, RedisStore${REF ? ` (${REF})` : ' (working tree)'}\n`);
console.log('| entries | round | call | cmd | stall | longest PING during the call | invalidation script (Redis time) | freed in | longest reclaim script | longest PING while freeing | load average 1/5/15 |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  console.log(
    `| ${fmt(r.n)} | ${r.round} | ${fmt(r.ms, r.ms < 10 ? 1 : 0)} ms | ${r.commands} | ${fmt(r.stallMs)} ms | ${fmt(r.pingMs, 1)} ms | ${r.scriptMs ? `${fmt(r.scriptMs, 1)} ms` : '< 1 ms'} | ${r.freedMs === undefined ? '–' : `${fmt(r.freedMs / 1000, 2)} s`} | ${r.reclaimScriptMs ? `${fmt(r.reclaimScriptMs, 1)} ms` : '< 1 ms'} | ${fmt(r.freePingMs, 1)} ms | ${r.load} |`,
  );
}
