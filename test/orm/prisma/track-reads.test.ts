/**
 * `prismaDumper(dumper, { trackReads: true })` on SQLite, PostgreSQL and MariaDB, with no model
 * registered: the blog's pages (a list, detail pages with relations, filtered pages, counts,
 * relation pages, a page that reads nothing, a lookup that finds nothing) are warmed, a write is
 * made through the extended client, and then every page served is compared with a fresh render
 * (none may be stale), the pages whose data changed must be a MISS, and some others must still be
 * a HIT (no test passes by invalidating everything).
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { withDumper } from '../../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../../src/index.js';
import { prismaDumper, type PrismaDumperOptions } from '../../../src/orm/prisma/index.js';
import { listTag, rowTag } from '../../../src/orm/reads.js';
import { RedisStore } from '../../../src/stores/redis/index.js';
import { listen } from '../../support/listen.js';
import { definedIf, needService } from '../../support/services.js';
import { expectNoStale, PAGES, warmAll, type BlogApp, type Served } from '../track-reads/check.js';
import { openDatabase, type Client, type Provider, type TestDatabase } from './support.js';

const providers: Provider[] = ['sqlite'];
if (await needService('postgres')) providers.push('postgresql');
if (await needService('mariadb')) providers.push('mysql');

type Extended = ReturnType<typeof extend>;
function extend(prisma: Client, dumper: Dumper, options: PrismaDumperOptions = {}) {
  return prisma.$extends(prismaDumper(dumper, { trackReads: true, ...options }));
}

const byId = <T extends { id: number }>(rows: T[]) => [...rows].sort((a, b) => a.id - b.id);

/** The blog's pages (see ../track-reads/check.ts), read through `prisma`. */
function blogApp(prisma: Client | Extended): BlogApp {
  const db = prisma as Client;
  return {
    async render(path) {
      let m: RegExpExecArray | null;
      if (path === '/') {
        const all = await db.blogPost.findMany({ include: { author: true }, orderBy: { id: 'asc' } });
        return all.map((p) => `${p.id}:${p.title} by ${p.author.name}`).join('\n');
      }
      if ((m = /^\/posts\/(\d+)$/.exec(path))) {
        const p = await db.blogPost.findUnique({ where: { id: Number(m[1]) }, include: { author: true, tags: true, comments: true } });
        if (p === null) return 'no such post';
        return [
          `${p.title} by ${p.author.name}`,
          `tags: ${byId(p.tags).map((t) => t.name).join(',')}`,
          `comments: ${byId(p.comments).map((c) => c.body).join(',')}`,
        ].join('\n');
      }
      if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
        const list = await db.blogPost.findMany({ where: { authorId: Number(m[1]) }, orderBy: { id: 'asc' } });
        return `posts: ${list.map((p) => p.title).join(',')}`;
      }
      if ((m = /^\/titled\/([a-z])$/.exec(path))) {
        const list = await db.blogPost.findMany({ where: { title: { contains: m[1]! } }, orderBy: { id: 'asc' } });
        return `titled: ${list.map((p) => p.title).join(',')}`;
      }
      if (path === '/count') {
        const all = await db.blogComment.count();
        const first = await db.blogComment.count({ where: { postId: 1 } });
        return `comments: ${all}, on post 1: ${first}`;
      }
      if ((m = /^\/tags\/(\d+)$/.exec(path))) {
        const t = await db.blogTag.findUnique({ where: { id: Number(m[1]) }, include: { posts: true, _count: { select: { posts: true } } } });
        if (t === null) return 'no such tag';
        return `${t.name} (${t._count.posts}): ${byId(t.posts).map((p) => p.title).join(',')}`;
      }
      if (path === '/about') return 'about this blog';
      throw new Error(`no page ${path}`);
    },
  };
}

async function seedBlog(prisma: Client) {
  await prisma.blogAuthor.createMany({
    data: [
      { id: 1, name: 'Ada' },
      { id: 2, name: 'Bob' },
    ],
  });
  await prisma.blogTag.createMany({
    data: [
      { id: 1, name: 'news' },
      { id: 2, name: 'misc' },
    ],
  });
  await prisma.blogPost.create({ data: { id: 1, title: 'Hello', authorId: 1, tags: { connect: [{ id: 1 }] } } });
  await prisma.blogPost.create({ data: { id: 2, title: 'Again', authorId: 1, tags: { connect: [{ id: 2 }] } } });
  await prisma.blogPost.create({ data: { id: 3, title: 'Bye', authorId: 2, tags: { connect: [{ id: 1 }] } } });
  await prisma.blogComment.createMany({
    data: [
      { body: 'nice', postId: 1 },
      { body: 'great', postId: 1 },
      { body: 'ok', postId: 2 },
    ],
  });
}

/** The site: every page rendered by `app` through the dumper. */
async function serve(dumper: Dumper, app: BlogApp) {
  const listener: http.RequestListener = (req, res) => {
    app.render(new URL(req.url ?? '/', 'http://x').pathname).then(
      (body) => {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(body);
      },
      (error: Error) => {
        res.writeHead(500);
        res.end(error.stack);
      },
    );
  };
  const server = await listen(withDumper(dumper, listener));
  return {
    async get(path: string): Promise<Served> {
      const res = await fetch(server.url + path);
      return { cache: res.headers.get('x-cache'), body: await res.text() };
    },
    close: () => server.close(),
  };
}

describe.each(providers)('prismaDumper trackReads (%s)', (provider) => {
  let db: TestDatabase;
  let base: Client;
  let dumper: Dumper;
  let prisma: Extended;
  let site: Awaited<ReturnType<typeof serve>>;
  let app: BlogApp;
  let warnings: string[];

  beforeAll(async () => {
    db = await openDatabase(provider);
    base = db.client().prisma;
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function install(options: PrismaDumperOptions = {}) {
    await site?.close();
    await dumper?.close();
    warnings = [];
    dumper = createDumper({ logger: { debug() {}, warn: (message: string) => void warnings.push(message) } });
    prisma = extend(base, dumper, options);
    app = blogApp(prisma);
    site = await serve(dumper, app);
    await warmAll((p) => site.get(p));
  }

  beforeEach(async () => {
    await db.reset();
    await seedBlog(base);
    await install();
  });
  afterEach(async () => {
    await site.close();
    await dumper.close();
  });

  async function expectAfterWrite(miss: readonly string[], hit: readonly string[]) {
    const missed = await expectNoStale((p) => site.get(p), app);
    for (const p of miss) expect(missed, `${p} should have been rendered again`).toContain(p);
    for (const p of hit) expect(missed, `${p} should still be stored`).not.toContain(p);
  }

  test('every page is stored', async () => {
    for (const p of PAGES) expect((await site.get(p)).cache, p).toBe('HIT');
    expect(warnings).toEqual([]);
  });

  test('update of a row: its detail, relation, list and filtered pages', async () => {
    await prisma.blogPost.update({ where: { id: 2 }, data: { title: 'Anew' } });
    await expectAfterWrite(['/', '/posts/2', '/authors/1/posts', '/titled/a', '/tags/2'], ['/posts/1', '/posts/99', '/authors/2/posts', '/count', '/tags/1', '/about']);
  });

  test('create of a child: the parent page that included its children and the counts', async () => {
    await prisma.blogComment.create({ data: { body: 'fine', postId: 2 } });
    await expectAfterWrite(['/posts/2', '/count'], ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']);
  });

  test('update of a to-one row: the pages that included it', async () => {
    await prisma.blogAuthor.update({ where: { id: 1 }, data: { name: 'Ada L.' } });
    await expectAfterWrite(['/', '/posts/1', '/posts/2'], ['/authors/1/posts', '/count', '/tags/1', '/about']);
  });

  test('a many-to-many link connected: both sides', async () => {
    await prisma.blogPost.update({ where: { id: 1 }, data: { tags: { connect: { id: 2 } } } });
    await expectAfterWrite(['/posts/1', '/tags/2'], ['/', '/posts/2', '/count', '/authors/1/posts', '/about']);
  });

  test('a many-to-many link disconnected from the other side: both sides', async () => {
    await prisma.blogTag.update({ where: { id: 1 }, data: { posts: { disconnect: { id: 3 } } } });
    await expectAfterWrite(['/tags/1'], ['/', '/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a child: its parent page and the counts', async () => {
    const nice = await base.blogComment.findFirstOrThrow({ where: { body: 'nice' } });
    await prisma.blogComment.delete({ where: { id: nice.id } });
    await expectAfterWrite(['/posts/1', '/count'], ['/', '/posts/2', '/tags/1', '/about']);
  });

  test('create of the row a page looked up and did not find', async () => {
    await prisma.blogPost.create({ data: { id: 99, title: 'Late', authorId: 2 } });
    await expectAfterWrite(['/posts/99', '/', '/authors/2/posts', '/titled/a'], ['/posts/1', '/count', '/tags/1', '/about']);
  });

  test('a foreign key moved: the pages of the old and of the new parent', async () => {
    const great = await base.blogComment.findFirstOrThrow({ where: { body: 'great' } });
    await prisma.blogComment.update({ where: { id: great.id }, data: { postId: 2 } });
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/tags/1', '/authors/1/posts', '/about']);
  });

  test('updateMany by a filter: the rows it matched', async () => {
    await prisma.blogPost.updateMany({ where: { title: 'Bye' }, data: { title: 'Ciao' } });
    await expectAfterWrite(['/', '/tags/1', '/authors/2/posts'], ['/posts/1', '/posts/2', '/count', '/about']);
  });

  test('delete of a parent whose children and links the database deletes (onDelete: Cascade)', async () => {
    await prisma.blogPost.delete({ where: { id: 1 } });
    await expectAfterWrite(['/posts/1', '/count', '/', '/tags/1', '/authors/1/posts'], ['/about', '/authors/2/posts']);
  });

  test('a write whose rows are unknown (more than maxRows): everything read from its model', async () => {
    await install({ maxRows: 1 });
    await prisma.blogComment.updateMany({ where: { body: { not: 'zzz' } }, data: { body: 'same' } });
    await expectAfterWrite(['/posts/1', '/posts/2', '/count'], ['/', '/authors/1/posts', '/titled/a', '/tags/1', '/about']);
    expect(warnings).toEqual([]);
  });

  test('an interactive transaction: a page read during it is dropped again after the commit', async () => {
    await prisma.$transaction(async (tx) => {
      await tx.blogPost.update({ where: { id: 2 }, data: { title: 'Anew' } });
      // Another connection reads the last commit (SQLite in WAL mode too), and the page is stored
      // after the write's own invalidation.
      await site.get('/posts/2');
    });
    await expectAfterWrite([], ['/posts/1', '/about']);
    expect((await site.get('/posts/2')).body).toContain('Anew');
  });

  test('a batch transaction: its writes invalidate once it has committed', async () => {
    await prisma.$transaction([prisma.blogComment.create({ data: { body: 'fine', postId: 2 } }), prisma.blogAuthor.update({ where: { id: 2 }, data: { name: 'Robert' } })]);
    await expectAfterWrite(['/posts/2', '/count', '/'], ['/posts/1', '/about']);
  });

  test('register() and dependentPaths keep working beside trackReads', async () => {
    dumper.register('BlogAuthor', { dependentPaths: () => ['/about'] });
    await prisma.blogAuthor.update({ where: { id: 2 }, data: { name: 'Robert' } });
    await expectAfterWrite(['/about', '/'], ['/posts/1', '/count']);
  });

  test('maxTagsPerPage: past it a page is tagged with the models, and says so in the log', async () => {
    await install({ maxTagsPerPage: 3 });
    expect(warnings.some((w) => /maxTagsPerPage \(3\)/.test(w))).toBe(true);
    await prisma.blogPost.update({ where: { id: 3 }, data: { title: 'Ciao' } });
    await expectAfterWrite(['/tags/1', '/'], ['/about']);
    await prisma.blogComment.create({ data: { body: 'fine', postId: 2 } });
    await expectAfterWrite(['/posts/2', '/count'], ['/about']);
  });

  test('the tags a page carries: rows by primary key (found or not), models for lists', async () => {
    const tags: string[] = [];
    const original = dumper.tag.bind(dumper);
    dumper.tag = (...t: string[]) => {
      tags.push(...t);
      original(...t);
    };
    await dumper.invalidateAll();
    await site.get('/posts/99');
    expect(tags).toContain(rowTag('BlogPost', { id: 99 }));
    expect(tags).not.toContain(listTag('BlogPost'));
    tags.length = 0;
    await site.get('/about');
    expect(tags).toEqual([]);
    await site.get('/');
    expect(tags).toContain(listTag('BlogPost'));
  });

  test('options are checked', () => {
    expect(() => prismaDumper(dumper, { trackReads: 'yes' as never })).toThrow(new TypeError('page-dumper: prismaDumper() option "trackReads" must be a boolean, got string'));
    expect(() => prismaDumper(dumper, { trackReads: true, maxTagsPerPage: 1.5 })).toThrow(
      new TypeError('page-dumper: prismaDumper() option "maxTagsPerPage" must be a positive integer, got 1.5'),
    );
  });
});

const hasRedis = await needService('redis');

definedIf(hasRedis && providers.includes('postgresql'), describe)('prismaDumper trackReads across processes (RedisStore, PostgreSQL)', () => {
  test('a write through one dumper invalidates the pages another one stored', async () => {
    const db = await openDatabase('postgresql');
    const prefix = `tr:${randomUUID().slice(0, 8)}:`;
    // A generous command timeout: a store read that times out on a busy machine is a MISS, not a failure to test here.
    const a = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    const b = createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix, commandTimeout: 5000 }) });
    // Two processes: each its own client (own connections) extended for its own dumper.
    const clientA = extend(db.client().prisma, a);
    const clientB = extend(db.client().prisma, b);
    const appA = blogApp(clientA);
    const appB = blogApp(clientB);
    const siteA = await serve(a, appA);
    const siteB = await serve(b, appB);
    try {
      await seedBlog(db.client().prisma);
      await warmAll((p) => siteA.get(p));
      await warmAll((p) => siteB.get(p));
      await clientB.blogComment.create({ data: { body: 'from b', postId: 1 } });
      const missed = await expectNoStale((p) => siteA.get(p), appA);
      expect(missed).toEqual(expect.arrayContaining(['/posts/1', '/count']));
      expect(missed).not.toContain('/about');
      expect(missed).not.toContain('/posts/2');
      await clientA.blogPost.update({ where: { id: 2 }, data: { title: 'Anew' } });
      expect(await expectNoStale((p) => siteB.get(p), appB)).toEqual(expect.arrayContaining(['/posts/2', '/']));
    } finally {
      await siteA.close();
      await siteB.close();
      await a.close();
      await b.close();
      await db.drop();
    }
  });
});
