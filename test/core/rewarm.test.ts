/**
 * `dumper.warm(urls)` renders and stores pages before visitors ask; the option `rewarm` requests
 * again, in the background, the recently hit pages an invalidation dropped, through the fill
 * protocol (a rewarm that raced a newer write is not stored).
 */
import http from 'node:http';
import { afterEach, expect, test } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper, type DumperOptions } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';

let dumper: Dumper | undefined;
let site: Mounted | undefined;
afterEach(async () => {
  await site?.close();
  await dumper?.close();
  site = dumper = undefined;
});

/**
 * A shop whose pages say the version of the data they read; `renders` counts renders per path;
 * while `data.gate` is set, a render waits on it after reading the data.
 */
async function shop(options: (base: string) => DumperOptions) {
  const data: { version: number; gate?: Promise<void>; read?: () => void } = { version: 1 };
  const renders = new Map<string, number>();
  let current: http.RequestListener = (_req, res) => res.end();
  site = await listen((req, res) => current(req, res));
  // trackRenders: the first render that tags a page is tracked too (see the option).
  dumper = createDumper({ logger: false, trackRenders: true, ...options(site.url) });
  const d = dumper;
  current = withDumper(d, async (req, res) => {
    const path = req.url ?? '/';
    renders.set(path, (renders.get(path) ?? 0) + 1);
    if (path.startsWith('/flavours/')) d.tag('flavours');
    const seen = data.version;
    if (data.gate !== undefined) {
      data.read?.();
      await data.gate;
    }
    res.end(`${path} v${seen}`);
  });
  const get = async (path: string) => {
    const r = await fetch(site!.url + path);
    return { body: await r.text(), cache: r.headers.get('x-cache') };
  };
  return { data, renders, get, url: site.url, dumper: d };
}

test('warm() renders and stores the pages, and says what each gave', async () => {
  const s = await shop(() => ({}));
  const report = await s.dumper.warm([`${s.url}/a`, `${s.url}/b`, new URL(`${s.url}/a`)], { concurrency: 1 });
  expect([report.total, report.miss, report.hit, report.errors]).toEqual([3, 2, 1, 0]);
  expect(report.results.map((r) => r.cache)).toEqual(['MISS', 'MISS', 'HIT']);
  expect(await s.get('/b')).toEqual({ body: '/b v1', cache: 'HIT' });
});

test('rewarm: a recently hit page that an invalidation dropped is rendered again in the background and is a hit for the next visitor', async () => {
  const s = await shop((base) => ({ rewarm: { base, delay: 0 } }));
  for (const p of ['/flavours/mint', '/flavours/lemon', '/about']) {
    await s.get(p);
    expect((await s.get(p)).cache).toBe('HIT');
  }
  s.data.version = 2;
  await s.dumper.invalidateTags('flavours');
  await s.dumper.flushRewarm();
  expect(s.dumper.rewarmStats).toMatchObject({ requested: 2, failed: 0 });
  // The next visitors get the new pages from the store: rendered by the rewarm, not for them.
  expect(await s.get('/flavours/mint')).toEqual({ body: '/flavours/mint v2', cache: 'HIT' });
  expect(await s.get('/flavours/lemon')).toEqual({ body: '/flavours/lemon v2', cache: 'HIT' });
  expect(s.renders.get('/flavours/mint')).toBe(2);
  // A page the invalidation did not drop was not requested.
  expect(s.renders.get('/about')).toBe(1);
});

test('rewarm: only pages hit within `recent`, and every page on invalidateAll()', async () => {
  const s = await shop((base) => ({ rewarm: { base, delay: 0, recent: 60_000 } }));
  await s.get('/a');
  await s.get('/a'); // a hit: remembered
  await s.get('/never-hit'); // stored, never hit: not remembered
  await s.dumper.invalidateAll();
  await s.dumper.flushRewarm();
  expect(s.dumper.rewarmStats?.requested).toBe(1);
  expect((await s.get('/a')).cache).toBe('HIT');
  expect((await s.get('/never-hit')).cache).toBe('MISS');
});

test('rewarm: a render that raced a newer write is not stored, and that write asks for the page again', async () => {
  const s = await shop((base) => ({ rewarm: { base, delay: 0 } }));
  await s.get('/flavours/mint');
  await s.get('/flavours/mint');
  // The rewarm's render reads version 2 and waits; a write (version 3) lands meanwhile.
  let release!: () => void;
  s.data.gate = new Promise((r) => (release = r));
  const read = new Promise<void>((r) => (s.data.read = r));
  s.data.version = 2;
  await s.dumper.invalidateTags('flavours');
  await read;
  s.data.gate = undefined;
  s.data.version = 3;
  await s.dumper.invalidateTags('flavours');
  release();
  await s.dumper.flushRewarm();
  // The render of version 2 was not stored; the second write's rewarm was, and serves the visitor.
  expect(await s.get('/flavours/mint')).toEqual({ body: '/flavours/mint v3', cache: 'HIT' });
  expect(s.renders.get('/flavours/mint')).toBe(3);
  expect(s.dumper.rewarmStats?.requested).toBe(2);
});

test('the option is checked', () => {
  expect(() => createDumper({ rewarm: { base: 'localhost:3000' } })).toThrow(
    new TypeError('page-dumper: option "rewarm.base" must be the site\'s own http(s) origin, such as "http://127.0.0.1:3000", got "localhost:3000"'),
  );
  expect(() => createDumper({ rewarm: { base: 'http://127.0.0.1:3000', concurency: 2 } as never })).toThrow(
    new TypeError('page-dumper: option "rewarm" has no "concurency"; it takes base, recent, pages, concurrency, delay, timeout'),
  );
  expect(() => createDumper({ rewarm: { base: 'http://127.0.0.1:3000', pages: 0 } })).toThrow(new TypeError('page-dumper: option "rewarm.pages" must be a positive integer, got 0'));
});
