/**
 * `trackReads` on Sequelize where the rows a page shows depend on rows it does not show, or on
 * what the database's catalog says and the models do not: a limit with an ordering by an
 * included column, a belongsToMany getter with a limit, a model over a database view, and a key
 * looked up in a column that ignores case (SQLite `COLLATE NOCASE`, a PostgreSQL
 * non-deterministic collation), and a child row added by another connection after a cascading
 * delete looked for the children and before it ran. After each write the page served must equal a fresh render; a
 * write of something the page did not read must leave it stored.
 */
import { DataTypes, type Model, type ModelStatic } from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { sqliteInexact, spells } from '../../../src/orm/sequelize/catalog.js';
import { sequelizeDumper, type SequelizeDumper } from '../../../src/orm/sequelize/index.js';
import { defineBlog, seedBlog, type Blog } from './blog.js';
import { databases, Site, type Database } from './support.js';

const targets = await databases();

describe.each(targets)('Sequelize trackReads: orderings, views and collations on $name', (target) => {
  let db: Database;
  let blog: Blog;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let site: Site;
  let PostTitle: ModelStatic<Model>;
  let User: ModelStatic<Model>;
  /** Whether the user table's email column ignores case (SQLite, PostgreSQL; MariaDB's strings are lists anyway). */
  const caseless = target.dialect !== 'mariadb';

  async function render(path: string): Promise<string> {
    const { Post, Author, Tag } = blog;
    if (path === '/first-by-author') {
      // Posts named by primary key, with their author, ordered by the author's name: the first only.
      const list = await Post.findAll({ where: { id: [1, 2, 3] }, include: [{ association: 'author' }], order: [[{ model: Author, as: 'author' }, 'name', 'ASC'], ['id', 'ASC']], limit: 1 });
      return list.map((p) => `${p.title} by ${p.author!.name}`).join(',');
    }
    if (path === '/first-by-author-one') {
      // findOne (a limit of 1), the include named by its alias in the ordering.
      const post = await Post.findOne({ where: { id: [1, 2, 3] }, include: [{ association: 'author' }], order: [['author', 'name', 'DESC'], ['id', 'ASC']] });
      return post === null ? 'none' : `${post.title} by ${post.author!.name}`;
    }
    if (path === '/tags/1/first') {
      // The belongsToMany getter, with a limit picking one of the linked posts by its title.
      const tag = (await Tag.findByPk(1))!;
      return (await tag.getPosts({ order: [['title', 'ASC']], limit: 1 })).map((p) => p.title).join(',');
    }
    if (path === '/titles') {
      const rows = await PostTitle.findAll({ order: [['id', 'ASC']] });
      return rows.map((r) => `${String(r.get('id'))}:${String(r.get('title'))}`).join(',');
    }
    if (path === '/titles/count') return String(await PostTitle.count());
    if (path === '/comments') return (await blog.Comment.findAll({ order: [['id', 'ASC']] })).map((c) => c.body).join(',');
    if (path === '/posts/3/comments') return (await blog.Comment.findAll({ where: { postId: 3 }, order: [['id', 'ASC']] })).map((c) => c.body).join(',');
    const user = /^\/users\/(.+)$/.exec(path);
    if (user) {
      // Looked up by the address as typed: the column finds it in any case.
      const row = await User.findByPk(decodeURIComponent(user[1]!));
      return row === null ? 'none' : `${String(row.get('email'))}: ${String(row.get('name'))}`;
    }
    throw new Error(path);
  }

  beforeAll(async () => {
    db = await target.open();
    blog = defineBlog(db.sequelize);
    await db.sequelize.sync();
    await db.sequelize.query('CREATE VIEW sq_post_title AS SELECT id, title FROM sq_post');
    PostTitle = db.sequelize.define('PostTitle', { id: { type: DataTypes.INTEGER, primaryKey: true }, title: DataTypes.STRING }, { tableName: 'sq_post_title', timestamps: false });
    if (target.dialect === 'sqlite') {
      await db.sequelize.query('CREATE TABLE sq_user (email TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL)');
    } else if (target.dialect === 'postgres') {
      await db.sequelize.query(`CREATE COLLATION sq_caseless (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`);
      await db.sequelize.query('CREATE TABLE sq_user (email text COLLATE sq_caseless PRIMARY KEY, name text NOT NULL)');
    } else {
      await db.sequelize.query('CREATE TABLE sq_user (email varchar(100) PRIMARY KEY, name text NOT NULL)');
    }
    User = db.sequelize.define('User', { email: { type: DataTypes.STRING, primaryKey: true }, name: DataTypes.STRING }, { tableName: 'sq_user', timestamps: false });
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear([...blog.all, User]);
    await seedBlog(blog);
    await User.create({ email: 'ada@example.com', name: 'Ada' });
    dumper = createDumper({});
    handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true });
    site = await Site.start(dumper, db.counter, async (path) => ({ status: 200, body: await render(path) }));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
  });

  async function expectFresh(...paths: string[]) {
    for (const p of paths) {
      const served = await site.get(p);
      expect(served.body, `${p} is stale (served ${served.cache ?? 'no x-cache'})`).toBe(await render(p));
    }
  }

  test('a limit with an ordering by an included belongsTo column: a rename of an author whose post was not shown', async () => {
    await site.warm('/first-by-author', '/first-by-author-one');
    expect((await site.get('/first-by-author')).body).toBe('Hello by Ada');
    expect((await site.get('/first-by-author-one')).body).toBe('Bye by Bob');
    await blog.Comment.create({ body: 'later', postId: 3 });
    await site.expectHit('/first-by-author', '/first-by-author-one'); // no comment was read
    await blog.Author.update({ name: 'Aaron' }, { where: { id: 2 } }); // Bye now sorts first
    await expectFresh('/first-by-author');
    expect((await site.get('/first-by-author')).body).toBe('Bye by Aaron');
    await site.warm('/first-by-author-one');
    expect((await site.get('/first-by-author-one')).body).toBe('Hello by Ada'); // descending
    await blog.Author.update({ name: 'Zed' }, { where: { id: 2 } }); // Bye, not shown, sorts first again
    await expectFresh('/first-by-author-one');
    expect((await site.get('/first-by-author-one')).body).toBe('Bye by Zed');
  });

  test('a belongsToMany getter with a limit: a rename of a linked post that was not returned', async () => {
    await site.warm('/tags/1/first');
    expect((await site.get('/tags/1/first')).body).toBe('Bye'); // news links Hello and Bye
    await blog.Comment.create({ body: 'later', postId: 1 });
    await site.expectHit('/tags/1/first');
    await blog.Post.update({ title: 'Aaa' }, { where: { id: 1 } }); // Hello, linked but not shown, sorts first now
    await expectFresh('/tags/1/first');
    expect((await site.get('/tags/1/first')).body).toBe('Aaa');
  });

  test('a model over a database view: a write to the table under it', async () => {
    await site.warm('/titles', '/titles/count');
    await blog.Tag.update({ name: 'other' }, { where: { id: 2 } });
    await site.expectHit('/titles', '/titles/count'); // the view does not read the tags
    await blog.Post.update({ title: 'Renamed' }, { where: { id: 1 } });
    await blog.Post.create({ id: 4, title: 'Fourth', authorId: 1 });
    await expectFresh('/titles', '/titles/count');
    expect((await site.get('/titles')).body).toBe('1:Renamed,2:Again,3:Bye,4:Fourth');
  });

  // SQLite's views cannot be written to (without INSTEAD OF triggers).
  (target.dialect !== 'sqlite' ? test : () => undefined)('a model over a database view: a write through the view, to the table under it', async () => {
    await site.warm('/titles', '/comments', '/first-by-author');
    await PostTitle.update({ title: 'Hello again' }, { where: { id: 1 } });
    await expectFresh('/titles', '/first-by-author');
    await site.expectHit('/comments'); // the view is over posts only
    expect((await site.get('/titles')).body).toBe('1:Hello again,2:Again,3:Bye');
    await expectFresh('/first-by-author');
    expect((await site.get('/first-by-author')).body).toBe('Hello again by Ada');
  });

  (caseless ? test : () => undefined)('a key looked up in another case, in a column that ignores case: an update of the row', async () => {
    await site.warm('/users/ADA@example.com', '/users/ada@example.com');
    expect((await site.get('/users/ADA@example.com')).body).toBe('ada@example.com: Ada');
    await blog.Tag.update({ name: 'other' }, { where: { id: 2 } });
    await site.expectHit('/users/ADA@example.com');
    await User.update({ name: 'Ada L.' }, { where: { email: 'ada@example.com' } });
    await expectFresh('/users/ADA@example.com', '/users/ada@example.com');
    expect((await site.get('/users/ADA@example.com')).body).toBe('ada@example.com: Ada L.');
  });

  test('a delete that cascades: a child another connection added after the delete looked for children', async () => {
    // Post 3 has no comment when page-dumper's hook looks; a hook that runs after it adds one
    // (without hooks: as another process would) and stores pages showing it, before the delete
    // removes it with the post.
    db.sequelize.addHook('beforeDestroy', 'late-child', async () => {
      await blog.Comment.create({ body: 'late', postId: 3 }, { hooks: false });
      await site.warm('/comments', '/posts/3/comments');
      expect((await site.get('/posts/3/comments')).body).toBe('late');
    });
    try {
      await (await blog.Post.findByPk(3))!.destroy();
    } finally {
      db.sequelize.removeHook('beforeDestroy', 'late-child');
    }
    await expectFresh('/comments', '/posts/3/comments');
    expect((await site.get('/comments')).body).toBe('nice,great,ok');
  });
});

describe('what the catalog says, parsed', () => {
  test('the columns of a SQLite CREATE TABLE with a COLLATE other than BINARY, past quotes, strings and comments', () => {
    expect([...(sqliteInexact(`CREATE TABLE t (a TEXT COLLATE NOCASE PRIMARY KEY, "b c" text collate rtrim, [d] TEXT COLLATE BINARY, e TEXT DEFAULT 'x COLLATE NOCASE', -- f, COLLATE NOCASE
      g TEXT /* , h COLLATE NOCASE */, PRIMARY KEY (g COLLATE NOCASE))`) as Set<string>)].sort()).toEqual(['a', 'b c']);
    expect(sqliteInexact('CREATE TABLE t (a TEXT')).toBe('all');
  });

  test('a view spells a table as an identifier, in any case and quoting, not inside another name', () => {
    expect(spells('SELECT id FROM "sq_post"', 'sq_post')).toBe(true);
    expect(spells('select `test`.`SQ_POST`.`id` from `test`.`sq_post`', 'sq_post')).toBe(true);
    expect(spells('SELECT id FROM sq_post_tag', 'sq_post')).toBe(false);
    expect(spells('SELECT id FROM my_sq_post', 'sq_post')).toBe(false);
  });
});
