import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Sequelize } from 'sequelize';
import { defineModels } from './models.js';

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/**
 * Opens (and creates and fills, on first start) the SQLite database: a file, or ':memory:'.
 * @param {string} database
 */
export async function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const sequelize = new Sequelize({ dialect: 'sqlite', storage: database, logging: false });
  const models = defineModels(sequelize);
  await sequelize.sync();
  await seed(models);
  return { sequelize, models };
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
 * Fills an empty database with a few sizes and flavours (before page-dumper is installed:
 * nothing is cached yet).
 * @param {ReturnType<typeof defineModels>} models
 */
async function seed({ IceCream, Size }) {
  if ((await Size.count()) > 0) return;
  const sizes = new Map((await Size.bulkCreate(SIZES.map(([slug, name]) => ({ slug, name })))).map((s) => [s.slug, s]));
  for (const [slug, name, description, inSizes] of FLAVOURS) {
    const iceCream = await IceCream.create({ slug, name, description });
    await iceCream.setSizes(inSizes.map((s) => sizes.get(s)));
  }
}
