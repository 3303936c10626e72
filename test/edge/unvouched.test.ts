/**
 * Responses the dumper cannot vouch for at the edge, and pages whose body ends late:
 * - a page rendered for a visitor with cookies says `private` in `Cache-Control` as well as
 *   `no-store` in the freshness header: Fastly takes only a lifetime from `Surrogate-Control`
 *   and passes responses marked `private` (its default rules); with `Surrogate-Control: no-store`
 *   alone it would keep the page for its fallback TTL (an hour) and show it to others;
 * - a response passed through with the app's own `Cache-Control: public` (a static file) is left
 *   to the app: a real Varnish keeps it;
 * - a page whose body ends more than half of `raceWindow` after its render began is purged by its
 *   path when it ends: an edge that keeps a page once all of it arrived gets it after a write's
 *   two purges otherwise.
 */
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Purger } from '../../src/core/purge.js';
import { fastlyPurger, varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { definedIf, needVarnish } from '../support/services.js';
import { startVarnish, type Varnish } from './varnish-server.js';

const varnishd = await needVarnish();
const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function site(dumper: Dumper, app: http.RequestListener): Promise<Mounted> {
  const mounted = await listen(withDumper(dumper, app));
  closers.push(() => mounted.close(), () => dumper.close());
  return mounted;
}

const fastly = () => fastlyPurger({ serviceId: 'svc', token: 't', endpoint: 'http://127.0.0.1:9' });

describe('a page for a visitor with cookies', () => {
  test('is private for shared caches as well as no-store for the edge', async () => {
    const dumper = createDumper({ logger: false, purgers: [fastly()] });
    const { url } = await site(dumper, (req, res) => {
      res.end(`Hello ${/session=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'guest'}`);
    });
    const r = await fetch(`${url}/account`, { headers: { cookie: 'session=alice' } });
    expect(await r.text()).toBe('Hello alice');
    expect(r.headers.get('surrogate-control')).toBe('no-store');
    expect(r.headers.get('cache-control')).toBe('private, max-age=0, must-revalidate');
  });

  test("keeps the app's Cache-Control directives and adds private to them; one that says private or no-store is left alone", async () => {
    const dumper = createDumper({ logger: false, purgers: [fastly()] });
    let cc = 'max-age=60';
    const { url } = await site(dumper, (_req, res) => {
      res.setHeader('cache-control', cc);
      res.end('mine');
    });
    const get = async () => (await fetch(`${url}/account`, { headers: { cookie: 'session=alice' } })).headers.get('cache-control');
    expect(await get()).toBe('max-age=60, private');
    cc = 'no-store';
    expect(await get()).toBe('no-store');
    cc = 'private, max-age=5';
    expect(await get()).toBe('private, max-age=5');
  });

  test('a page passed through (a 404) is private too; one the app marks public is left to the app', async () => {
    const dumper = createDumper({ logger: false, purgers: [fastly()] });
    const { url } = await site(dumper, (req, res) => {
      // What serve-static sends: the dumper passes static files through (staticFiles: false).
      if (req.url === '/app.css') res.setHeader('accept-ranges', 'bytes').setHeader('cache-control', 'public, max-age=31536000, immutable');
      else res.statusCode = 404;
      res.end('x');
    });
    const missing = await fetch(`${url}/missing`);
    expect([missing.status, missing.headers.get('surrogate-control'), missing.headers.get('cache-control')]).toEqual([404, 'no-store', 'private, max-age=0, must-revalidate']);
    const css = await fetch(`${url}/app.css`);
    expect([css.headers.get('surrogate-control'), css.headers.get('cache-control')]).toEqual([null, 'public, max-age=31536000, immutable']);
  });
});

definedIf(varnishd !== undefined, describe)('behind Varnish', () => {
  let varnish: Varnish;
  let origin: Mounted;
  let current: http.RequestListener = (_req, res) => res.end();
  const dumpers: Dumper[] = [];
  beforeAll(async () => {
    origin = await listen((req, res) => current(req, res));
    varnish = await startVarnish(varnishd!, origin.port);
  }, 60_000);
  afterAll(async () => {
    await varnish?.stop();
    await origin?.close();
  });
  afterEach(async () => {
    for (const d of dumpers.splice(0)) await d.close();
  });

  test("a static file the app marks public is kept by Varnish (the dumper passes it through and leaves it to the app's headers)", async () => {
    const dumper = createDumper({ logger: false, purgers: [varnishPurger({ url: varnish.url })] });
    dumpers.push(dumper);
    let served = 0;
    current = withDumper(dumper, (_req, res) => {
      served++;
      res.setHeader('cache-control', 'public, max-age=31536000, immutable');
      res.setHeader('content-type', 'text/css');
      res.end('body{}');
    });
    const path = `/assets/app-${Date.now()}.css`;
    await (await fetch(varnish.url + path)).text();
    const second = await fetch(varnish.url + path);
    await second.text();
    expect(second.headers.get('x-edge-cache')).toBe('HIT');
    expect(served).toBe(1);
  });
});

test("a page whose body ends late (after a write's two purges) is purged by its path when it ends", async () => {
  const purges: Array<{ at: number; tags: string[] }> = [];
  const purger: Purger = {
    id: 'buffering-edge',
    tagHeader: { name: 'surrogate-key', separator: ' ', maxBytes: 16_384, maxTagBytes: 1024 },
    freshnessHeader: 'surrogate-control',
    maxBatch: 256,
    async purge(tags) {
      purges.push({ at: Date.now(), tags: [...tags] });
    },
  };
  const dumper = createDumper({ logger: false, purgers: [purger], edge: { raceWindow: 400 } });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let version = 1;
  const { url } = await site(dumper, async (_req, res) => {
    const seen = version;
    res.write(`<h1>Catalogue v${seen}</h1>`); // the head goes out at once, fresh for the edge
    await gate; // the rest streams slowly
    res.end(`<p>end of v${seen}</p>`);
  });
  const r = await fetch(`${url}/catalogue`);
  expect(r.headers.get('surrogate-control')).toBe('max-age=31536000');
  version = 2;
  await dumper.invalidate('/catalogue');
  await dumper.flushPurges(); // the purge and the race's second one
  expect(purges.filter((p) => p.tags.includes('/catalogue'))).toHaveLength(2);
  release();
  expect(await r.text()).toBe('<h1>Catalogue v1</h1><p>end of v1</p>');
  const ended = Date.now();
  for (let i = 0; i < 200 && !purges.some((p) => p.at >= ended && p.tags.includes('/catalogue')); i++) {
    await dumper.flushPurges();
    await new Promise((res) => setTimeout(res, 10));
  }
  expect(purges.some((p) => p.at >= ended && p.tags.includes('/catalogue'))).toBe(true);
});

test('a page whose body ends in time is not purged again', async () => {
  const purges: string[][] = [];
  const purger: Purger = {
    id: 'edge',
    tagHeader: { name: 'surrogate-key', separator: ' ', maxBytes: 16_384, maxTagBytes: 1024 },
    freshnessHeader: 'surrogate-control',
    maxBatch: 256,
    async purge(tags) {
      purges.push([...tags]);
    },
  };
  const dumper = createDumper({ logger: false, purgers: [purger], edge: { raceWindow: 60_000 } });
  const { url } = await site(dumper, (_req, res) => res.end('quick'));
  expect(await (await fetch(`${url}/quick`)).text()).toBe('quick');
  await dumper.flushPurges();
  expect(purges).toEqual([]);
});
