/**
 * PostgreSQL outside a transaction: a row another connection renames between the write's read
 * and the UPDATE. page-dumper runs the read (locked) and the write in a transaction of its own,
 * so the rename waits for the write's commit: no state of the row goes unread. The rename is
 * started just before the UPDATE is sent (a one-shot hook on the pool's client), and the write
 * goes on once the rename has either committed or is waiting on a lock (pg_stat_activity).
 */
import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, type Generated } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { kyselyDumper } from '../../../src/orm/kysely/index.js';
import { needService } from '../../support/services.js';

interface DB {
  ky_race: { id: Generated<number>; slug: string; name: string };
}

const URL = 'postgresql://postgres@127.0.0.1:5432/test';
const servers = (await needService('postgres')) ? ['postgres'] : [];

describe.each(servers)('kyselyDumper, a rename between the read and the UPDATE (%s)', () => {
  const schema = `ky_${randomBytes(6).toString('hex')}`;
  let admin: pg.Client;
  let other: pg.Client;
  let pool: pg.Pool;
  let raw: Kysely<DB>;
  /** Runs once, just before the next UPDATE of ky_race reaches the server. */
  let beforeUpdate: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".ky_race (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)`);
    other = new pg.Client({ connectionString: URL, options: `-c search_path=${schema}` });
    await other.connect();
    pool = new pg.Pool({ connectionString: URL, max: 4, options: `-c search_path=${schema}` });
    const hooked = new WeakSet<object>();
    const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
    (pool as { connect: unknown }).connect = async () => {
      const client = await connect();
      if (!hooked.has(client)) {
        hooked.add(client);
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        (client as { query: unknown }).query = async (...args: unknown[]) => {
          if (typeof args[0] === 'string' && /^update "ky_race"/i.test(args[0]) && beforeUpdate !== undefined) {
            const hook = beforeUpdate;
            beforeUpdate = undefined;
            await hook();
          }
          return query(...args);
        };
      }
      return client;
    };
    raw = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  });
  afterAll(async () => {
    await raw?.destroy();
    await other?.end();
    await admin?.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin?.end();
  });

  test('the intermediate state of a renamed row is never left cached', async () => {
    await admin.query(`INSERT INTO "${schema}".ky_race (slug, name) VALUES ('a', 'A'), ('b', 'B')`);
    const paths = new Set<string>();
    let all = 0;
    const dumper = createDumper({ logger: { debug() {}, warn() {}, error() {} } });
    dumper.register('ky_race', { dependentPaths: (row: { slug: string }) => [`/race/${row.slug}/`] });
    const invalidateDependents = dumper.invalidateDependents.bind(dumper);
    dumper.invalidateDependents = async (d) => {
      for (const one of Symbol.iterator in d ? d : [d]) for (const p of one.paths) paths.add(p);
      return invalidateDependents(d);
    };
    const invalidateAll = dumper.invalidateAll.bind(dumper);
    dumper.invalidateAll = async () => {
      all++;
      return invalidateAll();
    };
    const db = kyselyDumper(dumper, raw);
    try {
      const { rows } = await other.query<{ pid: number }>('select pg_backend_pid() as pid');
      const pid = rows[0]!.pid;
      let rename: Promise<pg.QueryResult> | undefined;
      beforeUpdate = async () => {
        // Another connection renames a to a2: committed at once without a lock on the row, or
        // waiting for the write's transaction with one.
        let done = false;
        rename = other.query(`UPDATE ky_race SET slug = 'a2' WHERE slug = 'a'`);
        void rename.then(() => (done = true), () => (done = true));
        for (;;) {
          if (done) return;
          const { rows: waits } = await admin.query<{ w: string | null }>('select wait_event_type as w from pg_stat_activity where pid = $1', [pid]);
          if (waits[0]?.w === 'Lock') return;
        }
      };
      await db.updateTable('ky_race').set({ slug: 'a3' }).where('name', '=', 'A').execute();
      expect(rename, 'the hook ran before the UPDATE').toBeDefined();
      const renamed = await rename!;
      // Without a lock, a2 was committed, then overwritten by the update: its page was never
      // invalidated after it could have been rendered from that state.
      if (renamed.rowCount !== 0) expect(paths.has('/race/a2/') || all > 0, `/race/a2/: ${[...paths].join(' ')}`).toBe(true);
      expect(renamed.rowCount, 'the rename waited for the write, then found no row a').toBe(0);
      expect(paths).toContain('/race/a/');
      expect(paths).toContain('/race/a3/');
      const { rows: final } = await admin.query(`SELECT slug FROM "${schema}".ky_race ORDER BY id`);
      expect(final.map((r) => r.slug)).toEqual(['a3', 'b']);
    } finally {
      beforeUpdate = undefined;
      await dumper.close();
    }
  });
});
