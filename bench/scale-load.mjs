// The hit load of bench/scale.mjs, in a process of its own: GET /p/<random i below N> over
// keep-alive connections, one request in flight per connection, for a given time.
//
//   node bench/scale-load.mjs <port> <N> <seconds> <connections>
// Prints one JSON line: { requests, ms, notHit } (notHit: status other than 200 or no X-Cache: HIT).
import http from 'node:http';

const [port, n, seconds, connections] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
let requests = 0;
let notHit = 0;
const end = performance.now() + seconds * 1000;
const t0 = performance.now();
function one() {
  return new Promise((resolve, reject) => {
    const i = Math.floor(Math.random() * n);
    http
      .get({ host: '127.0.0.1', port, path: `/p/${i}`, agent, headers: { host: 'scale.test' } }, (res) => {
        if (res.statusCode !== 200 || !/HIT/.test(String(res.headers['x-cache']))) notHit++;
        res.resume().on('end', resolve);
      })
      .on('error', reject);
  });
}
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      await one();
      requests++;
    }
  }),
);
process.stdout.write(JSON.stringify({ requests, ms: performance.now() - t0, notHit }) + '\n');
agent.destroy();
