/**
 * Transactions: a write invalidates its pages when it happens and again when the outermost
 * transaction commits, so a page that a concurrent reader renders between the two (from the old,
 * committed rows: the reader is another MikroORM instance, on its own connections) does not
 * survive the commit. A rollback drops the second invalidation. Forked entity managers,
 * `em.transactional()` (nested too), `em.begin()`/`em.commit()`, and a flush's own transaction.
 */
import { RequestContext, type EntityManager, type EventSubscriber } from '@mikro-orm/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { mikroOrmDumper, type MikroOrmDumper, type MikroOrmDumperOptions } from '../../../src/orm/mikro-orm/index.js';
import { register, seed, shop, shopApp, type Shop } from './shop.js';
import { kinds, openDatabase, recordingLogger, Site, type Counted, type TestDatabase } from './support.js';

const targets = await kinds();

type Rows = Awaited<ReturnType<typeof seed>>;

interface Case {
  name: string;
  page: string;
  write(m: EntityManager, w: Shop, rows: Rows): Promise<unknown>;
  /** The page once the write has committed. */
  after: { status: number; contains?: string; lacks?: string };
}

const qb = (m: EntityManager, entity: unknown) => (m as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(entity);

const cases: Case[] = [
  {
    name: 'a flushed update',
    page: '/flavours/mint/',
    write: async (m, w) => {
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      await m.flush();
    },
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'a flushed delete',
    page: '/flavours/chocolate/',
    write: async (m, w) => {
      m.remove(await m.findOneOrFail(w.Flavour, { slug: 'chocolate' }));
      await m.flush();
    },
    after: { status: 404 },
  },
  {
    name: 'a flushed many-to-many add',
    page: '/sizes/tub/',
    write: async (m, w, rows) => {
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).sizes.add(m.getReference(w.Size, rows.tub.id));
      await m.flush();
    },
    after: { status: 200, contains: 'flavours: Mint' },
  },
  {
    name: 'nativeUpdate()',
    page: '/flavours/mint/',
    write: (m, w) => m.nativeUpdate(w.Flavour, { slug: 'mint' }, { name: 'Mint leaf' }),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'nativeDelete()',
    page: '/sizes/small/',
    write: (m, w) => m.nativeDelete(w.Flavour, { slug: 'chocolate' }),
    after: { status: 200, lacks: 'Chocolate' },
  },
  {
    name: 'insert()',
    page: '/flavours/',
    write: (m, w) => m.insert(w.Flavour, { slug: 'lemon', name: 'Lemon' }),
    after: { status: 200, contains: 'Lemon' },
  },
  {
    name: 'upsert()',
    page: '/flavours/mint/',
    write: (m, w) => m.upsert(w.Flavour, { slug: 'mint', name: 'Mint leaf' }),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'a QueryBuilder update',
    page: '/flavours/mint/',
    write: (m, w) => qb(m, w.Flavour).update({ name: 'Mint leaf' }).where({ slug: 'mint' }).execute(),
    after: { status: 200, contains: 'Mint leaf |' },
  },
  {
    name: 'a QueryBuilder delete',
    page: '/flavours/',
    write: (m, w) => qb(m, w.Flavour).delete().where({ slug: 'mint' }).execute(),
    after: { status: 200, lacks: 'Mint' },
  },
];

describe.each(targets)('MikroORM transactions on %s', (kind) => {
  let db: TestDatabase;
  let writer: Counted;
  let reader: Counted;
  const w = shop();
  const r = shop();
  let dumper: Dumper;
  let handle: MikroOrmDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let rows: Rows;

  beforeAll(async () => {
    db = await openDatabase(kind);
    writer = await db.open(w.schemas);
    reader = await db.open(r.schemas, { contextName: 'reader' });
  });
  afterAll(async () => {
    await db?.close();
  });

  async function start(options?: MikroOrmDumperOptions, registration: (d: Dumper) => void = (d) => register(d, w)) {
    await stop();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    registration(dumper);
    handle = mikroOrmDumper(dumper, writer.orm, options);
    site = await Site.start(dumper, reader, shopApp(reader, r));
  }
  async function stop() {
    await site?.close();
    handle?.close();
    await dumper?.close();
  }

  beforeEach(async () => {
    await stop();
    await db.clear();
    rows = await seed(writer.orm.em.fork(), w);
    await start();
  });
  afterEach(async () => {
    await stop();
    expect(log.warnings).toEqual([]);
    expect(log.errors).toEqual([]);
  });

  const em = () => writer.orm.em.fork();

  test.each(cases)('$name: invalidated at the write, and a page rendered before the commit is dropped at the commit', async (c) => {
    await site.warm(c.page, '/about/');
    await em().transactional(async (m) => {
      await c.write(m, w, rows);
      // The write's own invalidation: the old entry is gone at once.
      const during = await site.get(c.page);
      expect(during.cache).toBe('MISS');
      // The reader still reads the committed rows: this render is the old page, and it is
      // stored (the write's invalidation is behind it).
      expect(during.status).toBe(200);
      expect((await site.get(c.page)).cache).toBe('HIT');
    });
    const after = await site.get(c.page);
    expect(after.cache).toBe('MISS');
    expect(after.status).toBe(c.after.status);
    if (c.after.contains) expect(after.body).toContain(c.after.contains);
    if (c.after.lacks) expect(after.body).not.toContain(c.after.lacks);
    await site.expectHit('/about/');
  });

  test('a rollback fires no second invalidation', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const abort = new Error('abort');
    await expect(
      em().transactional(async (m) => {
        await m.nativeUpdate(w.Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
        // A reader stores the page while the transaction is open.
        expect((await site.get('/flavours/mint/')).cache).toBe('MISS');
        expect((await site.get('/flavours/mint/')).cache).toBe('HIT');
        throw abort;
      }),
    ).rejects.toBe(abort);
    // The page stored during the transaction was rendered from the committed row: it stays.
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('HIT');
    expect(after.body).toContain('Mint |');
  });

  test('invalidateOnRollback: true invalidates again after a rollback', async () => {
    await start({ invalidateOnRollback: true });
    await site.warm('/flavours/mint/', '/about/');
    await expect(
      em().transactional(async (m) => {
        (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
        await m.flush();
        await site.warm('/flavours/mint/');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint |');
    await site.expectHit('/about/');
  });

  test('nested transactions: the writes of a savepoint are replayed when the outermost transaction commits', async () => {
    await site.warm('/flavours/mint/', '/flavours/chocolate/', '/about/');
    await em().transactional(async (outer) => {
      await outer.transactional(async (inner) => {
        (await inner.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      });
      const inner = new Error('inner');
      await expect(
        outer.transactional(async (savepoint) => {
          await savepoint.nativeUpdate(w.Flavour, { slug: 'chocolate' }, { name: 'Dark' });
          throw inner;
        }),
      ).rejects.toBe(inner);
      // Readers store both pages before the outer commit.
      await site.warm('/flavours/mint/', '/flavours/chocolate/');
    });
    const mint = await site.get('/flavours/mint/');
    expect(mint.cache).toBe('MISS');
    expect(mint.body).toContain('Mint leaf |');
    // The savepoint rolled back: its page is invalidated again at the commit (MikroORM reports
    // no savepoint rollback), and renders the committed row, never the rolled-back one.
    expect((await site.get('/flavours/chocolate/')).body).toContain('Chocolate |');
    await site.expectHit('/about/');
  });

  test('a flush that fails inside a transaction, committed all the same: every page at the commit', async () => {
    await site.warm('/sizes/small/', '/about/');
    await em().transactional(async (m) => {
      (await m.findOneOrFail(w.Size, { slug: 'small' })).name = 'Tiny';
      // A slug another flavour has: this flush fails, maybe after the size's UPDATE ran.
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).slug = 'vanilla';
      await expect(m.flush()).rejects.toThrow();
      m.clear();
    });
    expect(log.warnings).toEqual([expect.stringMatching(/mikro-orm: a flush failed inside a transaction that was committed; invalidating every page$/)]);
    log.warnings.length = 0;
    await site.expectMiss('/about/');
    // Whatever the database kept (PostgreSQL rolls back a transaction with a failed statement).
    const small = await em().findOneOrFail(w.Size, { slug: 'small' });
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).toContain(`${small.name} |`);
  });

  test('em.begin() and em.commit(): invalidated again at the commit', async () => {
    await site.warm('/flavours/mint/', '/about/');
    const m = em();
    await m.begin();
    try {
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      await m.flush();
      await site.warm('/flavours/mint/');
      await m.commit();
    } catch (error) {
      await m.rollback();
      throw error;
    }
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint leaf |');
    await site.expectHit('/about/');
  });

  test('a flush outside a transaction runs in its own: a page rendered before its commit is dropped after it', async () => {
    await site.warm('/flavours/mint/', '/about/');
    let during: Awaited<ReturnType<Site['get']>> | undefined;
    // A reader that arrives after the flush's UPDATE, just before MikroORM commits.
    const spy: EventSubscriber = {
      async beforeTransactionCommit() {
        during ??= await site.get('/flavours/mint/');
      },
    };
    writer.orm.em.getEventManager().registerSubscriber(spy);
    try {
      const m = em();
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      await m.flush();
    } finally {
      const internals = writer.orm.em.getEventManager() as unknown as { subscribers: Set<unknown>; listeners: Record<string, Set<unknown>> };
      internals.subscribers.delete(spy);
      for (const set of Object.values(internals.listeners)) set.delete(spy);
    }
    expect(during?.body).toContain('Mint |');
    const after = await site.get('/flavours/mint/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Mint leaf |');
    await site.expectHit('/about/');
  });

  test('the global entity manager in a request context, and a fork of a fork', async () => {
    await site.warm('/flavours/mint/', '/flavours/chocolate/', '/about/');
    await RequestContext.create(writer.orm.em, async () => {
      (await writer.orm.em.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      await writer.orm.em.flush();
    });
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf |');
    const fork = em().fork();
    (await fork.findOneOrFail(w.Flavour, { slug: 'chocolate' })).name = 'Dark';
    await fork.flush();
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('Dark |');
    await site.expectHit('/about/');
  });

  test('a dependentPaths returning a string inside a transaction rejects it, and nothing is committed', async () => {
    await start(undefined, (d) => d.register(w.Flavour, { dependentPaths: () => '/flavours/' as never }));
    await expect(
      em().transactional(async (m) => {
        m.create(w.Flavour, { slug: 'lemon', name: 'Lemon' });
      }),
    ).rejects.toThrow('Flavour.dependentPaths() returned a string ("/flavours/")');
    expect(await em().count(w.Flavour, { slug: 'lemon' })).toBe(0);
    // The write had run inside the transaction when the error came: every page was invalidated.
    expect(log.warnings).toEqual([expect.stringMatching(/cannot tell which rows a flush .*returned a string.* changed; invalidating every page$/)]);
    log.warnings.length = 0;
  });

  test('close() stops invalidating', async () => {
    await site.warm('/flavours/mint/');
    handle.close();
    handle.close();
    await em().nativeUpdate(w.Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
    const m = em();
    (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaves';
    await m.flush();
    expect((await site.get('/flavours/mint/')).cache).toBe('HIT');
    expect(w.calls).toEqual([]);
    // And it can be installed again.
    handle = mikroOrmDumper(dumper, writer.orm);
    await em().nativeUpdate(w.Flavour, { slug: 'mint' }, { name: 'Mint' });
    expect((await site.get('/flavours/mint/')).cache).toBe('MISS');
  });
});
