/**
 * The app's own edge headers stand: its Surrogate-Control is kept (`no-store` when it says
 * no-store or private), its tags are merged with the dumper's, once each, on a miss and on a hit.
 */
import http from 'node:http';
import { afterAll, expect, test } from 'vitest';
import { cloudflarePurger, varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { edgeBucket } from '../../src/core/purge.js';
import { createDumper, type Dumper } from '../../src/index.js';
import { listen } from '../support/listen.js';

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

async function site(headers: Record<string, string>, purgers = [varnishPurger({ url: 'http://127.0.0.1:9' })]) {
  const dumper: Dumper = createDumper({ logger: false, purgers });
  const mounted = await listen(
    withDumper(dumper, (_req: http.IncomingMessage, res: http.ServerResponse) => {
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      res.end('page');
    }),
  );
  closers.push(() => mounted.close(), () => dumper.close());
  return async (path: string) => {
    const r = await fetch(mounted.url + path);
    await r.text();
    await dumper.flushCompression();
    return r.headers;
  };
}

test.each([
  ['no-store', 'no-store'],
  ['private', 'no-store'],
  ['max-age=60', 'max-age=60'],
])('the app says Surrogate-Control: %s; the edge gets %s, once, on a miss and on a hit', async (theirs, expected) => {
  const get = await site({ 'surrogate-control': theirs });
  const miss = await get('/page');
  const hit = await get('/page');
  expect(miss.get('x-cache')).toBe('MISS');
  expect(hit.get('x-cache')).toBe('HIT');
  expect(miss.get('surrogate-control')).toBe(expected);
  expect(hit.get('surrogate-control')).toBe(expected);
});

test("the app's own tags are merged with the page's, in one header, on a miss and on a hit", async () => {
  const get = await site({ xkey: 'mine other' });
  const miss = await get('/page');
  const hit = await get('/page');
  expect(hit.get('x-cache')).toBe('HIT');
  for (const h of [miss, hit]) {
    const tags = h.get('xkey')!.split(' ');
    expect(tags).toEqual(expect.arrayContaining(['mine', 'other', 'pd.all', '/page']));
    expect(tags.filter((t) => t === 'mine')).toHaveLength(1);
    expect(h.get('surrogate-control')).toMatch(/^max-age=\d+$/);
  }
});

test("Cloudflare: the app's CDN-Cache-Control: no-store stays no-store", async () => {
  const get = await site({ 'cdn-cache-control': 'no-store' }, [cloudflarePurger({ zoneId: 'z', token: 't', endpoint: 'http://127.0.0.1:9' })]);
  await get('/page');
  const hit = await get('/page');
  expect(hit.get('x-cache')).toBe('HIT');
  expect(hit.get('cdn-cache-control')).toBe('no-store');
});

test("the app's own tags and the page's together stay within the edge's header limit, every tag still purged (its bucket)", async () => {
  // 900 tags of the app's own and 900 of the render: far more than Varnish's 6 KiB.
  const own = Array.from({ length: 900 }, (_, i) => `own-${i}`);
  const dumper: Dumper = createDumper({ logger: false, trackRenders: true, purgers: [varnishPurger({ url: 'http://127.0.0.1:9' })] });
  const mounted = await listen(
    withDumper(dumper, (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.setHeader('xkey', own.join(' '));
      for (let i = 0; i < 900; i++) dumper.tag(`product:${i}`);
      res.end('page');
    }),
  );
  closers.push(() => mounted.close(), () => dumper.close());
  const value = await new Promise<string>((resolve, reject) =>
    http.get(`${mounted.url}/many`, { maxHeaderSize: 1 << 20 }, (res) => {
      res.resume();
      resolve(String(res.headers.xkey ?? ''));
    }).on('error', reject),
  );
  expect(Buffer.byteLength(value)).toBeLessThanOrEqual(6 * 1024);
  const tags = value.split(' ');
  expect(tags.slice(0, 2)).toEqual(['pd.all', '/many']);
  // Each tag, the app's and the render's, is purged through a bucket the page carries.
  for (const t of [...own, 'product:1', 'product:899']) expect(tags).toContain(edgeBucket(t));
});
