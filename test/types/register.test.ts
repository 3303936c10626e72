/**
 * `dumper.register()` catches at compile time the mistakes it would otherwise throw for at run time
 * (test/core/models.test.ts): a `dependentPaths` that returns a string, which is iterable character
 * by character, and a class without `dependentPaths()` registered without options. And a model
 * registered by name declares its row type: `register<IceCreamRow>('IceCream', ...)`.
 *
 * `npm run typecheck` checks this file (tsconfig.json includes test/): each `@ts-expect-error`
 * fails the check if the line under it compiles, so a typing that lets the mistake through fails.
 * The mistakes sit in functions that are never called; the calls that are made register models
 * that work, so the run-time half agrees with the types.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import { createDumper, type Dumper, type ModelClass, type ModelOptions, type PathsResult } from '../../src/index.js';

interface IceCreamRow {
  id: number;
  slug: string;
  flavors: string[];
}

class IceCream {
  constructor(readonly slug: string) {}
  dependentPaths() {
    return ['/ice-cream/', `/ice-cream/${this.slug}/`];
  }
  dependentTags() {
    return new Set([`ice-cream:${this.slug}`]);
  }
}

/** A class the ORM knows, without paths of its own: it registers with options. */
class Size {
  constructor(readonly label: string) {}
}

class OnePath {
  constructor(readonly slug: string) {}
  dependentPaths() {
    return `/ice-cream/${this.slug}/`;
  }
}

class OneTag {
  dependentPaths() {
    return ['/'];
  }
  dependentTags() {
    return 'ice-cream';
  }
}

class AsyncOnePath {
  async dependentPaths() {
    return '/ice-cream/';
  }
}

describe('register() types', () => {
  test('a class with dependentPaths() registers as it is, and returns the dumper', async () => {
    const dumper = createDumper({ logger: false });
    expectTypeOf(dumper.register(IceCream)).toEqualTypeOf<Dumper>();
    expect(dumper.isRegistered(new IceCream('vanilla'))).toBe(true);
    await dumper.close();
  });

  test('every shape of paths a model may give: arrays, sets, generators, async ones, promises', async () => {
    const dumper = createDumper({ logger: false });
    dumper
      .register('Array', { dependentPaths: () => ['/a/'] })
      .register('Readonly', { dependentPaths: () => ['/a/'] as const })
      .register('Set', { dependentPaths: () => new Set(['/a/']), dependentTags: () => new Set(['t']) })
      .register('Generator', {
        *dependentPaths() {
          yield '/a/';
        },
      })
      .register('AsyncGenerator', {
        async *dependentPaths() {
          yield '/a/';
        },
      })
      .register('Promise', { dependentPaths: async () => ['/a/'], dependentTags: () => Promise.resolve(['t']) })
      .register('Keys', { dependentPaths: () => new Map([['/a/', 1]]).keys() });
    expect(dumper.models).toHaveLength(7);
    await dumper.close();
  });

  test('a model registered by name declares its row type', async () => {
    const dumper = createDumper({ logger: false });
    dumper.register<IceCreamRow>('IceCream', {
      dependentPaths: (row) => {
        expectTypeOf(row).toEqualTypeOf<IceCreamRow>();
        return ['/ice-cream/', `/ice-cream/${row.slug}/`];
      },
      dependentTags(row) {
        expectTypeOf(row).toEqualTypeOf<IceCreamRow>();
        return row.flavors.map((flavor) => `flavor:${flavor}`);
      },
    });
    // Without a type argument, the row is whatever the callback annotates, or `any`.
    dumper.register('Topping', { dependentPaths: (row: { name: string }) => [`/toppings/${row.name}/`] });
    dumper.register('Cone', {
      dependentPaths: (row) => {
        expectTypeOf(row).toBeAny();
        return [`/cones/${String(row.id)}/`];
      },
    });
    expect(await dumper.dependentsOf('IceCream', { id: 1, slug: 'vanilla', flavors: ['v'] })).toMatchObject({
      paths: ['/ice-cream/', '/ice-cream/vanilla/'],
    });
    await dumper.close();
  });

  test('a class registered with options gets its instances in dependentPaths', async () => {
    const dumper = createDumper({ logger: false });
    dumper.register(Size, {
      dependentPaths: (size) => {
        expectTypeOf(size).toEqualTypeOf<Size>();
        return [`/sizes/${size.label}/`];
      },
    });
    expect(await dumper.dependentsOf(new Size('large'))).toMatchObject({ paths: ['/sizes/large/'] });
    await dumper.close();
  });

  test('the mistakes are type errors', () => {
    const dumper = createDumper({ logger: false });
    const mistakes = () => {
      // @ts-expect-error dependentPaths returns a string: it must return [path]
      dumper.register('IceCream', { dependentPaths: (row: IceCreamRow) => `/ice-cream/${row.slug}/` });
      // @ts-expect-error the same, through a promise
      dumper.register('IceCream', { dependentPaths: async (row: IceCreamRow) => `/ice-cream/${row.slug}/` });
      // @ts-expect-error dependentTags returns a string
      dumper.register('IceCream', { dependentPaths: () => ['/'], dependentTags: () => 'ice-cream' });
      // @ts-expect-error items are strings
      dumper.register('IceCream', { dependentPaths: (row: IceCreamRow) => [row.id] });
      // @ts-expect-error a class whose dependentPaths() returns a string
      dumper.register(OnePath);
      // @ts-expect-error a class whose dependentTags() returns a string
      dumper.register(OneTag);
      // @ts-expect-error a class whose async dependentPaths() resolves to a string
      dumper.register(AsyncOnePath);
      // @ts-expect-error a class without dependentPaths(), and no options to give it
      dumper.register(Size);
      // @ts-expect-error a model name without options
      dumper.register('IceCream');
      // @ts-expect-error options without dependentPaths
      dumper.register('IceCream', { dependentTags: () => ['t'] });
      // @ts-expect-error the declared row type has no `name`
      dumper.register<IceCreamRow>('IceCream', { dependentPaths: (row) => [`/ice-cream/${row.name}/`] });
      // @ts-expect-error options given for a class receive its instances, which have no `slug`
      dumper.register(Size, { dependentPaths: (size) => [`/sizes/${size.slug}/`] });
      // @ts-expect-error a class registered with options still returns a list
      dumper.register(Size, { dependentPaths: (size) => `/sizes/${size.label}/` });
      // @ts-expect-error neither a class nor a name
      dumper.register({ dependentPaths: () => ['/'] });
    };
    expectTypeOf(mistakes).toBeFunction();
    return dumper.close();
  });

  test('the exported model types', () => {
    expectTypeOf<string[]>().toMatchTypeOf<PathsResult>();
    expectTypeOf<Set<string>>().toMatchTypeOf<PathsResult>();
    expectTypeOf<AsyncGenerator<string>>().toMatchTypeOf<PathsResult>();
    expectTypeOf<Promise<readonly string[]>>().toMatchTypeOf<PathsResult>();
    expectTypeOf<string>().not.toMatchTypeOf<PathsResult>();
    expectTypeOf<Promise<string>>().not.toMatchTypeOf<PathsResult>();
    expectTypeOf<number[]>().not.toMatchTypeOf<PathsResult>();
    expectTypeOf<ModelOptions<IceCreamRow>['dependentPaths']>().parameters.toEqualTypeOf<[IceCreamRow]>();
    expectTypeOf<typeof IceCream>().toMatchTypeOf<ModelClass>();
    expectTypeOf<typeof Size>().toMatchTypeOf<ModelClass>();
  });
});
