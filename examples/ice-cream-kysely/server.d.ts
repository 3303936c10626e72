// Types for the Kysely demo's server.js, so test/orm/kysely/example.test.ts typechecks (the example itself is plain JS).
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Dumper, DumperLogger } from '../../src/index.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream-kysely/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

export interface Tables {
  ice_cream: { id: number; slug: string; name: string; description: string };
  size: { id: number; slug: string; name: string };
  ice_cream_size: { ice_cream_id: number; size_id: number };
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  /** The Kysely instance, wrapped by kyselyDumper(). */
  db: Kysely<Tables>;
  /** Closes the dumper and the database (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
