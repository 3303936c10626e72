/**
 * Setting up `typeormDumper()`: its arguments and options are checked once, with TypeErrors; it
 * works installed before or after `initialize()` and across a re-initialize; `close()` undoes it;
 * the `relations` and `invalidateOnRollback` options do what they say; a data source without it
 * runs its QueryBuilder writes untouched. On SQLite (nothing here depends on the database).
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Column, DataSource, Entity, PrimaryGeneratedColumn, type DataSourceOptions } from 'typeorm';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createDumper, type Dependents, type Dumper } from '../../../src/index.js';
import { typeormDumper, type TypeormDumperOptions } from '../../../src/orm/typeorm/index.js';
import { entities, Flavour, register, Review, seed } from './shop.js';
import { CountingLogger } from './support.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function dataSource(extra: Partial<DataSourceOptions> = {}) {
  const logger = new CountingLogger();
  const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:', entities, synchronize: true, logger, ...extra } as DataSourceOptions);
  cleanup.push(async () => {
    if (ds.isInitialized) await ds.destroy();
  });
  return { ds, logger };
}

function dumperWithModels() {
  const dumper = createDumper({ logger: false });
  register(dumper);
  cleanup.push(() => dumper.close());
  return dumper;
}

/** The paths of every `invalidateDependents()` call, one array per call. */
function invalidations(dumper: Dumper): string[][] {
  const calls: string[][] = [];
  const original = dumper.invalidateDependents.bind(dumper);
  vi.spyOn(dumper, 'invalidateDependents').mockImplementation(async (d: Dependents | Iterable<Dependents>) => {
    const list = 'paths' in d ? [d as Dependents] : [...(d as Iterable<Dependents>)];
    calls.push(list.flatMap((x) => x.paths));
    return original(d);
  });
  return calls;
}

describe('typeormDumper() arguments and options', () => {
  test('bad arguments and options are TypeErrors naming the mistake', async () => {
    const { ds } = dataSource();
    const dumper = dumperWithModels();
    expect(() => typeormDumper({} as never, ds)).toThrow(new TypeError('page-dumper: typeormDumper() needs a dumper made by createDumper()'));
    expect(() => typeormDumper(dumper, {} as never)).toThrow(new TypeError('page-dumper: typeormDumper(dumper, dataSource) needs a TypeORM DataSource'));
    const bad: Array<[unknown, string]> = [
      [null, 'page-dumper: typeormDumper() options must be an object'],
      [{ maxrows: 10 }, 'page-dumper: typeormDumper() got an unknown option "maxrows"'],
      [{ maxRows: -1 }, 'page-dumper: typeormDumper() option "maxRows" must be a non-negative integer or Infinity, got -1'],
      [{ maxRows: 1.5 }, 'page-dumper: typeormDumper() option "maxRows" must be a non-negative integer or Infinity, got 1.5'],
      [{ maxRows: '10' }, 'page-dumper: typeormDumper() option "maxRows" must be a non-negative integer or Infinity, got 10'],
      [{ invalidateOnRollback: 'yes' }, 'page-dumper: typeormDumper() option "invalidateOnRollback" must be a boolean, got string'],
    ];
    const relations = 'page-dumper: typeormDumper() option "relations" must be "auto", "all", "none", an object of relation paths by entity name, or a function';
    for (const r of ['some', null, ['sizes'], { Flavour: 'sizes' }, { Flavour: [''] }]) bad.push([{ relations: r }, relations]);
    for (const [options, message] of bad) {
      expect(() => typeormDumper(dumper, ds, options as TypeormDumperOptions), JSON.stringify(options)).toThrow(new TypeError(message));
    }
    // Nothing was installed by the failed calls.
    const handle = typeormDumper(dumper, ds, { maxRows: Infinity, relations: { Flavour: ['sizes'] }, invalidateOnRollback: false });
    expect(() => typeormDumper(dumper, ds)).toThrow(new TypeError('page-dumper: typeormDumper() is already installed on this DataSource'));
    handle.close();
    handle.close(); // idempotent
    typeormDumper(dumper, ds).close();
  });
});

describe('typeormDumper() on a data source', () => {
  test('installed before initialize(), it sees the first writes', async () => {
    const { ds } = dataSource();
    const dumper = dumperWithModels();
    const calls = invalidations(dumper);
    const handle = typeormDumper(dumper, ds);
    cleanup.push(() => handle.close());
    await ds.initialize();
    expect(ds.subscribers).toContain(handle.subscriber);
    await ds.getRepository(Flavour).save({ slug: 'mint', name: 'Mint' });
    expect(calls.flat()).toContain('/flavours/mint/');
  });

  test('installed after initialize(), and still installed after destroy() and initialize() again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'page-dumper-typeorm-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const { ds } = dataSource({ database: join(dir, 'test.sqlite') });
    await ds.initialize();
    const dumper = dumperWithModels();
    const calls = invalidations(dumper);
    const handle = typeormDumper(dumper, ds);
    cleanup.push(() => handle.close());
    await ds.getRepository(Flavour).save({ slug: 'mint', name: 'Mint' });
    expect(calls.flat()).toContain('/flavours/mint/');
    await ds.destroy();
    await ds.initialize();
    calls.length = 0;
    await ds.getRepository(Flavour).save({ slug: 'lime', name: 'Lime' });
    expect(calls.flat()).toContain('/flavours/lime/');
    expect(ds.subscribers.filter((s) => s === handle.subscriber)).toHaveLength(1);
  });

  test('close() stops invalidating, removes the subscriber and is not undone by initialize()', async () => {
    const { ds } = dataSource();
    const dumper = dumperWithModels();
    const calls = invalidations(dumper);
    const handle = typeormDumper(dumper, ds);
    await ds.initialize();
    handle.close();
    expect(ds.subscribers).not.toContain(handle.subscriber);
    await ds.getRepository(Flavour).save({ slug: 'mint', name: 'Mint' });
    await ds.getRepository(Flavour).update({ slug: 'mint' }, { name: 'Mint leaf' });
    expect(calls).toEqual([]);
    await ds.destroy();
    await ds.initialize();
    expect(ds.subscribers).not.toContain(handle.subscriber);
  });

  test('a data source without typeormDumper() runs its QueryBuilder writes untouched', async () => {
    const watched = dataSource();
    const plain = dataSource();
    await Promise.all([watched.ds.initialize(), plain.ds.initialize()]);
    const handle = typeormDumper(dumperWithModels(), watched.ds);
    cleanup.push(() => handle.close());
    await seed(plain.ds);
    plain.logger.statements.length = 0;
    await plain.ds.getRepository(Flavour).update({ slug: 'mint' }, { name: 'Mint leaf' });
    expect(plain.logger.statements).toEqual([expect.stringMatching(/^UPDATE /)]);
  });

  test('a criteria write costs a SELECT of the matching ids and a load of the rows before the write, and a load after it', async () => {
    const { ds, logger } = dataSource();
    await ds.initialize();
    await seed(ds);
    const handle = typeormDumper(dumperWithModels(), ds);
    cleanup.push(() => handle.close());
    logger.statements.length = 0;
    await ds.getRepository(Flavour).update({ slug: 'mint' }, { name: 'Mint leaf' });
    expect(logger.statements.map((s) => s.split(' ')[0])).toEqual(['SELECT', 'SELECT', 'UPDATE', 'SELECT']);
  });

  test('save() of a changed row costs two loads of it: as it was, before the UPDATE, and as it is, after', async () => {
    const { ds, logger } = dataSource();
    await ds.initialize();
    await seed(ds);
    const mint = await ds.getRepository(Flavour).findOneByOrFail({ slug: 'mint' });
    mint.name = 'Mint leaf';
    logger.statements.length = 0;
    await ds.getRepository(Flavour).save(mint);
    const without = logger.statements.map((s) => s.split(' ')[0]);
    const handle = typeormDumper(dumperWithModels(), ds);
    cleanup.push(() => handle.close());
    mint.name = 'Mint';
    logger.statements.length = 0;
    await ds.getRepository(Flavour).save(mint);
    const added = logger.statements.map((s) => s.split(' ')[0]);
    expect(without).toEqual(['SELECT', 'BEGIN', 'UPDATE', 'COMMIT']);
    expect(added).toEqual(['SELECT', 'BEGIN', 'SELECT', 'UPDATE', 'SELECT', 'COMMIT']);
  });

  test('relations: "auto" loads many-to-many and many-to-one relations, "none" none, "all" one-to-many too, or per entity', async () => {
    const seen: Record<string, unknown>[] = [];
    const paths = async (options: TypeormDumperOptions) => {
      const { ds } = dataSource();
      await ds.initialize();
      const rows = await seed(ds);
      await ds.getRepository(Review).save({ body: 'nice', flavour: rows.vanilla });
      const dumper = createDumper({ logger: false });
      dumper.register('Flavour', {
        dependentPaths(f: Flavour) {
          seen.push({ sizes: f.sizes?.length, reviews: f.reviews?.length });
          return [`/flavours/${f.slug}/`];
        },
      });
      const handle = typeormDumper(dumper, ds, options);
      await ds.getRepository(Flavour).update({ slug: 'vanilla' }, { likes: 1 });
      handle.close();
      await dumper.close();
      return seen.splice(0);
    };
    // Before and after the update: two rows seen.
    expect(await paths({})).toEqual([{ sizes: 2 }, { sizes: 2 }].map((x) => ({ ...x, reviews: undefined })));
    expect(await paths({ relations: 'none' })).toEqual([{ sizes: undefined, reviews: undefined }, { sizes: undefined, reviews: undefined }]);
    expect(await paths({ relations: 'all' })).toEqual([{ sizes: 2, reviews: 1 }, { sizes: 2, reviews: 1 }]);
    expect(await paths({ relations: { Flavour: ['reviews'] } })).toEqual([{ sizes: undefined, reviews: 1 }, { sizes: undefined, reviews: 1 }]);
    expect(await paths({ relations: (m) => (m.name === 'Flavour' ? [] : undefined) })).toEqual([
      { sizes: undefined, reviews: undefined },
      { sizes: undefined, reviews: undefined },
    ]);
  });

  test('a relation name that the entity does not have fails its first write with a TypeError', async () => {
    const { ds } = dataSource();
    await ds.initialize();
    const handle = typeormDumper(dumperWithModels(), ds, { relations: { Flavour: ['sizez'] } });
    cleanup.push(() => handle.close());
    await expect(ds.getRepository(Flavour).save({ slug: 'mint', name: 'Mint' })).rejects.toThrow(
      new TypeError('page-dumper: typeormDumper() option "relations" names "sizez" for Flavour, which has no relation "sizez"'),
    );
    expect(await ds.getRepository(Flavour).count()).toBe(0);
  });

  test('invalidateOnRollback: false on SQLite drops the buffer on a rollback', async () => {
    const { ds } = dataSource();
    await ds.initialize();
    await seed(ds);
    const dumper = dumperWithModels();
    const calls = invalidations(dumper);
    for (const invalidateOnRollback of [undefined, false]) {
      const handle = typeormDumper(dumper, ds, invalidateOnRollback === undefined ? {} : { invalidateOnRollback });
      calls.length = 0;
      await ds
        .transaction(async (m) => {
          await m.update(Flavour, { slug: 'mint' }, { name: 'Mint leaf' });
          throw new Error('abort');
        })
        .catch(() => {});
      handle.close();
      // At the write; and on SQLite's default, again at the rollback.
      expect(calls, String(invalidateOnRollback)).toHaveLength(invalidateOnRollback === false ? 1 : 2);
    }
  });

  test('a model found through an ancestor class of the entity', async () => {
    abstract class Page {
      abstract slug: string;
      dependentPaths() {
        return [`/pages/${this.slug}/`];
      }
    }
    @Entity()
    class Article extends Page {
      @PrimaryGeneratedColumn() id!: number;
      @Column({ type: 'varchar', length: 50 }) slug!: string;
    }
    const { ds } = dataSource({ entities: [Article] });
    await ds.initialize();
    const dumper = createDumper({ logger: false });
    cleanup.push(() => dumper.close());
    dumper.register(Page as never);
    const calls = invalidations(dumper);
    const handle = typeormDumper(dumper, ds);
    cleanup.push(() => handle.close());
    await ds.getRepository(Article).save({ slug: 'hello' });
    // At the write, and again when save()'s own transaction commits.
    expect(calls).toEqual([['/pages/hello/'], ['/pages/hello/']]);
  });
});
