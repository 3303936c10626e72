/**
 * django-dumper's full-stack test cases on the real ORM: Sequelize models on SQLite, PostgreSQL
 * and MariaDB, written through model and instance methods and association mixins that never call
 * the dumper, with the SQL each request runs counted through Sequelize's `logging` option.
 * (test/django-port.test.ts is the same suite over a hand-written data layer.)
 */
import {
  DataTypes,
  Model,
  type BelongsToManyAddAssociationMixin,
  type BelongsToManyGetAssociationsMixin,
  type BelongsToManyRemoveAssociationMixin,
  type Sequelize,
} from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type DumperOptions } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumper } from '../../../src/orm/sequelize/index.js';
import { databases, recordingLogger, Site, type Database } from './support.js';

/** The models of django-dumper's test app, bound to one Sequelize instance. */
function defineModels(sequelize: Sequelize) {
  class SimpleModel extends Model {
    declare id: number;
    declare slug: string;
    declare name: string;
    declare getRelated: BelongsToManyGetAssociationsMixin<RelatedModel>;

    /** Its page, and the pages of the related rows that list it. */
    async dependentPaths() {
      const related = await this.getRelated();
      return [`/simple/${this.slug}/`, ...related.map((r) => `/related/${r.slug}/`)];
    }
  }
  class RelatedModel extends Model {
    declare id: number;
    declare slug: string;
    declare name: string;
    declare getSimples: BelongsToManyGetAssociationsMixin<SimpleModel>;
    declare addSimple: BelongsToManyAddAssociationMixin<SimpleModel, number>;
    declare removeSimple: BelongsToManyRemoveAssociationMixin<SimpleModel, number>;

    /** Like django-dumper's example: the pages of its simples (read while they are linked), then its own. */
    async *dependentPaths() {
      for (const s of await this.getSimples()) yield `/simple/${s.slug}/`;
      yield `/related/${this.slug}/`;
    }
  }
  /** A generic relation, like Django's contenttypes: a comment on any model. */
  class Comment extends Model {
    declare id: number;
    declare targetType: 'simple' | 'related';
    declare targetId: number;
    declare body: string;
  }
  class Broken extends Model {
    declare id: number;
    declare name: string;
    dependentPaths() {
      return '/broken/' as unknown as string[];
    }
  }
  const columns = { slug: { type: DataTypes.STRING(50), unique: true, allowNull: false }, name: { type: DataTypes.STRING(50), allowNull: false } };
  SimpleModel.init(columns, { sequelize, tableName: 'sq_simple' });
  RelatedModel.init(columns, { sequelize, tableName: 'sq_related' });
  Comment.init(
    { targetType: { type: DataTypes.STRING(20), allowNull: false }, targetId: { type: DataTypes.INTEGER, allowNull: false }, body: { type: DataTypes.STRING(200), allowNull: false } },
    { sequelize, tableName: 'sq_comment' },
  );
  Broken.init({ name: DataTypes.STRING(50) }, { sequelize, tableName: 'sq_broken' });
  // The junction model is Sequelize's own (not registered): its rows reach both sides.
  RelatedModel.belongsToMany(SimpleModel, { through: 'sq_related_simple', as: 'simples', foreignKey: 'relatedId', otherKey: 'simpleId' });
  SimpleModel.belongsToMany(RelatedModel, { through: 'sq_related_simple', as: 'related', foreignKey: 'simpleId', otherKey: 'relatedId' });
  const Link = sequelize.models.sq_related_simple!;
  return { SimpleModel, RelatedModel, Comment, Broken, Link };
}

const targets = await databases();

describe.each(targets)('django-dumper test cases on Sequelize and $name', (target) => {
  let db: Database;
  let m: ReturnType<typeof defineModels>;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  const open: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    db = await target.open();
    m = defineModels(db.sequelize);
    await db.sequelize.sync(); // a new schema or database: nothing to drop
  });
  afterAll(async () => {
    await db?.close();
  });

  const comments = async (targetType: string, targetId: number) =>
    (await m.Comment.findAll({ where: { targetType, targetId }, order: [['id', 'ASC']] })).map((c) => c.body).join(',');

  function app(path: string): Promise<{ status: number; body: string }> {
    return (async () => {
      let match: RegExpExecArray | null;
      if ((match = /^\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await m.SimpleModel.findOne({ where: { slug: match[1]! } });
        if (!s) return { status: 404, body: 'no such thing' };
        const related = (await s.getRelated()).map((r) => r.name).sort();
        return { status: 200, body: `${s.name} | related: ${related.join(',')} | comments: ${await comments('simple', s.id)}` };
      }
      if ((match = /^\/related\/([^/]+)\/$/.exec(path))) {
        const r = await m.RelatedModel.findOne({ where: { slug: match[1]! } });
        if (!r) return { status: 404, body: 'no such thing' };
        const simples = (await r.getSimples()).map((s) => s.name).sort();
        return { status: 200, body: `${r.name} | simples: ${simples.join(',')} | comments: ${await comments('related', r.id)}` };
      }
      if ((match = /^\/admin\/simple\/([^/]+)\/$/.exec(path))) {
        const s = await m.SimpleModel.findOne({ where: { slug: match[1]! } });
        return { status: 200, body: `admin ${s?.name}` };
      }
      return { status: 404, body: 'not found' };
    })();
  }

  async function start(options: DumperOptions = {}, orm = true) {
    const d = createDumper({ logger: log.logger, ...options });
    d.register(m.SimpleModel).register(m.RelatedModel).register(m.Broken);
    d.register(m.Comment, {
      // The target's page: looked up by type and id, as a GenericForeignKey would.
      async dependentPaths(c: InstanceType<typeof m.Comment>) {
        const target = c.targetType === 'simple' ? await m.SimpleModel.findByPk(c.targetId) : await m.RelatedModel.findByPk(c.targetId);
        return target ? [`/${c.targetType}/${target.slug}/`] : [];
      },
    });
    const handle: SequelizeDumper | undefined = orm ? sequelizeDumper(d, db.sequelize) : undefined;
    const s = await Site.start(d, db.counter, app);
    open.push(async () => {
      await s.close();
      handle?.close();
      await d.close();
    });
    return { d, s };
  }

  beforeEach(async () => {
    await db.clear([m.Link, m.Comment, m.Broken, m.RelatedModel, m.SimpleModel]);
    log = recordingLogger();
    await m.SimpleModel.create({ slug: 'a', name: 'Alpha' });
    await m.RelatedModel.create({ slug: 'r', name: 'Rho' });
    ({ s: site } = await start());
  });
  afterEach(async () => {
    for (const close of open.splice(0)) await close();
  });

  const simpleA = () => m.SimpleModel.findOne({ where: { slug: 'a' }, rejectOnEmpty: true });
  const relatedR = () => m.RelatedModel.findOne({ where: { slug: 'r' }, rejectOnEmpty: true });

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
    expect(queries).toBe(3); // the simple, its related rows, its comments
  });

  test('saving the model re-renders its page', async () => {
    const queries = await coldRender();
    const a = await simpleA();
    a.name = 'Alpha 2';
    await a.save();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('Alpha 2');
    expect((await site.get('/simple/a/')).queries).toBe(0);
    expect(log.warnings).toEqual([]);
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
    // Two more sites on one store, reading only: the first one's dumper has the integration.
    const { s: everything } = await start({ store, ignore: null }, false);
    await everything.get('/admin/simple/a/');
    expect((await everything.get('/admin/simple/a/')).queries).toBe(0);
    const { s: withAdminIgnored } = await start({ store }, false);
    expect((await withAdminIgnored.get('/admin/simple/a/')).queries).toBe(1);
  });

  test('many-to-many add (the addX mixin) invalidates the pages of both sides', async () => {
    const queries = await coldRender();
    await site.warm('/related/r/');
    await (await relatedR()).addSimple(await simpleA());
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('related: Rho |');
    expect((await site.get('/related/r/')).body).toContain('simples: Alpha |');
    expect(log.warnings).toEqual([]);
  });

  test('many-to-many remove (the removeX mixin) invalidates the pages of both sides', async () => {
    const r = await relatedR();
    await r.addSimple(await simpleA());
    await site.warm('/simple/a/', '/related/r/');
    expect((await site.get('/simple/a/')).body).toContain('related: Rho |');
    await r.removeSimple(await simpleA());
    const [simple, related] = await site.expectMiss('/simple/a/', '/related/r/');
    expect(simple!.body).toContain('related:  |');
    expect(related!.body).toContain('simples:  |');
    expect(log.warnings).toEqual([]);
  });

  test('deleting a related object invalidates the pages it was on (its dependentPaths run before it is gone)', async () => {
    const r = await relatedR();
    await r.addSimple(await simpleA());
    await site.warm('/simple/a/', '/related/r/');
    // The links go with the row (ON DELETE CASCADE): only dependentPaths run before the delete find /simple/a/.
    await r.destroy();
    expect((await site.get('/simple/a/')).body).toContain('related:  |');
    expect((await site.get('/related/r/')).status).toBe(404);
    expect(await m.Link.count()).toBe(0);
  });

  test('for a destroy, dependentPaths runs while the row still exists', async () => {
    const seen: number[] = [];
    for (const close of open.splice(0)) await close();
    const d = createDumper({ logger: false });
    d.register(m.SimpleModel, {
      async dependentPaths(s: InstanceType<typeof m.SimpleModel>) {
        seen.push(await m.SimpleModel.count({ where: { id: s.id } }));
        return [`/simple/${s.slug}/`];
      },
    });
    const handle = sequelizeDumper(d, db.sequelize);
    try {
      await (await simpleA()).destroy();
      await m.SimpleModel.create({ slug: 'b', name: 'Beta' });
      await m.SimpleModel.destroy({ where: { slug: 'b' } });
      expect(seen).toEqual([1, 1, 1]); // the destroy, the create, the destroy by where
      expect(await m.SimpleModel.count()).toBe(0);
    } finally {
      handle.close();
      await d.close();
    }
  });

  test('updating a related object invalidates the pages it is on', async () => {
    const r = await relatedR();
    await r.addSimple(await simpleA());
    await site.warm('/simple/a/');
    r.name = 'Rhubarb';
    await r.save();
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('related: Rhubarb |');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    const queries = await coldRender();
    await site.warm('/related/r/');
    const a = await simpleA();
    const comment = await m.Comment.create({ targetType: 'simple', targetId: a.id, body: 'yum' });
    const after = await site.get('/simple/a/');
    expect(after.queries).toBe(queries);
    expect(after.body).toContain('comments: yum');
    await site.expectHit('/related/r/');
    // Moving it to another target invalidates the old target's page (the comment as it was) and the new one's.
    await site.warm('/simple/a/');
    await comment.update({ targetType: 'related', targetId: (await relatedR()).id });
    expect((await site.get('/simple/a/')).body).not.toContain('yum');
    expect((await site.get('/related/r/')).body).toContain('comments: yum');
    await site.warm('/related/r/');
    await m.Comment.destroy({ where: { id: comment.id } });
    const gone = await site.get('/related/r/');
    expect(gone.cache).toBe('MISS');
    expect(gone.body).not.toContain('yum');
  });

  test('a concurrent reader rendering between the write and the commit leaves no stale page after the commit', async () => {
    await site.warm('/simple/a/');
    await db.sequelize.transaction(async (transaction) => {
      await (await simpleA()).update({ name: 'Alpha committed' }, { transaction });
      // Another connection renders the page from the last commit and stores it.
      const during = await site.get('/simple/a/');
      expect(during.cache).toBe('MISS');
      expect(during.body).toContain('Alpha |');
      expect((await site.get('/simple/a/')).cache).toBe('HIT');
    });
    const after = await site.get('/simple/a/');
    expect(after.cache).toBe('MISS');
    expect(after.body).toContain('Alpha committed |');
  });

  test('a model whose dependentPaths returns a string fails the write with a TypeError', async () => {
    await expect(m.Broken.create({ name: 'x' })).rejects.toBeInstanceOf(TypeError);
    await expect(m.Broken.create({ name: 'y' })).rejects.toThrow('Broken.dependentPaths() returned a string ("/broken/")');
    // Outside a transaction the row was written before its paths were asked for: every page went.
    expect(log.warnings.filter((w) => w.includes('invalidating every page'))).toHaveLength(2);
    // In a transaction, the error rolls it back.
    await expect(db.sequelize.transaction((transaction) => m.Broken.create({ name: 'z' }, { transaction }))).rejects.toThrow(TypeError);
    expect(await m.Broken.count({ where: { name: 'z' } })).toBe(0);
    // A destroy asks before it deletes: nothing is deleted.
    const x = await m.Broken.findOne({ where: { name: 'x' }, rejectOnEmpty: true });
    await expect(x.destroy()).rejects.toThrow(TypeError);
    expect(await m.Broken.count({ where: { name: 'x' } })).toBe(1);
  });
});
