/**
 * page-dumper for TypeORM (0.3.20 and later, 1.x): `typeormDumper(dumper, dataSource)`.
 *
 * Every write TypeORM makes to a registered model invalidates the pages that show the row, as
 * django-dumper's post_save, pre_delete and m2m_changed signals do: `save()`, `insert()`,
 * `remove()`, `softRemove()`, `recover()`, `upsert()`, many-to-many changes (join-table rows,
 * mapped back to the rows on both sides), and the writes that carry only criteria
 * (`update()`, `delete()`, `softDelete()`, `restore()`, `increment()`, QueryBuilder writes),
 * whose rows are looked up with the same criteria in the same transaction before the write.
 * Inside a transaction, pages are invalidated when the write happens and again when the
 * outermost transaction commits. See docs/typeorm.md.
 */
import type { DataSource, EntityMetadata, EntitySubscriberInterface } from 'typeorm';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { installedAnywhere, markInstalled, markUninstalled } from '../installs.js';
import { readOptions, ReadTracker } from '../reads.js';
import { TypeormIntegration, type Execute, type RelationsFor, type WriteQueryBuilder } from './integration.js';
import { trackReads, untrackReads } from './reads.js';

/** The tag names of `trackReads` (docs/track-reads.md), to tag or invalidate by hand beside it. */
export { keyTag, listTag, rowTag, tableTag } from '../reads.js';

/**
 * Which relations of a row are loaded before its model's `dependentPaths()` is called, so that it
 * can name the pages of related rows (a flavour's sizes, a comment's post):
 * - `'auto'` (the default): every relation except one-to-many and lazy ones, one level deep:
 *   many-to-many (both sides), many-to-one and one-to-one. A one-to-many side (a post's
 *   comments) can be unbounded; each of those rows reports its own writes.
 * - `'all'`: every relation, one-to-many included, one level deep.
 * - `'none'`: the row's own columns.
 * - an object, by entity name: the relation paths to load (nested with dots:
 *   `{ Comment: ['post', 'post.author'] }`); entities not named get `'auto'`.
 * - a function of the entity's metadata, returning paths, or `undefined` for `'auto'`.
 *
 * Trap: a large many-to-many (a size that ten thousand flavours come in) is loaded on every write
 * of either side; name fewer relations for that entity. A path naming a relation the entity does
 * not have makes its first write fail with a `TypeError` (the metadata exists only once the data
 * source is initialized).
 * @default 'auto'
 */
export type RelationsOption =
  | 'auto'
  | 'all'
  | 'none'
  | { readonly [entityName: string]: readonly string[] }
  | ((entity: EntityMetadata) => readonly string[] | undefined);

export interface TypeormDumperOptions {
  /** See {@link RelationsOption}. @default 'auto' */
  relations?: RelationsOption;
  /**
   * A write by criteria (`update()`, `delete()`, QueryBuilder writes) that matches more rows than
   * this is not resolved row by row: every page is invalidated instead (`dumper.invalidateAll()`,
   * logged at warn level). `0` always does that; `Infinity` never does.
   * @default 1000
   */
  maxRows?: number;
  /**
   * Invalidate again when a transaction rolls back. Readers on other connections never see
   * uncommitted rows, so a page they render during the transaction is right after a rollback.
   * But SQLite drivers run every query, readers' too, on one shared connection: a page rendered
   * during the transaction may show rows that the rollback undid.
   * @default true for the SQLite drivers (better-sqlite3, sqlite, sqljs, capacitor, cordova,
   * expo, nativescript, react-native), false for the others
   */
  invalidateOnRollback?: boolean;
  /**
   * Tag each page with the rows and tables its render read through this data source, and
   * invalidate those tags on every write of every entity (registered or not): pages need no
   * `dependentPaths()`. Reads by primary key tag rows; lists, filters, counts and joins tag their
   * tables; raw SQL (`query()`) is not parsed. See docs/track-reads.md.
   * @default false
   */
  trackReads?: boolean;
  /**
   * With `trackReads`: the most tags a page gets from its reads. Past it, a table's further row
   * reads tag the whole table (its list tag, which every write of the table invalidates), with a
   * warning in the log. Each tag costs a few bytes in the entry and in the store's tag index.
   * @default 500
   */
  maxTagsPerPage?: number;
}

/** What `typeormDumper()` returns. */
export interface TypeormDumper {
  readonly dataSource: DataSource;
  /** The entity subscriber installed on the data source. */
  readonly subscriber: EntitySubscriberInterface;
  /** With `trackReads`: what tags the pages. */
  readonly reads: ReadTracker | undefined;
  /** Stops invalidating on this data source's writes (and tagging its reads) and removes the subscriber. Idempotent. */
  close(): void;
}

/** Drivers whose data source runs every query on one connection, readers' included. */
const SHARED_CONNECTION = new Set(['sqlite', 'better-sqlite3', 'sqljs', 'capacitor', 'cordova', 'expo', 'nativescript', 'react-native']);
const KNOWN = new Set(['relations', 'maxRows', 'invalidateOnRollback', 'trackReads', 'maxTagsPerPage']);

/** The integration of each data source, found by the QueryBuilder execution wrapper. */
const installed = new WeakMap<object, TypeormIntegration>();
const ORIGINAL = Symbol('page-dumper.typeorm.execute');

function validate(options: unknown): asserts options is TypeormDumperOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: typeormDumper() options must be an object');
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new TypeError(`page-dumper: typeormDumper() got an unknown option "${k}"`);
  }
  const o = options as Record<string, unknown>;
  const { relations, maxRows, invalidateOnRollback } = o;
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
      'page-dumper: typeormDumper() option "relations" must be "auto", "all", "none", an object of relation paths by entity name, or a function',
    );
  }
  if (maxRows !== undefined && !(maxRows === Infinity || (Number.isSafeInteger(maxRows) && (maxRows as number) >= 0))) {
    throw new TypeError(`page-dumper: typeormDumper() option "maxRows" must be a non-negative integer or Infinity, got ${String(maxRows)}`);
  }
  if (invalidateOnRollback !== undefined && typeof invalidateOnRollback !== 'boolean') {
    throw new TypeError(`page-dumper: typeormDumper() option "invalidateOnRollback" must be a boolean, got ${typeof invalidateOnRollback}`);
  }
  readOptions('typeormDumper', o.trackReads, o.maxTagsPerPage);
}

function relationsFor(option: RelationsOption): RelationsFor {
  const auto: RelationsFor = (m) => m.relations.filter((r) => !r.isOneToMany && !r.isLazy).map((r) => r.propertyPath);
  if (option === 'auto') return auto;
  if (option === 'all') return (m) => m.relations.map((r) => r.propertyPath);
  if (option === 'none') return () => [];
  if (typeof option === 'function') return (m) => option(m) ?? auto(m);
  return (m) => (Object.hasOwn(option, m.name) ? option[m.name]! : auto(m));
}

/**
 * Wraps `execute()` of the QueryBuilder classes that write by criteria, once per process. The
 * classes come from the data source itself, so an app with its own copy of TypeORM is wrapped
 * where it runs. For a data source without `typeormDumper()`, the wrapper only calls through.
 */
function wrapQueryBuilders(dataSource: DataSource): void {
  const samples = [
    dataSource.createQueryBuilder().update({}),
    dataSource.createQueryBuilder().delete(),
    dataSource.createQueryBuilder().softDelete(),
    dataSource.createQueryBuilder().insert(),
  ];
  for (const sample of samples) {
    const proto = Object.getPrototypeOf(sample) as Record<PropertyKey, unknown>;
    if (Object.hasOwn(proto, ORIGINAL)) continue;
    const original = proto.execute as Execute;
    Object.defineProperty(proto, ORIGINAL, { value: original });
    proto.execute = function execute(this: WriteQueryBuilder & { dataSource?: object; connection?: object }) {
      const integration = installed.get(this.dataSource ?? this.connection ?? {});
      return integration === undefined ? original.call(this) : integration.execute(this, original);
    };
  }
}

/**
 * Invalidates the pages of registered models on every write this data source makes. Call it once
 * per data source, before or after `initialize()`:
 *
 * ```ts
 * dumper.register(IceCream);            // a class with dependentPaths(), or register('IceCream', {...})
 * typeormDumper(dumper, dataSource);
 * await dataSource.initialize();
 * ```
 *
 * A model is found from the entity's class (`metadata.target`, also for an `EntitySchema` with a
 * `target`), else from its entity name. Rows are loaded again, with their relations (see
 * `relations`), inside the write's transaction before `dependentPaths()` is called.
 */
export function typeormDumper(dumper: Dumper, dataSource: DataSource, options: TypeormDumperOptions = {}): TypeormDumper {
  assertDumper(dumper, 'typeormDumper');
  if (
    dataSource === null ||
    typeof dataSource !== 'object' ||
    !Array.isArray((dataSource as { subscribers?: unknown }).subscribers) ||
    typeof dataSource.createQueryBuilder !== 'function'
  ) {
    throw new TypeError('page-dumper: typeormDumper(dumper, dataSource) needs a TypeORM DataSource');
  }
  if (dataSource.options.type === 'mongodb') throw new TypeError('page-dumper: typeormDumper() does not support MongoDB data sources');
  if (installed.has(dataSource) || installedAnywhere(dataSource)) throw new TypeError('page-dumper: typeormDumper() is already installed on this DataSource');
  validate(options);
  const tracking = readOptions('typeormDumper', options.trackReads, options.maxTagsPerPage);
  const reads = tracking.trackReads ? new ReadTracker(dumper, { maxTagsPerPage: tracking.maxTagsPerPage, integration: 'typeorm' }) : undefined;

  const integration = new TypeormIntegration(dumper, dataSource, {
    relations: relationsFor(options.relations ?? 'auto'),
    maxRows: options.maxRows ?? 1000,
    invalidateOnRollback: options.invalidateOnRollback ?? SHARED_CONNECTION.has(dataSource.options.type),
    reads,
  });
  wrapQueryBuilders(dataSource);
  if (reads !== undefined) trackReads(dataSource, reads);

  // initialize() replaces `subscribers` with the ones built from the options, so the subscriber
  // is added after every (re)build of the metadata, and now if that has happened already.
  const ds = dataSource as unknown as Record<string, unknown>;
  const hook = typeof ds.buildMetadatas === 'function' ? 'buildMetadatas' : 'initialize';
  const original = ds[hook] as (...args: unknown[]) => Promise<unknown>;
  const ownOriginal = Object.hasOwn(ds, hook);
  const add = () => {
    if (!dataSource.subscribers.includes(integration)) dataSource.subscribers.push(integration);
  };
  const wrapper = async function (this: unknown, ...args: unknown[]) {
    const result = await original.apply(this, args);
    if (installed.get(dataSource) === integration) add();
    return result;
  };
  ds[hook] = wrapper;
  if (dataSource.isInitialized) add();
  installed.set(dataSource, integration);
  markInstalled(dataSource);

  let closed = false;
  return {
    dataSource,
    subscriber: integration,
    reads,
    close() {
      if (closed) return;
      closed = true;
      integration.close();
      untrackReads(dataSource);
      installed.delete(dataSource);
      markUninstalled(dataSource);
      const i = dataSource.subscribers.indexOf(integration);
      if (i !== -1) dataSource.subscribers.splice(i, 1);
      // A hook installed later on top of ours stays, and ours under it only calls through.
      if (ds[hook] === wrapper) {
        if (ownOriginal) ds[hook] = original;
        else delete ds[hook];
      }
    },
  };
}

export default typeormDumper;
