/**
 * The databases the Sequelize suites run on, each isolated for one suite: SQLite in a file under
 * the OS temp folder, PostgreSQL in a schema `sq_<random>` of database `test` (reached through
 * search_path), MariaDB in a database `sq_<random>` (dialect 'mariadb'); every table name starts
 * with `sq_`. PostgreSQL and MariaDB are asked for with `needService()`: under CI a missing server
 * fails the suite, elsewhere it is left out with a notice. Each Sequelize instance counts the SQL
 * it sends through its `logging` option.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { Sequelize, type ModelStatic, type Model, type Options } from 'sequelize';
import { expect } from 'vitest';
import { withDumper } from '../../../src/http/node/index.js';
import type { Dependents, Dumper } from '../../../src/index.js';
import type { Mounted } from '../../support/behaviour.js';
import { listen } from '../../support/listen.js';
import { needService, SERVICES } from '../../support/services.js';

/** Counts the SQL statements a Sequelize instance sends. */
export class Counter {
  count = 0;
  readonly statements: string[] = [];
  readonly log = (sql: string): void => {
    this.count++;
    this.statements.push(sql);
  };
  /** The statements sent since `from` (a `count` read before). */
  since(from: number): string[] {
    return this.statements.slice(from);
  }
}

export interface Database {
  readonly sequelize: Sequelize;
  readonly counter: Counter;
  /** Another Sequelize instance on the same database (its own connections), counting its own SQL. */
  another(options?: Partial<Options>): Sequelize;
  /** Deletes every row of these models, in this order, without hooks (no integration sees it). */
  clear(models: ReadonlyArray<ModelStatic<Model>>): Promise<void>;
  close(): Promise<void>;
}

export interface Target {
  readonly name: 'PostgreSQL' | 'SQLite' | 'MariaDB';
  readonly dialect: 'postgres' | 'sqlite' | 'mariadb';
  open(options?: Partial<Options>): Promise<Database>;
}

const suffix = () => randomBytes(4).toString('hex');

function database(base: Options, drop: () => Promise<void>, extra: Partial<Options>): Database {
  const counter = new Counter();
  const instances: Sequelize[] = [];
  const make = (options: Partial<Options>, log: (sql: string) => void) => {
    const s = new Sequelize({ ...base, logging: log, ...options });
    instances.push(s);
    return s;
  };
  const sequelize = make(extra, counter.log);
  return {
    sequelize,
    counter,
    another: (options = {}) => make(options, () => {}),
    async clear(models) {
      for (const m of models) await m.destroy({ where: {}, force: true, hooks: false });
    },
    async close() {
      for (const s of instances.splice(0)) await s.close();
      await drop();
    },
  };
}

const sqlite: Target = {
  name: 'SQLite',
  dialect: 'sqlite',
  async open(extra = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-sequelize-'));
    return database({ dialect: 'sqlite', storage: join(dir, 'test.sqlite') }, async () => rmSync(dir, { recursive: true, force: true }), extra);
  },
};

const postgres: Target = {
  name: 'PostgreSQL',
  dialect: 'postgres',
  async open(extra = {}) {
    const schema = `sq_${suffix()}`;
    const admin = { host: SERVICES.postgres.host, port: SERVICES.postgres.port, user: process.env.PGUSER ?? 'postgres', database: 'test' };
    const client = new pg.Client(admin);
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    return database(
      {
        dialect: 'postgres',
        host: admin.host,
        port: admin.port,
        username: admin.user,
        database: admin.database,
        dialectOptions: { options: `-c search_path=${schema}` },
      },
      async () => {
        const c = new pg.Client(admin);
        await c.connect();
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await c.end();
      },
      extra,
    );
  },
};

const mariadb: Target = {
  name: 'MariaDB',
  dialect: 'mariadb',
  async open(extra = {}) {
    const name = `sq_${suffix()}`;
    const admin = { host: SERVICES.mariadb.host, port: SERVICES.mariadb.port, user: 'root' };
    const c = await mysql.createConnection(admin);
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    return database(
      { dialect: 'mariadb', host: admin.host, port: admin.port, username: admin.user, database: name },
      async () => {
        const d = await mysql.createConnection(admin);
        await d.query(`DROP DATABASE IF EXISTS ${name}`);
        await d.end();
      },
      extra,
    );
  },
};

/** The targets whose server is up (under CI all three, or the suite fails). */
export async function databases(): Promise<Target[]> {
  const [hasPg, hasMaria] = [await needService('postgres'), await needService('mariadb')];
  return [sqlite, ...(hasPg ? [postgres] : []), ...(hasMaria ? [mariadb] : [])];
}

export { sqlite as sqliteTarget };

// ---------------------------------------------------------------- HTTP

export interface Page {
  status: number;
  cache: string | null;
  body: string;
  /** SQL statements the request ran. */
  queries: number;
}

/** A site served through `withDumper` (the front door: a hit never reaches the app). */
export class Site {
  readonly #mounted: Mounted;
  readonly #counter: Counter;

  private constructor(mounted: Mounted, counter: Counter) {
    this.#mounted = mounted;
    this.#counter = counter;
  }

  static async start(dumper: Dumper, counter: Counter, app: (path: string) => Promise<{ status: number; body: string }>): Promise<Site> {
    const listener: http.RequestListener = (req, res) => {
      app(new URL(req.url ?? '/', 'http://x').pathname).then(
        ({ status, body }) => {
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(body);
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(error.stack);
        },
      );
    };
    return new Site(await listen(withDumper(dumper, listener)), counter);
  }

  async get(path: string): Promise<Page> {
    const before = this.#counter.count;
    const res = await fetch(this.#mounted.url + path);
    const body = await res.text();
    return { status: res.status, cache: res.headers.get('x-cache'), body, queries: this.#counter.count - before };
  }

  /** Gets each page until it is stored: the second request must be a HIT. */
  async warm(...paths: string[]): Promise<void> {
    for (const path of paths) {
      const first = await this.get(path);
      expect(first.status, `${path}: ${first.body}`).toBe(200);
      const second = await this.get(path);
      expect(second.cache, path).toBe('HIT');
    }
  }

  /** Expects each page to be rendered again (its entry was invalidated). */
  async expectMiss(...paths: string[]): Promise<Page[]> {
    const pages: Page[] = [];
    for (const path of paths) {
      const page = await this.get(path);
      expect(page.cache, `${path} should have been invalidated`).toBe('MISS');
      pages.push(page);
    }
    return pages;
  }

  async expectHit(...paths: string[]): Promise<void> {
    for (const path of paths) expect((await this.get(path)).cache, `${path} should still be cached`).toBe('HIT');
  }

  close(): Promise<void> {
    return this.#mounted.close();
  }
}

/** A logger that records warn- and error-level messages (the model-wide fallback logs a warning). */
export function recordingLogger() {
  const warnings: string[] = [];
  const errors: string[] = [];
  return {
    warnings,
    errors,
    logger: {
      isLevelEnabled: (level: string) => level !== 'debug',
      debug() {},
      warn(message: string) {
        warnings.push(message);
      },
      error(message: string) {
        errors.push(message);
      },
    },
  };
}

/** The paths of every `invalidateDependents()` call, one array per call. */
export function invalidations(d: Dumper): string[][] {
  const calls: string[][] = [];
  const original = d.invalidateDependents.bind(d);
  d.invalidateDependents = async (deps: Dependents | Iterable<Dependents>) => {
    const list = 'paths' in deps ? [deps as Dependents] : [...(deps as Iterable<Dependents>)];
    calls.push(list.flatMap((x) => x.paths));
    return original(deps);
  };
  return calls;
}
