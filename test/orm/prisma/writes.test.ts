/**
 * Every write Prisma can make through a model, top-level and nested, turns the pages that show
 * the rows it changed back into a MISS, and leaves the others cached. Each case warms the pages
 * first, writes through the extended client only, and reads the pages again over HTTP.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { DumperLogger } from '../../../src/index.js';
import { needService } from '../../support/services.js';
import { openDatabase, stack, type Counted, type Provider, type Stack, type TestDatabase } from './support.js';

const providers: Provider[] = ['sqlite'];
if (await needService('postgres')) providers.push('postgresql');
if (await needService('mariadb')) providers.push('mysql');

describe.each(providers)('prismaDumper writes (%s)', (provider) => {
  let db: TestDatabase;
  let reader: Counted;
  let writerBase: Counted;
  let s: Stack;
  let ids: { a: number; b: number; r: number };
  const open: Stack[] = [];
  const warnings: string[] = [];
  const logger: DumperLogger = { debug() {}, warn: (message: string) => void warnings.push(message) };

  /** A stack whose dependentPaths get only the rows' own columns: relations come from the write itself. */
  async function bare(): Promise<Stack> {
    const b = await stack(writerBase.prisma, reader, { prisma: { include: {} } });
    open.push(b);
    return b;
  }

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
    warnings.length = 0;
    s = await stack(writerBase.prisma, reader, { dumper: { logger } });
    open.push(s);
    const a = await s.writer.simple.create({ data: { slug: 'a', name: 'Alpha' } });
    const b = await s.writer.simple.create({ data: { slug: 'b', name: 'Beta' } });
    const r = await s.writer.related.create({ data: { slug: 'r', name: 'Rho' } });
    ids = { a: a.id, b: b.id, r: r.id };
  });
  afterEach(async () => {
    for (const x of open.splice(0)) await x.close();
  });

  async function expectMiss(st: Stack, path: string, contains?: string) {
    const page = await st.get(path);
    expect(page.cache, `${path}: ${page.body}`).toBe('MISS');
    if (contains !== undefined) expect(page.body, path).toContain(contains);
    return page;
  }
  async function expectHit(st: Stack, path: string) {
    expect((await st.get(path)).cache, path).toBe('HIT');
  }

  describe('top-level writes', () => {
    test('create invalidates the new row’s pages', async () => {
      await s.warm('/simple/');
      await s.warm('/simple/a/');
      await s.writer.simple.create({ data: { slug: 'c', name: 'Gamma' } });
      await expectMiss(s, '/simple/', 'Gamma');
      await expectHit(s, '/simple/a/');
    });

    test('update with a select still hands dependentPaths the full row, and returns only what was selected', async () => {
      await s.warm('/simple/a/');
      await s.warm('/simple/b/');
      const result = await s.writer.simple.update({ where: { id: ids.a }, data: { name: 'Alpha 2' }, select: { name: true } });
      expect(result).toEqual({ name: 'Alpha 2' });
      await expectMiss(s, '/simple/a/', 'Alpha 2');
      await expectHit(s, '/simple/b/');
    });

    test('update with an omit of the primary key returns it omitted', async () => {
      await s.warm('/simple/a/');
      const result = await s.writer.simple.update({ where: { slug: 'a' }, data: { name: 'Alpha 3' }, omit: { id: true } });
      expect(result).toEqual({ slug: 'a', name: 'Alpha 3' });
      await expectMiss(s, '/simple/a/', 'Alpha 3');
    });

    test('update of a slug invalidates the old page as well as the new one', async () => {
      await s.warm('/simple/a/');
      await s.writer.simple.update({ where: { id: ids.a }, data: { slug: 'a2' } });
      const old = await s.get('/simple/a/');
      expect(old.status).toBe(404);
      expect((await s.get('/simple/a2/')).body).toContain('Alpha');
    });

    test('upsert invalidates on its update path and on its create path', async () => {
      await s.warm('/simple/a/');
      await s.warm('/simple/');
      await s.writer.simple.upsert({ where: { slug: 'a' }, update: { name: 'Alpha up' }, create: { slug: 'a', name: 'never' } });
      await expectMiss(s, '/simple/a/', 'Alpha up');
      await s.warm('/simple/');
      await s.writer.simple.upsert({ where: { slug: 'd' }, update: { name: 'never' }, create: { slug: 'd', name: 'Delta' } });
      await expectMiss(s, '/simple/', 'Delta');
    });

    test('delete invalidates the pages of the row it deletes', async () => {
      await s.warm('/simple/a/');
      await s.warm('/simple/');
      await s.writer.simple.delete({ where: { id: ids.a } });
      expect((await s.get('/simple/a/')).status).toBe(404);
      const list = await expectMiss(s, '/simple/');
      expect(list.body).not.toContain('Alpha');
    });

    test('delete of a row in a many-to-many relation invalidates the other side (the join rows go too)', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }] } } });
      expect((await b.warm('/simple/a/')).body).toContain('related: Rho |');
      await b.warm('/simple/b/');
      await b.writer.related.delete({ where: { slug: 'r' } });
      await expectMiss(b, '/simple/a/', 'related:  |');
      await expectHit(b, '/simple/b/');
    });

    test('a write that fails invalidates nothing', async () => {
      await s.warm('/simple/a/');
      await expect(s.writer.simple.update({ where: { slug: 'a' }, data: { slug: 'b' } })).rejects.toThrow();
      await expectHit(s, '/simple/a/');
    });
  });

  describe('bulk writes', () => {
    test('createMany finds its rows again by a unique field of its data', async () => {
      await s.warm('/simple/');
      await s.warm('/simple/a/');
      const result = await s.writer.simple.createMany({ data: [{ slug: 'c', name: 'Gamma' }, { slug: 'd', name: 'Delta' }] });
      expect(result).toEqual({ count: 2 });
      await expectMiss(s, '/simple/', 'Delta');
      await expectHit(s, '/simple/a/');
      expect(warnings).toEqual([]);
    });

    test('createMany whose rows carry no unique field drops every page, with a warning', async () => {
      await s.warm('/simple/a/');
      await s.warm('/related/r/');
      await s.writer.comment.createMany({ data: [{ targetType: 'Simple', targetId: ids.a, body: 'first!' }] });
      await expectMiss(s, '/simple/a/', 'comments: first!');
      // The fallback reaches pages the comment is not on: every page went.
      await expectMiss(s, '/related/r/');
      expect(warnings).toEqual([expect.stringContaining('prisma Comment.createMany: a row in its data has no unique field set')]);
      expect(warnings[0]).toContain('invalidating every page');
    });

    if (provider !== 'mysql') {
      test('createManyAndReturn invalidates the rows it returns', async () => {
        await s.warm('/simple/');
        const rows = await s.writer.simple.createManyAndReturn({ data: [{ slug: 'e', name: 'Epsilon' }], select: { name: true } });
        expect(rows).toEqual([{ name: 'Epsilon' }]);
        await expectMiss(s, '/simple/', 'Epsilon');
      });

      test('updateManyAndReturn invalidates the rows it changed', async () => {
        await s.warm('/simple/a/');
        await s.warm('/simple/b/');
        await s.writer.simple.updateManyAndReturn({ where: { slug: 'a' }, data: { name: 'Alpha many' } });
        await expectMiss(s, '/simple/a/', 'Alpha many');
        await expectHit(s, '/simple/b/');
      });
    }

    test('updateMany resolves the rows of its where first, and invalidates those only', async () => {
      await s.writer.simple.create({ data: { slug: 'c', name: 'Gamma' } });
      for (const p of ['/simple/a/', '/simple/b/', '/simple/c/']) await s.warm(p);
      // After the update the rows no longer match the where: they are found again by id.
      const result = await s.writer.simple.updateMany({ where: { name: { in: ['Alpha', 'Beta'] } }, data: { name: 'Renamed' } });
      expect(result).toEqual({ count: 2 });
      await expectMiss(s, '/simple/a/', 'Renamed');
      await expectMiss(s, '/simple/b/', 'Renamed');
      await expectHit(s, '/simple/c/');
      expect(warnings).toEqual([]);
    });

    test('updateMany that changes a slug invalidates the old pages', async () => {
      await s.warm('/simple/a/');
      await s.writer.simple.updateMany({ where: { slug: 'a' }, data: { slug: 'a-renamed' } });
      expect((await s.get('/simple/a/')).status).toBe(404);
    });

    test('deleteMany invalidates the rows it deletes', async () => {
      await s.warm('/simple/a/');
      await s.warm('/simple/b/');
      await s.warm('/simple/');
      await s.writer.simple.deleteMany({ where: { slug: 'a' } });
      expect((await s.get('/simple/a/')).status).toBe(404);
      await expectMiss(s, '/simple/');
      await expectHit(s, '/simple/b/');
    });

    test('deleteMany of rows in a many-to-many relation invalidates the other side (the join rows go too)', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }] } } });
      expect((await b.warm('/simple/a/')).body).toContain('related: Rho |');
      await b.warm('/simple/b/');
      await b.writer.related.deleteMany({ where: { slug: 'r' } });
      await expectMiss(b, '/simple/a/', 'related:  |');
      await expectHit(b, '/simple/b/');
    });

    test('a bulk write over maxRows rows drops every page, with a warning', async () => {
      const small = await stack(writerBase.prisma, reader, { dumper: { logger }, prisma: { maxRows: 1 } });
      open.push(small);
      await small.warm('/simple/a/');
      await small.warm('/related/r/');
      await small.writer.simple.updateMany({ data: { name: 'Everyone' } });
      await expectMiss(small, '/simple/a/', 'Everyone');
      await expectMiss(small, '/related/r/');
      expect(warnings).toEqual([expect.stringContaining('prisma Simple.updateMany: it matches more than 1 rows (the maxRows option); invalidating every page')]);
    });

    test('a compound primary key: update, updateMany, createMany and deleteMany', async () => {
      await s.writer.pin.create({ data: { simpleId: ids.a, label: 'x' } });
      await s.warm(`/pins/${ids.a}/`);
      await s.warm(`/pins/${ids.b}/`);
      await s.writer.pin.update({ where: { simpleId_label: { simpleId: ids.a, label: 'x' } }, data: { note: 'one' } });
      await expectMiss(s, `/pins/${ids.a}/`, 'x:one');
      await s.warm(`/pins/${ids.a}/`);
      await s.writer.pin.updateMany({ where: { label: 'x' }, data: { note: 'two' } });
      await expectMiss(s, `/pins/${ids.a}/`, 'x:two');
      await s.writer.pin.createMany({ data: [{ simpleId: ids.b, label: 'y' }] });
      await expectMiss(s, `/pins/${ids.b}/`, 'y:');
      await s.warm(`/pins/${ids.a}/`);
      await s.writer.pin.deleteMany({ where: { simpleId: ids.a } });
      const gone = await expectMiss(s, `/pins/${ids.a}/`);
      expect(gone.body).toBe('');
      await expectHit(s, `/pins/${ids.b}/`);
      expect(warnings).toEqual([]);
    });
  });

  // These run on a stack whose dependentPaths see only the rows' own columns (no include option):
  // the pages of the other side are reached through the relations the write itself names.
  describe('nested writes', () => {
    test('connect, many-to-many: the connected row’s pages are invalidated', async () => {
      const b = await bare();
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: { slug: 'a' } } } });
      await expectMiss(b, '/simple/a/', 'related: Rho |');
      await expectHit(b, '/simple/b/');
    });

    test('connect from the other side of the many-to-many relation', async () => {
      const b = await bare();
      await b.warm('/related/r/');
      await b.writer.simple.update({ where: { id: ids.a }, data: { related: { connect: [{ slug: 'r' }] } } });
      await expectMiss(b, '/related/r/', 'simples: Alpha |');
    });

    test('disconnect, many-to-many: the disconnected row’s pages are invalidated', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }, { id: ids.b }] } } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { disconnect: { id: ids.a } } } });
      await expectMiss(b, '/simple/a/', 'related:  |');
      await expectHit(b, '/simple/b/');
    });

    test('set, many-to-many: the rows that leave and the rows that join are invalidated', async () => {
      const b = await bare();
      await b.writer.simple.create({ data: { slug: 'c', name: 'Gamma' } });
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }, { id: ids.b }] } } });
      for (const p of ['/simple/a/', '/simple/b/', '/simple/c/']) await b.warm(p);
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { set: [{ id: ids.b }, { slug: 'c' }] } } });
      await expectMiss(b, '/simple/a/', 'related:  |');
      await expectMiss(b, '/simple/c/', 'related: Rho |');
      // b stays in the relation and did not change.
      await expectHit(b, '/simple/b/');
    });

    test('create and connectOrCreate in a relation invalidate the rows they create', async () => {
      const b = await bare();
      await b.warm('/simple/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { create: { slug: 'c', name: 'Gamma' } } } });
      await expectMiss(b, '/simple/', 'Gamma');
      await b.warm('/simple/');
      await b.warm('/simple/a/');
      await b.writer.related.update({
        where: { id: ids.r },
        data: { simples: { connectOrCreate: [{ where: { slug: 'd' }, create: { slug: 'd', name: 'Delta' } }, { where: { slug: 'a' }, create: { slug: 'a', name: 'never' } }] } },
      });
      await expectMiss(b, '/simple/', 'Delta');
      await expectMiss(b, '/simple/a/', 'related: Rho |');
      // The row it creates takes a note from a: a's page is invalidated.
      const note = await b.writer.note.create({ data: { body: 'moving', simpleId: ids.b } });
      await b.warm('/simple/b/');
      await b.writer.related.update({
        where: { id: ids.r },
        data: { simples: { connectOrCreate: { where: { slug: 'e' }, create: { slug: 'e', name: 'Epsilon', notes: { connect: { id: note.id } } } } } },
      });
      await expectMiss(b, '/simple/b/', 'notes:  |');
      expect((await b.get('/simple/e/')).body).toContain('notes: moving |');
    });

    test('update, updateMany and upsert in a relation invalidate the rows they change', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }, { id: ids.b }] } } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { update: { where: { id: ids.a }, data: { name: 'Alpha nested' } } } } });
      await expectMiss(b, '/simple/a/', 'Alpha nested');
      await expectHit(b, '/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { updateMany: { where: { slug: 'b' }, data: { name: 'Beta nested' } } } } });
      await expectMiss(b, '/simple/b/', 'Beta nested');
      await b.warm('/simple/a/');
      await b.writer.related.update({
        where: { id: ids.r },
        data: { simples: { upsert: { where: { id: ids.a }, update: { name: 'Alpha upserted' }, create: { slug: 'never', name: 'never' } } } },
      });
      await expectMiss(b, '/simple/a/', 'Alpha upserted');
    });

    test('delete and deleteMany in a relation invalidate the rows they delete', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }, { id: ids.b }] } } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { delete: { id: ids.a } } } });
      expect((await b.get('/simple/a/')).status).toBe(404);
      await expectHit(b, '/simple/b/');
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { deleteMany: { slug: 'b' } } } });
      expect((await b.get('/simple/b/')).status).toBe(404);
    });

    test('a to-one relation: connect and disconnect invalidate the old owner and the new one', async () => {
      const b = await bare();
      const note = await b.writer.note.create({ data: { body: 'hello', simple: { connect: { id: ids.a } } } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.note.update({ where: { id: note.id }, data: { simple: { connect: { id: ids.b } } } });
      await expectMiss(b, '/simple/a/', 'notes:  |');
      await expectMiss(b, '/simple/b/', 'notes: hello |');
      await b.warm('/simple/b/');
      await b.writer.note.update({ where: { id: note.id }, data: { simple: { disconnect: true } } });
      await expectMiss(b, '/simple/b/', 'notes:  |');
    });

    test('a foreign key written as a column: the rows it pointed to and points to now are invalidated', async () => {
      const b = await bare();
      await b.warm('/simple/a/');
      const note = await b.writer.note.create({ data: { body: 'hello', simpleId: ids.a } });
      await expectMiss(b, '/simple/a/', 'notes: hello |');
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.note.update({ where: { id: note.id }, data: { simpleId: ids.b } });
      await expectMiss(b, '/simple/a/', 'notes:  |');
      await expectMiss(b, '/simple/b/', 'notes: hello |');
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.note.updateMany({ where: { simpleId: ids.b }, data: { simpleId: ids.a } });
      await expectMiss(b, '/simple/a/', 'notes: hello |');
      await expectMiss(b, '/simple/b/', 'notes:  |');
    });

    test('deleting a row invalidates the rows its foreign keys point to', async () => {
      const b = await bare();
      const first = await b.writer.note.create({ data: { body: 'one', simpleId: ids.a } });
      await b.writer.note.create({ data: { body: 'two', simpleId: ids.b } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      await b.writer.note.delete({ where: { id: first.id } });
      await expectMiss(b, '/simple/a/', 'notes:  |');
      await expectHit(b, '/simple/b/');
      await b.writer.note.deleteMany({ where: { body: 'two' } });
      await expectMiss(b, '/simple/b/', 'notes:  |');
    });

    test('a one-to-many connect takes the row from its old owner: that owner’s page is invalidated', async () => {
      const b = await bare();
      const note = await b.writer.note.create({ data: { body: 'hello', simpleId: ids.a } });
      await b.warm('/simple/a/');
      // Written from b's side: a appears nowhere in the arguments.
      await b.writer.simple.update({ where: { id: ids.b }, data: { notes: { connect: { id: note.id } } } });
      await expectMiss(b, '/simple/a/', 'notes:  |');
      expect((await b.get('/simple/b/')).body).toContain('notes: hello |');
    });

    test('writes two levels deep: the row whose relation changed is invalidated', async () => {
      const b = await bare();
      await b.writer.related.update({ where: { id: ids.r }, data: { simples: { connect: [{ id: ids.a }, { id: ids.b }] } } });
      await b.warm('/simple/a/');
      await b.warm('/simple/b/');
      // From Related's side, a note is created under a: a's page lists its notes.
      await b.writer.related.update({
        where: { id: ids.r },
        data: { simples: { update: { where: { id: ids.a }, data: { notes: { create: { body: 'deep' } } } } } },
      });
      await expectMiss(b, '/simple/a/', 'notes: deep |');
      await expectHit(b, '/simple/b/');
      await b.warm('/simple/a/');
      await b.writer.related.update({
        where: { id: ids.r },
        data: { simples: { upsert: { where: { id: ids.a }, update: { notes: { deleteMany: {} } }, create: { slug: 'never', name: 'never' } } } },
      });
      await expectMiss(b, '/simple/a/', 'notes:  |');
    });

    test('a create with nested creates and connects, two levels deep', async () => {
      const b = await bare();
      await b.warm('/related/r/');
      await b.warm('/simple/');
      await b.writer.note.create({
        data: { body: 'deep', simple: { create: { slug: 'n', name: 'Nested', related: { connect: { id: ids.r } } } } },
      });
      await expectMiss(b, '/related/r/', 'simples: Nested |');
      await expectMiss(b, '/simple/', 'Nested');
    });
  });

  describe('what is not seen', () => {
    test('a model that is not registered: its writes run exactly the statements they run without the extension', async () => {
      const statements = async (run: () => Promise<unknown>) => {
        const before = writerBase.queries();
        await run();
        return writerBase.log.slice(before);
      };
      const plain = await statements(() => writerBase.prisma.unwatched.create({ data: { name: 'x' } }));
      const extended = await statements(() => s.writer.unwatched.create({ data: { name: 'y' } }));
      expect(extended).toEqual(plain);
      const plainUpdate = await statements(() => writerBase.prisma.unwatched.updateMany({ data: { name: 'z' } }));
      const extendedUpdate = await statements(() => s.writer.unwatched.updateMany({ data: { name: 'w' } }));
      expect(extendedUpdate).toEqual(plainUpdate);
    });

    test('raw SQL is not seen: dumper.changed() after it does the invalidation', async () => {
      await s.warm('/simple/a/');
      await s.writer.$executeRawUnsafe(`UPDATE ${db.table('Simple')} SET ${db.column('name')} = 'Raw' WHERE ${db.column('id')} = ${ids.a}`);
      await expectHit(s, '/simple/a/');
      await s.dumper.changed('Simple', await s.writer.simple.findUniqueOrThrow({ where: { id: ids.a } }));
      await expectMiss(s, '/simple/a/', 'Raw');
    });
  });
});
