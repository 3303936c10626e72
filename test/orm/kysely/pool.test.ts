/**
 * A `dependentPaths` that reads through the same pool as the writes (here the wrapped db itself)
 * does not wait forever: outside a transaction it runs once the write's connection is released.
 * A pool of one connection, and a burst of as many writes at once as the pool has connections,
 * for an update, an upsert and a delete, each raced against a timeout.
 */
import { randomBytes } from 'node:crypto';
import { Kysely, MysqlDialect, PostgresDialect, type Generated } from 'kysely';
import { createPool } from 'mysql2';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { needService } from '../../support/services.js';

interface DB {
  ky_pool: { id: Generated<number>; slug: string; name: string };
}

type Server = 'postgres' | 'mysql';
const servers: Server[] = [];
if (await needService('postgres')) servers.push('postgres');
if (await needService('mariadb')) servers.push('mysql');

const HANG_MS = 5000;

/** The promise, or a failure once it has waited HANG_MS (a write waiting forever for a connection). */
function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${HANG_MS} ms (dependentPaths waits for a connection)`)), HANG_MS);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

describe.each(servers)('dependentPaths reading through the same pool (%s)', (server) => {
  const name = `ky_${randomBytes(6).toString('hex')}`;
  let admin: { exec(sql: string): Promise<void>; close(): Promise<void> };
  const opened: Kysely<DB>[] = [];

  beforeAll(async () => {
    if (server === 'postgres') {
      const client = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/test' });
      await client.connect();
      await client.query(`CREATE SCHEMA "${name}"`);
      await client.query(`SET search_path TO "${name}"`);
      await client.query('CREATE TABLE ky_pool (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)');
      admin = {
        exec: async (s) => void (await client.query(s)),
        close: async () => {
          await client.query(`DROP SCHEMA "${name}" CASCADE`);
          await client.end();
        },
      };
    } else {
      const { createConnection } = await import('mysql2/promise');
      const client = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root' });
      await client.query(`CREATE DATABASE \`${name}\``);
      await client.query(`USE \`${name}\``);
      await client.query('CREATE TABLE ky_pool (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, slug VARCHAR(191) NOT NULL UNIQUE, name VARCHAR(191) NOT NULL)');
      admin = {
        exec: async (s) => void (await client.query(s)),
        close: async () => {
          await client.query(`DROP DATABASE \`${name}\``);
          await client.end();
        },
      };
    }
  });
  afterAll(async () => {
    // A pool left waiting by a hang is not waited for.
    await Promise.all(opened.map((k) => Promise.race([k.destroy(), new Promise((r) => setTimeout(r, 1000))])));
    await admin?.close();
  });
  beforeEach(async () => {
    await admin.exec(server === 'postgres' ? 'TRUNCATE ky_pool RESTART IDENTITY' : 'TRUNCATE TABLE ky_pool');
  });

  function open(connections: number): { db: Kysely<DB>; dumper: Dumper; paths: Set<string>; seen: string[] } {
    const dialect =
      server === 'postgres'
        ? new PostgresDialect({ pool: new pg.Pool({ connectionString: 'postgresql://postgres@127.0.0.1:5432/test', max: connections, options: `-c search_path=${name}` }) })
        : new MysqlDialect({ pool: createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: name, connectionLimit: connections }) });
    const raw = new Kysely<DB>({ dialect });
    opened.push(raw);
    const dumper = createDumper({ logger: { debug() {}, warn() {}, error() {} } });
    const paths = new Set<string>();
    const seen: string[] = [];
    const db = kyselyDumper(dumper, raw);
    dumper.register('ky_pool', {
      // Reads through the wrapped db: the same pool as the write.
      async dependentPaths(row: { slug: string }) {
        const found = await db.selectFrom('ky_pool').select('name').where('slug', '=', row.slug).execute();
        seen.push(`${row.slug}:${found.map((r) => r.name).join(',')}`);
        return [`/pool/${row.slug}/`];
      },
    });
    const invalidateDependents = dumper.invalidateDependents.bind(dumper);
    dumper.invalidateDependents = async (d) => {
      for (const one of Symbol.iterator in d ? d : [d]) for (const p of one.paths) paths.add(p);
      return invalidateDependents(d);
    };
    return { db, dumper, paths, seen };
  }

  const upsert = (db: Kysely<DB>, slug: string, value: string) =>
    server === 'postgres'
      ? db
          .insertInto('ky_pool')
          .values({ slug, name: value })
          .onConflict((oc) => oc.column('slug').doUpdateSet({ name: value }))
          .execute()
      : db.insertInto('ky_pool').values({ slug, name: value }).onDuplicateKeyUpdate({ name: value }).execute();

  test('a pool of one connection: update, upsert, delete', async () => {
    const { db, dumper, paths, seen } = open(1);
    await admin.exec(`INSERT INTO ky_pool (slug, name) VALUES ('a', 'A'), ('b', 'B')`);
    await within('update', db.updateTable('ky_pool').set({ name: 'A2' }).where('slug', '=', 'a').execute());
    expect(paths.has('/pool/a/')).toBe(true);
    paths.clear();
    await within('upsert', upsert(db, 'b', 'B2'));
    expect(paths.has('/pool/b/')).toBe(true);
    paths.clear();
    seen.length = 0;
    await within('delete', db.deleteFrom('ky_pool').where('slug', '=', 'a').execute());
    expect(paths.has('/pool/a/')).toBe(true);
    // dependentPaths ran before the row was gone: its read found it.
    expect(seen).toContain('a:A2');
    expect(await db.selectFrom('ky_pool').select('slug').orderBy('slug').execute()).toEqual([{ slug: 'b' }]);
    await dumper.close();
  });

  test('a burst of as many writes at once as the pool has connections', async () => {
    const n = 4;
    const { db, dumper, paths, seen } = open(n);
    const slugs = Array.from({ length: n }, (_, i) => `s${i}`);
    await admin.exec(`INSERT INTO ky_pool (slug, name) VALUES ${slugs.map((s) => `('${s}', 'x')`).join(', ')}`);
    await within('updates', Promise.all(slugs.map((s) => db.updateTable('ky_pool').set({ name: 'y' }).where('slug', '=', s).execute())));
    for (const s of slugs) expect(paths.has(`/pool/${s}/`)).toBe(true);
    paths.clear();
    await within('upserts', Promise.all(slugs.map((s) => upsert(db, s, 'z'))));
    for (const s of slugs) expect(paths.has(`/pool/${s}/`)).toBe(true);
    paths.clear();
    seen.length = 0;
    await within('deletes', Promise.all(slugs.map((s) => db.deleteFrom('ky_pool').where('slug', '=', s).execute())));
    for (const s of slugs) {
      expect(paths.has(`/pool/${s}/`)).toBe(true);
      expect(seen).toContain(`${s}:z`);
    }
    expect(await db.selectFrom('ky_pool').selectAll().execute()).toEqual([]);
    await dumper.close();
  });
});
