/**
 * The write paths that once left a stale page, hung or lost a transaction: dependentPaths that
 * read through a pool of one connection, concurrent upserts on MariaDB, writes on a single
 * connection inside a transaction the caller began by hand, data-modifying CTEs, PostgreSQL's
 * row locks, MySQL's read-back of rows, aliases, better-sqlite3's results and failures.
 */
import { eq, sql } from 'drizzle-orm';
import { drizzle as drizzlePgProxy } from 'drizzle-orm/pg-proxy';
import { alias as pgAlias } from 'drizzle-orm/pg-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { drizzleDumper, drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';
import { kinds, openDatabase, RecordingStore, stack, type AnyDb, type Counted, type Stack, type TestDatabase } from './support.js';

const tag = (path: string) => `dumper.cached_path.${path.replace(/\/$/, '')}`;

/** Rejects if the promise has not settled within `ms`: a hang is a failure, not a stuck run. */
function within<T>(promise: Promise<T>, ms = 5000): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms))]);
}

describe.each(await kinds(needService))('drizzleDumper safety (%s)', (kind) => {
  let t: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let store: RecordingStore;
  let s: Stack;
  let ids: { a: number; b: number };

  beforeAll(async () => {
    t = await openDatabase(kind);
    reader = t.client();
    writer = t.client();
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.reset();
    store = new RecordingStore();
    s = await stack(t, writer, reader, { dumper: { store } });
    await s.db.insert(s.s.simple).values([
      { slug: 'a', name: 'Alpha' },
      { slug: 'b', name: 'Beta' },
    ]);
    const rows = await reader.db.select().from(s.s.simple);
    ids = { a: rows.find((r: { slug: string }) => r.slug === 'a').id, b: rows.find((r: { slug: string }) => r.slug === 'b').id };
    store.calls.length = 0;
  });
  afterEach(async () => {
    await s?.close();
  });

  const invalidated = () => store.calls.flatMap((c) => (c === 'clear' ? ['clear'] : c));

  /** A dumper whose dz_simple and dz_comment dependentPaths read through `db` itself. */
  function selfReading(db: AnyDb): { dumper: Dumper; store: RecordingStore } {
    const own = new RecordingStore();
    const dumper = createDumper({ logger: false, store: own });
    const slugOf = async (id: number) => ((await db.select({ slug: t.schema.simple.slug }).from(t.schema.simple).where(eq(t.schema.simple.id, id))) as { slug: string }[])[0]?.slug;
    dumper.register('dz_simple', { dependentPaths: async (r: { id: number }) => [`/simple/${await slugOf(r.id)}/`] });
    dumper.register('dz_comment', { dependentPaths: async (c: { targetId: number }) => [`/simple/${await slugOf(c.targetId)}/`] });
    return { dumper, store: own };
  }

  if (kind !== 'sqlite') {
    test('a pool of one connection: dependentPaths reading through the same database do not hang the write', async () => {
      const db = await t.driver({ pool: 1 });
      const { dumper, store: own } = selfReading(db);
      const w = drizzleDumper(dumper, db);
      await within(w.update(t.schema.simple).set({ name: 'A1' }).where(eq(t.schema.simple.id, ids.a)));
      const q = w.insert(t.schema.simple).values({ slug: 'a', name: 'A2' });
      await within(kind === 'mariadb' ? q.onDuplicateKeyUpdate({ set: { name: 'A2' } }) : q.onConflictDoUpdate({ target: t.schema.simple.slug, set: { name: 'A2' } }));
      // A delete's paths are computed while its row exists (its slug is read through db).
      own.calls.length = 0;
      await within(w.delete(t.schema.simple).where(eq(t.schema.simple.id, ids.b)));
      expect(own.calls.flat()).toContain(tag('/simple/b/'));
      // A burst as large as the pool.
      await within(Promise.all([1, 2, 3].map((i) => w.update(t.schema.simple).set({ name: `A${i}` }).where(eq(t.schema.simple.id, ids.a)))));
      await dumper.close();
    });

    test('a single connection: a transaction begun by hand is the write’s, and its rollback undoes it', async () => {
      const db = await t.driver('connection');
      const { dumper, store: own } = selfReading(reader.db);
      const w = drizzleDumper(dumper, db);
      await w.execute(sql`begin`);
      await w.update(t.schema.simple).set({ name: 'rolled back' }).where(eq(t.schema.simple.id, ids.a));
      await w.execute(sql`rollback`);
      const [a] = await reader.db.select().from(t.schema.simple).where(eq(t.schema.simple.id, ids.a));
      expect(a.name).toBe('Alpha');
      expect(own.calls.flat()).toContain(tag('/simple/a/'));
      // Concurrent writes on the one connection: one failing does not fail the other.
      const [bad, good] = await Promise.allSettled([
        w.update(t.schema.simple).set({ slug: 'b' }).where(eq(t.schema.simple.id, ids.a)),
        w.update(t.schema.simple).set({ name: 'Beta 2' }).where(eq(t.schema.simple.id, ids.b)),
      ]);
      expect(bad.status).toBe('rejected');
      expect(good.status).toBe('fulfilled');
      const [b] = await reader.db.select().from(t.schema.simple).where(eq(t.schema.simple.id, ids.b));
      expect(b.name).toBe('Beta 2');
      await dumper.close();
    });
  }

  if (kind === 'mariadb') {
    test('MariaDB: concurrent upserts of new keys on a pool do not deadlock', async () => {
      const db = await t.driver({ pool: 8 });
      const { dumper } = selfReading(reader.db);
      const w = drizzleDumper(dumper, db);
      const results = await Promise.allSettled(
        Array.from({ length: 16 }, (_, i) => w.insert(t.schema.simple).values({ slug: `u${i}`, name: `U${i}` }).onDuplicateKeyUpdate({ set: { name: `U${i}` } })),
      );
      expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      await dumper.close();
    });

    test('MariaDB: an upsert whose update changes the key it matched by invalidates the new key', async () => {
      await s.db.insert(s.s.simple).values({ slug: 'a', name: 'Alpha' }).onDuplicateKeyUpdate({ set: { slug: 'a2' } });
      expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/a2/')]));
    });

    test('MariaDB: $returningId() resolves the rows by the ids it returns', async () => {
      const result = await s.db.insert(s.s.simple).values({ slug: 'c', name: 'Gamma' }).$returningId();
      expect(result).toEqual([{ id: expect.any(Number) }]);
      expect(invalidated()).toContain(tag('/simple/c/'));
      expect(invalidated()).not.toContain('clear');
    });

    test('MariaDB: a multi-row insert mixing given and generated ids does not miss a row', async () => {
      await s.db.insert(s.s.comment).values([
        { targetType: 'simple', targetId: ids.a, body: 'x' },
        { id: 1000, targetType: 'simple', targetId: ids.a, body: 'y' },
        { targetType: 'simple', targetId: ids.b, body: 'z' },
      ]);
      const all = invalidated();
      expect(all.includes('clear') || all.includes(tag('/simple/b/'))).toBe(true);
    });

    test('MariaDB: an update setting the primary key reads the row back by its new key', async () => {
      await s.db.insert(s.s.comment).values({ id: 5, targetType: 'simple', targetId: ids.a, body: 'x' });
      store.calls.length = 0;
      await s.db.update(s.s.comment).set({ id: 6, targetId: ids.b }).where(eq(s.s.comment.id, 5));
      expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/b/')]));
    });

    test('MariaDB has no WITH before UPDATE: the write is rejected and nothing changes', async () => {
      const names = s.db.$with('names').as(s.db.select({ slug: s.s.simple.slug }).from(s.s.simple).where(eq(s.s.simple.slug, 'a')));
      await expect(s.db.with(names).update(s.s.simple).set({ name: 'W' }).where(sql`${s.s.simple.slug} in (select slug from names)`)).rejects.toThrow(/Failed query: with `names`/);
      const [a] = await reader.db.select().from(s.s.simple).where(eq(s.s.simple.id, ids.a));
      expect(a.name).toBe('Alpha');
    });
  }

  if (kind === 'postgres') {
    test('PostgreSQL: a data-modifying CTE runs once, and every page is invalidated', async () => {
      const added = s.db.$with('added').as(s.db.insert(s.s.simple).values({ slug: 'c', name: 'Gamma' }).returning());
      await s.db.with(added).update(s.s.simple).set({ name: 'W' }).where(eq(s.s.simple.slug, 'a'));
      expect((await reader.db.select().from(s.s.simple).where(eq(s.s.simple.slug, 'c'))).length).toBe(1);
      expect(store.calls).toContain('clear');

      // The same CTE before a write to an unregistered table, and before a select.
      store.calls.length = 0;
      const more = s.db.$with('more').as(s.db.insert(s.s.simple).values({ slug: 'd', name: 'Delta' }).returning());
      await s.db.with(more).insert(s.s.unwatched).values({ name: 'u' });
      expect(store.calls).toContain('clear');
      store.calls.length = 0;
      const gone = s.db.$with('gone').as(s.db.delete(s.s.simple).where(eq(s.s.simple.slug, 'd')).returning());
      expect(await s.db.with(gone).select().from(gone)).toHaveLength(1);
      expect(store.calls).toContain('clear');
    });

    test('PostgreSQL: an update not setting a key locks its rows FOR NO KEY UPDATE: a child row can be inserted meanwhile', async () => {
      const [related] = await reader.db.insert(s.s.related).values({ slug: 'r', name: 'R' }).returning();
      await s.db.transaction(async (tx: AnyDb) => {
        await tx.update(s.s.simple).set({ name: 'locked' }).where(eq(s.s.simple.id, ids.a));
        await reader.db.transaction(async (other: AnyDb) => {
          await other.execute(sql`set local lock_timeout = '1s'`);
          await other.insert(s.s.relatedSimple).values({ relatedId: related.id, simpleId: ids.a });
        });
      });
    });
  }

  if (kind === 'postgres') {
    test('PostgreSQL: an update that changes a row its read before did not see (a concurrent write made it match) invalidates every page', async () => {
      // Another transaction holds row a, and makes row b match the update's predicate.
      const other = await t.driver('connection');
      const probe = await t.driver('connection');
      await other.execute(sql`begin`);
      await other.execute(sql`update dz_simple set name = 'Alpha' where id = ${ids.a}`);
      await other.execute(sql`update dz_simple set slug = 'b-mid', name = 'Amid' where id = ${ids.b}`);
      const write = s.db.update(s.s.simple).set({ name: 'Z' }).where(sql`${s.s.simple.name} like 'A%'`);
      const done = Promise.resolve(write).then(() => undefined);
      // The write's read before waits on row a's lock (it saw only a: b's committed name is Beta).
      for (;;) {
        const r = (await probe.execute(sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`)) as { rows: Array<{ n: number }> };
        if (r.rows[0]!.n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await other.execute(sql`commit`);
      await within(done);
      // The UPDATE saw b as Amid: its state before the write (b-mid) was never read.
      const rows = await reader.db.select().from(s.s.simple);
      expect(rows.map((r: { name: string }) => r.name).sort()).toEqual(['Z', 'Z']);
      expect(store.calls).toContain('clear');
    });
  }

  // Only PostgreSQL writes through an alias (UPDATE "dz_simple" "s2"); SQLite and MySQL have no such syntax.
  if (kind === 'postgres') test('an aliased table is invalidated under the table it stands for', async () => {
    const other = pgAlias(s.s.simple, 's2');
    await s.db.update(other).set({ name: 'aliased' }).where(eq(other.id, ids.a));
    expect(invalidated()).toContain(tag('/simple/a/'));
  });

  test('a database of another driver is refused', () => {
    const proxy = drizzlePgProxy(async () => ({ rows: [] }));
    expect(() => drizzleDumper(s.dumper, proxy)).toThrow(TypeError);
  });

  if (kind === 'sqlite') {
    test('better-sqlite3: a failing write whose dependentPaths also fail leaves no unhandled rejection', async () => {
      const dumper = createDumper({ logger: false });
      dumper.register('dz_simple', {
        async dependentPaths() {
          throw new Error('paths failed');
        },
      });
      const w = drizzleDumper(dumper, writer.db);
      const unhandled: unknown[] = [];
      const listener = (reason: unknown) => void unhandled.push(reason);
      process.on('unhandledRejection', listener);
      try {
        expect(() => w.update(s.s.simple).set({ slug: 'b' }).where(eq(s.s.simple.id, ids.a)).run()).toThrow(/UNIQUE/);
        await new Promise((r) => setTimeout(r, 50));
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', listener);
        await dumper.close();
      }
    });

    test('better-sqlite3: run() with returning() gives the RunResult, all() without returning() throws and writes nothing', async () => {
      const result = s.db.update(s.s.simple).set({ name: 'R' }).where(eq(s.s.simple.id, ids.a)).returning({ id: s.s.simple.id }).run();
      expect(result).toEqual({ changes: 1, lastInsertRowid: expect.anything() });
      expect(() => s.db.update(s.s.simple).set({ name: 'never' }).where(eq(s.s.simple.id, ids.b)).all()).toThrow();
      const [b] = await reader.db.select().from(s.s.simple).where(eq(s.s.simple.id, ids.b));
      expect(b.name).toBe('Beta');
      await drizzleSettled(s.db);
    });

    test('better-sqlite3: chained onConflictDoUpdate reads the rows of every conflict target', async () => {
      await s.db
        .insert(s.s.simple)
        .values({ id: ids.a, slug: 'zz', name: 'Z' })
        .onConflictDoUpdate({ target: s.s.simple.id, set: { slug: 'a2' } })
        .onConflictDoUpdate({ target: s.s.simple.slug, set: { name: 'Y' } });
      expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/a2/')]));
    });
  }
});
