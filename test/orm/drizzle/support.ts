/**
 * The databases the Drizzle integration is tested on, each isolated for one test file: SQLite
 * (better-sqlite3, a WAL file under the OS temp folder), PostgreSQL (node-postgres, a schema
 * `dz_<random>` in database `test`, reached through search_path) and MariaDB (mysql2, a database
 * `dz_<random>`). Tables are created with plain SQL (drizzle-kit is not installed); every table
 * name starts with `dz_`. Each Drizzle database counts the SQL statements it sends through
 * Drizzle's logger.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { and, asc, eq, relations } from 'drizzle-orm';
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3';
import * as my from 'drizzle-orm/mysql-core';
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import * as pgc from 'drizzle-orm/pg-core';
import * as lite from 'drizzle-orm/sqlite-core';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { withDumper } from '../../../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper, type DumperOptions } from '../../../src/index.js';
import { drizzleDumper, type DrizzleDumperOptions } from '../../../src/orm/drizzle/index.js';
import { listen } from '../../support/listen.js';

export type Kind = 'sqlite' | 'postgres' | 'mariadb';

// The same tables in each dialect: field names are camelCase, SQL names snake_case.
export const pgSchema = (() => {
  const simple = pgc.pgTable('dz_simple', { id: pgc.serial('id').primaryKey(), slug: pgc.text('slug').notNull().unique(), name: pgc.text('name').notNull() });
  const related = pgc.pgTable('dz_related', { id: pgc.serial('id').primaryKey(), slug: pgc.text('slug').notNull().unique(), name: pgc.text('name').notNull() });
  const relatedSimple = pgc.pgTable(
    'dz_related_simple',
    { relatedId: pgc.integer('related_id').notNull().references(() => related.id, { onDelete: 'cascade' }), simpleId: pgc.integer('simple_id').notNull().references(() => simple.id, { onDelete: 'cascade' }) },
    (t) => [pgc.primaryKey({ columns: [t.relatedId, t.simpleId] })],
  );
  const comment = pgc.pgTable('dz_comment', { id: pgc.serial('id').primaryKey(), targetType: pgc.text('target_type').notNull(), targetId: pgc.integer('target_id').notNull(), body: pgc.text('body').notNull() });
  const broken = pgc.pgTable('dz_broken', { id: pgc.serial('id').primaryKey(), name: pgc.text('name').notNull() });
  const unwatched = pgc.pgTable('dz_unwatched', { id: pgc.serial('id').primaryKey(), name: pgc.text('name').notNull() });
  const simpleRelations = relations(simple, ({ many }) => ({ links: many(relatedSimple) }));
  const linkRelations = relations(relatedSimple, ({ one }) => ({
    simple: one(simple, { fields: [relatedSimple.simpleId], references: [simple.id] }),
    related: one(related, { fields: [relatedSimple.relatedId], references: [related.id] }),
  }));
  return { simple, related, relatedSimple, comment, broken, unwatched, simpleRelations, linkRelations };
})();

const sqliteSchema = (() => {
  const simple = lite.sqliteTable('dz_simple', { id: lite.integer('id').primaryKey({ autoIncrement: true }), slug: lite.text('slug').notNull().unique(), name: lite.text('name').notNull() });
  const related = lite.sqliteTable('dz_related', { id: lite.integer('id').primaryKey({ autoIncrement: true }), slug: lite.text('slug').notNull().unique(), name: lite.text('name').notNull() });
  const relatedSimple = lite.sqliteTable(
    'dz_related_simple',
    { relatedId: lite.integer('related_id').notNull(), simpleId: lite.integer('simple_id').notNull() },
    (t) => [lite.primaryKey({ columns: [t.relatedId, t.simpleId] })],
  );
  const comment = lite.sqliteTable('dz_comment', { id: lite.integer('id').primaryKey({ autoIncrement: true }), targetType: lite.text('target_type').notNull(), targetId: lite.integer('target_id').notNull(), body: lite.text('body').notNull() });
  const broken = lite.sqliteTable('dz_broken', { id: lite.integer('id').primaryKey({ autoIncrement: true }), name: lite.text('name').notNull() });
  const unwatched = lite.sqliteTable('dz_unwatched', { id: lite.integer('id').primaryKey({ autoIncrement: true }), name: lite.text('name').notNull() });
  return { simple, related, relatedSimple, comment, broken, unwatched };
})();

const mysqlSchema = (() => {
  const simple = my.mysqlTable('dz_simple', { id: my.serial('id').primaryKey(), slug: my.varchar('slug', { length: 191 }).notNull().unique(), name: my.varchar('name', { length: 191 }).notNull() });
  const related = my.mysqlTable('dz_related', { id: my.serial('id').primaryKey(), slug: my.varchar('slug', { length: 191 }).notNull().unique(), name: my.varchar('name', { length: 191 }).notNull() });
  const relatedSimple = my.mysqlTable(
    'dz_related_simple',
    { relatedId: my.bigint('related_id', { mode: 'number', unsigned: true }).notNull(), simpleId: my.bigint('simple_id', { mode: 'number', unsigned: true }).notNull() },
    (t) => [my.primaryKey({ columns: [t.relatedId, t.simpleId] })],
  );
  const comment = my.mysqlTable('dz_comment', { id: my.serial('id').primaryKey(), targetType: my.varchar('target_type', { length: 191 }).notNull(), targetId: my.bigint('target_id', { mode: 'number', unsigned: true }).notNull(), body: my.varchar('body', { length: 191 }).notNull() });
  const broken = my.mysqlTable('dz_broken', { id: my.serial('id').primaryKey(), name: my.varchar('name', { length: 191 }).notNull() });
  const unwatched = my.mysqlTable('dz_unwatched', { id: my.serial('id').primaryKey(), name: my.varchar('name', { length: 191 }).notNull() });
  return { simple, related, relatedSimple, comment, broken, unwatched };
})();

/**
 * The tests run the same code on the three dialects, whose builder types differ: they use the
 * PostgreSQL schema's types for all three (the type test checks each dialect's own types).
 */
export type Schema = typeof pgSchema;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyDb = any;

const TABLES = ['dz_related_simple', 'dz_comment', 'dz_broken', 'dz_unwatched', 'dz_related', 'dz_simple'];

function ddl(kind: Kind): string[] {
  const serial = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'SERIAL PRIMARY KEY', mariadb: 'BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY' }[kind];
  const text = kind === 'mariadb' ? 'VARCHAR(191)' : 'TEXT';
  const ref = kind === 'mariadb' ? 'BIGINT UNSIGNED' : 'INTEGER';
  return [
    `CREATE TABLE dz_simple (id ${serial}, slug ${text} NOT NULL UNIQUE, name ${text} NOT NULL)`,
    `CREATE TABLE dz_related (id ${serial}, slug ${text} NOT NULL UNIQUE, name ${text} NOT NULL)`,
    `CREATE TABLE dz_related_simple (related_id ${ref} NOT NULL REFERENCES dz_related (id) ON DELETE CASCADE, simple_id ${ref} NOT NULL REFERENCES dz_simple (id) ON DELETE CASCADE, PRIMARY KEY (related_id, simple_id))`,
    `CREATE TABLE dz_comment (id ${serial}, target_type ${text} NOT NULL, target_id ${ref} NOT NULL, body ${text} NOT NULL)`,
    `CREATE TABLE dz_broken (id ${serial}, name ${text} NOT NULL)`,
    `CREATE TABLE dz_unwatched (id ${serial}, name ${text} NOT NULL)`,
  ];
}

/** A plain Drizzle database (not wrapped) that counts its statements. */
export interface Counted {
  readonly db: AnyDb;
  queries(): number;
  readonly log: string[];
}

export interface TestDatabase {
  readonly kind: Kind;
  readonly schema: Schema;
  /** A new Drizzle database on its own connection(s), counting its queries. */
  client(): Counted;
  /**
   * A Drizzle database (not wrapped) on a driver client of the test's choosing: a pool of `max`
   * connections (pg.Pool, a mysql2 Pool), or one connection (pg.Client, a mysql2 Connection).
   * Closed with the database. Not for SQLite.
   */
  driver(client: { pool: number } | 'connection'): Promise<AnyDb>;
  /** Runs SQL on the admin connection. */
  exec(sql: string): Promise<void>;
  reset(): Promise<void>;
  drop(): Promise<void>;
}

export async function openDatabase(kind: Kind): Promise<TestDatabase> {
  const name = `dz_${randomBytes(6).toString('hex')}`;
  const closers: Array<() => Promise<void> | void> = [];
  let exec: (sql: string) => Promise<void>;
  let reset: () => Promise<void>;
  let drop: () => Promise<void>;
  let connect: (logger: { logQuery(q: string): void }) => AnyDb;
  let schema: object;
  let driver: (client: { pool: number } | 'connection') => Promise<AnyDb> = async () => {
    throw new Error('driver(): PostgreSQL and MariaDB only');
  };

  if (kind === 'sqlite') {
    schema = sqliteSchema;
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-drizzle-'));
    const file = join(dir, `${name}.sqlite`);
    const admin = new Database(file);
    // WAL: a reader on another connection sees the last commit while a transaction is open.
    admin.pragma('journal_mode = WAL');
    exec = async (sql) => void admin.exec(sql);
    reset = async () => void admin.exec(TABLES.map((t) => `DELETE FROM ${t};`).join('') + 'DELETE FROM sqlite_sequence;');
    drop = async () => {
      admin.close();
      rmSync(dir, { recursive: true, force: true });
    };
    connect = (logger) => {
      const client = new Database(file);
      client.pragma('foreign_keys = ON');
      closers.push(() => void client.close());
      return drizzleSqlite(client, { schema: sqliteSchema, logger });
    };
  } else if (kind === 'postgres') {
    schema = pgSchema;
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
      return drizzlePg(pool, { schema: pgSchema, logger });
    };
    driver = async (client) => {
      if (client === 'connection') {
        const one = new pg.Client({ connectionString: url, options: `-c search_path=${name}` });
        await one.connect();
        closers.push(() => one.end());
        return drizzlePg(one, { schema: pgSchema });
      }
      const pool = new pg.Pool({ connectionString: url, max: client.pool, options: `-c search_path=${name}` });
      closers.push(() => pool.end());
      return drizzlePg(pool, { schema: pgSchema });
    };
  } else {
    schema = mysqlSchema;
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
      return drizzleMysql(pool, { schema: mysqlSchema, mode: 'default', logger });
    };
    driver = async (client) => {
      const options = { host: '127.0.0.1', port: 3306, user: 'root', database: name };
      if (client === 'connection') {
        const one = await mysql.createConnection(options);
        closers.push(() => one.end());
        return drizzleMysql(one, { schema: mysqlSchema, mode: 'default' });
      }
      const pool = mysql.createPool({ ...options, connectionLimit: client.pool });
      closers.push(() => pool.end());
      return drizzleMysql(pool, { schema: mysqlSchema, mode: 'default' });
    };
  }
  for (const statement of ddl(kind)) await exec(statement);
  return {
    kind,
    schema: schema as Schema,
    exec,
    reset,
    driver: (client) => driver(client),
    client() {
      const log: string[] = [];
      const db = connect({ logQuery: (q) => void log.push(q) });
      return { db, log, queries: () => log.length };
    },
    async drop() {
      for (const close of closers.splice(0)) await close();
      await drop();
    },
  };
}

/** Paths of the test tables, as django-dumper's test models have them. `lookup` reads on its own connection. */
export function registerTables(dumper: Dumper, s: Schema, lookup: AnyDb): void {
  const slugOf = async (table: Schema['simple'] | Schema['related'], id: number): Promise<string | undefined> =>
    ((await lookup.select({ slug: table.slug }).from(table).where(eq(table.id, id))) as { slug: string }[])[0]?.slug;
  dumper.register('dz_simple', { dependentPaths: (r: { slug: string }) => ['/simple/', `/simple/${r.slug}/`] });
  dumper.register('dz_related', {
    async dependentPaths(r: { id: number; slug: string }) {
      // The simples a related row shows on: read before a delete, while its links exist.
      const simples = (await lookup
        .select({ slug: s.simple.slug })
        .from(s.relatedSimple)
        .innerJoin(s.simple, eq(s.simple.id, s.relatedSimple.simpleId))
        .where(eq(s.relatedSimple.relatedId, r.id))) as { slug: string }[];
      return [...simples.map((x) => `/simple/${x.slug}/`), `/related/${r.slug}/`];
    },
  });
  // The junction table: a link's pages are both sides'.
  dumper.register('dz_related_simple', {
    async dependentPaths(link: { relatedId: number; simpleId: number }) {
      const [simple, related] = await Promise.all([slugOf(s.simple, link.simpleId), slugOf(s.related, link.relatedId)]);
      return [...(simple ? [`/simple/${simple}/`] : []), ...(related ? [`/related/${related}/`] : [])];
    },
  });
  dumper.register('dz_comment', {
    // A generic relation: the target is looked up by type and id, as a GenericForeignKey does.
    async dependentPaths(c: { targetType: string; targetId: number }) {
      const slug = await slugOf(c.targetType === 'simple' ? s.simple : s.related, c.targetId);
      return slug ? [`/${c.targetType}/${slug}/`] : [];
    },
  });
  dumper.register('dz_broken', { dependentPaths: () => '/broken/' as unknown as string[] });
}

/** The site: every page reads through `db` (a plain database, counting its queries). */
export function site(db: AnyDb, s: Schema): http.RequestListener {
  const comments = async (type: string, id: number) =>
    ((await db.select().from(s.comment).where(and(eq(s.comment.targetType, type), eq(s.comment.targetId, id))).orderBy(asc(s.comment.id))) as { body: string }[])
      .map((c) => c.body)
      .join(',');
  const pages: Array<[RegExp, (m: RegExpExecArray) => Promise<string | undefined>]> = [
    [/^\/simple\/$/, async () => ((await db.select().from(s.simple).orderBy(asc(s.simple.slug))) as { name: string }[]).map((x) => x.name).join(',')],
    [
      /^\/simple\/([^/]+)\/$/,
      async (m) => {
        const [row] = (await db.select().from(s.simple).where(eq(s.simple.slug, m[1]!))) as { id: number; name: string }[];
        if (!row) return undefined;
        const related = (await db
          .select({ name: s.related.name })
          .from(s.relatedSimple)
          .innerJoin(s.related, eq(s.related.id, s.relatedSimple.relatedId))
          .where(eq(s.relatedSimple.simpleId, row.id))
          .orderBy(asc(s.related.name))) as { name: string }[];
        return `${row.name} | related: ${related.map((r) => r.name).join(',')} | comments: ${await comments('simple', row.id)}`;
      },
    ],
    [
      /^\/related\/([^/]+)\/$/,
      async (m) => {
        const [row] = (await db.select().from(s.related).where(eq(s.related.slug, m[1]!))) as { id: number; name: string }[];
        if (!row) return undefined;
        const simples = (await db
          .select({ name: s.simple.name })
          .from(s.relatedSimple)
          .innerJoin(s.simple, eq(s.simple.id, s.relatedSimple.simpleId))
          .where(eq(s.relatedSimple.relatedId, row.id))
          .orderBy(asc(s.simple.name))) as { name: string }[];
        return `${row.name} | simples: ${simples.map((r) => r.name).join(',')} | comments: ${await comments('related', row.id)}`;
      },
    ],
    [/^\/admin\/simple\/([^/]+)\/$/, async (m) => `admin ${((await db.select().from(s.simple).where(eq(s.simple.slug, m[1]!))) as { name: string }[])[0]?.name}`],
  ];
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const page = pages.find(([re]) => re.test(path));
    (page ? page[1](page[0].exec(path)!) : Promise.resolve(undefined)).then(
      (body) => {
        res.statusCode = body === undefined ? 404 : 200;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end(body ?? 'no such thing');
      },
      (error: Error) => {
        res.statusCode = 500;
        res.end(error.stack);
      },
    );
  };
}

export interface Page {
  status: number;
  body: string;
  cache: string | null;
  /** SQL statements the reader sent while the page was served. */
  queries: number;
}

export interface Stack {
  readonly dumper: Dumper;
  /** The writer's database, wrapped by drizzleDumper(). */
  readonly db: AnyDb;
  readonly s: Schema;
  get(path: string): Promise<Page>;
  /** Gets a page until it is a HIT. */
  warm(path: string): Promise<Page>;
  close(): Promise<void>;
}

/**
 * The site served through a dumper and reading with `reader` (its own connections: a page
 * rendered while a transaction is open reads the last commit, as another process would); the
 * writes go through `writer`, wrapped.
 */
export async function stack(
  t: TestDatabase,
  writer: Counted,
  reader: Counted,
  options: { dumper?: DumperOptions; drizzle?: DrizzleDumperOptions } = {},
): Promise<Stack> {
  const dumper = createDumper({ logger: false, ...options.dumper });
  registerTables(dumper, t.schema, reader.db);
  const db = drizzleDumper(dumper, writer.db, options.drizzle);
  const server = await listen(withDumper(dumper, site(reader.db, t.schema)));
  const get = async (path: string): Promise<Page> => {
    const before = reader.queries();
    const res = await fetch(server.url + path);
    const body = await res.text();
    return { status: res.status, body, cache: res.headers.get('x-cache'), queries: reader.queries() - before };
  };
  return {
    dumper,
    db,
    s: t.schema,
    get,
    async warm(path) {
      await get(path);
      const page = await get(path);
      if (page.cache !== 'HIT') throw new Error(`${path} was not cached: ${page.status} ${page.cache} ${page.body}`);
      return page;
    },
    async close() {
      await server.close();
      await dumper.close();
    },
  };
}

/** The kinds whose service is up (SQLite always); under CI=true a missing service throws. */
export async function kinds(needService: (name: 'postgres' | 'mariadb') => Promise<boolean>): Promise<Kind[]> {
  const out: Kind[] = ['sqlite'];
  if (await needService('postgres')) out.push('postgres');
  if (await needService('mariadb')) out.push('mariadb');
  return out;
}

/** A MemoryStore that records its invalidations and clears. */
export class RecordingStore extends MemoryStore {
  readonly calls: Array<readonly string[] | 'clear'> = [];
  override invalidate(tags: readonly string[]): number {
    this.calls.push([...tags]);
    return super.invalidate(tags);
  }
  override clear(): void {
    this.calls.push('clear');
    super.clear();
  }
}
