import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BetterSqliteDriver } from '@mikro-orm/better-sqlite';
import { MikroORM } from '@mikro-orm/core';
import { IceCream, IceCreamSchema, Size, SizeSchema } from './models.js';

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/**
 * Opens (and creates and fills, on first start) the SQLite database.
 * @param {string} database a file path, or ':memory:'
 */
export async function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const orm = await MikroORM.init({
    driver: BetterSqliteDriver,
    dbName: database,
    entities: [IceCreamSchema, SizeSchema],
  });
  // Creates the tables that are missing (the first start); a no-op after.
  await orm.schema.updateSchema();
  await seed(orm.em.fork());
  return orm;
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
 * Fills an empty database with a few sizes and flavours (before the dumper watches the ORM:
 * nothing is cached yet). One flush, in one transaction.
 * @param {import('@mikro-orm/core').EntityManager} em
 */
async function seed(em) {
  if ((await em.count(Size)) > 0) return;
  const sizes = new Map(SIZES.map(([slug, name]) => [slug, em.create(Size, { slug, name })]));
  for (const [slug, name, description, inSizes] of FLAVOURS) {
    em.create(IceCream, { slug, name, description, sizes: inSizes.map((s) => sizes.get(s)) });
  }
  await em.flush();
}
