#!/usr/bin/env node
// What the main thread ran during the event-loop stalls that bench/scale.mjs recorded, from a CPU
// profile of the server processes.
//
//   SCALE_NODE_FLAGS="--cpu-prof --cpu-prof-dir=.tmp/prof --cpu-prof-interval=250" \
//     node bench/scale.mjs --store=memory --sizes=1000000
//   node bench/stall-profile.mjs .tmp/prof .tmp/scale-memory.json [--min=40]
//
// Every stall of at least --min ms in the JSON (a probe's anatomy carries the process id and the
// gap on the monotonic clock V8 times its samples by) is matched with the profile of that process
// (`CPU.<date>.<time>.<pid>.<tid>.<n>.cpuprofile`), and the samples inside the gap are summed by
// the function on top of the stack (V8's own work shows as `(garbage collector)`, `(program)`),
// and by the three frames under it. Samples are `--cpu-prof-interval` µs apart; a gap the thread
// spent off a core has few or none.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const min = Number(args.find((a) => a.startsWith('--min='))?.slice(6) ?? 40);
const [dir, json] = args.filter((a) => !a.startsWith('--'));
if (dir === undefined || json === undefined) {
  console.error('usage: node bench/stall-profile.mjs <profile dir> <scale json> [--min=ms]');
  process.exit(2);
}

/** Every object in `value` with a gap of at least `min` ms on the profile clock, with where it was found. */
function stalls(value, path, out) {
  if (value === null || typeof value !== 'object') return out;
  if (Array.isArray(value.monotonicUs) && value.gapMs >= min) out.push({ path: path.join('.'), ...value });
  for (const [k, v] of Object.entries(value)) stalls(v, [...path, k], out);
  return out;
}

const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
const profiles = new Map();
function profileOf(pid) {
  if (!profiles.has(pid)) {
    const file = files.find((f) => f.split('.')[3] === String(pid));
    profiles.set(pid, file === undefined ? undefined : index(JSON.parse(readFileSync(join(dir, file), 'utf8'))));
  }
  return profiles.get(pid);
}

/** The profile's samples with their times, and each node's parent. */
function index(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const times = new Array(profile.samples.length);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) times[i] = t += profile.timeDeltas[i];
  return { byId, parent, samples: profile.samples, times };
}

const name = (node) => {
  const f = node.callFrame;
  const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/(\.tmp|node_modules|bench)\//, '$1/')}:${f.lineNumber + 1}`;
  return `${f.functionName || '(anonymous)'}${where}`;
};

for (const s of stalls(JSON.parse(readFileSync(json, 'utf8')), [], [])) {
  const p = profileOf(s.pid);
  const parts = [['CPU', s.cpuMs], ['waiting for a core', s.waitForCoreMs], ['GC', s.gcMs], ['off a core', s.offCoreMs]].filter(([, v]) => v !== undefined);
  const made = parts.length === 0 ? '' : ` (${parts.map(([k, v]) => `${k} ${v}`).join(', ')})`;
  console.log(`\n${s.path}: gap ${Math.round(s.gapMs * 10) / 10} ms${made}, process ${s.pid}`);
  if (p === undefined) {
    console.log('  no profile of that process');
    continue;
  }
  const [from, to] = s.monotonicUs;
  const top = new Map();
  const stacks = new Map();
  let n = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (p.times[i] < from || p.times[i] > to) continue;
    n++;
    let id = p.samples[i];
    const leaf = name(p.byId.get(id));
    top.set(leaf, (top.get(leaf) ?? 0) + 1);
    const frames = [];
    for (let d = 0; d < 4 && id !== undefined; d++, id = p.parent.get(id)) frames.push(name(p.byId.get(id)));
    const key = frames.join(' < ');
    stacks.set(key, (stacks.get(key) ?? 0) + 1);
  }
  console.log(`  ${n} samples in the gap`);
  const show = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, 8).forEach(([k, c]) => console.log(`  ${String(c).padStart(5)}  ${k}`));
  console.log('  by function on top:');
  show(top);
  console.log('  by stack (top < callers):');
  show(stacks);
}
