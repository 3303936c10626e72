// Types for the MikroORM demo's server.js, so test/orm/mikro-orm/example.test.ts typechecks (the example itself is plain JS).
import type { MikroORM } from '@mikro-orm/core';
import type { Express } from 'express';
import type { Dumper, DumperLogger } from '../../src/index.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream-mikro-orm/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  /** The MikroORM instance, watched by mikroOrmDumper(). */
  orm: MikroORM;
  /** Stops the integration, closes the dumper and the ORM (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
