import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/** The tables, in plain SQL. `ice_cream_size` is the many-to-many junction table. */
const TABLES = [
  `CREATE TABLE IF NOT EXISTS ice_cream (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '')`,
  `CREATE TABLE IF NOT EXISTS size (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ice_cream_size (
     ice_cream_id INTEGER NOT NULL REFERENCES ice_cream (id) ON DELETE CASCADE,
     size_id INTEGER NOT NULL REFERENCES size (id) ON DELETE CASCADE,
     PRIMARY KEY (ice_cream_id, size_id))`,
];

/**
 * Opens (and creates, on first start) the SQLite database. Returns the better-sqlite3 handle too:
 * the models' `dependentPaths` read through it synchronously (Kysely's SQLite driver has one
 * connection, which a write holds while `dependentPaths` runs).
 * @param {string} database a file path, or ':memory:'
 */
export async function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const sqlite = new Database(database);
  sqlite.pragma('foreign_keys = ON');
  if (database !== ':memory:') sqlite.pragma('journal_mode = WAL');
  for (const statement of TABLES) sqlite.exec(statement);
  const db = new Kysely({ dialect: new SqliteDialect({ database: sqlite }) });
  await seed(db);
  return { db, sqlite };
}

const SIZES = [
  ['kids', 'Kids scoop'],
  ['single', 'Single scoop'],
  ['double', 'Double scoop'],
  ['tub', 'Family tub (1 l)'],
];

const FLAVOURS = [
  ['vanilla', 'Vanilla', 'Madagascar vanilla pods steeped overnight in cream.', ['kids', 'single', 'double', 'tub']],
  ['chocolate', 'Chocolate', 'Dark cocoa and a little sea salt.', ['kids', 'single', 'double', 'tub']],
  ['strawberry', 'Strawberry', 'Made with summer strawberries; it goes fast.', ['single', 'double']],
  ['pistachio', 'Pistachio', 'Roasted Sicilian pistachios, nothing green added.', ['single', 'double']],
  ['mint-chip', 'Mint chocolate chip', 'Fresh mint leaves and shaved dark chocolate.', ['kids', 'single']],
];

/** Fills an empty database with a few sizes and flavours. */
async function seed(db) {
  const { count } = await db.selectFrom('size').select((eb) => eb.fn.countAll().as('count')).executeTakeFirstOrThrow();
  if (Number(count) > 0) return;
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('size').values(SIZES.map(([slug, name]) => ({ slug, name }))).execute();
    const sizes = new Map((await trx.selectFrom('size').select(['id', 'slug']).execute()).map((s) => [s.slug, s.id]));
    for (const [slug, name, description, inSizes] of FLAVOURS) {
      const { id } = await trx.insertInto('ice_cream').values({ slug, name, description }).returning('id').executeTakeFirstOrThrow();
      await trx.insertInto('ice_cream_size').values(inSizes.map((s) => ({ ice_cream_id: id, size_id: sizes.get(s) }))).execute();
    }
  });
}
