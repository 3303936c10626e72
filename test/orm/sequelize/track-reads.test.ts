/**
 * `sequelizeDumper(dumper, sequelize, { trackReads: true })` on SQLite, PostgreSQL and MariaDB,
 * with no model registered and no `dependentPaths()`: the blog's pages (a list, detail pages with
 * includes, filtered pages, counts, an association getter's page, a page that reads nothing, a
 * lookup that finds nothing) are warmed, a write is made, and then every page served is compared
 * with a fresh render (none may be stale), the pages whose data changed must be a MISS, and some
 * others must still be a HIT (no test passes by invalidating everything).
 */
import { randomUUID } from 'node:crypto';
import { DataTypes, Model, Op, Sequelize } from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { listTag, rowTag, sequelizeDumper, tableTag, type SequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll } from '../track-reads/check.js';
import { blogApp, defineBlog, seedBlog, type Blog } from './blog.js';
import { databases, recordingLogger, Site, type Database } from './support.js';

const targets = await databases();

describe.each(targets)('Sequelize trackReads on $name', (target) => {
  let db: Database;
  let blog: Blog;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    db = await target.open();
    blog = defineBlog(db.sequelize);
    await db.sequelize.sync();
    app = blogApp(blog);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function install(options: SequelizeDumperOptions = {}) {
    await site?.close();
    handle?.close();
    await dumper?.close();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true, ...options });
    site = await Site.start(dumper, db.counter, (path) => app.handle(path));
  }

  beforeEach(async () => {
    await db.clear(blog.all);
    await seedBlog(blog);
    await install();
    await warmAll((p) => site.get(p));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
  });

  /** After a write: nothing stale, these pages rendered again, those still stored. */
  async function expectAfterWrite(miss: readonly string[], hit: readonly string[]) {
    const missed = await expectNoStale((p) => site.get(p), app);
    for (const p of miss) expect(missed, `${p} should have been rendered again`).toContain(p);
    for (const p of hit) expect(missed, `${p} should still be stored`).not.toContain(p);
  }

  test('every page is stored, and a hit runs no query', async () => {
    for (const p of PAGES) expect((await site.get(p)).queries, p).toBe(0);
    expect(log.warnings).toEqual([]);
  });

  test('save() of a changed row: its detail, relation, list and filtered pages', async () => {
    const post = (await blog.Post.findByPk(2))!;
    post.title = 'Anew';
    await post.save();
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('create() of a child: the parent page that included its children and the counts', async () => {
    await blog.Comment.create({ body: 'fine', postId: 2 });
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('Model.update() by primary key of a belongsTo row: the pages that included it', async () => {
    await blog.Author.update({ name: 'Ada L.' }, { where: { id: 1 } });
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a many-to-many link added by addTag(): both sides', async () => {
    await (await blog.Post.findByPk(1))!.addTag(2);
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/about']);
  });

  test('a many-to-many link removed by removeTag(): both sides', async () => {
    await (await blog.Post.findByPk(3))!.removeTag(1);
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('destroy() of a child: its parent page and the counts', async () => {
    const nice = (await blog.Comment.findOne({ where: { body: 'nice' } }))!;
    await nice.destroy();
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('create() of the row a page looked up and did not find', async () => {
    await blog.Post.create({ id: 99, title: 'Late', authorId: 2 });
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    const great = (await blog.Comment.findOne({ where: { body: 'great' } }))!;
    await great.update({ postId: 2 });
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('Model.update() by where: the rows it matched', async () => {
    await blog.Post.update({ title: 'Ciao' }, { where: { id: 3 } });
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('Model.destroy() by where of a parent whose children and links the database deletes (ON DELETE CASCADE)', async () => {
    await blog.Post.destroy({ where: { id: 1 } });
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2']);
  });

  test('destroy() of a parent two levels up: its posts, their comments and links go with it', async () => {
    await (await blog.Author.findByPk(2))!.destroy();
    // '/count' too: post 3 had no comment when the delete looked, but one added by another
    // connection before the delete ran would go with it, so the comments' list is invalidated.
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/count'], ['/about', '/posts/1', '/posts/2']);
    await (await blog.Author.findByPk(1))!.destroy();
    await expectAfterWrite(['/posts/1', '/posts/2', '/count', '/tags/2'], ['/about']);
  });

  test('increment() (the query interface, no hook) of a row a page showed', async () => {
    await blog.Tag.increment({ id: 10 }, { where: { id: 2 } });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toEqual(expect.arrayContaining(['/tags/2', '/posts/2']));
    expect(missed).not.toContain('/about');
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its table', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await blog.Comment.update({ body: 'fine' }, { where: { postId: 1 } });
    await expectAfterWrite(['/posts/1', '/posts/2', '/posts/99', '/count'], ['/', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a delete whose rows are unknown: also everything read from the tables it cascades to', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await blog.Post.destroy({ where: { authorId: 1 } });
    await expectAfterWrite(['/', '/posts/1', '/posts/2', '/count', '/tags/1', '/tags/2'], ['/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a write of a registered model whose rows are unknown still invalidates every page', async () => {
    await install({ maxRows: 1 });
    dumper.register('Comment', { dependentPaths: () => [] });
    await warmAll((p) => site.get(p));
    await blog.Comment.update({ body: 'fine' }, { where: { postId: 1 } });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toContain('/about');
    expect(log.warnings.join('\n')).toMatch(/invalidating every page/);
  });

  test('a page read inside a transaction is dropped again after the commit', async () => {
    await db.sequelize.transaction(async (transaction) => {
      await blog.Post.update({ title: 'Anew' }, { where: { id: 2 }, transaction });
      // Another connection reads the last commit, and the page is stored after the write's own invalidation.
      await site.get('/posts/2');
    });
    await expectAfterWrite([], ['/posts/1', '/about']);
    expect((await site.get('/posts/2')).body).toContain('Anew');
  });

  test('a raw write is not seen; invalidating its table tag by hand drops what pages read from it', async () => {
    await db.sequelize.query(`UPDATE sq_post SET title = 'Raw' WHERE id = 3`);
    expect((await site.get('/')).cache).toBe('HIT');
    await dumper.invalidateTags([tableTag('sq_post')]);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/posts/1'], ['/about', '/count']);
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    dumper.register(blog.Author, { dependentPaths: () => ['/about'] });
    await blog.Author.update({ name: 'Robert' }, { where: { id: 2 } });
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the tables, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    await warmAll((p) => site.get(p));
    expect(log.warnings.some((w) => /maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await blog.Post.update({ title: 'Ciao' }, { where: { id: 3 } });
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await blog.Comment.create({ body: 'fine', postId: 2 });
    await expectAfterWrite(['/posts/2', '/count'], ['/about']);
  });

  test('the tags a page carries: rows by primary key (found or not), tables for lists', async () => {
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...t: string[]) => {
      tags.push(...t);
      original(...t);
    };
    await dumper.invalidateAll();
    await site.get('/posts/99');
    expect(tags).toContain(rowTag('sq_post', { id: 99 }));
    expect(tags).not.toContain(listTag('sq_post'));
    tags.length = 0;
    await site.get('/posts/1');
    expect(tags).toContain(rowTag('sq_author', { id: 1 }));
    expect(tags).not.toContain(listTag('sq_comment'));
    expect(tags).not.toContain(listTag('sq_post_tag'));
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/');
    expect(tags).toContain(listTag('sq_post'));
    expect(tags).toContain(tableTag('sq_post'));
  });

  test('reads with hooks: false and raw: true tag the page too', async () => {
    const page = async () => {
      // `hooks` is not in Sequelize's option types, but its finders take it.
      const off = { hooks: false } as object;
      const p = (await blog.Post.findOne({ where: { id: 2 }, raw: true, ...off })) as unknown as { title: string } | null;
      const n = await blog.Comment.count({ where: { postId: 2 }, ...off });
      return `${p?.title}: ${n}`;
    };
    const other = await Site.start(dumper, db.counter, async () => ({ status: 200, body: await page() }));
    try {
      await other.warm('/raw');
      await blog.Comment.create({ body: 'more', postId: 2 });
      expect(await other.get('/raw')).toMatchObject({ cache: 'MISS', body: 'Again: 2' });
      await other.warm('/raw');
      await blog.Post.update({ title: 'Anew' }, { where: { id: 2 } });
      expect(await other.get('/raw')).toMatchObject({ cache: 'MISS', body: 'Anew: 2' });
      await blog.Post.update({ title: 'Ciao' }, { where: { id: 3 } });
      expect((await other.get('/raw')).cache).toBe('HIT');
    } finally {
      await other.close();
    }
  });

  /** A page that reads one way, a write that changes what it shows, and one that must leave it stored. */
  type Shape = [string, (b: Blog) => Promise<unknown>, (b: Blog) => Promise<unknown>, (b: Blog) => Promise<unknown>];
  const post = async (b: Blog, id: number) => (await b.Post.findByPk(id))!;
  const shapes: Shape[] = [
    ['post.getComments() (hasMany getter)', async (b) => (await post(b, 1)).getComments(), (b) => b.Comment.create({ body: 'new', postId: 1 }), (b) => b.Comment.create({ body: 'new', postId: 2 })],
    ['post.countComments()', async (b) => (await post(b, 1)).countComments(), (b) => b.Comment.destroy({ where: { body: 'nice' } }), (b) => b.Comment.destroy({ where: { body: 'ok' } })],
    ['comment.getPost() (belongsTo getter)', async (b) => (await b.Comment.findOne({ where: { body: 'ok' } }))!.getPost(), (b) => b.Post.update({ title: 'Anew' }, { where: { id: 2 } }), (b) => b.Post.update({ title: 'Ciao' }, { where: { id: 3 } })],
    ['tag.hasPost() and countPosts() (belongsToMany)', async (b) => { const t = (await b.Tag.findByPk(1))!; return [await t.hasPost(3), await t.countPosts()]; }, async (b) => (await post(b, 3)).removeTag(1), async (b) => (await post(b, 2)).addTag(2)],
    ['findAndCountAll() by foreign key', async (b) => { const r = await b.Post.findAndCountAll({ where: { authorId: 1 } }); return [r.count, r.rows.map((p) => p.get('title'))]; }, (b) => b.Post.create({ id: 5, title: 'New', authorId: 1 }), (b) => b.Post.create({ id: 4, title: 'New', authorId: 2 })],
    ['max() of a column', (b) => b.Post.max('id'), (b) => b.Post.create({ id: 7, title: 'New', authorId: 2 }), (b) => b.Comment.create({ body: 'new', postId: 2 })],
    ['nested include: an author, its posts, their comments', async (b) => JSON.stringify(await b.Author.findByPk(1, { include: [{ association: 'posts', include: [{ association: 'comments' }] }] })), (b) => b.Comment.update({ body: 'changed' }, { where: { body: 'ok' } }), (b) => b.Comment.create({ body: 'new', postId: 3 })],
    ['include with separate: true', async (b) => JSON.stringify(await b.Post.findAll({ where: { id: [1, 2] }, include: [{ association: 'comments', separate: true }] })), (b) => b.Comment.create({ body: 'new', postId: 2 }), (b) => b.Comment.create({ body: 'new', postId: 3 })],
    ['a where on a nested column ($comments.body$)', async (b) => (await b.Post.findAll({ where: { '$comments.body$': 'ok' }, include: [{ association: 'comments' }] })).map((p) => p.get('id')), (b) => b.Comment.update({ body: 'ok' }, { where: { body: 'great' } }), (b) => b.Tag.update({ name: 'x' }, { where: { id: 1 } })],
    ['findOne() by primary key and another column', async (b) => (await b.Post.findOne({ where: { id: 2, title: 'Again' } }))?.get('title'), (b) => b.Post.update({ title: 'Anew' }, { where: { id: 2 } }), (b) => b.Post.update({ title: 'Ciao' }, { where: { id: 3 } })],
  ];

  test.each(shapes)('%s: dropped by a write of what it read, kept by another', async (_, read, write, other) => {
    const render = async () => JSON.stringify((await read(blog)) ?? null);
    const shaped = await Site.start(dumper, db.counter, async () => ({ status: 200, body: await render() }));
    try {
      await shaped.warm('/shape');
      await other(blog);
      expect(await shaped.get('/shape'), 'a write of something the page did not read').toMatchObject({ cache: 'HIT', body: await render() });
      await write(blog);
      expect(await shaped.get('/shape')).toMatchObject({ cache: 'MISS', body: await render() });
    } finally {
      await shaped.close();
    }
  });

  test('an include that filters its parents (required, where) tags the included table', async () => {
    const page = async () => {
      const posts = await blog.Post.findAll({ include: [{ association: 'comments', where: { body: 'ok' }, required: true }], order: [['id', 'ASC']] });
      return posts.map((p) => p.title).join(',');
    };
    const other = await Site.start(dumper, db.counter, async () => ({ status: 200, body: await page() }));
    try {
      await other.warm('/filtered');
      expect((await other.get('/filtered')).body).toBe('Again');
      await blog.Comment.update({ body: 'ok' }, { where: { body: 'nice' } });
      expect(await other.get('/filtered')).toMatchObject({ cache: 'MISS', body: 'Hello,Again' });
    } finally {
      await other.close();
    }
  });
});

describe.each(targets)('Sequelize trackReads: key spellings on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let Code: typeof Model & (new () => Model & { code: string; label: string });
  let Thing: typeof Model & (new () => Model & { id: string; label: string });
  let Item: typeof Model & (new () => Model & { id: number; label: string });
  const uuid = randomUUID();

  beforeAll(async () => {
    db = await target.open();
    class C extends Model {}
    C.init({ code: { type: DataTypes.STRING(20), primaryKey: true }, label: DataTypes.STRING(50) }, { sequelize: db.sequelize, tableName: 'sq_code', timestamps: false });
    class T extends Model {}
    T.init({ id: { type: DataTypes.UUID, primaryKey: true }, label: DataTypes.STRING(50) }, { sequelize: db.sequelize, tableName: 'sq_thing', timestamps: false });
    class I extends Model {}
    I.init({ id: { type: DataTypes.INTEGER, primaryKey: true }, label: DataTypes.STRING(50) }, { sequelize: db.sequelize, tableName: 'sq_item', timestamps: false });
    Code = C as never;
    Thing = T as never;
    Item = I as never;
    await db.sequelize.sync();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear([Code, Thing, Item]);
    await Code.create({ code: 'abc', label: 'one' });
    await Thing.create({ id: uuid, label: 'one' });
    await Item.create({ id: 2, label: 'one' });
    dumper = createDumper({ logger: false });
    handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true });
  });
  afterEach(async () => {
    handle.close();
    await dumper.close();
  });

  /** A page that looks a row up by a key spelled as given; after a write of the row as stored, it must not be stale. */
  const cases: Array<[string, () => Promise<string>, () => Promise<unknown>]> = [
    ['an integer key spelled "02"', async () => String((await Item.findByPk('02'))?.label), () => Item.update({ label: 'two' }, { where: { id: 2 } })],
    ['an integer key spelled "02" in Op.in', async () => (await Item.findAll({ where: { id: { [Op.in]: ['02'] } } })).map((r) => r.label).join(), () => Item.update({ label: 'two' }, { where: { id: 2 } })],
    ['a uuid in upper case', async () => String((await Thing.findByPk(uuid.toUpperCase()))?.label), () => Thing.update({ label: 'two' }, { where: { id: uuid } })],
    ['a string key in another case', async () => String((await Code.findByPk('ABC'))?.label), () => Code.update({ label: 'two' }, { where: { code: 'abc' } })],
    ['a string key with a trailing space', async () => String((await Code.findOne({ where: { code: 'abc ' } }))?.label), () => Code.update({ label: 'two' }, { where: { code: 'abc' } })],
  ];

  test.each(cases)('%s: the page is not stale after a write of the row', async (_, read, write) => {
    const site = await Site.start(dumper, db.counter, async () => ({ status: 200, body: await read() }));
    try {
      await site.warm('/key');
      const before = (await site.get('/key')).body;
      await write();
      const after = await site.get('/key');
      expect(after.body).toBe(await read());
      // The database found the row by that spelling: the page showed it and shows it changed.
      if (before === 'one') expect(after).toMatchObject({ cache: 'MISS', body: 'two' });
    } finally {
      await site.close();
    }
  });

  test('a row created with a key spelled "03" drops the page that looked up 3', async () => {
    const site = await Site.start(dumper, db.counter, async () => ({ status: 200, body: String((await Item.findByPk(3))?.label) }));
    try {
      await site.warm('/three');
      await Item.create({ id: '03', label: 'three' });
      expect(await site.get('/three')).toMatchObject({ cache: 'MISS', body: 'three' });
    } finally {
      await site.close();
    }
  });
});

describe.each(targets)('Sequelize trackReads: paranoid models and scopes on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  type Row = Model & Record<string, unknown>;
  let Shelf: typeof Model & (new () => Row);
  let Book: typeof Model & (new () => Row);
  let Label: typeof Model & (new () => Row);
  let site: Site;
  const pages: Record<string, () => Promise<unknown>> = {
    // A belongsTo include of a soft-deleted row: null, named by the parent's foreign key.
    '/book': async () => ((await Book.findByPk(1, { include: [{ association: 'shelf' }] })) as Row | null)?.get({ plain: true }),
    // A hasMany getter of a paranoid model.
    '/shelf-books': async () => (await ((await Shelf.findByPk(1, { paranoid: false })) as unknown as { getBooks(): Promise<Row[]> }).getBooks()).map((b) => b.get('title')),
    // A belongsToMany getter and include of a paranoid target: its list.
    '/labels': async () => (await ((await Book.findByPk(1)) as unknown as { getLabels(): Promise<Row[]> }).getLabels()).map((l) => l.get('name')),
    '/book-labels': async () => ((await Book.findByPk(1, { include: [{ association: 'labels' }] })) as unknown as { labels: Row[] }).labels.map((l) => l.get('name')),
    // A default scope that filters: its where is on the query.
    '/visible': async () => (await Shelf.scope('visible').findAll({ order: [['id', 'ASC']] })).map((s) => s.get('name')),
  };

  beforeAll(async () => {
    db = await target.open();
    const sequelize = db.sequelize;
    class S extends Model {}
    S.init({ name: DataTypes.STRING(50), hidden: { type: DataTypes.BOOLEAN, defaultValue: false } }, { sequelize, tableName: 'sq_shelf', paranoid: true, scopes: { visible: { where: { hidden: false } } } });
    class B extends Model {}
    B.init({ title: DataTypes.STRING(50) }, { sequelize, tableName: 'sq_book', paranoid: true });
    class L extends Model {}
    L.init({ name: DataTypes.STRING(50) }, { sequelize, tableName: 'sq_label', paranoid: true });
    B.belongsTo(S, { as: 'shelf', foreignKey: 'shelfId' });
    S.hasMany(B, { as: 'books', foreignKey: 'shelfId' });
    B.belongsToMany(L, { as: 'labels', through: 'sq_book_label', foreignKey: 'bookId', otherKey: 'labelId' });
    L.belongsToMany(B, { as: 'books', through: 'sq_book_label', foreignKey: 'labelId', otherKey: 'bookId' });
    Shelf = S as never;
    Book = B as never;
    Label = L as never;
    await sequelize.sync();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear([db.sequelize.models.sq_book_label!, Book, Label, Shelf]);
    await Shelf.bulkCreate([{ id: 1, name: 'top' }, { id: 2, name: 'low' }]);
    await Book.bulkCreate([{ id: 1, title: 'Emma', shelfId: 1 }, { id: 2, title: 'Ulysses', shelfId: 1 }]);
    await Label.bulkCreate([{ id: 1, name: 'classic' }, { id: 2, name: 'long' }]);
    await db.sequelize.models.sq_book_label!.bulkCreate([{ bookId: 1, labelId: 1 }, { bookId: 1, labelId: 2 }]);
    dumper = createDumper({ logger: false });
    handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true });
  });
  afterEach(async () => {
    handle.close();
    await dumper.close();
  });

  const writes: Array<[string, () => Promise<unknown>]> = [
    ['a soft delete of the included row', async () => (await Shelf.findByPk(1))!.destroy()],
    ['a restore of the included row', async () => {
      await Shelf.destroy({ where: { id: 1 }, hooks: false } as object);
      await dumper.invalidateAll();
      for (const p of Object.keys(pages)) await site.warm(p);
      await Shelf.restore({ where: { id: 1 } });
    }],
    ['a soft delete of a child', () => Book.destroy({ where: { id: 2 } })],
    ['a soft delete of a linked row', async () => (await Label.findByPk(2))!.destroy()],
    ['a restore of a linked row', async () => {
      await Label.destroy({ where: { id: 2 }, hooks: false } as object);
      await dumper.invalidateAll();
      for (const p of Object.keys(pages)) await site.warm(p);
      await Label.restore({ where: { id: 2 } });
    }],
    ['a change of the scope\'s column', () => Shelf.update({ hidden: true }, { where: { id: 2 } })],
  ];

  test.each(writes)('%s: no page is stale', async (_, write) => {
    const render = async (path: string) => JSON.stringify((await pages[path]!()) ?? null);
    site = await Site.start(dumper, db.counter, async (path) => ({ status: 200, body: await render(path) }));
    try {
      for (const p of Object.keys(pages)) await site.warm(p);
      await write();
      for (const p of Object.keys(pages)) expect((await site.get(p)).body, p).toBe(await render(p));
    } finally {
      await site.close();
    }
  });
});

describe.each(targets)('Sequelize trackReads: a foreign key the database fills in on $name', (target) => {
  test('create() without the foreign key, which a column default sets: the parent page that read its children', async () => {
    const db = await target.open();
    try {
      // The default is the table's, not Sequelize's: the instance created does not know it.
      await db.sequelize.query('CREATE TABLE sq_box (id INTEGER PRIMARY KEY, name VARCHAR(50))');
      await db.sequelize.query('CREATE TABLE sq_note (id INTEGER PRIMARY KEY, body VARCHAR(50), box_id INTEGER DEFAULT 1)');
      class Box extends Model {
        declare getNotes: () => Promise<Model[]>;
      }
      Box.init({ id: { type: DataTypes.INTEGER, primaryKey: true }, name: DataTypes.STRING(50) }, { sequelize: db.sequelize, tableName: 'sq_box', timestamps: false });
      class Note extends Model {}
      Note.init({ id: { type: DataTypes.INTEGER, primaryKey: true }, body: DataTypes.STRING(50) }, { sequelize: db.sequelize, tableName: 'sq_note', timestamps: false });
      Box.hasMany(Note, { as: 'notes', foreignKey: { name: 'boxId', field: 'box_id' }, constraints: false });
      await Box.create({ id: 1, name: 'one' });
      await Note.create({ id: 1, body: 'first', boxId: 1 });
      const dumper = createDumper({ logger: false });
      const handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true });
      const render = async () => (await (await Box.findByPk(1))!.getNotes()).map((n) => n.get('body')).join(',');
      const site = await Site.start(dumper, db.counter, async () => ({ status: 200, body: await render() }));
      try {
        await site.warm('/box');
        await Note.create({ id: 2, body: 'second' });
        expect(await site.get('/box')).toMatchObject({ cache: 'MISS', body: 'first,second' });
      } finally {
        await site.close();
        handle.close();
        await dumper.close();
      }
    } finally {
      await db.close();
    }
  });
});

const hasRedis = await needService('redis');
const postgres = targets.find((t) => t.name === 'PostgreSQL');
const crossProcess = hasRedis && postgres !== undefined ? [postgres] : [];

describe.each(crossProcess)('Sequelize trackReads across processes (RedisStore, $name)', (target) => {
  test('a write through one dumper invalidates the pages another one stored', async () => {
    const db = await target.open();
    const prefix = `tr:${randomUUID().slice(0, 8)}:`;
    // The second process: its own Sequelize instance (its own connections) on the same schema, its own dumper on the same Redis.
    const other = db.another();
    const blogA = defineBlog(db.sequelize);
    const blogB = defineBlog(other);
    await db.sequelize.sync();
    // A generous command timeout: a store read that times out on a busy machine is a MISS, not a failure to test here.
    const a = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const b = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const ha = sequelizeDumper(a, db.sequelize, { trackReads: true });
    const hb = sequelizeDumper(b, other, { trackReads: true });
    const appA = blogApp(blogA);
    const appB = blogApp(blogB);
    const siteA = await Site.start(a, db.counter, (p) => appA.handle(p));
    const siteB = await Site.start(b, db.counter, (p) => appB.handle(p));
    try {
      await seedBlog(blogA);
      await warmAll((p) => siteA.get(p));
      await warmAll((p) => siteB.get(p));
      await blogB.Comment.create({ body: 'from b', postId: 1 });
      const missed = await expectNoStale((p) => siteA.get(p), appA);
      expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
      expect(missed).not.toContain('/about');
      expect(missed).not.toContain('/posts/2');
      await blogB.Post.update({ title: 'Anew' }, { where: { id: 2 } });
      expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
      expect(await expectNoStale((p) => siteA.get(p), appA)).not.toContain('/about');
    } finally {
      await siteA.close();
      await siteB.close();
      ha.close();
      hb.close();
      await a.close();
      await b.close();
      await db.close();
    }
  });
});

test('options are checked', () => {
  const sequelize = new Sequelize({ dialect: 'sqlite', storage: ':memory:', logging: false });
  const dumper = createDumper({ logger: false });
  expect(() => sequelizeDumper(dumper, sequelize, { trackReads: 1 as never })).toThrow(
    new TypeError('page-dumper: sequelizeDumper() option "trackReads" must be a boolean, got number'),
  );
  expect(() => sequelizeDumper(dumper, sequelize, { trackReads: true, maxTagsPerPage: 0 })).toThrow(
    new TypeError('page-dumper: sequelizeDumper() option "maxTagsPerPage" must be a positive integer, got 0'),
  );
  expect(() => sequelizeDumper(dumper, sequelize, { maxTagsPerPage: 10 })).toThrow(new TypeError('page-dumper: sequelizeDumper() option "maxTagsPerPage" needs trackReads: true'));
});
