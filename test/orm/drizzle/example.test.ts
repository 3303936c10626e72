/**
 * The Drizzle demo site (examples/ice-cream-drizzle) works end to end, as the TypeORM, Prisma and
 * Kysely ones do: pages are MISS then HIT, and every admin edit (a column, a slug whose old URL
 * goes, links of the junction table removed and added, a create in a transaction, a delete whose
 * links cascade) turns exactly the pages that show the changed rows back into a MISS with the new
 * data. And `node examples/ice-cream-drizzle/server.js` starts and serves through the cache.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { DemoApp } from '../../../examples/ice-cream-drizzle/server.js';
import type { Mounted } from '../../support/behaviour.js';
import { listen } from '../../support/listen.js';

const root = resolve(import.meta.dirname, '../../..');
let dir: string;
let demo: DemoApp;
let site: Mounted;

beforeAll(async () => {
  // The demo imports 'page-dumper' by name (dist/): build it.
  execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
  dir = mkdtempSync(join(tmpdir(), 'page-dumper-drizzle-demo-'));
  // Imported only now: a static import would load dist/ before the build above.
  const { createApp } = await import('../../../examples/ice-cream-drizzle/server.js');
  demo = await createApp({ database: join(dir, 'demo.sqlite'), logger: false });
  site = await listen(demo.app);
}, 240_000);

afterAll(async () => {
  await site?.close();
  await demo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Page {
  status: number;
  cache: string | null;
  body: string;
  location: string | null;
}

async function get(path: string, method = 'GET'): Promise<Page> {
  const res = await fetch(site.url + path, { method, redirect: 'manual' });
  return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text(), location: res.headers.get('location') };
}

/** Posts an admin form the way a browser does (urlencoded) and expects the 303 back to /admin/. */
async function post(path: string, form: Record<string, string | string[]>): Promise<Page> {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) for (const v of [value].flat()) body.append(name, v);
  const res = await fetch(site.url + path, { method: 'POST', body, redirect: 'manual' });
  const page = { status: res.status, cache: res.headers.get('x-cache'), body: await res.text(), location: res.headers.get('location') };
  expect(page.status, `POST ${path}: ${page.body}`).toBe(303);
  expect(page.location).toMatch(/^\/admin\//);
  return page;
}

const renderedAt = (body: string) => /<time class="rendered-at" datetime="([^"]+)"/.exec(body)?.[1];

/** Gets a page until it is cached: the second request must be a HIT. */
async function warm(path: string): Promise<Page> {
  await get(path);
  const page = await get(path);
  expect(page.cache, path).toBe('HIT');
  return page;
}

async function idOf(slug: string): Promise<number> {
  const { iceCream } = demo.schema;
  const [row] = await demo.db.select({ id: iceCream.id }).from(iceCream).where(eq(iceCream.slug, slug));
  if (!row) throw new Error(`no flavour ${slug}`);
  return row.id;
}

async function sizeIds(...slugs: string[]): Promise<string[]> {
  const { size } = demo.schema;
  return Promise.all(
    slugs.map(async (slug) => {
      const [row] = await demo.db.select({ id: size.id }).from(size).where(eq(size.slug, slug));
      if (!row) throw new Error(`no size ${slug}`);
      return String(row.id);
    }),
  );
}

describe('the ice cream demo on Drizzle', () => {
  test('/ redirects to the list of flavours', async () => {
    const page = await get('/');
    expect(page.status).toBe(302);
    expect(page.location).toBe('/ice-cream/');
  });

  test('the list page is a MISS, then a HIT with the same body and rendered-at time', async () => {
    const first = await get('/ice-cream/');
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    expect(first.body).toContain('Vanilla');
    expect(renderedAt(first.body)).toMatch(/^\d{4}-\d\d-\d\dT/);
    const second = await get('/ice-cream/');
    expect(second.cache).toBe('HIT');
    expect(second.body).toBe(first.body);
    expect(renderedAt(second.body)).toBe(renderedAt(first.body));
  });

  test('a detail page is a MISS, then a HIT, and shows its sizes', async () => {
    const first = await get('/ice-cream/vanilla/');
    expect(first.cache).toBe('MISS');
    expect(first.body).toContain('<h1>Vanilla</h1>');
    expect(first.body).toContain('href="/sizes/tub/"');
    const second = await get('/ice-cream/vanilla/');
    expect(second.cache).toBe('HIT');
    expect(second.body).toBe(first.body);
    const size = await get('/sizes/tub/');
    expect(size.cache).toBe('MISS');
    expect(size.body).toContain('href="/ice-cream/vanilla/"');
    expect((await get('/sizes/')).status).toBe(200);
  });

  test('unknown slugs are 404 and never cached', async () => {
    for (const path of ['/ice-cream/rum-raisin/', '/sizes/bucket/']) {
      for (let i = 0; i < 2; i++) {
        const page = await get(path);
        expect(page.status).toBe(404);
        expect(page.cache).toBe('MISS');
      }
    }
  });

  test('admin pages bypass the cache', async () => {
    for (let i = 0; i < 2; i++) {
      const page = await get('/admin/');
      expect(page.status).toBe(200);
      expect(page.cache).toBe('BYPASS');
    }
    // Express routes "/admin" and "/ADMIN" to the same admin: the default ignore covers them too.
    for (const spelling of ['/admin', '/ADMIN/']) {
      const bare = await get(spelling);
      expect(bare.status).toBe(200);
      expect(bare.cache).toBe('BYPASS');
    }
  });

  test('editing a flavour invalidates the list, its page and its sizes’ pages, and nothing else', async () => {
    const id = await idOf('chocolate');
    const before = await warm('/ice-cream/chocolate/');
    await warm('/ice-cream/');
    await warm('/sizes/kids/');
    await warm('/ice-cream/strawberry/');

    const res = await post(`/admin/ice-cream/${id}`, { name: 'Dark chocolate <70%>', description: 'Now darker.' });
    expect(res.cache).toBe('BYPASS');

    const detail = await get('/ice-cream/chocolate/');
    expect(detail.cache).toBe('MISS');
    expect(detail.body).toContain('<h1>Dark chocolate &lt;70%&gt;</h1>');
    expect(detail.body).toContain('Now darker.');
    expect(renderedAt(detail.body)).not.toBe(renderedAt(before.body));
    const list = await get('/ice-cream/');
    expect(list.cache).toBe('MISS');
    expect(list.body).toContain('Dark chocolate &lt;70%&gt;');
    const size = await get('/sizes/kids/');
    expect(size.cache).toBe('MISS');
    expect(size.body).toContain('Dark chocolate &lt;70%&gt;');
    // A page that does not show chocolate is still served from the cache.
    expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
    // And the new pages are cached again.
    expect((await get('/ice-cream/chocolate/')).cache).toBe('HIT');
  });

  test('toggling sizes (many-to-many) invalidates the flavour and the sizes added and removed', async () => {
    const id = await idOf('strawberry');
    await warm('/ice-cream/strawberry/');
    const added = await warm('/sizes/kids/');
    expect(added.body).not.toContain('Strawberry');
    const removed = await warm('/sizes/single/');
    expect(removed.body).toContain('Strawberry');
    await warm('/sizes/tub/');

    // strawberry was single + double; now kids + double.
    await post(`/admin/ice-cream/${id}/sizes`, { size: await sizeIds('kids', 'double') });

    const detail = await get('/ice-cream/strawberry/');
    expect(detail.cache).toBe('MISS');
    expect(detail.body).toContain('href="/sizes/kids/"');
    expect(detail.body).not.toContain('href="/sizes/single/"');
    const kids = await get('/sizes/kids/');
    expect(kids.cache).toBe('MISS');
    expect(kids.body).toContain('href="/ice-cream/strawberry/"');
    const single = await get('/sizes/single/');
    expect(single.cache).toBe('MISS');
    expect(single.body).not.toContain('Strawberry');
    // The tub never had strawberry: untouched.
    expect((await get('/sizes/tub/')).cache).toBe('HIT');
  });

  test('changing a flavour’s slug invalidates its old URL (now a 404) as well as the new one', async () => {
    const id = await idOf('vanilla');
    const old = await warm('/ice-cream/vanilla/');
    expect(old.status).toBe(200);
    // Not cached before: a 404 (never stored); after, the renamed flavour.
    expect((await get('/ice-cream/vanilla-bean/')).status).toBe(404);
    await warm('/ice-cream/');
    await warm('/sizes/tub/');
    await warm('/ice-cream/strawberry/');

    await post(`/admin/ice-cream/${id}`, { name: 'Vanilla bean', description: 'Now with the seeds.', slug: 'vanilla-bean' });

    for (let i = 0; i < 2; i++) {
      const gone = await get('/ice-cream/vanilla/');
      expect(gone.status).toBe(404);
      expect(gone.cache).toBe('MISS');
    }
    const renamed = await get('/ice-cream/vanilla-bean/');
    expect([renamed.status, renamed.cache]).toEqual([200, 'MISS']);
    expect(renamed.body).toContain('<h1>Vanilla bean</h1>');
    expect((await get('/ice-cream/vanilla-bean/')).cache).toBe('HIT');
    for (const path of ['/ice-cream/', '/sizes/tub/']) {
      const page = await get(path);
      expect(page.cache, path).toBe('MISS');
      expect(page.body, path).toContain('href="/ice-cream/vanilla-bean/"');
      expect(page.body, path).not.toContain('href="/ice-cream/vanilla/"');
    }
    expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');

    // And back, so the tests below find vanilla where they expect it.
    await post(`/admin/ice-cream/${id}`, { name: 'Vanilla', description: 'Madagascar vanilla pods steeped overnight in cream.', slug: 'vanilla' });
    expect((await get('/ice-cream/vanilla-bean/')).status).toBe(404);
    expect((await get('/ice-cream/vanilla/')).body).toContain('<h1>Vanilla</h1>');
  });

  test('a link of the junction table inserted or deleted through the wrapped database reaches both sides', async () => {
    const { iceCreamSize } = demo.schema;
    const iceCreamId = await idOf('chocolate');
    const sizeId = Number((await sizeIds('single'))[0]);
    await warm('/ice-cream/chocolate/');
    await warm('/sizes/single/');
    await warm('/ice-cream/strawberry/');
    await warm('/sizes/tub/');

    await demo.db.delete(iceCreamSize).where(and(eq(iceCreamSize.iceCreamId, iceCreamId), eq(iceCreamSize.sizeId, sizeId)));
    const detail = await get('/ice-cream/chocolate/');
    expect(detail.cache).toBe('MISS');
    expect(detail.body).not.toContain('href="/sizes/single/"');
    const single = await get('/sizes/single/');
    expect(single.cache).toBe('MISS');
    expect(single.body).not.toContain('href="/ice-cream/chocolate/"');
    // Neither side of another link: untouched.
    expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
    expect((await get('/sizes/tub/')).cache).toBe('HIT');

    await warm('/ice-cream/chocolate/');
    await warm('/sizes/single/');
    await demo.db.insert(iceCreamSize).values({ iceCreamId, sizeId });
    const back = await get('/ice-cream/chocolate/');
    expect(back.cache).toBe('MISS');
    expect(back.body).toContain('href="/sizes/single/"');
    const singleBack = await get('/sizes/single/');
    expect(singleBack.cache).toBe('MISS');
    expect(singleBack.body).toContain('href="/ice-cream/chocolate/"');
  });

  test('renaming a size invalidates every flavour page that lists it', async () => {
    const [id] = await sizeIds('double');
    await warm('/ice-cream/vanilla/');
    await warm('/sizes/double/');
    await warm('/sizes/');
    await post(`/admin/sizes/${id}`, { name: 'Two scoops' });
    for (const path of ['/ice-cream/vanilla/', '/sizes/double/', '/sizes/', '/ice-cream/']) {
      const page = await get(path);
      expect(page.cache, path).toBe('MISS');
      expect(page.body, path).toContain('Two scoops');
    }
  });

  test('creating a flavour invalidates the list and the pages of its sizes', async () => {
    await warm('/ice-cream/');
    await warm('/sizes/tub/');
    await post('/admin/ice-cream/', { name: 'Rum & raisin', description: 'For grown-ups.', size: await sizeIds('tub') });
    const list = await get('/ice-cream/');
    expect(list.cache).toBe('MISS');
    expect(list.body).toContain('href="/ice-cream/rum-raisin/"');
    const tub = await get('/sizes/tub/');
    expect(tub.cache).toBe('MISS');
    expect(tub.body).toContain('Rum &amp; raisin');
    const detail = await get('/ice-cream/rum-raisin/');
    expect(detail.status).toBe(200);
    expect(detail.body).toContain('For grown-ups.');
  });

  test('deleting a flavour makes its page 404 and drops it from the list and its sizes’ pages', async () => {
    const id = await idOf('pistachio');
    await warm('/ice-cream/pistachio/');
    await warm('/ice-cream/');
    const double = await warm('/sizes/double/');
    expect(double.body).toContain('Pistachio');

    await post(`/admin/ice-cream/${id}/delete`, {});

    for (let i = 0; i < 2; i++) {
      const gone = await get('/ice-cream/pistachio/');
      expect(gone.status).toBe(404);
      expect(gone.cache).toBe('MISS');
    }
    const list = await get('/ice-cream/');
    expect(list.cache).toBe('MISS');
    expect(list.body).not.toContain('Pistachio');
    const size = await get('/sizes/double/');
    expect(size.cache).toBe('MISS');
    expect(size.body).not.toContain('Pistachio');
  });

  test('a flavour deleted through the wrapped Drizzle database elsewhere still invalidates its pages', async () => {
    // The wrapper reads the row before the delete, and dependentPaths reads its links (which the
    // database deletes with it) then: after it there is nothing left to tell which pages showed it.
    const id = await idOf('mint-chip');
    await warm('/ice-cream/mint-chip/');
    await warm('/sizes/kids/');
    const { iceCream } = demo.schema;
    await demo.db.delete(iceCream).where(eq(iceCream.id, id));
    expect((await get('/ice-cream/mint-chip/')).status).toBe(404);
    const kids = await get('/sizes/kids/');
    expect(kids.cache).toBe('MISS');
    expect(kids.body).not.toContain('Mint');
  });
});

test('`node examples/ice-cream-drizzle/server.js` prints its URL and serves MISS then HIT', async () => {
  const child = spawn(process.execPath, [join(root, 'examples/ice-cream-drizzle/server.js')], {
    cwd: root,
    env: { ...process.env, PORT: '0', DATABASE: join(dir, 'child.sqlite'), DEBUG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed within 20 s; stderr: ${stderr}`)), 20_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        const m = /^page-dumper Drizzle demo: (http:\/\/localhost:\d+\/ice-cream\/)\n/.exec(stdout);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1]!);
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited with ${code}; stderr: ${stderr}`)));
    });
    const target = url.replace('localhost', '127.0.0.1');
    const a = await fetch(target);
    const aBody = await a.text();
    const b = await fetch(target);
    expect([a.status, a.headers.get('x-cache')]).toEqual([200, 'MISS']);
    expect([b.status, b.headers.get('x-cache')]).toEqual([200, 'HIT']);
    expect(await b.text()).toBe(aBody);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toBe(`page-dumper Drizzle demo: ${url}\n`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}, 60_000);
