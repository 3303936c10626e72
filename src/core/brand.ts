/**
 * `instanceof` across copies of page-dumper. A process may load both its ES module build and its
 * CommonJS build (an ES module app using an integration that a CommonJS library requires): each
 * has its own `DumperError`, `PurgeError`, `MemoryStore`, `Dumper`, and an object made by one copy
 * would fail `instanceof` against the other's class.
 */

/**
 * Marks the instances of `cls` with `Symbol.for('page-dumper.<name>')` and makes `x instanceof cls`
 * also hold for objects carrying the mark, whichever copy made them. Subclasses keep the ordinary
 * `instanceof`.
 */
export function brandClass(cls: abstract new (...args: never[]) => object, name: string): void {
  const brand = Symbol.for(`page-dumper.${name}`);
  Object.defineProperty(cls.prototype, brand, { value: true });
  Object.defineProperty(cls, Symbol.hasInstance, {
    value(this: unknown, value: unknown): boolean {
      if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
      return this === cls && typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
    },
  });
}
