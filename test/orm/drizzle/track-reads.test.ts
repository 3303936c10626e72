/**
 * `drizzleDumper(dumper, db, { trackReads: true })` on SQLite, PostgreSQL and MariaDB, with no
 * table registered and no `dependentPaths()`: the blog's pages (a list with each post's author, detail
 * pages with relations, filtered pages, counts, relation pages through a link table, a page that
 * reads nothing, a lookup that finds nothing) are warmed, a write is made, and then every page
 * served is compared with a fresh render (none may be stale), the pages whose data changed must be
 * a MISS, and some others must still be a HIT (no test passes by invalidating everything).
 */
import { randomUUID } from 'node:crypto';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { drizzleDumper, drizzleSettled, keyTag, listTag, rowTag, tableTag, type DrizzleDumperOptions } from '../../../src/orm/drizzle/index.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { recordingLogger, Site } from '../../support/orm-site.js';
import { definedIf, needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll } from '../track-reads/check.js';
import { blogApp, openBlog, seedBlog, type BlogClient, type BlogDatabase } from './blog.js';
import { kinds, type AnyDb } from './support.js';

const targets = await kinds(needService);

describe.each(targets)('Drizzle trackReads on %s', (kind) => {
  let t: BlogDatabase;
  let client: BlogClient;
  let dumper: Dumper;
  let db: AnyDb;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    t = await openBlog(kind);
    client = t.client();
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function install(options: DrizzleDumperOptions = {}) {
    await site?.close();
    await dumper?.close();
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    db = drizzleDumper(dumper, client.db, { trackReads: true, ...options });
    app = blogApp(db, t.s, kind);
    site = await Site.start(dumper, () => client.queries(), (path) => app.handle(path));
  }

  beforeEach(async () => {
    await t.reset();
    await seedBlog(client.db, t.s);
    await install();
    await warmAll((p) => site.get(p));
  });
  afterEach(async () => {
    await site.close();
    await dumper.close();
  });

  const s = () => t.s;

  /** After a write: nothing stale, these pages rendered again, those still stored. */
  async function expectAfterWrite(miss: readonly string[], hit: readonly string[]) {
    if (kind === 'sqlite') await drizzleSettled(db);
    const missed = await expectNoStale((p) => site.get(p), app);
    for (const p of miss) expect(missed, `${p} should have been rendered again`).toContain(p);
    for (const p of hit) expect(missed, `${p} should still be stored`).not.toContain(p);
  }

  test('every page is stored, and a hit runs no query', async () => {
    for (const p of PAGES) expect((await site.get(p)).queries, p).toBe(0);
    expect(log.warnings).toEqual([]);
  });

  test('update of a row by primary key: its detail, relation, list and filtered pages', async () => {
    await db.update(s().posts).set({ title: 'Anew' }).where(eq(s().posts.id, 2));
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('insert of a child: the parent page that loaded its children and the counts', async () => {
    await db.insert(s().comments).values({ body: 'fine', postId: 2 });
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('update of a to-one row: the pages that loaded it through a relation', async () => {
    await db.update(s().authors).set({ name: 'Ada L.' }).where(eq(s().authors.id, 1));
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a link inserted in the link table: both sides', async () => {
    await db.insert(s().postTags).values({ postId: 1, tagId: 2 });
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/about']);
  });

  test('a link deleted: both sides', async () => {
    await db.delete(s().postTags).where(sql`${s().postTags.postId} = 3 and ${s().postTags.tagId} = 1`);
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a child by a predicate: its parent page and the counts', async () => {
    await db.delete(s().comments).where(eq(s().comments.body, 'nice'));
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('insert of the row a page looked up and did not find', async () => {
    await db.insert(s().posts).values({ id: 99, title: 'Late', authorId: 2 });
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    await db.update(s().comments).set({ postId: 2 }).where(eq(s().comments.body, 'great'));
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('an update by a SQL predicate: the rows it matched', async () => {
    await db.update(s().posts).set({ title: 'Ciao' }).where(sql`${s().posts.id} = 3`);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a parent whose children and links the database deletes (ON DELETE CASCADE)', async () => {
    await db.delete(s().posts).where(eq(s().posts.id, 1));
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2', '/tags/2']);
  });

  (kind === 'sqlite' ? test : () => undefined)('better-sqlite3: a synchronous delete (.run()) with cascades', async () => {
    db.delete(s().posts).where(eq(s().posts.id, 1)).run();
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts', '/posts/2', '/tags/2']);
  });

  test('cascades two levels deep: an author deleted takes its posts, their comments and links', async () => {
    await db.delete(s().authors).where(inArray(s().authors.id, [2]));
    // '/count' too: post 3 had no comment when the delete looked, but one added by another
    // connection before the delete ran would go with it, so the comments' list is invalidated.
    await expectAfterWrite(['/', '/authors/2/posts', '/tags/1', '/count'], ['/about', '/posts/1', '/posts/2', '/authors/1/posts', '/tags/2']);
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its table, not every page', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await db.update(s().comments).set({ body: 'fine' }).where(eq(s().comments.postId, 1));
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(log.warnings).toEqual([]);
  });

  test('a delete whose rows are unknown: also what its cascades reach', async () => {
    await install({ maxRows: 1 });
    await warmAll((p) => site.get(p));
    await db.delete(s().posts).where(eq(s().posts.authorId, 1));
    await expectAfterWrite(['/', '/count', '/tags/1', '/tags/2', '/posts/1', '/posts/2', '/authors/1/posts'], ['/about']);
  });

  test('a write of a registered table whose rows are unknown still invalidates every page', async () => {
    await install({ maxRows: 1 });
    dumper.register('tr_comment', { dependentPaths: () => [] });
    await warmAll((p) => site.get(p));
    await db.update(s().comments).set({ body: 'fine' }).where(eq(s().comments.postId, 1));
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toContain('/about');
    expect(log.warnings.join('\n')).toMatch(/invalidating every page/);
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    dumper.register('tr_author', { dependentPaths: () => ['/about'] });
    await db.update(s().authors).set({ name: 'Robert' }).where(eq(s().authors.id, 2));
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  // On SQLite the one connection the pages read through is the writer's: a page rendered inside the
  // transaction shows its write, so the case is the other dialects'.
  (kind === 'sqlite' ? () => undefined : test)('a page read inside a transaction is dropped again after the commit', async () => {
    await db.transaction(async (tx: AnyDb) => {
      await tx.update(s().posts).set({ title: 'Anew' }).where(eq(s().posts.id, 2));
      // The page reads through the pool, on another connection: the last commit, stored after the write's own invalidation.
      expect((await site.get('/posts/2')).body).toContain('Again');
    });
    await expectAfterWrite([], ['/posts/1', '/about']);
    expect((await site.get('/posts/2')).body).toContain('Anew');
  });

  test('a transaction: reads in it are tracked, its writes invalidated', async () => {
    const body =
      kind === 'sqlite'
        ? db.transaction((tx: AnyDb) => {
            const rows = tx.select().from(s().posts).where(eq(s().posts.id, 1)).all() as Array<{ title: string }>;
            tx.update(s().posts).set({ title: 'Ciao' }).where(eq(s().posts.id, 3)).run();
            return rows[0]!.title;
          })
        : await db.transaction(async (tx: AnyDb) => {
            const rows = (await tx.select().from(s().posts).where(eq(s().posts.id, 1))) as Array<{ title: string }>;
            await tx.update(s().posts).set({ title: 'Ciao' }).where(eq(s().posts.id, 3));
            return rows[0]!.title;
          });
    expect(body).toBe('Hello');
    await expectAfterWrite(['/', '/tags/1'], ['/posts/1', '/about']);
  });

  test('a raw write is not seen; invalidating its table tag by hand drops what pages read from it', async () => {
    const raw = sql`UPDATE tr_post SET title = 'Raw' WHERE id = 3`;
    await (kind === 'sqlite' ? db.run(raw) : db.execute(raw));
    expect((await site.get('/')).cache).toBe('HIT');
    await dumper.invalidateTags([tableTag('tr_post')]);
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts', '/posts/1'], ['/about', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the tables, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    await warmAll((p) => site.get(p));
    expect(log.warnings.some((w) => /drizzle: .*maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await db.update(s().posts).set({ title: 'Ciao' }).where(eq(s().posts.id, 3));
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await db.insert(s().comments).values({ body: 'fine', postId: 2 });
    await expectAfterWrite(['/posts/2', '/count'], ['/about']);
  });

  test('the tags a page carries: rows by primary key (found or not), keys, lists', async () => {
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...x: string[]) => {
      tags.push(...x);
      original(...x);
    };
    await dumper.invalidateAll();
    await site.get('/posts/99');
    expect(tags).toContain(rowTag('tr_post', { id: 99 }));
    expect(tags).not.toContain(listTag('tr_post'));
    tags.length = 0;
    await site.get('/posts/1');
    expect(tags).toEqual(expect.arrayContaining([rowTag('tr_post', { id: 1 }), rowTag('tr_author', { id: 1 }), keyTag('tr_comment', { post_id: 1 }), keyTag('tr_post_tag', { post_id: 1 }), rowTag('tr_tag', { id: 1 })]));
    expect(tags.filter((x) => x.startsWith('orm:list:'))).toEqual([]);
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/authors/1/posts');
    expect(tags).toContain(keyTag('tr_post', { author_id: 1 }));
    tags.length = 0;
    await site.get('/');
    expect(tags).toContain(listTag('tr_post'));
    expect(tags).toContain(tableTag('tr_post'));
    expect(tags).not.toContain(listTag('tr_author'));
  });

  test('a join, a subquery and a CTE tag the lists of every table they name', async () => {
    const pages: Record<string, () => Promise<string>> = {
      '/join': async () => JSON.stringify(await db.select({ t: s().posts.title, a: s().authors.name }).from(s().posts).innerJoin(s().authors, eq(s().authors.id, s().posts.authorId)).where(eq(s().posts.id, 1))),
      '/sub': async () => JSON.stringify(await db.select({ t: s().posts.title }).from(s().posts).where(inArray(s().posts.authorId, db.select({ id: s().authors.id }).from(s().authors).where(eq(s().authors.name, 'Bob'))))),
      '/cte': async () => {
        const named = db.$with('named').as(db.select({ id: s().authors.id }).from(s().authors).where(eq(s().authors.name, 'Bob')));
        return JSON.stringify(await db.with(named).select({ id: named.id }).from(named));
      },
      '/self': async () => JSON.stringify(await db.select({ t: s().posts.title, n: db.$count(s().posts) }).from(s().posts).where(eq(s().posts.id, 1))),
    };
    const extra = await Site.start(dumper, () => client.queries(), async (p) => ({ status: 200, body: await pages[p]!() }));
    try {
      await extra.warm(...Object.keys(pages));
      await db.update(s().authors).set({ name: 'Bob' }).where(eq(s().authors.id, 1));
      if (kind === 'sqlite') await drizzleSettled(db);
      await extra.expectMiss('/join', '/sub', '/cte');
      await extra.expectHit('/self');
      await db.insert(s().posts).values({ id: 7, title: 'New', authorId: 1 });
      if (kind === 'sqlite') await drizzleSettled(db);
      const self = await extra.expectMiss('/self');
      expect(self[0]!.body).toContain('"n":4');
    } finally {
      await extra.close();
    }
  });

  test('a write and a read awaited through catch() and finally() still invalidate and tag', async () => {
    const page = async () => JSON.stringify(await db.select().from(s().posts).where(eq(s().posts.authorId, 2)).catch(() => []));
    const extra = await Site.start(dumper, () => client.queries(), async () => ({ status: 200, body: await page() }));
    try {
      await extra.warm('/bob');
      await db.update(s().posts).set({ title: 'Ciao' }).where(eq(s().posts.id, 3)).catch(() => undefined);
      await db.update(s().authors).set({ name: 'Ada L.' }).where(eq(s().authors.id, 1)).finally(() => undefined);
      if (kind === 'sqlite') await drizzleSettled(db);
      await extra.expectMiss('/bob');
      await expectAfterWrite(['/', '/tags/1', '/posts/1'], ['/about', '/count']);
    } finally {
      await extra.close();
    }
  });

  test('a prepared read (a placeholder in its where) tags the list', async () => {
    const byId = db.select({ title: s().posts.title }).from(s().posts).where(eq(s().posts.id, sql.placeholder('id'))).prepare('tr_post_by_id');
    const extra = await Site.start(dumper, () => client.queries(), async () => ({ status: 200, body: JSON.stringify(await (kind === 'sqlite' ? byId.all({ id: 2 }) : byId.execute({ id: 2 }))) }));
    try {
      await extra.warm('/prepared');
      await db.update(s().posts).set({ title: 'Anew' }).where(eq(s().posts.id, 2));
      if (kind === 'sqlite') await drizzleSettled(db);
      const [after] = await extra.expectMiss('/prepared');
      expect(after!.body).toContain('Anew');
    } finally {
      await extra.close();
    }
  });

  test('a link read by its primary key is dropped when the link goes', async () => {
    const page = async () => JSON.stringify(await db.select().from(s().postTags).where(and(eq(s().postTags.postId, 1), eq(s().postTags.tagId, 1))));
    const extra = await Site.start(dumper, () => client.queries(), async () => ({ status: 200, body: await page() }));
    try {
      await extra.warm('/link');
      await db.delete(s().postTags).where(eq(s().postTags.postId, 1));
      if (kind === 'sqlite') await drizzleSettled(db);
      const [after] = await extra.expectMiss('/link');
      expect(after!.body).toBe('[]');
    } finally {
      await extra.close();
    }
  });

  test('key spelling: a key the database matches but spelled otherwise tags the list, never a stale page', async () => {
    const pages: Record<string, () => Promise<string>> = {
      // '01' finds post 1 (the database converts it), but is not the spelling rows come back with.
      '/zero': async () => JSON.stringify(await db.select({ t: s().posts.title }).from(s().posts).where(eq(s().posts.id, '01' as never))),
      // MariaDB compares strings by collation: 'ADA ' finds 'ada'.
      '/setting': async () => JSON.stringify(await db.select().from(s().settings).where(eq(s().settings.key, 'ADA '))),
      '/setting-exact': async () => JSON.stringify(await db.select().from(s().settings).where(eq(s().settings.key, 'ada'))),
    };
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...x: string[]) => {
      tags.push(...x);
      original(...x);
    };
    const extra = await Site.start(dumper, () => client.queries(), async (p) => ({ status: 200, body: await pages[p]!() }));
    try {
      await extra.warm(...Object.keys(pages));
      expect(tags).not.toContain(rowTag('tr_post', { id: '01' }));
      expect(tags).toContain(listTag('tr_post'));
      if (kind === 'mariadb') expect(tags).not.toContain(rowTag('tr_setting', { key: 'ada' }));
      else expect(tags).toContain(rowTag('tr_setting', { key: 'ada' }));
      await db.update(s().posts).set({ title: 'Hi' }).where(eq(s().posts.id, 1));
      await db.update(s().settings).set({ value: 'byron' }).where(eq(s().settings.key, 'ada'));
      if (kind === 'sqlite') await drizzleSettled(db);
      for (const [path, render] of Object.entries(pages)) expect((await extra.get(path)).body, path).toBe(await render());
      expect((await extra.get('/zero')).body).toContain('Hi');
    } finally {
      await extra.close();
    }
  });

  test('options are checked', () => {
    expect(() => drizzleDumper(dumper, client.db, { trackReads: 1 as never })).toThrow(new TypeError('page-dumper: drizzleDumper() option "trackReads" must be a boolean, got number'));
    expect(() => drizzleDumper(dumper, client.db, { trackReads: true, maxTagsPerPage: 0 })).toThrow(
      new TypeError('page-dumper: drizzleDumper() option "maxTagsPerPage" must be a positive integer, got 0'),
    );
    expect(() => drizzleDumper(dumper, client.db, { maxTagsPerPage: 10 })).toThrow(new TypeError('page-dumper: drizzleDumper() option "maxTagsPerPage" needs trackReads: true'));
  });
});

const hasRedis = await needService('redis');

definedIf(hasRedis, describe)('Drizzle trackReads across processes (RedisStore)', () => {
  test.each(targets)('on %s: a write through one dumper invalidates the pages another one stored', async (kind) => {
    {
      const t = await openBlog(kind);
      const prefix = `tr:${randomUUID().slice(0, 8)}:`;
      // Two processes: each its own connection(s) and its own dumper, on one Redis.
      const ca = t.client();
      const cb = t.client();
      const a = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
      const b = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
      const dbA = drizzleDumper(a, ca.db, { trackReads: true });
      const dbB = drizzleDumper(b, cb.db, { trackReads: true });
      const appA = blogApp(dbA, t.s, kind);
      const appB = blogApp(dbB, t.s, kind);
      const siteA = await Site.start(a, () => ca.queries(), (p) => appA.handle(p));
      const siteB = await Site.start(b, () => cb.queries(), (p) => appB.handle(p));
      try {
        await seedBlog(ca.db, t.s);
        await warmAll((p) => siteA.get(p));
        await warmAll((p) => siteB.get(p));
        await dbB.insert(t.s.comments).values({ body: 'from b', postId: 1 });
        if (kind === 'sqlite') await drizzleSettled(dbB);
        const missed = await expectNoStale((p) => siteA.get(p), appA);
        expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
        expect(missed).not.toContain('/about');
        expect(missed).not.toContain('/posts/2');
        await dbA.update(t.s.posts).set({ title: 'Anew' }).where(eq(t.s.posts.id, 2));
        if (kind === 'sqlite') await drizzleSettled(dbA);
        expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
      } finally {
        await siteA.close();
        await siteB.close();
        await a.close();
        await b.close();
        await t.drop();
      }
    }
  });
});
