/**
 * The databases the Sequelize suites run on, each isolated for one suite: SQLite in a file under
 * the OS temp folder, PostgreSQL in a schema `sq_<random>` of database `test` (reached through
 * search_path), MariaDB in a database `sq_<random>` (dialect 'mariadb'); every table name starts
 * with `sq_`. PostgreSQL and MariaDB are asked for with `needService()`: under CI a missing server
 * fails the suite, elsewhere it is left out with a notice. Each Sequelize instance counts the SQL
 * it sends through its `logging` option.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { Sequelize, type ModelStatic, type Model, type Options } from 'sequelize';
import type { Dependents, Dumper } from '../../../src/index.js';
import { needService, SERVICES } from '../../support/services.js';
import { Site as OrmSite, type OrmApp } from '../../support/orm-site.js';

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

export type { Page } from '../../support/orm-site.js';
export { recordingLogger } from '../../support/orm-site.js';
export type Site = OrmSite;
/** The shared ORM test site (test/support/orm-site.ts), its statements counted by `counter`. */
export const Site = {
  start: (dumper: Dumper, counter: Counter, app: OrmApp): Promise<OrmSite> => OrmSite.start(dumper, () => counter.count, app),
};

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

/**
 * The part of a cls-hooked namespace that Sequelize 6 calls (`run`, `bind`, `get`, `set`), over
 * AsyncLocalStorage: cls-hooked is not installed here. For `Sequelize.useCLS(clsNamespace())`.
 */
export function clsNamespace() {
  const storage = new AsyncLocalStorage<Map<string, unknown>>();
  return {
    run<T>(fn: (context: Map<string, unknown>) => T): Map<string, unknown> {
      const context = new Map(storage.getStore() ?? []);
      storage.run(context, () => fn(context));
      return context;
    },
    bind<F extends (...args: never[]) => unknown>(fn: F): F {
      return fn;
    },
    get(key: string): unknown {
      return storage.getStore()?.get(key);
    },
    set<T>(key: string, value: T): T {
      storage.getStore()?.set(key, value);
      return value;
    },
  };
}
