/**
 * The public types of the ORM integrations: `page-dumper/typeorm`, `/prisma`, `/drizzle`,
 * `/kysely`, `/sequelize` and `/mikro-orm`. Each takes the dumper and the ORM's own handle, and
 * the ones that wrap a client (Drizzle, Kysely, Prisma's extension) keep its type. Checked by
 * `npm run typecheck`; each `@ts-expect-error` marks a mistake that must stay a type error. Only
 * types are exercised here: the integrations' suites under test/orm/ run them.
 */
import type { MikroORM } from '@mikro-orm/core';
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import type { Kysely } from 'kysely';
import type { Sequelize } from 'sequelize';
import type { DataSource } from 'typeorm';
import { describe, expectTypeOf, test } from 'vitest';
import type { Dumper } from '../../src/index.js';
import type { ReadTracker } from '../../src/orm/reads.js';
import typeormDefault, {
  tableTag,
  rowTag,
  typeormDumper,
  type RelationsOption,
  type TypeormDumper,
  type TypeormDumperOptions,
} from '../../src/orm/typeorm/index.js';
import { prismaDumper, type PrismaDumperExtension, type PrismaDumperOptions } from '../../src/orm/prisma/index.js';
import { drizzleDumper, drizzleSettled, type DrizzleDumperOptions } from '../../src/orm/drizzle/index.js';
import { kyselyDumper, type DialectName, type KyselyDumperOptions } from '../../src/orm/kysely/index.js';
import sequelizeDefault, { sequelizeDumper, type SequelizeDumper, type SequelizeDumperOptions } from '../../src/orm/sequelize/index.js';
import mikroOrmDefault, { mikroOrmDumper, type MikroOrmDumper, type MikroOrmDumperOptions } from '../../src/orm/mikro-orm/index.js';
import * as prismaEntry from '../../src/orm/prisma/index.js';
import * as drizzleEntry from '../../src/orm/drizzle/index.js';
import * as kyselyEntry from '../../src/orm/kysely/index.js';
import * as sequelizeEntry from '../../src/orm/sequelize/index.js';
import * as mikroOrmEntry from '../../src/orm/mikro-orm/index.js';

interface Tables {
  ice_cream: { id: number; slug: string };
}

describe('ORM integration types', () => {
  test('page-dumper/typeorm', () => {
    expectTypeOf(typeormDumper).parameters.toEqualTypeOf<[dumper: Dumper, dataSource: DataSource, options?: TypeormDumperOptions]>();
    expectTypeOf(typeormDumper).returns.toEqualTypeOf<TypeormDumper>();
    expectTypeOf(typeormDefault).toEqualTypeOf(typeormDumper);
    expectTypeOf<TypeormDumperOptions>().toEqualTypeOf<{ relations?: RelationsOption; invalidateOnRollback?: boolean; maxRows?: number; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf<TypeormDumper['reads']>().toEqualTypeOf<ReadTracker | undefined>();
    expectTypeOf<TypeormDumper['dataSource']>().toEqualTypeOf<DataSource>();
    const mistakes = (dumper: Dumper, dataSource: DataSource) => {
      typeormDumper(dumper, dataSource, { relations: { IceCream: ['sizes'] }, trackReads: true });
      typeormDumper(dumper, dataSource, { relations: (entity) => (entity.name === 'IceCream' ? ['sizes'] : undefined) });
      // @ts-expect-error relations names 'auto', 'all' or 'none', or lists them
      typeormDumper(dumper, dataSource, { relations: 'some' });
      // @ts-expect-error the DataSource, not its options
      typeormDumper(dumper, { type: 'postgres' });
      // @ts-expect-error an option that does not exist
      typeormDumper(dumper, dataSource, { trackreads: true });
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/prisma', () => {
    expectTypeOf(prismaDumper).parameters.toEqualTypeOf<[dumper: Dumper, options?: PrismaDumperOptions]>();
    expectTypeOf(prismaDumper).returns.toEqualTypeOf<PrismaDumperExtension>();
    expectTypeOf<PrismaDumperOptions>().toEqualTypeOf<{ include?: Readonly<Record<string, Readonly<Record<string, unknown>>>>; maxRows?: number; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf(prismaEntry.listTag).toEqualTypeOf(tableTag);
    const mistakes = (dumper: Dumper) => {
      prismaDumper(dumper, { include: { IceCream: { sizes: true } }, maxRows: 100 });
      // @ts-expect-error include maps a model to its include object
      prismaDumper(dumper, { include: ['sizes'] });
      // @ts-expect-error the client is extended with it, not passed to it
      prismaDumper(dumper, {}, {});
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/drizzle keeps the database type', () => {
    type Db = BetterSQLite3Database<Record<string, never>>;
    expectTypeOf(drizzleDumper<Db>).parameters.toEqualTypeOf<[dumper: Dumper, db: Db, options?: DrizzleDumperOptions]>();
    expectTypeOf(drizzleDumper<Db>).returns.toEqualTypeOf<Db>();
    expectTypeOf(drizzleSettled).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf<DrizzleDumperOptions>().toEqualTypeOf<{ recoveryTimeout?: number; maxRows?: number; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf(drizzleEntry.rowTag).toEqualTypeOf(rowTag);
    const mistakes = (dumper: Dumper, db: Db) => {
      expectTypeOf(drizzleDumper(dumper, db, { trackReads: true })).toEqualTypeOf<Db>();
      // @ts-expect-error a database, not a connection string
      drizzleDumper(dumper, 'file:pages.sqlite');
      // @ts-expect-error recoveryTimeout is in milliseconds
      drizzleDumper(dumper, db, { recoveryTimeout: '5s' });
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/kysely keeps the table types', () => {
    expectTypeOf(kyselyDumper<Tables>).parameters.toEqualTypeOf<[dumper: Dumper, db: Kysely<Tables>, options?: KyselyDumperOptions]>();
    expectTypeOf(kyselyDumper<Tables>).returns.toEqualTypeOf<Kysely<Tables>>();
    expectTypeOf<KyselyDumperOptions>().toEqualTypeOf<{ dialect?: DialectName; recoveryTimeout?: number; maxRows?: number; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf<DialectName>().toEqualTypeOf<'postgres' | 'sqlite' | 'mysql'>();
    expectTypeOf(kyselyEntry.keyTag).returns.toEqualTypeOf<string | undefined>();
    const mistakes = (dumper: Dumper, db: Kysely<Tables>) => {
      expectTypeOf(kyselyDumper(dumper, db, { dialect: 'sqlite' })).toEqualTypeOf<Kysely<Tables>>();
      // @ts-expect-error a dialect Kysely's adapters name
      kyselyDumper(dumper, db, { dialect: 'mariadb' });
      // @ts-expect-error a Kysely instance
      kyselyDumper(dumper, {});
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/sequelize', () => {
    expectTypeOf(sequelizeDumper).parameters.toEqualTypeOf<[dumper: Dumper, sequelize: Sequelize, options?: SequelizeDumperOptions]>();
    expectTypeOf(sequelizeDumper).returns.toEqualTypeOf<SequelizeDumper>();
    expectTypeOf(sequelizeDefault).toEqualTypeOf(sequelizeDumper);
    expectTypeOf<SequelizeDumperOptions>().toEqualTypeOf<{ invalidateOnRollback?: boolean; maxRows?: number; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf(sequelizeEntry.tableTag).parameters.toEqualTypeOf<[table: string]>();
    const mistakes = (dumper: Dumper, sequelize: Sequelize) => {
      // @ts-expect-error invalidateOnRollback is a boolean
      sequelizeDumper(dumper, sequelize, { invalidateOnRollback: 'yes' });
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/mikro-orm', () => {
    expectTypeOf(mikroOrmDumper).parameters.toEqualTypeOf<[dumper: Dumper, orm: MikroORM, options?: MikroOrmDumperOptions]>();
    expectTypeOf(mikroOrmDumper).returns.toEqualTypeOf<MikroOrmDumper>();
    expectTypeOf(mikroOrmDefault).toEqualTypeOf(mikroOrmDumper);
    expectTypeOf<MikroOrmDumper['orm']>().toEqualTypeOf<MikroORM>();
    expectTypeOf(mikroOrmEntry.tableOf).toBeFunction();
    const mistakes = (dumper: Dumper, orm: MikroORM) => {
      mikroOrmDumper(dumper, orm, { relations: 'all', invalidateOnRollback: false });
      // @ts-expect-error the MikroORM instance, not its entity manager
      mikroOrmDumper(dumper, orm.em);
      // @ts-expect-error maxTagsPerPage is a number
      mikroOrmDumper(dumper, orm, { maxTagsPerPage: true });
    };
    expectTypeOf(mistakes).toBeFunction();
  });
});
