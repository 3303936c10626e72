/**
 * The databases the MikroORM suites run on, each isolated for one test file: SQLite (a file under
 * the OS temp folder, @mikro-orm/better-sqlite), PostgreSQL (a schema `mo_<random>` in database
 * `test`) and MariaDB (a database `mo_<random>`), both dropped afterwards. Every table name starts
 * with `mo_`. Each ORM opened on a database counts the SQL statements it sends through
 * MikroORM's own logger (`debug: ['query']`). PostgreSQL and MariaDB are asked for with
 * `needService()`: under CI a missing server fails the suite, elsewhere it is left out with a notice.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BetterSqliteDriver } from '@mikro-orm/better-sqlite';
import {
  MikroORM,
  type AnyEntity,
  type EntityDictionary,
  type EntitySchema,
  type FilterQuery,
  type NativeInsertUpdateManyOptions,
  type Options,
  type QueryResult,
  type UpsertManyOptions,
} from '@mikro-orm/core';
import { AbstractSqlDriver } from '@mikro-orm/knex';
import { MariaDbDriver } from '@mikro-orm/mariadb';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Dumper } from '../../../src/index.js';
import { MemoryStore } from '../../../src/index.js';
import { needService, SERVICES } from '../../support/services.js';
import { Site as OrmSite, type OrmApp } from '../../support/orm-site.js';

export type Kind = 'SQLite' | 'PostgreSQL' | 'MariaDB';

/** A MikroORM instance that counts the statements it sends. */
export interface Counted {
  readonly orm: MikroORM;
  readonly statements: string[];
  queries(): number;
}

export interface TestDatabase {
  readonly kind: Kind;
  /**
   * A MikroORM instance on this database. The entity classes must be its own (MikroORM keeps
   * per-ORM state on an entity class's prototype): make them with a factory per instance.
   * A second instance needs its own `contextName`, or it joins the first one's transactions.
   */
  open(entities: ReadonlyArray<EntitySchema<any>>, options?: Partial<Options>): Promise<Counted>;
  /** Deletes every row of the `mo_` tables, without any ORM seeing it. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

const suffix = () => randomBytes(5).toString('hex');

/**
 * MikroORM 6.6.16's MariaDB driver fails two writes after they have run, by reading a `rows` the
 * base driver left out of its result:
 * - every insert into a table with a composite primary key made by `nativeInsertMany` ("Cannot
 *   set properties of undefined (setting '0')"): a flush that adds an item to a loaded
 *   many-to-many collection inserts its join-table rows that way;
 * - `em.upsertMany()` of rows without their primary key ("Cannot read properties of undefined
 *   (reading '0')").
 * This driver skips MariaDB's key computation for the first (those tables have no generated
 * key) and makes it only when it can for the second, so the suites can exercise these writes on
 * MariaDB. It is not page-dumper's: see docs/mikro-orm.md.
 */
export class FixedMariaDbDriver extends MariaDbDriver {
  override async nativeInsertMany<T extends object>(
    entityName: string,
    data: EntityDictionary<T>[],
    options?: NativeInsertUpdateManyOptions<T>,
  ): Promise<QueryResult<T>> {
    if (this.getPrimaryKeyFields(entityName).length > 1) return AbstractSqlDriver.prototype.nativeInsertMany.call(this, entityName, data, options) as Promise<QueryResult<T>>;
    return super.nativeInsertMany(entityName, data, options);
  }

  override async nativeUpdateMany<T extends object>(
    entityName: string,
    where: FilterQuery<T>[],
    data: EntityDictionary<T>[],
    options: NativeInsertUpdateManyOptions<T> & UpsertManyOptions<T> = {},
  ): Promise<QueryResult<T>> {
    const res = (await AbstractSqlDriver.prototype.nativeUpdateMany.call(this, entityName, where as never, data as never, options as never)) as QueryResult<T>;
    const [pk] = this.getPrimaryKeyFields(entityName);
    const increment = await (this as unknown as { getAutoIncrementIncrement(ctx: unknown): Promise<number> }).getAutoIncrementIncrement(options.ctx);
    let i = 0;
    const rows = where.map((cond) => {
      const c = cond as Record<string, unknown>;
      if (res.insertId != null && Object.keys(c).length === 0) return { [pk!]: Number(res.insertId) + i++ * increment };
      return c[pk!] == null ? undefined : { [pk!]: c[pk!] };
    });
    if (rows.every((r) => r !== undefined)) res.rows = rows as never;
    res.row = res.rows?.[0];
    return res;
  }
}

/** The kinds whose service is up (SQLite always; under CI all three, or the suite fails). */
export async function kinds(): Promise<Kind[]> {
  const out: Kind[] = ['SQLite'];
  if (await needService('postgres')) out.push('PostgreSQL');
  if (await needService('mariadb')) out.push('MariaDB');
  return out;
}

export async function openDatabase(kind: Kind): Promise<TestDatabase> {
  const name = `mo_${suffix()}`;
  const orms: Counted[] = [];
  let base: Partial<Options>;
  let exec: (sql: string) => Promise<unknown>;
  let tables: () => Promise<string[]>;
  let drop: () => Promise<void>;
  let clearSql: (tables: string[]) => string[];

  if (kind === 'SQLite') {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-mikro-orm-'));
    base = { driver: BetterSqliteDriver, dbName: join(dir, `${name}.sqlite`) };
    exec = async () => undefined;
    tables = async () => [];
    drop = async () => rmSync(dir, { recursive: true, force: true });
    clearSql = (t) => ['PRAGMA foreign_keys = OFF', ...t.map((x) => `DELETE FROM "${x}"`), "DELETE FROM sqlite_sequence", 'PRAGMA foreign_keys = ON'];
  } else if (kind === 'PostgreSQL') {
    const admin = new pg.Client({ host: SERVICES.postgres.host, port: SERVICES.postgres.port, user: process.env.PGUSER ?? 'postgres', database: 'test' });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${name}"`);
    base = { driver: PostgreSqlDriver, host: SERVICES.postgres.host, port: SERVICES.postgres.port, user: process.env.PGUSER ?? 'postgres', dbName: 'test', schema: name };
    exec = (sql) => admin.query(sql);
    tables = async () =>
      (await admin.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1', [name])).rows.map((r) => r.tablename);
    clearSql = (t) => (t.length === 0 ? [] : [`TRUNCATE ${t.map((x) => `"${name}"."${x}"`).join(', ')} RESTART IDENTITY CASCADE`]);
    drop = async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
      await admin.end();
    };
  } else {
    const admin = await mysql.createConnection({ host: SERVICES.mariadb.host, port: SERVICES.mariadb.port, user: 'root', multipleStatements: true });
    await admin.query(`CREATE DATABASE \`${name}\``);
    await admin.query(`USE \`${name}\``);
    base = { driver: FixedMariaDbDriver, host: SERVICES.mariadb.host, port: SERVICES.mariadb.port, user: 'root', password: '', dbName: name };
    exec = (sql) => admin.query(sql);
    tables = async () => ((await admin.query(`SHOW TABLES`))[0] as Array<Record<string, string>>).map((r) => Object.values(r)[0]!);
    clearSql = (t) => ['SET FOREIGN_KEY_CHECKS = 0', ...t.map((x) => `TRUNCATE TABLE \`${x}\``), 'SET FOREIGN_KEY_CHECKS = 1'];
    drop = async () => {
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.end();
    };
  }

  let created = false;
  let sqliteAdmin: MikroORM | undefined;
  return {
    kind,
    async open(entities, options = {}) {
      const statements: string[] = [];
      const orm = await MikroORM.init({
        ...base,
        entities: [...entities],
        debug: ['query'],
        colors: false,
        logger: (message: string) => void statements.push(message),
        allowGlobalContext: true,
        ...options,
      } as Options);
      if (!created) {
        created = true;
        await orm.schema.createSchema();
        // WAL: a reader on another connection reads the last commit while a transaction is open.
        if (kind === 'SQLite') await orm.em.getConnection().execute('PRAGMA journal_mode = WAL');
      }
      if (kind === 'SQLite') sqliteAdmin ??= orm;
      statements.length = 0;
      const counted: Counted = { orm, statements, queries: () => statements.filter((s) => s.startsWith('[query]')).length };
      orms.push(counted);
      return counted;
    },
    async clear() {
      if (kind === 'SQLite') {
        const knex = (sqliteAdmin!.em.getConnection() as unknown as { getKnex(): { raw(sql: string): Promise<Array<{ name: string }>> } }).getKnex();
        const t = (await knex.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mo\\_%' ESCAPE '\\'")).map((r) => r.name);
        for (const sql of clearSql(t)) await knex.raw(sql);
        return;
      }
      for (const sql of clearSql(await tables())) await exec(sql);
    },
    async close() {
      for (const o of orms.splice(0).reverse()) await o.orm.close(true);
      await drop();
    },
  };
}

// ---------------------------------------------------------------- HTTP

export type { Page } from '../../support/orm-site.js';
export { recordingLogger } from '../../support/orm-site.js';
export type Site = OrmSite;
export type { OrmApp as App };
/** The shared ORM test site (test/support/orm-site.ts), its statements counted by `counter`. */
export const Site = {
  start: (dumper: Dumper, counter: Counted, app: OrmApp): Promise<OrmSite> => OrmSite.start(dumper, () => counter.queries(), app),
};

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

export type { AnyEntity };
