/**
 * PostgreSQL through a node-postgres pool with `query_timeout` (a client-side timeout: the query is
 * rejected while the server still runs it, and the statements queued behind it are rejected with
 * it, never sent). An update outside a transaction runs in page-dumper's own transaction:
 *
 * - the update times out, and Drizzle's ROLLBACK after it is dropped unsent. Without care the
 *   client goes back to the pool (of one) still in that transaction, and the next write's COMMIT
 *   commits the update its caller was told had failed. The connection must be rolled back before
 *   anyone else gets it, and the pages invalidated;
 * - the COMMIT times out (a deferred trigger makes it slow) while the server completes it, in
 *   page-dumper's transaction or in the caller's: the write's pages are invalidated once the
 *   server has finished it, so that no page rendered from the old rows in between stays cached —
 *   whether Drizzle's ROLLBACK after it times out too or is answered in time;
 * - the connection does not answer page-dumper's ROLLBACK within `recoveryTimeout`: it is closed
 *   (the server rolls back what it holds), never handed to the next caller.
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
    // A row set to the name TG_ARGV[0] sleeps TG_ARGV[1] seconds: in the update itself ('slow'),
    // or at COMMIT ('slow-commit', 'quick-commit': deferred constraint triggers).
    await admin.query(
      `CREATE FUNCTION "${schema}".dz_slow_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = TG_ARGV[0] THEN PERFORM pg_sleep(TG_ARGV[1]::float); END IF; RETURN NEW; END $$`,
    );
    await admin.query(`CREATE TRIGGER dz_slow_sleep BEFORE UPDATE ON "${schema}".dz_slow FOR EACH ROW EXECUTE FUNCTION "${schema}".dz_slow_sleep('slow', '1')`);
    for (const [name, seconds] of [
      ['slow-commit', '1'],
      ['quick-commit', '0.45'],
    ]) {
      await admin.query(
        `CREATE CONSTRAINT TRIGGER "dz_${name}" AFTER UPDATE ON "${schema}".dz_slow DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".dz_slow_sleep('${name}', '${seconds}')`,
      );
    }
    await admin.query(`INSERT INTO "${schema}".dz_slow (slug, name) VALUES ('a', 'A'), ('b', 'B'), ('c', 'C'), ('d', 'D'), ('e', 'E'), ('f', 'F')`);
    // query_timeout 300 ms: a 1 s statement times out, and so does a ROLLBACK queued behind it;
    // a 0.45 s COMMIT times out, and the ROLLBACK queued behind it is answered in time.
    pool = new pg.Pool({ connectionString: URL, max: 1, query_timeout: 300, application_name: application, options: `-c search_path=${schema}` });
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin?.end();
  });

  const nameOf = async (slug: string) => (await admin.query<{ name: string }>(`SELECT name FROM "${schema}".dz_slow WHERE slug = $1`, [slug])).rows[0]!.name;

  /**
   * A dumper that records, at each invalidation of every page or of dz_slow rows' pages, the
   * name row `slug` then had in the database (committed).
   */
  function setup(slug: string, options?: { recoveryTimeout?: number }) {
    const seen: string[] = [];
    const warnings: string[] = [];
    const dumper = createDumper({ logger: { debug() {}, warn: (m: string) => void warnings.push(m), error() {} } });
    dumper.register('dz_slow', { dependentPaths: (row: { slug: string }) => [`/slow/${row.slug}/`] });
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
    return { dumper, seen, warnings, db: drizzleDumper(dumper, drizzle(pool), options) };
  }

  test('an update that times out is rolled back before the connection is used again', async () => {
    const { dumper, warnings, db } = setup('a');
    try {
      await expect(db.update(slow).set({ name: 'slow' }).where(eq(slow.slug, 'a'))).rejects.toThrow();
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

  for (const [name, how] of [
    ['slow-commit', 'Drizzle’s ROLLBACK after it times out too'],
    ['quick-commit', 'Drizzle’s ROLLBACK after it is answered in time'],
  ] as const) {
    test(`a COMMIT that times out while the server completes it (${how}): its page is invalidated after it landed`, async () => {
      const slug = name === 'slow-commit' ? 'c' : 'd';
      const { dumper, seen, db } = setup(slug);
      try {
        await expect(db.update(slow).set({ name }).where(eq(slow.slug, slug))).rejects.toThrow();
        // The server did commit it, and the write's page was invalidated once it had.
        expect(await nameOf(slug)).toBe(name);
        expect(seen.at(-1)).toBe(name);
        // The connection is usable.
        await db.update(slow).set({ name: 'after' }).where(eq(slow.slug, slug));
        expect(await nameOf(slug)).toBe('after');
      } finally {
        await dumper.close();
      }
    });
  }

  test('in the caller’s transaction, a COMMIT that times out while the server completes it: its writes are invalidated again after it landed', async () => {
    const { dumper, seen, db } = setup('e');
    try {
      await expect(db.transaction(async (tx) => tx.update(slow).set({ name: 'slow-commit' }).where(eq(slow.slug, 'e')))).rejects.toThrow();
      expect(await nameOf('e')).toBe('slow-commit');
      // Once at the write (uncommitted), once after the COMMIT landed.
      expect(seen).toEqual(['E', 'slow-commit']);
      await db.update(slow).set({ name: 'E2' }).where(eq(slow.slug, 'e'));
      expect(await nameOf('e')).toBe('E2');
    } finally {
      await dumper.close();
    }
  });

  test('a connection that does not answer the ROLLBACK within recoveryTimeout is closed, not handed to the next caller', async () => {
    const { dumper, warnings, db } = setup('f', { recoveryTimeout: 100 });
    try {
      await expect(db.update(slow).set({ name: 'slow' }).where(eq(slow.slug, 'f'))).rejects.toThrow();
      expect(warnings.some((w) => /did not answer a ROLLBACK and was closed/.test(w))).toBe(true);
      // The next write runs on a new connection, and commits on its own.
      await db.update(slow).set({ name: 'B3' }).where(eq(slow.slug, 'b'));
      expect(await nameOf('b')).toBe('B3');
      // The server rolled the closed connection's transaction back.
      for (;;) {
        const { rows } = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where application_name = $1 and state <> $2', [application, 'idle']);
        if (rows[0]!.n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await nameOf('f')).toBe('F');
    } finally {
      await dumper.close();
    }
  });
});
