/**
 * Transactions: a write inside one invalidates when it runs and again after the outermost
 * transaction commits, so a page that a concurrent visitor renders from the last commit in
 * between (a real HTTP request to a real server, reading through its own connections) does not
 * outlive the commit. A rollback fires no second invalidation.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { MemoryStore } from '../../../src/index.js';
import { needService } from '../../support/services.js';
import { openDatabase, stack, type Counted, type Provider, type Stack, type TestDatabase } from './support.js';

const providers: Provider[] = ['sqlite'];
if (await needService('postgres')) providers.push('postgresql');
if (await needService('mariadb')) providers.push('mysql');

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

describe.each(providers)('prismaDumper transactions (%s)', (provider) => {
  // Prisma's SQLite adapters run every query of a client on one connection: queries outside a
  // transaction see its uncommitted rows. There a rollback invalidates the buffered writes too.
  const oneConnection = provider === 'sqlite';
  let db: TestDatabase;
  let reader: Counted;
  let writerBase: Counted;
  let store: RecordingStore;
  let s: Stack;
  let ids: { a: number; b: number };

  beforeAll(async () => {
    db = await openDatabase(provider);
    reader = db.client();
    writerBase = db.client();
  });
  afterAll(async () => {
    await db?.drop();
  });
  beforeEach(async () => {
    await db.reset();
    store = new RecordingStore();
    s = await stack(writerBase.prisma, reader, { dumper: { store }, prisma: { maxRows: 1 } });
    const a = await s.writer.simple.create({ data: { slug: 'a', name: 'Alpha' } });
    const b = await s.writer.simple.create({ data: { slug: 'b', name: 'Beta' } });
    ids = { a: a.id, b: b.id };
  });
  afterEach(async () => {
    await s?.close();
  });

  /** The tags invalidated since call `from`. */
  const invalidatedSince = (from: number) => store.calls.slice(from);
  const tag = (path: string) => `dumper.cached_path.${path}`;

  test('interactive: a page rendered between the write and the commit does not survive the commit', async () => {
    await s.warm('/simple/a/');
    await s.writer.$transaction(async (tx) => {
      await tx.simple.update({ where: { id: ids.a }, data: { name: 'Alpha committed' } });
      // The write invalidated the page; a visitor renders it again, from the last commit.
      const during = await s.get('/simple/a/');
      expect(during.cache).toBe('MISS');
      expect(during.body).toContain('Alpha |');
      expect((await s.get('/simple/a/')).cache).toBe('HIT');
    });
    // Once $transaction has resolved, the commit's invalidation is done.
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('interactive: the writes of a transaction are invalidated again in one store call after the commit', async () => {
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await s.writer.$transaction(async (tx) => {
      await tx.simple.update({ where: { id: ids.a }, data: { name: 'A2' } });
      await tx.simple.update({ where: { id: ids.b }, data: { name: 'B2' } });
      expect(invalidatedSince(from)).toHaveLength(2);
    });
    const calls = invalidatedSince(from);
    expect(calls).toHaveLength(3);
    expect(calls[2]).toEqual(expect.arrayContaining([tag('/simple/a'), tag('/simple/b'), tag('/simple')]));
  });

  if (!oneConnection) {
    test('interactive: a rollback fires no second invalidation', async () => {
      await s.warm('/simple/a/');
      const from = store.calls.length;
      await expect(
        s.writer.$transaction(async (tx) => {
          await tx.simple.update({ where: { id: ids.a }, data: { name: 'never committed' } });
          expect(invalidatedSince(from)).toHaveLength(1);
          // Rendered from the last commit, which stays the truth.
          expect((await s.warm('/simple/a/')).body).toContain('Alpha |');
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(invalidatedSince(from)).toHaveLength(1);
      const page = await s.get('/simple/a/');
      expect(page.cache).toBe('HIT');
      expect(page.body).toContain('Alpha |');

      // The dropped writes do not ride along with the next transaction's commit.
      await s.writer.$transaction(async (tx) => {
        await tx.simple.update({ where: { id: ids.b }, data: { name: 'B3' } });
      });
      const commit = invalidatedSince(from).at(-1);
      expect(commit).toEqual(expect.arrayContaining([tag('/simple/b')]));
      expect(commit).not.toContain(tag('/simple/a'));
    });
  }

  if (oneConnection) {
    test('interactive: on one connection a rollback invalidates again, as pages may have shown the uncommitted rows', async () => {
      // The site reads through the writing client itself: one connection.
      const one = await stack(writerBase.prisma, writerBase, { dumper: { store } });
      try {
        await one.warm('/simple/a/');
        const from = store.calls.length;
        await expect(
          one.writer.$transaction(async (tx) => {
            await tx.simple.update({ where: { id: ids.a }, data: { name: 'never committed' } });
            expect((await one.warm('/simple/a/')).body).toContain('never committed |');
            throw new Error('roll back');
          }),
        ).rejects.toThrow('roll back');
        expect(invalidatedSince(from)).toHaveLength(2);
        const after = await one.get('/simple/a/');
        expect(after.cache).toBe('MISS');
        expect(after.body).toContain('Alpha |');
      } finally {
        await one.close();
      }
    });
  }

  test('interactive: rows are read inside the transaction (a row created in it can be updated and deleted)', async () => {
    await s.warm('/simple/');
    await s.writer.$transaction(async (tx) => {
      const c = await tx.simple.create({ data: { slug: 'c', name: 'Gamma' } });
      await tx.simple.update({ where: { id: c.id }, data: { name: 'Gamma 2' } });
      await tx.related.create({ data: { slug: 'r', name: 'Rho', simples: { connect: { id: c.id } } } });
    });
    const list = await s.get('/simple/');
    expect(list.cache).toBe('MISS');
    expect(list.body).toContain('Gamma 2');
    expect((await s.get('/simple/c/')).body).toContain('related: Rho |');
  });

  test('nested: a savepoint commits with the outermost transaction, and one rolled back is dropped', async () => {
    await s.warm('/simple/a/');
    await s.warm('/simple/b/');
    const from = store.calls.length;
    await s.writer.$transaction(async (tx) => {
      await tx.$transaction(async (inner) => {
        await inner.simple.update({ where: { id: ids.a }, data: { name: 'Alpha nested' } });
      });
      // The inner transaction is not a commit: nothing more than the write's own invalidation.
      expect(invalidatedSince(from)).toHaveLength(1);
      expect((await s.warm('/simple/a/')).body).toContain('Alpha |');
      await expect(
        tx.$transaction(async (inner) => {
          await inner.simple.update({ where: { id: ids.b }, data: { name: 'never' } });
          throw new Error('roll back the savepoint');
        }),
      ).rejects.toThrow('roll back the savepoint');
      await s.warm('/simple/b/');
    });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha nested |');
    const b = await s.get('/simple/b/');
    expect(b.body).toContain('Beta |');
    if (oneConnection) {
      expect(invalidatedSince(from).at(-1)).toContain(tag('/simple/b'));
    } else {
      expect(b.cache).toBe('HIT');
      expect(invalidatedSince(from).at(-1)).not.toContain(tag('/simple/b'));
    }
  });

  test('batch: $transaction([...]) invalidates its writes once it has committed, in one store call', async () => {
    await s.warm('/simple/a/');
    await s.warm('/simple/');
    const from = store.calls.length;
    const [updated, created] = await s.writer.$transaction([
      s.writer.simple.update({ where: { id: ids.a }, data: { name: 'Alpha batch' } }),
      s.writer.simple.create({ data: { slug: 'c', name: 'Gamma' } }),
    ]);
    expect(updated.name).toBe('Alpha batch');
    expect(created.slug).toBe('c');
    // Prisma hands each query of a batch its result before the batch commits (or rolls back), so
    // the rows are read and invalidated after the batch only.
    const calls = invalidatedSince(from);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toEqual(expect.arrayContaining([tag('/simple/a'), tag('/simple/c'), tag('/simple')]));
    expect((await s.get('/simple/a/')).body).toContain('Alpha batch |');
    expect((await s.get('/simple/')).body).toContain('Gamma');
  });

  test(`batch: a batch that fails ${oneConnection ? 'invalidates the rows it wrote, on one connection' : 'invalidates nothing'}`, async () => {
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await expect(
      s.writer.$transaction([
        s.writer.simple.update({ where: { id: ids.a }, data: { name: 'never' } }),
        s.writer.simple.create({ data: { slug: 'b', name: 'duplicate slug' } }),
      ]),
    ).rejects.toThrow();
    if (oneConnection) {
      expect(invalidatedSince(from)).toEqual([expect.arrayContaining([tag('/simple/a')])]);
    } else {
      expect(invalidatedSince(from)).toEqual([]);
      expect((await s.get('/simple/a/')).cache).toBe('HIT');
    }
    expect((await s.get('/simple/a/')).body).toContain('Alpha |');
  });

  test('the fallback inside a transaction drops every page at the write and again after the commit', async () => {
    await s.warm('/simple/a/');
    const from = store.calls.length;
    await s.writer.$transaction(async (tx) => {
      await tx.simple.updateMany({ data: { name: 'Everyone' } });
      expect(invalidatedSince(from)).toEqual(['clear']);
      await s.warm('/simple/a/');
    });
    expect(invalidatedSince(from)).toEqual(['clear', 'clear']);
    expect((await s.get('/simple/a/')).body).toContain('Everyone |');
  });
});
