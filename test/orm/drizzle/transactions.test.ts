/**
 * Transactions: a write inside one invalidates when it runs and again after the outermost
 * transaction commits (savepoints included), so a page that a concurrent visitor renders from
 * the last commit in between (a real HTTP request reading through its own connections) does not
 * outlive the commit. A rollback fires no second invalidation. better-sqlite3's transactions are
 * synchronous: the invalidations of its writes and of its commit finish after it returns.
 */
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';
import { kinds, openDatabase, RecordingStore, stack, type Counted, type Stack, type TestDatabase } from './support.js';

const tag = (path: string) => `dumper.cached_path.${path.replace(/\/$/, '')}`;

describe.each(await kinds(needService))('drizzleDumper transactions (%s)', (kind) => {
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
  });
  afterEach(async () => {
    await s?.close();
  });

  const since = (from: number) => store.calls.slice(from);

  if (kind !== 'sqlite') {
    test('a page rendered between the write and the commit does not survive the commit', async () => {
      await s.warm('/simple/a/');
      await s.db.transaction(async (tx: typeof s.db) => {
        await tx.update(s.s.simple).set({ name: 'Alpha committed' }).where(eq(s.s.simple.id, ids.a));
        const during = await s.get('/simple/a/');
        expect(during.cache).toBe('MISS');
        expect(during.body).toContain('Alpha |');
        expect((await s.get('/simple/a/')).cache).toBe('HIT');
      });
      const after = await s.get('/simple/a/');
      expect(after.cache).toBe('MISS');
      expect(after.body).toContain('Alpha committed |');
    });

    test('the writes of a transaction and its savepoints are invalidated again in one store call after the outermost commit', async () => {
      const from = store.calls.length;
      await s.db.transaction(async (tx: typeof s.db) => {
        await tx.update(s.s.simple).set({ name: 'A2' }).where(eq(s.s.simple.id, ids.a));
        await tx.transaction(async (inner: typeof s.db) => {
          await inner.update(s.s.simple).set({ name: 'B2' }).where(eq(s.s.simple.id, ids.b));
        });
        expect(since(from)).toHaveLength(2);
      });
      const calls = since(from);
      expect(calls).toHaveLength(3);
      expect(calls[2]).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/b/')]));
    });

    test('a rollback fires no second invalidation; a savepoint rolled back drops only its writes', async () => {
      await s.warm('/simple/a/');
      const from = store.calls.length;
      await expect(
        s.db.transaction(async (tx: typeof s.db) => {
          await tx.update(s.s.simple).set({ name: 'never committed' }).where(eq(s.s.simple.id, ids.a));
          expect((await s.warm('/simple/a/')).body).toContain('Alpha |');
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(since(from)).toHaveLength(1);
      expect((await s.get('/simple/a/')).cache).toBe('HIT');

      const mark = store.calls.length;
      await s.db.transaction(async (tx: typeof s.db) => {
        await tx.update(s.s.simple).set({ name: 'B3' }).where(eq(s.s.simple.id, ids.b));
        await expect(
          tx.transaction(async (inner: typeof s.db) => {
            await inner.update(s.s.simple).set({ name: 'A3' }).where(eq(s.s.simple.id, ids.a));
            throw new Error('to the savepoint');
          }),
        ).rejects.toThrow('to the savepoint');
      });
      const commit = since(mark).at(-1);
      expect(commit).toEqual(expect.arrayContaining([tag('/simple/b/')]));
      expect(commit).not.toContain(tag('/simple/a/'));
    });

    test('a delete inside a transaction computes its paths in it, before the row is gone', async () => {
      const from = store.calls.length;
      await s.db.transaction(async (tx: typeof s.db) => {
        await tx.delete(s.s.simple).where(eq(s.s.simple.id, ids.a));
      });
      expect(since(from)).toHaveLength(2);
      expect(since(from)[1]).toEqual(expect.arrayContaining([tag('/simple/a/')]));
    });
  } else {
    test('better-sqlite3: a synchronous transaction invalidates at each write and again after it commits', async () => {
      await s.warm('/simple/a/');
      const from = store.calls.length;
      const result = s.db.transaction((tx: typeof s.db) => {
        tx.update(s.s.simple).set({ name: 'A2' }).where(eq(s.s.simple.id, ids.a)).run();
        tx.transaction((inner: typeof s.db) => {
          inner.delete(s.s.simple).where(eq(s.s.simple.id, ids.b)).run();
        });
        return 'done';
      });
      expect(result).toBe('done');
      await drizzleSettled(s.db);
      const calls = since(from);
      expect(calls).toHaveLength(3);
      expect(calls[2]).toEqual(expect.arrayContaining([tag('/simple/a/'), tag('/simple/b/')]));
      expect((await s.get('/simple/a/')).body).toContain('A2 |');
    });

    test('better-sqlite3: a rollback fires no second invalidation', async () => {
      const from = store.calls.length;
      expect(() =>
        s.db.transaction((tx: typeof s.db) => {
          tx.update(s.s.simple).set({ name: 'never' }).where(eq(s.s.simple.id, ids.a)).run();
          throw new Error('roll back');
        }),
      ).toThrow('roll back');
      await drizzleSettled(s.db);
      expect(since(from)).toHaveLength(1);
      expect((await reader.db.select().from(s.s.simple).where(eq(s.s.simple.id, ids.a)))[0].name).toBe('Alpha');
    });
  }
});
