import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { count } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import * as schema from './schema.js';

const { iceCream, iceCreamSize, size } = schema;

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/**
 * The tables of schema.js, in plain SQL (drizzle-kit is not used): they must match the
 * sqliteTable() definitions there.
 */
const TABLES = [
  `CREATE TABLE IF NOT EXISTS ice_cream (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '')`,
  `CREATE TABLE IF NOT EXISTS size (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ice_cream_size (
     ice_cream_id INTEGER NOT NULL REFERENCES ice_cream (id) ON DELETE CASCADE,
     size_id INTEGER NOT NULL REFERENCES size (id) ON DELETE CASCADE,
     PRIMARY KEY (ice_cream_id, size_id))`,
];

/**
 * Opens (and creates and fills, on first start) the SQLite database. Returns the Drizzle
 * database, not yet wrapped by drizzleDumper() (server.js wraps it), and the better-sqlite3 handle.
 * @param {string} database a file path, or ':memory:'
 */
export function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const sqlite = new Database(database);
  sqlite.pragma('foreign_keys = ON');
  if (database !== ':memory:') sqlite.pragma('journal_mode = WAL');
  for (const statement of TABLES) sqlite.exec(statement);
  const db = drizzle(sqlite, { schema });
  seed(db);
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

/**
 * Fills an empty database with a few sizes and flavours, through the unwrapped database (nothing
 * is cached yet). better-sqlite3 is synchronous: so are its Drizzle transactions.
 * @param {import('drizzle-orm/better-sqlite3').BetterSQLite3Database<typeof schema>} db
 */
function seed(db) {
  const [{ n }] = db.select({ n: count() }).from(size).all();
  if (n > 0) return;
  db.transaction((tx) => {
    const sizes = new Map(
      tx
        .insert(size)
        .values(SIZES.map(([slug, name]) => ({ slug, name })))
        .returning({ id: size.id, slug: size.slug })
        .all()
        .map((s) => [s.slug, s.id]),
    );
    for (const [slug, name, description, inSizes] of FLAVOURS) {
      const { id } = tx.insert(iceCream).values({ slug, name, description }).returning({ id: iceCream.id }).get();
      tx.insert(iceCreamSize)
        .values(inSizes.map((s) => ({ iceCreamId: id, sizeId: sizes.get(s) })))
        .run();
    }
  });
}
