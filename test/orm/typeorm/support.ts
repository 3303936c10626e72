/**
 * The databases the TypeORM suites run on, each isolated for one suite: PostgreSQL in a schema of
 * its own, MariaDB in a database of its own (both dropped afterwards), SQLite in a temporary file.
 * PostgreSQL and MariaDB are asked for with `needService()`: under CI a missing server fails the
 * suite, elsewhere it is left out with a notice.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { DataSource, type DataSourceOptions, type EntitySchema, type Logger, type MixedList } from 'typeorm';
import type { Dumper } from '../../../src/index.js';
import { needService, SERVICES } from '../../support/services.js';
import { Site as OrmSite, type OrmApp } from '../../support/orm-site.js';

/** Counts the SQL statements TypeORM sends, through its own logger. */
export class CountingLogger implements Logger {
  count = 0;
  readonly statements: string[] = [];
  logQuery(query: string): void {
    this.count++;
    this.statements.push(query);
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

export interface Database {
  readonly dataSource: DataSource;
  readonly logger: CountingLogger;
  /** Deletes every row (join tables first), without any integration seeing it. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export interface Target {
  readonly name: 'PostgreSQL' | 'SQLite' | 'MariaDB';
  /** Whether readers share the writer's connection (and so see its uncommitted rows). */
  readonly sharedConnection: boolean;
  open(entities: MixedList<Function | string | EntitySchema>): Promise<Database>;
}

const suffix = () => randomBytes(4).toString('hex');

async function start(options: DataSourceOptions, drop: () => Promise<void>): Promise<Database> {
  const logger = new CountingLogger();
  const dataSource = new DataSource({ ...options, synchronize: true, logger });
  try {
    await dataSource.initialize();
  } catch (error) {
    await drop();
    throw error;
  }
  return {
    dataSource,
    logger,
    async clear() {
      const tables = [...dataSource.entityMetadatas].sort((a, b) => Number(b.isJunction) - Number(a.isJunction));
      for (const m of tables) await dataSource.createQueryBuilder().delete().from(m.target).execute();
    },
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
      await drop();
    },
  };
}

const postgres: Target = {
  name: 'PostgreSQL',
  sharedConnection: false,
  async open(entities) {
    const schema = `typeorm_${suffix()}`;
    const admin = { host: SERVICES.postgres.host, port: SERVICES.postgres.port, user: process.env.PGUSER ?? 'postgres', database: 'test' };
    const client = new pg.Client(admin);
    await client.connect();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.end();
    return start(
      { type: 'postgres', host: admin.host, port: admin.port, username: admin.user, database: admin.database, schema, entities },
      async () => {
        const c = new pg.Client(admin);
        await c.connect();
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await c.end();
      },
    );
  },
};

const mariadb: Target = {
  name: 'MariaDB',
  sharedConnection: false,
  async open(entities) {
    const database = `typeorm_${suffix()}`;
    const admin = { host: SERVICES.mariadb.host, port: SERVICES.mariadb.port, user: 'root' };
    const c = await mysql.createConnection(admin);
    await c.query(`CREATE DATABASE ${database}`);
    await c.end();
    return start({ type: 'mariadb', host: admin.host, port: admin.port, username: admin.user, database, entities }, async () => {
      const d = await mysql.createConnection(admin);
      await d.query(`DROP DATABASE IF EXISTS ${database}`);
      await d.end();
    });
  },
};

const sqlite: Target = {
  name: 'SQLite',
  sharedConnection: true,
  async open(entities) {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-typeorm-'));
    return start({ type: 'better-sqlite3', database: join(dir, 'test.sqlite'), entities }, async () => {
      rmSync(dir, { recursive: true, force: true });
    });
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
  start: (dumper: Dumper, counter: CountingLogger, app: OrmApp): Promise<OrmSite> => OrmSite.start(dumper, () => counter.count, app),
};
