/**
 * django-dumper's own test cases, ported to Drizzle: a real database behind a Drizzle database
 * wrapped by `drizzleDumper()`, a real HTTP server in front (`withDumper`), and the SQL each
 * request runs counted through Drizzle's logger. The writes never call the dumper: the wrapped
 * database sees them, as Django's post_save, pre_delete and m2m_changed signals do.
 */
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';
import { kinds, openDatabase, stack, type Counted, type Stack, type TestDatabase } from './support.js';

describe.each(await kinds(needService))('django-dumper test cases on Drizzle (%s)', (kind) => {
  let t: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let s: Stack;
  let ids: { a: number; r: number };

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
    s = await stack(t, writer, reader);
    await s.db.insert(s.s.simple).values({ slug: 'a', name: 'Alpha' });
    await s.db.insert(s.s.related).values({ slug: 'r', name: 'Rho' });
    const [a] = await reader.db.select().from(s.s.simple);
    const [r] = await reader.db.select().from(s.s.related);
    ids = { a: a.id, r: r.id };
  });
  afterEach(async () => {
    await s?.close();
  });

  test('the first view runs its queries; a cached page runs none', async () => {
    const first = await s.get('/simple/a/');
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    expect(first.queries).toBeGreaterThan(0);
    const hit = await s.get('/simple/a/');
    expect(hit.cache).toBe('HIT');
    expect(hit.queries).toBe(0);
    expect(hit.body).toBe(first.body);
  });

  test('saving the row re-renders its page', async () => {
    const first = await s.get('/simple/a/');
    await s.db.update(s.s.simple).set({ name: 'Alpha 2' }).where(eq(s.s.simple.slug, 'a'));
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(first.queries);
    expect(after.body).toContain('Alpha 2');
    expect((await s.get('/simple/a/')).queries).toBe(0);
  });

  test('a 404 is not cached', async () => {
    expect((await s.get('/simple/nope/')).status).toBe(404);
    const again = await s.get('/simple/nope/');
    expect(again.status).toBe(404);
    expect(again.queries).toBeGreaterThan(0);
  });

  test('ignored paths are neither stored nor served', async () => {
    const first = await s.get('/admin/simple/a/');
    expect(first.cache).toBe('BYPASS');
    expect((await s.get('/admin/simple/a/')).queries).toBe(first.queries);
  });

  test('many-to-many add (a junction row inserted) invalidates both sides', async () => {
    await s.warm('/simple/a/');
    await s.warm('/related/r/');
    await s.db.insert(s.s.relatedSimple).values({ relatedId: ids.r, simpleId: ids.a });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBeGreaterThan(0);
    expect(after.body).toContain('related: Rho |');
    expect((await s.get('/related/r/')).body).toContain('simples: Alpha |');
  });

  test('many-to-many remove (a junction row deleted) invalidates both sides', async () => {
    await s.db.insert(s.s.relatedSimple).values({ relatedId: ids.r, simpleId: ids.a });
    expect((await s.warm('/simple/a/')).body).toContain('related: Rho |');
    await s.warm('/related/r/');
    await s.db.delete(s.s.relatedSimple).where(eq(s.s.relatedSimple.simpleId, ids.a));
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related:  |');
    expect((await s.get('/related/r/')).body).toContain('simples:  |');
  });

  test('deleting a related row invalidates the pages it was on (its paths read before it is gone)', async () => {
    await s.db.insert(s.s.relatedSimple).values({ relatedId: ids.r, simpleId: ids.a });
    await s.warm('/simple/a/');
    await s.warm('/related/r/');
    // ON DELETE CASCADE drops the link too: only dependentPaths run before the delete can find /simple/a/.
    await s.db.delete(s.s.related).where(eq(s.s.related.slug, 'r'));
    expect((await s.get('/simple/a/')).body).toContain('related:  |');
    expect((await s.get('/related/r/')).status).toBe(404);
  });

  test('updating a related row invalidates the pages it is on', async () => {
    await s.db.insert(s.s.relatedSimple).values({ relatedId: ids.r, simpleId: ids.a });
    await s.warm('/simple/a/');
    await s.db.update(s.s.related).set({ name: 'Rhubarb' }).where(eq(s.s.related.id, ids.r));
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related: Rhubarb |');
  });

  test("a generic relation (a comment on any row) invalidates its target's page", async () => {
    await s.warm('/simple/a/');
    await s.warm('/related/r/');
    await s.db.insert(s.s.comment).values({ targetType: 'simple', targetId: ids.a, body: 'yum' });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('comments: yum');
    expect((await s.get('/related/r/')).cache).toBe('HIT');

    // Moving the comment to another target invalidates the old target's page and the new one's.
    await s.warm('/simple/a/');
    await s.db.update(s.s.comment).set({ targetType: 'related', targetId: ids.r }).where(eq(s.s.comment.body, 'yum'));
    expect((await s.get('/simple/a/')).body).not.toContain('yum');
    expect((await s.get('/related/r/')).body).toContain('comments: yum');

    await s.warm('/related/r/');
    await s.db.delete(s.s.comment).where(eq(s.s.comment.body, 'yum'));
    const gone = await s.get('/related/r/');
    expect(gone.cache).toBe('MISS');
    expect(gone.body).not.toContain('yum');
  });

  test('a concurrent reader rendering between the write and the commit leaves no stale page after the commit', async () => {
    await s.warm('/simple/a/');
    if (kind === 'sqlite') {
      // better-sqlite3 transactions are synchronous: no request can render inside one; the
      // invalidations finish after it returns (drizzleSettled waits for them).
      s.db.transaction((tx: typeof s.db) => {
        tx.update(s.s.simple).set({ name: 'Alpha committed' }).where(eq(s.s.simple.id, ids.a)).run();
      });
      await drizzleSettled(s.db);
    } else {
      await s.db.transaction(async (tx: typeof s.db) => {
        await tx.update(s.s.simple).set({ name: 'Alpha committed' }).where(eq(s.s.simple.id, ids.a));
        // Another connection renders the page from the last commit and stores it.
        const during = await s.get('/simple/a/');
        expect(during.body).toContain('Alpha |');
        expect((await s.get('/simple/a/')).cache).toBe('HIT');
      });
    }
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('a table whose dependentPaths returns a string makes the write reject with a TypeError', async () => {
    await expect(s.db.insert(s.s.broken).values({ name: 'x' })).rejects.toBeInstanceOf(TypeError);
    await expect(s.db.insert(s.s.broken).values({ name: 'y' })).rejects.toThrow('dz_broken.dependentPaths() returned a string');
  });
});
