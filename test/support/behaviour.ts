/**
 * The HTTP behaviour suite: one set of cases that every adapter (node front door, Express and
 * Connect middleware, and the framework adapters) must pass unchanged. An adapter test supplies
 * `mount(dumper, site)`, which serves the test site through that adapter on a loopback port.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type Dumper, type DumperOptions, type Store } from '../../src/index.js';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import zlib from 'node:zlib';
import { ZSTD_AVAILABLE } from '../../src/core/encoding.js';
import { rawGet, rawRequest, type RawBytes } from './http.js';
import { article, Site } from './site.js';

/** The body of a raw response in identity coding, decoded as its Content-Encoding says. */
function decoded(r: RawBytes): string {
  const coding = r.headers['content-encoding'];
  const body =
    coding === undefined
      ? r.body
      : coding === 'br'
        ? brotliDecompressSync(r.body)
        : coding === 'gzip'
          ? gunzipSync(r.body)
          : (zlib as unknown as { zstdDecompressSync(b: Buffer): Buffer }).zstdDecompressSync(r.body);
  return body.toString();
}

export interface Mounted {
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export type Mount = (dumper: Dumper, site: Site) => Promise<Mounted>;

export interface SuiteOptions {
  /** Makes the store for each test; a fresh MemoryStore by default. */
  store?: () => Store | Promise<Store>;
}

const X = 'x-cache';

export function httpBehaviourSuite(name: string, mount: Mount, suite: SuiteOptions = {}): void {
  describe(`HTTP behaviour: ${name}`, () => {
    const open: Array<{ m: Mounted; d: Dumper }> = [];
    afterEach(async () => {
      for (const { m, d } of open.splice(0)) {
        await m.close();
        await d.close();
      }
    });

    async function setup(options: DumperOptions = {}) {
      const store = options.store ?? (suite.store ? await suite.store() : new MemoryStore());
      // The site tags pages; track render contexts from the first request (see trackRenders).
      const dumper = createDumper({ logger: false, trackRenders: true, ...options, store });
      const site = new Site(dumper);
      const m = await mount(dumper, site);
      open.push({ m, d: dumper });
      const get = (path: string, init: RequestInit = {}) => fetch(m.url + path, { redirect: 'manual', ...init });
      const text = async (path: string, init: RequestInit = {}) => {
        const r = await get(path, init);
        return { status: r.status, cache: r.headers.get(X), body: await r.text(), headers: r.headers };
      };
      return { dumper, site, m, get, text };
    }

    test('a page is rendered once: MISS, then HIT with the same body and headers', async () => {
      const { site, text } = await setup();
      const a = await text('/page/a');
      const b = await text('/page/a');
      expect(a.status).toBe(200);
      expect(a.cache).toBe('MISS');
      expect(b.cache).toBe('HIT');
      expect(b.body).toBe(a.body);
      expect(b.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(b.headers.get('x-app')).toBe('yes');
      expect(b.headers.get('link')).toContain('</b.js>');
      expect(b.headers.get('content-length')).toBe(String(Buffer.byteLength(a.body)));
      expect(b.headers.get('age')).toMatch(/^\d+$/);
      expect(b.headers.get('date')).toBeTruthy();
      expect(site.count('/page/a')).toBe(1);
    });

    test('HEAD is answered from the GET entry, without a body; a HEAD miss fills the GET entry', async () => {
      const { site, get } = await setup();
      const h1 = await get('/page/h', { method: 'HEAD' });
      expect(h1.headers.get(X)).toBe('MISS');
      expect(await h1.text()).toBe('');
      const g = await get('/page/h');
      expect(g.headers.get(X)).toBe('HIT');
      const body = await g.text();
      expect(body).toContain('/page/h');
      // A HEAD response may carry Content-Length only if it is the GET body's (RFC 9110 §8.6).
      const declared = h1.headers.get('content-length');
      if (declared !== null) expect(declared).toBe(String(Buffer.byteLength(body)));
      const h2 = await get('/page/h', { method: 'HEAD' });
      expect(h2.status).toBe(200);
      expect(h2.headers.get(X)).toBe('HIT');
      expect(h2.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
      expect(await h2.text()).toBe('');
      expect(site.count('/page/h')).toBe(1);
      // The app rendered the page in full: as a GET (node, Koa), or as Fastify's HEAD route does.
      expect(['GET', 'HEAD']).toContain(site.seen[0]!.method);
    });

    test('hits carry a strong ETag and answer If-None-Match with 304', async () => {
      const { get } = await setup();
      await (await get('/page/e')).text();
      const hit = await get('/page/e');
      await hit.text();
      const etag = hit.headers.get('etag')!;
      expect(etag).toMatch(/^"[\w-]+"$/);
      const nm = await get('/page/e', { headers: { 'if-none-match': etag } });
      expect(nm.status).toBe(304);
      expect(nm.headers.get('etag')).toBe(etag);
      expect(nm.headers.get(X)).toBe('HIT');
      expect(await nm.text()).toBe('');
      const weak = await get('/page/e', { headers: { 'if-none-match': `"other", W/${etag}` } });
      expect(weak.status).toBe(304);
      const star = await get('/page/e', { headers: { 'if-none-match': '*' } });
      expect(star.status).toBe(304);
      const other = await get('/page/e', { headers: { 'if-none-match': '"nope"' } });
      expect(other.status).toBe(200);
      expect(await other.text()).toContain('/page/e');
    });

    test("the app's own ETag is kept, and If-Modified-Since uses Last-Modified", async () => {
      const { get } = await setup();
      await (await get('/etag')).text();
      const nm = await get('/etag', { headers: { 'if-none-match': '"app-etag"' } });
      expect(nm.status).toBe(304);
      expect(nm.headers.get('etag')).toBe('W/"app-etag"');
      await (await get('/modified')).text();
      const ims = await get('/modified', { headers: { 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' } });
      expect(ims.status).toBe(304);
      const older = await get('/modified', { headers: { 'if-modified-since': 'Tue, 31 Dec 2024 00:00:00 GMT' } });
      expect(older.status).toBe(200);
      await older.text();
    });

    test('a conditional request on a miss still stores the full page', async () => {
      const { site, text } = await setup();
      const first = await text('/headers', { headers: { 'if-none-match': '"whatever"' } });
      expect(first.status).toBe(200);
      expect(first.body).toContain('inm= ');
      expect((await text('/headers')).cache).toBe('HIT');
      expect(site.count('/headers')).toBe(1);
    });

    test('invalidating a path reaches every spelling that routes to it, every variant, GET and HEAD', async () => {
      const { dumper, site, text, get } = await setup();
      const spellings = ['/page/ice-cream/', '/page/ice-cream', '/PAGE/ICE-CREAM/', '/page//ice-cream', '/page/ice-cream?size=2'];
      for (const s of spellings) expect((await text(s)).cache, s).toBe('MISS');
      for (const s of spellings) expect((await text(s)).cache, s).toBe('HIT');
      // Percent-encoded unreserved characters are the same URL (RFC 3986 §6.2.2.2): same key.
      expect((await text('/page/ice%2Dcream')).cache).toBe('HIT');
      expect((await get('/page/ice-cream', { method: 'HEAD' })).headers.get(X)).toBe('HIT');
      await dumper.invalidate(['/page/ice-cream/']);
      for (const s of spellings) expect((await text(s)).cache, s).toBe('MISS');
      await dumper.invalidate(['/page/ice-cream/']);
      expect((await get('/page/ice-cream', { method: 'HEAD' })).headers.get(X)).toBe('MISS');
      expect(site.count('/page/ice-cream')).toBeGreaterThan(2);
    });

    test('other pages survive an invalidation', async () => {
      const { dumper, text } = await setup();
      await text('/page/a');
      await text('/page/b');
      await dumper.invalidate('/page/a');
      expect((await text('/page/a')).cache).toBe('MISS');
      expect((await text('/page/b')).cache).toBe('HIT');
    });

    test('query strings are part of the key, normalized; tracking parameters are dropped before the app', async () => {
      const { site, text } = await setup();
      const a = await text('/echo?q=a');
      const b = await text('/echo?q=b');
      expect(a.body).toContain('echo q=a');
      expect(b.body).toContain('echo q=b');
      expect(b.cache).toBe('MISS');
      expect((await text('/echo?q=a')).body).toBe(a.body);
      const ab = await text('/echo?a=1&b=2');
      const ba = await text('/echo?b=2&a=1');
      expect(ba.cache).toBe('HIT');
      expect(ba.body).toBe(ab.body);
      const u = await text('/echo?q=a&utm_source=news&fbclid=xyz');
      expect(u.cache).toBe('HIT');
      expect(u.body).toBe(a.body);
      const fresh = await text('/echo?z=1&utm_medium=mail');
      expect(fresh.cache).toBe('MISS');
      expect(fresh.body).toContain('echo z=1 render');
      expect(site.seen.some((r) => r.query.has('utm_medium'))).toBe(false);
      expect((await text('/echo?q=%7e')).body).toBe((await text('/echo?q=~')).body);
      expect((await text('/echo?q=a+b')).body).not.toBe((await text('/echo?q=a%2Bb')).body);
    });

    test('a fragment never reaches the key', async () => {
      const { m, text } = await setup();
      await text('/page/frag');
      const r = await rawRequest(m.port, `GET /page/frag#section HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\n\r\n`);
      expect(r.status).toBe(200);
      expect(r.headers[X]).toBe('HIT');
    });

    test('tags added during the render invalidate the page', async () => {
      const { dumper, site, text } = await setup();
      expect((await text('/data/1')).body).toContain('vanilla');
      site.db.set('1', 'strawberry');
      expect((await text('/data/1')).body).toContain('vanilla');
      await dumper.invalidateTags(['item:1']);
      const after = await text('/data/1');
      expect(after.cache).toBe('MISS');
      expect(after.body).toContain('strawberry');
    });

    test('registered models invalidate their dependent paths on changed()', async () => {
      const { dumper, site, text } = await setup();
      class Flavour {
        constructor(readonly id: string) {}
        dependentPaths() {
          return [`/data/${this.id}`, '/page/list/'];
        }
      }
      dumper.register(Flavour);
      await text('/data/2');
      await text('/page/list');
      site.db.set('2', 'mint');
      await dumper.changed(new Flavour('2'));
      expect((await text('/data/2')).body).toContain('mint');
      expect((await text('/page/list')).cache).toBe('MISS');
    });

    test('a render that read data before an invalidation is never stored (the race)', async () => {
      const { dumper, site, text } = await setup();
      const gate = site.gate('race');
      const slow = text('/slow/1?gate=race');
      await gate.reached; // the render has read "vanilla"
      site.db.set('1', 'pistachio');
      await dumper.invalidate('/slow/1');
      gate.release();
      const first = await slow;
      expect(first.body).toContain('vanilla');
      const next = await text('/slow/1?gate=race');
      expect(next.cache).toBe('MISS');
      expect(next.body).toContain('pistachio');
      expect((await text('/slow/1?gate=race')).body).toContain('pistachio');
    });

    test('the race is closed for tags as well as paths', async () => {
      const { dumper, site, text } = await setup();
      const gate = site.gate('race2');
      const slow = text('/slow/2?gate=race2');
      await gate.reached;
      site.db.set('2', 'caramel');
      await dumper.invalidateTags('item:2');
      gate.release();
      expect((await slow).body).toContain('chocolate');
      expect((await text('/slow/2?gate=race2')).body).toContain('caramel');
    });

    test('concurrent misses for one page render once', async () => {
      const { site, text } = await setup();
      const all = await Promise.all(Array.from({ length: 8 }, () => text('/slow/1?ms=80')));
      expect(site.count('/slow/1')).toBe(1);
      expect(new Set(all.map((r) => r.body)).size).toBe(1);
      expect(all.filter((r) => r.cache === 'MISS')).toHaveLength(1);
    });

    test("a waiter never receives another visitor's uncacheable response", async () => {
      const { site, text } = await setup();
      const all = await Promise.all(Array.from({ length: 5 }, () => text('/slow/1?ms=80&cookie=v')));
      const cookies = all.map((r) => r.headers.get('set-cookie'));
      expect(new Set(cookies).size).toBe(5);
      expect(site.count('/slow/1')).toBe(5);
      expect(all.every((r) => r.cache === 'MISS')).toBe(true);
    });

    test.each([
      ['/cookie', 'sets a cookie'],
      ['/private', 'Cache-Control: private'],
      ['/nostore', 'Cache-Control: no-store'],
      ['/nocache', 'Cache-Control: no-cache'],
      ['/events', 'an event stream'],
      ['/vary-cookie', 'Vary: Cookie'],
      ['/vary-star', 'Vary: *'],
      ['/app-compress', 'a Content-Encoding that cannot be decoded'],
      ['/nothing-here', '404'],
      ['/error', '500'],
      ['/redirect', '301'],
      ['/created', '201'],
    ])('%s is never stored (%s)', async (path) => {
      const { site, get } = await setup();
      const a = await get(path);
      await a.arrayBuffer();
      const b = await get(path);
      await b.arrayBuffer();
      expect(b.headers.get(X)).toBe('MISS');
      expect(site.count(path)).toBe(2);
    });

    test('Vary: Accept-Encoding and public Cache-Control are stored', async () => {
      const { text } = await setup();
      await text('/vary-ae');
      await text('/public');
      expect((await text('/vary-ae')).cache).toBe('HIT');
      const hit = await text('/public');
      expect(hit.cache).toBe('HIT');
      expect(hit.headers.get('cache-control')).toBe('public, max-age=60');
    });

    test('a request with Authorization neither reads nor fills the cache', async () => {
      const { site, text } = await setup();
      await text('/page/auth');
      const r = await text('/page/auth', { headers: { authorization: 'Bearer x' } });
      expect(r.cache).toBe('BYPASS');
      expect(r.body).toContain('render 2');
      await text('/page/auth2', { headers: { authorization: 'Basic eDp5' } });
      expect((await text('/page/auth2')).cache).toBe('MISS');
      expect(site.count('/page/auth2')).toBe(2);
    });

    test('bypass cookies keep personal requests away from the cache', async () => {
      const { text } = await setup({ bypassCookies: ['session'] });
      await text('/page/c');
      expect((await text('/page/c', { headers: { cookie: 'theme=dark' } })).cache).toBe('HIT');
      expect((await text('/page/c', { headers: { cookie: 'theme=dark; session=abc' } })).cache).toBe('BYPASS');
    });

    test('ignored paths are neither stored nor served, in any spelling', async () => {
      const { site, text } = await setup();
      for (const p of ['/admin/x', '/ADMIN/x', '/%61dmin/x', '//admin/x', '/./admin/x', '/admin', '/Admin?x=1']) {
        expect((await text(p)).cache, p).toBe('BYPASS');
      }
      await text('/admin/x');
      expect(site.seen).toHaveLength(8);
    });

    test('an entry stored before a path became ignored is not served', async () => {
      const store = new MemoryStore();
      const before = await setup({ store, ignore: null });
      await before.text('/admin/old');
      expect((await before.text('/admin/old')).cache).toBe('HIT');
      const after = await setup({ store });
      const r = await after.text('/admin/old');
      expect(r.cache).toBe('BYPASS');
      expect(r.body).toContain('render 1');
      expect(after.site.count('/admin/old')).toBe(1);
    });

    test('streamed bodies are stored whole; bodies past maxEntryBytes stream but are not stored', async () => {
      const { site, get } = await setup({ maxEntryBytes: 1024 * 1024 });
      const a = await (await get('/stream')).text();
      const hit = await get('/stream');
      expect(hit.headers.get(X)).toBe('HIT');
      expect(await hit.text()).toBe(a);
      expect(a).toBe('one,two,three,render 1');
      const big = await get('/big');
      expect((await big.arrayBuffer()).byteLength).toBe(40 * 64 * 1024);
      const big2 = await get('/big');
      expect(big2.headers.get(X)).toBe('MISS');
      await big2.arrayBuffer();
      expect(site.count('/big')).toBe(2);
      const bin = await (await get('/binary')).arrayBuffer();
      const bin2 = await get('/binary');
      expect(bin2.headers.get(X)).toBe('HIT');
      expect(Buffer.from(await bin2.arrayBuffer()).equals(Buffer.from(bin))).toBe(true);
    });

    test('a successful POST invalidates its target and the Location it redirects to', async () => {
      const { text } = await setup();
      await text('/page/p');
      await text('/page/moved');
      expect((await text('/page/p', { method: 'POST', body: 'x' })).cache).toBe('BYPASS');
      // The invalidation runs once the POST's response has gone out: the client may ask again
      // before it has landed (with a local tier, before the pub/sub message has), so the page is
      // asked for until it is a MISS, for at most a few seconds (a hang is a failure).
      const missSoon = async (path: string) => {
        for (let i = 0; i < 100; i++) {
          if ((await text(path)).cache === 'MISS') return 'MISS';
          await new Promise((r) => setTimeout(r, 20));
        }
        return 'still a HIT';
      };
      expect(await missSoon('/page/p')).toBe('MISS');
      await text('/move', { method: 'POST' });
      expect(await missSoon('/page/moved')).toBe('MISS');
    });

    test('the host is part of the key, and so are forwarded host and scheme', async () => {
      const { m, text } = await setup();
      const a = await text('/headers');
      const other = await rawRequest(m.port, `GET /headers HTTP/1.1\r\nHost: other.example\r\n\r\n`);
      expect(other.headers[X]).toBe('MISS');
      expect(other.body).toContain('host=other.example');
      const forged = await text('/headers', { headers: { 'x-forwarded-host': 'evil.example' } });
      expect(forged.cache).toBe('MISS');
      const again = await text('/headers');
      expect(again.body).toBe(a.body);
      expect(again.body).not.toContain('evil');
    });

    test('a host allowlist bypasses unknown hosts and caches the listed ones', async () => {
      const { m } = await setup({ hosts: ['site.example'] });
      const r = await rawRequest(m.port, `GET /page/a HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n`);
      expect(r.status).toBe(200);
      expect(r.headers[X]).toBe('BYPASS');
      const listed = () => rawRequest(m.port, `GET /page/a HTTP/1.1\r\nHost: Site.example\r\n\r\n`);
      expect((await listed()).headers[X]).toBe('MISS');
      expect((await listed()).headers[X]).toBe('HIT');
    });

    test("a client's Cache-Control: no-cache does not force a re-render", async () => {
      const { site, text } = await setup();
      await text('/page/reload');
      const r = await text('/page/reload', { headers: { 'cache-control': 'no-cache', pragma: 'no-cache' } });
      expect(r.cache).toBe('HIT');
      expect(site.count('/page/reload')).toBe(1);
    });

    test('junk query strings cannot lock a page out: past maxVariantsPerPath, variants evict one another, never the plain page', async () => {
      const { text } = await setup({ maxVariantsPerPath: 2 });
      await text('/echo');
      for (let i = 0; i < 20; i++) await text(`/echo?junk=${i}`);
      expect((await text('/echo')).cache).toBe('HIT');
      // A real variant after the flood is stored, not refused.
      expect((await text('/echo?q=real')).cache).toBe('MISS');
      expect((await text('/echo?q=real')).cache).toBe('HIT');
      expect((await text('/echo?junk=0')).cache).toBe('MISS');
    });

    test('junk Host and X-Forwarded-Host values cannot lock a page out either', async () => {
      const { m, text } = await setup({ maxVariantsPerPath: 2 });
      await text('/echo');
      for (let i = 0; i < 10; i++) {
        await rawRequest(m.port, `GET /echo HTTP/1.1\r\nHost: junk${i}.example\r\n\r\n`);
        await rawRequest(m.port, `GET /echo?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\nX-Forwarded-Host: junk${i}.example\r\n\r\n`);
      }
      expect((await text('/echo')).cache).toBe('HIT');
      expect((await text('/echo?q=2')).cache).toBe('MISS');
      expect((await text('/echo?q=2')).cache).toBe('HIT');
    });

    test('sortQuery: false keeps parameter order in the key', async () => {
      const { text } = await setup({ sortQuery: false });
      await text('/echo?a=1&b=2');
      expect((await text('/echo?b=2&a=1')).cache).toBe('MISS');
      expect((await text('/echo?a=1&b=2')).cache).toBe('HIT');
    });

    test('invalidateOnUnsafe: false leaves pages alone after a POST', async () => {
      const { text } = await setup({ invalidateOnUnsafe: false });
      await text('/page/keep');
      await text('/page/keep', { method: 'POST', body: 'x' });
      expect((await text('/page/keep')).cache).toBe('HIT');
    });

    test('coalesceTimeout: 0 renders concurrent misses separately; a short timeout stops waiting', async () => {
      const off = await setup({ coalesceTimeout: 0 });
      await Promise.all(Array.from({ length: 3 }, () => off.text('/slow/1?ms=60')));
      expect(off.site.count('/slow/1')).toBe(3);
      const short = await setup({ coalesceTimeout: 10 });
      const all = await Promise.all(Array.from({ length: 3 }, () => short.text('/slow/2?ms=80')));
      expect(short.site.count('/slow/2')).toBe(3);
      expect(all.every((r) => r.body.includes('chocolate'))).toBe(true);
    });

    test('bad input gets a normal answer and poisons nothing', async () => {
      const { m, site, text } = await setup();
      const bad = await rawRequest(m.port, `GET /page/%zz HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect(bad.status).toBeLessThan(500);
      if (bad.status === 200) expect(bad.headers[X]).toBe('BYPASS');
      const badQuery = await rawRequest(m.port, `GET /echo?q=%E0%A4%A HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect(badQuery.status).toBeLessThan(500);
      expect(badQuery.headers[X]).toBe('BYPASS');
      const long = await text('/page/' + 'x'.repeat(5000));
      expect(long.status).toBe(200);
      expect(long.cache).toBe('BYPASS');
      const odd = await rawRequest(m.port, `PURGE /page/a HTTP/1.1\r\nHost: a\r\n\r\n`);
      expect(odd.status).toBeLessThan(500);
      const http10 = await rawRequest(m.port, `GET /page/nohost HTTP/1.0\r\n\r\n`);
      // Without a Host there is no key: the app answers uncached, or the server refuses (400).
      if (http10.status !== 400) {
        expect(http10.status).toBe(200);
        expect(http10.headers[X]).toBe('BYPASS');
      }
      const absolute = await rawRequest(m.port, `GET http://abs.example/page/abs HTTP/1.1\r\nHost: abs.example\r\n\r\n`);
      expect(absolute.status).toBe(200);
      const absolute2 = await rawRequest(m.port, `GET http://abs.example/page/abs HTTP/1.1\r\nHost: abs.example\r\n\r\n`);
      expect(absolute2.headers[X]).toBe('HIT');
      expect((await text('/page/ok')).status).toBe(200);
      expect(site.count('/page/ok')).toBe(1);
    });

    test('the cache-status header can be renamed or turned off', async () => {
      const named = await setup({ cacheStatusHeader: 'X-Page-Cache' });
      await named.text('/page/n');
      const hit = await named.get('/page/n');
      expect(hit.headers.get('x-page-cache')).toBe('HIT');
      expect(hit.headers.get(X)).toBeNull();
      const none = await setup({ cacheStatusHeader: false });
      await none.text('/page/n');
      expect((await none.get('/page/n')).headers.get(X)).toBeNull();
    });

    // ------------------------------------------------------------ Cache-Status (RFC 9211) and counters

    test('Cache-Status (RFC 9211): a stored miss, a hit, a 304, a HEAD, a query-string variant, a miss not stored, bypasses with their reason', async () => {
      const { get, text } = await setup({ cacheStatus: true });
      const CS = 'cache-status';
      const miss = await text('/page/cs');
      expect(miss.cache).toBe('MISS');
      expect(miss.headers.get(CS)).toBe('page-dumper; fwd=uri-miss; stored');
      const hit = await text('/page/cs');
      expect(hit.cache).toBe('HIT');
      expect(hit.headers.get(CS)).toBe('page-dumper; hit');
      const nm = await get('/page/cs', { headers: { 'if-none-match': hit.headers.get('etag')! } });
      expect(nm.status).toBe(304);
      expect(nm.headers.get(CS)).toBe('page-dumper; hit');
      await nm.text();
      const head = await get('/page/cs', { method: 'HEAD' });
      expect(head.headers.get(CS)).toBe('page-dumper; hit');
      await head.text();
      expect((await text('/echo?q=cs')).headers.get(CS)).toBe('page-dumper; fwd=uri-miss; stored');
      expect((await text('/echo?q=cs')).headers.get(CS)).toBe('page-dumper; hit');
      for (const path of ['/private', '/nothing-here', '/cookie']) {
        expect((await text(path)).headers.get(CS), path).toBe('page-dumper; fwd=uri-miss');
        expect((await text(path)).headers.get(CS), path).toBe('page-dumper; fwd=uri-miss');
      }
      expect((await text('/page/cs', { headers: { authorization: 'Bearer x' } })).headers.get(CS)).toBe('page-dumper; fwd=bypass; detail=authorization');
      expect((await text('/admin/x')).headers.get(CS)).toBe('page-dumper; fwd=bypass; detail=ignored-path');
      expect((await text('/page/cs', { headers: { range: 'bytes=0-1' } })).headers.get(CS)).toBe('page-dumper; fwd=bypass; detail=conditional-request');
      expect((await text('/page/cs', { method: 'POST', body: 'x' })).headers.get(CS)).toBe('page-dumper; fwd=method');
    });

    test('Cache-Status is never stored with the page, names the cache as configured, and is off by default', async () => {
      const { dumper, m, text } = await setup({ cacheStatus: 'web-1.example', cacheStatusHeader: false });
      expect((await text('/page/cs2')).headers.get('cache-status')).toBe('web-1.example; fwd=uri-miss; stored');
      const key = dumper.keyFor('GET', '/page/cs2', { host: `127.0.0.1:${m.port}` }) as string;
      let entry = await dumper.store.get(key);
      // A shared store may take the entry a moment after the response.
      for (let i = 0; i < 100 && entry === undefined; i++) {
        await new Promise((r) => setTimeout(r, 10));
        entry = await dumper.store.get(key);
      }
      expect(entry).toBeDefined();
      const names: string[] = [];
      for (let i = 0; i < entry!.headers.length; i += 2) names.push(entry!.headers[i]!);
      expect(names).not.toContain('cache-status');
      expect(names).not.toContain('x-cache');
      const hit = await text('/page/cs2');
      expect(hit.headers.get('cache-status')).toBe('web-1.example; hit');
      expect(hit.cache).toBeNull();
      const off = await setup();
      await off.text('/page/cs3');
      expect((await off.text('/page/cs3')).headers.get('cache-status')).toBeNull();
    });

    test('a compressed hit carries Cache-Status like any other', async () => {
      const { dumper, m } = await setup({ cacheStatus: true });
      await rawGet(m.port, '/article/cs', {});
      await dumper.flushCompression();
      const br = await rawGet(m.port, '/article/cs', { 'accept-encoding': 'br' });
      expect(br.headers['content-encoding']).toBe('br');
      expect(br.headers['cache-status']).toBe('page-dumper; hit');
    });

    test("Cache-Status keeps the members the app set (a cache behind it) and appends this cache's after them (RFC 9211 §2): a miss, a hit, a miss not stored, a bypass, an unsafe method", async () => {
      const { site, text } = await setup({ cacheStatus: true });
      // An app that proxies an upstream with a cache of its own, which says what it did.
      const handle = site.handle.bind(site);
      site.handle = async (req) => {
        const r = await handle(req);
        return { ...r, headers: { ...r.headers, 'cache-status': 'upstream; hit' } };
      };
      const CS = 'cache-status';
      expect((await text('/page/up')).headers.get(CS)).toBe('upstream; hit, page-dumper; fwd=uri-miss; stored');
      const hit = await text('/page/up');
      expect(hit.cache).toBe('HIT');
      expect(hit.headers.get(CS)).toBe('upstream; hit, page-dumper; hit');
      // A 304 says what the full reply says.
      const revalidated = await text('/page/up', { headers: { 'if-none-match': hit.headers.get('etag')! } });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers.get(CS)).toBe('upstream; hit, page-dumper; hit');
      expect((await text('/private')).headers.get(CS)).toBe('upstream; hit, page-dumper; fwd=uri-miss');
      expect((await text('/page/up', { headers: { authorization: 'Bearer x' } })).headers.get(CS)).toBe('upstream; hit, page-dumper; fwd=bypass; detail=authorization');
      expect((await text('/page/up', { method: 'POST', body: 'x' })).headers.get(CS)).toBe('upstream; hit, page-dumper; fwd=method');
    });

    test('a request collapsed into a concurrent render of its page is reported as collapsed (RFC 9211 §2.6), and counted as coalesced and as a hit', async () => {
      const { dumper, site, text } = await setup({ cacheStatus: true });
      const gate = site.gate('collapse');
      const first = text('/slow/c?gate=collapse');
      await gate.reached;
      const second = text('/slow/c?gate=collapse');
      // Released once the second request waits on the first one's render.
      for (let i = 0; i < 500 && dumper.stats().coalesced === 0; i++) await new Promise((r) => setTimeout(r, 10));
      gate.release();
      const [a, b] = await Promise.all([first, second]);
      expect(a.headers.get('cache-status')).toBe('page-dumper; fwd=uri-miss; stored');
      expect(b.headers.get('cache-status')).toBe('page-dumper; fwd=uri-miss; collapsed');
      expect(b.body).toBe(a.body);
      expect(site.count('/slow/c')).toBe(1);
      const s = dumper.stats();
      expect([s.misses, s.coalesced, s.hits]).toEqual([1, 1, 1]);
      expect((await text('/slow/c?gate=collapse')).headers.get('cache-status')).toBe('page-dumper; hit');
    });

    test('known traffic gives known counts (dumper.stats()), whatever the adapter', async () => {
      const { dumper, get, text } = await setup();
      const before = dumper.stats();
      const page = await text('/page/s1');
      const size = Buffer.byteLength(page.body);
      const hit = await text('/page/s1');
      expect(hit.cache).toBe('HIT');
      await (await get('/page/s1', { headers: { 'if-none-match': hit.headers.get('etag')! } })).text();
      await (await get('/page/s1', { method: 'HEAD' })).text();
      for (const path of ['/private', '/nothing-here', '/cookie']) await text(path);
      await text('/admin/x');
      await text('/page/s1', { headers: { authorization: 'Bearer x' } });
      await text('/page/s1', { method: 'POST', body: 'x' });
      await dumper.invalidate('/page/other');
      await dumper.invalidateTags(['t1', 't2']);
      // The POST's invalidation runs once its response has gone out; a shared store may take the
      // entry a moment after the response: asked again for a few seconds at most.
      let s = dumper.stats();
      for (let i = 0; i < 200 && (s.invalidations.unsafe === 0 || s.stores === 0); i++) {
        await new Promise((r) => setTimeout(r, 10));
        s = dumper.stats();
      }
      expect(s.since).toBe(before.since);
      expect(s.hits).toBe(3);
      expect(s.notModified).toBe(1);
      expect(s.misses).toBe(4);
      expect(s.coalesced).toBe(0);
      expect(s.stores).toBe(1);
      expect(s.bytesStored).toBe(size);
      expect(s.bytesServed).toBe(size);
      expect(s.storeErrors).toBe(0);
      expect(Object.entries(s.bypasses).filter(([, n]) => n !== 0)).toEqual([['method', 1], ['authorization', 1], ['ignored path', 1]]);
      expect(Object.entries(s.refusals).filter(([, n]) => n !== 0)).toEqual([['status', 1], ['set-cookie', 1], ['cache-control', 1]]);
      expect(s.invalidations).toEqual({ paths: 1, tags: 1, prefix: 0, all: 0, dependents: 0, unsafe: 1 });
    });

    test('concurrent misses for one page count one miss and the waiters as coalesced hits', async () => {
      const { dumper, text } = await setup();
      await Promise.all(Array.from({ length: 4 }, () => text('/slow/1?ms=80')));
      const s = dumper.stats();
      expect(s.misses).toBe(1);
      expect(s.coalesced).toBe(3);
      expect(s.hits).toBe(3);
      expect(s.stores).toBe(1);
    });

    // ------------------------------------------------------------ safety: the wrong bytes never reach a visitor

    test("a page whose render read the request's cookies is never served to another visitor; a visitor with cookies gets their own page", async () => {
      const { site, text } = await setup();
      const alice = await text('/who', { headers: { cookie: 'user=alice' } });
      expect(alice.body).toContain('hello alice');
      const anon = await text('/who');
      expect(anon.cache).toBe('MISS');
      expect(anon.body).toContain('hello stranger');
      // The anonymous page is stored, and served to visitors without cookies ...
      expect((await text('/who')).cache).toBe('HIT');
      // ... but not to one with a session: that visitor's page comes from the app, and is not stored.
      const bob = await text('/who', { headers: { cookie: 'user=bob' } });
      expect(bob.body).toContain('hello bob');
      expect(bob.cache).toBe('MISS');
      expect((await text('/who', { headers: { cookie: 'user=bob' } })).body).toContain('render 4');
      expect((await text('/who')).body).toContain('hello stranger');
      expect(site.count('/who')).toBe(4);
    });

    test('anonymous visitors do not wait on the render of a visitor with cookies: they share one render of their own', async () => {
      const { site, text } = await setup();
      const alice = text('/who?ms=80', { headers: { cookie: 'user=alice' } });
      await new Promise((r) => setTimeout(r, 10));
      const guests = await Promise.all(Array.from({ length: 4 }, () => text('/who?ms=80')));
      expect((await alice).body).toContain('hello alice');
      for (const g of guests) expect(g.body).toContain('hello stranger');
      expect(site.count('/who')).toBe(2);
    });

    test('a visitor with cookies does not wait on the render of another visitor with cookies (it cannot be stored)', async () => {
      const { site, text } = await setup({ coalesceTimeout: 60_000 });
      const gate = site.gate('alice');
      const alice = text('/who?gate=alice&for=alice', { headers: { cookie: 'user=alice' } });
      await gate.reached;
      // Were bob waiting on alice's render, this would wait for the gate (and a minute after).
      const bob = await text('/who?gate=alice&for=alice', { headers: { cookie: 'user=bob' } });
      expect(bob.body).toContain('hello bob');
      gate.release();
      expect((await alice).body).toContain('hello alice');
    });

    test('analytics cookies never reach the app and do not keep a visitor from the cached page; pages that never read cookies are shared', async () => {
      const { text } = await setup();
      const first = await text('/who', { headers: { cookie: '_ga=GA1.1.123; _gid=GA1.1.456; _fbp=fb.1' } });
      expect(first.body).toContain('hello stranger');
      expect(first.cache).toBe('MISS');
      expect((await text('/who', { headers: { cookie: '_ga=GA1.1.999' } })).cache).toBe('HIT');
      expect((await text('/who')).cache).toBe('HIT');
      // A page that never looks at cookies is the same for everyone, whoever rendered it.
      expect((await text('/page/shared', { headers: { cookie: 'user=carol' } })).cache).toBe('MISS');
      expect((await text('/page/shared')).cache).toBe('HIT');
      expect((await text('/page/shared', { headers: { cookie: 'user=dave' } })).cache).toBe('HIT');
    });

    test('the app is given the URL the key names: no fragment, no userinfo, percent-encoding as in the key', async () => {
      const { m, text } = await setup();
      const host = `127.0.0.1:${m.port}`;
      const frag = await rawRequest(m.port, `GET /canonical#%22%3E%3Cscript%3E HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect(frag.body).not.toContain('script');
      // (A server may refuse the userinfo outright: a fetch Request cannot carry credentials.)
      const userinfo = await rawRequest(m.port, `GET http://evil.example@${host}/canonical HTTP/1.1\r\nHost: ${host}\r\n\r\n`).catch(() => undefined);
      if (userinfo?.status === 200) expect(userinfo.body).not.toContain('evil');
      const page = await text('/canonical');
      expect(page.body).toContain(`href="http://${host}/canonical"`);
      // `%61` is `a` (RFC 3986 §6.2.2.2): one key, so the app must render the URL of that key.
      const encoded = await rawRequest(m.port, `GET /canonical/%61b HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const plain = await text('/canonical/ab');
      expect(plain.body).toContain(`/canonical/ab"`);
      if (encoded.headers[X] === 'MISS') expect(plain.cache).toBe('HIT');
    });

    test('an HTTP/1.0 absolute-form request without Host is rendered for the host its key names', async () => {
      const { m } = await setup();
      const r = await rawRequest(m.port, `GET http://abs.example/headers HTTP/1.0\r\n\r\n`);
      expect(r.status).toBeLessThan(500);
      const later = await rawRequest(m.port, `GET /headers HTTP/1.1\r\nHost: abs.example\r\n\r\n`);
      expect(later.body).toContain('host=abs.example ');
    });

    test('Host and forwarded headers reach the app as the key has them (lower-case)', async () => {
      const { m } = await setup();
      const upper = await rawRequest(m.port, `GET /headers HTTP/1.1\r\nHost: CASE.example\r\nX-Forwarded-Proto: HTTPS\r\nX-Forwarded-Host: FWD.example\r\n\r\n`);
      expect(upper.body).toContain('host=case.example xfh=fwd.example xfp=https ');
      const lower = await rawRequest(m.port, `GET /headers HTTP/1.1\r\nHost: case.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: fwd.example\r\n\r\n`);
      expect(lower.headers[X]).toBe('HIT');
      expect(lower.body).toContain('host=case.example xfh=fwd.example xfp=https inm= render 1');
    });

    test('a repeated parameter spelled two ways keeps its order in the key', async () => {
      const { text } = await setup();
      const a = await text('/echo?a+b=1&a%20b=2');
      const b = await text('/echo?a%20b=2&a+b=1');
      expect(b.cache).toBe('MISS');
      expect(b.body).not.toBe(a.body);
    });

    test('a GET with a body neither reads nor fills the cache', async () => {
      const { m, site, text } = await setup({ coalesceTimeout: 60_000 });
      await text('/page/fat');
      const fat = await rawRequest(m.port, `GET /page/fat HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\nContent-Length: 5\r\n\r\nhello`);
      expect(fat.headers[X]).toBe('BYPASS');
      // A declared body that never arrives leaves a request open; other visitors of an uncached
      // page do not wait for it (were it the leader of their fill, they would wait a minute).
      const socket = (await import('node:net')).connect(m.port, '127.0.0.1');
      socket.write(`GET /page/stuck HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\nContent-Length: 100\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 50));
      const other = await text('/page/stuck');
      expect(other.status).toBe(200);
      expect(['MISS', 'HIT']).toContain(other.cache);
      socket.destroy();
      expect(site.count('/page/fat')).toBe(2);
    });

    test('a response queued behind a pipelined one that never ends does not hold up other visitors', async () => {
      const { m, site, text } = await setup({ coalesceTimeout: 60_000 });
      const gate = site.gate('pipe');
      const socket = (await import('node:net')).connect(m.port, '127.0.0.1');
      const host = `Host: 127.0.0.1:${m.port}\r\n`;
      socket.write(`GET /hang?gate=pipe HTTP/1.1\r\n${host}\r\nGET /page/queued HTTP/1.1\r\n${host}\r\n`);
      await gate.reached;
      while (site.count('/page/queued') === 0) await new Promise((r) => setTimeout(r, 5));
      // (Were the queued render its leader, this would wait the full minute of coalesceTimeout.)
      const other = await text('/page/queued');
      expect(other.status).toBe(200);
      expect(other.body).toContain('/page/queued');
      gate.release();
      socket.destroy();
    });

    test('a streamed page queued behind a pipelined response that never ends does not hold up other visitors', async () => {
      const { m, site, text } = await setup({ coalesceTimeout: 60_000 });
      const gate = site.gate('pipe-stream');
      const socket = (await import('node:net')).connect(m.port, '127.0.0.1');
      const host = `Host: 127.0.0.1:${m.port}\r\n`;
      socket.write(`GET /hang?gate=pipe-stream HTTP/1.1\r\n${host}\r\nGET /big HTTP/1.1\r\n${host}\r\n`);
      await gate.reached;
      while (site.count('/big') === 0) await new Promise((r) => setTimeout(r, 5));
      // Its writes wait behind the first response: were it the leader, this would wait a minute.
      const r = await fetch(m.url + '/big');
      expect(r.status).toBe(200);
      expect((await r.arrayBuffer()).byteLength).toBe(40 * 64 * 1024);
      gate.release();
      socket.destroy();
    });

    test('a request behind a response that has ended but is still being sent is stored as usual', async () => {
      const { m, site, text } = await setup();
      const net = await import('node:net');
      // A client that does not read: the big response ends, and waits in the socket's buffers.
      const socket = net.connect(m.port, '127.0.0.1');
      socket.pause();
      const host = `Host: 127.0.0.1:${m.port}\r\n`;
      socket.write(`GET /huge HTTP/1.1\r\n${host}\r\n`);
      while (site.count('/huge') === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      socket.write(`GET /page/behind HTTP/1.1\r\n${host}\r\n`);
      while (site.count('/page/behind') === 0) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
      const other = await text('/page/behind');
      socket.destroy();
      expect(other.cache).toBe('HIT');
      expect(site.count('/page/behind')).toBe(1);
    });

    test.each(['sync', 'microtask', 'nextTick', 'immediate'])('a response the app aborted (%s) is never stored', async (how) => {
      const { m, site, text } = await setup();
      const r = await rawRequest(m.port, `GET /abort?how=${how} HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\n\r\n`).catch(() => undefined);
      expect(r?.body ?? '').not.toContain('rest');
      const next = await text(`/abort?how=${how}`).catch(() => undefined);
      expect(next?.cache).not.toBe('HIT');
      expect(site.count('/abort')).toBe(2);
    });

    test('a body that does not match its Content-Length is never stored', async () => {
      const { m, text } = await setup();
      const first = await rawRequest(m.port, `GET /short HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\n\r\n`);
      if (first.headers['content-length'] !== undefined && Number(first.headers['content-length']) !== Buffer.byteLength(first.body)) {
        const again = await rawRequest(m.port, `GET /short HTTP/1.1\r\nHost: 127.0.0.1:${m.port}\r\n\r\n`);
        expect(again.headers[X]).toBe('MISS');
      } else {
        // The framework made the response whole (it sets the length itself): stored whole.
        const again = await text('/short');
        expect(again.body).toBe(first.body);
      }
      void text;
    });

    test("the stored body is the entry's own: an app that reuses its output buffer does not change a stored page", async () => {
      const { text } = await setup();
      const a = await text('/reuse/a');
      await text('/reuse/b');
      const hit = await text('/reuse/a');
      expect(hit.cache).toBe('HIT');
      expect(hit.body).toBe(a.body);
    });

    test("a hit keeps the origin's Date and adds the Age the response arrived with (RFC 9111 §5.1)", async () => {
      const { text } = await setup();
      await text('/dated');
      const hit = await text('/dated');
      expect(hit.cache).toBe('HIT');
      expect(hit.headers.get('date')).toBe('Wed, 01 Jan 2025 00:00:00 GMT');
      expect(Number(hit.headers.get('age'))).toBeGreaterThanOrEqual(100);
    });

    test.each([
      ['a relative reference', 'moved', '/page/x'],
      ['a dot-segment reference', '../moved', '/page/a/b'],
      ['an absolute URL of the same host', 'absolute', '/move'],
      ['an absolute URL of the forwarded host, on another port and scheme', 'https://www.example:8443/page/moved', '/move'],
    ])('a POST invalidates the Location it names as %s', async (_, to, from) => {
      const { text } = await setup();
      const target = '/page/moved';
      await text(target);
      expect((await text(target)).cache).toBe('HIT');
      await text(`${from}?to=${encodeURIComponent(to)}`, { method: 'POST', headers: to.startsWith('https:') ? { 'x-forwarded-host': 'www.example' } : {} });
      await new Promise((r) => setTimeout(r, 20));
      expect((await text(target)).cache).toBe('MISS');
    });

    describe('compressed hits', () => {
      const raw = (port: number, path: string, ae: string | undefined, extra: Record<string, string> = {}, method = 'GET') =>
        rawGet(port, path, ae === undefined ? extra : { 'accept-encoding': ae, ...extra }, method);

      test.each<[string | undefined, string | undefined]>([
        ['gzip, deflate, br', 'br'],
        ['gzip, deflate, br, zstd', 'br'],
        ['gzip', 'gzip'],
        ['x-gzip', 'gzip'],
        ['GZIP;Q=1', 'gzip'],
        [undefined, undefined],
        ['', undefined],
        ['identity', undefined],
        ['deflate', undefined],
        ['br;q=0, gzip', 'gzip'],
        ['gzip;q=0.5, br;q=0.4', 'gzip'],
        ['*', 'br'],
        ['*;q=0', undefined],
        ['identity;q=0, *;q=0', undefined],
        ['br;q=0.001, identity;q=0.5', undefined],
        ['gzip;q=2, br;q=0', undefined],
        ...(ZSTD_AVAILABLE ? ([['zstd', 'zstd'], ['zstd, gzip;q=0.9', 'zstd']] as Array<[string, string]>) : []),
      ])('Accept-Encoding %j gets %s, with Vary, its own Content-Length and the whole page', async (ae, coding) => {
        const { dumper, site, m } = await setup();
        const miss = await raw(m.port, '/article/n', 'gzip, deflate, br');
        expect(miss.headers[X]).toBe('MISS');
        expect(miss.headers['content-encoding']).toBeUndefined();
        await dumper.flushCompression();
        const r = await raw(m.port, '/article/n', ae);
        expect(r.status).toBe(200);
        expect(r.headers[X]).toBe('HIT');
        expect(r.headers['content-encoding']).toBe(coding);
        expect(r.headers['vary']?.toLowerCase()).toContain('accept-encoding');
        expect(r.headers['content-length']).toBe(String(r.body.byteLength));
        expect(decoded(r)).toBe(article('n', 1));
        if (coding !== undefined) expect(r.body.byteLength).toBeLessThan(Buffer.byteLength(article('n', 1)) / 3);
        expect(site.count('/article/n')).toBe(1);
      });

      test('each encoding has its own strong ETag; If-None-Match answers 304 for the representation the client holds; HEAD sends what a GET would', async () => {
        const { dumper, m } = await setup();
        await raw(m.port, '/article/v', undefined);
        await dumper.flushCompression();
        const id = await raw(m.port, '/article/v', undefined);
        const br = await raw(m.port, '/article/v', 'gzip, br');
        const gz = await raw(m.port, '/article/v', 'gzip');
        const etags = [id, br, gz].map((r) => r.headers['etag']!);
        for (const e of etags) expect(e).toMatch(/^"[^"]+"$/);
        expect(new Set(etags).size).toBe(3);

        // The client holds the brotli page and revalidates it.
        const nm = await raw(m.port, '/article/v', 'gzip, br', { 'if-none-match': br.headers['etag']! });
        expect(nm.status).toBe(304);
        expect(nm.headers['etag']).toBe(br.headers['etag']);
        expect(nm.headers['vary']?.toLowerCase()).toContain('accept-encoding');
        expect(nm.headers[X]).toBe('HIT');
        expect(nm.body.byteLength).toBe(0);
        // It holds the identity page it got before the compressed ones were made: still current.
        const held = await raw(m.port, '/article/v', 'gzip, br', { 'if-none-match': id.headers['etag']! });
        expect(held.status).toBe(304);
        expect(held.headers['etag']).toBe(id.headers['etag']);
        // A validator of an encoding the request does not accept is no match: the full page.
        const other = await raw(m.port, '/article/v', 'identity', { 'if-none-match': gz.headers['etag']! });
        expect(other.status).toBe(200);
        expect(other.headers['content-encoding']).toBeUndefined();
        expect(other.headers['etag']).toBe(id.headers['etag']);
        const none = await raw(m.port, '/article/v', undefined, { 'if-none-match': br.headers['etag']! });
        expect(none.status).toBe(200);
        expect(decoded(none)).toBe(article('v', 1));

        const head = await raw(m.port, '/article/v', 'gzip, br', {}, 'HEAD');
        expect(head.status).toBe(200);
        expect(head.headers['content-encoding']).toBe('br');
        expect(head.headers['content-length']).toBe(br.headers['content-length']);
        expect(head.headers['etag']).toBe(br.headers['etag']);
        expect(head.body.byteLength).toBe(0);
        const plainHead = await raw(m.port, '/article/v', undefined, {}, 'HEAD');
        expect(plainHead.headers['content-encoding']).toBeUndefined();
        expect(plainHead.headers['content-length']).toBe(String(Buffer.byteLength(article('v', 1))));
      });

      test("a weak ETag of the app's is shared by every encoding", async () => {
        const { dumper, m } = await setup();
        await raw(m.port, '/article/w/weak', undefined);
        await dumper.flushCompression();
        const br = await raw(m.port, '/article/w/weak', 'br');
        expect(br.headers['content-encoding']).toBe('br');
        expect(br.headers['etag']).toBe('W/"article-1"');
        const nm = await raw(m.port, '/article/w/weak', 'gzip', { 'if-none-match': 'W/"article-1"' });
        expect(nm.status).toBe(304);
        // A strong one of the app's gets a suffix per encoding.
        await raw(m.port, '/article/w/strong', undefined);
        await dumper.flushCompression();
        expect((await raw(m.port, '/article/w/strong', 'br')).headers['etag']).toBe('"article-1-br"');
        expect((await raw(m.port, '/article/w/strong', undefined)).headers['etag']).toBe('"article-1"');
      });

      test.each(['gzip', 'br', 'deflate'])('a page the app compressed with %s is stored decoded; every client gets what it accepts', async (coding) => {
        const { dumper, site, m } = await setup();
        const path = `/app-${coding}/p`;
        const miss = await raw(m.port, path, 'gzip, deflate, br');
        expect(miss.headers[X]).toBe('MISS');
        expect(miss.headers['content-encoding']).toBe(coding);
        await dumper.flushCompression();
        const plain = await raw(m.port, path, undefined);
        expect(plain.headers[X]).toBe('HIT');
        expect(plain.headers['content-encoding']).toBeUndefined();
        expect(plain.body.toString()).toBe(article('p', 1));
        // The app's strong ETag named its compressed bytes: the stored page has its own.
        expect(plain.headers['etag']).not.toBe(`"app-${coding}-1"`);
        for (const [ae, want] of [['br', 'br'], ['gzip', 'gzip'], ['deflate', undefined], ['gzip, deflate, br', 'br']] as const) {
          const r = await raw(m.port, path, ae);
          expect(r.headers[X]).toBe('HIT');
          expect(r.headers['content-encoding']).toBe(want);
          expect(decoded(r)).toBe(article('p', 1));
        }
        expect(site.count(path)).toBe(1);
      });

      test('an invalidation drops every encoding of the page', async () => {
        const { dumper, site, m } = await setup();
        await raw(m.port, '/article/i', undefined);
        await dumper.flushCompression();
        expect((await raw(m.port, '/article/i', 'br')).headers['content-encoding']).toBe('br');
        await dumper.invalidate('/article/i');
        for (const ae of ['br', 'gzip', undefined]) {
          const r = await raw(m.port, '/article/i', ae);
          if (ae === 'br') expect(r.headers[X]).toBe('MISS');
          expect(decoded(r)).toBe(article('i', 2));
        }
        await dumper.flushCompression();
        const br = await raw(m.port, '/article/i', 'br');
        expect(br.headers['content-encoding']).toBe('br');
        expect(decoded(br)).toBe(article('i', 2));
        expect(site.count('/article/i')).toBe(2);
      });

      test('small pages, media types not on the list and compress: false are sent as stored, without Vary', async () => {
        const { dumper, m } = await setup();
        for (const path of ['/page/small', '/picture']) {
          await raw(m.port, path, 'br');
          await dumper.flushCompression();
          const r = await raw(m.port, path, 'gzip, br');
          expect(r.headers[X]).toBe('HIT');
          expect(r.headers['content-encoding']).toBeUndefined();
          expect(r.headers['vary']).toBeUndefined();
        }
        const off = await setup({ compress: false });
        await raw(off.m.port, '/article/o', 'br');
        await off.dumper.flushCompression();
        const r = await raw(off.m.port, '/article/o', 'gzip, br');
        expect(r.headers[X]).toBe('HIT');
        expect(r.headers['content-encoding']).toBeUndefined();
        expect(r.headers['vary']).toBeUndefined();
        expect(r.body.toString()).toBe(article('o', 1));
      });
    });

    test('after close() every request goes to the app', async () => {
      const { dumper, site, m } = await setup();
      await fetch(m.url + '/page/z').then((r) => r.text());
      await dumper.close();
      const r = await fetch(m.url + '/page/z');
      expect(r.headers.get(X)).toBe('BYPASS');
      await r.text();
      expect(site.count('/page/z')).toBe(2);
    });
  });
}
