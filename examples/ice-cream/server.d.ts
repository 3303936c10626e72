// Types for the demo's server.js, so test/demo.test.ts typechecks (the example itself is plain JS).
import type { Express } from 'express';
import type { DataSource } from 'typeorm';
import type { Dumper, DumperLogger } from '../../src/index.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  dataSource: DataSource;
  /** Closes the dumper and the data source (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
