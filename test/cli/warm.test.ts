/**
 * warm() and the sitemap reader, in process: counts and per-URL results from a real site,
 * bounded concurrency, abort, argument checks; sitemaps as the protocol writes them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { parseSitemap, warm } from '../../src/core/warm.js';
import { absolute, sitemapPages } from '../../src/cli/sitemap.js';
import { createDumper, MemoryStore } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { listen } from '../support/listen.js';
import { serveSite } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'page-dumper-warm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('warm()', () => {
  test('counts what the cache header said, per URL in the order given; failures are errors, never a rejection', async () => {
    const site = await serveSite(new MemoryStore());
    const u = (p: string) => `${site.mounted.url}${p}`;
    // A loopback port where nothing listens any more.
    const gone = await listen(() => undefined);
    await gone.close();
    const refused = `${gone.url}/refused`;
    try {
      const first = await warm([u('/page/1'), u('/page/2'), u('/nope'), refused], { concurrency: 2 });
      expect(first).toMatchObject({ total: 4, miss: 2, hit: 0, bypass: 0, other: 0, errors: 2 });
      expect(first.results.slice(0, 3)).toEqual([
        { url: u('/page/1'), status: 200, cache: 'MISS' },
        { url: u('/page/2'), status: 200, cache: 'MISS' },
        { url: u('/nope'), status: 404, cache: 'MISS', error: 'HTTP 404' },
      ]);
      expect(first.results[3]).toMatchObject({ url: refused, error: expect.stringMatching(/^fetch failed: .*ECONNREFUSED/) });
      await site.dumper.flushCompression();
      // Stored through the fill protocol: a hit now, and no second render.
      const again = await warm([u('/page/1'), new URL(u('/page/2'))]);
      expect(again).toMatchObject({ total: 2, hit: 2, miss: 0, errors: 0 });
      expect(site.site.count('/page/1')).toBe(1);
      // A request the dumper bypasses, and the headers sent with every request.
      const bypassed = await warm([u('/page/3')], { headers: { authorization: 'Bearer x' } });
      expect(bypassed).toMatchObject({ bypass: 1, miss: 0 });
      expect(bypassed.results[0]).toEqual({ url: u('/page/3'), status: 200, cache: 'BYPASS' });
      // Another header name; a server without it.
      expect(await warm([u('/page/1')], { cacheHeader: 'x-nothing' })).toMatchObject({ other: 1, hit: 0 });
      expect(await warm([])).toEqual({ total: 0, hit: 0, miss: 0, bypass: 0, other: 0, errors: 0, results: [] });
    } finally {
      await site.close();
    }
  });

  test('at most `concurrency` requests in flight, and that many at once', async () => {
    let inFlight = 0;
    let most = 0;
    const waiting: Array<() => void> = [];
    // Each request is answered once two are in flight: a serial warm() would never get an answer.
    const server = await listen((_req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      waiting.push(() => {
        inFlight--;
        res.writeHead(200, { 'x-cache': 'MISS' }).end('ok');
      });
      if (waiting.length >= 2) for (const answer of waiting.splice(0)) answer();
    });
    try {
      const report = await warm(Array.from({ length: 6 }, (_, i) => `${server.url}/p${i}`), { concurrency: 2, timeout: 10_000 });
      expect(report).toMatchObject({ total: 6, miss: 6, errors: 0 });
      expect(most).toBe(2);
    } finally {
      await server.close();
    }
  });

  test('a signal stops it: nothing is requested after it fired, and warm() rejects with its reason', async () => {
    const seen: string[] = [];
    const controller = new AbortController();
    const server = await listen((req, res) => {
      seen.push(req.url ?? '');
      if (req.url === '/p1') controller.abort(new Error('stop'));
      res.end('ok');
    });
    try {
      await expect(warm(Array.from({ length: 5 }, (_, i) => `${server.url}/p${i}`), { concurrency: 1, signal: controller.signal })).rejects.toThrow('stop');
      expect(seen).toEqual(['/p0', '/p1']);
      await expect(warm([`${server.url}/p9`], { signal: controller.signal })).rejects.toThrow('stop');
      expect(seen).toEqual(['/p0', '/p1']);
    } finally {
      await server.close();
    }
  });

  test('a page slower than `timeout` is an error', async () => {
    const server = await listen(() => undefined);
    try {
      const report = await warm([`${server.url}/slow`], { timeout: 50 });
      expect(report.results).toEqual([{ url: `${server.url}/slow`, error: 'no answer within 50 ms' }]);
      expect(report.errors).toBe(1);
    } finally {
      await server.close();
    }
  });

  test('checks its arguments', async () => {
    await expect(warm(['/relative'])).rejects.toThrow(new TypeError('page-dumper: warm() takes absolute http(s) URLs, got "/relative"'));
    await expect(warm(['ftp://x/y'])).rejects.toThrow(new TypeError('page-dumper: warm() takes absolute http(s) URLs, got "ftp://x/y"'));
    await expect(warm([], { concurrency: 0 })).rejects.toThrow(new TypeError('page-dumper: warm() option "concurrency" must be a positive integer, got 0'));
    await expect(warm([], { timeout: 1.5 })).rejects.toThrow(new TypeError('page-dumper: warm() option "timeout" must be a positive integer, got 1.5'));
  });

  test('uses the fetch it is given', async () => {
    const asked: string[] = [];
    const report = await warm(['http://app.invalid/a'], {
      fetch: async (url) => {
        asked.push(url);
        return new Response('x', { headers: { 'x-cache': 'HIT' } });
      },
    });
    expect(asked).toEqual(['http://app.invalid/a']);
    expect(report.hit).toBe(1);
  });
});

describe('warm() and Cache-Status', () => {
  test('dumper.warm() on a dumper that sends only the standard Cache-Status (cacheStatusHeader: false, cacheStatus: true) counts misses and hits', async () => {
    const dumper = createDumper({ logger: false, cacheStatusHeader: false, cacheStatus: true });
    const m = await listen(
      withDumper(dumper, (_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.setHeader('content-type', 'text/html');
        res.end('<p>page</p>');
      }),
    );
    try {
      const first = await dumper.warm([`${m.url}/a`]);
      await dumper.flushCompression();
      const second = await dumper.warm([`${m.url}/a`]);
      expect({ first: [first.miss, first.other], second: [second.hit, second.other] }).toEqual({ first: [1, 0], second: [1, 0] });
      expect(second.results).toEqual([{ url: `${m.url}/a`, status: 200, cache: 'HIT' }]);
    } finally {
      await m.close();
      await dumper.close();
    }
  });

  test('without the cache header: the Cache-Status member named by `cacheStatus`, or the last one', async () => {
    const answer = (field: string) => async () => new Response('x', { headers: { 'cache-status': field } });
    const one = async (field: string, cacheStatus?: string) =>
      (await warm(['http://app.invalid/a'], { fetch: answer(field), ...(cacheStatus !== undefined && { cacheStatus }) })).results[0]!.cache;
    expect(await one('page-dumper; hit')).toBe('HIT');
    expect(await one('page-dumper; fwd=uri-miss; stored')).toBe('MISS');
    expect(await one('page-dumper; fwd=uri-miss')).toBe('MISS');
    expect(await one('page-dumper; fwd=uri-miss; collapsed')).toBe('HIT');
    expect(await one('page-dumper; fwd=bypass; detail=ignored-path')).toBe('BYPASS');
    expect(await one('page-dumper; fwd=method')).toBe('BYPASS');
    // A cache behind the app, then the site's dumper; a CDN in front of both, named or not.
    expect(await one('upstream; hit, shop; fwd=uri-miss; stored')).toBe('MISS');
    expect(await one('upstream; hit, shop; fwd=uri-miss, "CDN, edge"; detail="a, b"; hit', 'shop')).toBe('MISS');
    expect(await one('upstream; hit, shop; fwd=uri-miss, "CDN, edge"; detail="a, b"; hit')).toBe('HIT');
    expect(await one('upstream; hit', 'shop')).toBeUndefined();
    await expect(warm([], { cacheStatus: '' })).rejects.toThrow(new TypeError('page-dumper: warm() option "cacheStatus" must be a Cache-Status member name'));
  });
});

describe('sitemaps', () => {
  test('parseSitemap: a urlset, an index, entities and CDATA, comments and extension <image:loc> left out', () => {
    expect(
      parseSitemap(`<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">
  <url><loc> https://example.com/a?x=1&amp;y=&#50; </loc><lastmod>2025-01-01</lastmod>
    <image:image><image:loc>https://example.com/a.png</image:loc></image:image></url>
  <!-- <url><loc>https://example.com/hidden</loc></url> -->
  <url><loc><![CDATA[https://example.com/b?q=a&b]]></loc></url>
</urlset>`),
    ).toEqual({ kind: 'urlset', locs: ['https://example.com/a?x=1&y=2', 'https://example.com/b?q=a&b'] });
    expect(parseSitemap('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://example.com/s1.xml</loc></sitemap></sitemapindex>')).toEqual({
      kind: 'sitemapindex',
      locs: ['https://example.com/s1.xml'],
    });
    expect(() => parseSitemap('<html><body>no</body></html>')).toThrow(new TypeError('page-dumper: not a sitemap: no <urlset> or <sitemapindex> element'));
  });

  test('sitemap: a hostile 5 MB sitemap (unclosed <loc> elements, unclosed comments) is read in one pass, not rescanned per element', () => {
    // Read again from each unclosed element to the end, each of these is 10^12 character
    // comparisons or more (minutes); read once, milliseconds.
    const unclosed = `<urlset>${'<loc>'.repeat(1_000_000)}`;
    expect(parseSitemap(unclosed)).toEqual({ kind: 'urlset', locs: [] });
    const badClose = `<urlset><url><loc>https://x/a</loc></url>${'<loc>x</loc '.repeat(420_000)}`;
    expect(parseSitemap(badClose)).toEqual({ kind: 'urlset', locs: ['https://x/a'] });
    const comments = `<urlset><url><loc>https://x/b</loc></url>${'<!-- <loc>https://x/c</loc> -- >'.repeat(160_000)}`;
    expect(parseSitemap(comments)).toEqual({ kind: 'urlset', locs: ['https://x/b'] });
    // What the one pass must still read as before: attributes, spaces before ">", <locale>.
    expect(parseSitemap('<urlset><loc a="1">https://x/d</loc ><locale>en</locale><loc>https://x/e</loc\n></urlset>')).toEqual({
      kind: 'urlset',
      locs: ['https://x/d', 'https://x/e'],
    });
  });

  test('absolute: a loc as an absolute URL, relative ones on the base, without the fragment', () => {
    const base = new URL('http://127.0.0.1:3000/ignored');
    expect(absolute('https://www.example.com/a/b?x=1#frag', base)).toBe('https://www.example.com/a/b?x=1');
    expect(absolute('/relative', base)).toBe('http://127.0.0.1:3000/relative');
  });

  test('sitemapPages: a gzip\'d file; duplicates once; an index listing an index is refused', async () => {
    const server = await listen((req, res) => {
      if (req.url === '/inner.xml') res.end('<sitemapindex><sitemap><loc>https://x/deeper.xml</loc></sitemap></sitemapindex>');
      else res.writeHead(404).end();
    });
    try {
      const file = join(dir, 'sitemap.xml.gz');
      writeFileSync(file, gzipSync('<urlset><url><loc>https://x/a</loc></url><url><loc>https://x/a</loc></url><url><loc>https://x/b</loc></url></urlset>'));
      const source = { base: new URL(server.url), headers: {}, timeout: 5000 };
      expect(await sitemapPages(file, source)).toEqual({ pages: ['https://x/a', 'https://x/b'], sitemaps: [file] });
      const index = join(dir, 'index.xml');
      writeFileSync(index, '<sitemapindex><sitemap><loc>https://x/inner.xml</loc></sitemap></sitemapindex>');
      await expect(sitemapPages(index, source)).rejects.toThrow('https://x/inner.xml: a sitemap index lists another index; only urlsets may be listed');
      const broken = join(dir, 'broken.xml.gz');
      writeFileSync(broken, Buffer.from([0x1f, 0x8b, 1, 2, 3]));
      await expect(sitemapPages(broken, source)).rejects.toThrow(/^could not gunzip the sitemap .*broken\.xml\.gz: /);
    } finally {
      await server.close();
    }
  });

  test('sitemap: a sitemap fetched over HTTP stops being read past the 50 MiB limit (it is not downloaded whole first), and a gzip bomb stops being decoded there', async () => {
    let sent = 0;
    const chunk = Buffer.alloc(1 << 20, 0x20);
    // 60 MiB of spaces, gzip'd to about 60 KiB: sent as a Content-Encoding and as a .xml.gz.
    const bomb = gzipSync(Buffer.alloc(60 * 2 ** 20, 0x20));
    const server = await listen((req, res) => {
      if (req.url === '/bomb.xml') {
        res.writeHead(200, { 'content-type': 'application/xml', 'content-encoding': 'gzip' }).end(bomb);
        return;
      }
      if (req.url === '/bomb.xml.gz') {
        res.writeHead(200, { 'content-type': 'application/gzip' }).end(bomb);
        return;
      }
      res.setHeader('content-type', 'application/xml');
      // An endless sitemap: the server writes as long as the client reads, up to 400 MiB.
      const pump = () => {
        while (sent < 400 * 2 ** 20) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
    try {
      const source = { base: new URL(server.url), headers: {}, timeout: 60_000 };
      await expect(sitemapPages(`${server.url}/sitemap.xml`, source)).rejects.toThrow(`the sitemap ${server.url}/sitemap.xml is larger than 50 MiB`);
      // Read up to the limit (and what was in flight), not the whole 400 MiB.
      expect(sent).toBeLessThan(120 * 2 ** 20);
      await expect(sitemapPages(`${server.url}/bomb.xml`, source)).rejects.toThrow(`the sitemap ${server.url}/bomb.xml is larger than 50 MiB`);
      await expect(sitemapPages(`${server.url}/bomb.xml.gz`, source)).rejects.toThrow(`the sitemap ${server.url}/bomb.xml.gz is larger than 50 MiB`);
    } finally {
      await server.close();
    }
  }, 60_000);
});

describe('warm() with a base', () => {
  test('each public URL is requested on the base with its Host and the forwarded headers the proxy adds; a host header given replaces the public one', async () => {
    const seen: Array<{ url: string | undefined; host: string | undefined; proto: string | undefined; fwdHost: string | undefined }> = [];
    const server = await listen((req, res) => {
      seen.push({ url: req.url, host: req.headers.host, proto: req.headers['x-forwarded-proto'] as string | undefined, fwdHost: req.headers['x-forwarded-host'] as string | undefined });
      res.writeHead(200, { 'x-cache': 'MISS' }).end('ok');
    });
    try {
      const urls = ['https://shop.example/a?x=1', 'http://shop.example:8080/b'];
      const report = await warm(urls, { base: server.url, concurrency: 1 });
      expect(report).toMatchObject({ total: 2, miss: 2, errors: 0 });
      expect(report.results.map((r) => r.url)).toEqual(urls);
      // An https page on an http base: a proxy terminated TLS and says so.
      expect(seen.splice(0)).toEqual([
        { url: '/a?x=1', host: 'shop.example', proto: 'https', fwdHost: undefined },
        { url: '/b', host: 'shop.example:8080', proto: undefined, fwdHost: undefined },
      ]);
      await warm(urls.slice(0, 1), { base: server.url, forwarded: 'none' });
      await warm(urls.slice(0, 1), { base: server.url, forwarded: 'all', headers: { Host: '127.0.0.1:3000' } });
      expect(seen.splice(0)).toEqual([
        { url: '/a?x=1', host: 'shop.example', proto: undefined, fwdHost: undefined },
        { url: '/a?x=1', host: '127.0.0.1:3000', proto: 'https', fwdHost: 'shop.example' },
      ]);
      await expect(warm([], { base: server.url, fetch: globalThis.fetch })).rejects.toThrow(
        new TypeError('page-dumper: warm() options "base" and "fetch" do not go together: with a base, requests go through node:http'),
      );
      await expect(warm([], { base: 'nope' })).rejects.toThrow(new TypeError('page-dumper: warm() option "base" must be an http(s) URL, got "nope"'));
      await expect(warm([], { base: server.url, forwarded: 'yes' as never })).rejects.toThrow(
        new TypeError('page-dumper: warm() option "forwarded" must be \'none\', \'proto\' or \'all\', got "yes"'),
      );
    } finally {
      await server.close();
    }
  });

  test('on a base: a page slower than `timeout` is an error; a refused connection is one', async () => {
    const slow = await listen(() => undefined);
    const gone = await listen(() => undefined);
    await gone.close();
    try {
      const report = await warm(['https://shop.example/slow'], { base: slow.url, timeout: 50 });
      expect(report.results).toEqual([{ url: 'https://shop.example/slow', error: 'no answer within 50 ms' }]);
      const refused = await warm(['https://shop.example/x'], { base: gone.url });
      expect(refused.results[0]).toMatchObject({ url: 'https://shop.example/x', error: expect.stringMatching(/ECONNREFUSED/) });
    } finally {
      await slow.close();
    }
  });
});
