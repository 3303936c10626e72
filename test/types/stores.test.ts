/**
 * The public types of the stores and the edge: `page-dumper/redis`, `/sqlite`, `/testing`,
 * `/purge` and `/prometheus`. Store constructors take typed options, and what they build is a
 * `Store` the dumper accepts. Checked by `npm run typecheck`; each `@ts-expect-error` marks a
 * mistake that must stay a type error (in functions never called).
 */
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { createDumper, type Dumper, type PurgeQueueStore, type Purger, type Store } from '../../src/index.js';
import { RedisStore, RedisStoreError, type RedisLocalTierOptions, type RedisStoreOptions } from '../../src/stores/redis/index.js';
import { SqliteStore, type SqliteStoreOptions } from '../../src/stores/sqlite/index.js';
import { runStoreConformance, type StoreConformanceOptions } from '../../src/testing/index.js';
import {
  cloudflarePurger,
  EDGE_ALL_TAG,
  edgeTag,
  fastlyPurger,
  PurgeError,
  varnishPurger,
  type CloudflarePurgerOptions,
  type FastlyPurgerOptions,
  type VarnishPurgerOptions,
} from '../../src/edge/index.js';
import { registerMetrics, type MetricsOptions, type RegisteredMetrics } from '../../src/prometheus/index.js';

describe('store and edge types', () => {
  test('page-dumper/redis: options, an injected client, and a Store', () => {
    expectTypeOf(RedisStore).constructorParameters.toEqualTypeOf<[options?: RedisStoreOptions]>();
    expectTypeOf<RedisStore>().toMatchTypeOf<Store>();
    expectTypeOf<RedisStore>().toMatchTypeOf<PurgeQueueStore>();
    expectTypeOf<Redis>().toMatchTypeOf<NonNullable<RedisStoreOptions['client']>>();
    expectTypeOf<RedisStoreOptions['localTier']>().toEqualTypeOf<boolean | RedisLocalTierOptions | undefined>();
    expectTypeOf<RedisStoreError['code']>().toEqualTypeOf<'DUMPER_REDIS_TIMEOUT' | 'DUMPER_REDIS_OFFLINE' | 'DUMPER_REDIS_NO_DATABASE'>();
    // Never called: each would connect.
    const uses = () => {
      createDumper({ store: new RedisStore({ url: 'redis://127.0.0.1:6379', prefix: 'site:', ttl: 86_400 }) });
      createDumper({ store: new RedisStore({ client: new Redis({ lazyConnect: true }), localTier: { maxBytes: 1 << 20 } }) });
      // @ts-expect-error the URL goes in options
      new RedisStore('redis://127.0.0.1:6379');
      // @ts-expect-error an option that does not exist
      new RedisStore({ host: '127.0.0.1' });
      // @ts-expect-error ttl is a number of seconds
      new RedisStore({ ttl: '1d' });
    };
    expectTypeOf(uses).toBeFunction();
  });

  test('page-dumper/sqlite: a path or a database, and a Store', async () => {
    expectTypeOf(SqliteStore).constructorParameters.toEqualTypeOf<[options: SqliteStoreOptions]>();
    expectTypeOf<SqliteStore>().toMatchTypeOf<Store>();
    expectTypeOf<SqliteStoreOptions['database']>().toEqualTypeOf<Database.Database | undefined>();
    const store = new SqliteStore({ path: ':memory:', maxBytes: 1 << 20 });
    const dumper = createDumper({ store, logger: false });
    expect(dumper).toBeDefined();
    await dumper.close();
    const mistakes = () => {
      // @ts-expect-error options are required (a path or a database)
      new SqliteStore();
      // @ts-expect-error the path goes in options
      new SqliteStore('pages.sqlite');
      // @ts-expect-error database is a better-sqlite3 Database, not a file name
      new SqliteStore({ database: 'pages.sqlite' });
    };
    expectTypeOf(mistakes).toBeFunction();
  });

  test('page-dumper/testing: the store conformance suite', () => {
    expectTypeOf(runStoreConformance).parameters.toEqualTypeOf<[StoreConformanceOptions]>();
    expectTypeOf(runStoreConformance).returns.toBeVoid();
    expectTypeOf<StoreConformanceOptions['create']>().returns.toEqualTypeOf<Store | Promise<Store>>();
    const uses = () => {
      runStoreConformance({ test, create: () => new SqliteStore({ path: ':memory:' }) });
      // @ts-expect-error create is a function that makes a store, not a store
      runStoreConformance({ test, create: new SqliteStore({ path: ':memory:' }) });
      // @ts-expect-error the test function is required
      runStoreConformance({ create: () => new SqliteStore({ path: ':memory:' }) });
    };
    expectTypeOf(uses).toBeFunction();
  });

  test('page-dumper/purge: purgers the dumper accepts', async () => {
    expectTypeOf(varnishPurger).parameters.toEqualTypeOf<[options: VarnishPurgerOptions]>();
    expectTypeOf(fastlyPurger).parameters.toEqualTypeOf<[options: FastlyPurgerOptions]>();
    expectTypeOf(cloudflarePurger).parameters.toEqualTypeOf<[options: CloudflarePurgerOptions]>();
    expectTypeOf(varnishPurger).returns.toEqualTypeOf<Purger>();
    expectTypeOf(fastlyPurger).returns.toEqualTypeOf<Purger>();
    expectTypeOf(cloudflarePurger).returns.toEqualTypeOf<Purger>();
    expectTypeOf(edgeTag).returns.toBeString();
    expectTypeOf(EDGE_ALL_TAG).toBeString();
    expectTypeOf<PurgeError>().toMatchTypeOf<Error>();
    const dumper = createDumper({
      logger: false,
      purgers: [
        varnishPurger({ url: ['http://127.0.0.1:6081', 'http://127.0.0.1:6082'], soft: true, timeout: 1000 }),
        fastlyPurger({ serviceId: 'service', token: 'token' }),
        cloudflarePurger({ zoneId: 'zone', token: 'token' }),
      ],
    });
    const mistakes = () => {
      // @ts-expect-error Fastly needs a service id
      fastlyPurger({ token: 'token' });
      // @ts-expect-error Cloudflare needs a zone id
      cloudflarePurger({ token: 'token' });
      // @ts-expect-error Varnish needs its URL
      varnishPurger({});
      // @ts-expect-error purgers are Purger objects, not URLs
      createDumper({ purgers: ['http://127.0.0.1:6081'] });
    };
    expectTypeOf(mistakes).toBeFunction();
    await dumper.close();
  });

  test('page-dumper/prometheus: metrics on a registry', () => {
    expectTypeOf(registerMetrics).parameters.toEqualTypeOf<[dumper: Dumper, options?: MetricsOptions]>();
    expectTypeOf(registerMetrics).returns.toEqualTypeOf<RegisteredMetrics>();
    expectTypeOf<RegisteredMetrics['registry']>().toEqualTypeOf<Registry>();
    const mistakes = () => {
      // @ts-expect-error the registry is a prom-client Registry
      registerMetrics(createDumper(), { registry: {} });
    };
    expectTypeOf(mistakes).toBeFunction();
  });
});
