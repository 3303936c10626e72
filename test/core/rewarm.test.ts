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
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  await site?.close();
  await dumper?.close();
  site = dumper = undefined;
  for (const f of cleanup.splice(0).reverse()) await f();
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

test('rewarm: a popular page whose rewarmed render carries a new tag is rewarmed when that tag is invalidated', async () => {
  let renders = 0;
  let listener: http.RequestListener = () => {};
  const m = await listen((req, res) => listener(req, res));

  const dumper = createDumper({ logger: false, trackRenders: true, rewarm: { base: m.url, delay: 0 } });
  const d = dumper;
  listener = withDumper(d, (_req: http.IncomingMessage, res: http.ServerResponse) => {
    renders++;
    // The page shows the current "featured" product: its tag changes with the data.
    d.tag(renders === 1 ? 'product:1' : 'product:2');
    res.setHeader('content-type', 'text/html');
    res.end(`<p>render ${renders}</p>`);
  });
  cleanup.push(() => d.close(), () => m.close());
  await (await fetch(`${m.url}/home`)).text(); // miss, stored with product:1
  await d.flushCompression();
  expect((await fetch(`${m.url}/home`)).headers.get('x-cache')).toBe('HIT'); // a visitor: the page is hot
  await d.invalidateTags(['product:1']);
  await d.flushRewarm();
  await d.flushCompression();
  expect(renders).toBe(2); // rewarmed, stored now with product:2
  await d.invalidateTags(['product:2']); // a write of what the page shows now
  await d.flushRewarm();
  await d.flushCompression();
  expect(renders).toBe(3); // rewarmed again
  // The page was hit a moment ago; the visitor after this write must get a hit.
  const next = await fetch(`${m.url}/home`);
  await next.text();
  expect(next.headers.get('x-cache')).toBe('HIT');
});

test('rewarm: the background re-renders are not counted as visitor misses (the hit ratio after known visitor traffic)', async () => {
  let listener: http.RequestListener = () => {};
  const m = await listen((req, res) => listener(req, res));

  const d = createDumper({ logger: false, trackRenders: true, rewarm: { base: m.url, delay: 0 } });
  listener = withDumper(d, (_req: http.IncomingMessage, res: http.ServerResponse) => {
    d.tag('post:1');
    res.setHeader('content-type', 'text/html');
    res.end('<p>post</p>');
  });
  cleanup.push(() => d.close(), () => m.close());
  // Visitors: a miss, then hits; three writes, each followed by visitors who all get hits.
  await (await fetch(`${m.url}/post`)).text();
  await d.flushCompression();
  for (let write = 0; write < 3; write++) {
    expect((await fetch(`${m.url}/post`)).headers.get('x-cache'), `write ${write}`).toBe('HIT');
    await d.invalidateTags(['post:1']);
    await d.flushRewarm();
    await d.flushCompression();
  }
  expect((await fetch(`${m.url}/post`)).headers.get('x-cache')).toBe('HIT');
  // Visitors had 1 miss and 4 hits: a hit ratio of 80 %, not 4 / 8.
  const s = d.stats();
  expect({ hits: s.hits, misses: s.misses }).toEqual({ hits: 4, misses: 1 });
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
