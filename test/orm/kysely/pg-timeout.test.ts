/**
 * PostgreSQL outside a transaction, with node-postgres' `query_timeout` (a client-side timeout:
 * the query is rejected while the server still runs it, and the statements queued behind it are
 * rejected with it, never sent). A write in page-dumper's own transaction times out; its ROLLBACK
 * times out too, and the connection goes back to the pool (of one) still in that transaction. The
 * next write on it must not commit the first one (which its caller was told had failed) on its
 * own, and the failed write's outcome being unknown, every page is invalidated.
 */
import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, type Generated } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { needService } from '../../support/services.js';

interface DB {
  ky_slow: { id: Generated<number>; slug: string; name: string };
}

const URL = 'postgresql://postgres@127.0.0.1:5432/test';
const servers = (await needService('postgres')) ? ['postgres'] : [];

describe.each(servers)('kyselyDumper, a write the client times out in its own transaction (%s)', () => {
  const schema = `ky_${randomBytes(6).toString('hex')}`;
  const application = `ky_timeout_${randomBytes(4).toString('hex')}`;
  let admin: pg.Client;
  let pool: pg.Pool;
  let raw: Kysely<DB>;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".ky_slow (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)`);
    // 'slow' (1 s) and 'slower' (4 s) sleep in the update itself; 'slow-commit' (1 s) at COMMIT (a
    // deferred constraint trigger).
    await admin.query(
      `CREATE FUNCTION "${schema}".ky_slow_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = TG_ARGV[0] THEN PERFORM pg_sleep(coalesce(TG_ARGV[1], '1')::float); END IF; RETURN NEW; END $$`,
    );
    await admin.query(`CREATE TRIGGER ky_slow_sleep BEFORE UPDATE ON "${schema}".ky_slow FOR EACH ROW EXECUTE FUNCTION "${schema}".ky_slow_sleep('slow')`);
    await admin.query(`CREATE TRIGGER ky_slower_sleep BEFORE UPDATE ON "${schema}".ky_slow FOR EACH ROW EXECUTE FUNCTION "${schema}".ky_slow_sleep('slower', '4')`);
    await admin.query(
      `CREATE CONSTRAINT TRIGGER ky_slow_commit AFTER UPDATE ON "${schema}".ky_slow DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".ky_slow_sleep('slow-commit')`,
    );
    await admin.query(`INSERT INTO "${schema}".ky_slow (slug, name) VALUES ('a', 'A'), ('b', 'B'), ('c', 'C'), ('d', 'D'), ('e', 'E')`);
    pool = new pg.Pool({ connectionString: URL, max: 1, query_timeout: 300, application_name: application, options: `-c search_path=${schema}` });
    raw = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  });
  afterAll(async () => {
    // Closing the pool's connection ends (rolls back) whatever transaction it was left in.
    await raw?.destroy();
    await admin?.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin?.end();
  });

  test('the failed write is never committed by page-dumper, and its pages are invalidated', async () => {
    let all = 0;
    const warnings: string[] = [];
    const dumper = createDumper({ logger: { debug() {}, warn: (m: string) => void warnings.push(m), error() {} } });
    dumper.register('ky_slow', { dependentPaths: (row: { slug: string }) => [`/slow/${row.slug}/`] });
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      all++;
      return invalidateAll();
    };
    const db = kyselyDumper(dumper, raw);
    try {
      await expect(db.updateTable('ky_slow').set({ name: 'slow' }).where('slug', '=', 'a').execute()).rejects.toThrow();
      const afterFirst = all;
      // Wait for the server to finish the write (its connection then idle, in the transaction).
      for (;;) {
        const { rows } = await admin.query<{ state: string | null }>('select state from pg_stat_activity where application_name = $1', [application]);
        if (rows[0]?.state !== 'active') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      // Every page was invalidated again once the connection answered (the server done with the write).
      expect(all).toBeGreaterThanOrEqual(2);
      await db.updateTable('ky_slow').set({ name: 'B2' }).where('slug', '=', 'b').execute();
      const { rows } = await admin.query<{ name: string }>(`SELECT name FROM "${schema}".ky_slow WHERE slug = 'a'`);
      const committed = rows[0]!.name === 'slow';
      // Either the failed write is not committed, or every page was invalidated after it failed.
      expect(!committed || afterFirst > 0, 'write 1 committed without invalidation').toBe(true);
      // And never silently committed by page-dumper's own COMMIT.
      expect(committed, 'the write its caller was told had failed was committed').toBe(false);
      expect(afterFirst, 'every page invalidated once write 1 failed with an unknown outcome').toBeGreaterThan(0);
      expect(warnings.some((w) => /ROLLBACK/.test(w))).toBe(true);
      // The next write ran and committed on its own: it is not swallowed by a transaction left open.
      const later = await admin.query<{ name: string }>(`SELECT name FROM "${schema}".ky_slow WHERE slug = 'b'`);
      expect(later.rows[0]!.name).toBe('B2');
    } finally {
      await dumper.close();
    }
  });

  test('a COMMIT that times out while the server completes it: every page is invalidated again after it landed', async () => {
    const nameOfC = async () => (await admin.query<{ name: string }>(`SELECT name FROM "${schema}".ky_slow WHERE slug = 'c'`)).rows[0]!.name;
    const seen: string[] = [];
    const dumper = createDumper({ logger: { debug() {}, warn() {}, error() {} } });
    dumper.register('ky_slow', { dependentPaths: (row: { slug: string }) => [`/slow/${row.slug}/`] });
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      seen.push(await nameOfC());
      return invalidateAll();
    };
    const db = kyselyDumper(dumper, raw);
    try {
      await expect(db.updateTable('ky_slow').set({ name: 'slow-commit' }).where('slug', '=', 'c').execute()).rejects.toThrow();
      // The server did commit it; the first invalidation ran while the COMMIT was still running,
      // the last one once it had landed.
      expect(await nameOfC()).toBe('slow-commit');
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.at(-1)).toBe('slow-commit');
      // The connection is usable.
      await db.updateTable('ky_slow').set({ name: 'C2' }).where('slug', '=', 'c').execute();
      expect(await nameOfC()).toBe('C2');
    } finally {
      await dumper.close();
    }
  });

  const nameOf = async (slug: string) => (await admin.query<{ name: string }>(`SELECT name FROM "${schema}".ky_slow WHERE slug = $1`, [slug])).rows[0]!.name;

  /** A dumper that records, at each invalidation of every page or of row `slug`'s page, the name that row then had (committed). */
  function recording(slug: string, options?: { recoveryTimeout?: number }) {
    const seen: string[] = [];
    const warnings: string[] = [];
    const dumper = createDumper({ logger: { debug() {}, warn: (m: string) => void warnings.push(m), error() {} } });
    dumper.register('ky_slow', { dependentPaths: (row: { slug: string }) => [`/slow/${row.slug}/`] });
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      seen.push(await nameOf(slug));
      return invalidateAll();
    };
    const invalidateDependents = dumper.invalidateDependents.bind(dumper);
    dumper.invalidateDependents = async (dependents) => {
      const list = 'paths' in dependents ? [dependents] : [...dependents];
      if (list.some((d) => d.paths.includes(`/slow/${slug}/`))) seen.push(await nameOf(slug));
      return invalidateDependents(dependents);
    };
    return { dumper, seen, warnings, db: kyselyDumper(dumper, raw, options) };
  }

  test('in the caller’s transaction, a COMMIT that times out while the server completes it: its writes are invalidated again after it landed', async () => {
    const { dumper, seen, db } = recording('d');
    try {
      await expect(db.transaction().execute((trx) => trx.updateTable('ky_slow').set({ name: 'slow-commit' }).where('slug', '=', 'd').execute())).rejects.toThrow();
      expect(await nameOf('d')).toBe('slow-commit');
      // At the write (uncommitted), when the COMMIT failed, and once the server was done with it.
      expect(seen[0]).toBe('D');
      expect(seen.at(-1)).toBe('slow-commit');
      await db.updateTable('ky_slow').set({ name: 'D2' }).where('slug', '=', 'd').execute();
      expect(await nameOf('d')).toBe('D2');
    } finally {
      await dumper.close();
    }
  });

  test('a connection that does not answer within recoveryTimeout: its next query sends ROLLBACK first, fails without running while that fails, and every page is invalidated again once it succeeds', async () => {
    const { dumper, seen, warnings, db } = recording('e', { recoveryTimeout: 0 });
    try {
      await expect(db.updateTable('ky_slow').set({ name: 'slower' }).where('slug', '=', 'e').execute()).rejects.toThrow();
      expect(warnings.some((w) => /did not answer a ROLLBACK/.test(w))).toBe(true);
      const before = seen.length;
      // The server still runs the update (4 s): the ROLLBACK sent first times out, and the write
      // is not run.
      await expect(db.updateTable('ky_slow').set({ name: 'B4' }).where('slug', '=', 'b').execute()).rejects.toThrow(/could not roll back; the query was not run/);
      expect(await nameOf('b')).not.toBe('B4');
      for (;;) {
        const { rows } = await admin.query<{ state: string | null }>('select state from pg_stat_activity where application_name = $1', [application]);
        if (rows[0]?.state !== 'active') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      // Now the ROLLBACK is answered: the failed update is rolled back, every page invalidated
      // again, and the write runs and commits on its own.
      await db.updateTable('ky_slow').set({ name: 'B5' }).where('slug', '=', 'b').execute();
      expect(await nameOf('b')).toBe('B5');
      expect(await nameOf('e')).toBe('E');
      expect(seen.length).toBeGreaterThan(before);
    } finally {
      await dumper.close();
    }
  });
});
