/**
 * The ORM objects (a TypeORM DataSource, a MikroORM driver, a Sequelize instance) that have a
 * page-dumper integration installed, whichever copy of page-dumper installed it: a process may load
 * both the ES module and the CommonJS build (an ES module app using an integration that a CommonJS
 * library requires), and each copy keeps its own registry of what it installed. A second install
 * on one object would wrap it twice and invalidate every write twice; this set lets the second
 * copy refuse it, as the first copy refuses a second install of its own.
 */
const installs = ((globalThis as Record<symbol, unknown>)[Symbol.for('page-dumper.orm.installs@0')] ??= new WeakSet<object>()) as WeakSet<object>;

/** Whether some copy of page-dumper in the process has an integration installed on `target`. */
export function installedAnywhere(target: object): boolean {
  return installs.has(target);
}

/** Records that an integration is installed on `target` (until `markUninstalled`). */
export function markInstalled(target: object): void {
  installs.add(target);
}

/** Records that the integration on `target` was closed. */
export function markUninstalled(target: object): void {
  installs.delete(target);
}
