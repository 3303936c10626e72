/**
 * The databases the Kysely integration is tested on, each isolated for one test file: SQLite (a
 * WAL file under the OS temp folder, one better-sqlite3 connection per Kysely), PostgreSQL (a
 * schema `ky_<random>` in database `test`) and MariaDB (a database `ky_<random>`). Every table is
 * `ky_`-prefixed and created with plain SQL. Each Kysely counts the SQL statements it sends
 * (through Kysely's `log`), so a test can say how many queries a page or a write ran.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, MysqlDialect, PostgresDialect, sql, SqliteDialect, type Dialect as KyselyDialect, type Generated } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import { withDumper } from '../../../src/http/node/index.js';
import { createDumper, type Dumper, type DumperOptions } from '../../../src/index.js';
import { kyselyDumper, type KyselyDumperOptions } from '../../../src/orm/kysely/index.js';
import { listen } from '../../support/listen.js';
import { needService } from '../../support/services.js';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

export interface DB {
  ky_simple: { id: Generated<number>; slug: string; name: string };
  ky_related: { id: Generated<number>; slug: string; name: string };
  ky_related_simple: { related_id: number; simple_id: number };
  ky_comment: { id: Generated<number>; target_type: string; target_id: number; body: string };
  ky_note: { id: Generated<number>; body: string; simple_id: number | null };
  ky_broken: { id: Generated<number>; name: string };
  ky_unwatched: { id: Generated<number>; name: string };
}

/** The dialects whose service is up (SQLite always); under CI=true a missing service throws. */
export async function dialects(): Promise<Dialect[]> {
  const out: Dialect[] = ['sqlite'];
  if (await needService('postgres')) out.push('postgres');
  if (await needService('mariadb')) out.push('mysql');
  return out;
}

const TABLES = ['ky_related_simple', 'ky_note', 'ky_comment', 'ky_broken', 'ky_unwatched', 'ky_related', 'ky_simple'];

function ddl(dialect: Dialect): string[] {
  const serial = { sqlite: 'INTEGER PRIMARY KEY AUTOINCREMENT', postgres: 'SERIAL PRIMARY KEY', mysql: 'INT NOT NULL AUTO_INCREMENT PRIMARY KEY' }[dialect];
  const text = dialect === 'mysql' ? 'VARCHAR(191)' : 'TEXT';
  return [
    `CREATE TABLE ky_simple (id ${serial}, slug ${text} NOT NULL UNIQUE, name ${text} NOT NULL)`,
    `CREATE TABLE ky_related (id ${serial}, slug ${text} NOT NULL UNIQUE, name ${text} NOT NULL)`,
    `CREATE TABLE ky_related_simple (related_id INTEGER NOT NULL REFERENCES ky_related (id) ON DELETE CASCADE, ` +
      `simple_id INTEGER NOT NULL REFERENCES ky_simple (id) ON DELETE CASCADE, PRIMARY KEY (related_id, simple_id))`,
    `CREATE TABLE ky_comment (id ${serial}, target_type ${text} NOT NULL, target_id INTEGER NOT NULL, body ${text} NOT NULL)`,
    `CREATE TABLE ky_note (id ${serial}, body ${text} NOT NULL, simple_id INTEGER REFERENCES ky_simple (id) ON DELETE SET NULL)`,
    `CREATE TABLE ky_broken (id ${serial}, name ${text} NOT NULL)`,
    `CREATE TABLE ky_unwatched (id ${serial}, name ${text} NOT NULL)`,
  ];
}

/** A Kysely that counts the statements it sends. */
export interface Counted {
  readonly db: Kysely<DB>;
  queries(): number;
  readonly log: string[];
}

export interface TestDatabase {
  readonly dialect: Dialect;
  /** A new Kysely on its own connections (pool), counting its statements. */
  client(): Counted;
  /** Empties every table and restarts the ids at 1. */
  reset(): Promise<void>;
  /** Runs SQL on the admin connection. */
  exec(statement: string): Promise<void>;
  /** Destroys the clients and drops the database. */
  drop(): Promise<void>;
}

export async function openDatabase(dialect: Dialect): Promise<TestDatabase> {
  const name = `ky_${randomBytes(6).toString('hex')}`;
  const clients: Kysely<DB>[] = [];
  let make: () => KyselyDialect;
  let exec: (statement: string) => Promise<void>;
  let reset: () => Promise<void>;
  let drop: () => Promise<void>;

  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-kysely-'));
    const file = join(dir, `${name}.sqlite`);
    const admin = new Database(file);
    // WAL: a reader on another connection sees the last commit while a transaction is open.
    admin.pragma('journal_mode = WAL');
    exec = async (s) => void admin.exec(s);
    reset = async () => void admin.exec(TABLES.map((t) => `DELETE FROM ${t};`).join('') + 'DELETE FROM sqlite_sequence;');
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
    reset = async () => void (await admin.query(`TRUNCATE ${TABLES.join(', ')} RESTART IDENTITY CASCADE`));
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
      const log: string[] = [];
      const db = new Kysely<DB>({
        dialect: make(),
        log: (event) => {
          if (event.level === 'query') log.push(event.query.sql);
        },
      });
      clients.push(db);
      return { db, log, queries: () => log.length };
    },
    async drop() {
      await Promise.all(clients.splice(0).map((c) => c.destroy()));
      await drop();
    },
  };
}

/** Paths of the test tables, as django-dumper's test models have them. Lookups read through `lookup`. */
export function registerTables(dumper: Dumper, lookup: Kysely<DB>): void {
  const simpleSlug = async (id: number) => (await lookup.selectFrom('ky_simple').select('slug').where('id', '=', id).executeTakeFirst())?.slug;
  const relatedSlug = async (id: number) => (await lookup.selectFrom('ky_related').select('slug').where('id', '=', id).executeTakeFirst())?.slug;
  dumper.register('ky_simple', { dependentPaths: (s: DB['ky_simple'] & { id: number }) => ['/simple/', `/simple/${s.slug}/`] });
  dumper.register('ky_related', {
    async dependentPaths(r: { id: number; slug: string }) {
      const simples = await lookup
        .selectFrom('ky_related_simple')
        .innerJoin('ky_simple', 'ky_simple.id', 'ky_related_simple.simple_id')
        .select('ky_simple.slug')
        .where('ky_related_simple.related_id', '=', r.id)
        .execute();
      return [...simples.map((s) => `/simple/${s.slug}/`), `/related/${r.slug}/`];
    },
  });
  // The junction table: each row reaches the pages of both sides.
  dumper.register('ky_related_simple', {
    async dependentPaths(j: { related_id: number; simple_id: number }) {
      const [s, r] = await Promise.all([simpleSlug(j.simple_id), relatedSlug(j.related_id)]);
      return [...(s === undefined ? [] : [`/simple/${s}/`]), ...(r === undefined ? [] : [`/related/${r}/`])];
    },
  });
  // A generic relation: the target is looked up by type and id, as a GenericForeignKey does.
  dumper.register('ky_comment', {
    async dependentPaths(c: { target_type: string; target_id: number }) {
      const slug = c.target_type === 'simple' ? await simpleSlug(c.target_id) : await relatedSlug(c.target_id);
      return slug === undefined ? [] : [`/${c.target_type}/${slug}/`];
    },
  });
  dumper.register('ky_note', {
    async dependentPaths(n: { simple_id: number | null }) {
      const slug = n.simple_id === null ? undefined : await simpleSlug(n.simple_id);
      return slug === undefined ? [] : [`/simple/${slug}/`];
    },
  });
  dumper.register('ky_broken', { dependentPaths: () => '/broken/' as unknown as string[] });
}

/** The site: every page reads through `db`. */
export function site(db: Kysely<DB>): http.RequestListener {
  const pages: Array<[RegExp, (m: RegExpExecArray) => Promise<string | undefined>]> = [
    [/^\/simple\/$/, async () => (await db.selectFrom('ky_simple').select('name').orderBy('slug').execute()).map((s) => s.name).join(',')],
    [
      /^\/simple\/([^/]+)\/$/,
      async (m) => {
        const s = await db.selectFrom('ky_simple').selectAll().where('slug', '=', m[1]!).executeTakeFirst();
        if (!s) return undefined;
        const related = await db
          .selectFrom('ky_related')
          .innerJoin('ky_related_simple', 'ky_related_simple.related_id', 'ky_related.id')
          .select('ky_related.name')
          .where('ky_related_simple.simple_id', '=', s.id)
          .orderBy('ky_related.name')
          .execute();
        const notes = await db.selectFrom('ky_note').select('body').where('simple_id', '=', s.id).orderBy('id').execute();
        const comments = await db.selectFrom('ky_comment').select('body').where('target_type', '=', 'simple').where('target_id', '=', s.id).orderBy('id').execute();
        return `${s.name} | related: ${related.map((r) => r.name).join(',')} | notes: ${notes.map((n) => n.body).join(',')} | comments: ${comments.map((c) => c.body).join(',')}`;
      },
    ],
    [
      /^\/related\/([^/]+)\/$/,
      async (m) => {
        const r = await db.selectFrom('ky_related').selectAll().where('slug', '=', m[1]!).executeTakeFirst();
        if (!r) return undefined;
        const simples = await db
          .selectFrom('ky_simple')
          .innerJoin('ky_related_simple', 'ky_related_simple.simple_id', 'ky_simple.id')
          .select('ky_simple.name')
          .where('ky_related_simple.related_id', '=', r.id)
          .orderBy('ky_simple.slug')
          .execute();
        const comments = await db.selectFrom('ky_comment').select('body').where('target_type', '=', 'related').where('target_id', '=', r.id).orderBy('id').execute();
        return `${r.name} | simples: ${simples.map((x) => x.name).join(',')} | comments: ${comments.map((c) => c.body).join(',')}`;
      },
    ],
    [/^\/admin\/simple\/([^/]+)\/$/, async (m) => `admin ${(await db.selectFrom('ky_simple').select('name').where('slug', '=', m[1]!).executeTakeFirst())?.name}`],
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
  /** The writer, wrapped by kyselyDumper. */
  readonly db: Kysely<DB>;
  readonly warnings: string[];
  get(path: string): Promise<Page>;
  /** Gets each page until it is a HIT. */
  warm(...paths: string[]): Promise<Page>;
  close(): Promise<void>;
}

/**
 * The writes go through `writer` (wrapped), the pages read through `reader`: its own
 * connections, so a page rendered while a transaction is open reads the last commit, as another
 * process would.
 */
export async function stack(writer: Kysely<DB>, reader: Counted, options: { dumper?: DumperOptions; kysely?: KyselyDumperOptions } = {}): Promise<Stack> {
  const warnings: string[] = [];
  const logger = { debug() {}, info() {}, warn: (message: string) => void warnings.push(message), error: (message: string) => void warnings.push(`error: ${message}`) };
  const dumper = createDumper({ logger, ...options.dumper });
  registerTables(dumper, reader.db);
  const db = kyselyDumper(dumper, writer, options.kysely);
  const server = await listen(withDumper(dumper, site(reader.db)));
  const get = async (path: string): Promise<Page> => {
    const before = reader.queries();
    const res = await fetch(server.url + path);
    const body = await res.text();
    return { status: res.status, body, cache: res.headers.get('x-cache'), queries: reader.queries() - before };
  };
  return {
    dumper,
    db,
    warnings,
    get,
    async warm(...paths) {
      let page: Page | undefined;
      for (const path of paths) {
        await get(path);
        page = await get(path);
        if (page.cache !== 'HIT') throw new Error(`${path} was not cached: ${page.status} ${page.cache} ${page.body}`);
      }
      return page!;
    },
    async close() {
      await server.close();
      await dumper.close();
    },
  };
}

/** Seeds simples a, b and related r (linked to nothing). */
export async function seed(db: Kysely<DB>): Promise<void> {
  await db.insertInto('ky_simple').values([{ slug: 'a', name: 'Alpha' }, { slug: 'b', name: 'Beta' }]).execute();
  await db.insertInto('ky_related').values({ slug: 'r', name: 'Rho' }).execute();
}

export { sql };
