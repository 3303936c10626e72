/**
 * The ice-cream site suite: one set of end-to-end checks that every ice-cream example
 * (examples/ice-cream on TypeORM, examples/ice-cream-prisma, -drizzle, -kysely, ...) must pass.
 * Pages are MISS then HIT; every admin edit (a column, the sizes of a flavour, a create, a delete)
 * and every write made through the ORM outside the admin (a delete, an update by slug, a link of
 * the flavour–size relation removed and added) turns exactly the pages that show the changed rows
 * back into a MISS with the new data; and `node examples/<example>/server.js` starts, prints its
 * URL and serves through the cache.
 *
 * An example's test file calls it once:
 *
 * ```ts
 * import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';
 * import type { DemoApp } from '../../../examples/ice-cream-foo/server.js';
 *
 * iceCreamSiteSuite<DemoApp>({
 *   name: 'the ice cream demo on Foo',
 *   example: 'ice-cream-foo',
 *   banner: 'page-dumper Foo demo',
 *   orm: 'Foo',
 *   // A dynamic import: server.js imports 'page-dumper' (dist/), which the suite builds first.
 *   start: async (options) => (await import('../../../examples/ice-cream-foo/server.js')).createApp(options),
 *   writes: {
 *     deleteFlavour: (demo, id) => ...,
 *     renameFlavour: (demo, slug, name) => ...,
 *     removeSize: (demo, iceCreamId, sizeId) => ...,
 *     addSize: (demo, iceCreamId, sizeId) => ...,
 *   },
 *   // linkWritesSpareOtherSizes: true,  // the sizes are rows of a junction table (see below)
 * });
 * ```
 *
 * The other options say how an example really differs: `prepare` (e.g. generate a Prisma client
 * before the build), `adminEditsSlug`, `linkWritesSpareOtherSizes`, and `more` for checks of one
 * example only.
 *
 * What the suite expects of an example: the seed data and the pages of examples/ice-cream (its
 * db.js and views.js, which the other examples reuse); the admin routes of examples/ice-cream/admin.js
 * (`POST /admin/ice-cream/`, `/admin/ice-cream/:id`, `/admin/ice-cream/:id/sizes`,
 * `/admin/ice-cream/:id/delete`, `/admin/sizes/:id`, each answering 303 to /admin/); a server.js
 * that exports `createApp({ database, logger })` and, run as a program, reads PORT and DATABASE,
 * prints `<banner>: http://localhost:<port>/ice-cream/` and exits 0 on SIGTERM. Row ids are read
 * from the admin page (each flavour's and size's row links to its public page), so an example
 * needs no lookup code of its own.
 *
 * The tests share one database and run in order: each starts from what the ones before left.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Mounted } from './behaviour.js';
import { listen } from './listen.js';

const root = resolve(import.meta.dirname, '../..');

/** What an example's `createApp()` resolves to, as far as the suite needs it. */
export interface IceCreamApp {
  /** The Express app (any node request listener). */
  app: http.RequestListener;
  /** Closes the dumper and the database (not a server: the suite owns that). */
  close(): Promise<void>;
}

/**
 * Writes made through the example's ORM, as wired to page-dumper, outside the admin. Each one
 * resolves once its pages are invalidated (await the integration's settle helper if it has one).
 */
export interface IceCreamWrites<App> {
  /** Deletes a flavour by id: the integration must find its pages (its URL, its sizes' pages) before the row goes. */
  deleteFlavour(demo: App, id: number): Promise<void>;
  /** Renames the flavour with this slug, selected by slug (a criteria update, not a loaded row). */
  renameFlavour(demo: App, slug: string, name: string): Promise<void>;
  /** Removes one size from a flavour (a row of the junction table, or the ORM's relation API). */
  removeSize(demo: App, iceCreamId: number, sizeId: number): Promise<void>;
  /** Adds one size to a flavour. */
  addSize(demo: App, iceCreamId: number, sizeId: number): Promise<void>;
}

/** What the suite hands to `more`, for checks of one example only. */
export interface IceCreamSite<App> {
  /** The running example (after beforeAll). */
  demo(): App;
  get(path: string, method?: string): Promise<Page>;
  /** Posts an admin form (urlencoded) and expects the 303 back to /admin/. */
  post(path: string, form: Record<string, string | string[]>): Promise<Page>;
  /** Gets a page until it is cached: the second request must be a HIT. */
  warm(path: string): Promise<Page>;
  /** A flavour's id, read from the admin page. */
  iceCreamId(slug: string): Promise<number>;
  /** A size's id, read from the admin page. */
  sizeId(slug: string): Promise<number>;
}

export interface IceCreamSiteOptions<App extends IceCreamApp> {
  /** The describe block's name, e.g. 'the ice cream demo on Prisma'. */
  name: string;
  /** The example's folder under examples/, e.g. 'ice-cream-prisma'. */
  example: string;
  /** What `node examples/<example>/server.js` prints before its URL, e.g. 'page-dumper Prisma demo'. */
  banner: string;
  /** The ORM the writes go through, for test names: 'TypeORM', 'the Prisma Client', ... */
  orm: string;
  /** Runs before the build in beforeAll, e.g. to generate a Prisma client. */
  prepare?: () => void;
  /**
   * Starts the example: `createApp(options)` from its server.js, imported here and not at the top
   * of the test file (server.js imports 'page-dumper', i.e. dist/, which the suite builds first).
   */
  start(options: { database: string; logger: false }): Promise<App>;
  writes: IceCreamWrites<App>;
  /**
   * The admin's flavour edit takes a `slug` field and changes the URL (examples/ice-cream-drizzle):
   * checks that the old URL is invalidated (a 404 after) as well as the new one. @default false
   */
  adminEditsSlug?: boolean;
  /**
   * A size removed from or added to a flavour invalidates the pages of that flavour and that size
   * (and the list), and leaves the pages of the flavour's other sizes cached: true where the links
   * are rows of a junction table registered with dependentPaths of their own (Drizzle, Kysely).
   * False where the write changes the flavour's relation, which invalidates all of the flavour's
   * dependentPaths, its other sizes' pages included (TypeORM, Prisma). @default false
   */
  linkWritesSpareOtherSizes?: boolean;
  /** Registers checks of this example only, run after the shared ones (in the same describe block). */
  more?: (site: IceCreamSite<App>) => void;
}

export interface Page {
  status: number;
  cache: string | null;
  body: string;
  location: string | null;
}

const renderedAt = (body: string) => /<time class="rendered-at" datetime="([^"]+)"/.exec(body)?.[1];

export function iceCreamSiteSuite<App extends IceCreamApp>(options: IceCreamSiteOptions<App>): void {
  const { example, banner, orm, writes } = options;

  describe(options.name, () => {
    let dir: string;
    let demo: App;
    let site: Mounted;

    beforeAll(async () => {
      options.prepare?.();
      // The example imports 'page-dumper' by name, which resolves to dist/: build it unless up to date.
      execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
      dir = mkdtempSync(join(tmpdir(), `page-dumper-${example}-`));
      demo = await options.start({ database: join(dir, 'demo.sqlite'), logger: false });
      site = await listen(demo.app);
    }, 240_000);

    afterAll(async () => {
      await site?.close();
      await demo?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function get(path: string, method = 'GET'): Promise<Page> {
      const res = await fetch(site.url + path, { method, redirect: 'manual' });
      return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text(), location: res.headers.get('location') };
    }

    async function post(path: string, form: Record<string, string | string[]>): Promise<Page> {
      const body = new URLSearchParams();
      for (const [name, value] of Object.entries(form)) for (const v of [value].flat()) body.append(name, v);
      const res = await fetch(site.url + path, { method: 'POST', body, redirect: 'manual' });
      const page = { status: res.status, cache: res.headers.get('x-cache'), body: await res.text(), location: res.headers.get('location') };
      expect(page.status, `POST ${path}: ${page.body}`).toBe(303);
      expect(page.location).toMatch(/^\/admin\//);
      return page;
    }

    async function warm(path: string): Promise<Page> {
      await get(path);
      const page = await get(path);
      expect(page.cache, path).toBe('HIT');
      return page;
    }

    /** The id of the admin table row (`<tr id="<kind>-<id>">`) that links to `href`. */
    async function adminId(kind: 'ice-cream' | 'size', href: string): Promise<number> {
      const admin = await get('/admin/');
      expect(admin.status).toBe(200);
      for (const row of admin.body.matchAll(new RegExp(`<tr id="${kind}-(\\d+)">([\\s\\S]*?)</tr>`, 'g'))) {
        if (row[2]!.includes(`href="${href}"`)) return Number(row[1]);
      }
      throw new Error(`no ${kind} row links to ${href} on /admin/`);
    }
    const iceCreamId = (slug: string) => adminId('ice-cream', `/ice-cream/${slug}/`);
    const sizeId = (slug: string) => adminId('size', `/sizes/${slug}/`);
    const sizeIds = (...slugs: string[]) => Promise.all(slugs.map(async (slug) => String(await sizeId(slug))));

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
      const id = await iceCreamId('chocolate');
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
      const id = await iceCreamId('strawberry');
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

    if (options.adminEditsSlug) {
      test('changing a flavour’s slug invalidates its old URL (now a 404) as well as the new one', async () => {
        const id = await iceCreamId('vanilla');
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
    }

    test(`a size removed from a flavour and added again through ${orm}, outside the admin, reaches both sides`, async () => {
      const flavour = await iceCreamId('chocolate');
      const single = await sizeId('single');
      await warm('/ice-cream/chocolate/');
      await warm('/sizes/single/');
      await warm('/ice-cream/');
      await warm('/ice-cream/strawberry/');
      await warm('/sizes/tub/');

      await writes.removeSize(demo, flavour, single);
      const detail = await get('/ice-cream/chocolate/');
      expect(detail.cache).toBe('MISS');
      expect(detail.body).not.toContain('href="/sizes/single/"');
      const size = await get('/sizes/single/');
      expect(size.cache).toBe('MISS');
      expect(size.body).not.toContain('href="/ice-cream/chocolate/"');
      // The list shows each flavour's sizes.
      expect((await get('/ice-cream/')).cache).toBe('MISS');
      // Neither side of the link: untouched.
      expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
      // The page of another of chocolate's sizes (tub), where the link is a row of its own.
      if (options.linkWritesSpareOtherSizes) expect((await get('/sizes/tub/')).cache).toBe('HIT');

      await warm('/ice-cream/chocolate/');
      await warm('/sizes/single/');
      await warm('/ice-cream/');
      await writes.addSize(demo, flavour, single);
      const back = await get('/ice-cream/chocolate/');
      expect(back.cache).toBe('MISS');
      expect(back.body).toContain('href="/sizes/single/"');
      const sizeBack = await get('/sizes/single/');
      expect(sizeBack.cache).toBe('MISS');
      expect(sizeBack.body).toContain('href="/ice-cream/chocolate/"');
      expect((await get('/ice-cream/')).cache).toBe('MISS');
      expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
      if (options.linkWritesSpareOtherSizes) expect((await get('/sizes/tub/')).cache).toBe('HIT');
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
      const id = await iceCreamId('pistachio');
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

    test(`a flavour deleted through ${orm} outside the admin still invalidates its pages`, async () => {
      // The integration reads the row (slug, sizes) before the delete: after it there is nothing
      // left to tell which pages showed it.
      const id = await iceCreamId('mint-chip');
      await warm('/ice-cream/mint-chip/');
      await warm('/sizes/kids/');
      await writes.deleteFlavour(demo, id);
      expect((await get('/ice-cream/mint-chip/')).status).toBe(404);
      const kids = await get('/sizes/kids/');
      expect(kids.cache).toBe('MISS');
      expect(kids.body).not.toContain('Mint');
    });

    test(`a flavour renamed through ${orm} by its slug, outside the admin, invalidates its pages`, async () => {
      await warm('/ice-cream/vanilla/');
      await warm('/ice-cream/');
      await warm('/sizes/kids/');
      await warm('/ice-cream/strawberry/');
      await writes.renameFlavour(demo, 'vanilla', 'Bourbon vanilla');
      for (const path of ['/ice-cream/vanilla/', '/ice-cream/', '/sizes/kids/']) {
        const page = await get(path);
        expect(page.cache, path).toBe('MISS');
        expect(page.body, path).toContain('Bourbon vanilla');
      }
      expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
    });

    options.more?.({ demo: () => demo, get, post, warm, iceCreamId, sizeId });

    test(`\`node examples/${example}/server.js\` prints its URL and serves MISS then HIT`, async () => {
      const child = spawn(process.execPath, [join(root, 'examples', example, 'server.js')], {
        cwd: root,
        env: { ...process.env, PORT: '0', DATABASE: join(dir, 'child.sqlite'), DEBUG: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const printed = new RegExp(`^${banner.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (http://localhost:\\d+/ice-cream/)\\n`);
      try {
        const url = await new Promise<string>((resolveUrl, reject) => {
          const timer = setTimeout(() => reject(new Error(`no URL printed within 20 s; stdout: ${stdout}; stderr: ${stderr}`)), 20_000);
          child.stdout.setEncoding('utf8').on('data', (d: string) => {
            stdout += d;
            const m = printed.exec(stdout);
            if (m) {
              clearTimeout(timer);
              resolveUrl(m[1]!);
            }
          });
          child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`server exited with ${code}; stderr: ${stderr}`));
          });
        });
        expect(url).not.toMatch(/:0\//);
        const target = url.replace('localhost', '127.0.0.1');
        const a = await fetch(target);
        const aBody = await a.text();
        const b = await fetch(target);
        const bBody = await b.text();
        expect([a.status, a.headers.get('x-cache')]).toEqual([200, 'MISS']);
        expect([b.status, b.headers.get('x-cache')]).toEqual([200, 'HIT']);
        expect(bBody).toBe(aBody);
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(stdout).toBe(`${banner}: ${url}\n`);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    }, 60_000);
  });
}
