// Types for the Prisma demo's server.js, so test/orm/prisma/example.test.ts typechecks (the example itself is plain JS).
import type { Express } from 'express';
import type { Dumper, DumperLogger } from '../../src/index.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream-prisma/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

/** The model delegates the example's test reads and writes through. */
interface Delegate<Row> {
  findUniqueOrThrow(args: { where: { slug: string } }): Promise<Row>;
  delete(args: { where: { id: number } }): Promise<Row>;
  update(args: { where: { id: number } | { slug: string }; data: Record<string, unknown> }): Promise<Row>;
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  /** The Prisma Client, extended with prismaDumper(). */
  prisma: {
    iceCream: Delegate<{ id: number; slug: string; name: string }>;
    size: Delegate<{ id: number; slug: string; name: string }>;
  };
  /** Closes the dumper and the Prisma Client (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
