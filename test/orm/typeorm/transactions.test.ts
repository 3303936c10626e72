/**
 * Transactions: a write invalidates its pages when it happens and again when the outermost
 * transaction commits, so a page that a concurrent reader renders between the two (from the old,
 * committed rows on PostgreSQL and MariaDB) does not survive the commit. A rollback drops the
 * second invalidation, except on SQLite, where readers share the writer's connection and may have
 * seen the rows the rollback undid. The reader is a real HTTP request through `withDumper`.
 */
import type { EntityManager, EntitySubscriberInterface } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type Dumper } from '../../../src/index.js';
import { typeormDumper, type TypeormDumper } from '../../../src/orm/typeorm/index.js';
import { entities, Flavour, register, seed, shopApp, Size } from './shop.js';
import { databases, recordingLogger, Site, type Database } from './support.js';

const targets = await databases();

interface Case {
  name: string;
  page: string;
  write(m: EntityManager, rows: Awaited<ReturnType<typeof seed>>): Promise<unknown>;
  /** The page once the write has committed. */
  after: { status: number; contains?: string; lacks?: string };
}

const cases: Case[] = [
  {
    name: 'save()',
    page: '/flavours/mint/',
    write: async (m) => m.save(Object.assign(await m.findOneByOrFail(Flavour, { slug: 'mint' }), { name: 'Mint leaf' })),
    after: { status: 200, contains: 'Mint leaf' },
  },
  {
    name: 'update() by criteria',
    page: '/flavours/mint/',
    write: (m) => m.update(Flavour, { slug: 'mint' }, { name: 'Mint leaf' }),
    after: { status: 200, contains: 'Mint leaf' },
  },
  {
    name: 'remove()',
    page: '/flavours/chocolate/',
    write: async (m) => m.remove(await m.findOneByOrFail(Flavour, { slug: 'chocolate' })),
    after: { status: 404 },
  },
  {
    name: 'softDelete() by criteria',
    page: '/sizes/small/',
    write: (m) => m.softDelete(Flavour, { slug: 'chocolate' }),
    after: { status: 200, lacks: 'Chocolate' },
  },
  {
    name: 'a many-to-many add() through the transaction’s QueryBuilder',
    page: '/sizes/tub/',
    write: (m, rows) => m.createQueryBuilder().relation(Flavour, 'sizes').of(rows.mint).add(rows.tub),
    after: { status: 200, contains: 'flavours: Mint' },
  },
  {
    name: 'a many-to-many change saved from the other side',
    page: '/flavours/mint/',
    write: async (m, rows) => m.save(Object.assign(await m.findOneOrFail(Size, { where: { slug: 'large' }, relations: { flavours: true } }), {
      flavours: [rows.vanilla, rows.mint],
    })),
    after: { status: 200, contains: 'sizes: Large' },
  },
];

describe.each(targets)('TypeORM transactions on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;
  let rows: Awaited<ReturnType<typeof seed>>;
  let log: ReturnType<typeof recordingLogger>;
  const extra: EntitySubscriberInterface[] = [];

  beforeAll(async () => {
    db = await target.open(entities);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear();
    rows = await seed(db.dataSource);
    log = recordingLogger();
    dumper = createDumper({ store: new MemoryStore(), logger: log.logger });
    register(dumper);
    handle = typeormDumper(dumper, db.dataSource);
    site = await Site.start(dumper, db.logger, shopApp(db.dataSource));
  });
  afterEach(async () => {
    for (const s of extra.splice(0)) db.dataSource.subscribers.splice(db.dataSource.subscribers.indexOf(s), 1);
    await site.close();
    handle.close();
    await dumper.close();
    expect(log.warnings).toEqual([]);
  });

  test.each(cases)('$name: invalidated at the write, and a page rendered before the commit is dropped at the commit', async (c) => {
    await site.warm(c.page, '/about/');
    await db.dataSource.transaction(async (m) => {
      await c.write(m, rows);
      // The write's own invalidation: the old entry is gone at once.
      const during = await site.get(c.page);
      expect(during.cache).toBe('MISS');
      if (!target.sharedConnection) {
        // Another connection still reads the committed rows: this render is the old page, and
        // it is stored (the write's invalidation is behind it).
        expect(during.status).toBe(200);
        expect((await site.get(c.page)).cache).toBe('HIT');
      }
    });
    const after = await site.get(c.page);
    if (!target.sharedConnection || after.status === 200) expect(after.cache).toBe('MISS');
    expect(after.status).toBe(c.after.status);
    if (c.after.contains) expect(after.body).toContain(c.after.contains);
    if (c.after.lacks) expect(after.body).not.toContain(c.after.lacks);
    await site.expectHit('/about/');
  });

  test('a rollback fires no second invalidation, except where readers share the connection', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const abort = new Error('abort');
    await expect(
      db.dataSource.transaction(async (m) => {
        await m.update(Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
        // A reader stores the page while the transaction is open.
        expect((await site.get('/flavours/mint/')).cache).toBe('MISS');
        expect((await site.get('/flavours/mint/')).cache).toBe('HIT');
        throw abort;
      }),
    ).rejects.toBe(abort);
    const after = await site.get('/flavours/mint/');
    // Never the rolled-back name. On PostgreSQL and MariaDB the page stored during the
    // transaction was rendered from the committed row, so it stays; SQLite's reader saw the
    // uncommitted row, so the rollback invalidates it.
    expect(after.body).toContain('Mint |');
    expect(after.cache).toBe(target.sharedConnection ? 'MISS' : 'HIT');
    await site.expectHit('/about/');
  });

  test('a savepoint rolled back drops only its own writes from the replay at the commit', async () => {
    await site.warm('/flavours/mint/', '/flavours/chocolate/', '/about/');
    await db.dataSource.transaction(async (m) => {
      await m.update(Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
      const inner = new Error('inner');
      await expect(
        m.transaction(async (savepoint) => {
          await savepoint.update(Flavour, { slug: 'chocolate' }, { name: 'Dark' });
          throw inner;
        }),
      ).rejects.toBe(inner);
      // Readers store both pages before the outer commit.
      await site.warm('/flavours/mint/', '/flavours/chocolate/');
    });
    const mint = await site.get('/flavours/mint/');
    expect(mint.cache).toBe('MISS');
    expect(mint.body).toContain('Mint leaf');
    const chocolate = await site.get('/flavours/chocolate/');
    expect(chocolate.cache).toBe('HIT');
    expect(chocolate.body).toContain('Chocolate |');
    await site.expectHit('/about/');
  });

  test('save() outside an explicit transaction runs in one of its own: a page rendered before its commit is dropped at the commit', async () => {
    await site.warm('/flavours/mint/', '/about/');
    let reader: Awaited<ReturnType<Site['get']>> | undefined;
    // A reader that arrives after the write, just before TypeORM commits save()'s transaction.
    const spy: EntitySubscriberInterface = {
      async beforeTransactionCommit() {
        reader = await site.get('/flavours/mint/');
      },
    };
    extra.push(spy);
    db.dataSource.subscribers.push(spy);
    const mint = await db.dataSource.getRepository(Flavour).findOneByOrFail({ slug: 'mint' });
    mint.name = 'Mint leaf';
    await db.dataSource.getRepository(Flavour).save(mint);
    expect(reader?.cache).toBe('MISS');
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint leaf');
    await site.expectHit('/about/');
  });

  test('a write by criteria outside any transaction is invalidated once, when it happens', async () => {
    await site.warm('/flavours/mint/', '/about/');
    await db.dataSource.getRepository(Flavour).update({ slug: 'mint' }, { name: 'Mint leaf' });
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint leaf');
    await site.expectHit('/flavours/mint/', '/about/');
  });
});
