/**
 * Every write path of Sequelize invalidates the pages of the rows it touches, and only those:
 * each case warms pages, makes one write that never calls the dumper, and expects the pages that
 * show the row to be rendered again with the new data, while `/about/` (which shows nothing from
 * the database) stays cached, so no case passes by invalidating every page. Then: the maxRows
 * fallback, previous values, a stale instance, unregistered models, and what a write costs.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';
import { openShop, seedShop, startShop, type Shop } from './shop.js';
import { databases, invalidations, recordingLogger, Site, type Database } from './support.js';

type Rows = Awaited<ReturnType<typeof seedShop>>;

interface Case {
  name: string;
  /** Runs before the pages are warmed (without hooks: nothing is invalidated). */
  setup?: (shop: Shop, rows: Rows) => Promise<unknown>;
  warm: string[];
  write(shop: Shop, rows: Rows): Promise<unknown>;
  /** Each page, once the write is done: rendered again, with this status and text. */
  after: Record<string, { status?: number; contains?: string; lacks?: string }>;
  /** Pages that must still be cached. */
  hit?: string[];
}

const cases: Case[] = [
  {
    name: 'Model.create()',
    warm: ['/flavours/'],
    write: (s) => s.Flavour.create({ slug: 'lemon', name: 'Lemon' }),
    after: { '/flavours/': { contains: 'Lemon' } },
  },
  {
    name: 'Model.findOrCreate() (a create in a transaction of its own)',
    warm: ['/flavours/'],
    write: (s) => s.Flavour.findOrCreate({ where: { slug: 'lemon' }, defaults: { name: 'Lemon' } }),
    after: { '/flavours/': { contains: 'Lemon' } },
  },
  {
    name: 'instance.save() of a changed row',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: async (_, r) => {
      r.mint.name = 'Mint leaf';
      await r.mint.save();
    },
    after: { '/flavours/mint/': { contains: 'Mint leaf |' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'instance.save() of a new slug: the old URL too',
    warm: ['/flavours/mint/', '/flavours/'],
    write: async (_, r) => {
      r.mint.slug = 'mint-leaf';
      await r.mint.save();
    },
    after: { '/flavours/mint/': { status: 404 }, '/flavours/mint-leaf/': { contains: 'Mint |' } },
  },
  {
    name: 'instance.update()',
    warm: ['/flavours/mint/'],
    write: (_, r) => r.mint.update({ name: 'Mint leaf' }),
    after: { '/flavours/mint/': { contains: 'Mint leaf |' } },
  },
  {
    name: 'instance.destroy() (a soft delete: the model is paranoid)',
    warm: ['/flavours/mint/', '/flavours/'],
    write: (_, r) => r.mint.destroy(),
    after: { '/flavours/mint/': { status: 404 }, '/flavours/': { lacks: 'Mint' } },
  },
  {
    name: 'instance.destroy({ force: true })',
    warm: ['/flavours/mint/', '/flavours/'],
    write: (_, r) => r.mint.destroy({ force: true }),
    after: { '/flavours/mint/': { status: 404 }, '/flavours/': { lacks: 'Mint' } },
  },
  {
    name: 'instance.restore()',
    setup: (_, r) => r.mint.destroy({ hooks: false }),
    warm: ['/flavours/'],
    write: (_, r) => r.mint.restore(),
    after: { '/flavours/': { contains: 'Mint' } },
  },
  {
    name: 'Model.upsert() of an existing row',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.upsert({ slug: 'mint', name: 'Mint leaf' }),
    after: { '/flavours/mint/': { contains: 'Mint leaf |' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.upsert() of a new row',
    warm: ['/flavours/'],
    write: (s) => s.Flavour.upsert({ slug: 'lemon', name: 'Lemon' }),
    after: { '/flavours/': { contains: 'Lemon' } },
  },
  {
    name: 'Model.bulkCreate()',
    warm: ['/flavours/'],
    write: (s) => s.Flavour.bulkCreate([{ slug: 'lemon', name: 'Lemon' }, { slug: 'lime', name: 'Lime' }]),
    after: { '/flavours/': { contains: 'Lemon,Lime' } },
  },
  {
    name: 'Model.bulkCreate() with updateOnDuplicate',
    warm: ['/flavours/mint/', '/flavours/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.bulkCreate([{ slug: 'mint', name: 'Mint leaf' }, { slug: 'lemon', name: 'Lemon' }], { updateOnDuplicate: ['name'] }),
    after: { '/flavours/mint/': { contains: 'Mint leaf |' }, '/flavours/': { contains: 'Lemon' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.bulkCreate() with individualHooks',
    warm: ['/flavours/'],
    write: (s) => s.Flavour.bulkCreate([{ slug: 'lemon', name: 'Lemon' }], { individualHooks: true }),
    after: { '/flavours/': { contains: 'Lemon' } },
  },
  {
    name: 'Model.update(values, { where })',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' } }),
    after: { '/flavours/mint/': { contains: 'Mint leaf |' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.update() of the slug by where: the old URL and the new one',
    warm: ['/flavours/mint/'],
    write: (s) => s.Flavour.update({ slug: 'mint-leaf' }, { where: { slug: 'mint' } }),
    after: { '/flavours/mint/': { status: 404 }, '/flavours/mint-leaf/': { contains: 'Mint |' } },
  },
  {
    name: 'Model.update() with individualHooks',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.update({ name: 'Mint leaf' }, { where: { slug: 'mint' }, individualHooks: true }),
    after: { '/flavours/mint/': { contains: 'Mint leaf |' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.destroy({ where }) (a soft delete)',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.destroy({ where: { slug: 'mint' } }),
    after: { '/flavours/mint/': { status: 404 } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.destroy({ where, force: true })',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.destroy({ where: { slug: 'mint' }, force: true }),
    after: { '/flavours/mint/': { status: 404 } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.destroy() with individualHooks',
    warm: ['/flavours/mint/'],
    write: (s) => s.Flavour.destroy({ where: { slug: 'mint' }, individualHooks: true }),
    after: { '/flavours/mint/': { status: 404 } },
  },
  {
    name: 'Model.restore({ where })',
    setup: (_, r) => r.mint.destroy({ hooks: false }),
    warm: ['/flavours/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.restore({ where: { slug: 'mint' } }),
    after: { '/flavours/': { contains: 'Mint' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.increment()',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: (s) => s.Flavour.increment('stock', { by: 2, where: { slug: 'mint' } }),
    after: { '/flavours/mint/': { contains: 'stock: 7 |' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'Model.decrement()',
    warm: ['/flavours/mint/'],
    write: (s) => s.Flavour.decrement({ stock: 3 }, { where: { slug: 'mint' } }),
    after: { '/flavours/mint/': { contains: 'stock: 2 |' } },
  },
  {
    name: 'instance.increment() and instance.decrement()',
    warm: ['/flavours/mint/', '/flavours/chocolate/'],
    write: async (_, r) => {
      await r.mint.increment('stock');
      await r.chocolate.decrement('stock');
    },
    after: { '/flavours/mint/': { contains: 'stock: 6 |' }, '/flavours/chocolate/': { contains: 'stock: 4 |' } },
  },
  {
    name: 'the addX mixin of belongsToMany: both sides, through the junction model',
    warm: ['/flavours/vanilla/', '/sizes/small/', '/sizes/large/'],
    write: (_, r) => r.vanilla.addSize(r.small),
    after: { '/flavours/vanilla/': { contains: 'sizes: Small |' }, '/sizes/small/': { contains: 'Chocolate,Mint,Vanilla' } },
    hit: ['/sizes/large/'],
  },
  {
    name: 'the addXs mixin',
    warm: ['/flavours/vanilla/', '/sizes/small/', '/sizes/large/'],
    write: (_, r) => r.vanilla.addSizes([r.small, r.large]),
    after: { '/flavours/vanilla/': { contains: 'sizes: Large,Small |' }, '/sizes/small/': { contains: 'Vanilla' }, '/sizes/large/': { contains: 'Vanilla' } },
  },
  {
    name: 'the removeX mixin',
    warm: ['/flavours/chocolate/', '/sizes/large/', '/sizes/small/'],
    write: (_, r) => r.chocolate.removeSize(r.large),
    after: { '/flavours/chocolate/': { contains: 'sizes: Small |' }, '/sizes/large/': { contains: 'flavours:  |' } },
    hit: ['/sizes/small/'],
  },
  {
    name: 'the setX mixin: the links removed and the links added',
    warm: ['/flavours/mint/', '/sizes/small/', '/sizes/large/', '/flavours/chocolate/'],
    write: (_, r) => r.mint.setSizes([r.large]),
    after: { '/flavours/mint/': { contains: 'sizes: Large |' }, '/sizes/small/': { contains: 'flavours: Chocolate |' }, '/sizes/large/': { contains: 'Chocolate,Mint' } },
    hit: ['/flavours/chocolate/'],
  },
  {
    name: 'the createX mixin',
    warm: ['/flavours/vanilla/', '/sizes/small/'],
    write: (_, r) => r.vanilla.createSize({ slug: 'tub', name: 'Tub' }),
    after: { '/flavours/vanilla/': { contains: 'sizes: Tub |' } },
    hit: ['/sizes/small/'],
  },
  {
    name: 'the addX mixin from the other side',
    warm: ['/flavours/vanilla/', '/sizes/large/'],
    write: (_, r) => r.large.addFlavour(r.vanilla),
    after: { '/flavours/vanilla/': { contains: 'sizes: Large |' }, '/sizes/large/': { contains: 'Chocolate,Vanilla' } },
  },
  {
    name: 'a registered junction model: its own dependentPaths, on add and on remove',
    warm: ['/flavours/vanilla/toppings/', '/toppings/sprinkles/', '/flavours/vanilla/', '/flavours/mint/toppings/'],
    write: async (_, r) => {
      await r.vanilla.addTopping(r.sprinkles);
      await r.mint.removeTopping(r.sprinkles);
    },
    after: {
      '/flavours/vanilla/toppings/': { contains: 'toppings: Sprinkles' },
      '/flavours/mint/toppings/': { contains: 'toppings: ' },
      '/toppings/sprinkles/': { contains: 'flavours: Vanilla |' },
    },
    // The rows on both sides are not asked: the junction model says what a link shows on.
    hit: ['/flavours/vanilla/'],
  },
  {
    name: 'the addX mixin of hasMany (a Model.update() by where of the child): the old parent and the new',
    warm: ['/flavours/chocolate/', '/flavours/mint/', '/flavours/vanilla/'],
    write: (_, r) => r.mint.addReview(r.review),
    after: { '/flavours/chocolate/': { contains: 'reviews: 0 |' }, '/flavours/mint/': { contains: 'reviews: 1 |' } },
    hit: ['/flavours/vanilla/'],
  },
  {
    name: 'a belongsTo setter (an instance.save() of the child)',
    warm: ['/flavours/chocolate/', '/flavours/vanilla/', '/flavours/mint/'],
    write: (_, r) => r.review.setFlavour(r.vanilla),
    after: { '/flavours/chocolate/': { contains: 'reviews: 0 |' }, '/flavours/vanilla/': { contains: 'reviews: 1 |' } },
    hit: ['/flavours/mint/'],
  },
  {
    name: 'Model.update() by where of a registered junction model: the link as it was and as it is',
    warm: ['/toppings/sprinkles/', '/toppings/fudge/', '/flavours/mint/toppings/'],
    write: (s, r) => s.FlavourTopping.update({ toppingId: r.fudge.id }, { where: { flavourId: r.mint.id } }),
    after: {
      '/toppings/sprinkles/': { contains: 'flavours:  |' },
      '/toppings/fudge/': { contains: 'flavours: Mint |' },
      '/flavours/mint/toppings/': { contains: 'toppings: Fudge' },
    },
  },
];

const targets = await databases();

describe.each(targets)('Sequelize writes on $name', (target) => {
  let db: Database;
  let shop: Shop;
  let rows: Rows;
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
    ({ log, site } = started);
    cleanup.push(started.close);
  }

  beforeEach(async () => {
    await db.clear(shop.all);
    rows = await seedShop(shop);
    await start();
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  test.each(cases)('$name', async (c) => {
    await c.setup?.(shop, rows);
    await site.warm(...c.warm, '/about/');
    await c.write(shop, rows);
    for (const [path, expected] of Object.entries(c.after)) {
      const page = await site.get(path);
      expect(page.cache, `${path} should have been invalidated`).toBe('MISS');
      expect(page.status, `${path}: ${page.body}`).toBe(expected.status ?? 200);
      if (expected.contains !== undefined) expect(page.body).toContain(expected.contains);
      if (expected.lacks !== undefined) expect(page.body).not.toContain(expected.lacks);
    }
    expect(log.warnings).toEqual([]);
    await site.expectHit('/about/', ...(c.hit ?? []));
    expect(log.warnings).toEqual([]);
    expect(log.errors).toEqual([]);
  });

  test('a write by where matching more than maxRows rows invalidates every page, with a warning; up to maxRows, row by row', async () => {
    for (const c of cleanup.splice(0)) await c();
    await start({ maxRows: 2 });
    // Two rows: resolved one by one.
    await site.warm('/flavours/mint/', '/about/');
    await shop.Flavour.update({ stock: 1 }, { where: { slug: ['mint', 'chocolate'] } });
    expect((await site.get('/flavours/mint/')).body).toContain('stock: 1 |');
    await site.expectHit('/about/');
    expect(log.warnings).toEqual([]);
    // Three rows, each kind of write: every page.
    const writes: Array<[string, () => Promise<unknown>]> = [
      ['an update of Flavour by where', () => shop.Flavour.update({ stock: 2 }, { where: {} })],
      ['an increment of Flavour', () => shop.Flavour.increment('stock', { where: {} })],
      ['a destroy of Flavour by where', () => shop.Flavour.destroy({ where: {} })],
      ['a restore of Flavour by where', () => shop.Flavour.restore({ where: {} })],
      ['a bulkCreate of Flavour', () => shop.Flavour.bulkCreate([1, 2, 3].map((n) => ({ slug: `new-${n}`, name: `New ${n}` })))],
      ['a bulkCreate with updateOnDuplicate of Flavour', () => shop.Flavour.bulkCreate([1, 2, 3].map((n) => ({ slug: `new-${n}`, name: `Newer ${n}` })), { updateOnDuplicate: ['name'] })],
    ];
    for (const [what, write] of writes) {
      await site.warm('/about/', '/flavours/');
      log.warnings.length = 0;
      await write();
      await site.expectMiss('/about/', '/flavours/');
      expect(log.warnings).toEqual([`dumper: sequelize: cannot tell which rows ${what} (more than maxRows: 2 rows) changed; invalidating every page`]);
    }
    expect((await site.get('/flavours/mint/')).body).toContain('stock: 3 |');
  });

  test('an update calls dependentPaths on the row before and on the instance after, whose previous() values still answer', async () => {
    for (const c of cleanup.splice(0)) await c();
    const calls: Array<{ slug: string; previous: unknown }> = [];
    const d = createDumper({ logger: false });
    d.register(shop.Flavour, {
      dependentPaths(f: InstanceType<Shop['Flavour']>) {
        calls.push({ slug: f.slug, previous: f.previous('slug') });
        return [`/flavours/${f.slug}/`];
      },
    });
    const h = sequelizeDumper(d, db.sequelize);
    try {
      await rows.mint.update({ slug: 'mint-leaf' });
      expect(calls).toEqual([
        { slug: 'mint', previous: 'mint' }, // the row as stored, read before the write
        { slug: 'mint-leaf', previous: 'mint' }, // the instance saved
      ]);
    } finally {
      h.close();
      await d.close();
    }
  });

  test('saving an instance loaded before someone else changed the row invalidates the row as stored', async () => {
    const stale = await shop.Flavour.findByPk(rows.mint.id, { rejectOnEmpty: true });
    // Another process (another Sequelize instance, without page-dumper) renames the flavour; its
    // pages are then rendered and cached from the new row.
    const other = db.another();
    await other.query(`UPDATE sq_flavour SET slug = 'mint-2' WHERE id = ${rows.mint.id}`);
    await site.warm('/flavours/mint-2/', '/about/');
    // The stale instance still says slug 'mint': the page of the stored row, mint-2, must go.
    stale.stock = 9;
    await stale.save();
    const page = await site.get('/flavours/mint-2/');
    expect(page.cache).toBe('MISS');
    expect(page.body).toContain('stock: 9 |');
    await site.expectHit('/about/');
  });

  test('a stale instance whose slug is saved: the page of the row as stored goes too', async () => {
    const stale = await shop.Flavour.findByPk(rows.mint.id, { rejectOnEmpty: true });
    await db.another().query(`UPDATE sq_flavour SET slug = 'mint-2' WHERE id = ${rows.mint.id}`);
    await site.warm('/flavours/mint-2/', '/about/');
    await stale.update({ slug: 'mint-3' });
    const old = await site.get('/flavours/mint-2/');
    expect([old.status, old.cache]).toEqual([404, 'MISS']);
    await site.expectHit('/about/');
  });

  test('a stale instance: the row after the save is read again when the columns it did not write differ', async () => {
    for (const c of cleanup.splice(0)) await c();
    const d = createDumper({ logger: false });
    // Paths that need a column the save writes (name) and one it does not (slug).
    d.register(shop.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/flavours/${f.slug}/${f.name}/`] });
    const calls = invalidations(d);
    const h = sequelizeDumper(d, db.sequelize);
    try {
      const stale = await shop.Flavour.findByPk(rows.mint.id, { rejectOnEmpty: true });
      await db.another().query(`UPDATE sq_flavour SET slug = 'mint-2' WHERE id = ${rows.mint.id}`);
      await stale.update({ name: 'Mint leaf' });
      // As stored before; the instance; the row as it is now, which neither of them is.
      expect(calls).toEqual([['/flavours/mint-2/Mint/', '/flavours/mint/Mint leaf/', '/flavours/mint-2/Mint leaf/']]);
    } finally {
      h.close();
      await d.close();
    }
  });

  test('an upsert and a bulkCreate with updateOnDuplicate: the rows as they were before, and as they are after', async () => {
    for (const c of cleanup.splice(0)) await c();
    const d = createDumper({ logger: false });
    d.register(shop.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/names/${f.name}/`] });
    const calls = invalidations(d);
    const h = sequelizeDumper(d, db.sequelize);
    try {
      await shop.Flavour.upsert({ slug: 'mint', name: 'Mint leaf' });
      await shop.Flavour.bulkCreate([{ slug: 'chocolate', name: 'Dark' }], { updateOnDuplicate: ['name'] });
      expect(calls).toEqual([
        ['/names/Mint/', '/names/Mint leaf/'],
        ['/names/Chocolate/', '/names/Dark/'],
      ]);
    } finally {
      h.close();
      await d.close();
    }
  });

  test('a write by where that touches more rows than were read just before it invalidates every page, with a warning', async () => {
    await site.warm('/flavours/mint/', '/about/');
    // Another connection adds a matching row between page-dumper's read and the UPDATE.
    const other = db.another();
    let armed = true;
    db.sequelize.addHook('beforeQuery', 'test-race', async (options: { type?: string }) => {
      if (!armed || options.type !== 'BULKUPDATE') return;
      armed = false;
      await other.query("INSERT INTO sq_flavour (slug, name, stock, \"createdAt\", \"updatedAt\") VALUES ('lemon', 'Lemon', 5, '2024-01-01', '2024-01-01')".replaceAll('"', target.dialect === 'mariadb' ? '`' : '"'));
    });
    try {
      await shop.Flavour.update({ name: 'In stock' }, { where: { stock: 5 } });
    } finally {
      db.sequelize.removeHook('beforeQuery', 'test-race');
    }
    expect(armed).toBe(false);
    await site.expectMiss('/about/', '/flavours/mint/');
    expect(log.warnings).toEqual(['dumper: sequelize: cannot tell which rows an update of Flavour by where (it touched more rows than matched just before it) changed; invalidating every page']);
    log.warnings.length = 0;
  });

  test('Model.truncate() invalidates the pages of every row; with cascade (other tables too), every page', async () => {
    await site.warm('/flavours/chocolate/', '/flavours/mint/', '/about/');
    await shop.Review.truncate();
    await site.expectMiss('/flavours/chocolate/');
    await site.expectHit('/about/', '/flavours/mint/');
    expect(log.warnings).toEqual([]);
    await shop.Review.truncate({ cascade: true });
    await site.expectMiss('/about/', '/flavours/mint/');
    expect(log.warnings).toEqual(['dumper: sequelize: cannot tell which rows a truncate of Review (a truncate with cascade empties other tables too) changed; invalidating every page']);
    log.warnings.length = 0;
  });

  test('writes of a model that is not registered run as without page-dumper: no query added, nothing invalidated', async () => {
    await site.warm('/flavours/', '/about/');
    const before = db.counter.count;
    const note = await shop.Note.create({ text: 'a' });
    await note.update({ text: 'b' });
    await shop.Note.update({ text: 'c' }, { where: {} });
    await shop.Note.destroy({ where: {} });
    await shop.Note.increment('id', { where: { id: -1 } });
    expect(db.counter.since(before).filter((sql) => /\bSELECT\b/i.test(sql))).toEqual([]);
    await site.expectHit('/flavours/', '/about/');
  });

  test('what a write costs: one SELECT for a save or a destroy, two for a write by where', async () => {
    const statements = async (write: () => Promise<unknown>) => {
      const before = db.counter.count;
      await write();
      return db.counter.since(before).map((sql) => /:\s*(\w+)/.exec(sql)![1]!.toUpperCase());
    };
    expect(await statements(() => rows.mint.update({ name: 'Mint 2' }))).toEqual(['SELECT', 'UPDATE']);
    expect(await statements(() => shop.Flavour.create({ slug: 'lemon', name: 'Lemon' }))).toEqual(['INSERT']);
    expect(await statements(() => shop.Flavour.update({ name: 'Mint 3' }, { where: { slug: 'mint' } }))).toEqual(['SELECT', 'UPDATE', 'SELECT']);
    expect(await statements(() => shop.Flavour.destroy({ where: { slug: 'lemon' }, force: true }))).toEqual(['SELECT', 'DELETE']);
    expect(await statements(() => rows.chocolate.destroy())).toEqual(['SELECT', 'UPDATE']);
  });
});
