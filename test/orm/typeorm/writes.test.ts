/**
 * Every kind of write TypeORM makes invalidates exactly the pages that show the rows it touched,
 * on PostgreSQL, SQLite and MariaDB: pages are served through `withDumper`, warmed to a HIT, and
 * after the write the changed ones are a MISS with the new data while an unrelated page is still
 * a HIT (so no test passes by invalidating everything).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { typeormDumper, type TypeormDumper, type TypeormDumperOptions } from '../../../src/orm/typeorm/index.js';
import { AuditLog, entities, Flavour, register, Review, seed, shopApp, Size, type Topping } from './shop.js';
import { databases, recordingLogger, Site, type Database } from './support.js';

const targets = await databases();

describe.each(targets)('TypeORM writes on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;
  let rows: Awaited<ReturnType<typeof seed>>;
  let log: ReturnType<typeof recordingLogger>;
  /** Set by the tests that expect the model-wide fallback. */
  let fallbackExpected: boolean;

  beforeAll(async () => {
    db = await target.open(entities);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function install(options?: TypeormDumperOptions, registerModels = register) {
    handle?.close();
    await dumper?.close();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    registerModels(dumper);
    handle = typeormDumper(dumper, db.dataSource, options);
    await site?.close();
    site = await Site.start(dumper, db.logger, shopApp(db.dataSource));
  }

  beforeEach(async () => {
    fallbackExpected = false;
    await db.clear();
    rows = await seed(db.dataSource);
    await install();
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
    if (!fallbackExpected) expect(log.warnings).toEqual([]);
  });

  const flavours = () => db.dataSource.getRepository(Flavour);
  const sizes = () => db.dataSource.getRepository(Size);

  test('save() of a new row invalidates the list and the pages of its sizes', async () => {
    await site.warm('/flavours/', '/sizes/small/', '/sizes/tub/', '/flavours/mint/', '/about/');
    await flavours().save({ slug: 'pistachio', name: 'Pistachio', sizes: [rows.small] });
    const [list, small] = await site.expectMiss('/flavours/', '/sizes/small/');
    expect(list!.body).toContain('Pistachio');
    expect(small!.body).toContain('Pistachio');
    await site.expectHit('/sizes/tub/', '/flavours/mint/', '/about/');
  });

  test('save() of a changed row invalidates its pages, including the page of its old slug', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/', '/sizes/large/', '/flavours/mint/', '/about/');
    const vanilla = await flavours().findOneByOrFail({ slug: 'vanilla' });
    vanilla.name = 'Vanilla bean';
    vanilla.slug = 'vanilla-bean';
    await flavours().save(vanilla);
    const [old, list, large] = await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/large/');
    expect(old!.status).toBe(404);
    expect(list!.body).toContain('Vanilla bean');
    expect(large!.body).toContain('Vanilla bean');
    expect((await site.get('/flavours/vanilla-bean/')).body).toContain('Vanilla bean');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('remove() invalidates every page the row was on', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/', '/sizes/large/', '/flavours/mint/', '/about/');
    await flavours().remove(await flavours().findOneByOrFail({ slug: 'vanilla' }));
    const [page, list, large] = await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/large/');
    expect(page!.status).toBe(404);
    expect(list!.body).not.toContain('Vanilla');
    expect(large!.body).not.toContain('Vanilla');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('remove() of a bare { id } still finds the pages the row was on', async () => {
    await site.warm('/flavours/vanilla/', '/sizes/large/', '/flavours/mint/');
    await flavours().remove(flavours().create({ id: rows.vanilla.id }));
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.status).toBe(404);
    expect((await site.expectMiss('/sizes/large/'))[0]!.body).not.toContain('Vanilla');
    await site.expectHit('/flavours/mint/');
  });

  test('softRemove() and recover() invalidate the row’s pages', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/', '/sizes/large/', '/flavours/mint/');
    const vanilla = await flavours().findOneByOrFail({ slug: 'vanilla' });
    await flavours().softRemove(vanilla);
    const [gone, list, large] = await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/large/');
    expect(gone!.status).toBe(404);
    expect(list!.body).not.toContain('Vanilla');
    expect(large!.body).not.toContain('Vanilla');
    await site.warm('/flavours/', '/sizes/large/');
    await flavours().recover(vanilla);
    const [back, list2, large2] = await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/large/');
    expect(back!.status).toBe(200);
    expect(list2!.body).toContain('Vanilla');
    expect(large2!.body).toContain('Vanilla');
    await site.expectHit('/flavours/mint/');
  });

  test('softRemove(), recover() and softDelete() see the row as it was before and as it is after', async () => {
    // A flavour is on the list while it is not deleted, and in the archive while it is: each page
    // is named only by the row as it was before the write, or only as it is after it.
    await install(undefined, (d) => {
      d.register(Size);
      d.register('Flavour', {
        dependentPaths: (f: Flavour) => [f.deletedAt ? '/archive/' : '/flavours/', `/flavours/${f.slug}/`],
      });
    });
    await site.warm('/flavours/', '/archive/', '/about/');
    const vanilla = await flavours().findOneByOrFail({ slug: 'vanilla' });
    await flavours().softRemove(vanilla);
    expect((await site.expectMiss('/flavours/'))[0]!.body).not.toContain('Vanilla');
    expect((await site.expectMiss('/archive/'))[0]!.body).toBe('archive: Vanilla');
    await site.warm('/flavours/', '/archive/');
    await flavours().recover(vanilla);
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Vanilla');
    expect((await site.expectMiss('/archive/'))[0]!.body).toBe('archive: ');
    await site.warm('/flavours/', '/archive/');
    await flavours().softDelete({ slug: 'mint' });
    expect((await site.expectMiss('/flavours/'))[0]!.body).not.toContain('Mint');
    expect((await site.expectMiss('/archive/'))[0]!.body).toBe('archive: Mint');
    await site.warm('/flavours/', '/archive/');
    await flavours().restore({ slug: 'mint' });
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Mint');
    expect((await site.expectMiss('/archive/'))[0]!.body).toBe('archive: ');
    await site.expectHit('/about/');
  });

  test('saving a changed many-to-many relation invalidates the row and the rows added and removed', async () => {
    await site.warm('/flavours/vanilla/', '/sizes/small/', '/sizes/tub/', '/flavours/mint/', '/about/');
    const vanilla = await flavours().findOneOrFail({ where: { slug: 'vanilla' }, relations: { sizes: true } });
    vanilla.sizes = [rows.large, rows.tub]; // small removed, tub added
    await flavours().save(vanilla);
    const [page, small, tub] = await site.expectMiss('/flavours/vanilla/', '/sizes/small/', '/sizes/tub/');
    expect(page!.body).toContain('sizes: Large,Tub');
    expect(small!.body).not.toContain('Vanilla');
    expect(tub!.body).toContain('Vanilla');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('a many-to-many removal also invalidates what both rows showed while still linked', async () => {
    // A size whose paths are only its flavours' pages: after the link is gone, neither row names
    // /sizes/small/ any more; only the flavour as it was before the removal does.
    await install(undefined, (d) => {
      d.register(Flavour);
      d.register('Size', { dependentPaths: (size: Size) => size.flavours.map((f) => `/flavours/${f.slug}/`) });
    });
    await site.warm('/sizes/small/', '/about/');
    const vanilla = await flavours().findOneOrFail({ where: { slug: 'vanilla' }, relations: { sizes: true } });
    vanilla.sizes = vanilla.sizes.filter((s) => s.slug !== 'small');
    await flavours().save(vanilla);
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).not.toContain('Vanilla');
    await site.expectHit('/about/');
    await site.warm('/sizes/small/');
    await db.dataSource.createQueryBuilder().relation(Flavour, 'sizes').of(rows.chocolate).remove(rows.small);
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).toBe('Small | flavours: ');
    await site.expectHit('/about/');
  });

  test('RelationQueryBuilder add() and remove() invalidate both sides, from either side', async () => {
    const relation = () => db.dataSource.createQueryBuilder().relation(Flavour, 'sizes');
    await site.warm('/flavours/mint/', '/sizes/tub/', '/flavours/chocolate/', '/about/');
    await relation().of(rows.mint).add(rows.tub);
    const [mint, tub] = await site.expectMiss('/flavours/mint/', '/sizes/tub/');
    expect(mint!.body).toContain('sizes: Tub');
    expect(tub!.body).toContain('flavours: Mint');
    await site.expectHit('/flavours/chocolate/', '/about/');

    await site.warm('/flavours/mint/', '/sizes/tub/');
    await relation().of(rows.mint.id).remove(rows.tub.id);
    const [mint2, tub2] = await site.expectMiss('/flavours/mint/', '/sizes/tub/');
    expect(mint2!.body).toContain('sizes:  |');
    expect(tub2!.body).toContain('flavours: ');
    expect(tub2!.body).not.toContain('Mint');
    await site.expectHit('/flavours/chocolate/', '/about/');

    // From the inverse side, and both at once.
    await site.warm('/flavours/mint/', '/sizes/tub/', '/flavours/chocolate/', '/sizes/small/');
    await db.dataSource.createQueryBuilder().relation(Size, 'flavours').of(rows.tub).addAndRemove([rows.chocolate], []);
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('sizes: Small,Tub');
    expect((await site.expectMiss('/sizes/tub/'))[0]!.body).toContain('Chocolate');
    await site.warm('/flavours/chocolate/', '/sizes/tub/');
    await db.dataSource.createQueryBuilder().relation(Size, 'flavours').of(rows.small).remove(rows.chocolate);
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('sizes: Tub |');
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).not.toContain('Chocolate');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('repository.update() by criteria invalidates the matching rows’ pages', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/', '/sizes/large/', '/flavours/mint/', '/about/');
    await flavours().update({ slug: 'vanilla' }, { name: 'Vanilla bean' });
    for (const page of await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/large/')) expect(page.body).toContain('Vanilla bean');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('repository.update() that changes the column it selects by invalidates the old and the new page', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/mint/');
    expect((await site.get('/flavours/vanilla-2/')).status).toBe(404);
    await flavours().update({ slug: 'vanilla' }, { slug: 'vanilla-2' });
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.status).toBe(404);
    expect((await site.get('/flavours/vanilla-2/')).status).toBe(200);
    await site.expectHit('/flavours/mint/');
  });

  test('repository.delete() by criteria invalidates the row’s pages and its many-to-many partners', async () => {
    await site.warm('/flavours/vanilla/', '/flavours/', '/sizes/small/', '/sizes/large/', '/flavours/mint/', '/about/');
    await flavours().delete({ slug: 'vanilla' });
    const [page, list, small, large] = await site.expectMiss('/flavours/vanilla/', '/flavours/', '/sizes/small/', '/sizes/large/');
    expect(page!.status).toBe(404);
    expect(list!.body).not.toContain('Vanilla');
    expect(small!.body).not.toContain('Vanilla');
    expect(large!.body).not.toContain('Vanilla');
    await site.expectHit('/flavours/mint/', '/about/');
  });

  test('repository.delete() by criteria invalidates what its many-to-many partners showed while linked', async () => {
    // Large comes only with vanilla: once vanilla is gone, it is unused.
    await site.warm('/unused-sizes/', '/flavours/mint/');
    expect((await site.get('/unused-sizes/')).body).toBe('unused: Tub');
    await flavours().delete({ slug: 'vanilla' });
    expect((await site.expectMiss('/unused-sizes/'))[0]!.body).toBe('unused: Large,Tub');
    await site.expectHit('/flavours/mint/');
    // And the other way: a size that gets its first flavour leaves the page.
    await site.warm('/unused-sizes/');
    await db.dataSource.createQueryBuilder().relation(Flavour, 'sizes').of(rows.mint).add(rows.tub);
    expect((await site.expectMiss('/unused-sizes/'))[0]!.body).toBe('unused: Large');
  });

  test('a row that starts to match between the lookup and the write: every page is invalidated, with a warning', async () => {
    fallbackExpected = true;
    await flavours().update({ slug: 'mint' }, { likes: 7 });
    await site.warm('/flavours/mint/', '/about/');
    // Another connection inserts a matching row after the lookup, before the UPDATE runs.
    let sneaked = false;
    const sneak = {
      async beforeUpdate(event: { metadata: { target: unknown }; databaseEntity?: unknown }) {
        if (sneaked || event.metadata.target !== Flavour || event.databaseEntity !== undefined) return;
        sneaked = true;
        await db.dataSource.getRepository(Flavour).insert({ slug: 'sneaky', name: 'Sneaky', likes: 7 });
      },
    };
    db.dataSource.subscribers.push(sneak);
    try {
      await flavours().update({ likes: 7 }, { name: 'Lucky seven' });
    } finally {
      db.dataSource.subscribers.splice(db.dataSource.subscribers.indexOf(sneak), 1);
    }
    expect(sneaked).toBe(true);
    await site.expectMiss('/flavours/mint/', '/about/');
    expect((await site.get('/flavours/sneaky/')).body).toContain('Lucky seven');
    expect(log.warnings).toEqual([
      'dumper: typeorm: cannot tell which rows an update of Flavour by criteria, which touched more rows than matched just before it, changed; invalidating every page',
    ]);
  });

  test('repository.softDelete() and restore() by criteria', async () => {
    await site.warm('/flavours/chocolate/', '/flavours/', '/sizes/small/', '/flavours/mint/');
    await flavours().softDelete({ slug: 'chocolate' });
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.status).toBe(404);
    expect((await site.expectMiss('/flavours/'))[0]!.body).not.toContain('Chocolate');
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).not.toContain('Chocolate');
    await site.warm('/flavours/', '/sizes/small/');
    await flavours().restore({ slug: 'chocolate' });
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.status).toBe(200);
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Chocolate');
    expect((await site.expectMiss('/sizes/small/'))[0]!.body).toContain('Chocolate');
    await site.expectHit('/flavours/mint/');
  });

  test('QueryBuilder update and delete with a condition string', async () => {
    await site.warm('/flavours/chocolate/', '/flavours/mint/', '/flavours/vanilla/');
    await db.dataSource.createQueryBuilder().update(Flavour).set({ name: 'Dark chocolate' }).where('slug = :s', { s: 'chocolate' }).execute();
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).toContain('Dark chocolate');
    await site.expectHit('/flavours/mint/', '/flavours/vanilla/');
    await flavours().createQueryBuilder('f').delete().where('slug = :s', { s: 'mint' }).execute();
    expect((await site.expectMiss('/flavours/mint/'))[0]!.status).toBe(404);
    await site.expectHit('/flavours/vanilla/');
  });

  test('increment() and decrement()', async () => {
    await site.warm('/flavours/mint/', '/flavours/vanilla/');
    await flavours().increment({ slug: 'mint' }, 'likes', 3);
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('likes: 3');
    await flavours().decrement({ slug: 'mint' }, 'likes', 1);
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('likes: 2');
    await site.expectHit('/flavours/vanilla/');
  });

  test('insert() and a QueryBuilder insert invalidate the list', async () => {
    await site.warm('/flavours/', '/flavours/mint/');
    await flavours().insert({ slug: 'lemon', name: 'Lemon' });
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Lemon');
    await db.dataSource.createQueryBuilder().insert().into(Flavour).values([{ slug: 'lime', name: 'Lime' }, { slug: 'kiwi', name: 'Kiwi' }]).execute();
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Kiwi,Lemon,Lime');
    await site.expectHit('/flavours/mint/');
  });

  test('upsert() that overwrites a row invalidates its pages', async () => {
    await site.warm('/flavours/mint/', '/flavours/', '/flavours/chocolate/');
    await flavours().upsert({ slug: 'mint', name: 'Mint leaf' }, ['slug']);
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('Mint leaf');
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Mint leaf');
    await site.expectHit('/flavours/chocolate/');
    // An upsert that moves a review to another flavour: the old flavour's page too.
    await db.dataSource.getRepository(Review).save({ code: 'r1', body: 'creamy', flavour: rows.chocolate });
    await site.warm('/flavours/chocolate/', '/flavours/vanilla/', '/about/');
    await db.dataSource.getRepository(Review).upsert({ code: 'r1', body: 'creamy', flavour: rows.vanilla }, ['code']);
    expect((await site.expectMiss('/flavours/chocolate/'))[0]!.body).not.toContain('creamy');
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('reviews: creamy');
    await site.expectHit('/about/');
  });

  test('a many-to-one row registered by name: creating, moving and deleting it invalidate its flavour’s pages, old and new', async () => {
    const reviews = db.dataSource.getRepository(Review);
    await site.warm('/flavours/mint/', '/flavours/vanilla/', '/flavours/chocolate/');
    const review = await reviews.save({ body: 'fresh!', flavour: rows.mint });
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('reviews: fresh!');
    await site.expectHit('/flavours/vanilla/');

    await site.warm('/flavours/mint/');
    review.flavour = rows.vanilla;
    await reviews.save(review);
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).not.toContain('fresh!');
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).toContain('reviews: fresh!');

    // Moved back by criteria: the page it moves to is named only by the row as it is after.
    await site.warm('/flavours/mint/', '/flavours/vanilla/');
    await reviews.update({ id: review.id }, { flavour: { id: rows.mint.id } });
    expect((await site.expectMiss('/flavours/mint/'))[0]!.body).toContain('reviews: fresh!');
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).not.toContain('fresh!');
    await reviews.update({ id: review.id }, { flavour: { id: rows.vanilla.id } });

    await site.warm('/flavours/vanilla/');
    await reviews.remove(review);
    expect((await site.expectMiss('/flavours/vanilla/'))[0]!.body).not.toContain('fresh!');
    await site.expectHit('/flavours/chocolate/');
  });

  test('an EntitySchema without a class, registered by name', async () => {
    const toppings = db.dataSource.getRepository<Topping>('Topping');
    await site.warm('/toppings/', '/about/');
    const sprinkles = await toppings.save({ name: 'Sprinkles' });
    expect((await site.expectMiss('/toppings/'))[0]!.body).toContain('Sprinkles');
    await site.warm('/toppings/');
    await toppings.update({ name: 'Sprinkles' }, { name: 'Rainbow sprinkles' });
    expect((await site.expectMiss('/toppings/'))[0]!.body).toContain('Rainbow sprinkles');
    await site.warm('/toppings/');
    await toppings.delete(sprinkles.id);
    expect((await site.expectMiss('/toppings/'))[0]!.body).toBe('toppings: ');
    await site.expectHit('/about/');
  });

  test('writes to an entity nobody registered invalidate nothing', async () => {
    const audit = db.dataSource.getRepository(AuditLog);
    await site.warm('/flavours/', '/flavours/mint/', '/about/');
    const entry = await audit.save({ message: 'hello' });
    await audit.update(entry.id, { message: 'bye' });
    await audit.delete({ message: 'bye' });
    await site.expectHit('/flavours/', '/flavours/mint/', '/about/');
  });

  test('a criteria write matching more than maxRows rows invalidates every page, with a warning', async () => {
    await install({ maxRows: 2 });
    fallbackExpected = true;
    await site.warm('/flavours/mint/', '/about/');
    await flavours().update({ likes: 0 }, { likes: 1 }); // three rows
    await site.expectMiss('/flavours/mint/', '/about/');
    expect(log.warnings).toEqual([expect.stringMatching(/update of Flavour by criteria \(more than maxRows: 2 rows\).*invalidating every page/)]);
    // Below the limit, rows are resolved one by one again.
    await site.warm('/about/', '/flavours/mint/');
    await flavours().update({ slug: 'mint' }, { likes: 2 });
    await site.expectMiss('/flavours/mint/');
    await site.expectHit('/about/');
    expect(log.warnings).toHaveLength(1);
  });

  test('an insert that does not report its ids (updateEntity(false)) invalidates every page, with a warning', async () => {
    fallbackExpected = true;
    await site.warm('/flavours/', '/about/');
    await db.dataSource.createQueryBuilder().insert().into(Flavour).values({ slug: 'plum', name: 'Plum' }).updateEntity(false).execute();
    expect((await site.expectMiss('/flavours/'))[0]!.body).toContain('Plum');
    await site.expectMiss('/about/');
    expect(log.warnings).toEqual([expect.stringMatching(/insert into Flavour.*invalidating every page/)]);
  });

  test('a model whose dependentPaths() returns a string: the write fails with the TypeError', async () => {
    fallbackExpected = true;
    await install(undefined, (d) => {
      d.register(Flavour).register(Size);
      d.register('Topping', { dependentPaths: () => '/toppings/' as never });
    });
    const toppings = db.dataSource.getRepository<Topping>('Topping');
    const message =
      'page-dumper: Topping.dependentPaths() returned a string ("/toppings/"); it must return an array or another iterable of paths, such as ["/toppings/"]';
    // save() runs in a transaction of its own, which the error rolls back: nothing is committed
    // (every page is invalidated all the same: the caller might have gone on and committed).
    const error = await toppings.save({ name: 'Fudge' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe(message);
    expect(await toppings.count()).toBe(0);
    // insert() runs without a transaction: the row stands, so every page is invalidated, and the
    // error still reaches the caller.
    await site.warm('/about/');
    await expect(toppings.insert({ name: 'Nuts' })).rejects.toThrow(message);
    expect(await toppings.count()).toBe(1);
    await site.expectMiss('/about/');
    const warning = expect.stringMatching(/insert into Topping \(page-dumper: Topping.dependentPaths\(\) returned a string.*invalidating every page/);
    expect(log.warnings).toEqual([warning, warning]);
    // A write by criteria computes the rows' pages first: it fails before it runs.
    await expect(toppings.update({ name: 'Nuts' }, { name: 'Pecans' })).rejects.toThrow(message);
    expect((await toppings.findOneByOrFail({ name: 'Nuts' })).name).toBe('Nuts');
  });
});
