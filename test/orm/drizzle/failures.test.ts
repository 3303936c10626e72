/**
 * Writes that committed while something around them failed must still leave no page stale:
 * - a `dependentPaths` that throws for a row a committed write wrote (SQLite, PostgreSQL, MariaDB):
 *   every page is invalidated before the write rejects;
 * - on better-sqlite3, one write of a transaction whose rows cannot be resolved does not cancel
 *   the invalidation after the commit of the transaction's other writes;
 * - on MariaDB at READ COMMITTED, a row another connection commits between page-dumper's locked
 *   read and the UPDATE or DELETE, which then affects it too: every page is invalidated.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import * as my from 'drizzle-orm/mysql-core';
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { drizzleDumper, drizzleSettled } from '../../../src/orm/drizzle/index.js';
import { needService } from '../../support/services.js';
import { kinds, openDatabase, RecordingStore, type TestDatabase } from './support.js';

const tag = (path: string) => `dumper.cached_path.${path.replace(/\/$/, '')}`;

describe.each(await kinds(needService))('drizzleDumper, a dependentPaths that throws after the write (%s)', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await openDatabase(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('an update committed whose new row’s dependentPaths throws: every page is invalidated, then the write rejects', async () => {
    await t.reset();
    const store = new RecordingStore();
    const dumper = createDumper({ logger: false, store });
    dumper.register('dz_simple', {
      dependentPaths(row: { slug: string }) {
        if (row.slug === 'boom') throw new Error('the read in dependentPaths failed');
        return [`/simple/${row.slug}/`];
      },
    });
    const raw = kind === 'sqlite' ? t.client().db : await t.driver({ pool: 2 });
    const db = drizzleDumper(dumper, raw);
    const s = t.schema;
    await db.insert(s.simple).values({ slug: 'vanilla', name: 'Vanilla' });
    store.calls.length = 0;
    await expect(db.update(s.simple).set({ slug: 'boom' }).where(eq(s.simple.slug, 'vanilla'))).rejects.toThrow('the read in dependentPaths failed');
    // The update committed; the old row's page (/simple/vanilla/) cannot stay cached.
    const [row] = await t.client().db.select().from(s.simple);
    expect(row.slug).toBe('boom');
    expect(store.calls).toContain('clear');
    await dumper.close();
  });

  if (kind === 'sqlite') {
    test('one write of a synchronous transaction whose dependentPaths fails does not cancel the others’ invalidation after the commit', async () => {
      await t.reset();
      const store = new RecordingStore();
      const dumper = createDumper({ logger: false, store });
      dumper.register('dz_simple', { dependentPaths: (row: { slug: string }) => [`/simple/${row.slug}/`] });
      // Returning a string is the documented TypeError.
      dumper.register('dz_broken', { dependentPaths: () => '/broken/' as unknown as string[] });
      const db = drizzleDumper(dumper, t.client().db);
      const s = t.schema;
      await db.insert(s.simple).values({ slug: 'a', name: 'A' });
      store.calls.length = 0;
      db.transaction((tx: typeof db) => {
        tx.update(s.simple).set({ name: 'A2' }).where(eq(s.simple.slug, 'a')).run();
        tx.insert(s.broken).values({ name: 'x' }).run();
      });
      await expect(drizzleSettled(db)).rejects.toThrow(TypeError);
      // At the writes: /simple/a/, then every page (dz_broken's rows could not be resolved);
      // after the commit, every page again (not the commit's rejection and nothing).
      expect(store.calls.flatMap((c) => (c === 'clear' ? ['clear'] : c))).toEqual([tag('/simple/a/'), 'clear', 'clear']);
      await dumper.close();
    });
  }
});

const hasMaria = await needService('mariadb');

describe.each(hasMaria ? ['mariadb'] : [])('drizzleDumper on MariaDB, a row that comes to match between the locked read and the write (%s)', () => {
  const name = `dz_${randomBytes(6).toString('hex')}`;
  const item = my.mysqlTable('dz_item', {
    id: my.serial('id').primaryKey(),
    slug: my.varchar('slug', { length: 64 }).notNull().unique(),
    grp: my.varchar('grp', { length: 64 }).notNull(),
    name: my.varchar('name', { length: 64 }).notNull(),
  });
  let admin: mysql.Connection;
  let pool: mysql.Pool;

  beforeAll(async () => {
    admin = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
    await admin.query(`CREATE DATABASE \`${name}\``);
    await admin.query(`CREATE TABLE \`${name}\`.dz_item (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, slug VARCHAR(64) NOT NULL UNIQUE, grp VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL)`);
    await admin.query(`INSERT INTO \`${name}\`.dz_item (slug, grp, name) VALUES ('a', 'g1', 'old'), ('c', 'g3', 'old')`);
    pool = mysql.createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: name, connectionLimit: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.query(`DROP DATABASE \`${name}\``);
    await admin?.end();
  });

  for (const op of ['update', 'delete'] as const) {
    test(`${op}: every page is invalidated`, async () => {
      const store = new RecordingStore();
      const dumper = createDumper({ logger: false, store });
      const seen: string[] = [];
      dumper.register('dz_item', { dependentPaths: (row: { slug: string }) => (seen.push(row.slug), [`/item/${row.slug}/`]) });
      let injected = false;
      const [grp, slug] = op === 'update' ? ['g1', 'b'] : ['g3', 'd'];
      const logger = {
        logQuery(query: string) {
          // Right before the write is sent (page-dumper's locked read has run), another client
          // commits a row it matches. The logger is synchronous: so is the client.
          if (!injected && new RegExp(`^${op}`, 'i').test(query)) {
            injected = true;
            execFileSync('mysql', ['-h127.0.0.1', '-uroot', name, '-e', `INSERT INTO dz_item (slug, grp, name) VALUES ('${slug}', '${grp}', 'old')`]);
          }
        },
      };
      const db = drizzleDumper(dumper, drizzleMysql(pool, { logger, mode: 'default' }));
      const write = op === 'update' ? db.update(item).set({ name: 'new' }).where(eq(item.grp, grp)) : db.delete(item).where(eq(item.grp, grp));
      const [header] = (await write) as unknown as [{ affectedRows: number }];
      expect(injected).toBe(true);
      expect(header.affectedRows).toBe(2);
      // The row that came in between was never read: its pages are covered by dropping every page.
      expect(seen).not.toContain(slug);
      expect(store.calls).toContain('clear');
      await dumper.close();
    });
  }
});
