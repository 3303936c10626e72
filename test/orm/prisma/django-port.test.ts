/**
 * django-dumper's own test cases, ported to Prisma: a real database behind a Prisma Client
 * extended with `prismaDumper()`, a real HTTP server in front (`withDumper`), and the SQL each
 * request runs counted through Prisma's query log. The writes never call the dumper: the
 * extension sees them, as Django's post_save, pre_delete and m2m_changed signals do.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { needService } from '../../support/services.js';
import { openDatabase, stack, type Counted, type Provider, type Stack, type TestDatabase } from './support.js';

const providers: Provider[] = ['sqlite'];
if (await needService('postgres')) providers.push('postgresql');
if (await needService('mariadb')) providers.push('mysql');

describe.each(providers)('django-dumper test cases on Prisma (%s)', (provider) => {
  let db: TestDatabase;
  let reader: Counted;
  let writer: Counted;
  let s: Stack;

  beforeAll(async () => {
    db = await openDatabase(provider);
    reader = db.client();
    writer = db.client();
  });
  afterAll(async () => {
    await db?.drop();
  });
  beforeEach(async () => {
    await db.reset();
    s = await stack(writer.prisma, reader);
    await s.writer.simple.create({ data: { slug: 'a', name: 'Alpha' } });
    await s.writer.related.create({ data: { slug: 'r', name: 'Rho' } });
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

  test('saving the model re-renders its page', async () => {
    const first = await s.get('/simple/a/');
    await s.writer.simple.update({ where: { slug: 'a' }, data: { name: 'Alpha 2' } });
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

  test('many-to-many add invalidates the related pages', async () => {
    await s.warm('/simple/a/');
    await s.writer.related.update({ where: { slug: 'r' }, data: { simples: { connect: { slug: 'a' } } } });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBeGreaterThan(0);
    expect(after.body).toContain('related: Rho |');
  });

  test('many-to-many remove invalidates the related pages', async () => {
    await s.writer.related.update({ where: { slug: 'r' }, data: { simples: { connect: { slug: 'a' } } } });
    expect((await s.warm('/simple/a/')).body).toContain('related: Rho |');
    await s.writer.related.update({ where: { slug: 'r' }, data: { simples: { disconnect: { slug: 'a' } } } });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related:  |');
  });

  test('deleting a related object invalidates the pages it was on', async () => {
    await s.writer.related.update({ where: { slug: 'r' }, data: { simples: { connect: { slug: 'a' } } } });
    await s.warm('/simple/a/');
    await s.warm('/related/r/');
    await s.writer.related.delete({ where: { slug: 'r' } });
    expect((await s.get('/simple/a/')).body).toContain('related:  |');
    expect((await s.get('/related/r/')).status).toBe(404);
  });

  test('updating a related object invalidates the pages it is on', async () => {
    await s.writer.related.update({ where: { slug: 'r' }, data: { simples: { connect: { slug: 'a' } } } });
    await s.warm('/simple/a/');
    await s.writer.related.update({ where: { slug: 'r' }, data: { name: 'Rhubarb' } });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related: Rhubarb |');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    const a = await s.writer.simple.findUniqueOrThrow({ where: { slug: 'a' } });
    const r = await s.writer.related.findUniqueOrThrow({ where: { slug: 'r' } });
    await s.warm('/simple/a/');
    await s.warm('/related/r/');
    const comment = await s.writer.comment.create({ data: { targetType: 'Simple', targetId: a.id, body: 'yum' } });
    const after = await s.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('comments: yum');
    expect((await s.get('/related/r/')).cache).toBe('HIT');

    // Moving the comment to another target invalidates the old target's page and the new one's.
    await s.warm('/simple/a/');
    await s.writer.comment.update({ where: { id: comment.id }, data: { targetType: 'Related', targetId: r.id } });
    expect((await s.get('/simple/a/')).body).toContain('comments: ');
    expect((await s.get('/simple/a/')).body).not.toContain('yum');
    expect((await s.get('/related/r/')).body).toContain('comments: yum');

    await s.warm('/related/r/');
    await s.writer.comment.delete({ where: { id: comment.id } });
    const gone = await s.get('/related/r/');
    expect(gone.cache).toBe('MISS');
    expect(gone.body).not.toContain('yum');
  });

  test('a model whose dependentPaths returns a string fails with a TypeError', async () => {
    const write = s.writer.broken.create({ data: { name: 'x' } });
    await expect(write).rejects.toBeInstanceOf(TypeError);
    await expect(s.writer.broken.create({ data: { name: 'y' } })).rejects.toThrow('Broken.dependentPaths() returned a string');
  });
});
