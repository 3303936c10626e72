/**
 * page-dumper for MikroORM (6.x, SQL drivers): `mikroOrmDumper(dumper, orm)`.
 *
 * Every write MikroORM makes to a registered entity invalidates the pages that show the row, as
 * django-dumper's post_save, pre_delete and m2m_changed signals do: flushes (creates, updates with
 * the row before and after, deletes, many-to-many collection changes on either side), and the
 * writes that bypass the unit of work (`em.nativeUpdate()`, `nativeDelete()`, `insert()`,
 * `insertMany()`, `upsert()`, `upsertMany()`, QueryBuilder writes), whose rows are found with
 * the write's own `where`. Inside a transaction, pages are invalidated at the write and again
 * when the outermost transaction commits. See docs/mikro-orm.md.
 */
import type { EntityMetadata, EventSubscriber, MikroORM } from '@mikro-orm/core';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { installedAnywhere, markInstalled, markUninstalled } from '../installs.js';
import { readOptions, ReadTracker } from '../reads.js';
import { MikroOrmIntegration, nativeScopes, writeType, type DriverLike, type QueryBuilderLike, type RelationsFor } from './integration.js';
import { queryBuilderCloned, queryBuilderCompiled, selectExecuted, trackReads } from './reads.js';
import { allRelations, autoRelations } from './rows.js';

/** The tag names of `trackReads` (docs/track-reads.md), to tag or invalidate by hand beside it. */
export { keyTag, listTag, rowTag, tableTag } from '../reads.js';
/** The table name the tags use for an entity (its schema, unless `'*'`, and its table). */
export { tableOf } from './reads.js';

/**
 * Which relations of a row are loaded before its model's `dependentPaths()` is called, so that it
 * can name the pages of related rows (a flavour's sizes, a comment's post):
 * - `'auto'` (the default): many-to-many (both sides), many-to-one and one-to-one, one level
 *   deep. A one-to-many side (a post's comments) can be unbounded; each of those rows reports
 *   its own writes.
 * - `'all'`: every relation, one-to-many included, one level deep.
 * - `'none'`: the row's own columns (a many-to-one is then an unloaded reference, with its key).
 * - an object, by entity class name: the populate paths to load (nested with dots:
 *   `{ Comment: ['post', 'post.author'] }`); entities not named get `'auto'`.
 * - a function of the entity's metadata, returning paths, or `undefined` for `'auto'`.
 *
 * Trap: a large many-to-many (a size that ten thousand flavours come in) is loaded on every write
 * of either side; name fewer relations for that entity. A path naming a relation the entity does
 * not have makes its first write fail with a `TypeError`.
 * @default 'auto'
 */
export type RelationsOption =
  | 'auto'
  | 'all'
  | 'none'
  | { readonly [entityName: string]: readonly string[] }
  | ((meta: EntityMetadata) => readonly string[] | undefined);

export interface MikroOrmDumperOptions {
  /** See {@link RelationsOption}. @default 'auto' */
  relations?: RelationsOption;
  /**
   * The most rows one write resolves one by one: a write by criteria (`nativeUpdate()`,
   * `nativeDelete()`, QueryBuilder writes) that matches more, an insert of more, or a flush that
   * touches more rows of registered entities, still runs, and every page is invalidated instead
   * (`dumper.invalidateAll()`, logged at warn level). `0` always does that; `Infinity` never does.
   * @default 1000
   */
  maxRows?: number;
  /**
   * Invalidate again when a transaction rolls back. Off by default: no reader ever sees the rows
   * of a transaction that has not committed (on SQLite too: MikroORM's SQLite drivers have a pool
   * of one connection, which the transaction holds, so readers of the same ORM wait for its end),
   * so the pages rendered during it are right after a rollback. Turn it on if your readers can
   * see uncommitted rows (a `READ UNCOMMITTED` isolation level).
   * @default false
   */
  invalidateOnRollback?: boolean;
  /**
   * Tag each page with what its render read, and invalidate exactly what each write changed:
   * no entity needs registering, and `register()` / `dependentPaths()` keep working beside it.
   * Reads by primary key tag rows, reads by foreign key (and populated collections) tag that
   * key; lists, filters, counts, joins and QueryBuilders tag their tables; raw SQL
   * (`em.getConnection().execute()`) is not seen. Every entity's writes are watched, registered
   * or not. See docs/mikro-orm.md#trackreads and docs/track-reads.md.
   * @default false
   */
  trackReads?: boolean;
  /**
   * With `trackReads`: the most tags a page gets from its reads. Past it, a table's further row
   * reads tag the whole table (its list tag, which every write of the table invalidates), with a
   * warning naming the table.
   * @default 500
   */
  maxTagsPerPage?: number;
}

/** What `mikroOrmDumper()` returns. */
export interface MikroOrmDumper {
  readonly orm: MikroORM;
  /** The event subscriber registered on the ORM's event manager. */
  readonly subscriber: EventSubscriber;
  /** With `trackReads`: what tags the pages. */
  readonly reads: ReadTracker | undefined;
  /** Stops invalidating on this ORM's writes and unregisters the subscriber. Idempotent. */
  close(): void;
}

const KNOWN = new Set(['relations', 'maxRows', 'invalidateOnRollback', 'trackReads', 'maxTagsPerPage']);
const EM_METHODS = ['nativeUpdate', 'nativeDelete', 'insert', 'insertMany', 'upsert', 'upsertMany'] as const;
const DRIVER_METHODS = ['nativeInsert', 'nativeInsertMany', 'nativeUpdate', 'nativeUpdateMany', 'nativeDelete'] as const;
const QB_WRITES = new Set(['INSERT', 'UPDATE', 'DELETE', 'UPSERT', 'TRUNCATE']);
const WRAPPED = Symbol('page-dumper.mikro-orm');

/** The integration of each ORM, by its driver (shared by every fork of its entity manager). */
const installed = new WeakMap<object, MikroOrmIntegration>();

function validate(options: unknown): asserts options is MikroOrmDumperOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: mikroOrmDumper() options must be an object');
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new TypeError(`page-dumper: mikroOrmDumper() got an unknown option "${k}"`);
  }
  const { relations, maxRows, invalidateOnRollback } = options as Record<string, unknown>;
  if (
    relations !== undefined &&
    relations !== 'auto' &&
    relations !== 'all' &&
    relations !== 'none' &&
    typeof relations !== 'function' &&
    !(
      relations !== null &&
      typeof relations === 'object' &&
      !Array.isArray(relations) &&
      Object.values(relations).every((v) => Array.isArray(v) && v.every((p) => typeof p === 'string' && p !== ''))
    )
  ) {
    throw new TypeError(
      'page-dumper: mikroOrmDumper() option "relations" must be "auto", "all", "none", an object of relation paths by entity name, or a function',
    );
  }
  if (maxRows !== undefined && !(maxRows === Infinity || (Number.isSafeInteger(maxRows) && (maxRows as number) >= 0))) {
    throw new TypeError(`page-dumper: mikroOrmDumper() option "maxRows" must be a non-negative integer or Infinity, got ${String(maxRows)}`);
  }
  if (invalidateOnRollback !== undefined && typeof invalidateOnRollback !== 'boolean') {
    throw new TypeError(`page-dumper: mikroOrmDumper() option "invalidateOnRollback" must be a boolean, got ${typeof invalidateOnRollback}`);
  }
  readOptions('mikroOrmDumper', (options as Record<string, unknown>).trackReads, (options as Record<string, unknown>).maxTagsPerPage);
}

function relationsFor(option: RelationsOption): RelationsFor {
  if (option === 'auto') return autoRelations;
  if (option === 'all') return allRelations;
  if (option === 'none') return () => [];
  if (typeof option === 'function') return (m) => option(m) ?? autoRelations(m);
  return (m) => (Object.hasOwn(option, m.className) ? option[m.className]! : autoRelations(m));
}

type Method = (this: any, ...args: unknown[]) => unknown;

/** The prototype (of `object`'s chain) that defines `name` itself. */
function ownerOf(object: object, name: string): Record<PropertyKey, unknown> | undefined {
  let proto = Object.getPrototypeOf(object) as Record<PropertyKey, unknown> | null;
  while (proto !== null && !Object.hasOwn(proto, name)) proto = Object.getPrototypeOf(proto) as Record<PropertyKey, unknown> | null;
  return proto ?? undefined;
}

/**
 * Wraps, once per process, the `EntityManager` methods that write without a flush, and the
 * execution of QueryBuilders. The classes are taken from the ORM itself, so an app with its own
 * copy of MikroORM is wrapped where it runs. For an ORM without `mikroOrmDumper()` the wrappers
 * only call through.
 */
function wrapPrototypes(orm: MikroORM): void {
  for (const name of EM_METHODS) {
    const proto = ownerOf(orm.em, name);
    if (proto === undefined || (proto[name] as { [WRAPPED]?: true })[WRAPPED]) continue;
    const original = proto[name] as Method;
    const wrapper = function (this: { getDriver(): object }, ...args: unknown[]) {
      const integration = installed.get(this.getDriver());
      // Inside a native write already (upsertMany() calls itself per batch): its scope applies.
      if (integration === undefined || integration.closed || nativeScopes.getStore()?.integration === integration) return original.apply(this, args);
      return nativeScopes.run({ integration, depth: 0 }, () => original.apply(this, args));
    };
    Object.defineProperty(wrapper, WRAPPED, { value: true });
    proto[name] = wrapper;
  }
  const createQueryBuilder = (orm.em as unknown as { createQueryBuilder?: (entityName: string) => object }).createQueryBuilder;
  const first = Object.values(orm.getMetadata().getAll())[0] as EntityMetadata | undefined;
  if (typeof createQueryBuilder !== 'function' || first === undefined) return;
  const proto = ownerOf(createQueryBuilder.call(orm.em, first.className), 'execute');
  if (proto === undefined || (proto.execute as { [WRAPPED]?: true })[WRAPPED]) return;
  const original = proto.execute as Method;
  const execute = function (this: QueryBuilderLike, ...args: unknown[]) {
    // Only QueryBuilders of an entity manager: those the driver makes for its own writes (a
    // flush, native writes) have none, and are seen where they start.
    if (!QB_WRITES.has(writeType(this))) {
      selectExecuted(this as never);
      const result = original.apply(this, args);
      // Subqueries compiled while it runs (its populate conditions) are its tables too.
      return result instanceof Promise ? result.then((rows: unknown) => (selectExecuted(this as never), rows)) : result;
    }
    const integration = this.em == null ? undefined : installed.get(this.driver);
    if (integration === undefined || integration.closed) return original.apply(this, args);
    return integration.queryBuilderWrite(this, () => original.apply(this, args) as Promise<unknown>);
  };
  Object.defineProperty(execute, WRAPPED, { value: true });
  proto.execute = execute;
  // Subqueries (`$some`, `$none`, `$every`) are clones compiled into the SQL of the builder they
  // were cloned from, some of them while it executes: its tables are tagged again after it.
  for (const [name, make] of [
    [
      'clone',
      (original: Method) =>
        function (this: object, ...args: unknown[]) {
          const clone = original.apply(this, args);
          if (clone !== null && typeof clone === 'object') queryBuilderCloned(this, clone);
          return clone;
        },
    ],
    [
      'getKnexQuery',
      (original: Method) =>
        function (this: object, ...args: unknown[]) {
          const query = original.apply(this, args);
          queryBuilderCompiled(this as never);
          return query;
        },
    ],
  ] as const) {
    const owner = ownerOf(createQueryBuilder.call(orm.em, first.className), name);
    if (owner === undefined || typeof owner[name] !== 'function' || (owner[name] as { [WRAPPED]?: true })[WRAPPED]) continue;
    const wrapper = make(owner[name] as Method);
    Object.defineProperty(wrapper, WRAPPED, { value: true });
    owner[name] = wrapper;
  }
}

/**
 * Invalidates the pages of registered entities on every write this ORM makes. Call it once per
 * ORM, after `MikroORM.init()`:
 *
 * ```ts
 * dumper.register(IceCream);           // an entity class with dependentPaths(), or register('IceCream', {...})
 * mikroOrmDumper(dumper, orm);
 * ```
 *
 * An entity's model is found from its class (or a class it extends), else from its entity name.
 * The rows are read again, with their relations (see `relations`), before and after the write,
 * and `dependentPaths()` is called on those instances.
 */
export function mikroOrmDumper(dumper: Dumper, orm: MikroORM, options: MikroOrmDumperOptions = {}): MikroOrmDumper {
  assertDumper(dumper, 'mikroOrmDumper');
  const em = (orm as { em?: unknown } | null)?.em as Record<string, unknown> | undefined;
  if (
    em === undefined ||
    em === null ||
    typeof em.getEventManager !== 'function' ||
    typeof em.getDriver !== 'function' ||
    typeof (orm as { getMetadata?: unknown }).getMetadata !== 'function'
  ) {
    throw new TypeError('page-dumper: mikroOrmDumper(dumper, orm) needs a MikroORM instance (the result of MikroORM.init())');
  }
  if (typeof em.createQueryBuilder !== 'function') {
    throw new TypeError('page-dumper: mikroOrmDumper() supports the SQL drivers of MikroORM (PostgreSQL, MySQL, MariaDB, SQLite...); this ORM has none');
  }
  const driver = orm.em.getDriver() as unknown as DriverLike & Record<string, unknown>;
  if (installed.has(driver) || installedAnywhere(driver)) throw new TypeError('page-dumper: mikroOrmDumper() is already installed on this MikroORM instance');
  validate(options);

  const tracking = readOptions('mikroOrmDumper', options.trackReads, options.maxTagsPerPage);
  const reads = tracking.trackReads ? new ReadTracker(dumper, { maxTagsPerPage: tracking.maxTagsPerPage, integration: 'mikro-orm' }) : undefined;
  const integration = new MikroOrmIntegration(dumper, orm, {
    relations: relationsFor(options.relations ?? 'auto'),
    maxRows: options.maxRows ?? 1000,
    invalidateOnRollback: options.invalidateOnRollback ?? false,
    reads,
  });
  wrapPrototypes(orm);
  const untrack = reads === undefined ? undefined : trackReads(orm, reads);

  // The driver methods the EntityManager's native writes end in (a flush uses them too, outside
  // any native scope, and passes through).
  const restore: Array<() => void> = [];
  for (const name of DRIVER_METHODS) {
    const original = driver[name] as Method;
    if (typeof original !== 'function') continue;
    const own = Object.hasOwn(driver, name);
    const wrapper = function (this: DriverLike, ...args: unknown[]) {
      const scope = nativeScopes.getStore();
      if (scope === undefined || scope.integration !== integration || scope.depth > 0 || integration.closed) return original.apply(this, args);
      return integration.driverWrite(this, name, args, async () => {
        scope.depth++;
        try {
          return await original.apply(this, args);
        } finally {
          scope.depth--;
        }
      });
    };
    driver[name] = wrapper;
    restore.push(() => {
      if (driver[name] !== wrapper) return; // wrapped again since: ours only calls through
      if (own) driver[name] = original;
      else delete driver[name];
    });
  }

  // Forks share the event manager (transactions clone it, with its subscribers); a fork with a
  // fresh one builds it from the configured subscribers.
  const eventManager = orm.em.getEventManager();
  eventManager.registerSubscriber(integration);
  const configured = orm.config.get('subscribers') as unknown;
  if (Array.isArray(configured)) configured.push(integration);
  else if (configured instanceof Set) configured.add(integration);
  installed.set(driver, integration);
  markInstalled(driver);

  let closed = false;
  return {
    orm,
    subscriber: integration,
    reads,
    close() {
      if (closed) return;
      closed = true;
      integration.close();
      untrack?.();
      installed.delete(driver);
      markUninstalled(driver);
      for (const undo of restore) undo();
      if (Array.isArray(configured)) {
        const i = configured.indexOf(integration);
        if (i !== -1) configured.splice(i, 1);
      } else if (configured instanceof Set) configured.delete(integration);
      // MikroORM has no way to unregister a subscriber: it is taken out of the event manager's
      // own sets (a fork made before keeps it, closed, doing nothing).
      const internals = eventManager as unknown as {
        subscribers?: Set<unknown>;
        entities?: Map<unknown, unknown>;
        listeners?: Record<string, Set<unknown>>;
        cache?: Map<unknown, unknown>;
      };
      internals.subscribers?.delete(integration);
      internals.entities?.delete(integration);
      for (const listeners of Object.values(internals.listeners ?? {})) listeners.delete(integration);
      internals.cache?.clear();
    },
  };
}

export default mikroOrmDumper;
