/** The model registry: what `dumper.register()` records and `dumper.changed()` consults. */

/**
 * Paths (or tags) as a collection: an array, a `Set`, a generator... but not a string. A string is
 * iterable too, character by character, so `Iterable<string>` alone would accept `'/flavors'` and
 * invalidate `/`, `f`, `l`... at run time; `& object` excludes it, making that a type error.
 */
export type PathList = Iterable<string> & object;

/** What a model's paths may be: a list (see `PathList`), an async iterable, or a promise of one. */
export type PathsResult = PathList | AsyncIterable<string> | PromiseLike<PathList | AsyncIterable<string>>;

/**
 * Options for registering a model by name, or a class whose instances lack a `dependentPaths`
 * method. `T` is the row or instance that `changed()` is given: `register<IceCreamRow>('IceCream',
 * { dependentPaths: (row) => [`/flavors/${row.slug}`] })` types `row`.
 */
export interface ModelOptions<T = any> {
  /** The paths whose pages show this instance; invalidated when it is saved, deleted or re-related. */
  dependentPaths(instance: T): PathsResult;
  /** Extra tags to invalidate with the paths (pages tagged with `dumper.tag()`). */
  dependentTags?(instance: T): PathsResult;
}

/** What `register(Class)` without options needs of the class's instances, as in django-dumper. */
export interface ModelInstance {
  /** The paths whose pages show this instance; invalidated when it is saved, deleted or re-related. */
  dependentPaths(): PathsResult;
  /** Extra tags to invalidate with the paths (pages tagged with `dumper.tag()`). */
  dependentTags?(): PathsResult;
}

/**
 * A model class. `ModelClass` (no argument) is any named class, as `changed()` and `isRegistered()`
 * take; `ModelClass<ModelInstance>` is one whose instances have `dependentPaths()`, as
 * `register(Class)` without options takes.
 */
export interface ModelClass<T = any> {
  readonly name: string;
  readonly prototype: T;
}

export interface RegisteredModel {
  readonly name: string;
  readonly dependentPaths: (instance: any) => unknown;
  readonly dependentTags: ((instance: any) => unknown) | undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return `a string (${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)})`;
  if (typeof value === 'object') return `an object (${Object.prototype.toString.call(value)})`;
  return `${typeof value} ${String(value)}`;
}

/**
 * Collects the strings of what a `dependentPaths`/`dependentTags` call returned. A string is
 * rejected: it is iterable character by character in JavaScript too, and invalidating `/`, `i`,
 * `c`, `e`... is never what was meant.
 */
export async function collectStrings(model: string, method: string, result: unknown): Promise<string[]> {
  let value = result;
  if (value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function') {
    value = await value;
  }
  if (typeof value === 'string') {
    throw new TypeError(
      `page-dumper: ${model}.${method}() returned ${describe(value)}; it must return an array or another iterable of paths, such as [${JSON.stringify(value)}]`,
    );
  }
  const out: string[] = [];
  const check = (item: unknown) => {
    if (typeof item !== 'string') {
      throw new TypeError(`page-dumper: ${model}.${method}() yielded ${describe(item)}; every item must be a string`);
    }
    out.push(item);
  };
  if (value !== null && typeof value === 'object' && Symbol.asyncIterator in value) {
    for await (const item of value as AsyncIterable<unknown>) check(item);
  } else if (value !== null && typeof value === 'object' && Symbol.iterator in value) {
    for (const item of value as Iterable<unknown>) check(item);
  } else {
    throw new TypeError(
      `page-dumper: ${model}.${method}() returned ${describe(value)}; it must return an array or another iterable of paths`,
    );
  }
  return out;
}

export class ModelRegistry {
  readonly #byClass = new Map<Function, RegisteredModel>();
  readonly #byName = new Map<string, RegisteredModel>();

  register(target: ModelClass | string, options?: ModelOptions): RegisteredModel {
    let name: string;
    let cls: Function | undefined;
    if (typeof target === 'string') {
      if (target === '') throw new TypeError('page-dumper: register() needs a non-empty model name');
      name = target;
    } else if (typeof target === 'function') {
      cls = target as unknown as Function;
      name = target.name;
      if (!name) throw new TypeError('page-dumper: register() needs a named class; pass a name: register("Name", { dependentPaths })');
    } else {
      throw new TypeError(`page-dumper: register() takes a model class or a model name, got ${describe(target)}`);
    }
    let model: RegisteredModel;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object' || typeof options.dependentPaths !== 'function') {
        throw new TypeError(`page-dumper: register("${name}", options) needs options.dependentPaths(instance), a function`);
      }
      if (options.dependentTags !== undefined && typeof options.dependentTags !== 'function') {
        throw new TypeError(`page-dumper: register("${name}", options): dependentTags must be a function`);
      }
      const { dependentPaths, dependentTags } = options;
      model = {
        name,
        dependentPaths: (i) => dependentPaths.call(options, i),
        dependentTags: dependentTags && ((i) => dependentTags.call(options, i)),
      };
    } else if (cls !== undefined) {
      const proto = (cls as { prototype?: Record<string, unknown> }).prototype;
      if (!proto || typeof proto.dependentPaths !== 'function') {
        throw new TypeError(
          `page-dumper: cannot register ${name}: it has no dependentPaths() method; add one, or pass register(${name}, { dependentPaths(instance) { ... } })`,
        );
      }
      model = {
        name,
        dependentPaths: (i) => (i as { dependentPaths(): unknown }).dependentPaths(),
        dependentTags:
          typeof proto.dependentTags === 'function' ? (i) => (i as { dependentTags(): unknown }).dependentTags() : undefined,
      };
    } else {
      throw new TypeError(`page-dumper: register("${name}") needs options with dependentPaths(instance)`);
    }
    const existing = this.#byName.get(name);
    if (existing !== undefined && (cls === undefined || this.#byClass.get(cls) !== existing)) {
      throw new TypeError(`page-dumper: a model named "${name}" is already registered`);
    }
    if (existing !== undefined) return existing;
    this.#byName.set(name, model);
    if (cls !== undefined) this.#byClass.set(cls, model);
    return model;
  }

  /** The model of an instance (its class or an ancestor class), or of a name. */
  find(target: unknown): RegisteredModel | undefined {
    if (typeof target === 'string') return this.#byName.get(target);
    if (typeof target === 'function') return this.#byClass.get(target);
    if (target === null || typeof target !== 'object') return undefined;
    let proto = Object.getPrototypeOf(target) as { constructor?: Function } | null;
    while (proto !== null && proto !== Object.prototype) {
      const m = proto.constructor && this.#byClass.get(proto.constructor);
      if (m) return m;
      proto = Object.getPrototypeOf(proto) as { constructor?: Function } | null;
    }
    return undefined;
  }

  get names(): string[] {
    return [...this.#byName.keys()];
  }
}
