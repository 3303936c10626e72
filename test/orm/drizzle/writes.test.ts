/**
 * Every write path of a wrapped Drizzle database invalidates the pages of the rows it writes:
 * inserts (one, many, upserts), updates and deletes by any predicate (the rows before and after
 * an update), with the caller's result unchanged. The invalidations are recorded by the store.
 */
import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';
import { kinds, openDatabase, RecordingStore, stack, type Counted, type Stack, type TestDatabase } from './support.js';

const tag = (path: string) => `dumper.cached_path.${path.replace(/\/$/, '')}`;

describe.each(await kinds(needService))('drizzleDumper writes (%s)', (kind) => {
  let t: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let store: RecordingStore;
  let s: Stack;
  const returning = kind !== 'mariadb';

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
    s = await stack(t, writer, reader, { dumper: { store }, drizzle: { maxRows: 3 } });
    await s.db.insert(s.s.simple).values([
      { slug: 'a', name: 'Alpha' },
      { slug: 'b', name: 'Beta' },
    ]);
    store.calls.length = 0;
  });
  afterEach(async () => {
    await s?.close();
  });

  /** Every tag invalidated since the test's writes began. */
  const invalidated = () => store.calls.flatMap((c) => (c === 'clear' ? ['clear'] : c));

  test('insert of one row invalidates its paths', async () => {
    await s.db.insert(s.s.simple).values({ slug: 'c', name: 'Gamma' });
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/c/'), tag('/simple/')]));
  });

  test('insert of many rows invalidates every row', async () => {
    await s.db.insert(s.s.simple).values([
      { slug: 'c', name: 'Gamma' },
      { slug: 'd', name: 'Delta' },
    ]);
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/c/'), tag('/simple/d/')]));
  });

  test('an upsert that renames a row invalidates its old and new paths', async () => {
    const [a] = await reader.db.select().from(s.s.simple).where(eq(s.s.simple.slug, 'a'));
    const q = s.db.insert(s.s.simple).values({ id: a.id, slug: 'a2', name: 'Alpha' });
    await (kind === 'mariadb' ? q.onDuplicateKeyUpdate({ set: { slug: 'a2' } }) : q.onConflictDoUpdate({ target: s.s.simple.id, set: { slug: 'a2' } }));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/a2/')]));
    expect((await reader.db.select().from(s.s.simple).where(eq(s.s.simple.id, a.id)))[0].slug).toBe('a2');
  });

  test('an upsert by a unique key that inserts invalidates the new row', async () => {
    const q = s.db.insert(s.s.simple).values({ slug: 'z', name: 'Zeta' });
    await (kind === 'mariadb' ? q.onDuplicateKeyUpdate({ set: { name: 'Zeta' } }) : q.onConflictDoUpdate({ target: s.s.simple.slug, set: { name: 'Zeta' } }));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/z/')]));
  });

  if (kind !== 'mariadb') {
    test('onConflictDoNothing invalidates the rows it inserted', async () => {
      await s.db
        .insert(s.s.simple)
        .values([
          { slug: 'a', name: 'ignored' },
          { slug: 'e', name: 'Epsilon' },
        ])
        .onConflictDoNothing();
      expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/e/')]));
    });
  }

  test('update by a predicate invalidates every matching row, before and after', async () => {
    await s.db.update(s.s.simple).set({ name: 'same' }).where(inArray(s.s.simple.slug, ['a', 'b']));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/b/')]));
  });

  test('an update that renames the slug invalidates the old URL and the new one', async () => {
    await s.db.update(s.s.simple).set({ slug: 'renamed' }).where(eq(s.s.simple.slug, 'a'));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/renamed/')]));
  });

  test('an update whose predicate the new values no longer match still finds its rows after', async () => {
    await s.db.update(s.s.simple).set({ slug: 'x' }).where(eq(s.s.simple.name, 'Alpha'));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/x/')]));
  });

  test('delete by a predicate invalidates every row it deletes', async () => {
    await s.db.delete(s.s.simple).where(inArray(s.s.simple.slug, ['a', 'b']));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/b/')]));
  });

  test('a write matching nothing invalidates nothing; an unregistered table is left alone', async () => {
    await s.db.update(s.s.simple).set({ name: 'n' }).where(eq(s.s.simple.slug, 'nope'));
    await s.db.insert(s.s.unwatched).values({ name: 'u' });
    await s.db.update(s.s.unwatched).set({ name: 'v' });
    await s.db.delete(s.s.unwatched);
    expect(store.calls).toEqual([]);
  });

  test('above maxRows the write runs and every page is invalidated', async () => {
    await s.db.insert(s.s.simple).values([
      { slug: 'c', name: 'c' },
      { slug: 'd', name: 'd' },
    ]);
    store.calls.length = 0;
    await s.db.update(s.s.simple).set({ name: 'all' });
    expect(store.calls).toEqual(['clear']);
    expect((await reader.db.select().from(s.s.simple)).every((r: { name: string }) => r.name === 'all')).toBe(true);
  });

  test("the caller's result is the one Drizzle gives without page-dumper", async () => {
    if (returning) {
      const rows = await s.db.update(s.s.simple).set({ name: 'A' }).where(eq(s.s.simple.slug, 'a')).returning({ slug: s.s.simple.slug });
      expect(rows).toEqual([{ slug: 'a' }]);
      const all = await s.db.insert(s.s.simple).values({ slug: 'r1', name: 'R' }).returning();
      expect(all).toEqual([{ id: expect.any(Number), slug: 'r1', name: 'R' }]);
    }
    const plain = await s.db.update(s.s.simple).set({ name: 'B' }).where(eq(s.s.simple.slug, 'b'));
    if (kind === 'postgres') expect(plain).toMatchObject({ command: 'UPDATE', rowCount: 1, rows: [] });
    if (kind === 'sqlite') expect(plain).toEqual({ changes: 1, lastInsertRowid: expect.anything() });
    if (kind === 'mariadb') expect(plain[0]).toMatchObject({ affectedRows: 1 });
  });

  // MariaDB has no WITH before UPDATE: safety.test.ts checks it is rejected there.
  if (kind !== 'mariadb') test('writes through with() invalidate too', async () => {
    const names = s.db.$with('names').as(s.db.select({ slug: s.s.simple.slug }).from(s.s.simple).where(eq(s.s.simple.slug, 'a')));
    await s.db.with(names).update(s.s.simple).set({ name: 'W' }).where(inArray(s.s.simple.slug, sql`(select ${sql.identifier('slug')} from ${names})`));
    expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/')]));
  });

  if (kind === 'sqlite') {
    test('better-sqlite3: synchronous run(), all(), get() and values() invalidate once drizzleSettled() resolves', async () => {
      const result = s.db.update(s.s.simple).set({ name: 'S' }).where(eq(s.s.simple.slug, 'a')).run();
      expect(result.changes).toBe(1);
      expect(s.db.insert(s.s.simple).values({ slug: 'g', name: 'G' }).returning({ slug: s.s.simple.slug }).get()).toEqual({ slug: 'g' });
      expect(s.db.delete(s.s.simple).where(eq(s.s.simple.slug, 'b')).returning({ slug: s.s.simple.slug }).all()).toEqual([{ slug: 'b' }]);
      expect(s.db.update(s.s.simple).set({ name: 'V' }).where(eq(s.s.simple.slug, 'g')).returning({ name: s.s.simple.name }).values()).toEqual([['V']]);
      await drizzleSettled(s.db);
      expect(invalidated()).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/g/'), tag('/simple/b/')]));
    });

    test('better-sqlite3: a synchronous write whose dependentPaths returns a string rejects drizzleSettled()', async () => {
      s.db.insert(s.s.broken).values({ name: 'x' }).run();
      await expect(drizzleSettled(s.db)).rejects.toThrow('dz_broken.dependentPaths() returned a string');
      await drizzleSettled(s.db);
    });
  }
});
