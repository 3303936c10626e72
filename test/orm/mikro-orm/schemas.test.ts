// Entities with `schema: '*'` written through `em.fork({ schema })` (MikroORM's multi-tenant
// setup): page-dumper reads their rows in the writer's schema, before and after each write.
import { randomBytes } from 'node:crypto';
import { EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Dependents } from '../../../src/core/dumper.js';
import { createDumper, type Dumper } from '../../../src/index.js';
import { mikroOrmDumper } from '../../../src/orm/mikro-orm/index.js';
import { kinds } from './support.js';
import { definedIf } from '../../support/services.js';

/** The paths of every `invalidateDependents()` call, one array per call. */
function invalidations(d: Dumper): string[][] {
  const calls: string[][] = [];
  const original = d.invalidateDependents.bind(d);
  d.invalidateDependents = async (deps: Dependents | Iterable<Dependents>) => {
    const list = 'paths' in deps ? [deps as Dependents] : [...(deps as Iterable<Dependents>)];
    calls.push(list.flatMap((x) => x.paths));
    return original(deps);
  };
  return calls;
}

class Flavour {
  id!: number;
  slug!: string;
  dependentPaths() {
    return [`/flavours/${this.slug}/`];
  }
}

const postgres = (await kinds()).includes('PostgreSQL');

definedIf(postgres, describe)('entities with schema "*" written through em.fork({ schema }) on PostgreSQL', () => {
  const suffix = randomBytes(3).toString('hex');
  const tenants = [`pd_tenant_a_${suffix}`, `pd_tenant_b_${suffix}`];
  const admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'test' });
  let orm: MikroORM;
  let dumper: Dumper;
  let calls: string[][];

  beforeAll(async () => {
    await admin.connect();
    for (const t of tenants) await admin.query(`CREATE SCHEMA ${t}; CREATE TABLE ${t}.pd_flavour (id serial primary key, slug text not null)`);
    await admin.query(`INSERT INTO ${tenants[0]}.pd_flavour (slug) VALUES ('mint'), ('lemon')`);
    await admin.query(`INSERT INTO ${tenants[1]}.pd_flavour (slug) VALUES ('other-mint'), ('other-lemon')`);
    orm = await MikroORM.init({
      host: '127.0.0.1',
      user: 'postgres',
      dbName: 'test',
      allowGlobalContext: true,
      entities: [new EntitySchema<Flavour>({ class: Flavour, tableName: 'pd_flavour', schema: '*', properties: { id: { type: 'number', primary: true }, slug: { type: 'string' } } })],
    });
    dumper = createDumper({});
    dumper.register(Flavour);
    mikroOrmDumper(dumper, orm);
    calls = invalidations(dumper);
  });
  afterAll(async () => {
    await dumper?.close();
    await orm?.close(true);
    for (const t of tenants) await admin.query(`DROP SCHEMA IF EXISTS ${t} CASCADE`);
    await admin.end();
  });

  test('a flush reads the row in the tenant’s schema: the old and the new slug', async () => {
    calls.length = 0;
    const em = orm.em.fork({ schema: tenants[0] });
    const mint = await em.findOneOrFail(Flavour, { slug: 'mint' });
    mint.slug = 'mint-leaf';
    await em.flush();
    expect(calls.flat()).toEqual(expect.arrayContaining(['/flavours/mint/', '/flavours/mint-leaf/']));
    // Not the row with the same key in the other tenant.
    expect(calls.flat()).not.toContain('/flavours/other-mint/');
  });

  test('em.nativeUpdate() and nativeDelete() read the rows in the tenant’s schema', async () => {
    calls.length = 0;
    const em = orm.em.fork({ schema: tenants[0] });
    await em.nativeUpdate(Flavour, { slug: 'lemon' }, { slug: 'lemon-zest' });
    expect(calls.flat()).toEqual(expect.arrayContaining(['/flavours/lemon/', '/flavours/lemon-zest/']));
    calls.length = 0;
    await orm.em.fork({ schema: tenants[0] }).nativeDelete(Flavour, { slug: 'lemon-zest' });
    expect(calls.flat()).toContain('/flavours/lemon-zest/');
    expect(calls.flat()).not.toContain('/flavours/other-lemon/');
  });

  test('em.insert() and em.upsert() read the rows in the tenant’s schema', async () => {
    calls.length = 0;
    const em = orm.em.fork({ schema: tenants[0] });
    await em.insert(Flavour, { slug: 'pistachio' });
    expect(calls.flat()).toContain('/flavours/pistachio/');
    calls.length = 0;
    await orm.em.fork({ schema: tenants[0] }).upsert(Flavour, { id: 1, slug: 'mint-chip' });
    expect(calls.flat()).toEqual(expect.arrayContaining(['/flavours/mint-leaf/', '/flavours/mint-chip/']));
  });

  test('a flush by an entity manager without a schema, of entities created in one', async () => {
    calls.length = 0;
    const em = orm.em.fork();
    em.create(Flavour, { slug: 'cherry' }, { schema: tenants[1] });
    await em.flush();
    expect(calls.flat()).toContain('/flavours/cherry/');
  });

  test('a flush of entities in several schemas invalidates every page', async () => {
    const all = dumper.invalidateAll.bind(dumper);
    let everything = 0;
    dumper.invalidateAll = async () => {
      everything++;
      return all();
    };
    try {
      const em = orm.em.fork();
      em.create(Flavour, { slug: 'plum' }, { schema: tenants[0] });
      em.create(Flavour, { slug: 'plum' }, { schema: tenants[1] });
      await em.flush();
      expect(everything).toBe(1);
    } finally {
      dumper.invalidateAll = all;
    }
  });

  test('a QueryBuilder update reads the rows in the tenant’s schema', async () => {
    calls.length = 0;
    const em = orm.em.fork({ schema: tenants[1] });
    await em.createQueryBuilder(Flavour).update({ slug: 'other-mint-2' }).where({ slug: 'other-mint' }).execute();
    expect(calls.flat()).toEqual(expect.arrayContaining(['/flavours/other-mint/', '/flavours/other-mint-2/']));
    calls.length = 0;
    await orm.em.createQueryBuilder(Flavour).withSchema(tenants[1]).update({ slug: 'other-lemon-2' }).where({ slug: 'other-lemon' }).execute();
    expect(calls.flat()).toEqual(expect.arrayContaining(['/flavours/other-lemon/', '/flavours/other-lemon-2/']));
  });
});
