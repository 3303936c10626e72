/**
 * PostgreSQL through a node-postgres pool with `query_timeout` (a client-side timeout: the query is
 * rejected while the server still runs it, and the statements queued behind it are rejected with
 * it, never sent). An update outside a transaction runs in page-dumper's own transaction:
 *
 * - the update times out, and Drizzle's ROLLBACK after it is dropped unsent. Without care the
 *   client goes back to the pool (of one) still in that transaction, and the next write's COMMIT
 *   commits the update its caller was told had failed. The connection must be rolled back before
 *   anyone else gets it, and the pages invalidated;
 * - the COMMIT times out (a deferred trigger makes it slow) while the server completes it: every
 *   page is invalidated when it fails, and again once the server has finished it, so that no page
 *   rendered from the old rows in between stays cached.
 */
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import * as pgc from 'drizzle-orm/pg-core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { drizzleDumper } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';

const URL = 'postgresql://postgres@127.0.0.1:5432/test';
const servers = (await needService('postgres')) ? ['postgres'] : [];

const slow = pgc.pgTable('dz_slow', { id: pgc.serial('id').primaryKey(), slug: pgc.text('slug').notNull().unique(), name: pgc.text('name').notNull() });

describe.each(servers)('drizzleDumper, a write the client times out in page-dumper’s own transaction (%s)', () => {
  const schema = `dz_${randomBytes(6).toString('hex')}`;
  const application = `dz_timeout_${randomBytes(4).toString('hex')}`;
  let admin: pg.Client;
  let pool: pg.Pool;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".dz_slow (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)`);
    // 'slow' sleeps in the update itself; 'slow-commit' sleeps at COMMIT (a deferred constraint trigger).
    await admin.query(
      `CREATE FUNCTION "${schema}".dz_slow_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = TG_ARGV[0] THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$`,
    );
    await admin.query(`CREATE TRIGGER dz_slow_sleep BEFORE UPDATE ON "${schema}".dz_slow FOR EACH ROW EXECUTE FUNCTION "${schema}".dz_slow_sleep('slow')`);
    await admin.query(
      `CREATE CONSTRAINT TRIGGER dz_slow_commit AFTER UPDATE ON "${schema}".dz_slow DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".dz_slow_sleep('slow-commit')`,
    );
    await admin.query(`INSERT INTO "${schema}".dz_slow (slug, name) VALUES ('a', 'A'), ('b', 'B'), ('c', 'C')`);
    pool = new pg.Pool({ connectionString: URL, max: 1, query_timeout: 300, application_name: application, options: `-c search_path=${schema}` });
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin?.end();
  });

  const nameOf = async (slug: string) => (await admin.query<{ name: string }>(`SELECT name FROM "${schema}".dz_slow WHERE slug = $1`, [slug])).rows[0]!.name;

  /** A dumper whose invalidateAll() records, at each call, the name of row `slug` then committed. */
  function setup(slug: string) {
    const seen: string[] = [];
    const warnings: string[] = [];
    const dumper = createDumper({ logger: { debug() {}, warn: (m: string) => void warnings.push(m), error() {} } });
    dumper.register('dz_slow', { dependentPaths: (row: { slug: string }) => [`/slow/${row.slug}/`] });
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      seen.push(await nameOf(slug));
      return invalidateAll();
    };
    return { dumper, seen, warnings, db: drizzleDumper(dumper, drizzle(pool)) };
  }

  test('an update that times out is rolled back before the connection is used again, and every page is invalidated', async () => {
    const { dumper, seen, warnings, db } = setup('a');
    try {
      await expect(db.update(slow).set({ name: 'slow' }).where(eq(slow.slug, 'a'))).rejects.toThrow();
      expect(seen.length, 'every page invalidated when the outcome became unknown, and again once the server was done').toBe(2);
      expect(warnings.some((w) => /answered a ROLLBACK/.test(w))).toBe(true);
      // The next write gets the pool's one connection and commits on its own...
      await db.update(slow).set({ name: 'B2' }).where(eq(slow.slug, 'b'));
      expect(await nameOf('b')).toBe('B2');
      // ...without committing the update its caller was told had failed.
      expect(await nameOf('a')).toBe('A');
    } finally {
      await dumper.close();
    }
  });

  test('a COMMIT that times out while the server completes it: every page is invalidated again after it landed', async () => {
    const { dumper, seen, db } = setup('c');
    try {
      await expect(db.update(slow).set({ name: 'slow-commit' }).where(eq(slow.slug, 'c'))).rejects.toThrow();
      // The server did commit it.
      expect(await nameOf('c')).toBe('slow-commit');
      // The first invalidation ran while the COMMIT was still running; the last one saw it committed.
      expect(seen.length).toBe(2);
      expect(seen.at(-1)).toBe('slow-commit');
      // The connection is usable.
      await db.update(slow).set({ name: 'C2' }).where(eq(slow.slug, 'c'));
      expect(await nameOf('c')).toBe('C2');
    } finally {
      await dumper.close();
    }
  });
});
