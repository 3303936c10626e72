/**
 * The blog of the `trackReads` suites (see ../track-reads/check.ts) on Kysely, on SQLite,
 * PostgreSQL and MariaDB: authors, posts (each with an author, deleted with it), tags (many-to-many
 * with posts through post_tag) and comments (each on a post, deleted with it), created with plain
 * SQL in a database of their own. No table is registered and nothing names a page: the pages are
 * tagged by what they read. Table `code` (a string primary key) serves the key-spelling cases.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, type Dialect as KyselyDialect, type Generated } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import type { BlogApp } from '../track-reads/check.js';
import type { Dialect } from './support.js';

export interface BlogDB {
  author: { id: number; name: string };
  post: { id: number; title: string; author_id: number };
  tag: { id: number; name: string };
  post_tag: { post_id: number; tag_id: number };
  comment: { id: Generated<number>; body: string; post_id: number };
  code: { code: string; label: string };
  /** PostgreSQL only. */
  token: { id: string; label: string };
}

const TABLES = ['comment', 'post_tag', 'post', 'tag', 'author', 'code'];

function ddl(dialect: Dialect): string[] {
  const serial = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'SERIAL PRIMARY KEY', mysql: 'INT NOT NULL AUTO_INCREMENT PRIMARY KEY' }[dialect];
  const text = dialect === 'mysql' ? 'VARCHAR(191)' : 'TEXT';
  return [
    `CREATE TABLE author (id INTEGER PRIMARY KEY, name ${text} NOT NULL)`,
    `CREATE TABLE post (id INTEGER PRIMARY KEY, title ${text} NOT NULL, author_id INTEGER NOT NULL REFERENCES author (id) ON DELETE CASCADE)`,
    `CREATE TABLE tag (id INTEGER PRIMARY KEY, name ${text} NOT NULL)`,
    `CREATE TABLE post_tag (post_id INTEGER NOT NULL REFERENCES post (id) ON DELETE CASCADE, tag_id INTEGER NOT NULL REFERENCES tag (id) ON DELETE CASCADE, PRIMARY KEY (post_id, tag_id))`,
    `CREATE TABLE comment (id ${serial}, body ${text} NOT NULL, post_id INTEGER NOT NULL REFERENCES post (id) ON DELETE CASCADE)`,
    `CREATE TABLE code (code ${dialect === 'mysql' ? 'VARCHAR(20)' : 'TEXT'} PRIMARY KEY, label ${text} NOT NULL)`,
    // PostgreSQL's uuid finds any case: only the lower case it returns is a key.
    ...(dialect === 'postgres' ? ['CREATE TABLE token (id UUID PRIMARY KEY, label TEXT NOT NULL)'] : []),
  ];
}

export interface BlogDatabase {
  readonly dialect: Dialect;
  /** A new Kysely on connections of its own; `count()` is how many statements it has sent. */
  client(): { db: Kysely<BlogDB>; count: () => number };
  /** Empties every table and restarts the ids at 1. */
  reset(): Promise<void>;
  exec(statement: string): Promise<void>;
  drop(): Promise<void>;
}

export async function openBlog(dialect: Dialect): Promise<BlogDatabase> {
  const name = `kb_${randomBytes(6).toString('hex')}`;
  const clients: Kysely<BlogDB>[] = [];
  let make: () => KyselyDialect;
  let exec: (statement: string) => Promise<void>;
  let reset: () => Promise<void>;
  let drop: () => Promise<void>;
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-kysely-blog-'));
    const file = join(dir, `${name}.sqlite`);
    const admin = new Database(file);
    admin.pragma('journal_mode = WAL');
    exec = async (s) => void admin.exec(s);
    reset = async () => void admin.exec(TABLES.map((t) => `DELETE FROM ${t};`).join('') + "DELETE FROM sqlite_sequence WHERE name = 'comment';");
    drop = async () => {
      admin.close();
      rmSync(dir, { recursive: true, force: true });
    };
    make = () =>
      new SqliteDialect({
        database: async () => {
          const d = new Database(file);
          d.pragma('foreign_keys = ON');
          d.pragma('busy_timeout = 5000');
          return d;
        },
      });
  } else if (dialect === 'postgres') {
    const url = 'postgresql://postgres@127.0.0.1:5432/test';
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${name}"`);
    await admin.query(`SET search_path TO "${name}"`);
    exec = async (s) => void (await admin.query(s));
    reset = async () => void (await admin.query(`TRUNCATE ${[...TABLES, 'token'].join(', ')} RESTART IDENTITY CASCADE`));
    drop = async () => {
      await admin.query(`DROP SCHEMA "${name}" CASCADE`);
      await admin.end();
    };
    make = () => new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 4, options: `-c search_path=${name}` }) });
  } else {
    const { createConnection } = await import('mysql2/promise');
    const admin = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', multipleStatements: true });
    await admin.query(`CREATE DATABASE \`${name}\``);
    await admin.query(`USE \`${name}\``);
    exec = async (s) => void (await admin.query(s));
    reset = async () => void (await admin.query(`SET FOREIGN_KEY_CHECKS = 0; ${TABLES.map((t) => `TRUNCATE TABLE ${t};`).join(' ')} SET FOREIGN_KEY_CHECKS = 1;`));
    drop = async () => {
      await admin.query(`DROP DATABASE \`${name}\``);
      await admin.end();
    };
    make = () => new MysqlDialect({ pool: createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: name, connectionLimit: 4 }) });
  }
  for (const statement of ddl(dialect)) await exec(statement);
  return {
    dialect,
    exec,
    reset,
    client() {
      let n = 0;
      const db = new Kysely<BlogDB>({
        dialect: make(),
        log: (event) => {
          if (event.level === 'query') n++;
        },
      });
      clients.push(db);
      return { db, count: () => n };
    },
    async drop() {
      await Promise.all(clients.splice(0).map((c) => c.destroy()));
      await drop();
    },
  };
}

/** The blog's pages (see ../track-reads/check.ts), read through `db`: each renders what it read, nothing else. */
export function blogApp(db: Kysely<BlogDB>): BlogApp & { readonly db: Kysely<BlogDB>; handle(path: string): Promise<{ status: number; body: string }> } {
  async function render(path: string): Promise<string> {
    let m: RegExpExecArray | null;
    if (path === '/') {
      // Posts with their authors: the post list, and the author rows it joined.
      const all = await db.selectFrom('post').innerJoin('author', 'author.id', 'post.author_id').select(['post.id', 'post.title', 'post.author_id', 'author.name']).orderBy('post.id').execute();
      return all.map((p) => `${p.id}:${p.title} by ${p.name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const id = Number(m[1]);
      const p = await db
        .selectFrom('post')
        .leftJoin('author', 'author.id', 'post.author_id')
        .select(['post.title', 'post.author_id', 'author.name'])
        .where('post.id', '=', id)
        .executeTakeFirst();
      if (p === undefined) return 'no such post';
      const tags = await db.selectFrom('post_tag').innerJoin('tag', 'tag.id', 'post_tag.tag_id').select(['tag.id', 'tag.name']).where('post_tag.post_id', '=', id).orderBy('tag.id').execute();
      const comments = await db.selectFrom('comment').select('body').where('post_id', '=', id).orderBy('id').execute();
      return [`${p.title} by ${p.name}`, `tags: ${tags.map((t) => t.name).join(',')}`, `comments: ${comments.map((c) => c.body).join(',')}`].join('\n');
    }
    if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
      const list = await db.selectFrom('post').select('title').where('author_id', '=', Number(m[1])).orderBy('id').execute();
      return `posts: ${list.map((p) => p.title).join(',')}`;
    }
    if ((m = /^\/titled\/([a-z])$/.exec(path))) {
      const list = await db.selectFrom('post').select('title').where('title', 'like', `%${m[1]}%`).orderBy('id').execute();
      return `titled: ${list.map((p) => p.title).join(',')}`;
    }
    if (path === '/count') {
      const all = await db.selectFrom('comment').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      const first = await db.selectFrom('comment').select((eb) => eb.fn.countAll().as('n')).where('post_id', '=', 1).executeTakeFirstOrThrow();
      return `comments: ${Number(all.n)}, on post 1: ${Number(first.n)}`;
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      const id = Number(m[1]);
      const t = await db.selectFrom('tag').select('name').where('id', '=', id).executeTakeFirst();
      if (t === undefined) return 'no such tag';
      const posts = await db.selectFrom('post_tag').innerJoin('post', 'post.id', 'post_tag.post_id').select(['post.id', 'post.title']).where('post_tag.tag_id', '=', id).orderBy('post.id').execute();
      return `${t.name}: ${posts.map((p) => p.title).join(',')}`;
    }
    if (path === '/about') return 'about this blog';
    throw new Error(`no page ${path}`);
  }
  return {
    db,
    render,
    async handle(path) {
      return { status: 200, body: await render(path) };
    },
  };
}

/**
 * Ada (posts 1 "Hello" and 2 "Again"), Bob (post 3 "Bye"); tags news (posts 1 and 3) and misc
 * (post 2); comments on post 1 ("nice", "great") and on post 2 ("ok"); code "abc".
 */
export async function seedBlog(db: Kysely<BlogDB>): Promise<void> {
  await db.insertInto('author').values([{ id: 1, name: 'Ada' }, { id: 2, name: 'Bob' }]).execute();
  await db.insertInto('tag').values([{ id: 1, name: 'news' }, { id: 2, name: 'misc' }]).execute();
  await db
    .insertInto('post')
    .values([
      { id: 1, title: 'Hello', author_id: 1 },
      { id: 2, title: 'Again', author_id: 1 },
      { id: 3, title: 'Bye', author_id: 2 },
    ])
    .execute();
  await db.insertInto('post_tag').values([{ post_id: 1, tag_id: 1 }, { post_id: 2, tag_id: 2 }, { post_id: 3, tag_id: 1 }]).execute();
  await db.insertInto('comment').values([{ body: 'nice', post_id: 1 }, { body: 'great', post_id: 1 }, { body: 'ok', post_id: 2 }]).execute();
  await db.insertInto('code').values({ code: 'abc', label: 'first' }).execute();
}
