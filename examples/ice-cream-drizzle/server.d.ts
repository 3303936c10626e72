// Types for the Drizzle demo's server.js, so test/orm/drizzle/example.test.ts typechecks (the example itself is plain JS).
import type { Database } from 'better-sqlite3';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { Express } from 'express';
import type { Dumper, DumperLogger } from '../../src/index.js';
import type * as schema from './schema.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream-drizzle/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  /** The Drizzle database, wrapped by drizzleDumper(). */
  db: BetterSQLite3Database<typeof schema>;
  /** The better-sqlite3 handle under it (writes through it are not seen by the dumper). */
  sqlite: Database;
  /** The tables of schema.js. */
  schema: typeof schema;
  /** Waits for pending invalidations, then closes the dumper and the database (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
