/**
 * django-dumper's full-stack test cases on the real ORM: TypeORM entities on PostgreSQL, SQLite
 * and MariaDB, written through repositories and QueryBuilders that never call the dumper, with
 * the SQL each request runs counted through TypeORM's own logger. (test/django-port.test.ts is
 * the same suite over a hand-written data layer.)
 */
import { Column, Entity, JoinTable, ManyToMany, PrimaryGeneratedColumn } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type Dumper, type DumperOptions } from '../../../src/index.js';
import { typeormDumper } from '../../../src/orm/typeorm/index.js';
import { databases, Site, type Database } from './support.js';

@Entity()
class SimpleModel {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 50, unique: true }) slug!: string;
  @Column({ type: 'varchar', length: 50 }) name!: string;
  @ManyToMany(() => RelatedModel, (r) => r.simples) related!: RelatedModel[];

  dependentPaths() {
    return [`/simple/${this.slug}/`];
  }
}

@Entity()
class RelatedModel {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 50, unique: true }) slug!: string;
  @Column({ type: 'varchar', length: 50 }) name!: string;
  @ManyToMany(() => SimpleModel, (s) => s.related) @JoinTable() simples!: SimpleModel[];

  *dependentPaths() {
    for (const s of this.simples ?? []) yield `/simple/${s.slug}/`;
    yield `/related/${this.slug}/`;
  }
}

/** A generic relation, like Django's contenttypes: a comment on any model. */
@Entity()
class Comment {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 20 }) targetType!: 'simple' | 'related';
  @Column({ type: 'int' }) targetId!: number;
  @Column({ type: 'varchar', length: 200 }) body!: string;
}

const targets = await databases();

describe.each(targets)('django-dumper test cases on TypeORM and $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let site: Site;
  const open: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    db = await target.open([SimpleModel, RelatedModel, Comment]);
  });
  afterAll(async () => {
    await db?.close();
  });

  const simples = () => db.dataSource.getRepository(SimpleModel);
  const relateds = () => db.dataSource.getRepository(RelatedModel);
  const comments = () => db.dataSource.getRepository(Comment);

  function app(path: string): Promise<{ status: number; body: string }> {
    return (async () => {
      let m: RegExpExecArray | null;
      if ((m = /^\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await simples().findOne({ where: { slug: m[1]! }, relations: { related: true } });
        if (!s) return { status: 404, body: 'no such thing' };
        const notes = await comments().find({ where: { targetType: 'simple', targetId: s.id }, order: { id: 'ASC' } });
        const related = s.related.map((r) => r.name).sort();
        return { status: 200, body: `${s.name} | related: ${related.join(',')} | comments: ${notes.map((c) => c.body).join(',')}` };
      }
      if ((m = /^\/related\/([^/]+)\/$/.exec(path))) {
        const r = await relateds().findOneBy({ slug: m[1]! });
        return r ? { status: 200, body: r.name } : { status: 404, body: 'no such thing' };
      }
      if ((m = /^\/admin\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await simples().findOneBy({ slug: m[1]! });
        return { status: 200, body: `admin ${s?.name}` };
      }
      return { status: 404, body: 'not found' };
    })();
  }

  async function start(options: DumperOptions = {}, orm = true) {
    const d = createDumper({ logger: false, ...options });
    d.register(SimpleModel).register(RelatedModel);
    d.register(Comment, {
      // The target's page: looked up by type and id, as a GenericForeignKey would.
      async dependentPaths(c: Comment) {
        const model = c.targetType === 'simple' ? SimpleModel : RelatedModel;
        const row = await db.dataSource.getRepository<{ id: number; slug: string }>(model).findOneBy({ id: c.targetId });
        return row ? [`/${c.targetType}/${row.slug}/`] : [];
      },
    });
    const handle = orm ? typeormDumper(d, db.dataSource) : undefined;
    const s = await Site.start(d, db.logger, app);
    open.push(async () => {
      await s.close();
      handle?.close();
      await d.close();
    });
    return { d, s };
  }

  beforeEach(async () => {
    await db.clear();
    await simples().save({ slug: 'a', name: 'Alpha' });
    await relateds().save({ slug: 'r', name: 'Rho' });
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
    await coldRender();
    const hit = await site.get('/simple/a/');
    expect(hit.cache).toBe('HIT');
    expect(hit.queries).toBe(0);
  });

  test('saving the model re-renders its page', async () => {
    const queries = await coldRender();
    const a = await simples().findOneByOrFail({ slug: 'a' });
    a.name = 'Alpha 2';
    await simples().save(a);
    const after = await site.get('/simple/a/');
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
    // Two more sites on one store, reading only: the first one's dumper has the data source.
    const { s: everything } = await start({ store, ignore: null }, false);
    await everything.get('/admin/simple/a/');
    expect((await everything.get('/admin/simple/a/')).queries).toBe(0);
    const { s: withAdminIgnored } = await start({ store }, false);
    expect((await withAdminIgnored.get('/admin/simple/a/')).queries).toBe(1);
  });

  test('many-to-many add invalidates the related pages', async () => {
    const queries = await coldRender();
    const r = await relateds().findOneOrFail({ where: { slug: 'r' }, relations: { simples: true } });
    r.simples.push(await simples().findOneByOrFail({ slug: 'a' }));
    await relateds().save(r);
    const after = await site.get('/simple/a/');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('related: Rho');
  });

  test('many-to-many add through RelationQueryBuilder invalidates the related pages', async () => {
    const queries = await coldRender();
    await relateds().createQueryBuilder().relation('simples').of({ id: (await relateds().findOneByOrFail({ slug: 'r' })).id }).add(
      (await simples().findOneByOrFail({ slug: 'a' })).id,
    );
    const after = await site.get('/simple/a/');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('related: Rho');
  });

  test('many-to-many remove invalidates the related pages', async () => {
    const a = await simples().findOneByOrFail({ slug: 'a' });
    const r = await relateds().findOneOrFail({ where: { slug: 'r' }, relations: { simples: true } });
    r.simples = [a];
    await relateds().save(r);
    expect((await site.get('/simple/a/')).body).toContain('related: Rho');
    r.simples = [];
    await relateds().save(r);
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related:  |');
    // And through RelationQueryBuilder.
    await relateds().createQueryBuilder().relation('simples').of(r).add(a);
    expect((await site.get('/simple/a/')).body).toContain('related: Rho');
    await relateds().createQueryBuilder().relation('simples').of(r).remove(a);
    const removed = await site.get('/simple/a/');
    expect(removed.cache).toBe('MISS');
    expect(removed.body).toContain('related:  |');
  });

  test('deleting a related object invalidates the pages it was on', async () => {
    const r = await relateds().findOneOrFail({ where: { slug: 'r' }, relations: { simples: true } });
    r.simples = [await simples().findOneByOrFail({ slug: 'a' })];
    await relateds().save(r);
    await site.warm('/simple/a/', '/related/r/');
    await relateds().remove(r);
    expect((await site.get('/simple/a/')).body).toContain('related:  |');
    expect((await site.get('/related/r/')).status).toBe(404);
  });

  test('updating a related object invalidates the pages it is on', async () => {
    const r = await relateds().findOneOrFail({ where: { slug: 'r' }, relations: { simples: true } });
    r.simples = [await simples().findOneByOrFail({ slug: 'a' })];
    await relateds().save(r);
    await site.warm('/simple/a/');
    r.name = 'Rhubarb';
    await relateds().save(r);
    expect((await site.get('/simple/a/')).body).toContain('related: Rhubarb');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    const queries = await coldRender();
    const a = await simples().findOneByOrFail({ slug: 'a' });
    const comment = await comments().save({ targetType: 'simple', targetId: a.id, body: 'yum' });
    const after = await site.get('/simple/a/');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('comments: yum');
    comment.body = 'yummy';
    await comments().save(comment);
    expect((await site.get('/simple/a/')).body).toContain('comments: yummy');
    await comments().delete({ id: comment.id });
    expect((await site.get('/simple/a/')).body).toContain('comments: ');
    expect((await site.get('/simple/a/')).body).not.toContain('yum');
  });

  test('a model whose dependentPaths returns a string fails with a TypeError', async () => {
    // A dumper where Comment is registered with the mistake.
    for (const close of open.splice(0)) await close();
    const d = createDumper({ logger: false });
    d.register(Comment, { dependentPaths: () => '/simple/a/' as never });
    const handle = typeormDumper(d, db.dataSource);
    try {
      const saving = comments().save({ targetType: 'simple', targetId: 1, body: 'yum' });
      await expect(saving).rejects.toBeInstanceOf(TypeError);
      await expect(comments().save({ targetType: 'simple', targetId: 1, body: 'yum' })).rejects.toThrow('Comment.dependentPaths() returned a string');
      expect(await comments().count()).toBe(0);
    } finally {
      handle.close();
      await d.close();
    }
  });
});
