/**
 * Every write path of MikroORM, each with a test that fails when its invalidation is removed:
 * flushes (create, update of a column and of the slug, delete, many-to-many changes from either
 * side, a collection replaced without loading it, a many-to-one moved), the native writes
 * (`nativeUpdate`, `nativeDelete`, `insert`, `insertMany`, `upsert`, `upsertMany`) and
 * QueryBuilder writes (update, delete, insert, upsert, truncate), the `maxRows` fallback to
 * every page, and the writes page-dumper leaves alone. On SQLite, PostgreSQL and MariaDB.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { mikroOrmDumper, type MikroOrmDumper, type MikroOrmDumperOptions } from '../../../src/orm/mikro-orm/index.js';
import { register, seed, shop, shopApp, type Shop } from './shop.js';
import { kinds, openDatabase, recordingLogger, Site, type Counted, type TestDatabase } from './support.js';

const targets = await kinds();

describe.each(targets)('MikroORM writes on %s', (kind) => {
  let db: TestDatabase;
  let writer: Counted;
  let reader: Counted;
  const w = shop();
  const r = shop();
  let dumper: Dumper;
  let handle: MikroOrmDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let rows: Awaited<ReturnType<typeof seed>>;

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
    await site.warm('/flavours/', '/flavours/vanilla/', '/flavours/chocolate/', '/flavours/mint/', '/sizes/small/', '/sizes/large/', '/sizes/tub/', '/about/');
  });
  afterEach(async () => {
    await stop();
    expect(log.errors).toEqual([]);
  });

  const em = () => writer.orm.em.fork();
  const expectWarned = () => {
    expect(log.warnings).toEqual([expect.stringMatching(/mikro-orm: cannot tell which rows .* changed; invalidating every page$/)]);
    log.warnings.length = 0;
  };

  // ---------------------------------------------------------------- flushes

  describe('flush', () => {
    test('a create invalidates the list and the pages of its sizes', async () => {
      const m = em();
      m.create(w.Flavour, { slug: 'pistachio', name: 'Pistachio', sizes: [m.getReference(w.Size, rows.tub.id)] });
      await m.flush();
      // The new row, and the size at the other end of its new link.
      expect(w.calls.sort()).toEqual(['Flavour:pistachio', 'Size:tub']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Pistachio');
      expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toContain('flavours: Pistachio');
      await site.expectHit('/flavours/vanilla/', '/sizes/small/', '/about/');
    });

    test('an update invalidates the row’s pages', async () => {
      const m = em();
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).name = 'Mint leaf';
      await m.flush();
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf |');
      expect((await site.expectMiss('/sizes/large/'))[0]!.body).toContain('Mint leaf');
      await site.expectHit('/flavours/vanilla/', '/sizes/small/', '/about/');
    });

    test('a new slug invalidates the old URL as well as the new one', async () => {
      const m = em();
      (await m.findOneOrFail(w.Flavour, { slug: 'mint' })).slug = 'mint-leaf';
      await m.flush();
      // The row as it was (read before the flush) and as it is.
      expect(w.calls.sort()).toEqual(['Flavour:mint', 'Flavour:mint-leaf']);
      const old = await site.get('/flavours/mint/');
      expect([old.status, old.cache]).toEqual([404, 'MISS']);
      expect((await site.get('/flavours/mint-leaf/')).body).toContain('Mint |');
      await site.expectMiss('/flavours/', '/sizes/large/');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('a delete invalidates the pages the row was on, read before it is gone', async () => {
      const m = em();
      // Removed without its sizes loaded: page-dumper reads them before the DELETE.
      m.remove(await m.findOneOrFail(w.Flavour, { slug: 'chocolate' }));
      await m.flush();
      expect((await site.get('/flavours/chocolate/')).status).toBe(404);
      expect((await site.expectMiss('/sizes/small/'))[0]!.body).toBe('Small | flavours: Vanilla');
      expect((await site.expectMiss('/flavours/'))[0]!.body).not.toContain('Chocolate');
      // Small lost a link, so its own dependentPaths ran (m2m_changed): vanilla's page shows
      // small's name and is invalidated with it. The pages showing neither stay.
      expect(w.calls.sort()).toEqual(['Flavour:chocolate', 'Size:small']);
      await site.expectHit('/flavours/mint/', '/sizes/large/', '/about/');
    });

    test('a delete reaches the rows on the other side of its many-to-many links (the join rows go with it)', async () => {
      // Flavour names only its own pages here: the sizes' pages come from the links.
      await start(undefined, (d) => {
        d.register(w.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/flavours/${f.slug}/`] });
        d.register(w.Size);
      });
      await site.warm('/sizes/small/', '/sizes/large/', '/flavours/mint/');
      const m = em();
      m.remove(await m.findOneOrFail(w.Flavour, { slug: 'chocolate' }));
      await m.flush();
      expect((await site.expectMiss('/sizes/small/'))[0]!.body).toBe('Small | flavours: Vanilla');
      await site.expectHit('/sizes/large/', '/flavours/mint/');
    });

    test('a delete of a row without a model reaches its many-to-many partners that have one', async () => {
      await start(undefined, (d) => d.register(w.Flavour));
      await site.warm('/flavours/vanilla/', '/flavours/mint/', '/flavours/chocolate/');
      const m = em();
      m.remove(await m.findOneOrFail(w.Size, { slug: 'large' }));
      await m.flush();
      expect(w.calls.sort()).toEqual(['Flavour:mint', 'Flavour:vanilla']);
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('sizes: Small |');
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('sizes:  |');
      await site.expectHit('/flavours/chocolate/');
      // The same by criteria.
      await site.warm('/flavours/vanilla/');
      w.calls.length = 0;
      expect(await em().nativeDelete(w.Size, { slug: 'small' })).toBe(1);
      expect(w.calls.sort()).toEqual(['Flavour:chocolate', 'Flavour:vanilla']);
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('sizes:  |');
      // Its other writes are left alone.
      w.calls.length = 0;
      await em().nativeUpdate(w.Size, { slug: 'tub' }, { name: 'Party tub' });
      expect(w.calls).toEqual([]);
    });

    test('a many-to-many add on the owning side invalidates both rows', async () => {
      const m = em();
      const mint = await m.findOneOrFail(w.Flavour, { slug: 'mint' }, { populate: ['sizes'] });
      mint.sizes.add(await m.findOneOrFail(w.Size, { slug: 'tub' }));
      await m.flush();
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('sizes: Large,Tub |');
      expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toContain('flavours: Mint');
      await site.expectHit('/flavours/vanilla/', '/sizes/small/', '/about/');
    });

    test('a many-to-many add on the inverse side invalidates both rows', async () => {
      const m = em();
      const tub = await m.findOneOrFail(w.Size, { slug: 'tub' }, { populate: ['flavours'] });
      tub.flavours.add(await m.findOneOrFail(w.Flavour, { slug: 'chocolate' }));
      await m.flush();
      expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('sizes: Small,Tub |');
      expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toContain('flavours: Chocolate');
      await site.expectHit('/flavours/mint/', '/sizes/large/', '/about/');
    });

    test('a many-to-many remove invalidates both rows', async () => {
      const m = em();
      const vanilla = await m.findOneOrFail(w.Flavour, { slug: 'vanilla' }, { populate: ['sizes'] });
      vanilla.sizes.remove(vanilla.sizes.getItems().find((s) => s.slug === 'large')!);
      await m.flush();
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('sizes: Small |');
      expect((await site.expectMiss('/sizes/large/'))[0]!.body).toBe('Large | flavours: Mint');
      await site.expectHit('/flavours/chocolate/', '/sizes/tub/', '/about/');
    });

    test('a collection replaced without being loaded reaches the rows it held before', async () => {
      // Flavour names only its own pages: the size dropped is known from the database alone.
      await start(undefined, (d) => {
        d.register(w.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/flavours/${f.slug}/`] });
        d.register(w.Size);
      });
      await site.warm('/sizes/small/', '/sizes/large/', '/sizes/tub/', '/flavours/vanilla/');
      const m = em();
      const vanilla = await m.findOneOrFail(w.Flavour, { slug: 'vanilla' });
      vanilla.sizes.set([m.getReference(w.Size, rows.small.id), m.getReference(w.Size, rows.tub.id)]);
      await m.flush();
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('sizes: Small,Tub |');
      expect((await site.expectMiss('/sizes/large/'))[0]!.body).toBe('Large | flavours: Mint');
      expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toBe('Tub | flavours: Vanilla');
      // Small stays linked.
      await site.expectHit('/sizes/small/');
    });

    test('a one-to-many collection replaced without being loaded reaches the children it loses and gains', async () => {
      const seen: string[] = [];
      await start(undefined, (d) => {
        register(d, w);
        d.register(w.Note, {
          dependentPaths(note: InstanceType<Shop['Note']>) {
            seen.push(`${note.body}:${note.flavour?.slug ?? '-'}`);
            return [`/notes/${note.id}/`];
          },
        });
      });
      const m = em();
      const [a, b, c] = ['a', 'b', 'c'].map((body) => m.create(w.Note, { body, flavour: body === 'c' ? null : m.getReference(w.Flavour, rows.vanilla.id) }));
      await m.flush();
      seen.length = 0;
      const other = em();
      const vanilla = await other.findOneOrFail(w.Flavour, { slug: 'vanilla' });
      vanilla.notes.set([other.getReference(w.Note, b!.id), other.getReference(w.Note, c!.id)]);
      await other.flush();
      // a leaves vanilla: it is not in this entity manager, only the database knows it was
      // there; it is read as it was and as it is. c joins vanilla. (MikroORM also sets the
      // flavour of b and c, which it writes as their own changes.)
      expect(seen).toEqual(expect.arrayContaining(['a:vanilla', 'a:-', 'c:-', 'c:vanilla']));
      expect(seen.filter((x) => x.startsWith('a:')).sort()).toEqual(['a:-', 'a:vanilla']);
      void a;
    });

    test('a row of an explicit pivot entity reaches both rows it links', async () => {
      const m = em();
      const topping = m.create(w.Topping, { name: 'Sprinkles' });
      await m.flush();
      w.calls.length = 0;
      m.create(w.FlavourTopping, { flavour: m.getReference(w.Flavour, rows.mint.id), topping });
      await m.flush();
      // The flavour as it was (without the topping) and as it is.
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint']);
      await site.expectMiss('/flavours/mint/');
      await site.expectHit('/flavours/vanilla/', '/about/');
      w.calls.length = 0;
      m.remove(await m.findOneOrFail(w.FlavourTopping, { flavour: rows.mint.id, topping: topping.id }));
      await m.flush();
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint']);
    });

    test('a many-to-one moved invalidates the pages of the row it pointed at and of the new one', async () => {
      const m = em();
      const review = await m.findOneOrFail(w.Review, { body: 'creamy' });
      review.flavour = m.getReference(w.Flavour, rows.mint.id);
      await m.flush();
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('reviews: ');
      expect((await site.get('/flavours/vanilla/')).body).not.toContain('creamy');
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('reviews: creamy');
      await site.expectHit('/flavours/chocolate/', '/about/');
    });

    test('a flush of an entity with no model runs no query of page-dumper’s', async () => {
      const m = em();
      const before = writer.queries();
      m.create(w.Note, { body: 'hello' });
      await m.flush();
      expect(writer.statements.slice(-3).map((s) => s.split(' ')[1])).toEqual(['begin', 'insert', 'commit']);
      expect(writer.queries() - before).toBe(3);
      await site.expectHit('/flavours/', '/about/');
    });

    test('a flush touching more than maxRows rows invalidates every page, with a warning', async () => {
      await start({ maxRows: 1 });
      await site.warm('/flavours/', '/about/');
      const m = em();
      for (const f of await m.find(w.Flavour, { slug: { $in: ['mint', 'chocolate'] } })) f.name += '!';
      await m.flush();
      expectWarned();
      await site.expectMiss('/about/', '/flavours/');
    });
  });

  // ---------------------------------------------------------------- native writes

  describe('native writes', () => {
    test('nativeUpdate() invalidates the matching rows as they were and as they are', async () => {
      const n = await em().nativeUpdate(w.Flavour, { slug: { $in: ['mint', 'chocolate'] } }, { name: 'Sorbet' });
      expect(n).toBe(2);
      expect(w.calls.sort()).toEqual(['Flavour:chocolate', 'Flavour:chocolate', 'Flavour:mint', 'Flavour:mint']);
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Sorbet |');
      expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('Sorbet |');
      await site.expectMiss('/sizes/small/', '/sizes/large/', '/flavours/');
      await site.expectHit('/flavours/vanilla/', '/sizes/tub/', '/about/');
    });

    test('nativeUpdate() of a slug invalidates the old URL', async () => {
      await em().nativeUpdate(w.Flavour, { slug: 'mint' }, { slug: 'mint-leaf' });
      expect((await site.get('/flavours/mint/')).status).toBe(404);
      expect((await site.get('/flavours/mint-leaf/')).body).toContain('Mint |');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('nativeUpdate() moving a row to another parent invalidates the new parent’s page too', async () => {
      // The review as it is after the write names mint's page; as it was, vanilla's.
      expect(await em().nativeUpdate(w.Review, { body: 'creamy' }, { flavour: rows.mint.id })).toBe(1);
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).not.toContain('creamy');
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('reviews: creamy');
      await site.expectHit('/flavours/chocolate/', '/about/');
    });

    test('nativeDelete() invalidates the rows before they are gone, and their many-to-many partners', async () => {
      await start(undefined, (d) => {
        d.register(w.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/flavours/${f.slug}/`, '/flavours/'] });
        d.register(w.Size);
      });
      await site.warm('/flavours/', '/flavours/chocolate/', '/sizes/small/', '/sizes/large/');
      expect(await em().nativeDelete(w.Flavour, { slug: 'chocolate' })).toBe(1);
      expect((await site.get('/flavours/chocolate/')).status).toBe(404);
      expect((await site.expectMiss('/flavours/'))[0]!.body).not.toContain('Chocolate');
      expect((await site.expectMiss('/sizes/small/'))[0]!.body).toBe('Small | flavours: Vanilla');
      await site.expectHit('/sizes/large/');
    });

    test('insert() invalidates the new row’s pages', async () => {
      await em().insert(w.Flavour, { slug: 'pistachio', name: 'Pistachio' });
      expect(w.calls).toEqual(['Flavour:pistachio']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Pistachio');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('insert() with many-to-many values reaches the rows it links the new row to', async () => {
      // Flavour names only its own pages here: the size's page comes from the new link.
      await start(undefined, (d) => {
        d.register(w.Flavour, { dependentPaths: (f: InstanceType<Shop['Flavour']>) => [`/flavours/${f.slug}/`, '/flavours/'] });
        d.register(w.Size);
      });
      await site.warm('/flavours/', '/sizes/tub/', '/sizes/small/');
      await em().insert(w.Flavour, { slug: 'pistachio', name: 'Pistachio', sizes: [rows.tub.id] });
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Pistachio');
      expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toBe('Tub | flavours: Pistachio');
      await site.expectHit('/sizes/small/');
    });

    test('insert() of an entity instance invalidates the new row’s pages', async () => {
      const m = em();
      await m.insert(m.create(w.Flavour, { slug: 'pistachio', name: 'Pistachio' }, { persist: false }));
      expect(w.calls).toEqual(['Flavour:pistachio']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Pistachio');
    });

    test('insertMany() reaches every new row', async () => {
      await em().insertMany(w.Flavour, [
        { slug: 'pistachio', name: 'Pistachio' },
        { slug: 'lemon', name: 'Lemon' },
        { slug: 'coffee', name: 'Coffee' },
      ]);
      expect(w.calls.sort()).toEqual(['Flavour:coffee', 'Flavour:lemon', 'Flavour:pistachio']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Lemon');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('upsert() of an existing row invalidates it as it was and as it is', async () => {
      const m = em();
      await m.upsert(w.Flavour, { slug: 'mint', name: 'Mint leaf' });
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint']);
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf |');
      await site.expectMiss('/sizes/large/');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('upsert() of a new row invalidates its pages', async () => {
      await em().upsert(w.Flavour, { slug: 'pistachio', name: 'Pistachio' });
      expect(w.calls).toEqual(['Flavour:pistachio']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Pistachio');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('upsertMany() reaches the rows it updates and the rows it inserts', async () => {
      await em().upsertMany(w.Flavour, [
        { slug: 'mint', name: 'Mint leaf' },
        { slug: 'lemon', name: 'Lemon' },
      ]);
      expect([...new Set(w.calls)].sort()).toEqual(['Flavour:lemon', 'Flavour:mint']);
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf |');
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Lemon');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('a native delete of join-table rows (by the pivot entity’s name) reaches both rows of each link', async () => {
      const pivot = writer.orm.getMetadata().find('mo_flavour_sizes')!;
      const [flavourSide, sizeSide] = pivot.relations.map((p) => p.name);
      await em().nativeDelete('mo_flavour_sizes', { [flavourSide!]: rows.vanilla.id, [sizeSide!]: rows.large.id });
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('sizes: Small |');
      expect((await site.expectMiss('/sizes/large/'))[0]!.body).toBe('Large | flavours: Mint');
      await site.expectHit('/flavours/chocolate/', '/sizes/tub/', '/about/');
    });

    test('a native write of an entity with no model runs exactly its own query', async () => {
      const before = writer.queries();
      await em().nativeUpdate(w.Note, { body: 'x' }, { body: 'y' });
      await em().insert(w.Note, { body: 'z' });
      expect(writer.queries() - before).toBe(2);
      await site.expectHit('/flavours/', '/about/');
    });

    test('nativeUpdate() matching more than maxRows rows invalidates every page, with a warning', async () => {
      await start({ maxRows: 1 });
      await site.warm('/flavours/', '/about/');
      expect(await em().nativeUpdate(w.Flavour, { slug: { $in: ['mint', 'chocolate'] } }, { name: 'Sorbet' })).toBe(2);
      expect(w.calls).toEqual([]);
      expectWarned();
      await site.expectMiss('/about/', '/flavours/mint/');
    });

    test('nativeDelete() matching more than maxRows rows invalidates every page, with a warning', async () => {
      await em().insertMany(w.Review, [
        { body: 'a', flavour: rows.mint.id },
        { body: 'b', flavour: rows.mint.id },
      ]);
      await start({ maxRows: 1 });
      await site.warm('/flavours/mint/', '/about/');
      expect(await em().nativeDelete(w.Review, { body: 'creamy' })).toBe(1);
      expect(log.warnings).toEqual([]);
      await site.expectHit('/flavours/mint/', '/about/');
      expect(await em().nativeDelete(w.Review, { flavour: rows.mint.id })).toBe(2);
      expectWarned();
      await site.expectMiss('/about/', '/flavours/mint/');
    });
  });

  // ---------------------------------------------------------------- QueryBuilder writes

  describe('QueryBuilder writes', () => {
    const qb = <T extends object>(entity: new () => T) => (em() as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(entity);

    test('an update invalidates the matching rows as they were and as they are', async () => {
      await qb(w.Flavour).update({ slug: 'mint-leaf' }).where({ slug: 'mint' }).execute();
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint-leaf']);
      expect((await site.get('/flavours/mint/')).status).toBe(404);
      await site.expectMiss('/flavours/', '/sizes/large/');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('an update whose where crosses a relation (a subquery) finds its rows', async () => {
      // Reviews of the flavour whose slug is vanilla.
      await qb(w.Review).update({ body: 'dreamy' }).where({ flavour: { slug: 'vanilla' } });
      expect(w.calls).toEqual(['Review:creamy', 'Review:dreamy']);
      expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('reviews: dreamy');
      await site.expectHit('/flavours/mint/', '/about/');
    });

    test('a delete invalidates the rows before they are gone', async () => {
      await qb(w.Flavour).delete().where({ slug: 'mint' }).execute();
      expect(w.calls.sort()).toEqual(['Flavour:mint', 'Size:large']);
      expect((await site.get('/flavours/mint/')).status).toBe(404);
      expect((await site.expectMiss('/sizes/large/'))[0]!.body).toBe('Large | flavours: Vanilla');
      await site.expectHit('/flavours/chocolate/', '/about/');
    });

    test('an insert of several rows reaches each of them', async () => {
      await qb(w.Flavour).insert([
        { slug: 'lemon', name: 'Lemon' },
        { slug: 'coffee', name: 'Coffee' },
      ]);
      expect(w.calls.sort()).toEqual(['Flavour:coffee', 'Flavour:lemon']);
      expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Coffee');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('an upsert (insert ... on conflict merge) invalidates the row before and after', async () => {
      await qb(w.Flavour).insert({ slug: 'mint', name: 'Mint leaf' }).onConflict('slug').merge(['name']).execute();
      expect(w.calls).toEqual(['Flavour:mint', 'Flavour:mint']);
      expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf |');
      await site.expectHit('/flavours/vanilla/', '/about/');
    });

    test('a truncate invalidates every page, with a warning', async () => {
      await qb(w.Review).truncate().execute();
      expectWarned();
      await site.expectMiss('/about/', '/flavours/vanilla/');
    });

    test('an update matching more than maxRows rows invalidates every page, with a warning', async () => {
      await start({ maxRows: 1 });
      await site.warm('/flavours/', '/about/');
      await qb(w.Flavour).update({ name: 'Sorbet' }).where({ slug: { $in: ['mint', 'chocolate'] } });
      expect(w.calls).toEqual([]);
      expectWarned();
      await site.expectMiss('/about/', '/flavours/');
    });
  });
});
