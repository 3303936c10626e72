/**
 * Transactions: a write invalidates its pages when it happens and again when the outermost
 * transaction commits (Sequelize's `afterCommit`), so a page that a concurrent reader renders
 * between the two (from the committed rows, on another connection) does not survive the commit.
 * Managed (`sequelize.transaction(async (t) => ...)`) and unmanaged (`await t.commit()`)
 * transactions, savepoints, rollbacks (nothing more, except where readers share the writer's
 * connection: SQLite in memory). The reader is a real HTTP request through `withDumper`.
 * (CLS transactions: cls.test.ts.)
 */
import { Sequelize, type Transaction } from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';
import { defineShop, openShop, registerShop, seedShop, shopApp, startShop, type Shop } from './shop.js';
import { Counter, databases, recordingLogger, Site, type Database } from './support.js';

type Rows = Awaited<ReturnType<typeof seedShop>>;

interface Case {
  name: string;
  page: string;
  write(shop: Shop, rows: Rows, transaction: Transaction): Promise<unknown>;
  /** The page once the write has committed. */
  after: { status: number; contains?: string; lacks?: string };
}

const cases: Case[] = [
  {
    name: 'instance.save()',
    page: '/flavours/mint/',
    write: (_, r, transaction) => r.mint.update({ name: 'Mint leaf' }, { transaction }),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'Model.update() by where',
    page: '/flavours/mint/',
    write: (s, _, transaction) => s.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' }, transaction }),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'instance.destroy()',
    page: '/flavours/chocolate/',
    write: (_, r, transaction) => r.chocolate.destroy({ transaction }),
    after: { status: 404 },
  },
  {
    name: 'Model.destroy({ where, force: true })',
    page: '/flavours/chocolate/',
    write: (s, _, transaction) => s.Flavour.destroy({ where: { slug: 'chocolate' }, force: true, transaction }),
    after: { status: 404 },
  },
  {
    name: 'Model.increment()',
    page: '/flavours/mint/',
    write: (s, _, transaction) => s.Flavour.increment('stock', { where: { slug: 'mint' }, transaction }),
    after: { status: 200, contains: 'stock: 6 |' },
  },
  {
    name: 'Model.upsert()',
    page: '/flavours/mint/',
    write: (s, _, transaction) => s.Flavour.upsert({ slug: 'mint', name: 'Mint leaf' }, { transaction }),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'the addX mixin (a junction row, both sides)',
    page: '/sizes/large/',
    write: (_, r, transaction) => r.mint.addSize(r.large, { transaction }),
    after: { status: 200, contains: 'flavours: Chocolate,Mint |' },
  },
  {
    name: 'the removeX mixin',
    page: '/sizes/small/',
    write: (_, r, transaction) => r.mint.removeSize(r.small, { transaction }),
    after: { status: 200, contains: 'flavours: Chocolate |' },
  },
];

const targets = await databases();

describe.each(targets)('Sequelize transactions on $name', (target) => {
  let db: Database;
  let shop: Shop;
  let rows: Rows;
  let dumper: Dumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  const cleanup: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    ({ db, shop } = await openShop(target));
  });
  afterAll(async () => {
    await db?.close();
  });

  async function start(options: SequelizeDumperOptions = {}) {
    const started = await startShop(db, shop, options);
    ({ log, dumper, site } = started);
    cleanup.push(started.close);
  }

  beforeEach(async () => {
    await db.clear(shop.all);
    rows = await seedShop(shop);
    await start();
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
    expect(log.warnings).toEqual([]);
    expect(log.errors).toEqual([]);
  });

  /** Reads the page while the transaction is open: the write's own invalidation has dropped it,
   * and another connection renders it again from the committed rows and stores it. */
  async function readDuring(page: string) {
    const during = await site.get(page);
    expect(during.cache).toBe('MISS');
    expect(during.status).toBe(200);
    expect((await site.get(page)).cache).toBe('HIT');
  }

  async function expectAfter(c: Case) {
    const after = await site.get(c.page);
    expect(after.cache).toBe('MISS');
    expect(after.status).toBe(c.after.status);
    if (c.after.contains) expect(after.body).toContain(c.after.contains);
    if (c.after.lacks) expect(after.body).not.toContain(c.after.lacks);
    await site.expectHit('/about/');
  }

  test.each(cases)('$name in a managed transaction: invalidated at the write, and a page rendered before the commit is dropped at the commit', async (c) => {
    await site.warm(c.page, '/about/');
    await db.sequelize.transaction(async (t) => {
      await c.write(shop, rows, t);
      await readDuring(c.page);
    });
    await expectAfter(c);
  });

  test.each(cases)('$name in an unmanaged transaction: the same at t.commit()', async (c) => {
    await site.warm(c.page, '/about/');
    const t = await db.sequelize.transaction();
    await c.write(shop, rows, t);
    await readDuring(c.page);
    await t.commit();
    await expectAfter(c);
  });

  test('a rollback fires no second invalidation: the page rendered during the transaction is right', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const abort = new Error('abort');
    await expect(
      db.sequelize.transaction(async (transaction) => {
        await shop.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' }, transaction });
        await readDuring('/flavours/mint/');
        throw abort;
      }),
    ).rejects.toBe(abort);
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('HIT');
    expect(after.body).toContain('Mint |');
    // Unmanaged: t.rollback().
    await site.warm('/flavours/chocolate/');
    const t = await db.sequelize.transaction();
    await rows.chocolate.update({ name: 'Dark' }, { transaction: t });
    await readDuring('/flavours/chocolate/');
    await t.rollback();
    expect(await site.get('/flavours/chocolate/')).toMatchObject({ cache: 'HIT', body: expect.stringContaining('Chocolate |') });
  });

  test('a savepoint rolled back drops only its own writes from the replay at the commit', async () => {
    await site.warm('/flavours/mint/', '/flavours/chocolate/', '/about/');
    await db.sequelize.transaction(async (t) => {
      await shop.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' }, transaction: t });
      const inner = new Error('inner');
      await expect(
        db.sequelize.transaction({ transaction: t }, async (savepoint) => {
          await shop.Flavour.update({ name: 'Dark' }, { where: { slug: 'chocolate' }, transaction: savepoint });
          throw inner;
        }),
      ).rejects.toBe(inner);
      // A savepoint committed keeps its writes for the outer commit.
      await db.sequelize.transaction({ transaction: t }, (savepoint) => rows.vanilla.update({ name: 'Vanilla bean' }, { transaction: savepoint }));
      // Readers store the three pages before the outer commit.
      await site.warm('/flavours/mint/', '/flavours/chocolate/', '/flavours/vanilla/');
    });
    const mint = await site.get('/flavours/mint/');
    expect(mint.cache).toBe('MISS');
    expect(mint.body).toContain('Mint leaf');
    const vanilla = await site.get('/flavours/vanilla/');
    expect(vanilla.cache).toBe('MISS');
    expect(vanilla.body).toContain('Vanilla bean');
    const chocolate = await site.get('/flavours/chocolate/');
    expect(chocolate.cache).toBe('HIT');
    expect(chocolate.body).toContain('Chocolate |');
    await site.expectHit('/about/');
  });

  test('outside a transaction, a write is invalidated once, when it happens', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const calls: unknown[] = [];
    const original = dumper.invalidateDependents.bind(dumper);
    dumper.invalidateDependents = async (d) => {
      calls.push(d);
      return original(d);
    };
    await shop.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' } });
    expect(calls).toHaveLength(1);
    expect((await site.get('/flavours/mint/')).body).toContain('Mint leaf');
    await site.expectHit('/about/');
  });

  test('a write that falls back to every page in a transaction invalidates every page again at the commit', async () => {
    for (const c of cleanup.splice(0)) await c();
    await start({ maxRows: 1 });
    await site.warm('/about/');
    await db.sequelize.transaction(async (transaction) => {
      await shop.Flavour.update({ stock: 0 }, { where: {}, transaction });
      await site.expectMiss('/about/');
      await site.warm('/about/');
    });
    await site.expectMiss('/about/');
    expect(log.warnings).toEqual(['dumper: sequelize: cannot tell which rows an update of Flavour by where (more than maxRows: 1 rows) changed; invalidating every page']);
    log.warnings.length = 0;
  });

  test('invalidateOnRollback: true invalidates the transaction’s pages again when it rolls back', async () => {
    for (const c of cleanup.splice(0)) await c();
    await start({ invalidateOnRollback: true });
    await site.warm('/flavours/mint/', '/flavours/chocolate/', '/about/');
    const t = await db.sequelize.transaction();
    await shop.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' }, transaction: t });
    await readDuring('/flavours/mint/');
    await t.rollback();
    expect(await site.get('/flavours/mint/')).toMatchObject({ cache: 'MISS', body: expect.stringContaining('Mint |') });
    // A savepoint rolled back, then the outer transaction committed.
    await site.warm('/flavours/mint/', '/flavours/chocolate/');
    await db.sequelize.transaction(async (outer) => {
      await expect(
        db.sequelize.transaction({ transaction: outer }, async (savepoint) => {
          await shop.Flavour.update({ name: 'Dark' }, { where: { slug: 'chocolate' }, transaction: savepoint });
          await readDuring('/flavours/chocolate/');
          throw new Error('inner');
        }),
      ).rejects.toThrow('inner');
      // The rollback of the savepoint invalidated its page again.
      await site.expectMiss('/flavours/chocolate/');
    });
    await site.expectHit('/flavours/chocolate/', '/flavours/mint/', '/about/');
  });
});

describe('Sequelize on SQLite in memory (one connection, readers included)', () => {
  let sequelize: Sequelize;
  let counter: Counter;
  let shop: Shop;
  let rows: Rows;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let site: Site;

  beforeEach(async () => {
    counter = new Counter();
    sequelize = new Sequelize({ dialect: 'sqlite', storage: ':memory:', logging: counter.log });
    shop = defineShop(sequelize);
    await sequelize.sync();
    rows = await seedShop(shop);
    dumper = createDumper({ logger: false });
    registerShop(dumper, shop);
    handle = sequelizeDumper(dumper, sequelize);
    site = await Site.start(dumper, counter, shopApp(shop));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
    await sequelize.close();
  });

  test('a rollback invalidates again the pages a reader rendered from the rows it undid', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const t = await sequelize.transaction();
    await rows.mint.update({ name: 'Mint leaf' }, { transaction: t });
    // The reader shares the connection: it sees the uncommitted name, and stores it.
    expect((await site.get('/flavours/mint/')).body).toContain('Mint leaf |');
    expect((await site.get('/flavours/mint/')).cache).toBe('HIT');
    await t.rollback();
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint |');
    await site.expectHit('/about/');
  });

  test('a commit invalidates again as on the other databases', async () => {
    await site.warm('/flavours/mint/');
    await sequelize.transaction(async (transaction) => {
      await rows.mint.update({ name: 'Mint leaf' }, { transaction });
      await site.warm('/flavours/mint/');
    });
    expect((await site.get('/flavours/mint/')).cache).toBe('MISS');
  });
});
