/**
 * Transactions: a write inside one invalidates when it runs and again after the outermost
 * transaction commits, so a page that a concurrent visitor renders from the last commit in
 * between (a real HTTP request to a real server, reading through its own connections) does not
 * outlive the commit. A rollback fires no second invalidation; a rollback to a savepoint drops
 * the writes since it. Covered: `transaction().execute()`, `startTransaction()` with
 * `commit()`/`rollback()` and savepoints, and a transaction run by hand on `connection()`.
 */
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { MemoryStore } from '../../../src/index.js';
import { dialects, openDatabase, seed, stack, type Counted, type Stack, type TestDatabase } from './support.js';

const targets = await dialects();

/** A MemoryStore that records its invalidations and clears. */
class RecordingStore extends MemoryStore {
  readonly calls: Array<readonly string[] | 'clear'> = [];
  override invalidate(tags: readonly string[]): number {
    this.calls.push([...tags]);
    return super.invalidate(tags);
  }
  override clear(): void {
    this.calls.push('clear');
    super.clear();
  }
}

const tag = (path: string) => `dumper.cached_path.${path}`;

describe.each(targets)('kyselyDumper transactions (%s)', (dialect) => {
  let tdb: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let store: RecordingStore;
  let s: Stack;

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
    store = new RecordingStore();
    s = await stack(writer.db, reader, { dumper: { store } });
    await seed(s.db);
  });
  afterEach(async () => {
    await s?.close();
    expect(s.warnings).toEqual([]);
  });

  const since = (from: number) => store.calls.slice(from);

  test('transaction(): a page rendered between the write and the commit does not survive the commit', async () => {
    await s.warm('/simple/a/');
    await s.db.transaction().execute(async (trx) => {
      await trx.updateTable('ky_simple').set({ name: 'Alpha committed' }).where('slug', '=', 'a').execute();
      // The write invalidated the page; a visitor renders it again, from the last commit.
      const during = await s.get('/simple/a/');
      expect(during.cache).toBe('MISS');
      expect(during.body).toContain('Alpha |');
      expect((await s.get('/simple/a/')).cache).toBe('HIT');
    });
    // Once execute() has resolved, the commit's invalidation is done.
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('transaction(): the writes are invalidated again in one store call after the commit', async () => {
    const from = store.calls.length;
    await s.db.transaction().execute(async (trx) => {
      await trx.updateTable('ky_simple').set({ name: 'A2' }).where('slug', '=', 'a').execute();
      await trx.deleteFrom('ky_simple').where('slug', '=', 'b').execute();
      expect(since(from)).toHaveLength(2);
    });
    const calls = since(from);
    expect(calls).toHaveLength(3);
    expect(calls[2]).toEqual(expect.arrayContaining([tag('/simple/a'), tag('/simple/b'), tag('/simple')]));
  });

  test('transaction(): a rollback fires no second invalidation', async () => {
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await expect(
      s.db.transaction().execute(async (trx) => {
        await trx.updateTable('ky_simple').set({ name: 'never committed' }).where('slug', '=', 'a').execute();
        expect(since(from)).toHaveLength(1);
        await s.warm('/simple/a/');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(since(from)).toHaveLength(1);
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('HIT');
    expect(after.body).toContain('Alpha |');
  });

  test('startTransaction(): commit() invalidates again; a page rendered before it does not survive', async () => {
    await s.warm('/simple/a/');
    const trx = await s.db.startTransaction().execute();
    await trx.insertInto('ky_comment').values({ target_type: 'simple', target_id: 1, body: 'late' }).execute();
    await s.warm('/simple/a/');
    await trx.commit().execute();
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('comments: late');
  });

  test('startTransaction(): rollback() fires no second invalidation', async () => {
    const trx = await s.db.startTransaction().execute();
    await trx.updateTable('ky_simple').set({ name: 'no' }).where('slug', '=', 'a').execute();
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await trx.rollback().execute();
    expect(since(from)).toEqual([]);
    expect((await s.get('/simple/a/')).cache).toBe('HIT');
  });

  test('savepoints: a rollback to a savepoint drops the writes since it; a released one commits with the transaction', async () => {
    await s.db.insertInto('ky_simple').values({ slug: 'c', name: 'Gamma' }).execute();
    const trx = await s.db.startTransaction().execute();
    await trx.updateTable('ky_simple').set({ name: 'A2' }).where('slug', '=', 'a').execute();
    const sp1 = await trx.savepoint('sp1').execute();
    await sp1.updateTable('ky_simple').set({ name: 'B2' }).where('slug', '=', 'b').execute();
    const back = await sp1.rollbackToSavepoint('sp1').execute();
    const sp2 = await back.savepoint('sp2').execute();
    await sp2.updateTable('ky_simple').set({ name: 'C2' }).where('slug', '=', 'c').execute();
    const released = await sp2.releaseSavepoint('sp2').execute();
    await s.warm('/simple/a/', '/simple/b/', '/simple/c/');
    const from = store.calls.length;
    await released.commit().execute();
    const calls = since(from);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toEqual(expect.arrayContaining([tag('/simple/a'), tag('/simple/c')]));
    expect(calls[0]).not.toContain(tag('/simple/b'));
    expect((await s.get('/simple/a/')).body).toContain('A2 |');
    expect((await s.get('/simple/c/')).body).toContain('C2 |');
    expect((await s.get('/simple/b/')).cache).toBe('HIT');
  });

  test('connection(): a transaction begun and committed by hand is seen too', async () => {
    await s.warm('/simple/a/');
    await s.db.connection().execute(async (conn) => {
      await sql`begin`.execute(conn);
      await conn.updateTable('ky_simple').set({ name: 'by hand' }).where('slug', '=', 'a').execute();
      await s.warm('/simple/a/');
      await sql`commit`.execute(conn);
    });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('by hand |');
  });

  test('a write outside a transaction invalidates once, before it returns', async () => {
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await s.db.updateTable('ky_simple').set({ name: 'now' }).where('slug', '=', 'a').execute();
    expect(since(from)).toHaveLength(1);
    expect((await s.get('/simple/a/')).body).toContain('now |');
  });
});
