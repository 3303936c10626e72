/**
 * A small blog on Drizzle for the `trackReads` suite, in the three dialects the integration
 * supports: authors, posts (a foreign key to an author, deleted with it), tags, post_tags (the
 * many-to-many link table: its primary key is its two foreign keys) and comments (a foreign key to
 * a post, deleted with it), plus `tr_setting`, keyed by a string (the key-spelling cases). No table
 * is registered and nothing names a page: the pages are tagged by what they read.
 *
 * Each test database is isolated as in ./support.ts: a SQLite file, a PostgreSQL schema, a MariaDB
 * database; tables are created with plain SQL.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { asc, eq, inArray, like, relations } from 'drizzle-orm';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import * as my from 'drizzle-orm/mysql-core';
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import * as pgc from 'drizzle-orm/pg-core';
import * as lite from 'drizzle-orm/sqlite-core';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { BlogApp } from '../track-reads/check.js';
import type { AnyDb, Kind } from './support.js';

function withRelations<S extends { authors: object; posts: object; tags: object; postTags: object; comments: object }>(s: S) {
  const t = s as unknown as Record<string, pgc.PgTable & Record<string, pgc.PgColumn>>;
  return {
    ...s,
    authorsRelations: relations(t.authors!, ({ many }) => ({ posts: many(t.posts!) })),
    postsRelations: relations(t.posts!, ({ one, many }) => ({
      author: one(t.authors!, { fields: [t.posts!.authorId!], references: [t.authors!.id!] }),
      postTags: many(t.postTags!),
      comments: many(t.comments!),
    })),
    tagsRelations: relations(t.tags!, ({ many }) => ({ postTags: many(t.postTags!) })),
    postTagsRelations: relations(t.postTags!, ({ one }) => ({
      post: one(t.posts!, { fields: [t.postTags!.postId!], references: [t.posts!.id!] }),
      tag: one(t.tags!, { fields: [t.postTags!.tagId!], references: [t.tags!.id!] }),
    })),
    commentsRelations: relations(t.comments!, ({ one }) => ({ post: one(t.posts!, { fields: [t.comments!.postId!], references: [t.posts!.id!] }) })),
  };
}

export const pgBlog = (() => {
  const authors = pgc.pgTable('tr_author', { id: pgc.integer('id').primaryKey(), name: pgc.text('name').notNull() });
  const posts = pgc.pgTable('tr_post', {
    id: pgc.integer('id').primaryKey(),
    title: pgc.text('title').notNull(),
    authorId: pgc.integer('author_id').notNull().references(() => authors.id, { onDelete: 'cascade' }),
  });
  const tags = pgc.pgTable('tr_tag', { id: pgc.integer('id').primaryKey(), name: pgc.text('name').notNull() });
  const postTags = pgc.pgTable(
    'tr_post_tag',
    {
      postId: pgc.integer('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
      tagId: pgc.integer('tag_id').notNull().references(() => tags.id, { onDelete: 'cascade' }),
    },
    (t) => [pgc.primaryKey({ columns: [t.postId, t.tagId] })],
  );
  const comments = pgc.pgTable('tr_comment', {
    id: pgc.serial('id').primaryKey(),
    body: pgc.text('body').notNull(),
    postId: pgc.integer('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
  });
  const settings = pgc.pgTable('tr_setting', { key: pgc.varchar('key', { length: 50 }).primaryKey(), value: pgc.text('value').notNull() });
  return withRelations({ authors, posts, tags, postTags, comments, settings });
})();

const sqliteBlog = (() => {
  const authors = lite.sqliteTable('tr_author', { id: lite.integer('id').primaryKey(), name: lite.text('name').notNull() });
  const posts = lite.sqliteTable('tr_post', {
    id: lite.integer('id').primaryKey(),
    title: lite.text('title').notNull(),
    authorId: lite.integer('author_id').notNull().references(() => authors.id, { onDelete: 'cascade' }),
  });
  const tags = lite.sqliteTable('tr_tag', { id: lite.integer('id').primaryKey(), name: lite.text('name').notNull() });
  const postTags = lite.sqliteTable(
    'tr_post_tag',
    {
      postId: lite.integer('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
      tagId: lite.integer('tag_id').notNull().references(() => tags.id, { onDelete: 'cascade' }),
    },
    (t) => [lite.primaryKey({ columns: [t.postId, t.tagId] })],
  );
  const comments = lite.sqliteTable('tr_comment', {
    id: lite.integer('id').primaryKey({ autoIncrement: true }),
    body: lite.text('body').notNull(),
    postId: lite.integer('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
  });
  const settings = lite.sqliteTable('tr_setting', { key: lite.text('key').primaryKey(), value: lite.text('value').notNull() });
  return withRelations({ authors, posts, tags, postTags, comments, settings });
})();

const mysqlBlog = (() => {
  const authors = my.mysqlTable('tr_author', { id: my.int('id').primaryKey(), name: my.varchar('name', { length: 100 }).notNull() });
  const posts = my.mysqlTable('tr_post', {
    id: my.int('id').primaryKey(),
    title: my.varchar('title', { length: 200 }).notNull(),
    authorId: my.int('author_id').notNull().references(() => authors.id, { onDelete: 'cascade' }),
  });
  const tags = my.mysqlTable('tr_tag', { id: my.int('id').primaryKey(), name: my.varchar('name', { length: 100 }).notNull() });
  const postTags = my.mysqlTable(
    'tr_post_tag',
    {
      postId: my.int('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
      tagId: my.int('tag_id').notNull().references(() => tags.id, { onDelete: 'cascade' }),
    },
    (t) => [my.primaryKey({ columns: [t.postId, t.tagId] })],
  );
  const comments = my.mysqlTable('tr_comment', {
    id: my.serial('id').primaryKey(),
    body: my.varchar('body', { length: 200 }).notNull(),
    postId: my.int('post_id').notNull().references(() => posts.id, { onDelete: 'cascade' }),
  });
  const settings = my.mysqlTable('tr_setting', { key: my.varchar('key', { length: 50 }).primaryKey(), value: my.varchar('value', { length: 100 }).notNull() });
  return withRelations({ authors, posts, tags, postTags, comments, settings });
})();

/** The tests use the PostgreSQL schema's types for the three dialects (as ./support.ts does). */
export type Blog = typeof pgBlog;

const TABLES = ['tr_comment', 'tr_post_tag', 'tr_post', 'tr_tag', 'tr_author', 'tr_setting'];

function ddl(kind: Kind): string[] {
  const serial = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'SERIAL PRIMARY KEY', mariadb: 'INT NOT NULL AUTO_INCREMENT PRIMARY KEY' }[kind];
  const text = kind === 'mariadb' ? 'VARCHAR(200)' : 'TEXT';
  const cascade = 'ON DELETE CASCADE';
  return [
    `CREATE TABLE tr_author (id INTEGER PRIMARY KEY, name ${text} NOT NULL)`,
    `CREATE TABLE tr_post (id INTEGER PRIMARY KEY, title ${text} NOT NULL, author_id INTEGER NOT NULL REFERENCES tr_author (id) ${cascade})`,
    `CREATE TABLE tr_tag (id INTEGER PRIMARY KEY, name ${text} NOT NULL)`,
    `CREATE TABLE tr_post_tag (post_id INTEGER NOT NULL REFERENCES tr_post (id) ${cascade}, tag_id INTEGER NOT NULL REFERENCES tr_tag (id) ${cascade}, PRIMARY KEY (post_id, tag_id))`,
    `CREATE TABLE tr_comment (id ${serial}, body ${text} NOT NULL, post_id INTEGER NOT NULL REFERENCES tr_post (id) ${cascade})`,
    `CREATE TABLE tr_setting (${kind === 'sqlite' ? '"key" TEXT' : kind === 'postgres' ? '"key" VARCHAR(50)' : '`key` VARCHAR(50)'} PRIMARY KEY, value ${text} NOT NULL)`,
  ];
}

/** A plain Drizzle database (not wrapped) on connections of its own, counting its statements. */
export interface BlogClient {
  readonly db: AnyDb;
  queries(): number;
}

export interface BlogDatabase {
  readonly kind: Kind;
  readonly s: Blog;
  client(): BlogClient;
  exec(sql: string): Promise<void>;
  reset(): Promise<void>;
  drop(): Promise<void>;
}

export async function openBlog(kind: Kind): Promise<BlogDatabase> {
  const name = `tr_${randomBytes(6).toString('hex')}`;
  const closers: Array<() => Promise<void> | void> = [];
  let exec: (sql: string) => Promise<void>;
  let drop: () => Promise<void>;
  let connect: (logger: { logQuery(q: string): void }) => AnyDb;
  let s: object;
  let reset: () => Promise<void>;
  if (kind === 'sqlite') {
    s = sqliteBlog;
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-drizzle-blog-'));
    const file = join(dir, `${name}.sqlite`);
    const admin = new Database(file);
    admin.pragma('journal_mode = WAL');
    exec = async (sql) => void admin.exec(sql);
    reset = async () => void admin.exec(TABLES.map((t) => `DELETE FROM ${t};`).join('') + "DELETE FROM sqlite_sequence WHERE name = 'tr_comment';");
    drop = async () => {
      admin.close();
      rmSync(dir, { recursive: true, force: true });
    };
    connect = (logger) => {
      const client = new Database(file);
      client.pragma('foreign_keys = ON');
      closers.push(() => void client.close());
      return drizzleSqlite(client, { schema: sqliteBlog, logger });
    };
  } else if (kind === 'postgres') {
    s = pgBlog;
    const url = 'postgresql://postgres@127.0.0.1:5432/test';
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${name}"`);
    await admin.query(`SET search_path TO "${name}"`);
    exec = async (sql) => void (await admin.query(sql));
    reset = async () => void (await admin.query(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE`));
    drop = async () => {
      await admin.query(`DROP SCHEMA "${name}" CASCADE`);
      await admin.end();
    };
    connect = (logger) => {
      const pool = new pg.Pool({ connectionString: url, max: 4, options: `-c search_path=${name}` });
      closers.push(() => pool.end());
      return drizzlePg(pool, { schema: pgBlog, logger });
    };
  } else {
    s = mysqlBlog;
    const admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', multipleStatements: true });
    await admin.query(`CREATE DATABASE \`${name}\``);
    await admin.query(`USE \`${name}\``);
    exec = async (sql) => void (await admin.query(sql));
    reset = async () => void (await admin.query(`SET FOREIGN_KEY_CHECKS = 0; ${TABLES.map((t) => `TRUNCATE TABLE ${t};`).join(' ')} SET FOREIGN_KEY_CHECKS = 1;`));
    drop = async () => {
      await admin.query(`DROP DATABASE \`${name}\``);
      await admin.end();
    };
    connect = (logger) => {
      const pool = mysql.createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: name, connectionLimit: 4 });
      closers.push(() => pool.end());
      return drizzleMysql(pool, { schema: mysqlBlog, mode: 'default', logger });
    };
  }
  for (const statement of ddl(kind)) await exec(statement);
  return {
    kind,
    s: s as Blog,
    exec,
    reset,
    client() {
      let count = 0;
      const db = connect({ logQuery: () => void count++ });
      return { db, queries: () => count };
    },
    async drop() {
      for (const close of closers.splice(0)) await close();
      await drop();
    },
  };
}

const byId = <T extends { id: number }>(rows: T[]) => [...rows].sort((a, b) => a.id - b.id);

/**
 * The blog's pages (see ../track-reads/check.ts), read through `db` (a wrapped database): each
 * renders what it read. Relations are read with relational queries (`db.query`), except on
 * MariaDB, whose subqueries cannot name the outer query's tables as Drizzle's relational queries
 * need: there the same pages read each relation with a select of its own (by primary keys
 * `inArray()`, by foreign key).
 */
export function blogApp(db: AnyDb, s: Blog, kind: Kind): BlogApp & { handle(path: string): Promise<{ status: number; body: string }> } {
  type Post = { id: number; title: string; authorId: number };
  const authorsOf = async (posts: Post[]) => {
    const ids = [...new Set(posts.map((p) => p.authorId))];
    const rows = ids.length === 0 ? [] : ((await db.select().from(s.authors).where(inArray(s.authors.id, ids))) as Array<{ id: number; name: string }>);
    return (p: Post) => rows.find((a) => a.id === p.authorId)!;
  };
  async function selects(path: string): Promise<string | undefined> {
    let m: RegExpExecArray | null;
    if (path === '/') {
      const all = (await db.select().from(s.posts).orderBy(asc(s.posts.id))) as Post[];
      const author = await authorsOf(all);
      return all.map((p) => `${p.id}:${p.title} by ${author(p).name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const id = Number(m[1]);
      const [p] = (await db.select().from(s.posts).where(eq(s.posts.id, id))) as Post[];
      if (p === undefined) return 'no such post';
      const author = await authorsOf([p]);
      const links = (await db.select().from(s.postTags).where(eq(s.postTags.postId, id))) as Array<{ tagId: number }>;
      const tags = links.length === 0 ? [] : ((await db.select().from(s.tags).where(inArray(s.tags.id, links.map((l) => l.tagId)))) as Array<{ id: number; name: string }>);
      const comments = (await db.select().from(s.comments).where(eq(s.comments.postId, id))) as Array<{ id: number; body: string }>;
      return [`${p.title} by ${author(p).name}`, `tags: ${byId(tags).map((t) => t.name).join(',')}`, `comments: ${byId(comments).map((c) => c.body).join(',')}`].join('\n');
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      const id = Number(m[1]);
      const [t] = (await db.select().from(s.tags).where(eq(s.tags.id, id))) as Array<{ name: string }>;
      if (t === undefined) return 'no such tag';
      const links = (await db.select().from(s.postTags).where(eq(s.postTags.tagId, id))) as Array<{ postId: number }>;
      const posts = links.length === 0 ? [] : ((await db.select().from(s.posts).where(inArray(s.posts.id, links.map((l) => l.postId)))) as Post[]);
      return `${t.name}: ${byId(posts).map((p) => p.title).join(',')}`;
    }
    return undefined;
  }
  async function render(path: string): Promise<string> {
    if (kind === 'mariadb') {
      const body = await selects(path);
      if (body !== undefined) return body;
    }
    let m: RegExpExecArray | null;
    if (path === '/') {
      // Relational query, callback-style orderBy: the list of posts, each post's author by its key.
      const all = (await db.query.posts.findMany({ with: { author: true }, orderBy: (p: Blog['posts'], o: { asc: typeof asc }) => [o.asc(p.id)] })) as Array<{ id: number; title: string; author: { name: string } }>;
      return all.map((p) => `${p.id}:${p.title} by ${p.author.name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const p = (await db.query.posts.findFirst({
        where: eq(s.posts.id, Number(m[1])),
        with: { author: true, postTags: { with: { tag: true } }, comments: true },
      })) as { title: string; author: { name: string }; postTags: Array<{ tag: { id: number; name: string } }>; comments: Array<{ id: number; body: string }> } | undefined;
      if (p === undefined) return 'no such post';
      return [
        `${p.title} by ${p.author.name}`,
        `tags: ${byId(p.postTags.map((l) => l.tag)).map((t) => t.name).join(',')}`,
        `comments: ${byId(p.comments).map((c) => c.body).join(',')}`,
      ].join('\n');
    }
    if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
      const list = (await db.select().from(s.posts).where(eq(s.posts.authorId, Number(m[1]))).orderBy(asc(s.posts.id))) as Array<{ title: string }>;
      return `posts: ${list.map((p) => p.title).join(',')}`;
    }
    if ((m = /^\/titled\/([a-z])$/.exec(path))) {
      const list = (await db.select({ title: s.posts.title }).from(s.posts).where(like(s.posts.title, `%${m[1]}%`)).orderBy(asc(s.posts.id))) as Array<{ title: string }>;
      return `titled: ${list.map((p) => p.title).join(',')}`;
    }
    if (path === '/count') {
      const all = Number(await db.$count(s.comments));
      const first = Number(await db.$count(s.comments, eq(s.comments.postId, 1)));
      return `comments: ${all}, on post 1: ${first}`;
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      // Callback-style where.
      const id = Number(m[1]);
      const t = (await db.query.tags.findFirst({
        where: (tag: Blog['tags'], o: { eq: typeof eq }) => o.eq(tag.id, id),
        with: { postTags: { with: { post: true } } },
      })) as { name: string; postTags: Array<{ post: { id: number; title: string } }> } | undefined;
      if (t === undefined) return 'no such tag';
      return `${t.name}: ${byId(t.postTags.map((l) => l.post)).map((p) => p.title).join(',')}`;
    }
    if (path === '/about') return 'about this blog';
    throw new Error(`no page ${path}`);
  }
  return {
    render,
    async handle(path) {
      return { status: 200, body: await render(path) };
    },
  };
}

/**
 * Ada (posts 1 "Hello" and 2 "Again"), Bob (post 3 "Bye"); tags news (posts 1 and 3) and misc
 * (post 2); comments on post 1 ("nice", "great") and on post 2 ("ok"); the setting `ada`.
 */
export async function seedBlog(db: AnyDb, s: Blog): Promise<void> {
  await db.insert(s.authors).values([
    { id: 1, name: 'Ada' },
    { id: 2, name: 'Bob' },
  ]);
  await db.insert(s.tags).values([
    { id: 1, name: 'news' },
    { id: 2, name: 'misc' },
  ]);
  await db.insert(s.posts).values([
    { id: 1, title: 'Hello', authorId: 1 },
    { id: 2, title: 'Again', authorId: 1 },
    { id: 3, title: 'Bye', authorId: 2 },
  ]);
  await db.insert(s.postTags).values([
    { postId: 1, tagId: 1 },
    { postId: 2, tagId: 2 },
    { postId: 3, tagId: 1 },
  ]);
  await db.insert(s.comments).values([
    { body: 'nice', postId: 1 },
    { body: 'great', postId: 1 },
    { body: 'ok', postId: 2 },
  ]);
  await db.insert(s.settings).values({ key: 'ada', value: 'lovelace' });
}
