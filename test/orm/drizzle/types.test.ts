/**
 * The wrapped database keeps its type: schema, relational queries and `$inferSelect` intact,
 * for each driver.
 */
import Database from 'better-sqlite3';
import { drizzle as drizzleSqlite, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { drizzle as drizzleMysql, type MySql2Database } from 'drizzle-orm/mysql2';
import { drizzle as drizzlePg, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expectTypeOf, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { drizzleDumper } from '../../../src/orm/drizzle/index.js';
import { pgSchema } from './support.js';

describe('drizzleDumper types', () => {
  test('node-postgres: the same type, relational queries and $inferSelect included', async () => {
    const pool = new pg.Pool({ max: 1 });
    const dumper = createDumper({ logger: false });
    const plain = drizzlePg(pool, { schema: pgSchema });
    const db = drizzleDumper(dumper, plain);
    expectTypeOf(db).toEqualTypeOf<NodePgDatabase<typeof pgSchema> & { $client: pg.Pool }>();
    expectTypeOf<Awaited<ReturnType<typeof db.query.simple.findMany>>>().toEqualTypeOf<Array<typeof pgSchema.simple.$inferSelect>>();
    expectTypeOf(db.update(pgSchema.simple).set({ name: 'x' }).returning()).resolves.toEqualTypeOf<Array<typeof pgSchema.simple.$inferSelect>>();
    await pool.end();
    await dumper.close();
  });

  test('better-sqlite3 and mysql2: the same type', async () => {
    const dumper = createDumper({ logger: false });
    const client = new Database(':memory:');
    const lite = drizzleDumper(dumper, drizzleSqlite(client));
    expectTypeOf(lite).toEqualTypeOf<BetterSQLite3Database & { $client: Database.Database }>();
    const pool = mysql.createPool({ host: '127.0.0.1' });
    const my = drizzleMysql(pool);
    expectTypeOf(drizzleDumper(dumper, my)).toEqualTypeOf<typeof my>();
    expectTypeOf(my).toMatchTypeOf<MySql2Database>();
    client.close();
    await pool.end();
    await dumper.close();
  });
});
