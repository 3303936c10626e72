// Load generators: wrk (preferred: a C event loop, far less CPU than a node client) or autocannon.
// Both run as a separate process so the server and the load generator each get a core.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WRK_LUA = fileURLToPath(new URL('./wrk.lua', import.meta.url));
const AC_WORKER = fileURLToPath(new URL('./autocannon-worker.mjs', import.meta.url));

export function wrkVersion() {
  try {
    // `wrk -v` prints its banner and exits 1.
    execFileSync('wrk', ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const out = `${error.stdout ?? ''}${error.stderr ?? ''}`;
    const m = /^wrk (\S+)/m.exec(out);
    if (m) return m[1];
  }
  return undefined;
}

export function autocannonVersion() {
  try {
    return execFileSync(process.execPath, ['-p', "require('autocannon/package.json').version"], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** Picks the load generator: `wanted` ('wrk' | 'autocannon' | undefined = wrk if installed). */
export function pickLoadGenerator(wanted) {
  if (wanted === undefined || wanted === 'wrk') {
    const v = wrkVersion();
    if (v !== undefined) return { name: 'wrk', version: v, run: runWrk };
    if (wanted === 'wrk') throw new Error('wrk is not installed (apt-get install -y wrk), or use BENCH_LOADGEN=autocannon');
  }
  const v = autocannonVersion();
  if (v === undefined) throw new Error('neither wrk nor autocannon is available');
  return { name: 'autocannon', version: v, run: runAutocannon };
}

function collect(child) {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/**
 * One measurement.
 * @param {{ url: string, connections: number, seconds: number, uniquePrefix?: string, cycle?: { base: string, count: number }, headers?: string[] }} o
 *   uniquePrefix: when set, every request's path is uniquePrefix + a counter (never repeats).
 *   cycle: when set, requests go round base + 1 ... base + count.
 *   headers: when set, request headers sent with every request, as `Name: value` strings.
 * @returns {Promise<{ requests: number, seconds: number, rps: number, bytes: number, errors: number, non2xx: number, p50ms: number, p99ms: number }>}
 */
async function runWrk({ url, connections, seconds, uniquePrefix, cycle, headers }) {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', WRK_LUA];
  // wrk adds -H headers to its static request and to every wrk.format() request of wrk.lua.
  for (const h of headers ?? []) args.push('-H', h);
  args.push(url);
  if (uniquePrefix !== undefined) args.push('--', uniquePrefix);
  else if (cycle !== undefined) args.push('--', 'cycle', cycle.base, String(cycle.count));
  const { code, out, err } = await collect(spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (code !== 0 || line === undefined) throw new Error(`wrk failed (exit ${code}): ${err || out}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length));
  const secs = r.duration_us / 1e6;
  return {
    requests: r.requests,
    seconds: secs,
    rps: r.requests / secs,
    bytes: r.bytes,
    errors: r.connect + r.read + r.write + r.timeout,
    non2xx: r.status,
    p50ms: r.p50_us / 1000,
    p99ms: r.p99_us / 1000,
  };
}

async function runAutocannon(opts) {
  const child = spawn(process.execPath, [AC_WORKER, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { code, out, err } = await collect(child);
  const line = out.split('\n').find((l) => l.startsWith('AC_JSON '));
  if (code !== 0 || line === undefined) throw new Error(`autocannon failed (exit ${code}): ${err || out}`);
  return JSON.parse(line.slice('AC_JSON '.length));
}
