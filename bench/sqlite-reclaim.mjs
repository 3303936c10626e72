#!/usr/bin/env node
// SqliteStore: how long the background deletes of a lazy invalidation hold the event loop, at
// N entries, and how large the WAL grows meanwhile.
//
//   node bench/sqlite-reclaim.mjs [--entries=1000000] [--ref=<git ref>] [--profile] [--cpu-prof]
//
// Each build (the working tree's src/, and --ref's first when given) is compiled into
// .tmp/bench-sqlite-reclaim-*/ and run in a process of its own, one after the other, on a new
// file under os.tmpdir(). In that process, in order:
// 1. fill: entries 0..N-1 are stored through store.set(), 1,000 per transaction (as
//    bench/scale-server.mjs does), each a 2,000-byte body tagged with its path and `layout`.
// 2. invalidate one path right after the fill (store.invalidate(['/p/1'])).
// 3. the tag `layout` (on every entry): store.invalidate(['layout']), then the wait until
//    store.size shows the entries deleted.
// 4. fill again, then store.clear() and the wait until they are deleted.
// Meanwhile a second process (a reader) opens the same file and calls store.get() on random keys,
// ten every millisecond, as a process serving hits would.
// For each step: the call's wall time, the longest event-loop stall (monitorEventLoopDelay, 1 ms)
// over the call and the 100 ms after, the time until the entries are deleted, the longest stall
// and the number of stalls over 50 ms meanwhile (a 1 ms interval timer that fired over 50 ms
// late), the largest WAL file seen (sampled every 50 ms), and the reader's longest stall.
// --profile: every statement of the process is timed, BEGIN and COMMIT included (better-sqlite3's
// Statement run/get/all wrapped); the slowest and the totals are printed.
// --cpu-prof: the measured process runs with --cpu-prof (profiles in .tmp/sqlite-reclaim-prof/).
// Prints a Markdown table on stdout and progress on stderr.
import { execFileSync, fork, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSrc } from './lib/build-src.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// A flag without a value is '' (present), so that `args.flag !== undefined` tells it was given.
const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    return m ? [m[1], m[2] ?? ''] : [a, ''];
  }),
);
const log = (...a) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${a.join(' ')}\n`);
const load = (dist, p) => import(pathToFileURL(join(dist, p)).href);

// ------------------------------------------------------------------------ reader child process
if (args.reader !== undefined) {
  const { SqliteStore } = await load(args.dist, 'stores/sqlite/index.js');
  const store = new SqliteStore({ path: args.file, maxBytes: 2 ** 40 });
  const n = Number(args.entries);
  const h = monitorEventLoopDelay({ resolution: 1 });
  let gets = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 10; i++) {
      try {
        store.get(`k/p/${Math.floor(Math.random() * n)}`);
        gets++;
      } catch {
        // Busy: counted as nothing.
      }
    }
  }, 1);
  process.on('message', (m) => {
    if (m === 'reset') {
      h.reset();
      h.enable();
      process.send({ ok: true });
    } else if (m === 'report') {
      process.send({ maxStallMs: h.max / 1e6, gets });
    } else if (m === 'stop') {
      clearInterval(timer);
      store.close();
      process.exit(0);
    }
  });
  process.send({ ready: true });
  await new Promise(() => {});
}

// ------------------------------------------------------------------------ measured child process
if (args.measure !== undefined) {
  const n = Number(args.entries);
  const Database = (await import('better-sqlite3')).default;
  const stats = new Map();
  const note = (name, ms) => {
    const s = stats.get(name) ?? { calls: 0, totalMs: 0, maxMs: 0, over5: 0 };
    s.calls++;
    s.totalMs += ms;
    s.maxMs = Math.max(s.maxMs, ms);
    if (ms > 5) s.over5++;
    stats.set(name, s);
  };
  if (args.profile !== undefined) {
    // Every statement, BEGIN and COMMIT included (better-sqlite3 runs them as statements too).
    const probe = new Database(':memory:');
    const Statement = Object.getPrototypeOf(probe.prepare('SELECT 1'));
    probe.close();
    for (const m of ['run', 'get', 'all']) {
      const f = Statement[m];
      Statement[m] = function (...a) {
        const t = performance.now();
        try {
          return f.apply(this, a);
        } finally {
          note(this.source.replace(/\s+/g, ' ').slice(0, 100), performance.now() - t);
        }
      };
    }
  }
  const { SqliteStore } = await load(args.dist, 'stores/sqlite/index.js');
  const file = args.file;
  const store = new SqliteStore({ path: file, maxBytes: 2 ** 40 });
  const walSize = () => {
    try {
      return statSync(`${file}-wal`).size;
    } catch {
      return 0;
    }
  };
  const body = Buffer.alloc(2000, 'x');
  const headers = ['content-type', 'text/html; charset=utf-8', 'content-length', '2000', 'etag', '"e"'];
  const limits = { maxVariantsPerPath: 16, variant: false };
  const turn = () => new Promise((r) => setImmediate(r));
  async function fill() {
    const t0 = performance.now();
    const seq = store.sequence();
    for (let i = 0; i < n; i += 1000) {
      store.database.transaction(() => {
        for (let j = i; j < Math.min(n, i + 1000); j++) {
          const path = `/p/${j}`;
          const entry = { status: 200, headers, body, etag: '"e"', storedAt: Date.now(), seq, path, tags: [path, 'layout'] };
          if (!store.set(`k${path}`, entry, limits)) throw new Error(`a fill was refused at ${j}`);
        }
        // IMMEDIATE: the store's thread writes too (see bench/lib/scale-fill.mjs).
      }).immediate();
      await turn();
    }
    return performance.now() - t0;
  }
  const reader = fork(fileURLToPath(import.meta.url), ['--reader', `--dist=${args.dist}`, `--file=${file}`, `--entries=${n}`], { stdio: 'inherit' });
  const ask = (m) =>
    new Promise((resolve) => {
      reader.once('message', resolve);
      reader.send(m);
    });
  await new Promise((r) => reader.once('message', r));

  /** The call, then the wait until store.size is `target` or below. */
  async function step(name, fn, target) {
    await ask('reset');
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    fn();
    const callMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
    h.disable();
    const r = { name, callMs, stallMs: h.max / 1e6 };
    if (target !== undefined) {
      const h2 = monitorEventLoopDelay({ resolution: 1 });
      h2.enable();
      let over50 = 0;
      let last = performance.now();
      const lag = setInterval(() => {
        const now = performance.now();
        if (now - last > 51) over50++;
        last = now;
      }, 1);
      let walMax = walSize();
      const t1 = performance.now();
      while (store.size > target) {
        await new Promise((res) => setTimeout(res, 50));
        walMax = Math.max(walMax, walSize());
        if (performance.now() - t1 > 30 * 60_000) throw new Error(`${name}: not reclaimed in 30 minutes`);
      }
      r.freedS = (performance.now() - t1) / 1000;
      clearInterval(lag);
      h2.disable();
      r.freedStallMs = h2.max / 1e6;
      r.over50 = over50;
      r.walMaxMB = walMax / 2 ** 20;
    }
    r.readerStallMs = (await ask('report')).maxStallMs;
    r.walEndMB = walSize() / 2 ** 20;
    log(`${args.label}: ${JSON.stringify(r)}`);
    return r;
  }

  const out = { label: args.label, n, steps: [] };
  log(`${args.label}: fill ${n}`);
  out.fillMs = await fill();
  out.walAfterFillMB = walSize() / 2 ** 20;
  out.fileMB = statSync(file).size / 2 ** 20;
  log(`${args.label}: filled in ${(out.fillMs / 1000).toFixed(1)} s, file ${out.fileMB.toFixed(0)} MB, WAL ${out.walAfterFillMB.toFixed(1)} MB`);
  out.steps.push(await step('one path after the fill', () => store.invalidate(['/p/1'])));
  stats.clear();
  out.steps.push(await step('tag on every entry', () => store.invalidate(['layout']), 0));
  out.profileTag = [...stats].map(([k, v]) => [k, { ...v }]).sort((a, b) => b[1].maxMs - a[1].maxMs);
  log(`${args.label}: refill`);
  await fill();
  stats.clear();
  out.steps.push(await step('clear()', () => store.clear(), 0));
  out.profileClear = [...stats].map(([k, v]) => [k, { ...v }]).sort((a, b) => b[1].maxMs - a[1].maxMs);
  reader.send('stop');
  store.close();
  process.send(out);
  process.exit(0);
}

// ------------------------------------------------------------------------ the parent

function build(ref) {
  return buildSrc({ name: 'sqlite-reclaim', ref, entries: ['stores/sqlite/index.ts'] });
}

const n = Number(args.entries ?? 1_000_000);
const builds = [...(args.ref !== undefined ? [{ label: args.ref, ref: args.ref }] : []), { label: 'working tree', ref: undefined }];
const results = [];
log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const b of builds) {
  const { dir, dist } = build(b.ref);
  const tmp = mkdtempSync(join(os.tmpdir(), 'pd-sqlite-reclaim-'));
  const execArgv = args['cpu-prof'] !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, '.tmp', 'sqlite-reclaim-prof')}`] : [];
  const child = fork(
    fileURLToPath(import.meta.url),
    ['--measure', `--dist=${dist}`, `--file=${join(tmp, 'pages.sqlite')}`, `--entries=${n}`, `--label=${b.label}`, ...(args.profile !== undefined ? ['--profile'] : [])],
    { stdio: 'inherit', execArgv },
  );
  const out = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`the measured process exited with ${code}`)));
  });
  out.load = os.loadavg();
  results.push(out);
  rmSync(tmp, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

const f = (x, d = 0) => (x === undefined ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
console.log(`\n${f(n)} entries, Node ${process.version}\n`);
console.log('| build | step | call | stall in the call (reader) | deleted in | longest stall meanwhile | stalls over 50 ms | largest WAL | WAL after |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  for (const s of r.steps) {
    console.log(
      `| ${r.label} | ${s.name} | ${f(s.callMs, 1)} ms | ${f(s.stallMs)} (${f(s.readerStallMs)}) ms | ${s.freedS === undefined ? '–' : `${f(s.freedS, 1)} s`} | ${s.freedStallMs === undefined ? '–' : `${f(s.freedStallMs)} ms`} | ${f(s.over50)} | ${s.walMaxMB === undefined ? '–' : `${f(s.walMaxMB, 1)} MB`} | ${f(s.walEndMB, 1)} MB |`,
    );
  }
}
console.log('\n| build | fill /s | file | WAL after the fill | load average at the end (1, 5, 15 min) |');
console.log('|---|---:|---:|---:|---|');
for (const r of results) console.log(`| ${r.label} | ${f((r.n / r.fillMs) * 1000)} | ${f(r.fileMB)} MB | ${f(r.walAfterFillMB, 1)} MB | ${r.load.map((l) => l.toFixed(2)).join(', ')} |`);
if (args.profile !== undefined) {
  for (const r of results) {
    for (const [what, rows] of [
      ['tag', r.profileTag],
      ['clear()', r.profileClear],
    ]) {
      console.log(`\n${r.label}, ${what}: slowest statements and transactions (ms)\n`);
      console.log('| statement | calls | total | max | over 5 ms |');
      console.log('|---|---:|---:|---:|---:|');
      for (const [name, s] of rows.slice(0, 12)) console.log(`| \`${name.replaceAll('|', '\\|')}\` | ${f(s.calls)} | ${f(s.totalMs)} | ${f(s.maxMs, 1)} | ${f(s.over5)} |`);
    }
  }
}
