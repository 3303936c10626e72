// Server CPU time per miss that is stored, through Express + dumperMiddleware, for one or more
// builds, against Express alone sending the same page: what a miss costs the origin, measured in
// a way that holds on a busy machine (CPU per request, not req/s).
//
//   npm run build && node bench/miss-cpu.mjs
//   node bench/miss-cpu.mjs --dist=<build of another commit> --dist=dist --rounds=5 --requests=8000
//
// Each variant is a child process on 127.0.0.1: Express (`app.get` sending a 14 KiB HTML page with
// res.send) behind `app.use(dumperMiddleware(dumper))` on a 64 MiB MemoryStore, and the same app
// without the dumper (`express-alone`). The client sends --requests requests for paths never asked
// before (every one a miss that is rendered and stored), over --connections (16) keep-alive
// connections, after 2,000 warm-up requests; the server reports process.cpuUsage() (user + system)
// around them. Rounds alternate over the variants. Prints the median CPU µs per request, min–max.
// A --dist is a build of src/ inside this repository (`npx tsc -p tsconfig.build.json --outDir DIR`).
import { fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PAGE } from './lib/page.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : hit.slice(name.length + 3);
};

if (process.argv[2] === '--serve') {
  const [, , , dist, withDumper] = process.argv;
  const { default: express } = await import('express');
  const app = express();
  if (withDumper === 'yes') {
    const load = (p) => import(pathToFileURL(path.resolve(ROOT, dist, p)).href);
    const { createDumper, MemoryStore } = await load('index.js');
    const { dumperMiddleware } = await load('http/node/index.js');
    app.use(dumperMiddleware(createDumper({ logger: false, store: new MemoryStore({ maxBytes: 64 * 2 ** 20 }) })));
  }
  app.get('/{*rest}', (_req, res) => res.type('html').send(PAGE));
  const server = http.createServer(app).listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
  let start;
  process.on('message', (m) => {
    if (m === 'start') {
      start = process.cpuUsage();
      process.send('started');
    } else if (m === 'stop') {
      const d = process.cpuUsage(start);
      process.send({ cpu: d.user + d.system });
    }
  });
} else {
  const dists = process.argv.filter((a) => a.startsWith('--dist=')).map((a) => a.slice(7));
  if (dists.length === 0) dists.push('dist');
  const rounds = Number(arg('rounds', 5));
  const requests = Number(arg('requests', 8000));
  const connections = Number(arg('connections', 16));
  const variants = [...dists.map((d) => ({ name: `dumper@${d}`, dist: d, dumper: 'yes' })), { name: 'express-alone', dist: dists[0], dumper: 'no' }];
  const results = new Map(variants.map((v) => [v.name, []]));
  let unique = 0;
  const once = (child) => new Promise((resolve) => child.once('message', resolve));
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const child = fork(fileURLToPath(import.meta.url), ['--serve', v.dist, v.dumper], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const { port } = await once(child);
      const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
      const get = (p) =>
        new Promise((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`${v.name}: status ${res.statusCode}`));
            if (v.dumper === 'yes' && res.headers['x-cache'] !== 'MISS') reject(new Error(`${v.name}: ${res.headers['x-cache']}`));
            res.resume();
            res.on('end', resolve);
          }).on('error', reject);
        });
      for (let i = 0; i < 2000; i++) await get(`/warm/${unique++}`);
      child.send('start');
      await once(child);
      let sent = 0;
      await Promise.all(
        Array.from({ length: connections }, async () => {
          while (sent < requests) {
            sent++;
            await get(`/page/${unique++}`);
          }
        }),
      );
      child.send('stop');
      const { cpu } = await once(child);
      agent.destroy();
      child.kill();
      results.get(v.name).push(cpu / requests);
      console.error(`round ${r + 1}/${rounds} ${v.name} ${(cpu / requests).toFixed(1)} µs/request`);
    }
  }
  console.log(`\n${requests} misses per measurement, ${connections} connections, ${rounds} rounds, node ${process.version}\n`);
  console.log('| variant | server CPU µs/request (median) | min–max |');
  console.log('|---|--:|--:|');
  for (const [name, list] of results) {
    list.sort((a, b) => a - b);
    console.log(`| ${name} | ${list[Math.floor(list.length / 2)].toFixed(1)} | ${list[0].toFixed(1)}–${list.at(-1).toFixed(1)} |`);
  }
}
