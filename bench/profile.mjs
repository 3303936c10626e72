#!/usr/bin/env node
// CPU profile of benchmark servers under load, summarized by function.
//
//   node bench/profile.mjs                              front-door and bare, 10 s each
//   node bench/profile.mjs express-middleware express-ceiling --duration=10 --top=30
//   node bench/profile.mjs origin+dumper-miss origin --keep    (also writes the .cpuprofile files)
//   node bench/profile.mjs hono-dumper hono-bare               (the variants of bench/frameworks.mjs too)
//   node bench/profile.mjs store-redis --pages=1000            (requests going round 1,000 cached pages)
//
// Each variant's server is started as in bench/run.mjs, primed and verified, warmed up for 3 s,
// then profiled (V8 sampling profiler through node:inspector, 100 µs interval) while the load
// generator runs. The report gives, per variant, self time per request by category and the top
// functions by self time; and inclusive time of page-dumper's own functions. `--keep` writes the
// raw profiles to the OS temp directory (open them in Chrome DevTools); nothing is written under
// bench/. `--grep=REGEXP` also lists every function whose name or file matches.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, fmt, measure, ROOT, sleep, startServer, variantNamed, verify } from './lib/harness.mjs';
import { pickLoadGenerator } from './lib/loadgen.mjs';

const flags = {};
const names = [];
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
  if (m) flags[m[1]] = m[2] ?? true;
  else names.push(a);
}
if (names.length === 0) names.push('front-door', 'bare');
const variants = names.map(variantNamed);
const opts = {
  seconds: Number(flags.duration ?? 10),
  connections: Number(flags.connections ?? 50),
  dataMs: Number(process.env.BENCH_DATA_MS ?? 5),
  top: Number(flags.top ?? 25),
  interval: Number(flags.interval ?? 100),
  // --pages=N: requests go round /page/1 ... /page/N, each cached first (hit variants only).
  cycle: flags.pages === undefined ? undefined : { base: '/page/', count: Number(flags.pages) },
};

/** Where a function lives: page-dumper (dist/), a package, node internals, or V8 pseudo-frames. */
function place(url) {
  if (url === '') return { cat: 'v8/native', file: '' };
  if (url.startsWith('node:')) {
    const file = url.slice(5);
    // AsyncLocalStorage (used by dumper.tag()) runs on async_hooks in Node 20: show it apart.
    return { cat: /async_hooks|async_local_storage/.test(file) ? 'node async_hooks (AsyncLocalStorage)' : 'node internals', file };
  }
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + 14);
    const pkg = rest.startsWith('@') ? rest.split('/').slice(0, 2).join('/') : rest.split('/')[0];
    return { cat: `pkg ${pkg}`, file: rest };
  }
  if (path.startsWith(ROOT)) {
    const rel = path.slice(ROOT.length);
    return { cat: rel.startsWith('dist/') ? 'page-dumper (dist/)' : rel.startsWith('bench/') ? 'bench server code' : rel, file: rel };
  }
  return { cat: 'other', file: path };
}

/** Self and inclusive time per function (aggregated over call sites), per request. */
function summarize(profile, requests) {
  const { nodes, samples, timeDeltas } = profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map(); // node id -> µs
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? timeDeltas[i] ?? 0;
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt);
  }
  const keyOf = (n) => {
    const f = n.callFrame;
    const p = place(f.url);
    return { key: `${f.functionName || '(anonymous)'}  ${p.file}${p.file ? `:${f.lineNumber + 1}` : ''}`, cat: p.cat, name: f.functionName || '(anonymous)' };
  };
  const fns = new Map();
  const fn = (n) => {
    const k = keyOf(n);
    let e = fns.get(k.key);
    if (!e) fns.set(k.key, (e = { ...k, self: 0, incl: 0 }));
    return e;
  };
  let total = 0;
  let idle = 0;
  const cats = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const e = fn(n);
    total += us;
    if (e.name === '(idle)') {
      idle += us;
      continue;
    }
    e.self += us;
    const cat = e.name === '(garbage collector)' ? 'garbage collector' : e.name === '(program)' ? '(program): native, not attributed' : e.cat;
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    // inclusive: once per distinct function on the stack
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const f = fn(byId.get(cur));
      if (seen.has(f)) continue;
      seen.add(f);
      f.incl += us;
    }
  }
  const busy = total - idle;
  return { fns: [...fns.values()], cats, busy, total, idle, perReq: (us) => us / requests };
}

function report(v, s, requests, rps) {
  const out = [];
  const pct = (us) => `${((100 * us) / s.busy).toFixed(1)}%`;
  const per = (us) => s.perReq(us).toFixed(2);
  out.push(`### \`${v.name}\`: ${fmt(rps)} req/s while profiled, ${fmt(requests)} requests, busy ${(s.busy / 1e6).toFixed(2)} s of ${(s.total / 1e6).toFixed(2)} s (${per(s.busy)} µs CPU per request on the main thread)`);
  out.push('', '| where | self µs/req | share of busy |', '|---|--:|--:|');
  for (const [cat, us] of [...s.cats].sort((a, b) => b[1] - a[1])) out.push(`| ${cat} | ${per(us)} | ${pct(us)} |`);
  out.push('', `Top ${opts.top} functions by self time:`, '', '| function | where | self µs/req | self % |', '|---|---|--:|--:|');
  for (const f of s.fns.filter((f) => f.name !== '(idle)').sort((a, b) => b.self - a.self).slice(0, opts.top)) {
    out.push(`| \`${f.key.split('  ')[0]}\` | ${f.key.split('  ')[1] || f.cat} | ${per(f.self)} | ${pct(f.self)} |`);
  }
  if (flags.grep) {
    const re = new RegExp(flags.grep);
    const hits = s.fns.filter((f) => re.test(f.key) && f.name !== '(idle)').sort((a, b) => b.self - a.self);
    out.push('', `Functions matching /${flags.grep}/:`, '', '| function | where | self µs/req | inclusive µs/req |', '|---|---|--:|--:|');
    for (const f of hits.slice(0, 40)) out.push(`| \`${f.key.split('  ')[0]}\` | ${f.key.split('  ')[1] || f.cat} | ${per(f.self)} | ${per(f.incl)} |`);
  }
  const mine = s.fns.filter((f) => f.cat === 'page-dumper (dist/)' && f.incl > 0).sort((a, b) => b.incl - a.incl);
  if (mine.length) {
    out.push('', 'page-dumper functions, inclusive time (their callees included):', '', '| function | where | inclusive µs/req | inclusive % | self µs/req |', '|---|---|--:|--:|--:|');
    for (const f of mine.slice(0, 20)) out.push(`| \`${f.key.split('  ')[0]}\` | ${f.key.split('  ')[1]} | ${per(f.incl)} | ${pct(f.incl)} | ${per(f.self)} |`);
  }
  return out.join('\n');
}

async function main() {
  ensureBuilt(false);
  const lg = pickLoadGenerator(process.env.BENCH_LOADGEN ?? flags.loadgen);
  const dir = join(os.tmpdir(), 'page-dumper-profiles');
  const sections = [];
  for (const v of variants) {
    const server = await startServer(v, opts.dataMs);
    try {
      await verify(server);
      if (opts.cycle !== undefined) {
        for (let i = 1; i <= opts.cycle.count; i++) await (await fetch(`http://127.0.0.1:${server.port}${opts.cycle.base}${i}`)).arrayBuffer();
        await sleep(200);
      }
      await measure(server, lg, opts, 3); // warm-up: JIT, caches
      await sleep(300);
      await server.call({ cmd: 'profile-start', intervalUs: opts.interval }, 'profiling');
      const r = await measure(server, lg, opts, opts.seconds);
      const { profile } = await server.call({ cmd: 'profile-stop' }, 'profile', 60_000);
      if (flags.keep) {
        mkdirSync(dir, { recursive: true });
        const file = join(dir, `${v.name}-${Date.now()}.cpuprofile`);
        writeFileSync(file, profile);
        process.stderr.write(`wrote ${file}\n`);
      }
      sections.push(report(v, summarize(JSON.parse(profile), r.requests), r.requests, r.rps));
    } finally {
      server.stop();
    }
    await sleep(500);
  }
  console.log(
    `Profiled with ${lg.name} ${lg.version}, ${opts.connections} connections, ${opts.seconds} s, sampling every ${opts.interval} µs; node ${process.version}.\n` +
      'Sampling adds overhead, so req/s here are lower than in bench/run.mjs; compare the shares, not the rates.\n\n' +
      sections.join('\n\n'),
  );
}

await main();
