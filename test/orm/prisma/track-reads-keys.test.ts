/**
 * `prismaDumper(dumper, { trackReads: true })` on SQLite, PostgreSQL and MariaDB: reads whose
 * tags are easy to get wrong. Each page is warmed, a write is made through the extended client,
 * and every page is then compared with a fresh render (none may be stale); the pages the write
 * changed must be a MISS, and a page it did not touch must still be a HIT.
 *
 * - Keys a `where` spells otherwise than the database stores them: a String that MariaDB compares
 *   ignoring case and trailing spaces, a DateTime as an ISO string, a Decimal as a string, a
 *   BigInt as a number.
 * - Fluent calls (`findUnique(...).author()`): the answer is the related rows.
 * - Deletes that the database cascades over two levels (author → post → comment, and the posts'
 *   links to tags).
 */
import http from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { withDumper } from '../../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../../src/index.js';
import { prismaDumper } from '../../../src/orm/prisma/index.js';
import { listen } from '../../support/listen.js';
import { needService } from '../../support/services.js';
import { expectNoStale, warmAll, type BlogApp, type Served } from '../track-reads/check.js';
import { openDatabase, type Client, type Provider, type TestDatabase } from './support.js';

const providers: Provider[] = ['sqlite'];
if (await needService('postgres')) providers.push('postgresql');
if (await needService('mariadb')) providers.push('mysql');

const names = (rows: { name: string }[]) => rows.map((r) => r.name).sort().join(',');

/** The pages, by path, each read through `db`. */
function pages(db: Client): Record<string, () => Promise<string>> {
  const found = (row: { name: string } | null) => (row === null ? 'none' : `found ${row.name}`);
  return {
    '/about': async () => 'about',
    // Keys.
    '/simple/Hello': async () => found(await db.simple.findUnique({ where: { slug: 'Hello' } })),
    '/simple/padded': async () => found(await db.simple.findUnique({ where: { slug: 'hello ' } })),
    '/simple/other': async () => found(await db.simple.findUnique({ where: { slug: 'other' } })),
    '/keyed/at': async () => found(await db.blogKeyed.findUnique({ where: { at: '2024-01-01T00:00:00Z' } })),
    '/keyed/price': async () => found(await db.blogKeyed.findUnique({ where: { price: '1.50' } })),
    '/keyed/id': async () => found(await db.blogKeyed.findUnique({ where: { id: 5 } })),
    // Fluent calls.
    '/fluent/author': async () => String((await db.blogPost.findUnique({ where: { id: 1 } }).author())?.name),
    '/fluent/author-name': async () => String((await db.blogPost.findUnique({ where: { id: 1 } }).author({ select: { name: true } }))?.name),
    '/fluent/tags': async () => names((await db.blogPost.findUnique({ where: { id: 1 } }).tags()) ?? []),
    '/fluent/tags-named': async () => names((await db.blogPost.findUnique({ where: { id: 1 } }).tags({ where: { name: { startsWith: 'n' } } })) ?? []),
    '/included/tags-named': async () => names((await db.blogPost.findUnique({ where: { id: 1 }, include: { tags: { where: { name: { startsWith: 'n' } } } } }))?.tags ?? []),
    '/fluent/comments': async () =>
      ((await db.blogPost.findFirst({ where: { title: 'Hello' } }).comments({ orderBy: { id: 'asc' } })) ?? []).map((c) => c.body).join(','),
    '/fluent/comments-by-id': async () => ((await db.blogPost.findUnique({ where: { id: 1 } }).comments({ orderBy: { id: 'asc' } })) ?? []).map((c) => c.body).join(','),
    '/fluent/comment-author': async () => String((await db.blogComment.findFirst({ where: { body: 'nice' } }).post().author())?.name),
    // What a cascade reaches.
    '/keyed-child/1': async () => String((await db.blogKeyedChild.findUnique({ where: { id: 1 } }))?.keyedAt.toISOString()),
    '/comments/post/1': async () => (await db.blogComment.findMany({ where: { postId: 1 }, orderBy: { id: 'asc' } })).map((c) => c.body).join(','),
    '/count': async () => `comments: ${await db.blogComment.count()}`,
    '/tag-count/1': async () => String((await db.blogTag.findUnique({ where: { id: 1 }, select: { _count: { select: { posts: true } } } }))?._count.posts),
    '/authors/2': async () => found(await db.blogAuthor.findUnique({ where: { id: 2 } })),
    '/authors/3/posts': async () => (await db.blogPost.findMany({ where: { authorId: 3 }, orderBy: { id: 'asc' } })).map((p) => p.title).join(','),
  };
}

const PATHS = Object.keys(pages(undefined as unknown as Client));

async function seed(prisma: Client) {
  await prisma.simple.create({ data: { id: 1, slug: 'other', name: 'Other' } });
  await prisma.blogAuthor.createMany({
    data: [
      { id: 1, name: 'Ada' },
      { id: 2, name: 'Bob' },
      { id: 3, name: 'Cy' },
    ],
  });
  await prisma.blogTag.createMany({
    data: [
      { id: 1, name: 'news' },
      { id: 2, name: 'misc' },
    ],
  });
  await prisma.blogPost.create({ data: { id: 1, title: 'Hello', authorId: 1, tags: { connect: [{ id: 1 }] } } });
  await prisma.blogPost.create({ data: { id: 2, title: 'Bye', authorId: 2, tags: { connect: [{ id: 1 }, { id: 2 }] } } });
  await prisma.blogPost.create({ data: { id: 3, title: 'Third', authorId: 1 } });
  // Ids unlike the posts': a comment taken for a post would name another one.
  await prisma.blogComment.createMany({
    data: [
      { id: 11, body: 'nice', postId: 1 },
      { id: 12, body: 'great', postId: 1 },
      { id: 13, body: 'ok', postId: 2 },
    ],
  });
}

describe.each(providers)('prismaDumper trackReads: keys, fluent calls and cascades (%s)', (provider) => {
  let db: TestDatabase;
  let base: Client;
  let dumper: Dumper;
  let prisma: Client;
  let app: BlogApp;
  let server: Awaited<ReturnType<typeof listen>>;
  const get = async (path: string): Promise<Served> => {
    const res = await fetch(server.url + path);
    return { cache: res.headers.get('x-cache'), body: await res.text() };
  };

  beforeAll(async () => {
    db = await openDatabase(provider);
    base = db.client().prisma;
  });
  afterAll(async () => {
    await db?.drop();
  });

  beforeEach(async () => {
    await db.reset();
    await seed(base);
    dumper = createDumper({ logger: false });
    // The extended client keeps every method of the client: typed as the client for the pages.
    prisma = base.$extends(prismaDumper(dumper, { trackReads: true })) as unknown as Client;
    const byPath = pages(prisma);
    app = { render: (path) => byPath[path]!() };
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
    server = await listen(withDumper(dumper, listener));
    await warmAll(get, PATHS);
  });
  afterEach(async () => {
    await server.close();
    await dumper.close();
  });

  async function expectAfterWrite(miss: readonly string[], hit: readonly string[] = ['/about']) {
    const missed = await expectNoStale(get, app, PATHS);
    for (const p of miss) expect(missed, `${p} should have been rendered again`).toContain(p);
    for (const p of hit) expect(missed, `${p} should still be stored`).not.toContain(p);
  }

  // ---------------------------------------------------------------- keys

  test('a String key the database compares otherwise than spelled: a row created with it', async () => {
    await prisma.simple.create({ data: { id: 2, slug: 'hello', name: 'Hi' } });
    // MariaDB's default collation finds 'hello' for 'Hello' and for 'hello '.
    await expectAfterWrite(provider === 'mysql' ? ['/simple/Hello', '/simple/padded'] : [], ['/about', '/fluent/author', '/count']);
    if (provider === 'mysql') expect((await get('/simple/Hello')).body).toBe('found Hi');
  });

  test('a String key the database compares otherwise than spelled: the row found is updated', async () => {
    await base.simple.create({ data: { id: 2, slug: 'hello', name: 'Hi' } });
    await dumper.invalidateAll();
    await warmAll(get, PATHS);
    expect((await get('/simple/Hello')).body).toBe(provider === 'mysql' ? 'found Hi' : 'none');
    await prisma.simple.update({ where: { id: 2 }, data: { name: 'Hey' } });
    await expectAfterWrite(provider === 'mysql' ? ['/simple/Hello', '/simple/padded'] : []);
  });

  test('a String key spelled as stored keeps its key tag where the database compares as spelled', async () => {
    await prisma.simple.create({ data: { id: 2, slug: 'hello', name: 'Hi' } });
    // Not a list on PostgreSQL and SQLite: a write of another row leaves the page.
    if (provider !== 'mysql') await expectAfterWrite([], ['/simple/other', '/about']);
    else await expectAfterWrite([]);
  });

  test('a DateTime and a Decimal key spelled as strings, and a BigInt key as a number: rows created with them', async () => {
    await prisma.blogKeyed.create({ data: { id: 5n, at: new Date('2024-01-01T00:00:00.000Z'), price: '1.5', name: 'K' } });
    await expectAfterWrite(['/keyed/at', '/keyed/price', '/keyed/id'], ['/about', '/simple/other', '/count']);
    expect((await get('/keyed/at')).body).toBe('found K');
    expect((await get('/keyed/price')).body).toBe('found K');
  });

  test('a DateTime and a Decimal key spelled as strings: the row found is updated, then deleted', async () => {
    await base.blogKeyed.create({ data: { id: 5n, at: new Date('2024-01-01T00:00:00.000Z'), price: '1.5', name: 'K' } });
    await dumper.invalidateAll();
    await warmAll(get, PATHS);
    expect((await get('/keyed/price')).body).toBe('found K');
    await prisma.blogKeyed.update({ where: { id: 5n }, data: { name: 'L' } });
    await expectAfterWrite(['/keyed/at', '/keyed/price', '/keyed/id']);
    await prisma.blogKeyed.delete({ where: { id: 5n } });
    await expectAfterWrite(['/keyed/at', '/keyed/price', '/keyed/id']);
  });

  // ---------------------------------------------------------------- fluent calls

  test('fluent to-one: the related row is updated', async () => {
    await prisma.blogAuthor.update({ where: { id: 1 }, data: { name: 'Ada L.' } });
    await expectAfterWrite(['/fluent/author', '/fluent/author-name', '/fluent/comment-author'], ['/about', '/fluent/tags', '/count']);
  });

  test('fluent to-one: the root row points elsewhere', async () => {
    await prisma.blogPost.update({ where: { id: 1 }, data: { authorId: 2 } });
    await expectAfterWrite(['/fluent/author', '/fluent/author-name', '/fluent/comment-author']);
  });

  test('fluent two steps: the row in the middle points elsewhere, then the first row does', async () => {
    await prisma.blogPost.update({ where: { id: 1 }, data: { authorId: 2 } });
    await expectAfterWrite(['/fluent/comment-author']);
    await prisma.blogComment.update({ where: { id: 11 }, data: { postId: 3 } });
    await expectAfterWrite(['/fluent/comment-author', '/fluent/comments', '/fluent/comments-by-id']);
  });

  test('fluent to-many: a child is added to the root row found by a filter and by id', async () => {
    await prisma.blogComment.create({ data: { id: 14, body: 'more', postId: 1 } });
    await expectAfterWrite(['/fluent/comments', '/fluent/comments-by-id', '/count'], ['/about', '/fluent/author']);
  });

  test('fluent to-many: a child is updated', async () => {
    await prisma.blogComment.update({ where: { id: 12 }, data: { body: 'good' } });
    await expectAfterWrite(['/fluent/comments', '/fluent/comments-by-id'], ['/about', '/fluent/author']);
  });

  test('fluent many-to-many: a related row is renamed, and a link is added', async () => {
    await prisma.blogTag.update({ where: { id: 1 }, data: { name: 'headlines' } });
    await expectAfterWrite(['/fluent/tags', '/fluent/tags-named'], ['/about', '/fluent/author']);
    await prisma.blogPost.update({ where: { id: 1 }, data: { tags: { connect: { id: 2 } } } });
    await expectAfterWrite(['/fluent/tags'], ['/about', '/fluent/author']);
  });

  test('many-to-many with a filter (fluent and included): a linked row not shown comes into it', async () => {
    await prisma.blogPost.update({ where: { id: 1 }, data: { tags: { connect: { id: 2 } } } });
    await warmAll(get, PATHS);
    await prisma.blogTag.update({ where: { id: 2 }, data: { name: 'notes' } });
    await expectAfterWrite(['/fluent/tags-named', '/included/tags-named']);
    expect((await get('/fluent/tags-named')).body).toBe('news,notes');
    expect((await get('/included/tags-named')).body).toBe('news,notes');
  });

  test('a fluent write: the written row is invalidated as it is after the write', async () => {
    // The answer is author 3; post 3 is not the one written.
    const author = await prisma.blogPost.update({ where: { id: 1 }, data: { authorId: 3 } }).author();
    expect(author?.name).toBe('Cy');
    await expectAfterWrite(['/fluent/author', '/fluent/comment-author', '/authors/3/posts'], ['/about']);
    expect((await get('/authors/3/posts')).body).toBe('Hello');
    await prisma.blogPost.update({ where: { id: 1 }, data: { title: 'Hi' } }).comments();
    await expectAfterWrite(['/fluent/comments'], ['/about']);
  });

  test('a fluent create whose data sets no unique field: everything read from its models', async () => {
    const post = await prisma.blogComment.create({ data: { body: 'new', postId: 1 } }).post();
    expect(post?.title).toBe('Hello');
    await expectAfterWrite(['/count', '/fluent/comments', '/fluent/comments-by-id'], ['/about', '/simple/other']);
  });

  // ---------------------------------------------------------------- cascades

  test('a primary key changed: the rows the database moves with it (onUpdate: Cascade)', async () => {
    await prisma.blogPost.update({ where: { id: 1 }, data: { id: 10 } });
    await expectAfterWrite(['/comments/post/1', '/fluent/comments-by-id'], ['/about', '/simple/other', '/authors/2']);
    expect((await get('/comments/post/1')).body).toBe('');
  });

  test('a unique field other rows point at changed: the rows the database moves with it (onUpdate: Cascade)', async () => {
    await base.blogKeyed.create({ data: { id: 5n, at: new Date('2024-01-01T00:00:00.000Z'), price: '1.5', name: 'K', children: { create: { id: 1 } } } });
    await dumper.invalidateAll();
    await warmAll(get, PATHS);
    await prisma.blogKeyed.update({ where: { id: 5n }, data: { at: new Date('2025-01-01T00:00:00.000Z') } });
    await expectAfterWrite(['/keyed-child/1', '/keyed/at'], ['/about', '/simple/other', '/count']);
    expect((await get('/keyed-child/1')).body).toBe('2025-01-01T00:00:00.000Z');
  });

  test('a delete the database cascades over two levels, with the links of the rows it deletes', async () => {
    await prisma.blogAuthor.delete({ where: { id: 1 } });
    await expectAfterWrite(['/count', '/tag-count/1', '/fluent/comments', '/fluent/author'], ['/about', '/simple/other', '/authors/2']);
    expect((await get('/count')).body).toBe('comments: 1');
    expect((await get('/tag-count/1')).body).toBe('1');
  });

  test('deleteMany the database cascades over two levels', async () => {
    await prisma.blogAuthor.deleteMany({ where: { name: 'Ada' } });
    await expectAfterWrite(['/count', '/tag-count/1'], ['/about', '/simple/other']);
  });
});
