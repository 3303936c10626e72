// Types for the Sequelize demo's server.js, so test/orm/sequelize/example.test.ts typechecks (the example itself is plain JS).
import type { Express } from 'express';
import type { BelongsToManyAddAssociationMixin, BelongsToManyRemoveAssociationMixin, Model, ModelStatic, Sequelize } from 'sequelize';
import type { Dumper, DumperLogger } from '../../src/index.js';

export interface CreateAppOptions {
  /** SQLite file (or ':memory:'); defaults to $DATABASE, then examples/ice-cream-sequelize/data/ice-cream.sqlite. */
  database?: string;
  /** Passed to createDumper({ logger }); `false` for silence. */
  logger?: DumperLogger | false;
}

export interface IceCream extends Model {
  id: number;
  slug: string;
  name: string;
  description: string;
  addSize: BelongsToManyAddAssociationMixin<Size, number>;
  removeSize: BelongsToManyRemoveAssociationMixin<Size, number>;
}

export interface Size extends Model {
  id: number;
  slug: string;
  name: string;
}

export interface DemoApp {
  app: Express;
  dumper: Dumper;
  /** The Sequelize instance, with page-dumper's hooks. */
  sequelize: Sequelize;
  models: {
    IceCream: ModelStatic<IceCream>;
    Size: ModelStatic<Size>;
    /** Sequelize's junction model of the many-to-many relation (table ice_cream_size). */
    IceCreamSize: ModelStatic<Model>;
  };
  /** Closes page-dumper's hooks, the dumper and the database (not a server: the caller owns that). */
  close(): Promise<void>;
}

export declare function createApp(options?: CreateAppOptions): Promise<DemoApp>;
