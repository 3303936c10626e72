/**
 * Every kind of Kysely write invalidates exactly the pages that show the rows it touched, on
 * SQLite, PostgreSQL and MariaDB: pages are served through `withDumper`, warmed to a HIT, and
 * after the write the changed ones are a MISS while an unrelated page is still a HIT (so no test
 * passes by invalidating everything). The writes never call the dumper.
 */
import { Kysely, sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, expectTypeOf, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { dialects, openDatabase, seed, stack, type Counted, type DB, type Stack, type TestDatabase } from './support.js';

const targets = await dialects();

describe.each(targets)('kyselyDumper writes (%s)', (dialect) => {
  let tdb: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let s: Stack;
  let expectWarnings: boolean;

  beforeAll(async () => {
    tdb = await openDatabase(dialect);
    reader = tdb.client();
    writer = tdb.client();
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  beforeEach(async () => {
    await tdb.reset();
    expectWarnings = false;
    s = await stack(writer.db, reader);
    await seed(s.db);
  });
  afterEach(async () => {
    await s?.close();
    if (!expectWarnings) expect(s.warnings).toEqual([]);
  });

  const id = async (slug: string) => (await s.db.selectFrom('ky_simple').select('id').where('slug', '=', slug).executeTakeFirstOrThrow()).id;
  const miss = async (path: string, contains?: string) => {
    const page = await s.get(path);
    expect(page.cache, `${path}: ${page.body}`).toBe('MISS');
    if (contains !== undefined) expect(page.body).toContain(contains);
  };
  const hit = async (path: string) => expect((await s.get(path)).cache, path).toBe('HIT');

  test('the wrapped db keeps its type, is a Kysely, and is not the instance it wraps', () => {
    expectTypeOf(s.db).toEqualTypeOf<Kysely<DB>>();
    expectTypeOf(kyselyDumper(createDumper({ logger: false }), writer.db)).toEqualTypeOf<Kysely<DB>>();
    expect(s.db).toBeInstanceOf(Kysely);
    expect(s.db).not.toBe(writer.db);
  });

  test('insert of one row invalidates its pages', async () => {
    await s.warm('/simple/', '/simple/a/');
    const result = await s.db.insertInto('ky_simple').values({ slug: 'c', name: 'Gamma' }).executeTakeFirstOrThrow();
    expect(result.numInsertedOrUpdatedRows).toBe(1n);
    // What Kysely returns without page-dumper: PostgreSQL reports no insertId.
    expect(result.insertId).toBe(dialect === 'postgres' ? undefined : 3n);
    await miss('/simple/', 'Gamma');
    await hit('/simple/a/');
  });

  test('insert of many rows invalidates the pages of each', async () => {
    await s.warm('/simple/a/', '/simple/b/', '/related/r/');
    const [a, b] = [await id('a'), await id('b')];
    await s.db
      .insertInto('ky_comment')
      .values([
        { target_type: 'simple', target_id: a, body: 'on a' },
        { target_type: 'simple', target_id: b, body: 'on b' },
      ])
      .execute();
    await miss('/simple/a/', 'comments: on a');
    await miss('/simple/b/', 'comments: on b');
    await hit('/related/r/');
  });

  test('insert with a RETURNING of its own returns what it asked for, and still invalidates', async () => {
    await s.warm('/simple/a/', '/simple/b/');
    const a = await id('a');
    if (dialect === 'mysql') {
      // MySQL has no RETURNING: the row is found again by the id the insert reports.
      await s.db.insertInto('ky_comment').values({ target_type: 'simple', target_id: a, body: 'yum' }).execute();
    } else {
      const rows = await s.db
        .insertInto('ky_comment')
        .values({ target_type: 'simple', target_id: a, body: 'yum' })
        .returning(['id', sql<string>`upper(body)`.as('body')])
        .execute();
      expect(rows).toEqual([{ id: 1, body: 'YUM' }]);
      await miss('/simple/a/', 'comments: yum');
      const all = await s.db.insertInto('ky_comment').values({ target_type: 'simple', target_id: a, body: 'more' }).returningAll().execute();
      expect(all).toEqual([{ id: 2, target_type: 'simple', target_id: a, body: 'more' }]);
    }
    await miss('/simple/a/', 'yum');
    await hit('/simple/b/');
  });

  test('an upsert that updates invalidates the old row and the new one', async () => {
    await s.warm('/simple/a/', '/simple/b/');
    const aid = await id('a');
    const write =
      dialect === 'mysql'
        ? s.db.insertInto('ky_simple').values({ id: aid, slug: 'a', name: 'Alpha upserted' }).onDuplicateKeyUpdate({ name: 'Alpha upserted' })
        : s.db
            .insertInto('ky_simple')
            .values({ id: aid, slug: 'a', name: 'Alpha upserted' })
            .onConflict((oc) => oc.column('id').doUpdateSet({ name: (eb) => eb.ref('excluded.name') }));
    await write.execute();
    await miss('/simple/a/', 'Alpha upserted');
    await hit('/simple/b/');
  });

  test('an upsert that renames a slug invalidates the old URL too', async () => {
    await s.warm('/simple/a/', '/simple/b/');
    const aid = await id('a');
    const write =
      dialect === 'mysql'
        ? s.db.insertInto('ky_simple').values({ id: aid, slug: 'a2', name: 'A' }).onDuplicateKeyUpdate({ slug: 'a2' })
        : s.db
            .insertInto('ky_simple')
            .values({ id: aid, slug: 'a2', name: 'A' })
            .onConflict((oc) => oc.column('id').doUpdateSet({ slug: 'a2' }));
    // MySQL: an update of a unique key the upsert may have found its row by falls back, with a warning.
    if (dialect === 'mysql') expectWarnings = true;
    await write.execute();
    expect((await s.get('/simple/a/')).status).toBe(404);
    if (dialect === 'mysql') expect(s.warnings.join('\n')).toMatch(/whose update changes a unique key/);
    else await hit('/simple/b/');
  });

  test('an upsert that does nothing invalidates nothing', async () => {
    await s.warm('/simple/a/');
    const write =
      dialect === 'mysql'
        ? s.db.insertInto('ky_simple').ignore().values({ slug: 'a', name: 'ignored' })
        : s.db.insertInto('ky_simple').values({ slug: 'a', name: 'ignored' }).onConflict((oc) => oc.column('slug').doNothing());
    if (dialect === 'mysql') expectWarnings = true; // INSERT IGNORE without a key it can read: the fallback
    await write.execute();
    if (dialect !== 'mysql') await hit('/simple/a/');
    expect((await s.get('/simple/a/')).body).toContain('Alpha |');
  });

  test('update by primary key invalidates the row before and after (a renamed slug too)', async () => {
    await s.warm('/simple/a/', '/simple/b/');
    const result = await s.db.updateTable('ky_simple').set({ slug: 'a2', name: 'Alpha 2' }).where('id', '=', await id('a')).executeTakeFirstOrThrow();
    expect(result.numUpdatedRows).toBe(1n);
    expect((await s.get('/simple/a/')).status).toBe(404);
    await miss('/simple/a2/', 'Alpha 2');
    await hit('/simple/b/');
  });

  test('update: the row after the write reaches dependentPaths too (a note moved to another simple)', async () => {
    await s.db.insertInto('ky_note').values({ body: 'n1', simple_id: await id('a') }).execute();
    await s.db.insertInto('ky_simple').values({ slug: 'c', name: 'Gamma' }).execute();
    await s.warm('/simple/a/', '/simple/b/', '/simple/c/');
    await s.db.updateTable('ky_note').set({ simple_id: await id('b') }).where('body', '=', 'n1').execute();
    await miss('/simple/a/', 'notes:  |');
    await miss('/simple/b/', 'notes: n1 |');
    await hit('/simple/c/');
  });

  test('update by predicate invalidates every row it matches, and only those', async () => {
    await s.db.insertInto('ky_simple').values({ slug: 'c', name: 'Gamma' }).execute();
    await s.warm('/simple/a/', '/simple/b/', '/simple/c/');
    const result = await s.db.updateTable('ky_simple').set({ name: 'changed' }).where('slug', 'in', ['a', 'b']).executeTakeFirstOrThrow();
    expect(result.numUpdatedRows).toBe(2n);
    await miss('/simple/a/');
    await miss('/simple/b/');
    await hit('/simple/c/');
  });

  test('update with a RETURNING of its own keeps its result', async () => {
    if (dialect === 'mysql') return;
    await s.warm('/simple/a/');
    const rows = await s.db.updateTable('ky_simple').set({ name: 'New' }).where('slug', '=', 'a').returning('name').execute();
    expect(rows).toEqual([{ name: 'New' }]);
    await miss('/simple/a/', 'New');
  });

  test('update that joins another table (FROM or JOIN) invalidates the rows it matched', async () => {
    await s.db.insertInto('ky_related_simple').values({ related_id: 1, simple_id: await id('a') }).execute();
    await s.warm('/simple/a/', '/simple/b/');
    if (dialect === 'mysql') {
      // MySQL's UPDATE of several tables: UPDATE ky_simple, ky_related_simple SET ... WHERE ...
      await s.db
        .updateTable(['ky_simple', 'ky_related_simple'])
        .set('ky_simple.name', 'Joined')
        .whereRef('ky_related_simple.simple_id', '=', 'ky_simple.id')
        .where('ky_related_simple.related_id', '=', 1)
        .execute();
    } else {
      await s.db
        .updateTable('ky_simple')
        .from('ky_related_simple')
        .set({ name: 'Joined' })
        .whereRef('ky_related_simple.simple_id', '=', 'ky_simple.id')
        .where('ky_related_simple.related_id', '=', 1)
        .execute();
    }
    await miss('/simple/a/', 'Joined');
    await hit('/simple/b/');
  });

  test('delete by predicate invalidates every row it removes, computed before they are gone', async () => {
    await s.warm('/simple/a/', '/simple/b/', '/related/r/');
    const result = await s.db.deleteFrom('ky_simple').where('slug', 'in', ['a', 'b']).executeTakeFirstOrThrow();
    expect(result.numDeletedRows).toBe(2n);
    expect((await s.get('/simple/a/')).status).toBe(404);
    expect((await s.get('/simple/b/')).status).toBe(404);
    await hit('/related/r/');
  });

  test('delete: dependentPaths reads what the delete takes away with the row (pre_delete)', async () => {
    // A note's paths need its simple's slug; deleting the simple sets the note's simple_id to NULL.
    await s.db.insertInto('ky_note').values({ body: 'n1', simple_id: await id('a') }).execute();
    await s.warm('/simple/a/', '/simple/b/');
    await s.db.deleteFrom('ky_note').where('body', '=', 'n1').execute();
    await miss('/simple/a/', 'notes:  |');
    await hit('/simple/b/');
  });

  test('delete with USING / a join invalidates the rows it removes', async () => {
    await s.db.insertInto('ky_related_simple').values({ related_id: 1, simple_id: await id('a') }).execute();
    await s.db.insertInto('ky_comment').values([
      { target_type: 'simple', target_id: await id('a'), body: 'on a' },
      { target_type: 'simple', target_id: await id('b'), body: 'on b' },
    ]).execute();
    await s.warm('/simple/a/', '/simple/b/');
    if (dialect === 'mysql') {
      await s.db
        .deleteFrom('ky_comment')
        .using('ky_comment')
        .innerJoin('ky_related_simple', 'ky_related_simple.simple_id', 'ky_comment.target_id')
        .where('ky_related_simple.related_id', '=', 1)
        .execute();
    } else if (dialect === 'postgres') {
      await s.db
        .deleteFrom('ky_comment')
        .using('ky_related_simple')
        .whereRef('ky_related_simple.simple_id', '=', 'ky_comment.target_id')
        .where('ky_related_simple.related_id', '=', 1)
        .execute();
    } else {
      // SQLite has no DELETE ... USING: a subquery says the same.
      await s.db
        .deleteFrom('ky_comment')
        .where('target_id', 'in', (eb) => eb.selectFrom('ky_related_simple').select('simple_id').where('related_id', '=', 1))
        .execute();
    }
    await miss('/simple/a/', 'comments:');
    expect((await s.get('/simple/a/')).body).not.toContain('on a');
    await hit('/simple/b/');
  });

  test('junction rows: adding and removing a many-to-many link invalidates both sides', async () => {
    await s.warm('/simple/a/', '/related/r/', '/simple/b/');
    await s.db.insertInto('ky_related_simple').values({ related_id: 1, simple_id: await id('a') }).execute();
    await miss('/simple/a/', 'related: Rho |');
    await miss('/related/r/', 'simples: Alpha |');
    await hit('/simple/b/');
    await s.warm('/simple/a/', '/related/r/');
    await s.db.deleteFrom('ky_related_simple').where('related_id', '=', 1).execute();
    await miss('/simple/a/', 'related:  |');
    await miss('/related/r/', 'simples:  |');
  });

  test('a write to an unregistered table runs as it is: no extra query, nothing invalidated', async () => {
    await s.warm('/simple/a/');
    const before = writer.queries();
    await s.db.insertInto('ky_unwatched').values({ name: 'x' }).execute();
    await s.db.updateTable('ky_unwatched').set({ name: 'y' }).execute();
    await s.db.deleteFrom('ky_unwatched').execute();
    expect(writer.queries() - before).toBe(3);
    await hit('/simple/a/');
  });

  test('a dependentPaths returning a string rejects the write with a TypeError', async () => {
    // The insert runs before its new row reaches dependentPaths: every page is invalidated, with a warning.
    expectWarnings = true;
    await expect(s.db.insertInto('ky_broken').values({ name: 'x' }).execute()).rejects.toThrow(TypeError);
    await expect(s.db.updateTable('ky_broken').set({ name: 'y' }).execute()).rejects.toThrow('ky_broken.dependentPaths() returned a string');
    // The update and the delete are rejected before they run (their rows are read first).
    await expect(s.db.deleteFrom('ky_broken').execute()).rejects.toThrow(TypeError);
    expect(await s.db.selectFrom('ky_broken').select('name').execute()).toEqual([{ name: 'x' }]);
    expect(s.warnings).toEqual([expect.stringMatching(/ky_broken: resolving its rows failed after it ran .*invalidating every page/)]);
  });

  test('above maxRows the write runs and every page is invalidated, with a warning', async () => {
    await s.close();
    s = await stack(writer.db, reader, { kysely: { maxRows: 1 } });
    expectWarnings = true;
    await s.warm('/simple/a/', '/related/r/');
    await s.db.updateTable('ky_simple').set({ name: 'many' }).execute();
    await miss('/simple/a/', 'many');
    await miss('/related/r/');
    expect(s.warnings.join('\n')).toMatch(/more than 1 rows \(the maxRows option\); invalidating every page/);
  });

  test('INSERT ... SELECT invalidates the new rows (MySQL, without RETURNING: every page, with a warning)', async () => {
    await s.warm('/simple/a/', '/related/r/');
    if (dialect === 'mysql') expectWarnings = true;
    await s.db
      .insertInto('ky_comment')
      .columns(['target_type', 'target_id', 'body'])
      .expression((eb) => eb.selectFrom('ky_simple').select([sql.lit('simple').as('t'), 'id', sql.lit('copied').as('b')]).where('slug', '=', 'a'))
      .execute();
    await miss('/simple/a/', 'comments: copied');
    if (dialect === 'mysql') {
      await miss('/related/r/');
      expect(s.warnings.join('\n')).toMatch(/is not resolved row by row; invalidating every page/);
    } else {
      await hit('/related/r/');
    }
  });

  test('an upsert with a RETURNING of its own keeps its result (PostgreSQL, SQLite)', async () => {
    if (dialect === 'mysql') return;
    await s.warm('/simple/a/', '/simple/b/');
    const rows = await s.db
      .insertInto('ky_simple')
      .values({ slug: 'a', name: 'ignored' })
      .onConflict((oc) => oc.column('slug').doUpdateSet({ name: 'Alpha again' }))
      .returning(['slug'])
      .execute();
    expect(rows).toEqual([{ slug: 'a' }]);
    await miss('/simple/a/', 'Alpha again');
    await hit('/simple/b/');
  });

  test('raw SQL is not parsed: the by-hand call invalidates', async () => {
    await s.warm('/simple/a/');
    await sql`update ky_simple set name = 'raw' where slug = 'a'`.execute(s.db);
    await hit('/simple/a/');
    await s.dumper.changed('ky_simple', { slug: 'a' });
    await miss('/simple/a/', 'raw');
  });

  test('plugins and withSchema-free copies keep the invalidation (withPlugin, withoutPlugins)', async () => {
    await s.warm('/simple/a/');
    await s.db.withoutPlugins().updateTable('ky_simple').set({ name: 'via copy' }).where('slug', '=', 'a').execute();
    await miss('/simple/a/', 'via copy');
  });
});

test('kyselyDumper() rejects what it cannot wrap, with a TypeError', async () => {
  const dumper = createDumper({ logger: false });
  expect(() => kyselyDumper({} as never, {} as never)).toThrow('kyselyDumper() needs a dumper made by createDumper()');
  expect(() => kyselyDumper(dumper, {} as never)).toThrow('needs a Kysely instance');
  const tdb = await openDatabase('sqlite');
  try {
    const { db } = tdb.client();
    expect(() => kyselyDumper(dumper, db, { maxRows: 0 })).toThrow('option maxRows must be a positive integer, got 0');
    await db.transaction().execute(async (trx) => {
      expect(() => kyselyDumper(dumper, trx as never)).toThrow('not a transaction');
    });
  } finally {
    await tdb.drop();
    await dumper.close();
  }
});
