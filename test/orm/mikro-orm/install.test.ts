/**
 * Setting up `mikroOrmDumper()`: its arguments and options are checked once, with TypeErrors;
 * `close()` undoes it and it can be installed again; the `relations` option decides what
 * `dependentPaths` gets loaded; forks made with a fresh event manager are watched too; and an ORM
 * without it writes exactly as before. On SQLite (nothing here depends on the database).
 */
import { wrap } from '@mikro-orm/core';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { mikroOrmDumper, type MikroOrmDumperOptions } from '../../../src/orm/mikro-orm/index.js';
import { installedAnywhere, markInstalled, markUninstalled } from '../../../src/orm/installs.js';
import { seed, shop, type Shop } from './shop.js';
import { openDatabase, type Counted, type TestDatabase } from './support.js';

type Flavour = InstanceType<Shop['Flavour']>;

let db: TestDatabase;
let writer: Counted;
let other: Counted;
const w = shop();
const o = shop();

beforeAll(async () => {
  db = await openDatabase('SQLite');
  writer = await db.open(w.schemas);
  other = await db.open(o.schemas, { contextName: 'other' });
});
afterAll(async () => {
  await db?.close();
});
beforeEach(async () => {
  await db.clear();
  await seed(writer.orm.em.fork(), w);
});

describe('mikroOrmDumper() arguments and options', () => {
  test('bad arguments and options are TypeErrors naming the mistake', async () => {
    const dumper = createDumper({ logger: false });
    expect(() => mikroOrmDumper({} as never, writer.orm)).toThrow(new TypeError('page-dumper: mikroOrmDumper() needs a dumper made by createDumper()'));
    expect(() => mikroOrmDumper(dumper, {} as never)).toThrow(
      new TypeError('page-dumper: mikroOrmDumper(dumper, orm) needs a MikroORM instance (the result of MikroORM.init())'),
    );
    // MongoDB's entity manager has no QueryBuilder.
    const mongoLike = { em: { getEventManager() {}, getDriver() {} }, getMetadata() {} };
    expect(() => mikroOrmDumper(dumper, mongoLike as never)).toThrow(
      new TypeError('page-dumper: mikroOrmDumper() supports the SQL drivers of MikroORM (PostgreSQL, MySQL, MariaDB, SQLite...); this ORM has none'),
    );
    const bad: Array<[unknown, string]> = [
      [null, 'page-dumper: mikroOrmDumper() options must be an object'],
      [{ maxrows: 10 }, 'page-dumper: mikroOrmDumper() got an unknown option "maxrows"'],
      [{ maxRows: -1 }, 'page-dumper: mikroOrmDumper() option "maxRows" must be a non-negative integer or Infinity, got -1'],
      [{ maxRows: 1.5 }, 'page-dumper: mikroOrmDumper() option "maxRows" must be a non-negative integer or Infinity, got 1.5'],
      [{ maxRows: '10' }, 'page-dumper: mikroOrmDumper() option "maxRows" must be a non-negative integer or Infinity, got 10'],
      [{ invalidateOnRollback: 'yes' }, 'page-dumper: mikroOrmDumper() option "invalidateOnRollback" must be a boolean, got string'],
    ];
    const relations = 'page-dumper: mikroOrmDumper() option "relations" must be "auto", "all", "none", an object of relation paths by entity name, or a function';
    for (const r of ['some', null, ['sizes'], { Flavour: 'sizes' }, { Flavour: [''] }]) bad.push([{ relations: r }, relations]);
    for (const [options, message] of bad) {
      expect(() => mikroOrmDumper(dumper, writer.orm, options as MikroOrmDumperOptions), JSON.stringify(options)).toThrow(new TypeError(message));
    }
    // Nothing was installed by the failed calls.
    const handle = mikroOrmDumper(dumper, writer.orm, { maxRows: Infinity, relations: { Flavour: ['sizes'] }, invalidateOnRollback: false });
    expect(() => mikroOrmDumper(dumper, writer.orm)).toThrow(new TypeError('page-dumper: mikroOrmDumper() is already installed on this MikroORM instance'));
    handle.close();
    handle.close(); // idempotent
    mikroOrmDumper(dumper, writer.orm).close();
    // An ORM with the integration of another copy of page-dumper (the CommonJS build beside the ES
    // modules) is refused too: what that copy records, in the registry every copy shares.
    const driver = writer.orm.em.getDriver();
    markInstalled(driver);
    expect(() => mikroOrmDumper(dumper, writer.orm)).toThrow(new TypeError('page-dumper: mikroOrmDumper() is already installed on this MikroORM instance'));
    markUninstalled(driver);
    const again = mikroOrmDumper(dumper, writer.orm);
    expect(installedAnywhere(driver)).toBe(true);
    again.close();
    expect(installedAnywhere(driver)).toBe(false);
    await dumper.close();
  });
});

describe('the relations option', () => {
  /** What dependentPaths saw of a flavour: which of its relations were loaded. */
  async function seen(options: MikroOrmDumperOptions): Promise<Array<{ sizes: boolean; reviews: boolean }>> {
    const out: Array<{ sizes: boolean; reviews: boolean }> = [];
    const dumper = createDumper({ logger: false });
    dumper.register(w.Flavour, {
      dependentPaths(f: Flavour) {
        out.push({ sizes: f.sizes.isInitialized(), reviews: f.reviews.isInitialized() });
        return [`/flavours/${f.slug}/`];
      },
    });
    const handle = mikroOrmDumper(dumper, writer.orm, options);
    try {
      await writer.orm.em.fork().nativeUpdate(w.Flavour, { slug: 'vanilla' }, { name: 'Vanilla bean' });
      return out;
    } finally {
      handle.close();
      await dumper.close();
    }
  }

  test("'auto' (the default) loads many-to-many and many-to-one relations, not one-to-many", async () => {
    expect(await seen({})).toEqual([
      { sizes: true, reviews: false },
      { sizes: true, reviews: false },
    ]);
  });

  test("'all', 'none', by entity name, and a function", async () => {
    expect((await seen({ relations: 'all' }))[0]).toEqual({ sizes: true, reviews: true });
    expect((await seen({ relations: 'none' }))[0]).toEqual({ sizes: false, reviews: false });
    expect((await seen({ relations: { Flavour: ['reviews'] } }))[0]).toEqual({ sizes: false, reviews: true });
    expect((await seen({ relations: { Size: [] } }))[0]).toEqual({ sizes: true, reviews: false });
    expect((await seen({ relations: (meta) => (meta.className === 'Flavour' ? ['reviews.flavour'] : undefined) }))[0]).toEqual({ sizes: false, reviews: true });
    expect((await seen({ relations: () => undefined }))[0]).toEqual({ sizes: true, reviews: false });
  });

  test('a path naming no relation fails the first write with a TypeError', async () => {
    await expect(seen({ relations: { Flavour: ['sprinkles'] } })).rejects.toThrow(
      new TypeError('page-dumper: mikroOrmDumper() option "relations" names "sprinkles" for Flavour, which has no relation "sprinkles"'),
    );
  });
});

describe('mikroOrmDumper() on an ORM', () => {
  test('a fork with a fresh event manager is watched too (the subscriber is in the configuration)', async () => {
    const dumper = createDumper({ logger: false });
    dumper.register(w.Flavour);
    await dumper.invalidate('/nothing/'); // the store exists
    const handle = mikroOrmDumper(dumper, writer.orm);
    try {
      const em = writer.orm.em.fork({ freshEventManager: true });
      const mint = await em.findOneOrFail(w.Flavour, { slug: 'mint' });
      mint.name = 'Mint leaf';
      await em.flush();
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint']);
    } finally {
      handle.close();
      await dumper.close();
    }
    // Closed: the configured subscribers are as before.
    expect(writer.orm.config.get('subscribers')).toEqual([]);
    w.calls.length = 0;
    const em = writer.orm.em.fork({ freshEventManager: true });
    (await em.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint';
    await em.flush();
    expect(w.calls).toEqual([]);
  });

  test('the rows read are page-dumper’s own: your entities and identity map are left as they were', async () => {
    const dumper = createDumper({ logger: false });
    dumper.register(w.Flavour).register(w.Size);
    const handle = mikroOrmDumper(dumper, writer.orm);
    try {
      const em = writer.orm.em.fork();
      const vanilla = await em.findOneOrFail(w.Flavour, { slug: 'vanilla' });
      vanilla.name = 'Vanilla bean';
      await em.flush();
      expect(vanilla.sizes.isInitialized()).toBe(false);
      expect(wrap(vanilla).isInitialized()).toBe(true);
      expect(em.getUnitOfWork().getIdentityMap().values().map((e) => e.constructor.name)).toEqual(['Flavour']);
    } finally {
      handle.close();
      await dumper.close();
    }
  });

  test('an ORM without it writes exactly as before, though MikroORM’s classes are wrapped process-wide', async () => {
    const dumper = createDumper({ logger: false });
    dumper.register(w.Flavour);
    const handle = mikroOrmDumper(dumper, writer.orm);
    try {
      const em = other.orm.em.fork();
      const before = other.queries();
      await em.nativeUpdate(o.Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
      await em.insert(o.Flavour, { slug: 'lemon', name: 'Lemon' });
      await (em as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(o.Flavour).delete().where({ slug: 'lemon' }).execute();
      (await em.findOneOrFail(o.Flavour, { slug: 'mint' })).name = 'Mint';
      await em.flush();
      // Three writes, one select, and the flush's begin, update, commit.
      expect(other.queries() - before).toBe(7);
      expect(o.calls).toEqual([]);
    } finally {
      handle.close();
      await dumper.close();
    }
  });
});
