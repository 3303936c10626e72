/**
 * `mikroOrmDumper(dumper, orm, { trackReads: true })` on SQLite, PostgreSQL and MariaDB, with no
 * model registered and no `dependentPaths()`: the blog's pages (a list, detail pages with
 * relations, filtered pages, counts, relation pages, a page that reads nothing, a lookup that
 * finds nothing) are warmed, a write is made, and then every page served is compared with a fresh
 * render (none may be stale), the pages whose data changed must be a MISS, and some others must
 * still be a HIT (no test passes by invalidating everything).
 */
import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { listTag, mikroOrmDumper, rowTag, tableOf, tableTag, type MikroOrmDumper, type MikroOrmDumperOptions } from '../../../src/orm/mikro-orm/index.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll } from '../track-reads/check.js';
import { blog, blogApp, seedBlog, type Blog } from './blog.js';
import { kinds, openDatabase, recordingLogger, Site, type Counted, type TestDatabase } from './support.js';

const targets = await kinds();

const qb = (em: EntityManager, entity: unknown) => (em as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(entity);

describe.each(targets)('MikroORM trackReads on %s', (kind) => {
  let db: TestDatabase;
  let orm: Counted;
  let b: Blog;
  /** A second ORM on the same database (its own connections), for reads during a transaction. */
  let reader: Counted;
  let rb: Blog;
  let dumper: Dumper;
  let handles: MikroOrmDumper[] = [];
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    db = await openDatabase(kind);
    b = blog();
    orm = await db.open(b.schemas);
    rb = blog();
    reader = await db.open(rb.schemas, { contextName: 'reader' });
    app = blogApp(orm.orm, b);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function uninstall() {
    await site?.close();
    for (const h of handles.splice(0)) h.close();
    await dumper?.close();
  }

  async function install(options: MikroOrmDumperOptions = {}) {
    await uninstall();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    handles = [mikroOrmDumper(dumper, orm.orm, { trackReads: true, ...options }), mikroOrmDumper(dumper, reader.orm, { trackReads: true })];
    site = await Site.start(dumper, orm, (path) => app.handle(path));
  }

  beforeEach(async () => {
    await uninstall();
    await db.clear();
    await seedBlog(orm.orm.em.fork(), b);
    await install();
    await warmAll((p) => site.get(p));
  });
  afterEach(uninstall);

  const em = () => orm.orm.em.fork();

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

  test('a flushed update of a row: its detail, relation, list and filtered pages', async () => {
    const m = em();
    (await m.findOneOrFail(b.Post, 2)).title = 'Anew';
    await m.flush();
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('a flushed insert of a child: the parent page that loaded its children and the counts', async () => {
    const m = em();
    m.create(b.Comment, { body: 'fine', post: 2 });
    await m.flush();
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('nativeUpdate() by primary key of a to-one row: the pages that joined it', async () => {
    await em().nativeUpdate(b.Author, 1, { name: 'Ada L.' });
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a many-to-many link added by a flush: both sides, not the rows', async () => {
    const m = em();
    const post = await m.findOneOrFail(b.Post, 1, { populate: ['tags'] });
    post.tags.add(m.getReference(b.Tag, 2));
    await m.flush();
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/titled/a', '/about']);
  });

  test('a many-to-many link removed from the inverse side: both sides', async () => {
    const m = em();
    const news = await m.findOneOrFail(b.Tag, 1, { populate: ['posts'] });
    news.posts.remove(m.getReference(b.Post, 3));
    await m.flush();
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('a flushed delete of a child: its parent page and the counts', async () => {
    const m = em();
    m.remove(await m.findOneOrFail(b.Comment, { body: 'nice' }));
    await m.flush();
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('em.insert() of the row a page looked up and did not find', async () => {
    await em().insert(b.Post, { id: 99, title: 'Late', author: 2 });
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('an insert of a row no page read, in a table pages join: nothing is dropped', async () => {
    await em().insert(b.Author, { id: 3, name: 'Cy' });
    await expectAfterWrite([], PAGES);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    const m = em();
    const great = await m.findOneOrFail(b.Comment, { body: 'great' });
    great.post = m.getReference(b.Post, 2);
    await m.flush();
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('a QueryBuilder update by criteria: the rows it matched', async () => {
    await qb(em(), b.Post).update({ title: 'Ciao' }).where({ id: 3 }).execute();
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('nativeDelete() of a parent whose children the database deletes (ON DELETE CASCADE)', async () => {
    await em().nativeDelete(b.Post, 1);
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2']);
  });

  test('a flushed delete of a parent: its links, its children and its lists', async () => {
    const m = em();
    m.remove(await m.findOneOrFail(b.Post, 1));
    await m.flush();
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2']);
  });

  test('a cascade two levels deep: an author, their posts, the posts’ comments and links', async () => {
    await em().nativeDelete(b.Author, 2);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/about', '/posts/1', '/posts/2']);
    await em().nativeDelete(b.Author, 1);
    await expectAfterWrite(['/', '/posts/1', '/posts/2', '/count', '/tags/1', '/tags/2', '/authors/1/posts'], ['/about']);
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its table', async () => {
    await install({ maxRows: 0 });
    await warmAll((p) => site.get(p));
    await em().nativeUpdate(b.Comment, { body: 'ok' }, { body: 'okay' });
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a write of a registered entity whose rows are unknown still invalidates every page', async () => {
    await install({ maxRows: 0 });
    dumper.register('Comment', { dependentPaths: () => [] });
    await warmAll((p) => site.get(p));
    await em().nativeUpdate(b.Comment, { body: 'ok' }, { body: 'okay' });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toContain('/about');
    expect(log.warnings.join('\n')).toMatch(/invalidating every page/);
  });

  test('a page read inside a transaction (by another ORM) is dropped again after the commit', async () => {
    const readerApp = blogApp(reader.orm, rb);
    const other = await Site.start(dumper, reader, (p) => readerApp.handle(p));
    try {
      await other.warm('/posts/2', '/posts/1');
      await orm.orm.em.fork().transactional(async (m) => {
        await m.nativeUpdate(b.Post, 2, { title: 'Anew' });
        // The reader's own connection reads the last commit: the page is stored after the write's own invalidation.
        expect((await other.get('/posts/2')).body).toContain('Again');
      });
      const after = await other.get('/posts/2');
      expect(after.cache).toBe('MISS');
      expect(after.body).toContain('Anew');
      await other.expectHit('/posts/1');
    } finally {
      await other.close();
    }
  });

  test('a findOne() served from the identity map (no query) still tags the page', async () => {
    const shared = orm.orm.em.fork();
    const page = async () => {
      const post = await shared.findOneOrFail(b.Post, 1, { populate: ['author'] });
      return `${post.title} by ${post.author.name}`;
    };
    const im = await Site.start(dumper, orm, async () => ({ status: 200, body: await page() }));
    try {
      await im.warm('/im');
      await dumper.invalidateAll();
      const again = await im.get('/im');
      expect(again.cache).toBe('MISS');
      expect(again.queries).toBe(0);
      await im.expectHit('/im');
      await em().nativeUpdate(b.Author, 1, { name: 'Ada L.' });
      await im.expectMiss('/im');
    } finally {
      await im.close();
    }
  });

  test('a lazy collection init() and Reference.load() tag what they load', async () => {
    const page = async () => {
      const m = orm.orm.em.fork();
      const post = await m.findOneOrFail(b.Post, 2);
      await post.comments.init();
      await post.tags.init();
      const author = await m.getReference(b.Author, 1, { wrapped: true }).load();
      return `${post.comments.getItems().map((c) => c.body).join(',')} by ${author?.name} in ${post.tags.getItems().map((t) => t.name).join(',')}`;
    };
    const lazy = await Site.start(dumper, orm, async () => ({ status: 200, body: await page() }));
    try {
      await lazy.warm('/lazy');
      await em().nativeUpdate(b.Comment, { body: 'nice' }, { body: 'nicer' });
      await lazy.expectHit('/lazy');
      await em().insert(b.Comment, { body: 'fine', post: 2 });
      expect((await lazy.expectMiss('/lazy'))[0]!.body).toBe('ok,fine by Ada in misc');
      await em().nativeUpdate(b.Author, 1, { name: 'Ada L.' });
      expect((await lazy.expectMiss('/lazy'))[0]!.body).toBe('ok,fine by Ada L. in misc');
      await em().nativeUpdate(b.Tag, 2, { name: 'other' });
      expect((await lazy.expectMiss('/lazy'))[0]!.body).toBe('ok,fine by Ada L. in other');
      await em().nativeUpdate(b.Author, 2, { name: 'Robert' });
      await em().nativeUpdate(b.Tag, 1, { name: 'new' });
      await lazy.expectHit('/lazy');
    } finally {
      await lazy.close();
    }
  });

  test('select-in loading tags the same rows and keys as joined loading', async () => {
    const page = async () => {
      const p = await orm.orm.em.fork().findOneOrFail(b.Post, 1, { populate: ['author', 'tags', 'comments'], strategy: 'select-in' });
      return `${p.title} by ${p.author.name}; ${p.tags.map((t) => t.name).sort().join(',')}; ${p.comments.map((c) => c.body).sort().join(',')}`;
    };
    const selectIn = await Site.start(dumper, orm, async () => ({ status: 200, body: await page() }));
    try {
      await selectIn.warm('/select-in');
      await em().insert(b.Comment, { body: 'fine', post: 2 });
      await em().nativeUpdate(b.Tag, 2, { name: 'other' });
      await em().insert(b.Author, { id: 3, name: 'Cy' });
      await selectIn.expectHit('/select-in');
      await em().insert(b.Comment, { body: 'fine', post: 1 });
      expect((await selectIn.expectMiss('/select-in'))[0]!.body).toBe('Hello by Ada; news; fine,great,nice');
      await em().nativeUpdate(b.Tag, 1, { name: 'new' });
      expect((await selectIn.expectMiss('/select-in'))[0]!.body).toBe('Hello by Ada; new; fine,great,nice');
      const m = em();
      (await m.findOneOrFail(b.Post, 1, { populate: ['tags'] })).tags.add(m.getReference(b.Tag, 2));
      await m.flush();
      expect((await selectIn.expectMiss('/select-in'))[0]!.body).toBe('Hello by Ada; new,other; fine,great,nice');
    } finally {
      await selectIn.close();
    }
  });

  test('a QueryBuilder select tags the lists of every table it names', async () => {
    const page = async () => {
      const rows = await qb(orm.orm.em.fork(), b.Post).select('*').leftJoinAndSelect('p0.author', 'a').where({ 'a.name': 'Bob' }).orderBy({ id: 'asc' }).getResult();
      return rows.map((p: { title: string }) => p.title).join(',');
    };
    const qbs = await Site.start(dumper, orm, async () => ({ status: 200, body: await page() }));
    try {
      await qbs.warm('/qb');
      await em().nativeUpdate(b.Author, 1, { name: 'Bob' });
      expect((await qbs.expectMiss('/qb'))[0]!.body).toBe('Hello,Again,Bye');
    } finally {
      await qbs.close();
    }
  });

  test('a filter whose condition names another table makes a read by primary key a list of both', async () => {
    const page = async () => {
      const m = orm.orm.em.fork();
      m.addFilter('shown', { author: { name: { $ne: 'Hidden' } } }, b.Post);
      return (await m.findOne(b.Post, 1))?.title ?? 'none';
    };
    const filtered = await Site.start(dumper, orm, async () => ({ status: 200, body: await page() }));
    try {
      await filtered.warm('/filtered');
      await em().nativeUpdate(b.Post, 3, { title: 'Ciao' });
      await em().nativeUpdate(b.Author, 1, { name: 'Hidden' });
      expect((await filtered.expectMiss('/filtered'))[0]!.body).toBe('none');
    } finally {
      await filtered.close();
    }
  });

  test('key spellings the database does not hand back are read as lists, never left stale', async () => {
    const page = async (path: string) => {
      const m = orm.orm.em.fork();
      if (path === '/zero') return (await m.findOne(b.Post, { id: '01' as never }))?.title ?? 'none';
      if (path === '/fk') return String(await m.count(b.Comment, { post: '001' as never }));
      // On MariaDB 'SPORT' finds 'sport' (its collation ignores case): the lookup is a list there.
      if (path === '/sport') return (await m.findOne(b.Category, 'SPORT' as never))?.name ?? 'none';
      const c = await m.findOne(b.Category, { code: 'NEWS' });
      return c?.name ?? 'none';
    };
    const spelled = await Site.start(dumper, orm, async (p) => ({ status: 200, body: await page(p) }));
    try {
      await spelled.warm('/zero', '/fk', '/category', '/sport');
      await em().nativeUpdate(b.Post, 1, { title: 'Hi' });
      await em().insert(b.Comment, { body: 'fine', post: 1 });
      await em().nativeUpdate(b.Category, { code: 'news' }, { name: 'Newz' });
      await em().insert(b.Category, { code: 'sport', name: 'Sport' });
      for (const p of ['/zero', '/fk', '/category', '/sport']) expect((await spelled.get(p)).body, p).toBe(await page(p));
    } finally {
      await spelled.close();
    }
  });

  test('a raw write is not seen; invalidating its table tag by hand drops what pages read from it', async () => {
    const meta = orm.orm.getMetadata().get(b.Post.name);
    const schema = kind === 'PostgreSQL' ? `"${String(orm.orm.config.get('schema'))}".` : '';
    await em().getConnection().execute(`UPDATE ${kind === 'MariaDB' ? '`mo_post`' : `${schema}"mo_post"`} SET title = 'Raw' WHERE id = 3`);
    expect((await site.get('/')).cache).toBe('HIT');
    await dumper.invalidateTags([tableTag(tableOf(meta))]);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/posts/1'], ['/about', '/count']);
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    dumper.register(b.Author, { dependentPaths: () => ['/about'] });
    await em().nativeUpdate(b.Author, 2, { name: 'Robert' });
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the tables, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    await warmAll((p) => site.get(p));
    expect(log.warnings.some((w) => /mikro-orm: a page read more than maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await em().nativeUpdate(b.Post, 3, { title: 'Ciao' });
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await em().insert(b.Comment, { body: 'fine', post: 2 });
    await expectAfterWrite(['/posts/2', '/count'], ['/about']);
  });

  test('the tags a page carries: rows by primary key (found or not), tables for lists', async () => {
    const table = tableOf(orm.orm.getMetadata().get(b.Post.name));
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...t: string[]) => {
      tags.push(...t);
      original(...t);
    };
    await dumper.invalidateAll();
    await site.get('/posts/99');
    expect(tags).toContain(rowTag(table, { id: 99 }));
    expect(tags).not.toContain(listTag(table));
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/');
    expect(tags).toContain(listTag(table));
    expect(tags).toContain(tableTag(table));
  });

  test('options are checked', () => {
    for (const h of handles.splice(0)) h.close();
    const fake = orm.orm as MikroORM;
    expect(() => mikroOrmDumper(dumper, fake, { trackReads: 1 as never })).toThrow(
      new TypeError('page-dumper: mikroOrmDumper() option "trackReads" must be a boolean, got number'),
    );
    expect(() => mikroOrmDumper(dumper, reader.orm, { trackReads: true, maxTagsPerPage: 0 })).toThrow(
      new TypeError('page-dumper: mikroOrmDumper() option "maxTagsPerPage" must be a positive integer, got 0'),
    );
    expect(() => mikroOrmDumper(dumper, reader.orm, { maxTagsPerPage: 10 })).toThrow(new TypeError('page-dumper: mikroOrmDumper() option "maxTagsPerPage" needs trackReads: true'));
  });
});

const hasRedis = await needService('redis');
const crossProcess = hasRedis && targets.includes('PostgreSQL') ? ['PostgreSQL' as const] : [];

describe.each(crossProcess)('MikroORM trackReads across processes (RedisStore, %s)', (kind) => {
  test('a write through one dumper invalidates the pages another one stored', async () => {
    const db = await openDatabase(kind);
    const ba = blog();
    const bb = blog();
    const ormA = await db.open(ba.schemas);
    // The second process: its own ORM (own connections) on the same schema, its own dumper on the same Redis.
    const ormB = await db.open(bb.schemas, { contextName: 'b' });
    const prefix = `tr:${randomUUID().slice(0, 8)}:`;
    // A generous command timeout: a store read that times out on a busy machine is a MISS, not a failure to test here.
    const a = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const c = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const ha = mikroOrmDumper(a, ormA.orm, { trackReads: true });
    const hb = mikroOrmDumper(c, ormB.orm, { trackReads: true });
    const appA = blogApp(ormA.orm, ba);
    const appB = blogApp(ormB.orm, bb);
    const siteA = await Site.start(a, ormA, (p) => appA.handle(p));
    const siteB = await Site.start(c, ormB, (p) => appB.handle(p));
    try {
      await seedBlog(ormA.orm.em.fork(), ba);
      await warmAll((p) => siteA.get(p));
      await warmAll((p) => siteB.get(p));
      const m = ormB.orm.em.fork();
      m.create(bb.Comment, { body: 'from b', post: 1 });
      await m.flush();
      const missed = await expectNoStale((p) => siteA.get(p), appA);
      expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
      expect(missed).not.toContain('/about');
      expect(missed).not.toContain('/posts/2');
      await ormB.orm.em.fork().nativeUpdate(bb.Post, 2, { title: 'Anew' });
      expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
      expect(await expectNoStale((p) => siteA.get(p), appA)).toEqual(expect.arrayContaining(['/posts/2', '/']));
    } finally {
      await siteA.close();
      await siteB.close();
      ha.close();
      hb.close();
      await a.close();
      await c.close();
      await db.close();
    }
  });
});
