/**
 * page-dumper behind a real Varnish (Debian's varnishd with xkey from varnish-modules), running the
 * shipped varnish/page-dumper.vcl: pages are Varnish hits, and every kind of invalidation purges
 * exactly the pages it should, at both of two Varnish instances, including a page rendered from
 * data older than a write that reached Varnish after the write's purge (the race at the edge).
 * Under CI a missing varnishd fails the suite (test/support/services.ts).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, DEFAULT_IGNORED_COOKIES, type Dumper } from '../../src/index.js';
import { typeormDumper } from '../../src/orm/typeorm/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { needVarnish, definedIf } from '../support/services.js';
import { entities, Flavour, register, seed, shopApp } from '../orm/typeorm/shop.js';
import { sqliteTarget } from '../orm/typeorm/support.js';
import { SHIPPED_VCL, startVarnish, type Varnish } from './varnish-server.js';

const varnishd = await needVarnish();

interface Got {
  status: number;
  body: string;
  edge: string | null;
  origin: string | null;
  headers: Headers;
}

async function get(base: string, path: string): Promise<Got> {
  const r = await fetch(base + path);
  return { status: r.status, body: await r.text(), edge: r.headers.get('x-edge-cache'), origin: r.headers.get('x-cache'), headers: r.headers };
}

/** A shop whose data the tests change, with pages that say what they show. */
class Shop {
  readonly flavours = new Map<string, { slug: string; name: string }>([
    ['vanilla', { slug: 'vanilla', name: 'Vanilla' }],
    ['mint', { slug: 'mint', name: 'Mint' }],
  ]);
  version = 1;
  renders = 0;
  /** Set by the race test: the slow page's render waits on it after reading the data. */
  gate: Promise<void> | undefined;
  /** Resolved when the slow page has read its data. */
  onRead: (() => void) | undefined;
}

class FlavourModel {
  constructor(readonly slug: string) {}
  dependentPaths() {
    return ['/flavours/', `/flavours/${this.slug}/`];
  }
}

function app(dumper: Dumper, shop: Shop): http.RequestListener {
  return async (req, res) => {
    shop.renders++;
    const path = req.url ?? '/';
    res.setHeader('content-type', 'text/plain');
    let m: RegExpExecArray | null;
    if (path === '/flavours/') return res.end(`flavours: ${[...shop.flavours.values()].map((f) => f.name).join(',')}`);
    if ((m = /^\/flavours\/(\w+)\/$/.exec(path))) {
      const f = shop.flavours.get(m[1]!);
      if (!f) {
        res.statusCode = 404;
        return res.end('no such flavour');
      }
      return res.end(`${f.name}`);
    }
    if ((m = /^\/tagged\/(\w+)$/.exec(path))) {
      dumper.tag('menu');
      return res.end(`${m[1]} v${shop.version}`);
    }
    if ((m = /^\/plain\/(\w+)$/.exec(path))) return res.end(`${m[1]} v${shop.version}`);
    if ((m = /^\/many\/(\w+)$/.exec(path))) {
      // More tags than Varnish's header takes: the page carries their buckets instead.
      for (let i = 0; i < 600; i++) dumper.tag(`product:${i}`);
      return res.end(`${m[1]} v${shop.version}`);
    }
    if (path.startsWith('/slow/')) {
      const seen = shop.version;
      shop.onRead?.();
      await shop.gate;
      return res.end(`${path} v${seen}`);
    }
    if ((m = /^\/section\/(\w+)\/(\w+)$/.exec(path))) return res.end(`${m[1]}/${m[2]} v${shop.version}`);
    res.statusCode = 404;
    res.end('not found');
  };
}

definedIf(varnishd, describe)('Varnish in front of page-dumper', () => {
  let v1: Varnish;
  let v2: Varnish;
  let origin: Mounted;
  let dumper: Dumper;
  let shop: Shop;
  /** The app the origin serves now (each test installs its own dumper). */
  let current: http.RequestListener = (_req, res) => res.end();

  beforeAll(async () => {
    origin = await listen((req, res) => current(req, res));
    [v1, v2] = await Promise.all([startVarnish(varnishd!, origin.port), startVarnish(varnishd!, origin.port)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([v1?.stop(), v2?.stop()]);
    await origin?.close();
  });
  afterEach(async () => {
    await dumper?.close();
  });

  function install(options: Parameters<typeof createDumper>[0] = {}): void {
    shop = new Shop();
    dumper = createDumper({
      logger: false,
      purgers: [varnishPurger({ url: [v1.url, v2.url] })],
      // Short, so that flushPurges() (which waits for the second purge of every write) is quick.
      edge: { raceWindow: 1000 },
      // The first render that tags a page is tracked too (see the option).
      trackRenders: true,
      ...options,
    });
    dumper.register(FlavourModel);
    current = withDumper(dumper, app(dumper, shop));
  }

  /** Each test uses paths of its own: Varnish keeps what earlier tests left. */
  let n = 0;
  const unique = () => `${++n}${Date.now().toString(36)}`;

  test('a page is a Varnish hit; the edge gets its tags and lifetime, the browser is told to revalidate', async () => {
    install();
    const id = unique();
    const first = await get(v1.url, `/tagged/${id}`);
    expect(first).toMatchObject({ status: 200, body: `${id} v1`, edge: 'MISS', origin: 'MISS' });
    const second = await get(v1.url, `/tagged/${id}`);
    expect(second).toMatchObject({ status: 200, body: `${id} v1`, edge: 'HIT' });
    expect(shop.renders).toBe(1);
    // The VCL keeps xkey and Surrogate-Control for Varnish; browsers revalidate (RFC 9111 §5.2.2.2).
    expect(second.headers.get('xkey')).toBeNull();
    expect(second.headers.get('surrogate-control')).toBeNull();
    expect(second.headers.get('cache-control')).toBe('max-age=0, must-revalidate');
    // What the origin sends Varnish, miss and hit alike: the path tag, the render's tags, the all-pages tag.
    // (Varnish passes its own Host on: the same key.)
    const direct = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(`${origin.url}/tagged/${id}`, { headers: { host: new URL(v1.url).host } }, (r) => resolve(r.resume())).on('error', reject),
    );
    expect(direct.headers['x-cache']).toBe('HIT');
    expect(String(direct.headers.xkey).split(' ').sort()).toEqual(['menu', 'pd.all', `/tagged/${id}`].sort());
    expect(direct.headers['surrogate-control']).toBe('max-age=31536000');
  });

  test('dumper.changed() purges the pages of the instance at every Varnish instance, and only those', async () => {
    install();
    for (const v of [v1, v2]) {
      for (const p of ['/flavours/vanilla/', '/flavours/mint/', '/flavours/']) {
        await get(v.url, p);
        expect((await get(v.url, p)).edge).toBe('HIT');
      }
    }
    shop.flavours.set('vanilla', { slug: 'vanilla', name: 'Vanilla Bean' });
    await dumper.changed(new FlavourModel('vanilla'));
    await dumper.flushPurges();
    for (const v of [v1, v2]) {
      expect(await get(v.url, '/flavours/vanilla/')).toMatchObject({ body: 'Vanilla Bean', edge: 'MISS' });
      expect(await get(v.url, '/flavours/')).toMatchObject({ body: 'flavours: Vanilla Bean,Mint', edge: 'MISS' });
      expect(await get(v.url, '/flavours/mint/')).toMatchObject({ body: 'Mint', edge: 'HIT' });
    }
    expect(dumper.purgeStats.sent).toBeGreaterThan(0);
    expect(dumper.purgeStats.failed).toBe(0);
  });

  test('invalidateTags() purges every page carrying the tag; invalidate() purges a path in every spelling', async () => {
    install();
    const a = unique();
    const b = unique();
    const c = unique();
    for (const p of [`/tagged/${a}`, `/tagged/${b}`, `/plain/${c}`]) {
      await get(v1.url, p);
      expect((await get(v1.url, p)).edge).toBe('HIT');
    }
    shop.version = 2;
    await dumper.invalidateTags('menu');
    await dumper.flushPurges();
    expect(await get(v1.url, `/tagged/${a}`)).toMatchObject({ body: `${a} v2`, edge: 'MISS' });
    expect(await get(v1.url, `/tagged/${b}`)).toMatchObject({ body: `${b} v2`, edge: 'MISS' });
    expect(await get(v1.url, `/plain/${c}`)).toMatchObject({ body: `${c} v1`, edge: 'HIT' });
    shop.version = 3;
    await dumper.invalidate(`/PLAIN/${c}/`);
    await dumper.flushPurges();
    expect(await get(v1.url, `/plain/${c}`)).toMatchObject({ body: `${c} v3`, edge: 'MISS' });
  });

  test('soft: true makes a purged page stale, not gone: Varnish serves it once more during grace while it fetches the new one', async () => {
    install({ purgers: [varnishPurger({ url: v1.url, soft: true })] });
    const a = unique();
    const b = unique();
    for (const p of [`/tagged/${a}`, `/plain/${b}`]) {
      await get(v1.url, p);
      expect((await get(v1.url, p)).edge).toBe('HIT');
    }
    shop.version = 2;
    await dumper.invalidateTags('menu');
    await dumper.flushPurges();
    // The stale page, served from grace (xkey.softpurge keeps the object, expired)...
    expect(await get(v1.url, `/tagged/${a}`)).toMatchObject({ body: `${a} v1`, edge: 'HIT' });
    // ...while Varnish fetches the new one in the background: it arrives without a purge of its own.
    let got = await get(v1.url, `/tagged/${a}`);
    for (let i = 0; i < 100 && got.body !== `${a} v2`; i++) {
      await new Promise((r) => setTimeout(r, 20));
      got = await get(v1.url, `/tagged/${a}`);
    }
    expect(got.body).toBe(`${a} v2`);
    // A page without the tag was not touched.
    expect(await get(v1.url, `/plain/${b}`)).toMatchObject({ body: `${b} v1`, edge: 'HIT' });
  });

  test('a visitor carrying only analytics cookies is a Varnish hit; one with any other cookie goes to the origin', async () => {
    install();
    const a = unique();
    const analytics = { cookie: '_ga=GA1.2.3.4; _gid=GA1.2.5; _hjSession_1=x; __utmz=1' };
    const first = await fetch(`${v1.url}/plain/${a}`, { headers: analytics });
    expect([first.status, await first.text(), first.headers.get('x-edge-cache')]).toEqual([200, `${a} v1`, 'MISS']);
    const second = await fetch(`${v1.url}/plain/${a}`, { headers: analytics });
    expect([await second.text(), second.headers.get('x-edge-cache')]).toEqual([`${a} v1`, 'HIT']);
    expect(shop.renders).toBe(1);
    // A session cookie among them: passed to the origin (Varnish's built-in rule), never a Varnish hit.
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${v1.url}/plain/${a}`, { headers: { cookie: `_ga=GA1.2.3.4; session=abc` } });
      expect([await r.text(), r.headers.get('x-edge-cache')]).toEqual([`${a} v1`, 'MISS']);
    }
  });

  test('a page with more tags than the header takes is purged by any of them, through its coarse tags', async () => {
    install();
    const a = unique();
    const b = unique();
    for (const p of [`/many/${a}`, `/plain/${b}`]) {
      await get(v1.url, p);
      expect((await get(v1.url, p)).edge).toBe('HIT');
    }
    shop.version = 2;
    await dumper.invalidateTags('product:417');
    await dumper.flushPurges();
    expect(await get(v1.url, `/many/${a}`)).toMatchObject({ body: `${a} v2`, edge: 'MISS' });
    expect(await get(v1.url, `/plain/${b}`)).toMatchObject({ body: `${b} v1`, edge: 'HIT' });
  });

  test('invalidatePrefix() purges the pages below a path; invalidateAll() purges every page', async () => {
    install({ prefixInvalidation: true });
    const s = unique();
    const pages = [`/section/${s}/one`, `/section/${s}/two`, `/plain/${s}`];
    for (const p of pages) {
      await get(v1.url, p);
      expect((await get(v1.url, p)).edge).toBe('HIT');
    }
    shop.version = 2;
    await dumper.invalidatePrefix(`/section/${s}`);
    await dumper.flushPurges();
    expect(await get(v1.url, pages[0]!)).toMatchObject({ body: `${s}/one v2`, edge: 'MISS' });
    expect(await get(v1.url, pages[1]!)).toMatchObject({ body: `${s}/two v2`, edge: 'MISS' });
    expect(await get(v1.url, pages[2]!)).toMatchObject({ body: `${s} v1`, edge: 'HIT' });
    shop.version = 3;
    await dumper.invalidateAll();
    await dumper.flushPurges();
    expect(await get(v1.url, pages[2]!)).toMatchObject({ body: `${s} v3`, edge: 'MISS' });
  });

  test('the race: a render that read the data before a write and reached Varnish after its purge is purged too', async () => {
    install();
    const slowPath = `/slow/${unique()}`;
    let release!: () => void;
    shop.gate = new Promise<void>((r) => (release = r));
    const read = new Promise<void>((r) => (shop.onRead = r));
    // An edge miss whose render reads version 1 and then waits...
    const slow = get(v1.url, slowPath);
    await read;
    // ...while a write commits and its invalidation (and first purge) goes out...
    shop.version = 2;
    await dumper.invalidate(slowPath);
    // (Both instances have acknowledged that first purge, each from its own queue: it found nothing to remove.)
    for (let i = 0; i < 500 && dumper.purgeStats.sent < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(dumper.purgeStats.sent).toBe(2);
    // ...and then the old page reaches Varnish, which stores it: the first purge came too early.
    release();
    expect(await slow).toMatchObject({ body: `${slowPath} v1`, edge: 'MISS' });
    shop.gate = undefined;
    // The origin's store refused the stale page; the second purge removes Varnish's copy.
    await dumper.flushPurges();
    expect(await get(v1.url, slowPath)).toMatchObject({ body: `${slowPath} v2`, edge: 'MISS' });
    expect((await get(v1.url, slowPath)).edge).toBe('HIT');
  });

  test('a render slower than half the race window is sent no-store for the edge: never kept past the bound', async () => {
    install({ edge: { raceWindow: 400 } });
    const slowPath = `/slow/${unique()}`;
    shop.gate = new Promise((r) => setTimeout(r, 300));
    expect(await get(v1.url, slowPath)).toMatchObject({ body: `${slowPath} v1`, edge: 'MISS' });
    shop.gate = undefined;
    // Not kept by Varnish; the origin kept it (its own store closes the race by itself).
    const again = await get(v1.url, slowPath);
    expect(again).toMatchObject({ body: `${slowPath} v1`, edge: 'MISS', origin: 'HIT' });
    // Served from the origin's store, it is fresh for the edge again.
    expect((await get(v1.url, slowPath)).edge).toBe('HIT');
  });

  test('a write through the TypeORM integration purges the pages that show the row', async () => {
    const db = await sqliteTarget.open(entities);
    const handle = { close: () => {} };
    try {
      dumper = createDumper({ logger: false, purgers: [varnishPurger({ url: v1.url })], edge: { raceWindow: 1000 } });
      register(dumper);
      Object.assign(handle, typeormDumper(dumper, db.dataSource));
      const rows = await seed(db.dataSource);
      const render = shopApp(db.dataSource);
      current = withDumper(dumper, async (req, res) => {
        const page = await render(req.url ?? '/');
        res.statusCode = page.status;
        res.setHeader('content-type', 'text/plain');
        res.end(page.body);
      });
      // Other tests' pages of these paths are stale in Varnish: start from none.
      await dumper.invalidateAll();
      await dumper.flushPurges();
      for (const p of ['/flavours/vanilla/', '/flavours/chocolate/', '/about/']) {
        await get(v1.url, p);
        expect((await get(v1.url, p)).edge).toBe('HIT');
      }
      await db.dataSource.getRepository(Flavour).save({ ...rows.vanilla, name: 'Vanilla Bean' });
      await dumper.flushPurges();
      expect(await get(v1.url, '/flavours/vanilla/')).toMatchObject({ edge: 'MISS' });
      expect((await get(v1.url, '/flavours/vanilla/')).body).toMatch(/^Vanilla Bean \|/);
      expect((await get(v1.url, '/flavours/chocolate/')).edge).toBe('HIT');
      expect((await get(v1.url, '/about/')).edge).toBe('HIT');
    } finally {
      handle.close();
      await dumper.close();
      await db.close();
    }
  });
});

test('the shipped VCL removes exactly the cookies page-dumper ignores by default (DEFAULT_IGNORED_COOKIES)', () => {
  const vcl = readFileSync(SHIPPED_VCL, 'utf8');
  const names = /regsuball\("; " \+ req\.http\.Cookie, ";\\s\*\(([^)]*)\)=/.exec(vcl)?.[1]?.split('|');
  expect(names).toEqual(DEFAULT_IGNORED_COOKIES.map((glob) => glob.replaceAll('*', '[^=;]*')));
});
