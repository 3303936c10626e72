/**
 * The public types of `page-dumper`: what `createDumper()` takes and returns, the application
 * methods, `MemoryStore`, and the helpers a custom store uses (an adapter's are in
 * adapter.test.ts). Checked by `npm run typecheck`; each `@ts-expect-error` marks a mistake that
 * must stay a type error.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import {
  canonicalPath,
  createDumper,
  DEFAULT_WARNED_REFUSALS,
  Dumper,
  DumperError,
  MemoryStore,
  type Dependents,
  type DumperErrorCode,
  type DumperLogger,
  type DumperOptions,
  type MemoryStoreOptions,
  type PathMatcher,
  type Purger,
  type RefusalReason,
  type Store,
} from '../../src/index.js';

describe('page-dumper types', () => {
  test('createDumper() takes options and returns a Dumper', async () => {
    expectTypeOf(createDumper).parameters.toEqualTypeOf<[options?: DumperOptions]>();
    expectTypeOf(createDumper).returns.toEqualTypeOf<Dumper>();
    const dumper = createDumper({
      store: new MemoryStore({ maxBytes: 1 << 20 }),
      keyPrefix: 'site:',
      ignore: (path) => path.startsWith('/admin'),
      statuses: [200, 404],
      version: false,
      hosts: ['example.com'],
      ignoreQueryParams: ['utm_source', /^fbclid$/],
      maxEntryBytes: 1 << 20,
      cacheStatusHeader: false,
      logger: false,
      compress: { br: 5, gzip: false, minBytes: 1024 },
      invalidateOnUnsafe: true,
      purgers: [],
    });
    expect(dumper).toBeInstanceOf(Dumper);
    expectTypeOf<DumperOptions['store']>().toEqualTypeOf<Store | undefined>();
    expectTypeOf<DumperOptions['logger']>().toEqualTypeOf<DumperLogger | false | undefined>();
    expectTypeOf<DumperOptions['purgers']>().toEqualTypeOf<readonly Purger[] | undefined>();
    expectTypeOf<string>().toMatchTypeOf<PathMatcher>();
    expectTypeOf<RegExp>().toMatchTypeOf<PathMatcher>();
    expectTypeOf(console).toMatchTypeOf<DumperLogger>();
    await dumper.close();
  });

  test('the application methods', async () => {
    const dumper = createDumper({ logger: false });
    expectTypeOf(dumper.invalidate).parameters.toEqualTypeOf<[paths: Iterable<string> | string]>();
    expectTypeOf(dumper.invalidate).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(dumper.invalidateTags).parameters.toEqualTypeOf<[tags: Iterable<string> | string]>();
    expectTypeOf(dumper.invalidatePrefix).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(dumper.invalidateAll).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(dumper.tag).parameters.toEqualTypeOf<string[]>();
    expectTypeOf(dumper.tag).returns.toBeVoid();
    expectTypeOf(dumper.changed).toBeCallableWith({});
    expectTypeOf(dumper.changed).toBeCallableWith('IceCream', { id: 1 });
    expectTypeOf(dumper.dependentsOf).returns.toEqualTypeOf<Promise<Dependents>>();
    expectTypeOf(dumper.isRegistered).parameters.toEqualTypeOf<[model: unknown]>();
    expectTypeOf(dumper.models).toEqualTypeOf<readonly string[]>();
    expectTypeOf(dumper.close).returns.toEqualTypeOf<Promise<void>>();
    expectTypeOf(dumper.flushPurges).returns.toEqualTypeOf<Promise<void>>();
    await dumper.close();
  });

  test('stores and helpers', () => {
    expectTypeOf(MemoryStore).constructorParameters.toEqualTypeOf<[options?: MemoryStoreOptions]>();
    expectTypeOf<MemoryStore>().toMatchTypeOf<Store>();
    expectTypeOf<MemoryStoreOptions>().toEqualTypeOf<{ maxBytes?: number; maxTrackedTags?: number }>();
    expectTypeOf(canonicalPath).returns.toEqualTypeOf<string | undefined>();
    expectTypeOf<DumperError['code']>().toEqualTypeOf<DumperErrorCode>();
    expectTypeOf<DumperError>().toMatchTypeOf<Error>();
  });

  test('warnings: true, false, or refusal reasons', () => {
    expectTypeOf(DEFAULT_WARNED_REFUSALS).toEqualTypeOf<readonly RefusalReason[]>();
    createDumper({ warnings: false, logger: false });
    createDumper({ warnings: ['status', ...DEFAULT_WARNED_REFUSALS], logger: false });
    expectTypeOf<DumperOptions['warnings']>().toEqualTypeOf<boolean | readonly RefusalReason[] | undefined>();
    expectTypeOf<Dumper['storeLabel']>().toEqualTypeOf<string>();
  });

  test('configuration mistakes are type errors', () => {
    const mistakes = () => {
      // @ts-expect-error an option that does not exist
      createDumper({ keyprefix: 'x' });
      // @ts-expect-error statuses are numbers
      createDumper({ statuses: ['200'] });
      // @ts-expect-error a store is an object with the Store methods, not a URL
      createDumper({ store: 'redis://localhost' });
      // @ts-expect-error ignore takes a pattern, a path prefix or a predicate
      createDumper({ ignore: 42 });
      // @ts-expect-error a logger needs debug()
      createDumper({ logger: { warn() {} } });
      // @ts-expect-error warnings names refusal reasons
      createDumper({ warnings: ['set-cookies'] });
      // @ts-expect-error warnings is a boolean or a list, not a level
      createDumper({ warnings: 'warn' });
      // @ts-expect-error maxBytes is a number of bytes
      new MemoryStore({ maxBytes: '64mb' });
      // @ts-expect-error tag() takes strings
      createDumper().tag(['a', 'b']);
      // @ts-expect-error invalidate() takes paths, not a number
      void createDumper().invalidate(404);
      // @ts-expect-error changed() needs the instance
      void createDumper().changed('IceCream');
    };
    expectTypeOf(mistakes).toBeFunction();
  });
});
