/**
 * `kyselyDumper(dumper, db, { trackReads: true })` on SQLite, PostgreSQL and MariaDB, with no
 * table registered and no `dependentPaths()`: the blog's pages (a list joined to its authors,
 * detail pages with joins, filtered pages, counts, relation pages through a join table, a page that
 * reads nothing, a lookup that finds nothing) are warmed, a write is made, and then every page
 * served is compared with a fresh render (none may be stale), the pages whose data changed must be
 * a MISS, and some others must still be a HIT (no test passes by invalidating everything).
 *
 * The pages read through one wrapped Kysely, the writes go through another (its own connections,
 * as another request would): both with trackReads, on one dumper.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { kyselyDumper, keyTag, listTag, rowTag, tableTag, type KyselyDumperOptions } from '../../../src/orm/kysely/index.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { recordingLogger, Site } from '../../support/orm-site.js';
import { definedIf, needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll } from '../track-reads/check.js';
import { blogApp, openBlog, seedBlog, type BlogDatabase, type BlogDB } from './blog.js';
import { dialects } from './support.js';

const targets = await dialects();

describe.each(targets)('Kysely trackReads (%s)', (dialect) => {
  let blog: BlogDatabase;
  let reader: ReturnType<BlogDatabase['client']>;
  let writer: ReturnType<BlogDatabase['client']>;
  let dumper: Dumper;
  let db: Kysely<BlogDB>;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    blog = await openBlog(dialect);
    reader = blog.client();
    writer = blog.client();
  });
  afterAll(async () => {
    await blog?.drop();
  });

  /** A new dumper; the app reads through `reader`, the test writes through `db` (`writer`), both wrapped. */
  async function install(options: KyselyDumperOptions = {}) {
    await site?.close();
    await dumper?.close();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    app = blogApp(kyselyDumper(dumper, reader.db, { trackReads: true, ...options }));
    db = kyselyDumper(dumper, writer.db, { trackReads: true, ...options });
    site = await Site.start(dumper, reader.count, (path) => app.handle(path));
  }

  beforeEach(async () => {
    await blog.reset();
    await seedBlog(writer.db);
    await install();
    await warmAll((p) => site.get(p));
  });
  afterEach(async () => {
    await site.close();
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

  test('update of a row by primary key: its detail, relation, list and filtered pages', async () => {
    await db.updateTable('post').set({ title: 'Anew' }).where('id', '=', 2).execute();
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('insert of a child: the parent page that read its children and the counts', async () => {
    await db.insertInto('comment').values({ body: 'fine', post_id: 2 }).execute();
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('update of a joined parent row: the pages that joined it, not those that only read its key', async () => {
    await db.updateTable('author').set({ name: 'Ada L.' }).where('id', '=', 1).execute();
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a join-table row inserted: both sides', async () => {
    await db.insertInto('post_tag').values({ post_id: 1, tag_id: 2 }).execute();
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/about']);
  });

  test('a join-table row deleted: both sides', async () => {
    await db.deleteFrom('post_tag').where('post_id', '=', 3).where('tag_id', '=', 1).execute();
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a child: its parent page and the counts', async () => {
    await db.deleteFrom('comment').where('body', '=', 'nice').execute();
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('insert of the row a page looked up and did not find', async () => {
    await db.insertInto('post').values({ id: 99, title: 'Late', author_id: 2 }).execute();
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    await db.updateTable('comment').set({ post_id: 2 }).where('body', '=', 'great').execute();
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('an update by criteria: the rows it matched', async () => {
    await db.updateTable('post').set({ title: 'Ciao' }).where('title', '=', 'Bye').execute();
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a parent whose children the database deletes (ON DELETE CASCADE)', async () => {
    await db.deleteFrom('post').where('id', '=', 1).execute();
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2']);
  });

  test('delete of a grandparent: the cascades two levels down', async () => {
    await db.deleteFrom('author').where('id', '=', 1).execute();
    // Posts 1 and 2 go, and with them their comments and links.
    await expectAfterWrite(['/', '/posts/1', '/posts/2', '/authors/1/posts', '/count', '/tags/1', '/tags/2'], ['/about', '/authors/2/posts']);
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its table', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await db.updateTable('comment').set({ body: 'fine' }).where('post_id', '=', 1).execute();
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/posts/99', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a delete whose rows are unknown: also everything read from the tables it cascades to', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await db.deleteFrom('post').where('author_id', '=', 1).execute();
    await expectAfterWrite(['/', '/posts/1', '/posts/2', '/tags/1', '/tags/2', '/count', '/authors/1/posts'], ['/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a write of a registered table whose rows are unknown still invalidates every page', async () => {
    await install({ maxRows: 1 });
    dumper.register('comment', { dependentPaths: () => [] });
    await warmAll((p) => site.get(p));
    await db.updateTable('comment').set({ body: 'fine' }).where('post_id', '=', 1).execute();
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toContain('/about');
    expect(log.warnings.join('\n')).toMatch(/invalidating every page/);
  });

  test('a page read inside a transaction is dropped again after the commit', async () => {
    await db.transaction().execute(async (trx) => {
      await trx.updateTable('post').set({ title: 'Anew' }).where('id', '=', 2).execute();
      // The reader's own connection reads the last commit, and the page is stored after the
      // write's own invalidation.
      expect((await site.get('/posts/2')).body).toContain('Again');
    });
    await expectAfterWrite([], ['/posts/1', '/about']);
    expect((await site.get('/posts/2')).body).toContain('Anew');
  });

  test('a raw write is not seen; invalidating its table tag by hand drops what pages read from it', async () => {
    await sql`UPDATE post SET title = 'Raw' WHERE id = 3`.execute(db);
    expect((await site.get('/')).cache).toBe('HIT');
    await dumper.invalidateTags([tableTag('post')]);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/posts/1'], ['/about', '/count']);
  });

  test('a raw read tags nothing', async () => {
    const raw = await Site.start(dumper, reader.count, async () => ({ status: 200, body: JSON.stringify((await sql`SELECT title FROM post WHERE id = 3`.execute(app.db)).rows) }));
    try {
      await raw.warm('/raw');
      await db.updateTable('post').set({ title: 'Ciao' }).where('id', '=', 3).execute();
      expect((await raw.get('/raw')).cache).toBe('HIT');
    } finally {
      await raw.close();
    }
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    dumper.register('author', { dependentPaths: () => ['/about'] });
    await db.updateTable('author').set({ name: 'Robert' }).where('id', '=', 2).execute();
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the tables, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    await warmAll((p) => site.get(p));
    expect(log.warnings.some((w) => /maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await db.updateTable('post').set({ title: 'Ciao' }).where('id', '=', 3).execute();
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await db.insertInto('comment').values({ body: 'fine', post_id: 2 }).execute();
    await expectAfterWrite(['/posts/2', '/count'], ['/about']);
  });

  test('the tags a page carries: rows by primary key (found or not), keys, tables for lists', async () => {
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...t: string[]) => {
      tags.push(...t);
      original(...t);
    };
    await dumper.invalidateAll();
    await site.get('/posts/99');
    expect(tags).toContain(rowTag('post', { id: 99 }));
    expect(tags).not.toContain(listTag('post'));
    tags.length = 0;
    await site.get('/posts/1');
    expect(tags).toEqual(expect.arrayContaining([rowTag('post', { id: 1 }), rowTag('author', { id: 1 }), keyTag('comment', { post_id: 1 }), keyTag('post_tag', { post_id: 1 }), rowTag('tag', { id: 1 })]));
    expect(tags.filter((t) => t.startsWith('orm:list:'))).toEqual([]);
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/');
    expect(tags).toContain(listTag('post'));
    expect(tags).toContain(tableTag('post'));
    expect(tags).toContain(rowTag('author', { id: 2 }));
    expect(tags).not.toContain(listTag('author'));
    tags.length = 0;
    await site.get('/tags/1');
    expect(tags).toEqual(expect.arrayContaining([rowTag('tag', { id: 1 }), keyTag('post_tag', { tag_id: 1 }), rowTag('post', { id: 1 }), rowTag('post', { id: 3 })]));
    expect(tags).not.toContain(listTag('post'));
  });

  test('a key spelled otherwise than the database returns it tags the list, a link read by its primary key its row: no page is left stale', async () => {
    // '01' finds post 1 of an integer column; on MariaDB 'ABC ' finds the code 'abc'.
    const spelled = await Site.start(dumper, reader.count, async (path) => {
      const r = app.db;
      if (path === '/one') return { status: 200, body: (await r.selectFrom('post').select('title').where('id', '=', '01' as never).executeTakeFirst())?.title ?? 'none' };
      if (path === '/late') return { status: 200, body: (await r.selectFrom('post').select('title').where('id', 'in', ['099' as never, 98]).executeTakeFirst())?.title ?? 'none' };
      if (path === '/code') return { status: 200, body: (await r.selectFrom('code').select('label').where('code', '=', 'ABC ').executeTakeFirst())?.label ?? 'none' };
      if (path === '/link') return { status: 200, body: (await r.selectFrom('post_tag').selectAll().where('post_id', '=', 1).where('tag_id', '=', 2).executeTakeFirst()) ? 'linked' : 'none' };
      return { status: 200, body: (await r.selectFrom('comment').select('body').where('post_id', '=', '2' as never).execute()).map((c) => c.body).join(',') };
    });
    const fresh = (path: string) => spelled.get(path);
    try {
      await spelled.warm('/one', '/late', '/code', '/children', '/link');
      const before = (await fresh('/code')).body;
      expect(before).toBe(dialect === 'mysql' ? 'first' : 'none');
      await db.updateTable('post').set({ title: 'Uno' }).where('id', '=', 1).execute();
      await db.insertInto('post').values({ id: 99, title: 'Late', author_id: 1 }).execute();
      await db.updateTable('code').set({ label: 'second' }).where('code', '=', 'abc').execute();
      await db.insertInto('comment').values({ body: 'more', post_id: 2 }).execute();
      await db.insertInto('post_tag').values({ post_id: 1, tag_id: 2 }).execute();
      expect((await fresh('/one')).body).toBe('Uno');
      expect((await fresh('/late')).body).toBe('Late');
      expect((await fresh('/code')).body).toBe(dialect === 'mysql' ? 'second' : 'none');
      // '2' is how the driver would print 2: a canonical spelling, tagged by key.
      expect((await fresh('/children')).body).toBe('ok,more');
      // A link looked up by its primary key (found or not) is a row read: adding the link drops it.
      expect((await fresh('/link')).body).toBe('linked');
    } finally {
      await spelled.close();
    }
  });

  test("a join whose parent decides which rows come back (a filter, an ordering with a limit) tags the parent's list", async () => {
    const joined = await Site.start(dumper, reader.count, async (path) => {
      const r = app.db;
      const base = r.selectFrom('post').innerJoin('author', 'author.id', 'post.author_id').select(['post.title', 'post.author_id', 'author.name']);
      const rows = path === '/by-ada' ? await base.where('author.name', '=', 'Ada').orderBy('post.id').execute() : await base.orderBy('author.name', 'desc').orderBy('post.id').limit(1).execute();
      return { status: 200, body: rows.map((p) => `${p.title} by ${p.name}`).join(',') };
    });
    try {
      await joined.warm('/by-ada', '/last-author');
      expect((await joined.get('/last-author')).body).toBe('Bye by Bob');
      // Neither author shown on /by-ada (Bob), nor on /last-author (Ada) is the one renamed... until it is.
      await db.updateTable('author').set({ name: 'Ada' }).where('id', '=', 2).execute();
      expect((await joined.get('/by-ada')).body).toBe('Hello by Ada,Again by Ada,Bye by Ada');
      await db.updateTable('author').set({ name: 'Zed' }).where('id', '=', 1).execute();
      expect((await joined.get('/last-author')).body).toBe('Hello by Zed');
    } finally {
      await joined.close();
    }
  });

  // PostgreSQL streams need pg-cursor, which is not installed here.
  (dialect !== 'postgres' ? test : () => undefined)('a streamed SELECT tags the lists of the tables it names', async () => {
    const streamed = await Site.start(dumper, reader.count, async () => {
      const titles: string[] = [];
      for await (const p of app.db.selectFrom('post').select('title').where('id', '=', 3).stream()) titles.push(p.title);
      return { status: 200, body: titles.join(',') };
    });
    try {
      await streamed.warm('/streamed');
      await db.updateTable('post').set({ title: 'Ciao' }).where('id', '=', 3).execute();
      const page = await streamed.get('/streamed');
      expect(page.cache).toBe('MISS');
      expect(page.body).toBe('Ciao');
    } finally {
      await streamed.close();
    }
  });

  (dialect === 'postgres' ? test : () => undefined)('a uuid key in upper case tags the list: the row the database found is not left stale', async () => {
    const id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    await writer.db.insertInto('token').values({ id, label: 'first' }).execute();
    const tokens = await Site.start(dumper, reader.count, async (path) => {
      const key = path === '/upper' ? id.toUpperCase() : id;
      return { status: 200, body: (await app.db.selectFrom('token').select('label').where('id', '=', key).executeTakeFirst())?.label ?? 'none' };
    });
    try {
      await tokens.warm('/upper', '/lower');
      await db.updateTable('token').set({ label: 'second' }).where('id', '=', id).execute();
      expect((await tokens.get('/upper')).body).toBe('second');
      expect((await tokens.get('/lower')).body).toBe('second');
    } finally {
      await tokens.close();
    }
  });

  test('a foreign key declared in another case than its columns: the cascade of a delete still reaches the pages', async () => {
    await blog.exec('CREATE TABLE note (id INTEGER PRIMARY KEY, body VARCHAR(50) NOT NULL, post_ref INTEGER NOT NULL, FOREIGN KEY (POST_REF) REFERENCES post (ID) ON DELETE CASCADE)');
    try {
      await blog.exec("INSERT INTO note (id, body, post_ref) VALUES (1, 'a note', 1)");
      const r = app.db as unknown as Kysely<BlogDB & { note: { id: number; body: string; post_ref: number } }>;
      const notes = await Site.start(dumper, reader.count, async () => ({ status: 200, body: (await r.selectFrom('note').select('body').where('post_ref', '=', 1).execute()).map((n) => n.body).join(',') || 'none' }));
      try {
        await notes.warm('/notes');
        await db.deleteFrom('post').where('id', '=', 1).execute();
        expect(await notes.get('/notes')).toMatchObject({ cache: 'MISS', body: 'none' });
      } finally {
        await notes.close();
      }
    } finally {
      await blog.exec('DROP TABLE note');
    }
  });

  test('delete of a parent whose children the database sets to null (ON DELETE SET NULL): the pages of those children', async () => {
    await blog.exec('CREATE TABLE draft (id INTEGER PRIMARY KEY, post_id INTEGER NULL REFERENCES post (id) ON DELETE SET NULL)');
    try {
      await blog.exec('INSERT INTO draft (id, post_id) VALUES (1, 2), (2, 3)');
      const r = app.db as unknown as Kysely<BlogDB & { draft: { id: number; post_id: number | null } }>;
      const drafts = await Site.start(dumper, reader.count, async (path) => {
        const id = Number(path.slice('/drafts/'.length));
        return { status: 200, body: String((await r.selectFrom('draft').select('post_id').where('id', '=', id).executeTakeFirst())?.post_id) };
      });
      try {
        await drafts.warm('/drafts/1', '/drafts/2');
        await db.deleteFrom('post').where('id', '=', 2).execute();
        expect(await drafts.get('/drafts/1')).toMatchObject({ cache: 'MISS', body: 'null' });
        expect(await drafts.get('/drafts/2')).toMatchObject({ cache: 'HIT', body: '3' });
      } finally {
        await drafts.close();
      }
    } finally {
      await blog.exec('DROP TABLE draft');
    }
  });

  test('options are checked', () => {
    expect(() => kyselyDumper(dumper, writer.db, { trackReads: 1 as never })).toThrow(new TypeError('page-dumper: kyselyDumper() option "trackReads" must be a boolean, got number'));
    expect(() => kyselyDumper(dumper, writer.db, { trackReads: true, maxTagsPerPage: 0 })).toThrow(
      new TypeError('page-dumper: kyselyDumper() option "maxTagsPerPage" must be a positive integer, got 0'),
    );
    expect(() => kyselyDumper(dumper, writer.db, { maxTagsPerPage: 10 })).toThrow(new TypeError('page-dumper: kyselyDumper() option "maxTagsPerPage" needs trackReads: true'));
  });
});

const hasRedis = await needService('redis');
const shared = targets.filter((d) => d !== 'sqlite');

definedIf(hasRedis, describe)('Kysely trackReads across processes (RedisStore)', () => {
  test.each(shared)('a write through one dumper invalidates the pages another one stored (%s)', async (dialect) => {
    const blog = await openBlog(dialect);
    const prefix = `tr:${randomUUID().slice(0, 8)}:`;
    // A generous command timeout: a store read that times out on a busy machine is a MISS, not a failure to test here.
    const a = createDumper({ logger: false, store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const b = createDumper({ logger: false, store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    // Each process: its own Kysely (own pool) on the same database.
    const [ca, cb] = [blog.client(), blog.client()];
    const dbA = kyselyDumper(a, ca.db, { trackReads: true });
    const dbB = kyselyDumper(b, cb.db, { trackReads: true });
    const appA = blogApp(dbA);
    const appB = blogApp(dbB);
    const siteA = await Site.start(a, ca.count, (p) => appA.handle(p));
    const siteB = await Site.start(b, cb.count, (p) => appB.handle(p));
    try {
      await seedBlog(ca.db);
      await warmAll((p) => siteA.get(p));
      await warmAll((p) => siteB.get(p));
      await dbB.insertInto('comment').values({ body: 'from b', post_id: 1 }).execute();
      const missed = await expectNoStale((p) => siteA.get(p), appA);
      expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
      expect(missed).not.toContain('/about');
      expect(missed).not.toContain('/posts/2');
      await dbA.updateTable('post').set({ title: 'Anew' }).where('id', '=', 2).execute();
      expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
    } finally {
      await siteA.close();
      await siteB.close();
      await a.close();
      await b.close();
      await blog.drop();
    }
  });
});
