import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaClient } from './generated/client.js';

/** Where the demo keeps its data unless `DATABASE` says otherwise (gitignored: *.sqlite). */
export const DEFAULT_DATABASE = fileURLToPath(new URL('./data/ice-cream.sqlite', import.meta.url));

/**
 * The tables of schema.prisma, as `prisma migrate` would create them (it needs the schema engine;
 * plain SQL does not). `_IceCreamToSize` is Prisma's implicit many-to-many table: A is the
 * IceCream, B the Size (alphabetical order of the model names).
 */
const TABLES = [
  `CREATE TABLE IF NOT EXISTS "IceCream" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "slug" TEXT NOT NULL, "name" TEXT NOT NULL, "description" TEXT NOT NULL DEFAULT '')`,
  `CREATE UNIQUE INDEX IF NOT EXISTS "IceCream_slug_key" ON "IceCream"("slug")`,
  `CREATE TABLE IF NOT EXISTS "Size" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "slug" TEXT NOT NULL, "name" TEXT NOT NULL)`,
  `CREATE UNIQUE INDEX IF NOT EXISTS "Size_slug_key" ON "Size"("slug")`,
  `CREATE TABLE IF NOT EXISTS "_IceCreamToSize" ("A" INTEGER NOT NULL, "B" INTEGER NOT NULL,
     FOREIGN KEY ("A") REFERENCES "IceCream" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
     FOREIGN KEY ("B") REFERENCES "Size" ("id") ON DELETE CASCADE ON UPDATE CASCADE)`,
  `CREATE UNIQUE INDEX IF NOT EXISTS "_IceCreamToSize_AB_unique" ON "_IceCreamToSize"("A", "B")`,
  `CREATE INDEX IF NOT EXISTS "_IceCreamToSize_B_index" ON "_IceCreamToSize"("B")`,
];

/**
 * Opens (and creates, on first start) the SQLite database through Prisma's better-sqlite3 driver adapter.
 * @param {string} database a file path, or ':memory:'
 */
export async function openDatabase(database) {
  if (database !== ':memory:') mkdirSync(dirname(database), { recursive: true });
  const prisma = new PrismaClient({ adapter: new PrismaBetterSqlite3({ url: database === ':memory:' ? ':memory:' : `file:${database}` }) });
  for (const statement of TABLES) await prisma.$executeRawUnsafe(statement);
  await seed(prisma);
  return prisma;
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
async function seed(prisma) {
  if ((await prisma.size.count()) > 0) return;
  await prisma.$transaction([
    prisma.size.createMany({ data: SIZES.map(([slug, name]) => ({ slug, name })) }),
    ...FLAVOURS.map(([slug, name, description, sizes]) =>
      prisma.iceCream.create({ data: { slug, name, description, sizes: { connect: sizes.map((s) => ({ slug: s })) } } }),
    ),
  ]);
}
