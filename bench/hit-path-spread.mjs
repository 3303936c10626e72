#!/usr/bin/env node
// The dumper's part of a hit, without HTTP, when requests spread over many pages: CPU per
// `keyFor` + `get` + `reply` on a MemoryStore of --pages pages, each request for a page picked at
// random, against the same over 1,000 pages.
//
//   node --max-old-space-size=8000 bench/hit-path-spread.mjs [--pages=200000] [--ref=<git ref>]
//        [--lookups=500000] [--rounds=3]
//
// Each build (the working tree's src/, and --ref's first when given; bench/lib/build-src.mjs) runs
// in a process of its own, one after the other, once per size. In it: a MemoryStore holds the
// pages (2,000-byte bodies, tags: the path and `layout`), stored under the keys `keyFor` gives;
// every page is served once (its representations made), then --rounds rounds of --lookups random
// pages, CPU (`process.cpuUsage()`, user + system) per lookup. Prints one line per round.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSrc } from './lib/build-src.mjs';

const args = process.argv.slice(2);
const flag = (name, dflt) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;

if (args[0] === '--measure') {
  const [, dist, pagesText, lookupsText, roundsText, label] = args;
  const pages = Number(pagesText);
  const { createDumper, MemoryStore } = await import(pathToFileURL(join(dist, 'index.js')).href);
  const store = new MemoryStore({ maxBytes: 8 * 2 ** 30 });
  const dumper = createDumper({ store, compress: false, logger: false });
  const headers = ['content-type', 'text/html; charset=utf-8', 'content-length', '2000', 'etag', '"p"'];
  const request = { host: 'spread.test', 'accept-encoding': 'gzip, br' };
  const seq = await store.sequence();
  for (let i = 0; i < pages; i++) {
    const key = dumper.keyFor('GET', `/p/${i}`, request);
    const entry = { status: 200, headers, body: Buffer.alloc(2000, 120), etag: '"p"', storedAt: Date.now(), seq, path: key, tags: [`/p/${i}`, 'layout'] };
    if (!store.set(key, entry, { maxVariantsPerPath: 16, variant: false })) throw new Error(`page ${i} was not stored`);
  }
  let sink = 0;
  const hit = (i) => {
    const key = dumper.keyFor('GET', `/p/${i}`, request);
    const entry = dumper.get(key, request);
    if (entry === undefined) throw new Error(`page ${i} was not found`);
    sink += dumper.reply(entry, 'GET', request).headers.length;
  };
  for (let i = 0; i < pages; i++) hit(i);
  const lookups = Number(lookupsText);
  for (let r = 0; r < Number(roundsText); r++) {
    const c0 = process.cpuUsage();
    for (let k = 0; k < lookups; k++) hit(Math.floor(Math.random() * pages));
    const c = process.cpuUsage(c0);
    console.log(`${label}: ${pages.toLocaleString('en-US')} pages, round ${r + 1}: ${((c.user + c.system) / lookups).toFixed(3)} µs CPU per hit`);
  }
  if (sink === 0) throw new Error('no headers');
} else {
  const pages = Number(flag('pages', '200000'));
  const ref = flag('ref', undefined);
  const builds = [...(ref !== undefined ? [{ label: ref, ref }] : []), { label: 'working tree', ref: undefined }];
  for (const b of builds) b.dist = buildSrc({ name: 'hit-path-spread', ref: b.ref, entries: ['index.ts'] }).dist;
  for (const n of [1000, pages]) {
    for (const b of builds) {
      const child = fork(fileURLToPath(import.meta.url), ['--measure', b.dist, String(n), flag('lookups', '500000'), flag('rounds', '3'), b.label], {
        execArgv: ['--max-old-space-size=8000'],
        stdio: 'inherit',
      });
      const code = await new Promise((resolve) => child.on('exit', resolve));
      if (code !== 0) throw new Error(`the ${b.label} process exited with ${code}`);
    }
  }
}
