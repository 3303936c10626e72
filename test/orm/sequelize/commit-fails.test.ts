// Sequelize 6 runs a transaction's afterCommit callbacks even when its COMMIT fails. A COMMIT the
// database refuses (a deferred constraint) rolled the transaction back: no second invalidation.
// A COMMIT whose answer never came (a lost connection) may have committed: invalidated again.
import { ConnectionError, DataTypes, Model } from 'sequelize';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { refusedByServer } from '../../../src/orm/sequelize/integration.js';
import { sequelizeDumper, type SequelizeDumper } from '../../../src/orm/sequelize/index.js';
import { databases, invalidations, type Database } from './support.js';

const targets = await databases();

describe.each(targets.map((t) => [t.name, t] as const))('a COMMIT that fails on %s', (name, target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let calls: string[][];
  class Flavour extends Model {
    declare id: number;
    declare slug: string;
    dependentPaths() {
      return [`/flavours/${this.slug}/`];
    }
  }

  beforeAll(async () => {
    db = await target.open();
    const s = db.sequelize;
    const deferred = name === 'MariaDB' ? '' : ' DEFERRABLE INITIALLY DEFERRED';
    const key = name === 'PostgreSQL' ? 'serial primary key' : name === 'SQLite' ? 'integer primary key autoincrement' : 'int auto_increment primary key';
    await s.query('CREATE TABLE cf_parent (id int primary key)');
    await s.query(`CREATE TABLE cf_flavour (id ${key}, slug varchar(100), parentId int REFERENCES cf_parent (id)${deferred})`.replace('parentId', name === 'PostgreSQL' ? '"parentId"' : 'parentId'));
    Flavour.init({ slug: DataTypes.STRING, parentId: DataTypes.INTEGER }, { sequelize: s, tableName: 'cf_flavour', timestamps: false });
    dumper = createDumper({});
    dumper.register(Flavour);
    handle = sequelizeDumper(dumper, s, { invalidateOnRollback: false });
    calls = invalidations(dumper);
  });
  afterAll(async () => {
    handle?.close();
    await dumper?.close();
    await db?.close();
  });

  test('lost on the way (the connection dropped after the COMMIT ran): invalidated again', async () => {
    calls.length = 0;
    const s = db.sequelize;
    const query = s.query;
    // The COMMIT runs, then its answer is lost: the client cannot tell that it committed.
    s.query = async function (this: unknown, sql: unknown, options?: unknown) {
      const result = await (query as (...a: unknown[]) => Promise<unknown>).call(s, sql, options);
      if (typeof sql === 'string' && /^COMMIT/i.test(sql.trim())) throw new ConnectionError(new Error('Connection terminated unexpectedly'));
      return result;
    } as typeof s.query;
    try {
      await expect(
        s.transaction(async (t) => {
          await Flavour.create({ slug: 'kept' }, { transaction: t });
        }),
      ).rejects.toThrow('Connection terminated');
    } finally {
      s.query = query;
    }
    expect(await Flavour.count({ where: { slug: 'kept' } })).toBe(1);
    expect(calls).toEqual([['/flavours/kept/'], ['/flavours/kept/']]);
  });

  // Last: on SQLite the refused COMMIT leaves its connection's transaction open (and the file locked).
  // MariaDB has no deferred constraints: the case is defined for the other databases only.
  (name === 'MariaDB' ? () => undefined : test)('refused by the database (a deferred foreign key): nothing again after it', async () => {
    calls.length = 0;
    await expect(
      db.sequelize.transaction(async (t) => {
        await Flavour.create({ slug: 'ghost', parentId: 42 }, { transaction: t }); // checked at COMMIT
        expect(calls).toEqual([['/flavours/ghost/']]);
      }),
    ).rejects.toThrow();
    expect(await Flavour.count({ where: { slug: 'ghost' } })).toBe(0);
    expect(calls).toEqual([['/flavours/ghost/']]);
  });
});

describe('refusedByServer()', () => {
  const wrapped = (parent: object) => Object.assign(new Error('wrapped'), { parent, original: parent });
  test('a rolled-back transaction answered by the server', () => {
    expect(refusedByServer(wrapped({ severity: 'ERROR', code: '23503' }))).toBe(true); // PostgreSQL deferred foreign key
    expect(refusedByServer(wrapped({ severity: 'ERROR', code: '40001' }))).toBe(true); // PostgreSQL serialization failure
    expect(refusedByServer(wrapped({ sqlState: '40001', errno: 1213, fatal: false }))).toBe(true); // MariaDB deadlock
    expect(refusedByServer(wrapped({ code: 'SQLITE_CONSTRAINT' }))).toBe(true);
  });
  test('an unknown outcome: the commit may have happened', () => {
    expect(refusedByServer(wrapped(new Error('Connection terminated unexpectedly')))).toBe(false);
    expect(refusedByServer(wrapped(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })))).toBe(false);
    expect(refusedByServer(wrapped({ severity: 'FATAL', code: '57P01' }))).toBe(false); // terminated by an administrator
    expect(refusedByServer(wrapped({ severity: 'ERROR', code: '57014' }))).toBe(false); // statement timeout
    expect(refusedByServer(wrapped({ sqlState: '40001', fatal: true }))).toBe(false); // the connection is gone
    expect(refusedByServer(wrapped({ code: 'SQLITE_BUSY' }))).toBe(false);
    expect(refusedByServer(new Error('Query read timeout'))).toBe(false);
    expect(refusedByServer(undefined)).toBe(false);
  });
});
