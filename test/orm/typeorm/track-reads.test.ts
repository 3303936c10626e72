/**
 * `typeormDumper(dumper, dataSource, { trackReads: true })` on SQLite, PostgreSQL and MariaDB,
 * with no model registered and no `dependentPaths()`: the blog's pages (a list, detail pages with
 * relations, filtered pages, counts, relation pages, a page that reads nothing, a lookup that
 * finds nothing) are warmed, a write is made, and then every page served is compared with a fresh
 * render (none may be stale), the pages whose data changed must be a MISS, and some others must
 * still be a HIT (no test passes by invalidating everything).
 */
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { listTag, rowTag, tableTag } from '../../../src/orm/typeorm/index.js';
import { typeormDumper, type TypeormDumper, type TypeormDumperOptions } from '../../../src/orm/typeorm/index.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll } from '../track-reads/check.js';
import { Author, blogApp, blogEntities, Comment, Post, seedBlog, Tag } from './blog.js';
import { databases, recordingLogger, Site, type Database } from './support.js';

const targets = await databases();

describe.each(targets)('TypeORM trackReads on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    db = await target.open(blogEntities);
    app = blogApp(db.dataSource);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function install(options: TypeormDumperOptions = {}) {
    await site?.close();
    handle?.close();
    await dumper?.close();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    handle = typeormDumper(dumper, db.dataSource, { trackReads: true, ...options });
    site = await Site.start(dumper, db.logger, (path) => app.handle(path));
  }

  beforeEach(async () => {
    await db.clear();
    await seedBlog(db.dataSource);
    await install();
    await warmAll((p) => site.get(p));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
  });

  const posts = () => db.dataSource.getRepository(Post);
  const comments = () => db.dataSource.getRepository(Comment);

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
    const post = await posts().findOneByOrFail({ id: 2 });
    post.title = 'Anew';
    await posts().save(post);
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('insert of a child: the parent page that loaded its children and the counts', async () => {
    await comments().save({ body: 'fine', post: { id: 2 } });
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('update() by primary key of a to-one row: the pages that joined it', async () => {
    await db.dataSource.getRepository(Author).update(1, { name: 'Ada L.' });
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a many-to-many link added by save(): both sides', async () => {
    const post = await posts().findOneOrFail({ where: { id: 1 }, relations: { tags: true } });
    post.tags.push(await db.dataSource.getRepository(Tag).findOneByOrFail({ id: 2 }));
    await posts().save(post);
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/about']);
  });

  test('a many-to-many link removed through the RelationQueryBuilder: both sides', async () => {
    await db.dataSource.createQueryBuilder().relation(Post, 'tags').of(3).remove(1);
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('remove() of a child: its parent page and the counts', async () => {
    const nice = await comments().findOneByOrFail({ body: 'nice' });
    await comments().remove(nice);
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('insert of the row a page looked up and did not find', async () => {
    await posts().insert({ id: 99, title: 'Late', author: { id: 2 } });
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    const great = await comments().findOneOrFail({ where: { body: 'great' }, relations: { post: true } });
    great.post = { id: 2 } as Post;
    await comments().save(great);
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('a QueryBuilder update by criteria: the rows it matched', async () => {
    await db.dataSource.createQueryBuilder().update(Post).set({ title: 'Ciao' }).where('id = :id', { id: 3 }).execute();
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete() of a parent whose children the database deletes (ON DELETE CASCADE)', async () => {
    await posts().delete(1);
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts']);
  });

  test('delete() by criteria: a page that read the links by ids only (loadRelationIds) is dropped with them', async () => {
    const page = async () => {
      const tag = await db.dataSource.getRepository(Tag).findOneOrFail({ where: { id: 1 }, loadRelationIds: { relations: ['posts'] } });
      return `${tag.name}: ${[...(tag.posts as unknown as number[])].sort().join(',')}`;
    };
    const ids = await Site.start(dumper, db.logger, async () => ({ status: 200, body: await page() }));
    try {
      await ids.warm('/tag-ids');
      await posts().delete(3);
      const after = await ids.get('/tag-ids');
      expect(after.cache).toBe('MISS');
      expect(after.body).toBe('news: 1');
    } finally {
      await ids.close();
    }
  });

  test('remove() of a parent: its links, its children and its lists', async () => {
    await posts().remove(await posts().findOneByOrFail({ id: 1 }));
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts']);
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its table', async () => {
    await install({ maxRows: 0 });
    await warmAll((p) => site.get(p));
    await comments().update({ body: 'ok' }, { body: 'okay' });
    await expectAfterWrite(['/posts/1', '/posts/2', '/posts/99', '/count'], ['/', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a write of a registered model whose rows are unknown still invalidates every page', async () => {
    dumper.register('Comment', { dependentPaths: () => [] });
    await install({ maxRows: 0 });
    dumper.register('Comment', { dependentPaths: () => [] });
    await warmAll((p) => site.get(p));
    await comments().update({ body: 'ok' }, { body: 'okay' });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toContain('/about');
    expect(log.warnings.join('\n')).toMatch(/invalidating every page/);
  });

  test('a page read inside a transaction is dropped again after the commit', async () => {
    await db.dataSource.transaction(async (manager) => {
      await manager.update(Post, 2, { title: 'Anew' });
      // Another connection (PostgreSQL, MariaDB) reads the last commit, and the page is stored
      // after the write's own invalidation; on SQLite, the one connection sees the new title.
      await site.get('/posts/2');
    });
    await expectAfterWrite([], ['/posts/1', '/about']);
    expect((await site.get('/posts/2')).body).toContain('Anew');
  });

  test('a raw write is not seen; invalidating its table tag by hand drops what pages read from it', async () => {
    const table = db.dataSource.getMetadata(Post).tablePath;
    const quoted = db.dataSource.driver.escape(db.dataSource.getMetadata(Post).tableName);
    const schema = db.dataSource.getMetadata(Post).schema;
    await db.dataSource.query(`UPDATE ${schema ? `${db.dataSource.driver.escape(schema)}.` : ''}${quoted} SET title = 'Raw' WHERE id = 3`);
    expect((await site.get('/')).cache).toBe('HIT');
    await dumper.invalidateTags([tableTag(table)]);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/posts/1'], ['/about', '/count']);
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    await install();
    dumper.register(Author, { dependentPaths: () => ['/about'] });
    await warmAll((p) => site.get(p));
    await db.dataSource.getRepository(Author).update(2, { name: 'Robert' });
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the tables, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    await warmAll((p) => site.get(p));
    expect(log.warnings.some((w) => /maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await posts().update(3, { title: 'Ciao' });
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await comments().save({ body: 'fine', post: { id: 2 } });
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
    expect(tags).toContain(rowTag(db.dataSource.getMetadata(Post).tablePath, { id: 99 }));
    expect(tags).not.toContain(listTag(db.dataSource.getMetadata(Post).tablePath));
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/');
    expect(tags).toContain(listTag(db.dataSource.getMetadata(Post).tablePath));
    expect(tags).toContain(tableTag(db.dataSource.getMetadata(Post).tablePath));
  });

  test('options are checked', () => {
    expect(() => typeormDumper(dumper, new DataSource({ type: 'better-sqlite3', database: ':memory:' }), { trackReads: 1 as never })).toThrow(
      new TypeError('page-dumper: typeormDumper() option "trackReads" must be a boolean, got number'),
    );
    expect(() => typeormDumper(dumper, new DataSource({ type: 'better-sqlite3', database: ':memory:' }), { trackReads: true, maxTagsPerPage: 0 })).toThrow(
      new TypeError('page-dumper: typeormDumper() option "maxTagsPerPage" must be a positive integer, got 0'),
    );
    expect(() => typeormDumper(dumper, new DataSource({ type: 'better-sqlite3', database: ':memory:' }), { maxTagsPerPage: 10 })).toThrow(
      new TypeError('page-dumper: typeormDumper() option "maxTagsPerPage" needs trackReads: true'),
    );
  });
});

const hasRedis = await needService('redis');
const postgres = targets.find((t) => t.name === 'PostgreSQL');

// Defined only where Redis and PostgreSQL are up (under CI, needService() fails the run without them).
(hasRedis && postgres !== undefined ? describe : () => undefined)('TypeORM trackReads across processes (RedisStore, PostgreSQL)', () => {
  test('a write through one dumper invalidates the pages another one stored', async () => {
    const db = await postgres!.open(blogEntities);
    const prefix = `tr:${randomUUID().slice(0, 8)}:`;
    // The second process: its own data source on the same schema, its own dumper on the same Redis.
    const other = new DataSource({ ...(db.dataSource.options as object), synchronize: false, logger: undefined } as never);
    await other.initialize();
    // A generous command timeout: a store read that times out on a busy machine is a MISS, not a failure to test here.
    const a = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const b = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const ha = typeormDumper(a, db.dataSource, { trackReads: true });
    const hb = typeormDumper(b, other, { trackReads: true });
    const appA = blogApp(db.dataSource);
    const appB = blogApp(other);
    const siteA = await Site.start(a, db.logger, (p) => appA.handle(p));
    const siteB = await Site.start(b, db.logger, (p) => appB.handle(p));
    try {
      await seedBlog(db.dataSource);
      await warmAll((p) => siteA.get(p));
      await warmAll((p) => siteB.get(p));
      await other.getRepository(Comment).save({ body: 'from b', post: { id: 1 } });
      const missed = await expectNoStale((p) => siteA.get(p), appA);
      expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
      expect(missed).not.toContain('/about');
      expect(missed).not.toContain('/posts/2');
      await other.getRepository(Post).update(2, { title: 'Anew' });
      expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
    } finally {
      await siteA.close();
      await siteB.close();
      ha.close();
      hb.close();
      await a.close();
      await b.close();
      await other.destroy();
      await db.close();
    }
  });
});
