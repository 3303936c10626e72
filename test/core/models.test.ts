import { describe, expect, test } from 'vitest';
import { createDumper, MemoryStore, type StoredEntry } from '../../src/index.js';

/** Records what reaches the store, so a test sees exactly which tags were invalidated. */
class RecordingStore extends MemoryStore {
  readonly invalidated: string[][] = [];
  override invalidate(tags: readonly string[]): number {
    this.invalidated.push([...tags]);
    return super.invalidate(tags);
  }
}

function setup() {
  const store = new RecordingStore();
  const dumper = createDumper({ store, logger: false, keyPrefix: '' });
  return { store, dumper };
}

describe('models', () => {
  test('register(Class) uses dependentPaths() and finds subclasses', async () => {
    const { store, dumper } = setup();
    class IceCream {
      constructor(readonly slug: string) {}
      dependentPaths() {
        return ['/ice-cream/', `/ice-cream/${this.slug}/`];
      }
    }
    class SoftServe extends IceCream {}
    dumper.register(IceCream);
    expect(dumper.models).toEqual(['IceCream']);
    expect(dumper.isRegistered(new SoftServe('x'))).toBe(true);
    await dumper.changed(new SoftServe('swirl'));
    expect(store.invalidated).toEqual([['/ice-cream', '/ice-cream/swirl']]);
  });

  test('dependentPaths may be any iterable, a generator, an async generator or a promise', async () => {
    const { store, dumper } = setup();
    dumper.register('A', { dependentPaths: () => new Set(['/a']) });
    dumper.register('B', {
      *dependentPaths(b: { ids: number[] }) {
        for (const id of b.ids) yield `/b/${id}`;
      },
    });
    dumper.register('C', {
      async *dependentPaths() {
        yield '/c';
      },
    });
    dumper.register('D', { dependentPaths: async () => ['/d'] });
    await dumper.changed('A', {});
    await dumper.changed('B', { ids: [1, 2] });
    await dumper.changed('C', {});
    await dumper.changed('D', {});
    expect(store.invalidated).toEqual([['/a'], ['/b/1', '/b/2'], ['/c'], ['/d']]);
  });

  test('dependentTags are invalidated with the paths', async () => {
    const { store, dumper } = setup();
    dumper.register('Size', { dependentPaths: (s: { id: number }) => [`/sizes/${s.id}`], dependentTags: (s: { id: number }) => [`size:${s.id}`] });
    await dumper.changed('Size', { id: 3 });
    expect(store.invalidated).toEqual([['/sizes/3', 'size:3']]);
  });

  test('dependentsOf() computes without invalidating; invalidateDependents() sends several in one store call', async () => {
    const { store, dumper } = setup();
    dumper.register('Size', { dependentPaths: (s: { id: number }) => ['/sizes/', `/sizes/${s.id}/`], dependentTags: (s: { id: number }) => [`size:${s.id}`] });
    const one = await dumper.dependentsOf('Size', { id: 1 });
    const two = await dumper.dependentsOf('Size', { id: 2 });
    expect(one).toEqual({ model: 'Size', paths: ['/sizes/', '/sizes/1/'], tags: ['size:1'] });
    expect(store.invalidated).toEqual([]);
    await dumper.invalidateDependents([one, two]);
    expect(store.invalidated).toEqual([['/sizes', '/sizes/1', '/sizes/2', 'size:1', 'size:2']]);
    await dumper.invalidateDependents(one);
    expect(store.invalidated[1]).toEqual(['/sizes', '/sizes/1', 'size:1']);
    await expect(dumper.dependentsOf('Nope', {})).rejects.toThrow('model "Nope" is not registered');
  });

  test('a string from dependentPaths is a TypeError naming the model, as in django-dumper', async () => {
    const { dumper } = setup();
    class IceCream {
      dependentPaths() {
        return '/ice-cream/' as unknown as string[];
      }
    }
    dumper.register(IceCream);
    await expect(dumper.changed(new IceCream())).rejects.toThrow(
      new TypeError(
        'page-dumper: IceCream.dependentPaths() returned a string ("/ice-cream/"); it must return an array or another iterable of paths, such as ["/ice-cream/"]',
      ),
    );
    dumper.register('Async', { dependentPaths: async () => '/x' as unknown as string[] });
    await expect(dumper.changed('Async', {})).rejects.toThrow(TypeError);
  });

  test('non-string items, non-iterables and bad paths are TypeErrors', async () => {
    const { dumper } = setup();
    dumper.register('N', { dependentPaths: () => [1] as unknown as string[] });
    await expect(dumper.changed('N', {})).rejects.toThrow('page-dumper: N.dependentPaths() yielded number 1; every item must be a string');
    dumper.register('U', { dependentPaths: () => undefined as unknown as string[] });
    await expect(dumper.changed('U', {})).rejects.toThrow('page-dumper: U.dependentPaths() returned undefined undefined; it must return an array or another iterable of paths');
    dumper.register('R', { dependentPaths: () => ['relative'] });
    await expect(dumper.changed('R', {})).rejects.toThrow('page-dumper: a path must start with "/" (or be a full URL), got "relative"');
  });

  test('registration mistakes are TypeErrors', () => {
    const { dumper } = setup();
    class NoPaths {}
    expect(() => dumper.register(NoPaths as never)).toThrow(
      'page-dumper: cannot register NoPaths: it has no dependentPaths() method; add one, or pass register(NoPaths, { dependentPaths(instance) { ... } })',
    );
    expect(() => dumper.register('X', {} as never)).toThrow('page-dumper: register("X", options) needs options.dependentPaths(instance), a function');
    dumper.register('Dup', { dependentPaths: () => [] });
    expect(() => dumper.register('Dup', { dependentPaths: () => [] })).toThrow('page-dumper: a model named "Dup" is already registered');
    class Twice {
      dependentPaths() {
        return [];
      }
    }
    dumper.register(Twice).register(Twice);
    expect(dumper.models).toContain('Twice');
  });

  test('changed() on an unregistered model is a TypeError', async () => {
    const { dumper } = setup();
    class Stranger {}
    await expect(dumper.changed(new Stranger())).rejects.toThrow('page-dumper: changed(): model Stranger is not registered; call dumper.register() first');
    await expect(dumper.changed('Nobody', {})).rejects.toThrow('model "Nobody" is not registered');
    class Known {
      dependentPaths() {
        return [];
      }
    }
    dumper.register(Known);
    await expect(dumper.changed(Known as never)).rejects.toThrow('page-dumper: changed(Known) needs the instance that changed: changed(Known, instance) or changed(instance)');
  });

  test('invalidate() accepts full URLs and drops query strings and fragments', async () => {
    const { store, dumper } = setup();
    await dumper.invalidate(['https://site.example/A/?x=1', '/b#top']);
    expect(store.invalidated).toEqual([['/a', '/b']]);
  });

  test('invalidatePrefix needs prefixInvalidation and reaches everything below', async () => {
    const { dumper } = setup();
    await expect(dumper.invalidatePrefix('/a')).rejects.toThrow('page-dumper: invalidatePrefix() needs the option prefixInvalidation: true');
    const store = new MemoryStore();
    const d = createDumper({ store, logger: false, prefixInvalidation: true });
    const put = async (path: string) => {
      const plan = await d.beginFill(d.keyFor('GET', path, { host: 'h' }) as string, 'GET', { host: 'h' });
      if (plan.kind !== 'fill') throw new Error('expected a fill');
      await plan.fill.complete(200, ['content-type', 'text/plain'], new Uint8Array([1]));
    };
    for (const p of ['/a', '/a/b', '/a/b/c', '/ab']) await put(p);
    expect(store.size).toBe(4);
    await d.invalidatePrefix('/a/');
    expect(store.size).toBe(1);
    expect(d.get(d.keyFor('GET', '/ab', { host: 'h' }) as string, { host: 'h' })).toBeDefined();
  });

  test('tag() outside a render does nothing; bad tags are TypeErrors', () => {
    const { dumper } = setup();
    expect(() => dumper.tag('x')).not.toThrow();
    expect(() => dumper.tag('')).toThrow('page-dumper: tag() takes non-empty strings, got an empty string');
  });

  test('invalidateAll() drops every page and refuses renders that started before it', async () => {
    const store = new MemoryStore();
    const d = createDumper({ store, logger: false });
    const key = d.keyFor('GET', '/x', { host: 'h' }) as string;
    const plan = await d.beginFill(key, 'GET', { host: 'h' });
    await d.invalidateAll();
    if (plan.kind !== 'fill') throw new Error('expected a fill');
    expect(await plan.fill.complete(200, [], new Uint8Array([1]))).toBe(false);
    expect(store.size).toBe(0);
    const entry: StoredEntry | undefined = await d.get(key, { host: 'h' });
    expect(entry).toBeUndefined();
  });
});
