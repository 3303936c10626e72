/**
 * django-dumper's full-stack test cases on the real ORM: MikroORM entities on SQLite, PostgreSQL
 * and MariaDB, written through entity managers, flushes and native writes that never call the
 * dumper, and read by the site through a second MikroORM instance (its own connections and
 * `contextName`, as another process would be), whose SQL statements are counted per request
 * through MikroORM's logger.
 */
import { Collection, EntitySchema, type MikroORM } from '@mikro-orm/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type Dumper, type DumperOptions } from '../../../src/index.js';
import { mikroOrmDumper } from '../../../src/orm/mikro-orm/index.js';
import { kinds, openDatabase, Site, type Counted, type TestDatabase } from './support.js';

/** The test models of django-dumper, as fresh classes for each MikroORM instance. */
function models() {
  class SimpleModel {
    id!: number;
    slug!: string;
    name!: string;
    related = new Collection<RelatedModel>(this);

    dependentPaths() {
      return [`/simple/${this.slug}/`];
    }
  }

  class RelatedModel {
    id!: number;
    slug!: string;
    name!: string;
    simples = new Collection<SimpleModel>(this);

    *dependentPaths() {
      // The simples are loaded by page-dumper before it calls this: before a delete too, while
      // the links (which the database deletes with the row) still exist.
      for (const s of this.simples) yield `/simple/${s.slug}/`;
      yield `/related/${this.slug}/`;
    }
  }

  /** A generic relation, like Django's contenttypes: a comment on any model. */
  class Comment {
    id!: number;
    targetType!: 'simple' | 'related';
    targetId!: number;
    body!: string;
  }

  class Broken {
    id!: number;
    name!: string;
    dependentPaths() {
      return '/broken/' as unknown as string[];
    }
  }

  const schemas = [
    new EntitySchema<SimpleModel>({
      class: SimpleModel,
      tableName: 'mo_simple',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        slug: { type: 'string', length: 50, unique: true },
        name: { type: 'string', length: 50 },
        related: { kind: 'm:n', entity: () => RelatedModel, mappedBy: 'simples' },
      },
    }),
    new EntitySchema<RelatedModel>({
      class: RelatedModel,
      tableName: 'mo_related',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        slug: { type: 'string', length: 50, unique: true },
        name: { type: 'string', length: 50 },
        simples: { kind: 'm:n', entity: () => SimpleModel, inversedBy: 'related', pivotTable: 'mo_related_simples' },
      },
    }),
    new EntitySchema<Comment>({
      class: Comment,
      tableName: 'mo_comment',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        targetType: { type: 'string', length: 20 },
        targetId: { type: 'number' },
        body: { type: 'string', length: 200 },
      },
    }),
    new EntitySchema<Broken>({
      class: Broken,
      tableName: 'mo_broken',
      properties: { id: { type: 'number', primary: true, autoincrement: true }, name: { type: 'string', length: 50 } },
    }),
  ];
  return { SimpleModel, RelatedModel, Comment, Broken, schemas };
}

type Models = ReturnType<typeof models>;

const targets = await kinds();

describe.each(targets)('django-dumper test cases on MikroORM and %s', (kind) => {
  let db: TestDatabase;
  let writer: Counted;
  let reader: Counted;
  const w = models();
  const r = models();
  let dumper: Dumper;
  let site: Site;
  const open: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    db = await openDatabase(kind);
    writer = await db.open(w.schemas);
    reader = await db.open(r.schemas, { contextName: 'reader' });
  });
  afterAll(async () => {
    await db?.close();
  });

  const em = () => writer.orm.em.fork();

  function app(path: string): Promise<{ status: number; body: string }> {
    const rem = reader.orm.em.fork();
    return (async () => {
      let m: RegExpExecArray | null;
      const comments = async (targetType: string, targetId: number) =>
        (await rem.find(r.Comment, { targetType: targetType as 'simple', targetId }, { orderBy: { id: 'asc' } })).map((c) => c.body).join(',');
      if ((m = /^\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await rem.findOne(r.SimpleModel, { slug: m[1]! }, { populate: ['related'] });
        if (!s) return { status: 404, body: 'no such thing' };
        const related = s.related.map((x) => x.name).sort();
        return { status: 200, body: `${s.name} | related: ${related.join(',')} | comments: ${await comments('simple', s.id)}` };
      }
      if ((m = /^\/related\/([^/]+)\/$/.exec(path))) {
        const x = await rem.findOne(r.RelatedModel, { slug: m[1]! }, { populate: ['simples'] });
        if (!x) return { status: 404, body: 'no such thing' };
        return { status: 200, body: `${x.name} | simples: ${x.simples.map((s) => s.name).sort().join(',')} | comments: ${await comments('related', x.id)}` };
      }
      if ((m = /^\/admin\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await rem.findOne(r.SimpleModel, { slug: m[1]! });
        return { status: 200, body: `admin ${s?.name}` };
      }
      return { status: 404, body: 'not found' };
    })();
  }

  async function start(options: DumperOptions = {}, orm: MikroORM | null = writer.orm) {
    const d = createDumper({ logger: false, ...options });
    d.register(w.SimpleModel).register(w.RelatedModel).register(w.Broken);
    d.register(w.Comment, {
      // The target's page: looked up by type and id, as a GenericForeignKey would.
      async dependentPaths(c: InstanceType<Models['Comment']>) {
        const entity = c.targetType === 'simple' ? r.SimpleModel : r.RelatedModel;
        const row = await reader.orm.em.fork().findOne(entity, { id: c.targetId });
        return row ? [`/${c.targetType}/${row.slug}/`] : [];
      },
    });
    const handle = orm ? mikroOrmDumper(d, orm) : undefined;
    const s = await Site.start(d, reader, app);
    open.push(async () => {
      await s.close();
      handle?.close();
      await d.close();
    });
    return { d, s };
  }

  beforeEach(async () => {
    await db.clear();
    const m = em();
    m.create(w.SimpleModel, { slug: 'a', name: 'Alpha' });
    m.create(w.RelatedModel, { slug: 'r', name: 'Rho' });
    await m.flush();
    ({ d: dumper, s: site } = await start());
  });
  afterEach(async () => {
    for (const close of open.splice(0)) await close();
  });

  /** The queries of a cold render of /simple/a/, as measured on this database. */
  async function coldRender() {
    const first = await site.get('/simple/a/');
    expect(first.cache).toBe('MISS');
    expect(first.queries).toBeGreaterThan(0);
    return first.queries;
  }

  test('a cached page runs no query', async () => {
    const queries = await coldRender();
    const hit = await site.get('/simple/a/');
    expect(hit.cache).toBe('HIT');
    expect(hit.queries).toBe(0);
    expect(queries).toBe(2); // the simple with its related rows (joined), and its comments
  });

  test('saving the model re-renders its page', async () => {
    const queries = await coldRender();
    const m = em();
    const a = await m.findOneOrFail(w.SimpleModel, { slug: 'a' });
    a.name = 'Alpha 2';
    await m.flush();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('Alpha 2');
    expect((await site.get('/simple/a/')).queries).toBe(0);
  });

  test('a 404 is not cached', async () => {
    const first = await site.get('/simple/nope/');
    expect(first.status).toBe(404);
    const again = await site.get('/simple/nope/');
    expect(again.status).toBe(404);
    expect(again.queries).toBeGreaterThan(0);
    expect(again.queries).toBe(first.queries);
  });

  test('ignored paths are neither stored nor served', async () => {
    expect((await site.get('/admin/simple/a/')).queries).toBe(1);
    expect((await site.get('/admin/simple/a/')).queries).toBe(1);
  });

  test('an ignored path stored before the setting changed is not served', async () => {
    const store = new MemoryStore();
    // Two more sites on one store, reading only: the first one's dumper has the ORM.
    const { s: everything } = await start({ store, ignore: null }, null);
    await everything.get('/admin/simple/a/');
    expect((await everything.get('/admin/simple/a/')).queries).toBe(0);
    const { s: withAdminIgnored } = await start({ store }, null);
    expect((await withAdminIgnored.get('/admin/simple/a/')).queries).toBe(1);
  });

  test('many-to-many add invalidates the related pages', async () => {
    const queries = await coldRender();
    await site.warm('/related/r/');
    const m = em();
    const x = await m.findOneOrFail(w.RelatedModel, { slug: 'r' }, { populate: ['simples'] });
    x.simples.add(await m.findOneOrFail(w.SimpleModel, { slug: 'a' }));
    await m.flush();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('related: Rho |');
    expect((await site.get('/related/r/')).body).toContain('simples: Alpha |');
  });

  test('many-to-many add from the other side (not the owner) invalidates the related pages', async () => {
    await site.warm('/simple/a/', '/related/r/');
    const m = em();
    const a = await m.findOneOrFail(w.SimpleModel, { slug: 'a' });
    // Not loaded: added to the collection without reading it.
    a.related.add(m.getReference(w.RelatedModel, (await m.findOneOrFail(w.RelatedModel, { slug: 'r' })).id));
    await m.flush();
    expect((await site.expectMiss('/simple/a/'))[0]!.body).toContain('related: Rho |');
    expect((await site.expectMiss('/related/r/'))[0]!.body).toContain('simples: Alpha |');
  });

  test('many-to-many remove invalidates the related pages', async () => {
    const m = em();
    const a = await m.findOneOrFail(w.SimpleModel, { slug: 'a' });
    const x = await m.findOneOrFail(w.RelatedModel, { slug: 'r' }, { populate: ['simples'] });
    x.simples.add(a);
    await m.flush();
    expect((await site.get('/simple/a/')).body).toContain('related: Rho |');
    await site.warm('/simple/a/', '/related/r/');
    x.simples.remove(a);
    await m.flush();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related:  |');
    expect((await site.expectMiss('/related/r/'))[0]!.body).toContain('simples:  |');
    // And from the other side, with its collection replaced without loading it.
    x.simples.add(a);
    await m.flush();
    await site.warm('/simple/a/', '/related/r/');
    const other = em();
    (await other.findOneOrFail(w.SimpleModel, { slug: 'a' })).related.removeAll();
    await other.flush();
    expect((await site.expectMiss('/simple/a/'))[0]!.body).toContain('related:  |');
    expect((await site.expectMiss('/related/r/'))[0]!.body).toContain('simples:  |');
  });

  test('deleting a related object invalidates the pages it was on', async () => {
    const m = em();
    const x = await m.findOneOrFail(w.RelatedModel, { slug: 'r' }, { populate: ['simples'] });
    x.simples.add(await m.findOneOrFail(w.SimpleModel, { slug: 'a' }));
    await m.flush();
    await site.warm('/simple/a/', '/related/r/');
    // A fresh entity manager: the row is removed without its links loaded. page-dumper reads
    // them (and calls dependentPaths) before the DELETE, whose links go by ON DELETE CASCADE.
    const other = em();
    other.remove(await other.findOneOrFail(w.RelatedModel, { slug: 'r' }));
    await other.flush();
    expect((await site.expectMiss('/simple/a/'))[0]!.body).toContain('related:  |');
    expect((await site.get('/related/r/')).status).toBe(404);
  });

  test('updating a related object invalidates the pages it is on', async () => {
    const m = em();
    const x = await m.findOneOrFail(w.RelatedModel, { slug: 'r' }, { populate: ['simples'] });
    x.simples.add(await m.findOneOrFail(w.SimpleModel, { slug: 'a' }));
    await m.flush();
    await site.warm('/simple/a/');
    const other = em();
    (await other.findOneOrFail(w.RelatedModel, { slug: 'r' })).name = 'Rhubarb';
    await other.flush();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related: Rhubarb |');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    const queries = await coldRender();
    await site.warm('/related/r/');
    const m = em();
    const a = await m.findOneOrFail(w.SimpleModel, { slug: 'a' });
    const comment = m.create(w.Comment, { targetType: 'simple', targetId: a.id, body: 'yum' });
    await m.flush();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('comments: yum');
    await site.expectHit('/related/r/');

    // Moved to another target: the old target's page and the new one's.
    await site.warm('/simple/a/');
    comment.targetType = 'related';
    comment.targetId = (await m.findOneOrFail(w.RelatedModel, { slug: 'r' })).id;
    await m.flush();
    expect((await site.expectMiss('/simple/a/'))[0]!.body).not.toContain('yum');
    expect((await site.expectMiss('/related/r/'))[0]!.body).toContain('comments: yum');

    await m.nativeDelete(w.Comment, { id: comment.id });
    const gone = await site.get('/related/r/');
    expect(gone.cache).toBe('MISS');
    expect(gone.body).not.toContain('yum');
  });

  test('a concurrent reader that renders between the write and the commit leaves no stale page after the commit', async () => {
    await site.warm('/simple/a/');
    await em().transactional(async (m) => {
      (await m.findOneOrFail(w.SimpleModel, { slug: 'a' })).name = 'Alpha committed';
      await m.flush();
      // Invalidated at the write; the reader, on its own connection, still reads the committed
      // row: it renders the old page and stores it.
      const during = await site.get('/simple/a/');
      expect(during.cache).toBe('MISS');
      expect(during.body).toContain('Alpha |');
      expect((await site.get('/simple/a/')).cache).toBe('HIT');
    });
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('for a delete, dependentPaths runs before the row is gone', async () => {
    const seen: Array<{ slug: string; rows: number }> = [];
    const d = createDumper({ logger: false });
    d.register('RelatedModel', {
      async dependentPaths(x: { id: number; slug: string }) {
        // Read on another connection: the row as the database has it when dependentPaths runs.
        seen.push({ slug: x.slug, rows: await reader.orm.em.fork().count(r.RelatedModel, { id: x.id }) });
        return [`/related/${x.slug}/`];
      },
    });
    for (const close of open.splice(0)) await close();
    const handle = mikroOrmDumper(d, writer.orm);
    try {
      const m = em();
      m.remove(await m.findOneOrFail(w.RelatedModel, { slug: 'r' }));
      await m.flush();
      expect(seen).toEqual([{ slug: 'r', rows: 1 }]);
      expect(await reader.orm.em.fork().count(r.RelatedModel, {})).toBe(0);
      // The same for a delete by criteria.
      m.create(w.RelatedModel, { slug: 's', name: 'Sigma' });
      await m.flush();
      seen.length = 0;
      expect(await em().nativeDelete(w.RelatedModel, { slug: 's' })).toBe(1);
      expect(seen).toEqual([{ slug: 's', rows: 1 }]);
    } finally {
      handle.close();
      await d.close();
    }
  });

  test('a model whose dependentPaths returns a string fails with a TypeError', async () => {
    const m = em();
    m.create(w.Broken, { name: 'x' });
    const flushing = m.flush();
    await expect(flushing).rejects.toBeInstanceOf(TypeError);
    await expect(flushing).rejects.toThrow('Broken.dependentPaths() returned a string ("/broken/")');
    // An update: its row as it was is read first, and the flush fails before it writes.
    const row = await em().findOneOrFail(w.Broken, { name: 'x' });
    const other = em();
    (await other.findOneOrFail(w.Broken, { id: row.id })).name = 'y';
    await expect(other.flush()).rejects.toThrow(TypeError);
    expect((await em().findOneOrFail(w.Broken, { id: row.id })).name).toBe('x');
    void dumper;
  });
});
