/**
 * Writes whose rows are hard to know never leave a stale page: writes inside WITH clauses,
 * aliased tables, MySQL upserts on other unique keys, mixed ids, rows that come to match between
 * the read and the write, streamed writes stopped early, a dependentPaths that throws after the
 * write ran, transaction statements sent by hand, and a Kysely from kysely's CommonJS build.
 * Each test records what the dumper is asked to invalidate.
 */
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';
import { sql, type Generated, type Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { dialects, openDatabase, type TestDatabase } from './support.js';

/** A case for one database only: defined where it applies, not skipped where it does not. */
const elsewhere = (..._: unknown[]): void => undefined;

interface DB {
  ky_item: { id: Generated<number>; slug: string; name: string; code: string | null };
  ky_log: { id: Generated<number>; msg: string };
  ky_other: { id: Generated<number>; msg: string };
}

const targets = await dialects();

function ddl(dialect: string): string[] {
  const serial = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'SERIAL PRIMARY KEY', mysql: 'INT NOT NULL AUTO_INCREMENT PRIMARY KEY' }[dialect];
  const text = dialect === 'mysql' ? 'VARCHAR(191)' : 'TEXT';
  return [
    `CREATE TABLE ky_item (id ${serial}, slug ${text} NOT NULL UNIQUE, name ${text} NOT NULL, code ${text} UNIQUE)`,
    `CREATE TABLE ky_log (id ${serial}, msg ${text} NOT NULL)`,
    `CREATE TABLE ky_other (id ${serial}, msg ${text} NOT NULL)`,
  ];
}

/** What the dumper was asked to invalidate. */
interface Record {
  paths: Set<string>;
  all: number;
  warnings: string[];
}

describe.each(targets)('kyselyDumper safety (%s)', (dialect) => {
  let tdb: TestDatabase;
  let dumper: Dumper;
  let db: Kysely<DB>;
  let rec: Record;
  /** Runs inside ky_item's dependentPaths, once (between the read before a write and the write). */
  let hook: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    tdb = await openDatabase(dialect);
    for (const s of ddl(dialect)) await tdb.exec(s);
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  beforeEach(async () => {
    for (const t of ['ky_item', 'ky_log', 'ky_other']) {
      if (dialect === 'postgres') await tdb.exec(`TRUNCATE ${t} RESTART IDENTITY`);
      else if (dialect === 'mysql') await tdb.exec(`TRUNCATE TABLE ${t}`);
      else await tdb.exec(`DELETE FROM ${t}; DELETE FROM sqlite_sequence WHERE name = '${t}'`);
    }
    await tdb.exec(`INSERT INTO ky_item (slug, name, code) VALUES ('a', 'A', 'CA'), ('b', 'B', 'CB')`);
    rec = { paths: new Set(), all: 0, warnings: [] };
    hook = undefined;
    dumper = createDumper({ logger: { debug() {}, warn: (m: string) => void rec.warnings.push(m), error: (m: string) => void rec.warnings.push(m) } });
    dumper.register('ky_item', {
      async dependentPaths(row: { slug: string }) {
        if (row.slug === 'boom') throw new Error('boom');
        const h = hook;
        hook = undefined;
        await h?.();
        return [`/item/${row.slug}/`];
      },
    });
    dumper.register('ky_log', { dependentPaths: (row: { msg: string }) => [`/log/${row.msg}/`] });
    const invalidateDependents = dumper.invalidateDependents.bind(dumper);
    dumper.invalidateDependents = async (d) => {
      for (const one of Symbol.iterator in d ? d : [d]) for (const p of one.paths) rec.paths.add(p);
      return invalidateDependents(d);
    };
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      rec.all++;
      return invalidateAll();
    };
    db = kyselyDumper(dumper, tdb.client().db as unknown as Kysely<DB>);
  });
  afterEach(async () => {
    await dumper.close();
  });

  /** The page is invalidated: by its path, or by a fallback to every page. */
  const invalidated = (path: string) => expect(rec.paths.has(path) || rec.all > 0, `${path}: ${[...rec.paths].join(' ')}`).toBe(true);
  const clear = () => {
    rec.paths.clear();
    rec.all = 0;
  };

  (dialect === 'postgres' ? test : elsewhere)('a write inside a WITH runs once, and invalidates', async () => {
    await db
      .with('l', (qb) => qb.insertInto('ky_log').values({ msg: 'audit' }).returning('id'))
      .updateTable('ky_item')
      .set({ name: 'A2' })
      .where('slug', '=', 'a')
      .execute();
    expect(await db.selectFrom('ky_log').selectAll().execute()).toHaveLength(1);
    invalidated('/item/a/');
    invalidated('/log/audit/');
  });

  (dialect === 'postgres' ? test : elsewhere)('a write to a registered table inside a WITH is seen (under a select, under a write to another table)', async () => {
    await db
      .with('d', (qb) => qb.updateTable('ky_item').set({ slug: 'a2' }).where('slug', '=', 'a').returning('id'))
      .selectFrom('d')
      .selectAll()
      .execute();
    invalidated('/item/a/');
    expect(rec.warnings.join('\n')).toMatch(/a write inside a WITH is not resolved row by row; invalidating every page/);
    clear();
    await db
      .with('d', (qb) => qb.deleteFrom('ky_item').where('slug', '=', 'b').returning('id'))
      .insertInto('ky_other')
      .values({ msg: 'x' })
      .execute();
    invalidated('/item/b/');
    // A WITH holding writes to unregistered tables only runs as it is.
    clear();
    await db.with('o', (qb) => qb.insertInto('ky_other').values({ msg: 'y' }).returning('id')).selectFrom('o').selectAll().execute();
    expect(rec.all).toBe(0);
  });

  test('an update of an aliased table invalidates its rows', async () => {
    await db.updateTable('ky_item as i').set({ name: 'Zed' }).where('i.slug', '=', 'a').execute();
    expect(rec.paths).toContain('/item/a/');
    expect(rec.all).toBe(0);
  });

  (dialect === 'mysql' ? test : elsewhere)('MySQL upsert and replace conflicting on another unique key invalidate the row they overwrite', async () => {
    // Conflicts on code 'CA' (row a), not on its slug.
    await db.insertInto('ky_item').values({ slug: 'x', name: 'N', code: 'CA' }).onDuplicateKeyUpdate({ name: 'N' }).execute();
    expect((await db.selectFrom('ky_item').select('name').where('slug', '=', 'a').executeTakeFirst())?.name).toBe('N');
    invalidated('/item/a/');
    clear();
    await db.replaceInto('ky_item').values({ slug: 'y', name: 'R', code: 'CB' }).execute();
    invalidated('/item/b/');
    invalidated('/item/y/');
    // An update that changes a unique key: every page.
    clear();
    await db.insertInto('ky_item').values({ slug: 'a', name: 'n', code: null }).onDuplicateKeyUpdate({ slug: 'a3' }).execute();
    invalidated('/item/a3/');
    invalidated('/item/a/');
  });

  (dialect === 'mysql' ? test : elsewhere)('MySQL inserts mixing given and generated ids, and id 0, invalidate their rows', async () => {
    await db.insertInto('ky_log').values([{ msg: 'q' }, { id: 100, msg: 'p' }]).execute();
    invalidated('/log/q/');
    invalidated('/log/p/');
    clear();
    await db.insertInto('ky_log').values({ id: 0, msg: 'z' }).execute();
    expect(rec.paths).toContain('/log/z/');
  });

  (dialect !== 'mysql' ? test : elsewhere)('a row that comes to match between the read and the update is not left stale', async () => {
    const race = async (run: (q: Kysely<DB>) => Promise<unknown>) => {
      // Row a matches; b comes to match (as b2) while a's dependentPaths runs, before the update.
      hook = () => tdb.exec(`UPDATE ky_item SET name = 'match', slug = 'b2' WHERE slug = 'b'`);
      await run(db);
      // b2's page (its state before the update) must go: the update renamed it b2-x.
      invalidated('/item/b2/');
    };
    const update = (q: Kysely<DB>) =>
      q
        .updateTable('ky_item')
        .set({ name: 'done', slug: sql<string>`slug || '-x'` })
        .where('name', '=', 'match')
        .execute();
    await tdb.exec(`UPDATE ky_item SET name = 'match' WHERE slug = 'a'`);
    await race(update);
    expect(await db.selectFrom('ky_item').select('slug').orderBy('slug').execute()).toEqual([{ slug: 'a-x' }, { slug: 'b2-x' }]);
    if (dialect === 'postgres') {
      // Inside a READ COMMITTED transaction too.
      await tdb.exec(`UPDATE ky_item SET name = 'match', slug = 'a' WHERE slug = 'a-x'; UPDATE ky_item SET name = 'B', slug = 'b' WHERE slug = 'b2-x'`);
      clear();
      await race((q) => q.transaction().execute(update));
    }
  });

  (dialect === 'mysql' ? test : elsewhere)('MySQL: a transaction opened without BEGIN (autocommit off, a comment before BEGIN) is not committed by page-dumper', async () => {
    await db.connection().execute(async (c) => {
      await sql`set autocommit = 0`.execute(c);
      await c.updateTable('ky_item').set({ name: 'X' }).where('slug', '=', 'a').execute();
      await sql`rollback`.execute(c);
      await sql`set autocommit = 1`.execute(c);
      expect(rec.paths).toContain('/item/a/');
      await sql`/* c */ begin`.execute(c);
      await c.deleteFrom('ky_item').where('slug', '=', 'b').execute();
      await sql`rollback`.execute(c);
    });
    expect(await db.selectFrom('ky_item').select(['slug', 'name']).orderBy('slug').execute()).toEqual([
      { slug: 'a', name: 'A' },
      { slug: 'b', name: 'B' },
    ]);
    expect(rec.warnings.join('\n')).toMatch(/a transaction page-dumper did not see open/);
  });

  (dialect === 'mysql' ? test : elsewhere)('MySQL at READ COMMITTED: a row that comes to match between the read and the write is not left stale', async () => {
    const race = async (run: (q: Kysely<DB>) => Promise<unknown>) => {
      await tdb.exec(`UPDATE ky_item SET name = 'A' WHERE slug = 'a'`);
      await tdb.exec(`UPDATE ky_item SET name = 'B' WHERE slug = 'b'`);
      clear();
      // Row a matches; b comes to match (committed by another connection) while a's dependentPaths runs.
      hook = () => tdb.exec(`UPDATE ky_item SET name = 'A' WHERE slug = 'b'`);
      await run(db);
      expect(hook).toBeUndefined();
      invalidated('/item/b/');
    };
    const update = (q: Kysely<DB>) => q.updateTable('ky_item').set({ name: 'Z' }).where('name', '=', 'A').execute();
    const remove = (q: Kysely<DB>) => q.deleteFrom('ky_item').where('name', '=', 'A').execute();
    // Inside the caller's READ COMMITTED transaction.
    await race((q) => q.transaction().setIsolationLevel('read committed').execute(update));
    expect(await db.selectFrom('ky_item').select('name').orderBy('slug').execute()).toEqual([{ name: 'Z' }, { name: 'Z' }]);
    // In page-dumper's own transaction, the session at READ COMMITTED.
    await db.connection().execute(async (c) => {
      await sql`set session transaction isolation level read committed`.execute(c);
      try {
        await race(() => update(c));
        await race(() => remove(c));
        expect(await c.selectFrom('ky_item').selectAll().execute()).toEqual([]);
      } finally {
        await sql`set session transaction isolation level repeatable read`.execute(c);
      }
    });
  });

  (dialect === 'mysql' ? test : elsewhere)('a streamed write stopped after its first rows is invalidated', async () => {
    // mysql2 streams a write's result header as its one row; the consumer stops at it.
    const compiled = db.updateTable('ky_item').set({ name: 'S' }).compile();
    let chunks = 0;
    for await (const _ of db.getExecutor().stream(compiled, 1)) {
      chunks++;
      break;
    }
    expect(chunks).toBe(1);
    expect(rec.all).toBeGreaterThan(0);
    expect(rec.warnings.join('\n')).toMatch(/a streamed write is not resolved row by row/);
  });

  test('a dependentPaths that throws for the new row: the write ran, every page is invalidated, the error is thrown', async () => {
    await expect(db.updateTable('ky_item').set({ slug: 'boom' }).where('slug', '=', 'a').execute()).rejects.toThrow('boom');
    // dependentPaths runs once the write's connection is released: on MySQL too, after page-dumper's own transaction committed.
    expect(await db.selectFrom('ky_item').select('slug').orderBy('slug').execute()).toEqual([{ slug: 'b' }, { slug: 'boom' }]);
    invalidated('/item/a/');
    expect(rec.warnings.join('\n')).toMatch(/resolving its rows failed after it ran \(boom\)/);
  });

  (dialect !== 'sqlite' ? test : elsewhere)('transaction statements by hand: BEGIN inside a PostgreSQL transaction, COMMIT AND CHAIN', async () => {
    await db.connection().execute(async (c) => {
      await sql`begin`.execute(c);
      await c.updateTable('ky_item').set({ name: 'A1' }).where('slug', '=', 'a').execute();
      if (dialect === 'postgres') await sql`begin`.execute(c); // a warning, the transaction goes on
      await sql`commit and chain`.execute(c);
      expect(rec.paths).toContain('/item/a/');
      await c.updateTable('ky_item').set({ name: 'B1' }).where('slug', '=', 'b').execute();
      clear();
      await sql`commit`.execute(c);
      // The chained transaction's write is invalidated again at its commit.
      expect(rec.paths).toContain('/item/b/');
    });
  });

  (dialect === 'postgres' ? test : elsewhere)('a BEGIN inside an open PostgreSQL transaction keeps its writes for the commit', async () => {
    await db.connection().execute(async (c) => {
      await sql`begin`.execute(c);
      await c.updateTable('ky_item').set({ name: 'A1' }).where('slug', '=', 'a').execute();
      await sql`begin`.execute(c);
      clear();
      await sql`commit`.execute(c);
      expect(rec.paths).toContain('/item/a/');
    });
  });

  test('a plain explain() of a write changes nothing and invalidates nothing', async () => {
    await db.updateTable('ky_item').set({ name: 'E' }).where('slug', '=', 'a').explain();
    expect(rec.paths.size).toBe(0);
    expect(rec.all).toBe(0);
    expect((await db.selectFrom('ky_item').select('name').where('slug', '=', 'a').executeTakeFirst())?.name).toBe('A');
  });
});

test('a Kysely from the CommonJS build of kysely is wrapped', async () => {
  const cjs = createRequire(import.meta.url)('kysely') as typeof import('kysely');
  const dumper = createDumper({ logger: false });
  dumper.register('ky_item', { dependentPaths: (row: { slug: string }) => [`/item/${row.slug}/`] });
  const paths: string[] = [];
  const invalidateDependents = dumper.invalidateDependents.bind(dumper);
  dumper.invalidateDependents = async (d) => {
    for (const one of Symbol.iterator in d ? d : [d]) paths.push(...one.paths);
    return invalidateDependents(d);
  };
  const raw = new cjs.Kysely<DB>({ dialect: new cjs.SqliteDialect({ database: new Database(':memory:') }) });
  try {
    await sql`create table ky_item (id integer primary key, slug text not null unique, name text not null, code text)`.execute(raw as never);
    const db = kyselyDumper(dumper, raw as unknown as Kysely<DB>);
    await db.insertInto('ky_item').values({ slug: 'c', name: 'C' }).execute();
    expect(paths).toEqual(['/item/c/']);
  } finally {
    await raw.destroy();
    await dumper.close();
  }
});
