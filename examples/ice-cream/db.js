import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataSource } from 'typeorm';
import { IceCream, IceCreamSchema, Size, SizeSchema } from './models.js';

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/**
 * Opens (and creates, on first start) the SQLite database.
 * @param {string} database a file path, or ':memory:'
 */
export async function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database,
    entities: [IceCreamSchema, SizeSchema],
    synchronize: true,
  });
  await dataSource.initialize();
  await seed(dataSource);
  return dataSource;
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
async function seed(dataSource) {
  if ((await dataSource.getRepository(Size).count()) > 0) return;
  await dataSource.transaction(async (manager) => {
    const sizes = new Map();
    for (const [slug, name] of SIZES) sizes.set(slug, await manager.save(manager.create(Size, { slug, name })));
    for (const [slug, name, description, sizeSlugs] of FLAVOURS) {
      await manager.save(manager.create(IceCream, { slug, name, description, sizes: sizeSlugs.map((s) => sizes.get(s)) }));
    }
  });
}
