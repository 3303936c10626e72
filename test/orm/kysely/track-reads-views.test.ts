/**
 * `kyselyDumper(dumper, db, { trackReads: true })` and database views, on SQLite, PostgreSQL and
 * MariaDB: a write never names the view, so a read of one must be dropped by writes of the tables
 * under it (through a view of a view, a subquery, a streamed read, and on PostgreSQL and MariaDB a
 * function that reads a table), and only by those where they can be told.
 */
import type { Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { Site } from '../../support/orm-site.js';
import { openBlog, seedBlog, type BlogDatabase, type BlogDB } from './blog.js';
import { dialects } from './support.js';

type DB = BlogDB & {
  post_title: { id: number; title: string };
  post_stats: { id: number; title: string; comments: number | string };
  tag_total: { n: number | string };
};

const targets = await dialects();

describe.each(targets)('Kysely trackReads of database views on %s', (dialect) => {
  let blog: BlogDatabase;
  let dumper: Dumper;
  let db: Kysely<DB>;
  let site: Site;
  let statements: () => number;

  const render = async (path: string): Promise<string> => {
    switch (path) {
      case '/titles':
        return (await db.selectFrom('post_title').select(['id', 'title']).orderBy('id').execute()).map((r) => `${r.id}:${r.title}`).join(',');
      case '/stats':
        return (await db.selectFrom('post_stats').select(['id', 'comments']).orderBy('id').execute()).map((r) => `${r.id}:${String(r.comments)}`).join(',');
      case '/streamed': {
        const out: string[] = [];
        for await (const r of db.selectFrom('post_title').select(['id', 'title']).orderBy('id').stream()) out.push(`${r.id}:${r.title}`);
        return out.join(',');
      }
      case '/tag-total':
        return String((await db.selectFrom('tag_total').select('n').executeTakeFirstOrThrow()).n);
      default:
        throw new Error(`no page ${path}`);
    }
  };

  beforeAll(async () => {
    blog = await openBlog(dialect);
    await blog.exec('CREATE VIEW post_title AS SELECT id, title FROM post');
    // A view of a view, with a subquery of another table.
    await blog.exec('CREATE VIEW post_stats AS SELECT t.id, t.title, (SELECT COUNT(*) FROM comment c WHERE c.post_id = t.id) AS comments FROM post_title t');
    // A view whose table is read by a function: which tables it reads is not in the catalog.
    if (dialect === 'postgres') {
      await blog.exec("CREATE FUNCTION tag_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM tag'");
      await blog.exec('CREATE VIEW tag_total AS SELECT tag_count() AS n');
    } else if (dialect === 'mysql') {
      await blog.exec('CREATE FUNCTION tag_count() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM tag)');
      await blog.exec('CREATE VIEW tag_total AS SELECT tag_count() AS n');
    }
  });
  afterAll(async () => {
    await blog?.drop();
  });
  beforeEach(async () => {
    await blog.reset();
    await seedBlog(blog.client().db);
    dumper = createDumper({});
    const client = blog.client();
    statements = client.count;
    db = kyselyDumper(dumper, client.db, { trackReads: true }) as unknown as Kysely<DB>;
    site = await Site.start(dumper, () => statements(), async (path) => ({ status: 200, body: await render(path) }));
  });
  afterEach(async () => {
    await site.close();
    await dumper.close();
  });

  /** The page is rendered again and shows what a fresh render shows. */
  async function expectFresh(path: string) {
    const page = await site.get(path);
    expect(page.body, `${path} is stale (${page.cache})`).toBe(await render(path));
    expect(page.cache).toBe('MISS');
  }

  test('a read of a view: a write to the view\'s table drops it', async () => {
    await site.warm('/titles');
    await db.updateTable('post').set({ title: 'Renamed' }).where('id', '=', 1).execute();
    await expectFresh('/titles');
    expect((await site.get('/titles')).body).toContain('1:Renamed');
  });

  test('a read of a view is not dropped by a write of a table it does not read', async () => {
    await site.warm('/titles');
    await db.updateTable('tag').set({ name: 'other' }).where('id', '=', 1).execute();
    await site.expectHit('/titles');
  });

  test('a view of a view with a subquery: writes to the tables under both', async () => {
    await site.warm('/stats');
    await db.insertInto('comment').values({ body: 'more', post_id: 2 }).execute();
    await expectFresh('/stats');
    await site.warm('/stats');
    await db.deleteFrom('post').where('id', '=', 3).execute();
    await expectFresh('/stats');
  });

  // The blog's PostgreSQL dialect has no cursor: it cannot stream.
  (dialect === 'postgres' ? () => undefined : test)('a streamed read of a view: a write to the view\'s table drops it', async () => {
    await site.warm('/streamed');
    await db.updateTable('post').set({ title: 'Renamed' }).where('id', '=', 2).execute();
    await expectFresh('/streamed');
  });

  (dialect === 'sqlite' ? () => undefined : test)('a view that calls a function: every table, so a write of the table the function reads drops it', async () => {
    await site.warm('/tag-total');
    await db.insertInto('tag').values({ id: 9, name: 'new' }).execute();
    await expectFresh('/tag-total');
  });
});
