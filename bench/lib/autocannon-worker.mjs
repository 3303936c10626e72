// Runs one autocannon measurement in its own process and prints `AC_JSON {...}` (see loadgen.mjs).
import autocannon from 'autocannon';

const { url, connections, seconds, uniquePrefix, cycle, headers } = JSON.parse(process.argv[2]);
const opts = { url, connections, duration: seconds, pipelining: 1, timeout: 10 };
if (headers !== undefined) {
  opts.headers = Object.fromEntries(headers.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
}
if (uniquePrefix !== undefined) {
  let n = 0;
  opts.requests = [{ setupRequest: (req) => ({ ...req, path: `${uniquePrefix}${++n}` }) }];
} else if (cycle !== undefined) {
  let n = 0;
  opts.requests = [{ setupRequest: (req) => ({ ...req, path: `${cycle.base}${(++n % cycle.count) + 1}` }) }];
}
const started = process.hrtime.bigint();
const r = await autocannon(opts);
const secs = Number(process.hrtime.bigint() - started) / 1e9;
const requests = r['2xx'] + r.non2xx;
console.log(
  'AC_JSON ' +
    JSON.stringify({
      requests,
      seconds: secs,
      rps: requests / r.duration,
      bytes: r.throughput.total,
      errors: r.errors + r.timeouts,
      non2xx: r.non2xx,
      p50ms: r.latency.p50,
      p99ms: r.latency.p99,
    }),
);
