/**
 * The public types of page-dumper/mikro-orm: `mikroOrmDumper()` takes the ORM of any SQL driver
 * as `MikroORM.init()` returns it, typed options, and returns a handle with `close()`.
 */
import { BetterSqliteDriver, MikroORM as BetterSqliteMikroORM } from '@mikro-orm/better-sqlite';
import { EntitySchema, MikroORM, type EntityMetadata, type EventSubscriber } from '@mikro-orm/core';
import { MikroORM as MariaDbMikroORM } from '@mikro-orm/mariadb';
import { MikroORM as PostgreSqlMikroORM } from '@mikro-orm/postgresql';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import defaultExport, { mikroOrmDumper, type MikroOrmDumper, type MikroOrmDumperOptions, type RelationsOption } from '../../../src/orm/mikro-orm/index.js';

describe('mikroOrmDumper types', () => {
  test('the signature, the options and the handle', () => {
    expectTypeOf(mikroOrmDumper).parameters.toEqualTypeOf<[Dumper, MikroORM, (MikroOrmDumperOptions | undefined)?]>();
    expectTypeOf(mikroOrmDumper).returns.toEqualTypeOf<MikroOrmDumper>();
    expectTypeOf(defaultExport).toEqualTypeOf(mikroOrmDumper);
    expectTypeOf<MikroOrmDumper['close']>().toEqualTypeOf<() => void>();
    expectTypeOf<MikroOrmDumper['orm']>().toEqualTypeOf<MikroORM>();
    expectTypeOf<MikroOrmDumper['subscriber']>().toEqualTypeOf<EventSubscriber>();
    expectTypeOf<MikroOrmDumperOptions>().toEqualTypeOf<{
      relations?: RelationsOption;
      maxRows?: number;
      invalidateOnRollback?: boolean;
      trackReads?: boolean;
      maxTagsPerPage?: number;
    }>();
    expectTypeOf<'auto'>().toMatchTypeOf<RelationsOption>();
    expectTypeOf<{ Flavour: ['sizes', 'reviews.author'] }>().toMatchTypeOf<RelationsOption>();
    expectTypeOf<(meta: EntityMetadata) => string[] | undefined>().toMatchTypeOf<RelationsOption>();
    expectTypeOf<'some'>().not.toMatchTypeOf<RelationsOption>();
    expectTypeOf<{ Flavour: 'sizes' }>().not.toMatchTypeOf<RelationsOption>();
    // @ts-expect-error an unknown option
    const wrong: MikroOrmDumperOptions = { maxrows: 10 };
    void wrong;
  });

  test('the ORM of each SQL driver, as its MikroORM.init() returns it', async () => {
    class Thing {
      id!: number;
    }
    const entities = [new EntitySchema<Thing>({ class: Thing, tableName: 'mo_thing', properties: { id: { type: 'number', primary: true } } })];
    const orm = await BetterSqliteMikroORM.init({ dbName: ':memory:', entities });
    const core = await MikroORM.init({ driver: BetterSqliteDriver, dbName: ':memory:', entities });
    const dumper = createDumper({ logger: false });
    try {
      const handle = mikroOrmDumper(dumper, orm, { relations: (meta) => (meta.className === 'Thing' ? [] : undefined) });
      expectTypeOf(handle).toEqualTypeOf<MikroOrmDumper>();
      expect(handle.orm).toBe(orm);
      handle.close();
      mikroOrmDumper(dumper, core).close();
      // Only types: these ORMs are never initialized here.
      expectTypeOf<Parameters<typeof mikroOrmDumper>[1]>().toMatchTypeOf<MikroORM>();
      expectTypeOf<PostgreSqlMikroORM>().toMatchTypeOf<Parameters<typeof mikroOrmDumper>[1]>();
      expectTypeOf<MariaDbMikroORM>().toMatchTypeOf<Parameters<typeof mikroOrmDumper>[1]>();
    } finally {
      await dumper.close();
      await orm.close(true);
      await core.close(true);
    }
  });
});
