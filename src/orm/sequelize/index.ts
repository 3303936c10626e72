/**
 * page-dumper for Sequelize 6: `sequelizeDumper(dumper, sequelize)`.
 *
 * Every write Sequelize makes to a registered model invalidates the pages that show the row, as
 * django-dumper's post_save, pre_delete and m2m_changed signals do: `create()`, `save()`,
 * `update()`, `destroy()` (soft deletes too), `restore()`, `upsert()`, `bulkCreate()`,
 * `Model.update()`, `Model.destroy()` and `Model.restore()` by `where` (whose rows are found with
 * the same `where`, in the same transaction, before the write), `increment()`, `decrement()`, and
 * the belongsToMany mixins (`addX`, `setX`, `removeX`, `createX`), whose junction rows reach the
 * rows on both sides. Inside a transaction, pages are invalidated when the write happens and
 * again when the outermost transaction commits. With `trackReads: true`, each page is also tagged
 * with what its render read (./reads.ts), and every model's writes invalidate the tags of the rows
 * they changed: no `dependentPaths()` needed. See docs/sequelize.md.
 */
import type { Sequelize } from 'sequelize';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { installedAnywhere, markInstalled, markUninstalled } from '../installs.js';
import { readOptions, ReadTracker } from '../reads.js';
import { HOOKS, READ_WRAPPED, SequelizeIntegration, WRAPPED } from './integration.js';

/** The tag names of `trackReads` (docs/track-reads.md), to tag or invalidate by hand beside it. */
export { keyTag, listTag, rowTag, tableTag } from '../reads.js';

export interface SequelizeDumperOptions {
  /**
   * The most rows one write resolves one by one: a `Model.update()`, `destroy()` or `restore()`
   * by `where`, an `increment()`, an upsert, a `bulkCreate()`, the rows on one side of the
   * junction rows a write touches. Above it the write still runs, and every page is invalidated
   * instead (`dumper.invalidateAll()`, logged at warn level). `Infinity` never does that.
   *
   * Default: 1000 rows. Trap: up to this many rows are read (by primary key, in the write's
   * transaction) before and after every such write; a larger bound costs as many rows per write.
   */
  maxRows?: number;
  /**
   * Invalidate again when a transaction rolls back. Readers on other connections never see
   * uncommitted rows, so a page they render during the transaction is right after a rollback.
   * But Sequelize runs every query of an in-memory SQLite database (`storage: ':memory:'`, the
   * default) on one shared connection, readers' included: a page rendered during the transaction
   * may show rows that the rollback undid. (A SQLite file gets a connection per transaction.)
   *
   * Default: true for SQLite in memory, false otherwise.
   */
  invalidateOnRollback?: boolean;
  /**
   * Tag each page with the rows and tables its render read through this Sequelize instance, and
   * invalidate those tags on every write of every model (registered or not): pages need no
   * `dependentPaths()`. Reads by primary key tag rows, reads by a foreign key (association
   * getters) tag that key, lists, filters, counts and filtering includes tag their tables; raw
   * SQL (`sequelize.query()`, `literal()`) is not parsed. See docs/sequelize.md#trackreads.
   *
   * Default: false.
   */
  trackReads?: boolean;
  /**
   * With `trackReads`: the most tags a page gets from its reads. Past it, a table's further row
   * reads tag the whole table (its list tag, which every write of the table invalidates), with a
   * warning in the log. Each tag costs a few bytes in the entry and in the store's tag index.
   *
   * Default: 500.
   */
  maxTagsPerPage?: number;
}

/** What `sequelizeDumper()` returns. */
export interface SequelizeDumper {
  readonly sequelize: Sequelize;
  /** With `trackReads`: what tags the pages. */
  readonly reads: ReadTracker | undefined;
  /** Stops invalidating on this Sequelize instance's writes (and tagging its reads) and removes the hooks. Idempotent. */
  close(): void;
}

/** The name the hooks are added under (`sequelize.removeHook(type, name)` removes them). */
export const HOOK_NAME = 'page-dumper';

const DEFAULT_MAX_ROWS = 1000;
const KNOWN = new Set(['maxRows', 'invalidateOnRollback', 'trackReads', 'maxTagsPerPage']);
const installed = new WeakSet<object>();

function validate(options: unknown): { maxRows: number; invalidateOnRollback: boolean | undefined; trackReads: boolean; maxTagsPerPage: number } {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: sequelizeDumper() options must be an object');
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new TypeError(`page-dumper: sequelizeDumper() got an unknown option "${k}"`);
  }
  const { maxRows = DEFAULT_MAX_ROWS, invalidateOnRollback } = options as SequelizeDumperOptions;
  if (!(maxRows === Infinity || (Number.isSafeInteger(maxRows) && maxRows >= 1))) {
    throw new TypeError(`page-dumper: sequelizeDumper() option "maxRows" must be a positive integer or Infinity, got ${String(maxRows)}`);
  }
  if (invalidateOnRollback !== undefined && typeof invalidateOnRollback !== 'boolean') {
    throw new TypeError(`page-dumper: sequelizeDumper() option "invalidateOnRollback" must be a boolean, got ${typeof invalidateOnRollback}`);
  }
  const { trackReads, maxTagsPerPage } = readOptions('sequelizeDumper', (options as SequelizeDumperOptions).trackReads, (options as SequelizeDumperOptions).maxTagsPerPage);
  return { maxRows, invalidateOnRollback, trackReads, maxTagsPerPage };
}

/** Whether Sequelize runs every query of this database on one connection (SQLite in memory). */
function sharedConnection(sequelize: Sequelize): boolean {
  const options = (sequelize as unknown as { options: object }).options as { dialect?: string; storage?: string; host?: string };
  if (options.dialect !== 'sqlite') return false;
  // As Sequelize's SQLite connection manager decides it.
  return (options.storage ?? options.host ?? ':memory:') === ':memory:';
}

/**
 * Invalidates the pages of registered models on every write this Sequelize instance makes. Call
 * it once per instance, before or after the models are defined:
 *
 * ```ts
 * class IceCream extends Model {
 *   dependentPaths() { return ['/ice-cream/', `/ice-cream/${this.slug}/`]; }
 * }
 * dumper.register(IceCream);             // or dumper.register('IceCream', { dependentPaths(row) {...} })
 * sequelizeDumper(dumper, sequelize);
 * ```
 *
 * A model is found from its class (or a class it extends), else from its model name, else from
 * its table name. `dependentPaths()` runs on the row before the write (an update, a destroy, a
 * restore: the row as stored, read in the write's transaction) and after it (the instance you
 * saved, whose `previous()` values still answer), so a changed slug invalidates the old URL too.
 */
export function sequelizeDumper(dumper: Dumper, sequelize: Sequelize, options: SequelizeDumperOptions = {}): SequelizeDumper {
  assertDumper(dumper, 'sequelizeDumper');
  if (
    sequelize === null ||
    typeof sequelize !== 'object' ||
    typeof sequelize.addHook !== 'function' ||
    typeof sequelize.getQueryInterface !== 'function' ||
    typeof (sequelize as { modelManager?: unknown }).modelManager !== 'object'
  ) {
    throw new TypeError('page-dumper: sequelizeDumper(dumper, sequelize) needs a Sequelize 6 instance (new Sequelize(...))');
  }
  if (installed.has(sequelize) || installedAnywhere(sequelize)) throw new TypeError('page-dumper: sequelizeDumper() is already installed on this Sequelize instance');
  const settings = validate(options);

  const reads = settings.trackReads ? new ReadTracker(dumper, { maxTagsPerPage: settings.maxTagsPerPage, integration: 'sequelize' }) : undefined;
  const integration = new SequelizeIntegration(dumper, sequelize, {
    maxRows: settings.maxRows,
    invalidateOnRollback: settings.invalidateOnRollback ?? sharedConnection(sequelize),
    reads,
  });
  const hooks = integration.hooks();
  const addHook = sequelize.addHook.bind(sequelize) as (type: string, name: string, fn: (...args: never[]) => unknown) => unknown;
  for (const type of HOOKS) addHook(type, HOOK_NAME, hooks[type]);

  // Own properties of this instance's query interface: another Sequelize instance is left alone.
  const qi = sequelize.getQueryInterface() as unknown as Record<string, unknown>;
  const wrappers = new Map<string, { wrapper: unknown; own: boolean; original: unknown }>();
  for (const method of WRAPPED) {
    const original = qi[method] as (this: unknown, ...args: unknown[]) => Promise<unknown>;
    const wrapper = integration.wrap(method, original);
    wrappers.set(method, { wrapper, own: Object.hasOwn(qi, method), original });
    qi[method] = wrapper;
  }
  if (reads !== undefined) {
    for (const method of READ_WRAPPED) {
      const original = qi[method] as (this: unknown, ...args: unknown[]) => Promise<unknown>;
      const wrapper = integration.wrapRead(method, original);
      wrappers.set(method, { wrapper, own: Object.hasOwn(qi, method), original });
      qi[method] = wrapper;
    }
  }
  installed.add(sequelize);
  markInstalled(sequelize);

  let closed = false;
  return {
    sequelize,
    reads,
    close() {
      if (closed) return;
      closed = true;
      integration.close();
      installed.delete(sequelize);
      markUninstalled(sequelize);
      const removeHook = sequelize.removeHook.bind(sequelize) as (type: string, name: string) => unknown;
      for (const type of HOOKS) removeHook(type, HOOK_NAME);
      for (const [method, { wrapper, own, original }] of wrappers) {
        // A wrapper installed later on top of ours stays, and ours under it only calls through.
        if (qi[method] !== wrapper) continue;
        if (own) qi[method] = original;
        else delete qi[method];
      }
    },
  };
}

export default sequelizeDumper;
