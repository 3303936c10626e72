/**
 * Transactions found through CLS (`Sequelize.useCLS(namespace)`): writes that pass no
 * `transaction` option join the one of `sequelize.transaction(callback)`, and page-dumper finds
 * it the way Sequelize does (the namespace's 'transaction'), for the hooks and for increments.
 * cls-hooked is not installed here: the namespace is a small one over AsyncLocalStorage (support.ts), with the
 * `run`, `bind`, `get` and `set` that Sequelize 6 uses. `useCLS` is global to the Sequelize
 * class, so this file (its own module graph under vitest) turns it off again at the end.
 */
import { Sequelize } from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumper } from '../../../src/orm/sequelize/index.js';
import { openShop, seedShop, shopApp, startShop, type Shop } from './shop.js';
import { clsNamespace as namespace, databases, recordingLogger, Site, type Database } from './support.js';

type Rows = Awaited<ReturnType<typeof seedShop>>;

const targets = await databases();

beforeAll(() => {
  Sequelize.useCLS(namespace());
});
afterAll(() => {
  (Sequelize as unknown as { _cls?: unknown })._cls = undefined;
});

describe.each(targets)('Sequelize transactions through CLS on $name', (target) => {
  let db: Database;
  let shop: Shop;
  let rows: Rows;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;

  beforeAll(async () => {
    ({ db, shop } = await openShop(target));
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear(shop.all);
    rows = await seedShop(shop);
    ({ log, dumper, handle, site } = await startShop(db, shop));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
    expect(log.warnings).toEqual([]);
  });

  const writes: Array<[string, string, (shop: Shop, rows: Rows) => Promise<unknown>, string]> = [
    ['instance.update()', '/flavours/mint/', (_, r) => r.mint.update({ name: 'Mint leaf' }), 'Mint leaf |'],
    ['Model.update() by where', '/flavours/mint/', (s) => s.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' } }), 'Mint leaf |'],
    ['Model.increment() (no hook: the query interface)', '/flavours/mint/', (s) => s.Flavour.increment('stock', { where: { slug: 'mint' } }), 'stock: 6 |'],
    ['the addX mixin', '/sizes/large/', (_, r) => r.mint.addSize(r.large), 'flavours: Chocolate,Mint |'],
  ];

  test.each(writes)('%s without a transaction option joins the CLS transaction, and is invalidated again at its commit', async (_, page, write, text) => {
    await site.warm(page, '/about/');
    let inside: unknown;
    await db.sequelize.transaction(async (t) => {
      await write(shop, rows);
      inside = t;
      // The write is in the transaction: another connection (the site's request, outside the
      // CLS context) still reads the committed rows, and stores that page.
      const during = await site.get(page);
      expect(during.cache).toBe('MISS');
      expect(during.body).not.toContain(text);
      expect((await site.get(page)).cache).toBe('HIT');
    });
    expect(inside).toBeDefined();
    const after = await site.get(page);
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain(text);
    await site.expectHit('/about/');
  });

  test('a rollback of the CLS transaction fires no second invalidation', async () => {
    await site.warm('/flavours/mint/');
    await expect(
      db.sequelize.transaction(async () => {
        await shop.Flavour.increment('stock', { where: { slug: 'mint' } });
        await site.warm('/flavours/mint/');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await site.get('/flavours/mint/')).toMatchObject({ cache: 'HIT', body: expect.stringContaining('stock: 5 |') });
  });

  test('dependentPaths queries join the transaction: a page named only by the uncommitted rows is reached', async () => {
    // A size's page lists its flavours; the size's dependentPaths below names them by a query.
    handle.close();
    await dumper.close();
    dumper = createDumper({ logger: log.logger });
    dumper.register(shop.Size, {
      async dependentPaths(size: InstanceType<Shop['Size']>) {
        return (await size.getFlavours()).map((f) => `/flavours/${f.slug}/`);
      },
    });
    handle = sequelizeDumper(dumper, db.sequelize);
    await site.close();
    site = await Site.start(dumper, db.counter, shopApp(shop));
    await site.warm('/flavours/vanilla/');
    await db.sequelize.transaction(async () => {
      await rows.vanilla.addSize(rows.large, { hooks: false });
      // Only this transaction sees vanilla in the large size.
      await rows.large.update({ name: 'Large tub' });
    });
    expect((await site.get('/flavours/vanilla/')).body).toContain('sizes: Large tub |');
  });
});
