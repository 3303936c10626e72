// em.upsert() with many-to-many values rewrites the join table, as nativeUpdate() with such
// values does: the rows linked before and after the upsert (the other side) have their pages
// invalidated, also when the upserted entity has no model of its own. (MikroORM 6.6's
// upsertMany() with many-to-many values fails in the database: a column for the relation is
// written.) MariaDB is left out: MikroORM's upsert there does not return the key the join rows need.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { mikroOrmDumper, type MikroOrmDumper } from '../../../src/orm/mikro-orm/index.js';
import { seed, shop, shopApp } from './shop.js';
import { kinds, openDatabase, recordingLogger, Site, type Counted, type TestDatabase } from './support.js';

const targets = (await kinds()).filter((k) => k !== 'MariaDB');

describe.each(targets)('upserts with many-to-many values on %s', (kind) => {
  let db: TestDatabase;
  let writer: Counted;
  let reader: Counted;
  const w = shop();
  const r = shop();
  let dumper: Dumper | undefined;
  let handle: MikroOrmDumper | undefined;
  let site: Site | undefined;
  let rows: Awaited<ReturnType<typeof seed>>;

  beforeAll(async () => {
    db = await openDatabase(kind);
    writer = await db.open(w.schemas);
    reader = await db.open(r.schemas, { contextName: 'reader' });
  });
  afterAll(async () => {
    await db?.close();
  });
  /** `flavourModel`: whether flavours have a model (naming their own pages only) besides sizes. */
  async function start(flavourModel: boolean): Promise<Site> {
    await db.clear();
    rows = await seed(writer.orm.em.fork(), w);
    dumper = createDumper({ logger: recordingLogger().logger });
    if (flavourModel) dumper.register('Flavour', { dependentPaths: (f: { slug: string }) => ['/flavours/', `/flavours/${f.slug}/`] });
    dumper.register(w.Size);
    handle = mikroOrmDumper(dumper, writer.orm);
    site = await Site.start(dumper, reader, shopApp(reader, r));
    await site.warm('/sizes/small/', '/sizes/large/', '/sizes/tub/');
    return site;
  }
  beforeEach(() => {
    site = undefined;
  });
  afterEach(async () => {
    await site?.close();
    handle?.close();
    await dumper?.close();
  });
  const em = () => writer.orm.em.fork();

  test('em.upsert() reaches the rows linked before and after it', async () => {
    const s = await start(true);
    await em().upsert(w.Flavour, { id: rows.mint.id, slug: 'mint', name: 'Mint', sizes: [rows.tub.id] } as never);
    const linked = (await em().findOneOrFail(w.Flavour, { slug: 'mint' }, { populate: ['sizes'] })).sizes.getItems().map((x) => x.slug);
    expect(linked).toEqual(['tub']);
    expect((await s.get('/sizes/tub/')).body).toContain('Mint');
    expect((await s.get('/sizes/large/')).body).not.toContain('Mint');
  });

  test('an upsert of an entity without a model reaches the linked rows that have one', async () => {
    const s = await start(false);
    await em().upsert(w.Flavour, { id: rows.mint.id, slug: 'mint', name: 'Mint', sizes: [rows.tub.id] } as never);
    expect((await s.get('/sizes/tub/')).body).toContain('Mint');
    expect((await s.get('/sizes/large/')).body).not.toContain('Mint');
  });
});
