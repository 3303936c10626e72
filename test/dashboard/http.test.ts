/**
 * The dashboard over HTTP: what it refuses without the token, the headers of every answer, the
 * CSRF check, mounting in Express, Fastify and a bare node server, and that page-dumper never
 * stores its pages when it sits behind the dumper.
 */
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import middie from '@fastify/middie';
import { serve, type HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import express from 'express';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Hono, type Context } from 'hono';
import Koa from 'koa';
import { afterEach, describe, expect, test } from 'vitest';
import { dashboardHandler, type DashboardData, type DashboardHandler } from '../../src/dashboard/index.js';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { CHANNELS, createDumper, MemoryStore, type Dumper, type StoreInfo } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { dashboardSite, eventually, knownTraffic, login, TOKEN, type DashboardSite } from './support.js';

const BEARER = { authorization: `Bearer ${TOKEN}` };

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function site(options: Parameters<typeof dashboardSite>[0] = {}): Promise<DashboardSite> {
  const s = await dashboardSite(options);
  cleanup.push(() => s.close());
  return s;
}

/** Every answer of the dashboard carries these, whatever its status. */
function expectSecurityHeaders(headers: Headers): void {
  expect(headers.get('cache-control')).toBe('no-store');
  expect(headers.get('content-security-policy')).toMatch(
    /^default-src 'none'; script-src 'self'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'$/,
  );
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('referrer-policy')).toBe('no-referrer');
}

/** A logged-in session: its cookie and CSRF token (read from the page, as its script does). */
async function session(s: DashboardSite): Promise<{ cookie: string; csrf: string }> {
  const l = await login(s);
  expect(l.status).toBe(303);
  const page = await s.get('/_cache/', { headers: { cookie: l.cookie! } });
  expect(page.status).toBe(200);
  const csrf = /<meta name="page-dumper-csrf" content="([^"]+)">/.exec(page.body)![1]!;
  return { cookie: l.cookie!, csrf };
}

function purge(s: DashboardSite, body: unknown, headers: Record<string, string>) {
  return s.get('/_cache/api/purge', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

describe('without the token', () => {
  test('the page, the script, the API and a purge are 401', async () => {
    const s = await site();
    await knownTraffic(s);
    const page = await s.get('/_cache/');
    expect(page.status).toBe(401);
    expect(page.headers.get('www-authenticate')).toBe('Bearer realm="page-dumper dashboard"');
    expect(page.body).toContain('<form method="post" action="login"');
    expect(page.body).not.toContain('app.js');
    expectSecurityHeaders(page.headers);

    const script = await s.get('/_cache/app.js');
    expect(script.status).toBe(401);
    expect(script.body).not.toContain('fetch(');
    expectSecurityHeaders(script.headers);

    const api = await s.get('/_cache/api/stats');
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body)).toEqual({ error: 'the token is required' });
    expectSecurityHeaders(api.headers);

    const p = await purge(s, { kind: 'all' }, { origin: s.m.url, 'sec-fetch-site': 'same-origin' });
    expect(p.status).toBe(401);
    expect((await s.get('/page/a')).headers.get('x-cache')).toBe('HIT');
  });

  test('a wrong token, a forged or foreign cookie, or the token in the URL are refused', async () => {
    const s = await site();
    expect((await s.get('/_cache/api/stats', { headers: { authorization: `Bearer ${TOKEN}x` } })).status).toBe(401);
    expect((await s.get('/_cache/api/stats', { headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` } })).status).toBe(401);
    expect((await s.get(`/_cache/api/stats?token=${encodeURIComponent(TOKEN)}`)).status).toBe(401);
    expect((await s.get('/_cache/api/stats', { headers: { cookie: `page-dumper-dashboard=${encodeURIComponent(TOKEN)}` } })).status).toBe(401);
    // A session of another dashboard (another token) opens nothing here.
    const other = await site({ dashboard: { token: `${TOKEN} but another` } });
    const foreign = await login(other, `${TOKEN} but another`);
    expect(foreign.status).toBe(303);
    expect((await s.get('/_cache/api/stats', { headers: { cookie: foreign.cookie! } })).status).toBe(401);
  });

  test('the login form: a wrong token is 401 with a message, a cross-site post is refused, the right one sets the cookie', async () => {
    const s = await site();
    const wrong = await login(s, 'not the token, at all');
    expect(wrong.status).toBe(401);
    expect(wrong.setCookie).toBeNull();
    expect(wrong.body).toContain('>Wrong token.</p>');

    const crossSite = await s.get('/_cache/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.test', 'sec-fetch-site': 'cross-site' },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get('set-cookie')).toBeNull();

    const right = await login(s);
    expect(right.status).toBe(303);
    expect(right.setCookie).toMatch(/^page-dumper-dashboard=v2\.[0-9a-z]+\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}; Path=\/_cache; Max-Age=43200; HttpOnly; SameSite=Strict$/);
    expect(right.setCookie).not.toContain(encodeURIComponent(TOKEN).slice(0, 8));
    expectSecurityHeaders((await s.get('/_cache/login', { method: 'POST' })).headers);

    // Secure when the request came over HTTPS (through a proxy that says so).
    const https = await fetch(`${s.m.url}/_cache/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.m.url, 'x-forwarded-proto': 'https' },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(https.headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  test('the token is never in the page, the script or the API', async () => {
    const s = await site();
    await knownTraffic(s);
    const { cookie } = await session(s);
    for (const path of ['/_cache/', '/_cache/app.js', '/_cache/api/stats']) {
      const r = await s.get(path, { headers: { cookie } });
      expect(r.status).toBe(200);
      expectSecurityHeaders(r.headers);
      expect(r.body).not.toContain(TOKEN);
    }
  });
});

describe('with the token', () => {
  test('Authorization: Bearer opens the page, the script and the API, whose numbers follow the traffic', async () => {
    const s = await site();
    await knownTraffic(s);
    const page = await s.get('/_cache/', { headers: BEARER });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script src="app.js" defer></script>');
    expect(page.body).not.toMatch(/<script>|<script [^>]*>[^<]/);
    const script = await s.get('/_cache/app.js', { headers: BEARER });
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const data = JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
    expect(data.totals).toMatchObject({ hits: 5, misses: 3, stores: 3 });
    expect(data.store).toMatchObject({ enumerable: true, info: { entries: 3, tags: 6 } });
    expect(data.top.map((t) => [t.path, t.hits, t.misses])).toEqual([
      ['/page/a', 3, 1],
      ['/page/b', 2, 1],
      ['/page/c', 0, 1],
    ]);
    expect(data.health).toMatchObject({ storeErrors: 0, recentStoreErrors: 0, failing: false });
  });

  test('a purge with the bearer token goes through the dumper (a script needs no session)', async () => {
    const s = await site();
    await knownTraffic(s);
    const r = await purge(s, { kind: 'path', values: ['/page/a', '/page/b'] }, BEARER);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ ok: true, message: 'Purged 2 paths.' });
    expect(s.dumper.stats().invalidations.paths).toBe(1);
    expect((await s.get('/page/a')).headers.get('x-cache')).toBe('MISS');
    expect((await s.get('/page/b')).headers.get('x-cache')).toBe('MISS');
    expect((await s.get('/page/c')).headers.get('x-cache')).toBe('HIT');
    const data = JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
    expect(data.invalidations).toEqual([
      { at: expect.any(Number), kind: 'paths', paths: ['/page/a', '/page/b'], tags: [], prefixes: [], models: [], integrations: [], source: 'dashboard' },
    ]);
  });

  test('a purge by prefix, where the dumper allows it', async () => {
    const s = await site({ dumper: { prefixInvalidation: true } });
    await knownTraffic(s);
    const r = await purge(s, { kind: 'prefix', value: '/page' }, BEARER);
    expect(JSON.parse(r.body)).toMatchObject({ ok: true, message: 'Purged 1 prefix.' });
    expect((await s.get('/page/c')).headers.get('x-cache')).toBe('MISS');
  });

  test('a purge is never a GET, and a bad one is a 400', async () => {
    const s = await site();
    await knownTraffic(s);
    const get = await s.get('/_cache/api/purge?kind=all', { headers: BEARER });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await purge(s, { kind: 'everything' }, BEARER)).status).toBe(400);
    expect((await purge(s, { kind: 'path', values: [] }, BEARER)).status).toBe(400);
    expect((await s.get('/_cache/api/purge', { method: 'POST', headers: { ...BEARER, 'content-type': 'text/plain' }, body: 'kind=all' })).status).toBe(415);
    expect((await s.get('/_cache/api/purge', { method: 'POST', headers: { ...BEARER, 'content-type': 'application/json' }, body: 'x'.repeat(70_000) })).status).toBe(413);
    expect((await s.get('/page/a')).headers.get('x-cache')).toBe('HIT');
    expect(s.dumper.stats().invalidations).toMatchObject({ paths: 0, tags: 0, prefix: 0, all: 0 });
  });
});

describe('bounded memory, seen through the API', () => {
  test('the samples are a ring of `samples`', async () => {
    const s = await site({ dashboard: { samples: 3, sampleInterval: 100 } });
    const read = async () => (JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData).samples;
    const first = (await read())[0]!;
    // Polled, not slept for: until the first sample has been pushed out.
    expect(await eventually(async () => (await read())[0]!.t > first.t)).toBe(true);
    expect(await read()).toHaveLength(3);
    await knownTraffic(s);
    expect(await eventually(async () => (await read()).at(-1)!.hits === 5)).toBe(true);
    expect((await read()).at(-1)).toMatchObject({ hits: 5, misses: 3, stores: 3, bypasses: 0, storeErrors: 0 });
  });

  test('many distinct URLs: the top list keeps the popular page and `topPages` rows', async () => {
    const s = await site({ dashboard: { trackedPages: 10, topPages: 3 } });
    for (let i = 0; i < 60; i++) {
      await s.get(`/page/junk-${i}`);
      if (i % 4 === 0) await s.get('/page/popular');
    }
    const data = JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
    expect(data.top).toHaveLength(3);
    expect(data.top[0]).toMatchObject({ path: '/page/popular', hits: 14, misses: 1 });
  });

  test('an invalidation naming many paths is listed with 20 and a count of the rest; the list keeps `recentInvalidations`', async () => {
    const s = await site({ dashboard: { recentInvalidations: 2 } });
    await s.dumper.invalidate(Array.from({ length: 25 }, (_, i) => `/p/${i}`));
    await s.dumper.invalidateTags('a');
    await s.dumper.invalidateTags('b');
    const data = JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
    expect(data.invalidations.map((i) => i.tags)).toEqual([['b'], ['a']]);
    const s2 = await site();
    await s2.dumper.invalidate(Array.from({ length: 25 }, (_, i) => `/p/${i}`));
    const [many] = (JSON.parse((await s2.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData).invalidations;
    expect(many!.paths).toHaveLength(21);
    expect(many!.paths.at(-1)).toBe('… and 5 more');
    expect(many!.source).toBeUndefined();
  });
});

test('store health: a failing store shows in the errors and the state, and a count that failed says why', async () => {
  /** A store that is down (a fault a real store gives only when its server goes away). */
  class DownStore extends MemoryStore {
    override get(): never {
      throw new Error('connection refused');
    }
    override info(): never {
      throw new Error('connection refused');
    }
  }
  const s = await site({ dumper: { store: new DownStore(), storeCooldown: 60_000 } });
  const page = await s.get('/page/a');
  expect(page.status).toBe(200);
  const data = JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
  expect(data.health).toMatchObject({ storeErrors: 1, recentStoreErrors: 1, failing: true, dumper: { circuit: 'open', failures: 1 } });
  expect(data.health.dumper.openUntil).toBeGreaterThan(Date.now());
  expect(data.store).toEqual({ enumerable: true, error: 'connection refused', counting: false });
});

test('a store count (info()) slower than the 5 s the page waits goes on alone: refreshes meanwhile show the last count, and start no other', async () => {
  let calls = 0;
  let running = 0;
  let maxRunning = 0;
  let release: (() => void) | undefined;
  /** A store whose count can be made to hang, as a SCAN over millions of Redis keys does. */
  class SlowCount extends MemoryStore {
    slow = false;
    // The Store contract lets info() answer with a promise; MemoryStore's own answers at once.
    override info(): StoreInfo {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      const counted = (async () => {
        if (this.slow) await new Promise<void>((r) => (release = r));
        running--;
        return super.info();
      })();
      return counted as unknown as StoreInfo;
    }
  }
  const store = new SlowCount();
  // Counted again at every refresh, so that only the count under way holds the next one back.
  const s = await site({ dumper: { store }, dashboard: { storeInfoInterval: 0 } });
  await s.get('/page/a');
  const stats = async () => JSON.parse((await s.get('/_cache/api/stats', { headers: BEARER })).body) as DashboardData;
  const first = await stats();
  expect(first.store).toMatchObject({ counting: false, info: { entries: 1 } });
  store.slow = true;
  // The open page refreshes every 5 s, and so does every other open tab.
  for (let i = 0; i < 2; i++) {
    const d = await stats();
    expect(d.store).toMatchObject({ counting: true, info: { entries: 1 }, at: first.store.at });
    expect(d.store.error).toBeUndefined();
  }
  expect([calls, maxRunning]).toEqual([2, 1]);
  store.slow = false;
  release!();
  let last = await stats();
  expect(await eventually(async () => !(last = await stats()).store.counting)).toBe(true);
  expect(last.store.at).toBeGreaterThan(first.store.at!);
  expect(maxRunning).toBe(1);
}, 30_000);

describe('CSRF: a purge with the session cookie', () => {
  test('needs the same origin and the CSRF token of the session', async () => {
    const s = await site();
    await knownTraffic(s);
    const { cookie, csrf } = await session(s);
    const same = { cookie, origin: s.m.url, 'sec-fetch-site': 'same-origin' };
    const refusals: Array<Record<string, string>> = [
      // The cookie alone (a cross-site form, were the cookie sent).
      { cookie },
      { ...same },
      { ...same, 'x-csrf-token': `${csrf.slice(0, -1)}x` },
      { ...same, 'x-csrf-token': csrf, origin: 'http://evil.test' },
      { ...same, 'x-csrf-token': csrf, 'sec-fetch-site': 'cross-site' },
      { cookie, 'x-csrf-token': csrf },
    ];
    for (const headers of refusals) {
      const r = await purge(s, { kind: 'all' }, headers);
      expect(r.status, JSON.stringify(headers)).toBe(403);
    }
    // A bearer request a browser says is cross-site (a proxy that adds the header to every request) is refused too.
    expect((await purge(s, { kind: 'all' }, { ...BEARER, origin: 'http://evil.test' })).status).toBe(403);
    expect((await purge(s, { kind: 'all' }, { ...BEARER, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    // `Origin: null` (a form posted from a no-referrer page) by a browser that sends no Sec-Fetch-Site: from anywhere.
    const form = await s.get('/_cache/api/purge', {
      method: 'POST',
      headers: { ...BEARER, origin: 'null', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'kind=all',
    });
    expect(form.status).toBe(403);
    expect((await s.get('/page/a')).headers.get('x-cache')).toBe('HIT');
    expect(s.dumper.stats().invalidations.all).toBe(0);

    const ok = await purge(s, { kind: 'all' }, { ...same, 'x-csrf-token': csrf });
    expect(ok.status).toBe(200);
    expect((await s.get('/page/a')).headers.get('x-cache')).toBe('MISS');
  });

  test('a form post with the csrf field works too (the page without its script)', async () => {
    const s = await site();
    await knownTraffic(s);
    const { cookie, csrf } = await session(s);
    const r = await s.get('/_cache/api/purge', {
      method: 'POST',
      headers: { cookie, origin: s.m.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ kind: 'tag', value: 'page:c', csrf }).toString(),
    });
    expect(r.status).toBe(200);
    expect((await s.get('/page/c')).headers.get('x-cache')).toBe('MISS');
    // Logging out needs the same proof, then the cookie is dropped.
    const out = await s.get('/_cache/logout', { method: 'POST', headers: { cookie, origin: s.m.url, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${csrf}` });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toBe('page-dumper-dashboard=; Path=/_cache; Max-Age=0; HttpOnly; SameSite=Strict');
  });
});

test('a logout ends the session: its cookie, replayed, opens nothing; another session goes on', async () => {
  const s = await site();
  const a = await session(s);
  const b = await session(s);
  const out = await s.get('/_cache/logout', {
    method: 'POST',
    headers: { cookie: a.cookie, origin: s.m.url, 'sec-fetch-site': 'same-origin', 'x-csrf-token': a.csrf, 'content-type': 'application/x-www-form-urlencoded' },
    body: '',
  });
  expect(out.status).toBe(303);
  // A copy of the cookie (a shared computer, a stolen cookie) after "Log out".
  expect((await s.get('/_cache/api/stats', { headers: { cookie: a.cookie } })).status).toBe(401);
  expect((await s.get('/_cache/', { headers: { cookie: a.cookie } })).status).toBe(401);
  expect((await purge(s, { kind: 'all' }, { cookie: a.cookie, origin: s.m.url, 'sec-fetch-site': 'same-origin', 'x-csrf-token': a.csrf })).status).toBe(401);
  expect((await s.get('/_cache/api/stats', { headers: { cookie: b.cookie } })).status).toBe(200);
  // Logging in again opens a new session.
  const c = await session(s);
  expect((await s.get('/_cache/api/stats', { headers: { cookie: c.cookie } })).status).toBe(200);
});

describe('mounting', () => {
  /** A server with the dumper in front of everything, the dashboard included. */
  async function behindTheDumper(route: (dumper: Dumper, dashboard: DashboardHandler) => http.RequestListener): Promise<{ dumper: Dumper; m: Mounted }> {
    const dumper = createDumper({ logger: false, store: new MemoryStore() });
    const dashboard = dashboardHandler(dumper, { token: TOKEN, basePath: '/_cache' });
    const m = await listen(withDumper(dumper, route(dumper, dashboard)));
    cleanup.push(() => dumper.close(), () => m.close(), () => dashboard.close());
    return { dumper, m };
  }

  test('a bare node server with basePath: the mount without its slash is redirected, other paths are 404', async () => {
    const { m } = await behindTheDumper((_, dashboard) => dashboard);
    const bare = await fetch(`${m.url}/_cache?x=1`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/_cache/?x=1');
    expect((await fetch(`${m.url}/elsewhere`)).status).toBe(404);
    expect((await fetch(`${m.url}/_cache/`, { headers: BEARER })).status).toBe(200);
    expect((await fetch(`${m.url}/_cache/nothing`, { headers: BEARER })).status).toBe(404);
  });

  test('behind withDumper, nothing the dashboard answers is stored, with a session cookie or without', async () => {
    const { dumper, m } = await behindTheDumper((_, dashboard) => dashboard);
    const l = await fetch(`${m.url}/_cache/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: m.url },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    const cookie = l.headers.get('set-cookie')!.split(';')[0]!;
    for (let i = 0; i < 3; i++) {
      for (const path of ['/_cache/', '/_cache/app.js', '/_cache/api/stats']) {
        const r = await fetch(m.url + path, { headers: { cookie } });
        expect(r.status).toBe(200);
        expect(r.headers.get('x-cache'), path).toBe('MISS');
        await r.text();
      }
      // A visitor without the cookie gets the login form, which is not stored either.
      const anonymous = await fetch(`${m.url}/_cache/`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('x-cache')).toBe('MISS');
      await anonymous.text();
    }
    expect(await eventually(() => dumper.stats().refusals['cache-control'] >= 9)).toBe(true);
    expect(dumper.stats().stores).toBe(0);
    expect(dumper.stats().hits).toBe(0);
    expect((dumper.store as MemoryStore).info().entries).toBe(0);
  });

  test('Express: app.use(path, handler), also in a nested router, with body parsers before it', async () => {
    const dumper = createDumper({ logger: false });
    const dashboard = dashboardHandler(dumper, { token: TOKEN });
    const app = express();
    app.use(express.json());
    app.use(express.urlencoded({ extended: false }));
    const admin = express.Router();
    admin.use('/cache', dashboard);
    app.use('/admin', admin);
    const m = await listen(app);
    cleanup.push(() => dumper.close(), () => m.close(), () => dashboard.close());

    const bare = await fetch(`${m.url}/admin/cache`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/admin/cache/');
    const l = await fetch(`${m.url}/admin/cache/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: m.url },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(l.status).toBe(303);
    expect(l.headers.get('set-cookie')).toContain('; Path=/admin/cache;');
    const p = await fetch(`${m.url}/admin/cache/api/purge`, { method: 'POST', headers: { ...BEARER, 'content-type': 'application/json' }, body: '{"kind":"tag","value":"t"}' });
    expect(p.status).toBe(200);
    expect(dumper.stats().invalidations.tags).toBe(1);
  });

  /** The Fastify recipe of docs/dashboard.md: a route that hands the raw request over. */
  async function fastifyRoute(app: FastifyInstance, dashboard: DashboardHandler): Promise<void> {
    await app.register(async (scope) => {
      // The dashboard reads its own bodies (the login form, a purge).
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
      const route = (req: FastifyRequest, reply: FastifyReply) => {
        reply.hijack();
        dashboard(req.raw, reply.raw);
      };
      scope.all('/_cache', route);
      scope.all('/_cache/*', route);
    });
  }

  test('Fastify: a route that hijacks the reply, behind the fastifyDumper plugin, is never stored', async () => {
    const dumper = createDumper({ logger: false });
    const dashboard = dashboardHandler(dumper, { token: TOKEN, basePath: '/_cache' });
    const app = Fastify();
    await app.register(fastifyDumper, { dumper });
    await fastifyRoute(app, dashboard);
    app.get('/page', async (_req, reply) => reply.type('text/html').send('<p>page</p>'));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    cleanup.push(() => dumper.close(), () => app.close(), () => dashboard.close());

    expect((await fetch(`${url}/_cache`, { redirect: 'manual' })).headers.get('location')).toBe('/_cache/');
    const l = await fetch(`${url}/_cache/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(l.status).toBe(303);
    const cookie = l.headers.get('set-cookie')!.split(';')[0]!;
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${url}/_cache/api/stats`, { headers: { cookie } });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-cache')).not.toBe('HIT');
      expectSecurityHeaders(r.headers);
      await r.text();
    }
    await (await fetch(`${url}/page`)).text();
    await eventually(() => dumper.stats().stores === 1);
    expect((await fetch(`${url}/page`)).headers.get('x-cache')).toBe('HIT');
    // Only /page was stored, none of the dashboard's answers.
    expect(dumper.stats().stores).toBe(1);
    expect(dumper.stats().refusals.incomplete + dumper.stats().refusals['cache-control']).toBeGreaterThanOrEqual(3);
    const p = await fetch(`${url}/_cache/api/purge`, { method: 'POST', headers: { ...BEARER, 'content-type': 'application/json' }, body: '{"kind":"path","value":"/page"}' });
    expect(p.status).toBe(200);
    expect((await fetch(`${url}/page`)).headers.get('x-cache')).toBe('MISS');
  });

  test('Fastify with @fastify/middie: fastify.use(path, handler)', async () => {
    const dumper = createDumper({ logger: false });
    const dashboard = dashboardHandler(dumper, { token: TOKEN });
    const app = Fastify();
    await app.register(middie);
    app.use('/_cache', dashboard);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    cleanup.push(() => dumper.close(), () => app.close(), () => dashboard.close());
    const l = await fetch(`${url}/_cache/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(l.status).toBe(303);
    expect(l.headers.get('set-cookie')).toContain('; Path=/_cache;');
    expect((await fetch(`${url}/_cache/api/stats`, { headers: { cookie: l.headers.get('set-cookie')!.split(';')[0]! } })).status).toBe(200);
  });
});

/** Logs in through the form and reads the stats with the cookie, at `url` (the mount at `/_cache`). */
async function loginAndRead(url: string): Promise<{ setCookie: string; stats: number; purge: number }> {
  const l = await fetch(`${url}/_cache/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: url },
    body: `token=${encodeURIComponent(TOKEN)}`,
  });
  const setCookie = l.headers.get('set-cookie') ?? '';
  const stats = (await fetch(`${url}/_cache/api/stats`, { headers: { cookie: setCookie.split(';')[0]! } })).status;
  const purge = (await fetch(`${url}/_cache/api/purge`, { method: 'POST', headers: { ...BEARER, 'content-type': 'application/json' }, body: '{"kind":"path","value":"/x"}' })).status;
  return { setCookie, stats, purge };
}

describe('mounting in Koa and Hono (the recipes of docs/dashboard.md)', () => {
  test('Koa: a middleware that hands ctx.req and ctx.res over', async () => {
    const dumper = createDumper({ logger: false });
    const dashboard = dashboardHandler(dumper, { token: TOKEN, basePath: '/_cache' });
    const app = new Koa();
    app.use(async (ctx, next) => {
      if (ctx.path !== '/_cache' && !ctx.path.startsWith('/_cache/')) return next();
      ctx.respond = false;
      dashboard(ctx.req, ctx.res);
    });
    app.use((ctx) => {
      ctx.body = 'app';
    });
    const m = await listen(app.callback());
    cleanup.push(() => dumper.close(), () => m.close(), () => dashboard.close());
    expect(await loginAndRead(m.url)).toEqual({ setCookie: expect.stringContaining('; Path=/_cache;'), stats: 200, purge: 200 });
    expect(await (await fetch(`${m.url}/other`)).text()).toBe('app');
  });

  test('Hono on @hono/node-server: env.incoming and env.outgoing', async () => {
    const dumper = createDumper({ logger: false });
    const dashboard = dashboardHandler(dumper, { token: TOKEN, basePath: '/_cache' });
    const app = new Hono<{ Bindings: HttpBindings }>();
    const toDashboard = (c: Context<{ Bindings: HttpBindings }>) => {
      dashboard(c.env.incoming, c.env.outgoing);
      return RESPONSE_ALREADY_SENT;
    };
    app.all('/_cache', toDashboard);
    app.all('/_cache/*', toDashboard);
    app.get('/other', (c) => c.text('app'));
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((r) => server.once('listening', () => r()));
    cleanup.push(() => dumper.close(), () => new Promise<void>((r) => server.close(() => r())), () => dashboard.close());
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    expect(await loginAndRead(url)).toEqual({ setCookie: expect.stringContaining('; Path=/_cache;'), stats: 200, purge: 200 });
    expect(await (await fetch(`${url}/other`)).text()).toBe('app');
  });
});

test('close() unsubscribes from the channels and stops answering', async () => {
  const channels = [CHANNELS.hit, CHANNELS.miss, CHANNELS.invalidate].map((name) => diagnostics.channel(name));
  const before = channels.map((c) => c.hasSubscribers);
  const s = await dashboardSite();
  expect(channels.map((c) => c.hasSubscribers)).toEqual([true, true, true]);
  s.dashboard.close();
  expect(channels.map((c) => c.hasSubscribers)).toEqual(before);
  expect((await s.get('/_cache/', { headers: BEARER })).status).toBe(503);
  await s.close();
});
