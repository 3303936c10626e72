/**
 * django-dumper's own test cases, ported to Kysely: a real database behind a Kysely wrapped by
 * `kyselyDumper()`, a real HTTP server in front (`withDumper`), and the SQL each request runs
 * counted through Kysely's query log. The writes never call the dumper: the wrapper sees them,
 * as Django's post_save, pre_delete and m2m_changed signals do. Many-to-many links are rows of a
 * registered junction table.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { dialects, openDatabase, stack, type Counted, type Stack, type TestDatabase } from './support.js';

const targets = await dialects();

describe.each(targets)('django-dumper test cases on Kysely (%s)', (dialect) => {
  let tdb: TestDatabase;
  let reader: Counted;
  let writer: Counted;
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
    s = await stack(writer.db, reader);
    await s.db.insertInto('ky_simple').values({ slug: 'a', name: 'Alpha' }).execute();
    await s.db.insertInto('ky_related').values({ slug: 'r', name: 'Rho' }).execute();
  });
  afterEach(async () => {
    await s?.close();
    expect(s.warnings).toEqual([]);
  });

  const ids = async () => ({
    a: (await s.db.selectFrom('ky_simple').select('id').where('slug', '=', 'a').executeTakeFirstOrThrow()).id,
    r: (await s.db.selectFrom('ky_related').select('id').where('slug', '=', 'r').executeTakeFirstOrThrow()).id,
  });
  const link = async () => {
    const { a, r } = await ids();
    await s.db.insertInto('ky_related_simple').values({ related_id: r, simple_id: a }).execute();
  };

  test('the first view runs its queries; a cached page runs none', async () => {
    const first = await s.get('/simple/a/');
    expect(first.status).toBe(200);
    expect(first.cache).toBe('MISS');
    expect(first.queries).toBe(4);
    const hit = await s.get('/simple/a/');
    expect(hit.cache).toBe('HIT');
    expect(hit.queries).toBe(0);
    expect(hit.body).toBe(first.body);
  });

  test('saving the model re-renders its page', async () => {
    const first = await s.get('/simple/a/');
    await s.db.updateTable('ky_simple').set({ name: 'Alpha 2' }).where('slug', '=', 'a').execute();
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
    expect(again.queries).toBe(1);
  });

  test('ignored paths are neither stored nor served', async () => {
    const first = await s.get('/admin/simple/a/');
    expect(first.cache).toBe('BYPASS');
    expect((await s.get('/admin/simple/a/')).queries).toBe(first.queries);
  });

  test('many-to-many add invalidates the related pages', async () => {
    await s.warm('/simple/a/', '/related/r/');
    await link();
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBeGreaterThan(0);
    expect(after.body).toContain('related: Rho |');
    expect((await s.get('/related/r/')).body).toContain('simples: Alpha |');
  });

  test('many-to-many remove invalidates the related pages', async () => {
    await link();
    expect((await s.warm('/simple/a/')).body).toContain('related: Rho |');
    const { a, r } = await ids();
    await s.db.deleteFrom('ky_related_simple').where('related_id', '=', r).where('simple_id', '=', a).execute();
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related:  |');
  });

  test('deleting a related object invalidates the pages it was on', async () => {
    await link();
    await s.warm('/simple/a/', '/related/r/');
    // The junction rows go with it (ON DELETE CASCADE): ky_related's dependentPaths reads them
    // before the delete, as pre_delete does.
    await s.db.deleteFrom('ky_related').where('slug', '=', 'r').execute();
    expect((await s.get('/simple/a/')).body).toContain('related:  |');
    expect((await s.get('/related/r/')).status).toBe(404);
  });

  test('updating a related object invalidates the pages it is on', async () => {
    await link();
    await s.warm('/simple/a/');
    await s.db.updateTable('ky_related').set({ name: 'Rhubarb' }).where('slug', '=', 'r').execute();
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related: Rhubarb |');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    const { a, r } = await ids();
    await s.warm('/simple/a/', '/related/r/');
    await s.db.insertInto('ky_comment').values({ target_type: 'simple', target_id: a, body: 'yum' }).execute();
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('comments: yum');
    expect((await s.get('/related/r/')).cache).toBe('HIT');

    // Moving the comment to another target invalidates the old target's page and the new one's.
    await s.warm('/simple/a/');
    await s.db.updateTable('ky_comment').set({ target_type: 'related', target_id: r }).where('body', '=', 'yum').execute();
    expect((await s.get('/simple/a/')).body).not.toContain('yum');
    expect((await s.get('/related/r/')).body).toContain('comments: yum');

    await s.warm('/related/r/');
    await s.db.deleteFrom('ky_comment').where('body', '=', 'yum').execute();
    const gone = await s.get('/related/r/');
    expect(gone.cache).toBe('MISS');
    expect(gone.body).not.toContain('yum');
  });

  test('a concurrent reader that renders between the write and the commit leaves no stale page', async () => {
    await s.warm('/simple/a/');
    await s.db.transaction().execute(async (trx) => {
      await trx.updateTable('ky_simple').set({ name: 'Alpha committed' }).where('slug', '=', 'a').execute();
      const during = await s.get('/simple/a/');
      expect(during.body).toContain('Alpha |');
      expect((await s.get('/simple/a/')).cache).toBe('HIT');
    });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('a model whose dependentPaths returns a string fails with a TypeError', async () => {
    const write = s.db.insertInto('ky_broken').values({ name: 'x' }).execute();
    await expect(write).rejects.toBeInstanceOf(TypeError);
    await expect(s.db.insertInto('ky_broken').values({ name: 'y' }).execute()).rejects.toThrow('ky_broken.dependentPaths() returned a string');
    // The inserts ran before their new rows reached dependentPaths: every page was invalidated.
    expect(s.warnings.splice(0)).toEqual([
      expect.stringMatching(/resolving its rows failed after it ran .*invalidating every page/),
      expect.stringMatching(/resolving its rows failed after it ran .*invalidating every page/),
    ]);
  });
});
