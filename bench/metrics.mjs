// What counting (dumper.stats()) and the diagnostics channels cost a hit: builds compared in one
// run, with and without a subscriber on every channel.
//
//   # the builds, each beside a node_modules symlink so that their imports resolve
//   mkdir -p /tmp/pd-before /tmp/pd-after && ln -sfn "$PWD/node_modules" /tmp/pd-before/node_modules && ln -sfn "$PWD/node_modules" /tmp/pd-after/node_modules
//   git archive c6783a5 src tsconfig.json tsconfig.build.json | tar -x -C /tmp/pd-before   # the commit before the counters
//   (cd /tmp/pd-before && npx tsc -p tsconfig.build.json --outDir dist)
//   npx tsc -p tsconfig.build.json --outDir /tmp/pd-after/dist
//   node bench/metrics.mjs --before=/tmp/pd-before/dist --after=/tmp/pd-after/dist [--rounds=9]
//
// Each variant is its own child process, so one variant's channel subscription or JIT state
// cannot touch another's:
//   before            the build without counters or channels (--before)
//   after             the build with them, no subscriber
//   after+channels    the same build, a no-op subscriber on each of the six channels
//
// Two measures, each in rounds that alternate over the variants (rotating the order), so every
// variant shares the machine's weather:
//   core  ns per hit of the engine alone: keyFor() + get() + reply() on a MemoryStore, as every
//         adapter calls them, --iterations (200000) per round (CPU time of the loop).
//   http  server CPU µs per hit through the node front door (withDumper), --requests (20000) per
//         round over 50 keep-alive connections in waves (as bench/hit-cpu.mjs), every response
//         checked (200, the page's length, X-Cache: HIT).
// The report gives the median over --rounds (9), min–max, and each variant against `before`.
//
// `--callgrind` runs the children under valgrind and counts instructions per hit instead of time
// (user space, all threads, GC and JIT included): indifferent to what else the machine runs, so
// it holds on a busy one where CPU time does not. Slow: use fewer --iterations and --requests
// (say 20000 and 3000) and --rounds=3.
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CONTENT_TYPE, ETAG, PAGE } from './lib/page.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHANNELS = ['hit', 'miss', 'store', 'refusal', 'bypass', 'invalidate'].map((c) => `page-dumper:${c}`);
const HEADERS = { 'content-type': CONTENT_TYPE, 'content-length': String(PAGE.length), etag: ETAG };

function option(name, fallback) {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found === undefined ? fallback : found.slice(name.length + 3);
}

// ------------------------------------------------------------------------------ child side

async function child(dist, channels) {
  const { createDumper } = await import(pathToFileURL(path.resolve(ROOT, dist, 'index.js')).href);
  const { withDumper } = await import(pathToFileURL(path.resolve(ROOT, dist, 'http/node/index.js')).href);
  if (channels) for (const name of CHANNELS) diagnostics.subscribe(name, () => {});
  // The engine alone: one stored page, then hits as adapters make them.
  const core = createDumper({ logger: false, version: false });
  const reqHeaders = { host: 'bench.example', 'accept-encoding': 'gzip, br' };
  const key = core.keyFor('GET', '/page/1', reqHeaders);
  const plan = await core.beginFill(key, 'GET', reqHeaders);
  await plan.fill.complete(200, ['content-type', CONTENT_TYPE, 'etag', ETAG], PAGE);
  await core.flushCompression();
  let sink = 0;
  const loop = (n) => {
    const a = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const k = core.keyFor('GET', '/page/1', reqHeaders);
      const entry = core.get(k, reqHeaders);
      sink += core.reply(entry, 'GET', reqHeaders).status;
    }
    const b = process.cpuUsage(a);
    return ((b.user + b.system) * 1000) / n;
  };
  // The front door, serving hits.
  const dumper = createDumper({ logger: false, version: false });
  let renders = 0;
  const server = http.createServer(
    withDumper(dumper, (req, res) => {
      renders++;
      setTimeout(() => {
        res.writeHead(200, HEADERS);
        res.end(PAGE);
      }, 5);
    }),
  );
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  process.on('message', (msg) => {
    if (msg.cmd === 'core') process.send({ ns: loop(msg.n), sink: sink & 1 });
    else if (msg.cmd === 'cpu') {
      const c = process.cpuUsage();
      process.send({ cpu: c.user + c.system, renders, stats: typeof dumper.stats === 'function' ? dumper.stats().hits : undefined });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ port: server.address().port });
}

// ------------------------------------------------------------------------------ parent side

function start(name, dist, channels, grind) {
  const options = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] };
  if (grind !== undefined) {
    options.execPath = 'valgrind';
    options.execArgv = ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${grind}/cg.%p`, `--log-file=${grind}/vg.%p.log`, process.execPath];
  }
  const c = fork(fileURLToPath(import.meta.url), ['--child', dist, channels ? '1' : '0'], options);
  const waiters = [];
  c.on('message', (m) => waiters.shift()?.(m));
  const next = () => new Promise((r) => waiters.push(r));
  return next().then(({ port }) => ({
    name,
    port,
    child: c,
    ask(msg) {
      const p = next();
      c.send(msg);
      return p;
    },
    /** Instructions executed while `run()` runs (under callgrind). */
    async instructions(run) {
      const ctl = (...args) => execFileSync('callgrind_control', [...args, String(c.pid)], { stdio: 'ignore' });
      ctl('-i', 'on');
      ctl('-z');
      await run();
      ctl('-d');
      ctl('-i', 'off');
      const prefix = `cg.${c.pid}.`;
      const last = fs
        .readdirSync(grind)
        .filter((f) => f.startsWith(prefix))
        .sort((a, b) => Number(b.slice(prefix.length)) - Number(a.slice(prefix.length)))[0];
      return Number(/^(?:totals|summary): (\d+)/m.exec(fs.readFileSync(path.join(grind, last), 'utf8'))[1]);
    },
  }));
}

/** `total` GETs over `connections` keep-alive sockets, one request per socket per wave; checks every response. */
function load(port, total, connections) {
  const request = Buffer.from(`GET /page/1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  let sent = 0;
  let done = 0;
  let pending = 0;
  let connected = 0;
  return new Promise((resolve, reject) => {
    const sockets = [];
    const fail = (e) => {
      for (const s of sockets) s.destroy();
      reject(e);
    };
    const wave = () => {
      if (done === total) {
        for (const s of sockets) s.end();
        return resolve();
      }
      for (const s of sockets) {
        if (sent === total) break;
        sent++;
        pending++;
        s.write(request);
      }
    };
    for (let i = 0; i < connections; i++) {
      const s = net.connect(port, '127.0.0.1');
      sockets.push(s);
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      s.on('connect', () => ++connected === connections && wave());
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
          if (!head.startsWith('HTTP/1.1 200') || length !== PAGE.length || !/\r\nx-cache: HIT/i.test(head)) return fail(new Error(`unexpected response: ${head}`));
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
  const before = option('before', undefined);
  const after = option('after', 'dist');
  const rounds = Number(option('rounds', '9'));
  const iterations = Number(option('iterations', '200000'));
  const requests = Number(option('requests', '20000'));
  const connections = 50;
  const grind = process.argv.includes('--callgrind') ? fs.mkdtempSync(path.join(os.tmpdir(), 'metrics-bench-')) : undefined;
  const plan = [...(before ? [['before', before, false]] : []), ['after', after, false], ['after+channels', after, true]];
  const children = [];
  for (const [name, dist, channels] of plan) children.push(await start(name, dist, channels, grind));
  const core = new Map(children.map((c) => [c.name, []]));
  const cpu = new Map(children.map((c) => [c.name, []]));
  try {
    for (const c of children) {
      // Prime the front door's entry, then warm both measures up.
      const r = await fetch(`http://127.0.0.1:${c.port}/page/1`);
      if (r.status !== 200 || Buffer.compare(Buffer.from(await r.arrayBuffer()), PAGE) !== 0) throw new Error(`${c.name}: wrong page`);
      await load(c.port, requests, connections);
      await c.ask({ cmd: 'core', n: iterations });
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < children.length; i++) {
        const c = children[(i + round) % children.length];
        if (grind === undefined) core.get(c.name).push((await c.ask({ cmd: 'core', n: iterations })).ns);
        else core.get(c.name).push((await c.instructions(() => c.ask({ cmd: 'core', n: iterations }))) / iterations);
        const a = await c.ask({ cmd: 'cpu' });
        const ir = grind === undefined ? undefined : await c.instructions(() => load(c.port, requests, connections));
        if (grind === undefined) await load(c.port, requests, connections);
        const b = await c.ask({ cmd: 'cpu' });
        if (b.renders !== a.renders) throw new Error(`${c.name}: the origin rendered during a hit round`);
        if (b.stats !== undefined && b.stats - a.stats !== requests) throw new Error(`${c.name}: stats().hits counted ${b.stats - a.stats} of ${requests} hits`);
        cpu.get(c.name).push(ir === undefined ? (b.cpu - a.cpu) / requests : ir / requests);
      }
      process.stderr.write(`round ${round + 1}/${rounds}\n`);
    }
  } finally {
    await Promise.all(
      children.map((c) => {
        const exited = new Promise((resolve) => c.child.once('exit', resolve));
        c.child.kill();
        return exited;
      }),
    );
    if (grind !== undefined) fs.rmSync(grind, { recursive: true, force: true });
  }
  console.log(`\nnode ${process.version}, ${rounds} rounds; core: ${iterations} hits per round; http: ${requests} hits per round over ${connections} connections\n`);
  const [coreUnit, httpUnit] = grind === undefined ? ['core ns/hit', 'http server CPU µs/hit'] : ['core instructions/hit', 'http server instructions/hit'];
  const f = (x, digits) => (grind === undefined ? x.toFixed(digits) : String(Math.round(x)));
  console.log(`| variant | ${coreUnit} (median) | min–max | vs before | ${httpUnit} (median) | min–max | vs before |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  const ref = (m) => (before ? median(m.get('before')) : undefined);
  for (const c of children) {
    const k = core.get(c.name);
    const h = cpu.get(c.name);
    const pct = (xs, m) => (ref(m) === undefined ? '' : `${((median(xs) / ref(m) - 1) * 100).toFixed(1)} %`);
    console.log(
      `| ${c.name} | ${f(median(k), 0)} | ${f(Math.min(...k), 0)}–${f(Math.max(...k), 0)} | ${pct(k, core)} | ${f(median(h), 2)} | ${f(Math.min(...h), 2)}–${f(Math.max(...h), 2)} | ${pct(h, cpu)} |`,
    );
  }
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4] === '1');
else await main();
