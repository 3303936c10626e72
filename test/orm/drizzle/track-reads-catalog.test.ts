/**
 * `trackReads` on Drizzle where the page depends on what the schema does not say, or on a read
 * that returns no result to classify: a select read row by row with `.iterator()` (mysql2), a key
 * looked up in a column that ignores case (SQLite `COLLATE NOCASE`, a PostgreSQL
 * non-deterministic collation: only the database's catalog says so), and a child row added by
 * another connection after the read a cascading delete makes before it runs. After each write the
 * page served must equal a fresh render; a write of something the page did not read must leave it
 * stored.
 */
import { eq } from 'drizzle-orm';
import * as pgc from 'drizzle-orm/pg-core';
import * as lite from 'drizzle-orm/sqlite-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { drizzleDumper, drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { sqliteInexact } from '../../../src/orm/drizzle/collations.js';
import { Site } from '../../support/orm-site.js';
import { needService } from '../../support/services.js';
import { openBlog, seedBlog, type BlogClient, type BlogDatabase } from './blog.js';
import { kinds, type AnyDb } from './support.js';

const targets = await kinds(needService);

const pgUsers = pgc.pgTable('tr_user', { email: pgc.text('email').primaryKey(), name: pgc.text('name').notNull() });
const liteUsers = lite.sqliteTable('tr_user', { email: lite.text('email').primaryKey(), name: lite.text('name').notNull() });

describe.each(targets)('Drizzle trackReads: iterators, collations and cascades on %s', (kind) => {
  let t: BlogDatabase;
  let client: BlogClient;
  /** Another connection, as another process would write. */
  let other: BlogClient;
  let dumper: Dumper;
  let db: AnyDb;
  let site: Site;
  const users = (kind === 'sqlite' ? liteUsers : pgUsers) as typeof pgUsers;
  /** Set by a test: runs inside the post table's dependentPaths, between a delete's reads and the delete itself. */
  let duringDelete: (() => Promise<void>) | undefined;

  async function render(path: string): Promise<string> {
    const s = t.s;
    if (path === '/comments') return ((await db.select().from(s.comments).orderBy(s.comments.id)) as { body: string }[]).map((c) => c.body).join(',');
    if (path === '/iterated' || path === '/iterated-prepared') {
      const query = db.select().from(s.posts).orderBy(s.posts.id);
      const out: string[] = [];
      for await (const row of path === '/iterated' ? query.iterator() : query.prepare().iterator()) out.push((row as { title: string }).title);
      return out.join(',');
    }
    const sync = /^\/users-sync\/(.+)$/.exec(path);
    if (sync) {
      // better-sqlite3's synchronous get().
      const row = db.select().from(users).where(eq(users.email, decodeURIComponent(sync[1]!))).get() as { email: string; name: string } | undefined;
      return row === undefined ? 'none' : `${row.email}: ${row.name}`;
    }
    const user = /^\/users\/(.+)$/.exec(path);
    if (user) {
      // Looked up by the address as typed: the column finds it in any case.
      const rows = (await db.select().from(users).where(eq(users.email, decodeURIComponent(user[1]!)))) as { email: string; name: string }[];
      return rows[0] === undefined ? 'none' : `${rows[0].email}: ${rows[0].name}`;
    }
    throw new Error(path);
  }

  beforeAll(async () => {
    t = await openBlog(kind);
    client = t.client();
    other = t.client();
    if (kind === 'sqlite') await t.exec('CREATE TABLE tr_user (email TEXT COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL)');
    else if (kind === 'postgres') {
      await t.exec(`CREATE COLLATION tr_caseless (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`);
      await t.exec('CREATE TABLE tr_user (email text COLLATE tr_caseless PRIMARY KEY, name text NOT NULL)');
    }
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(async () => {
    await t.reset();
    await seedBlog(client.db, t.s);
    if (kind !== 'mariadb') await t.exec(`DELETE FROM tr_user; INSERT INTO tr_user VALUES ('ada@example.com', 'Ada')`);
    duringDelete = undefined;
    dumper = createDumper({});
    dumper.register('tr_post', {
      async dependentPaths() {
        await duringDelete?.();
        return [];
      },
    });
    db = drizzleDumper(dumper, client.db, { trackReads: true });
    site = await Site.start(dumper, () => client.queries(), async (path) => ({ status: 200, body: await render(path) }));
  });
  afterEach(async () => {
    await site.close();
    await dumper.close();
  });

  async function expectFresh(...paths: string[]) {
    for (const p of paths) {
      const served = await site.get(p);
      expect(served.body, `${p} is stale (served ${served.cache ?? 'no x-cache'})`).toBe(await render(p));
    }
  }

  (kind === 'mariadb' ? test : () => undefined)('a select read with .iterator(), prepared or not: an update of a row it showed', async () => {
    await site.warm('/iterated', '/iterated-prepared');
    await db.update(t.s.tags).set({ name: 'other' }).where(eq(t.s.tags.id, 2));
    await site.expectHit('/iterated', '/iterated-prepared'); // no tag was read
    await db.update(t.s.posts).set({ title: 'Renamed' }).where(eq(t.s.posts.id, 1));
    await expectFresh('/iterated', '/iterated-prepared');
    expect((await site.get('/iterated')).body).toBe('Renamed,Again,Bye');
  });

  (kind !== 'mariadb' ? test : () => undefined)('a key looked up in another case, in a column that ignores case: an update of the row', async () => {
    await site.warm('/users/ADA@example.com', '/users/ada@example.com');
    expect((await site.get('/users/ADA@example.com')).body).toBe('ada@example.com: Ada');
    await db.update(t.s.tags).set({ name: 'other' }).where(eq(t.s.tags.id, 2));
    await drizzleSettled(db);
    await site.expectHit('/users/ADA@example.com', '/users/ada@example.com');
    await db.update(users).set({ name: 'Ada L.' }).where(eq(users.email, 'ada@example.com'));
    await drizzleSettled(db);
    await expectFresh('/users/ADA@example.com', '/users/ada@example.com');
    expect((await site.get('/users/ADA@example.com')).body).toBe('ada@example.com: Ada L.');
  });

  (kind === 'sqlite' ? test : () => undefined)('the same, read with the synchronous get()', async () => {
    await site.warm('/users-sync/ADA@example.com');
    expect((await site.get('/users-sync/ADA@example.com')).body).toBe('ada@example.com: Ada');
    db.update(users).set({ name: 'Ada L.' }).where(eq(users.email, 'ada@example.com')).run();
    await drizzleSettled(db);
    await expectFresh('/users-sync/ADA@example.com');
  });

  test('a delete that cascades: a child another connection added after the delete looked for children, shown on a list', async () => {
    // Post 3 has no comment when the delete reads its children; one is added (and a list of the
    // comments stored showing it) before the delete runs, which removes it with the post.
    duringDelete = async () => {
      duringDelete = undefined;
      await other.db.insert(t.s.comments).values({ body: 'late', postId: 3 });
      await site.warm('/comments');
      expect((await site.get('/comments')).body).toBe('nice,great,ok,late');
    };
    await db.delete(t.s.posts).where(eq(t.s.posts.id, 3));
    await drizzleSettled(db);
    await expectFresh('/comments');
    expect((await site.get('/comments')).body).toBe('nice,great,ok');
  });
});

describe('the columns of a SQLite CREATE TABLE that compare other than byte for byte', () => {
  test('a COLLATE other than BINARY in the column definition, past quotes, strings and comments', () => {
    expect([...(sqliteInexact(`CREATE TABLE t (a TEXT COLLATE NOCASE PRIMARY KEY, "b c" text collate rtrim, [d] TEXT COLLATE BINARY, e TEXT DEFAULT 'x COLLATE NOCASE', -- f, COLLATE NOCASE
      g TEXT /* , h COLLATE NOCASE */, PRIMARY KEY (g COLLATE NOCASE))`) as Set<string>)].sort()).toEqual(['a', 'b c']);
    expect(sqliteInexact('CREATE TABLE t (a TEXT')).toBe('all');
  });
});
