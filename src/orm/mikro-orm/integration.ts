/**
 * The machinery behind `mikroOrmDumper()`:
 *
 * - an event subscriber that reads each flush's change sets and collection updates in `onFlush`
 *   (the rows as they are before the write, read and passed to `dependentPaths` then, before any
 *   statement of the flush runs) and resolves the rows as they are after it in `afterFlush`;
 * - the writes that bypass the unit of work (`em.nativeUpdate()`, `nativeDelete()`, `insert()`,
 *   `insertMany()`, `upsert()`, `upsertMany()` and QueryBuilder writes), whose rows are found
 *   with the write's own `where` before it runs (and, for an update, again after it);
 * - transactions: inside one, every invalidation made at a write is made again when the
 *   outermost transaction commits (`afterTransactionCommit`), and dropped on rollback.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { EntityManager, EventSubscriber, FlushEventArgs, MikroORM, TransactionEventArgs } from '@mikro-orm/core';
import type { Dependents, Dumper } from '../../core/dumper.js';
import type { ModelClass } from '../../core/models.js';
import { keyTag, linkTags, listTag, unknownWriteTags, writeTags, type KeyValues, type LinkSide, type ReadTracker, type WrittenRow } from '../reads.js';
import { foreignKey, pkColumns, pkValues, tableOf } from './reads.js';
import {
  helperOf,
  manyToMany,
  type EntityHelper,
  pivotSides,
  pkOf,
  propsByColumn,
  referencedPk,
  rowKey,
  unwrapRef,
  wherePks,
  type Meta,
  type PkCond,
  type Prop,
  type Row,
} from './rows.js';

/** What `relations` resolves to for one entity: the relation paths to populate. */
export type RelationsFor = (meta: Meta) => readonly string[];

export interface Settings {
  readonly relations: RelationsFor;
  readonly maxRows: number;
  readonly invalidateOnRollback: boolean;
  /** With `trackReads`: every entity's writes invalidate the tags its reads put on pages. */
  readonly reads: ReadTracker | undefined;
}

/** Marks a point in a transaction's buffer where every page must be invalidated. */
const ALL = Symbol('every page');
/**
 * A flush inside a transaction whose statements may have run but whose rows after it were never
 * read (it failed, and the transaction was committed all the same): every page at the commit.
 */
class Unfinished {
  done = false;
}
type Entry = Dependents | typeof ALL | Unfinished;

/** Why the rows of a write cannot be told one by one: every page is invalidated instead. */
class Unresolved {
  /** `meta`: the entity written, whose reads (with `trackReads`) are all that may have changed. */
  constructor(
    readonly reason: string,
    readonly meta?: Meta,
  ) {}
}

/** Rows are loaded this many keys at a time. */
const CHUNK = 500;

// ---------------------------------------------------------------- MikroORM internals read

interface ChangeSetLike {
  readonly type: string;
  readonly entity: object;
  readonly meta: Meta;
  readonly originalEntity?: Row;
}

interface CollectionLike {
  readonly owner: object;
  readonly property: Prop;
  getItems(check?: boolean): object[];
  getSnapshot(): object[] | undefined;
  isInitialized(fully?: boolean): boolean;
}

interface UnitOfWorkLike {
  getChangeSets(): ChangeSetLike[];
  getCollectionUpdates(): CollectionLike[];
}

/** A QueryBuilder, as the execution wrapper and the lookups use it (internal in MikroORM's types). */
export interface QueryBuilderLike {
  readonly type?: string;
  readonly em?: unknown;
  readonly driver: DriverLike;
  readonly mainAlias?: { readonly metadata?: Meta; readonly entityName: string };
  readonly _data?: Row | Row[];
  readonly _onConflict?: Array<{ fields?: unknown }>;
  readonly _limit?: number;
  readonly _schema?: string;
  readonly context?: object;
  readonly flags: Set<string>;
  clone(): QueryBuilderLike;
  select(fields: readonly string[]): QueryBuilderLike;
  where(cond: unknown): QueryBuilderLike;
  limit(limit: number): QueryBuilderLike;
  unsetFlag(flag: string): QueryBuilderLike;
  withSchema(schema?: string): QueryBuilderLike;
  execute(method?: string, options?: unknown): Promise<unknown>;
}

export interface DriverLike {
  createQueryBuilder(entityName: string, ctx?: unknown, type?: string, convertCustomTypes?: boolean, loggerContext?: unknown): QueryBuilderLike;
  getSchemaName(meta: Meta, options?: { schema?: string }): string | undefined;
  getAutoIncrementIncrement?(ctx?: unknown): Promise<number>;
}

type Run = () => Promise<unknown>;

/** The native write being run by an `EntityManager` method, for the driver methods under it. */
export interface NativeScope {
  readonly integration: MikroOrmIntegration;
  /** > 0 while a driver write handled by page-dumper runs: the driver calls it makes (join-table rows) are its own. */
  depth: number;
}

export const nativeScopes = new AsyncLocalStorage<NativeScope>();

// ---------------------------------------------------------------- flush plans

/** A row to read, by its primary key; `partners`: its many-to-many partners too. */
interface Want {
  readonly meta: Meta;
  readonly pk: PkCond;
  readonly partners: boolean;
  /** Deleted by the write: with `trackReads`, the rows the database deletes or changes with it too. */
  readonly deleted?: boolean;
  /** Read for its model's pages only: only its links changed (with `trackReads`, its own tags stay). */
  readonly linkOnly?: boolean;
}

/** One many-to-many link a flush adds or removes: the collection's owner and an item. */
interface Link {
  readonly prop: Prop;
  readonly ownerMeta: Meta;
  readonly owner: object;
  readonly item: object;
}

/** What one flush writes, collected in `onFlush`. */
interface FlushPlan {
  readonly explicit: boolean;
  /** The schema the flush writes in (`em.fork({ schema })`, or its entities' own), for reading its rows. */
  readonly schema: string | undefined;
  /** Its `schema: '*'` entities are in several schemas (and its entity manager names none): its rows are not read. */
  readonly mixed: boolean;
  /** Rows whose state before the flush is read, by row key. */
  readonly before: Map<string, Want>;
  /** Rows read after the flush: new entities get their key on insert, so they are kept as entities. */
  readonly after: Array<{ meta: Meta; entity?: object; pk?: PkCond; linkOnly?: boolean }>;
  /** Collections replaced without being loaded (`set()`, `removeAll()`): their links before are read from the database. */
  readonly overridden: Array<{ owner: object; meta: Meta; prop: Prop; current: object[] }>;
  /** Entities this flush inserts: nothing of them exists before it. */
  readonly created: Set<object>;
  /** With `trackReads`: the links it adds or removes (their keys are read after it: new rows get theirs on insert). */
  readonly links: Link[];
  /** With `trackReads`: the tags of the join-table entities' rows it writes, and of rows the database rewrites (a changed key). */
  readonly linkTags: Dependents[];
  dependents: Dependents[];
  tooMany: boolean;
  /** In your transaction's buffer from `onFlush` until `afterFlush` has resolved the flush. */
  readonly unfinished: Unfinished;
}

export class MikroOrmIntegration implements EventSubscriber {
  readonly #dumper: Dumper;
  readonly #orm: MikroORM;
  readonly #settings: Settings;
  readonly #plans = new WeakMap<object, FlushPlan>();
  /** Invalidations made inside a transaction, by its root, replayed when it commits. */
  readonly #buffers = new WeakMap<object, Entry[]>();
  readonly #relations = new WeakMap<Meta, readonly string[]>();
  #closed = false;

  constructor(dumper: Dumper, orm: MikroORM, settings: Settings) {
    this.#dumper = dumper;
    this.#orm = orm;
    this.#settings = settings;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
  }

  // ---------------------------------------------------------------- subscriber: flushes

  /**
   * Runs after the change sets are computed and before any statement of the flush: the rows as
   * they are now are read (inside the transaction, if the flush runs in one of yours) and passed
   * to `dependentPaths`, as django-dumper's `pre_delete` does (what they read still exists).
   */
  async onFlush(args: FlushEventArgs): Promise<void> {
    const uow = args.uow as unknown as UnitOfWorkLike;
    this.#plans.delete(uow);
    if (this.#closed) return;
    const plan = this.#plan(args.em, uow);
    if (plan === undefined) return;
    this.#plans.set(uow, plan);
    const ctx = plan.explicit ? args.em.getTransactionContext() : undefined;
    const fork = this.#fork(ctx, plan.schema);
    if (!plan.mixed) await this.#discoverOverridden(fork, plan);
    if (plan.mixed || plan.before.size + plan.after.length > this.#settings.maxRows) plan.tooMany = true;
    // An error here (a dependentPaths returning a string) rejects the flush before it writes.
    else plan.dependents = (await this.#dependentsOf(fork, plan.before.values())).dependents;
    // A flush that fails after some of its statements leaves them in your transaction, which may
    // be committed all the same: until afterFlush says otherwise, its commit invalidates every page.
    if (ctx !== undefined) this.#buffer(ctx).push(plan.unfinished);
  }

  /**
   * Runs after the flush's statements: after its own transaction has committed, or inside yours.
   * The rows written are read again and their pages invalidated with those read before.
   */
  async afterFlush(args: FlushEventArgs): Promise<void> {
    const uow = args.uow as unknown as UnitOfWorkLike;
    const plan = this.#plans.get(uow);
    this.#plans.delete(uow);
    if (plan === undefined || this.#closed) return;
    const ctx = plan.explicit ? args.em.getTransactionContext() : undefined;
    plan.unfinished.done = true;
    await this.#resolve(ctx, 'a flush', async () => {
      if (plan.mixed) return new Unresolved('a flush of entities in several schemas');
      if (plan.tooMany) return new Unresolved(`a flush of more than maxRows (${this.#settings.maxRows}) rows`);
      const wants = new Map<string, Want>();
      for (const row of plan.after) {
        const pk = row.pk ?? pkOf(row.meta, row.entity);
        if (pk === undefined) continue;
        const key = rowKey(row.meta, pk);
        const linkOnly = row.linkOnly === true && wants.get(key)?.linkOnly !== false;
        wants.set(key, { meta: row.meta, pk, partners: false, linkOnly });
      }
      if (wants.size > this.#settings.maxRows) return new Unresolved(`a flush of more than maxRows (${this.#settings.maxRows}) rows`);
      // A row missing now was deleted since (by this flush, or another writer, whose own
      // invalidation covers it).
      const after = await this.#dependentsOf(this.#fork(ctx, plan.schema), wants.values());
      return [...plan.dependents, ...after.dependents, ...plan.linkTags, ...this.#linkDependents(plan.links)];
    });
  }

  /** The rows a flush touches, from its change sets and collection updates; nothing for unregistered entities. */
  #plan(em: EntityManager, uow: UnitOfWorkLike): FlushPlan | undefined {
    const created = new Set<object>();
    const changeSets = uow.getChangeSets();
    const plan: FlushPlan = {
      explicit: em.isInTransaction(),
      ...flushSchema(em, changeSets, uow.getCollectionUpdates()),
      before: new Map(),
      after: [],
      overridden: [],
      created,
      links: [],
      linkTags: [],
      dependents: [],
      tooMany: false,
      unfinished: new Unfinished(),
    };
    for (const cs of changeSets) if (cs.type === 'create') created.add(cs.entity);
    const before = (meta: Meta, pk: PkCond | undefined, partners = false, linkOnly = false) => {
      if (pk === undefined) return;
      const key = rowKey(meta, pk);
      const known = plan.before.get(key);
      const only = linkOnly && known?.linkOnly !== false;
      if (known === undefined || (partners && !known.partners) || known.linkOnly !== only) {
        plan.before.set(key, { meta, pk, partners: partners || known?.partners === true, deleted: partners || known?.deleted === true, linkOnly: only });
      }
    };
    const reads = this.#settings.reads !== undefined;
    const existing = (meta: Meta, entity: object) => (created.has(entity) ? undefined : pkOf(meta, entity));

    for (const cs of changeSets) {
      const meta = cs.meta;
      const sides = this.#modelOf(meta) === undefined ? pivotSides(meta) : undefined;
      if (sides !== undefined) {
        // A row of a join table (an explicit pivot entity): both rows it links, as m2m_changed.
        if (reads) plan.linkTags.push(readDependents(meta, pivotRowTags(meta, sides, cs)));
        for (const side of sides) {
          const target = side.targetMeta!;
          if (this.#modelOf(target) === undefined) continue;
          const now = unwrapRef((cs.entity as Row)[side.name]);
          if (now !== null && typeof now === 'object') {
            if (!created.has(now)) before(target, referencedPk(target, now), false, true);
            plan.after.push({ meta: target, entity: now, linkOnly: true });
          }
          const was = cs.originalEntity?.[side.name];
          if (was !== undefined) {
            const pk = referencedPk(target, was);
            before(target, pk, false, true);
            if (pk !== undefined) plan.after.push({ meta: target, pk, linkOnly: true });
          }
        }
        continue;
      }
      const isDelete = cs.type === 'delete' || cs.type === 'delete_early';
      if (!reads && this.#modelOf(meta) === undefined && !(isDelete && this.#linkedToModel(meta))) continue;
      switch (cs.type) {
        case 'create':
          plan.after.push({ meta, entity: cs.entity });
          break;
        case 'update':
        case 'update_early': {
          // The key as it was (a changed key finds the old row), and the entity after.
          const was = pkOf(meta, cs.originalEntity);
          const now = pkOf(meta, cs.entity);
          before(meta, was ?? now);
          plan.after.push({ meta, entity: cs.entity });
          // A changed primary key: the database rewrites the foreign keys pointing at it (ON UPDATE CASCADE).
          if (reads && was !== undefined && (now === undefined || rowKey(meta, was) !== rowKey(meta, now))) {
            plan.linkTags.push(...this.#keyFollowers(meta).map((m) => readDependents(m, unknownWriteTags(tableOf(m)))));
          }
          break;
        }
        default:
          // A delete: the rows it was linked to lose the link with it (the join rows go by
          // ON DELETE CASCADE), as for a removal from the collection.
          before(meta, pkOf(meta, cs.originalEntity) ?? pkOf(meta, cs.entity), true);
      }
    }

    for (const coll of uow.getCollectionUpdates()) {
      const prop = coll.property;
      const snapshot = coll.getSnapshot();
      // As MikroORM's own filter: many-to-many on either side; a one-to-many only when it is
      // replaced as a whole (its children are otherwise written through their own change sets).
      if (!(prop.kind === 'm:n' || (prop.kind === '1:m' && snapshot === undefined))) continue;
      const ownerMeta = helperOf(coll.owner)?.__meta;
      const target = prop.targetMeta;
      if (ownerMeta === undefined || target === undefined) continue;
      if (!reads && this.#modelOf(ownerMeta) === undefined && this.#modelOf(target) === undefined) continue;
      before(ownerMeta, existing(ownerMeta, coll.owner), false, true);
      plan.after.push({ meta: ownerMeta, entity: coll.owner, linkOnly: true });
      const current = coll.getItems(false);
      if (snapshot === undefined) {
        plan.overridden.push({ owner: coll.owner, meta: ownerMeta, prop, current });
        continue;
      }
      for (const item of snapshot) {
        if (current.includes(item)) continue;
        if (reads && prop.kind === 'm:n') plan.links.push({ prop, ownerMeta, owner: coll.owner, item });
        before(target, existing(target, item), false, true);
        plan.after.push({ meta: target, entity: item, linkOnly: true });
      }
      for (const item of current) {
        if (snapshot.includes(item)) continue;
        if (reads && prop.kind === 'm:n') plan.links.push({ prop, ownerMeta, owner: coll.owner, item });
        if (prop.kind === '1:m') before(target, existing(target, item));
        plan.after.push({ meta: target, entity: item, linkOnly: prop.kind === 'm:n' });
      }
    }
    // A flush of join-table entities alone (whose sides have no model) still has their tags to invalidate.
    return plan.before.size === 0 && plan.after.length === 0 && plan.overridden.length === 0 && plan.linkTags.length === 0 ? undefined : plan;
  }

  /** The items a replaced collection held before the flush, read from the database, compared with the new ones. */
  async #discoverOverridden(fork: EntityManager, plan: FlushPlan): Promise<void> {
    for (const { owner, meta, prop, current } of plan.overridden) {
      const target = prop.targetMeta!;
      const pk = pkOf(meta, owner);
      const old: object[] = [];
      if (pk !== undefined && !plan.created.has(owner)) {
        const [loaded] = await fork.find(meta.className, wherePks(meta, [pk]) as never, { populate: [prop.name] as never, filters: false });
        const coll = loaded === undefined ? undefined : ((loaded as Row)[prop.name] as CollectionLike | undefined);
        if (coll?.isInitialized()) old.push(...coll.getItems(false));
      }
      const keys = (items: object[]) => new Set(items.map((i) => pkOf(target, i)).flatMap((k) => (k === undefined ? [] : [rowKey(target, k)])));
      const now = keys(current);
      const was = keys(old);
      for (const item of old) {
        const itemPk = pkOf(target, item);
        if (itemPk === undefined || now.has(rowKey(target, itemPk))) continue;
        if (this.#settings.reads !== undefined && prop.kind === 'm:n') plan.links.push({ prop, ownerMeta: meta, owner, item });
        const linkOnly = prop.kind === 'm:n' && plan.before.get(rowKey(target, itemPk))?.linkOnly !== false;
        plan.before.set(rowKey(target, itemPk), { meta: target, pk: itemPk, partners: false, linkOnly });
        plan.after.push({ meta: target, pk: itemPk, linkOnly: prop.kind === 'm:n' });
      }
      for (const item of current) {
        const itemPk = pkOf(target, item);
        if (itemPk !== undefined && was.has(rowKey(target, itemPk))) continue;
        if (this.#settings.reads !== undefined && prop.kind === 'm:n') plan.links.push({ prop, ownerMeta: meta, owner, item });
        if (prop.kind === '1:m' && itemPk !== undefined && !plan.created.has(item)) plan.before.set(rowKey(target, itemPk), { meta: target, pk: itemPk, partners: false });
        plan.after.push({ meta: target, entity: item, linkOnly: prop.kind === 'm:n' });
      }
    }
  }

  // ---------------------------------------------------------------- subscriber: transactions

  async afterTransactionCommit(args: TransactionEventArgs): Promise<void> {
    if (this.#closed || args.transaction == null) return;
    const entries = this.#buffers.get(args.transaction);
    this.#buffers.delete(args.transaction);
    // The committed rows are now visible to every reader: a page rendered from the old rows
    // between the write and this commit is dropped now.
    if (entries !== undefined) await this.#replay(entries, 'after the commit');
  }

  async afterTransactionRollback(args: TransactionEventArgs): Promise<void> {
    if (this.#closed || args.transaction == null) return;
    const entries = this.#buffers.get(args.transaction);
    this.#buffers.delete(args.transaction);
    if (entries !== undefined && this.#settings.invalidateOnRollback) await this.#replay(entries, 'after the rollback');
  }

  // ---------------------------------------------------------------- native writes (driver level)

  /**
   * A write of the driver (`nativeInsert`, `nativeInsertMany`, `nativeUpdate`,
   * `nativeUpdateMany`, `nativeDelete`) made by an `EntityManager` method outside a flush. Its
   * `where` is the one MikroORM built (filters applied), and its context the write's transaction.
   */
  async driverWrite(driver: DriverLike, method: string, args: unknown[], run: Run): Promise<unknown> {
    const meta = this.#metaOf(args[0]);
    if (meta === undefined) return run();
    const watched = this.#watched(meta);
    // An entity without a model, linked many-to-many to one with a model: its deletes and its
    // link writes change the pages of the rows on the other side.
    if (!watched && !this.#linkedToModel(meta)) return run();
    const pks = meta.primaryKeys as string[];
    const asWhere = (w: unknown): unknown => (w !== null && typeof w === 'object' && !(w instanceof Date) ? w : { [pks[0]!]: w });
    switch (method) {
      case 'nativeDelete': {
        const options = (args[2] ?? {}) as NativeOptions;
        return this.#criteriaWrite({ meta, kind: 'delete', options, partners: true, lookup: () => this.#lookup(driver, meta, asWhere(args[1]), options, false), run });
      }
      case 'nativeUpdate': {
        const options = (args[3] ?? {}) as NativeOptions;
        const where = asWhere(args[1]);
        const lookup = () => this.#lookup(driver, meta, where, options, options.convertCustomTypes ?? true);
        const partners = hasManyToMany(meta, args[2]);
        // An entity without a model whose values rewrite its links (an update or an upsert): the pages of the rows on the other side.
        if (!watched && !partners) return run();
        if (options.upsert === true) return this.#upsertWrite({ meta, options, partners, lookup, run, returned: () => [] });
        return this.#criteriaWrite({ meta, kind: 'update', options, partners, lookup, run });
      }
      case 'nativeUpdateMany': {
        const options = (args[3] ?? {}) as NativeOptions;
        const where = { $or: ((args[1] ?? []) as unknown[]).map(asWhere) };
        const lookup = () => this.#lookup(driver, meta, where, options, options.convertCustomTypes ?? true);
        const partners = ((args[2] ?? []) as unknown[]).some((d) => hasManyToMany(meta, d));
        if (!watched && !partners) return run();
        if (options.upsert === true) return this.#upsertWrite({ meta, options, partners, lookup, run, returned: (res) => returnedPks(meta, res, undefined) });
        return this.#criteriaWrite({ meta, kind: 'update', options, partners, lookup, run });
      }
      case 'nativeInsert':
      case 'nativeInsertMany': {
        const options = (args[2] ?? {}) as NativeOptions;
        const rows = (method === 'nativeInsertMany' ? args[1] : [args[1]]) as Row[];
        if (!watched && !rows.some((row) => hasManyToMany(meta, row))) return run();
        return this.#insertWrite({ meta, options, rows, run, keyed: new Map(), increment: () => driver.getAutoIncrementIncrement?.(options.ctx) ?? Promise.resolve(1) });
      }
      default:
        return run();
    }
  }

  // ---------------------------------------------------------------- QueryBuilder writes

  /** A write made with `em.createQueryBuilder()`: update, delete, insert (and upsert), truncate. */
  async queryBuilderWrite(qb: QueryBuilderLike, run: Run): Promise<unknown> {
    const meta = qb.mainAlias?.metadata;
    if (this.#closed || meta === undefined) return run();
    const type = writeType(qb);
    // A delete (or truncate) of an entity without a model linked many-to-many to one with a model
    // takes its join-table rows with it.
    const linked = (type === 'DELETE' || type === 'TRUNCATE') && this.#linkedToModel(meta);
    if (!this.#watched(meta) && !linked) return run();
    const options: NativeOptions = { ctx: qb.context, schema: qb._schema ?? (qb.em as { schema?: string } | undefined)?.schema };
    switch (type) {
      case 'UPDATE':
      case 'DELETE': {
        const kind = type === 'UPDATE' ? 'update' : 'delete';
        const lookup = async () => {
          const select = qb.clone();
          // The write's joins become a subquery on execution; the lookup is a plain SELECT.
          select.unsetFlag('UPDATE_SUB_QUERY');
          select.unsetFlag('DELETE_SUB_QUERY');
          select.select(meta.primaryKeys as string[]);
          return this.#keys(meta, select, qb._limit);
        };
        return this.#criteriaWrite({ meta, kind, options, partners: kind === 'delete', lookup, run });
      }
      case 'INSERT':
      case 'UPSERT': {
        const columns = propsByColumn(meta);
        const rows = [qb._data ?? []].flat().map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [columns.get(k) ?? k, v])));
        if ((qb._onConflict?.length ?? 0) > 0) {
          const where = conflictWhere(meta, qb._onConflict!, rows, columns);
          if (where === undefined) return this.#unresolvedWrite(options.ctx, `an upsert into ${meta.className} whose conflict keys cannot be read`, run, meta);
          const lookup = () => this.#lookup(qb.driver, meta, where, options, true);
          return this.#upsertWrite({ meta, options, partners: false, lookup, run, returned: (res) => returnedPks(meta, res, columns) });
        }
        return this.#insertWrite({ meta, options, rows, run, keyed: columns, increment: () => qb.driver.getAutoIncrementIncrement?.(options.ctx) ?? Promise.resolve(1) });
      }
      case 'TRUNCATE':
        return this.#unresolvedWrite(options.ctx, `a truncate of ${meta.className}`, run, meta);
      default:
        return run();
    }
  }

  // ---------------------------------------------------------------- write kinds

  /**
   * An update or delete by criteria: the rows matching it are found and read before it (their
   * pages computed while they exist), and, for an update, read again after it.
   */
  async #criteriaWrite(w: { meta: Meta; kind: 'update' | 'delete'; options: NativeOptions; partners: boolean; lookup: () => Promise<PkCond[] | undefined>; run: Run }): Promise<unknown> {
    const { meta, kind, options, run } = w;
    const ctx = options.ctx;
    const what = `${kind === 'update' ? 'an update' : 'a delete'} of ${meta.className} by criteria`;
    const pks = await w.lookup();
    if (pks === undefined) return this.#unresolvedWrite(ctx, `${what} (more than maxRows: ${this.#settings.maxRows} rows)`, run, meta);
    const sides = this.#modelOf(meta) === undefined ? pivotSides(meta) : undefined;
    if (sides !== undefined && kind === 'update') return this.#unresolvedWrite(ctx, `an update of the join table ${meta.className}`, run, meta);
    const wants = sides !== undefined ? linkWants(sides, pks) : pks.map((pk) => ({ meta, pk, partners: w.partners, deleted: kind === 'delete' }));
    // An error here (dependentPaths returning a string) rejects the write before it runs.
    const before = await this.#dependentsOf(this.#fork(ctx, options.schema), wants);
    if (sides !== undefined && this.#settings.reads !== undefined) before.dependents.push(readDependents(meta, pivotTags(meta, sides, pks)));
    const result = await run();
    await this.#resolve(ctx, what, async () => {
      const affected = affectedOf(result);
      if (affected !== undefined && affected > pks.length) return new Unresolved(`${what}, which touched more rows than matched just before it,`, meta);
      if (kind === 'delete' || sides !== undefined) return before.dependents;
      const after = await this.#dependentsOf(this.#fork(ctx, options.schema), wants);
      // A primary key changed: the rows as they are now cannot be found (an unknown write, which
      // also reaches the rows whose foreign keys the database rewrote with it).
      if (after.found < before.found) return new Unresolved(`${what}, after which some of its rows were gone,`, meta);
      return [...before.dependents, ...after.dependents];
    });
    return result;
  }

  /**
   * An upsert: the rows its conflict keys match before it, and after it (the row inserted or
   * updated). `partners`: its values rewrite many-to-many links, so the rows linked before and
   * after it are read too.
   */
  async #upsertWrite(w: { meta: Meta; options: NativeOptions; partners: boolean; lookup: () => Promise<PkCond[] | undefined>; run: Run; returned: (result: unknown) => PkCond[] }): Promise<unknown> {
    const { meta, options, run, partners } = w;
    const ctx = options.ctx;
    const what = `an upsert into ${meta.className}`;
    if (this.#modelOf(meta) === undefined && pivotSides(meta) !== undefined) return this.#unresolvedWrite(ctx, `${what} (a join table)`, run, meta);
    const pks = await w.lookup();
    if (pks === undefined) return this.#unresolvedWrite(ctx, `${what} (more than maxRows: ${this.#settings.maxRows} rows)`, run, meta);
    const before = await this.#dependentsOf(this.#fork(ctx, options.schema), pks.map((pk) => ({ meta, pk, partners })));
    const result = await run();
    await this.#resolve(ctx, what, async () => {
      const now = await w.lookup();
      if (now === undefined) return new Unresolved(`${what} (more than maxRows: ${this.#settings.maxRows} rows)`, meta);
      const wants = new Map<string, Want>();
      for (const pk of [...now, ...w.returned(result)]) wants.set(rowKey(meta, pk), { meta, pk, partners });
      return [...before.dependents, ...(await this.#dependentsOf(this.#fork(ctx, options.schema), wants.values())).dependents];
    });
    return result;
  }

  /** An insert: the rows it wrote, by the keys in its values or those the database reports. */
  async #insertWrite(w: { meta: Meta; options: NativeOptions; rows: Row[]; run: Run; keyed: Map<string, string>; increment: () => Promise<number> }): Promise<unknown> {
    const { meta, options, rows, run } = w;
    const ctx = options.ctx;
    const what = `an insert into ${meta.className}`;
    const sides = this.#modelOf(meta) === undefined ? pivotSides(meta) : undefined;
    // Many-to-many values are taken out of the row by the driver (and written to the join table).
    const partners = sides === undefined ? rows.flatMap((row) => partnerWants(meta, row)) : [];
    const given = rows.map((row) => pkOf(meta, row));
    // Before the write: the driver deletes the many-to-many values from these very row objects.
    const pivots = this.#settings.reads === undefined || sides !== undefined ? [] : this.#pivotsOf(meta, rows);
    const result = await run();
    await this.#resolve(ctx, what, async () => {
      if (sides !== undefined) {
        const links = rows.map((row) => pkOf(meta, row));
        if (links.some((l) => l === undefined)) return new Unresolved(`${what} (a join table) whose rows cannot be read`, meta);
        const out = (await this.#dependentsOf(this.#fork(ctx, options.schema), linkWants(sides, links as PkCond[]))).dependents;
        if (this.#settings.reads !== undefined) out.push(readDependents(meta, pivotTags(meta, sides, links as PkCond[])));
        return out;
      }
      const keys = await insertedPks(meta, rows.length, given, result, w.keyed, w.increment);
      if (keys === undefined) return new Unresolved(`${what} whose new keys cannot be read`, meta);
      if (keys.length > this.#settings.maxRows) return new Unresolved(`${what} (more than maxRows: ${this.#settings.maxRows} rows)`, meta);
      const wants = [...keys.map((pk) => ({ meta, pk, partners: false })), ...partners];
      const out = (await this.#dependentsOf(this.#fork(ctx, options.schema), wants)).dependents;
      // Many-to-many values written to the join table with the new rows: its reads (the new rows' own links are new).
      out.push(...pivots.map((pivot) => readDependents(pivot, unknownWriteTags(tableOf(pivot)))));
      return out;
    });
    return result;
  }

  async #unresolvedWrite(ctx: object | undefined, what: string, run: Run, meta?: Meta): Promise<unknown> {
    const result = await run();
    await this.#fallback(ctx, what, meta);
    return result;
  }

  /** The primary keys of the rows matching `where`, or `undefined` above `maxRows`. */
  async #lookup(driver: DriverLike, meta: Meta, where: unknown, options: NativeOptions, convert: boolean): Promise<PkCond[] | undefined> {
    const qb = driver
      .createQueryBuilder(meta.className, options.ctx, 'write', convert, options.loggerContext)
      .withSchema(driver.getSchemaName(meta, options))
      .select(meta.primaryKeys as string[])
      .where(where);
    return this.#keys(meta, qb, undefined);
  }

  async #keys(meta: Meta, select: QueryBuilderLike, limit: number | undefined): Promise<PkCond[] | undefined> {
    const max = this.#settings.maxRows;
    if (Number.isFinite(max) && (limit === undefined || limit > max)) select.limit(max + 1);
    const rows = (await select.execute('all', true)) as Row[];
    if (rows.length > max) return undefined;
    return rows.flatMap((row) => {
      const pk = pkOf(meta, row);
      return pk === undefined ? [] : [pk];
    });
  }

  // ---------------------------------------------------------------- rows and dependents

  #metaOf(entityName: unknown): Meta | undefined {
    return typeof entityName === 'string' ? (this.#orm.getMetadata().find(entityName) as Meta | undefined) : undefined;
  }

  /** The registered model of an entity: its class (or an ancestor), else its name. */
  #modelOf(meta: Meta): ModelClass | string | undefined {
    let c: unknown = meta.class;
    while (typeof c === 'function' && c !== Function.prototype) {
      if (this.#dumper.isRegistered(c)) return c as ModelClass;
      c = Object.getPrototypeOf(c);
    }
    return this.#dumper.isRegistered(meta.className) ? meta.className : undefined;
  }

  /** Whether an entity has a many-to-many relation to an entity with a model. */
  #linkedToModel(meta: Meta): boolean {
    return manyToMany(meta).some((p) => p.targetMeta !== undefined && this.#modelOf(p.targetMeta) !== undefined);
  }

  /** Whether writes of an entity concern the dumper: it is registered, or it is a join table of one. */
  #watched(meta: Meta): boolean {
    if (this.#settings.reads !== undefined || this.#modelOf(meta) !== undefined) return true;
    return pivotSides(meta)?.some((side) => side.targetMeta !== undefined && this.#modelOf(side.targetMeta) !== undefined) ?? false;
  }

  #relationsOf(meta: Meta): readonly string[] {
    let paths = this.#relations.get(meta);
    if (paths === undefined) {
      paths = this.#settings.relations(meta);
      for (const path of paths) {
        const first = path.split('.')[0]!;
        if (!(first in meta.properties) || (meta.properties as Record<string, Prop>)[first]!.kind === 'scalar') {
          throw new TypeError(`page-dumper: mikroOrmDumper() option "relations" names "${path}" for ${meta.className}, which has no relation "${first}"`);
        }
      }
      this.#relations.set(meta, paths);
    }
    return paths;
  }

  /**
   * Reads the rows (with their relations) and calls their model's `dependentPaths`; rows asked
   * `partners` also bring the rows on the other side of their many-to-many relations. Rows of
   * entities with no registered model are not read. `found`: how many rows were there.
   */
  async #dependentsOf(fork: EntityManager, wants: Iterable<Want>): Promise<{ dependents: Dependents[]; found: number }> {
    const groups = new Map<Meta, Want[]>();
    for (const want of wants) {
      let list = groups.get(want.meta);
      if (list === undefined) groups.set(want.meta, (list = []));
      list.push(want);
    }
    const dependents: Dependents[] = [];
    const seen = new Set<string>();
    const partners = new Map<string, Want>();
    const reads = this.#settings.reads !== undefined;
    let found = 0;
    for (const [meta, list] of groups) {
      const model = this.#modelOf(meta);
      const withPartners = new Set(list.filter((w) => w.partners).map((w) => rowKey(meta, w.pk)));
      const deleted = new Set(list.filter((w) => w.deleted === true).map((w) => rowKey(meta, w.pk)));
      for (const w of list) seen.add(rowKey(meta, w.pk));
      const tagged = new Set(reads ? list.filter((w) => w.linkOnly !== true).map((w) => rowKey(meta, w.pk)) : []);
      if (model === undefined && withPartners.size === 0 && tagged.size === 0) continue;
      const populate = new Set(model === undefined ? [] : this.#relationsOf(meta));
      if (withPartners.size > 0) for (const p of manyToMany(meta)) populate.add(p.name);
      const rows = await this.#load(fork, meta, list.map((w) => w.pk), [...populate]);
      found += rows.length;
      const written = rows.filter((r) => {
        const pk = pkOf(meta, r);
        return pk !== undefined && tagged.has(rowKey(meta, pk));
      });
      if (reads && written.length > 0) dependents.push(readDependents(meta, writeTags(tableOf(meta), written.map((r) => writtenRow(meta, r)))));
      const gone: object[] = [];
      for (const row of rows) {
        if (model !== undefined) dependents.push(await this.#dumper.dependentsOf(model, row));
        const pk = pkOf(meta, row);
        if (pk === undefined) continue;
        if (deleted.has(rowKey(meta, pk))) gone.push(row);
        if (!withPartners.has(rowKey(meta, pk))) continue;
        // Its links: the join-table rows its write removes or rewrites (the rows before, and after).
        if (reads) dependents.push(...this.#linksOf(meta, row));
        for (const prop of manyToMany(meta)) {
          const coll = (row as Row)[prop.name] as CollectionLike | undefined;
          const target = prop.targetMeta;
          if (target === undefined || coll?.isInitialized?.() !== true || this.#modelOf(target) === undefined) continue;
          for (const item of coll.getItems(false)) {
            const itemPk = pkOf(target, item);
            if (itemPk !== undefined) partners.set(rowKey(target, itemPk), { meta: target, pk: itemPk, partners: false, linkOnly: true });
          }
        }
      }
      if (reads && gone.length > 0) dependents.push(...(await this.#cascades(fork, meta, gone, 0)));
    }
    for (const key of seen) partners.delete(key);
    if (partners.size > 0) dependents.push(...(await this.#dependentsOf(fork, partners.values())).dependents);
    return { dependents, found };
  }

  // ---------------------------------------------------------------- trackReads: what else a write changes

  /** The link tags of a row's many-to-many collections, as loaded (each join table's key for it, and its partners'). */
  #linksOf(meta: Meta, row: object): Dependents[] {
    const out: Dependents[] = [];
    const mine = pkValues(meta, row);
    for (const prop of manyToMany(meta)) {
      const pivot = this.#pivotOf(prop);
      if (pivot === undefined) continue;
      const coll = (row as Row)[prop.name] as CollectionLike | undefined;
      const own = mine === undefined ? undefined : zipKey(prop.joinColumns, mine);
      if (own === undefined || coll?.isInitialized?.() !== true) {
        out.push(readDependents(pivot, unknownWriteTags(tableOf(pivot))));
        continue;
      }
      const links: LinkSide[][] = [];
      for (const item of coll.getItems(false)) {
        const theirs = pkValues(prop.targetMeta!, item);
        const key = theirs === undefined ? undefined : zipKey(prop.inverseJoinColumns, theirs);
        links.push([{ key: own }, { key: key ?? { [prop.inverseJoinColumns[0] ?? '?']: undefined } }]);
      }
      // A row without links was still read by the pages that found none.
      out.push(readDependents(pivot, [...linkTags(tableOf(pivot), links), keyTag(tableOf(pivot), own)!]));
    }
    return out;
  }

  /** The link tags of the links a flush added or removed, now that new rows have their keys. */
  #linkDependents(links: readonly Link[]): Dependents[] {
    const out: Dependents[] = [];
    for (const link of links) {
      const pivot = this.#pivotOf(link.prop);
      if (pivot === undefined) continue;
      const owner = pkValues(link.ownerMeta, link.owner);
      const item = pkValues(link.prop.targetMeta!, link.item);
      const a = owner === undefined ? undefined : zipKey(link.prop.joinColumns, owner);
      const b = item === undefined ? undefined : zipKey(link.prop.inverseJoinColumns, item);
      out.push(readDependents(pivot, a === undefined || b === undefined ? unknownWriteTags(tableOf(pivot)) : linkTags(tableOf(pivot), [[{ key: a }, { key: b }]])));
    }
    return out;
  }

  #pivotOf(prop: Prop): Meta | undefined {
    return prop.pivotEntity === undefined ? undefined : (this.#orm.getMetadata().find(prop.pivotEntity) as Meta | undefined);
  }

  /** The join tables an insert's many-to-many values write to. */
  #pivotsOf(meta: Meta, rows: readonly Row[]): Meta[] {
    return manyToMany(meta)
      .filter((p) => rows.some((r) => r[p.name] != null))
      .flatMap((p) => this.#pivotOf(p) ?? []);
  }

  /**
   * The foreign keys that point at rows of `meta` and that the database follows when one is
   * deleted (`ON DELETE CASCADE` / `SET NULL`, as MikroORM's schema generator writes them).
   */
  #referencing(meta: Meta): Array<{ meta: Meta; prop: Prop; rule: 'cascade' | 'set null' }> {
    const out: Array<{ meta: Meta; prop: Prop; rule: 'cascade' | 'set null' }> = [];
    for (const other of Object.values(this.#orm.getMetadata().getAll()) as Meta[]) {
      // Join-table rows are the deleted row's links (#linksOf).
      if (other.pivotTable === true || other.embeddable || other.virtual) continue;
      for (const prop of other.relations as Prop[]) {
        if (!(prop.kind === 'm:1' || (prop.kind === '1:1' && prop.owner)) || prop.targetMeta?.root !== meta.root || prop.createForeignKeyConstraint === false) continue;
        const cascade = (prop.cascade ?? []).some((c) => c === 'remove' || c === 'all');
        const rule = String(prop.deleteRule ?? (cascade ? 'cascade' : prop.nullable ? 'set null' : '')).toLowerCase();
        if (rule === 'cascade' || rule === 'set null') out.push({ meta: other, prop, rule });
      }
    }
    return out;
  }

  /**
   * The rows the database deletes or changes with deleted rows of `meta`: found by their foreign
   * key before the delete (at most `maxRows` per relation, three levels deep), as written rows;
   * past that, everything read from their tables (and the tables their deletes reach).
   */
  async #cascades(fork: EntityManager, meta: Meta, rows: readonly object[], depth: number): Promise<Dependents[]> {
    const out: Dependents[] = [];
    for (const { meta: child, prop, rule } of this.#referencing(meta)) {
      const keys = rows.map((r) => pkValues(meta, r));
      const single = (meta.primaryKeys as string[]).length === 1 && keys.every((k) => k !== undefined);
      // A deleted row's links go with it: its many-to-many collections are loaded to name them.
      const populate = rule === 'cascade' ? manyToMany(child).map((p) => p.name) : [];
      const found =
        single && depth < 3
          ? ((await fork.find(child.className, { [prop.name]: { $in: keys.map((k) => k![0]) } } as never, {
              filters: false,
              limit: this.#settings.maxRows + 1,
              populate: populate as never,
            })) as object[])
          : undefined;
      if (found === undefined || found.length > this.#settings.maxRows) {
        out.push(...this.#unknownDeletes(child, rule).map((m) => readDependents(m, unknownWriteTags(tableOf(m)))));
        continue;
      }
      if (found.length === 0) continue;
      out.push(readDependents(child, writeTags(tableOf(child), found.map((r) => writtenRow(child, r)))));
      if (rule !== 'cascade') continue;
      for (const row of found) out.push(...this.#linksOf(child, row));
      out.push(...(await this.#cascades(fork, child, found, depth + 1)));
    }
    return out;
  }

  /**
   * The entities whose rows the database rewrites when a primary key of `meta` changes: every
   * table with a foreign key constraint to it (MikroORM's schema generator writes `ON UPDATE
   * CASCADE` by default), and, where that foreign key is part of their own primary key, the
   * tables pointing at them in turn.
   */
  #keyFollowers(meta: Meta): Meta[] {
    const out = new Set<Meta>();
    const queue = [meta];
    while (queue.length > 0) {
      const m = queue.pop()!;
      for (const other of Object.values(this.#orm.getMetadata().getAll()) as Meta[]) {
        if (other.embeddable || other.virtual) continue;
        for (const prop of other.relations as Prop[]) {
          if (!(prop.kind === 'm:1' || (prop.kind === '1:1' && prop.owner)) || prop.targetMeta?.root !== m.root || prop.createForeignKeyConstraint === false) continue;
          if (out.has(other)) continue;
          out.add(other);
          if (prop.primary === true) queue.push(other);
        }
      }
    }
    return [...out];
  }

  /** The entities an unknown delete (or `SET NULL`) of rows of `meta` may change: itself, its join tables, and what cascades from it. */
  #unknownDeletes(meta: Meta, rule: 'cascade' | 'set null'): Meta[] {
    const out = new Set<Meta>([meta]);
    if (rule === 'set null') return [...out];
    const queue = [meta];
    while (queue.length > 0) {
      const m = queue.pop()!;
      for (const prop of manyToMany(m)) {
        const pivot = this.#pivotOf(prop);
        if (pivot !== undefined) out.add(pivot);
      }
      for (const { meta: child, rule: r } of this.#referencing(m)) {
        if (out.has(child)) continue;
        out.add(child);
        if (r === 'cascade') queue.push(child);
      }
    }
    return [...out];
  }

  /** With `trackReads`, the entities whose table tags cover an unknown write of `meta`; `undefined` when only every page does. */
  #unknownTables(meta: Meta): Meta[] | undefined {
    if (this.#settings.reads === undefined) return undefined;
    const sides = pivotSides(meta);
    if (sides !== undefined) return sides.some((side) => side.targetMeta !== undefined && this.#modelOf(side.targetMeta) !== undefined) ? undefined : [meta];
    if (this.#modelOf(meta) !== undefined) return undefined;
    // An unknown write may change primary keys too: the rows the database rewrites with them.
    const out = [...new Set([...this.#unknownDeletes(meta, 'cascade'), ...this.#keyFollowers(meta)])];
    // A registered entity among the rows it may delete: its dependentPaths cannot be computed.
    return out.some((m) => this.#modelOf(m) !== undefined) ? undefined : out;
  }

  async #load(fork: EntityManager, meta: Meta, pks: readonly PkCond[], populate: readonly string[]): Promise<object[]> {
    const rows: object[] = [];
    for (let i = 0; i < pks.length; i += CHUNK) {
      const where = wherePks(meta, pks.slice(i, i + CHUNK));
      rows.push(...((await fork.find(meta.className, where as never, { populate: populate as never, filters: false })) as object[]));
    }
    return rows;
  }

  /**
   * An entity manager of page-dumper's own for reading rows: its identity map is empty (the
   * rows are read as they are in the database, not as your entities hold them), and it reads in
   * the given transaction.
   */
  #fork(ctx: object | undefined, schema: string | undefined): EntityManager {
    // The writer's schema: entities with `schema: '*'` live in the one the write was made in.
    const fork = this.#orm.em.fork({ clear: true, useContext: false, disableContextResolution: true, flushMode: 'commit' as never, schema });
    if (ctx !== undefined) fork.setTransactionContext(ctx as never);
    return fork;
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * Computes what a write changed and invalidates it now; inside a transaction, again when the
   * outermost one commits. An `Unresolved` result invalidates every page. An error (a
   * `dependentPaths` returning a string) also invalidates every page, since the write may stand,
   * and is rethrown to the caller of the write.
   */
  async #resolve(ctx: object | undefined, what: string, compute: () => Promise<Entry[] | Unresolved>): Promise<void> {
    let out: Entry[] | Unresolved;
    try {
      out = await compute();
    } catch (error) {
      await this.#fallback(ctx, `${what} (${(error as Error)?.message ?? String(error)})`);
      throw error;
    }
    if (out instanceof Unresolved) return this.#fallback(ctx, out.reason, out.meta);
    if (out.length === 0) return;
    await this.#apply(out);
    if (ctx !== undefined) this.#buffer(ctx).push(...out);
  }

  /**
   * A write whose rows are unknown. With `trackReads`, for an entity that is not registered (and
   * a join table whose sides are not), everything read from its table and from the tables the
   * database changes with it (join tables, `ON DELETE CASCADE` / `SET NULL`); else every page.
   */
  async #fallback(ctx: object | undefined, what: string, meta?: Meta): Promise<void> {
    const tables = meta === undefined ? undefined : this.#unknownTables(meta);
    if (tables !== undefined) {
      const deps = [readDependents(meta!, tables.flatMap((m) => unknownWriteTags(tableOf(m))))];
      if (this.#dumper.log.debugEnabled) this.#dumper.log.debug(`mikro-orm: cannot tell which rows ${what} changed; invalidating what pages read from its tables`, { tables: tables.map(tableOf) });
      await this.#dumper.invalidateDependents(deps);
      if (ctx !== undefined) this.#buffer(ctx).push(...deps);
      return;
    }
    this.#dumper.log.warn(`mikro-orm: cannot tell which rows ${what} changed; invalidating every page`, {});
    await this.#dumper.invalidateAll();
    if (ctx !== undefined) this.#buffer(ctx).push(ALL);
  }

  async #apply(entries: readonly Entry[]): Promise<void> {
    if (entries.some((e) => e === ALL || (e instanceof Unfinished && !e.done))) return this.#dumper.invalidateAll();
    const dependents = entries.filter((e): e is Dependents => e !== ALL && !(e instanceof Unfinished));
    if (dependents.length > 0) await this.#dumper.invalidateDependents(dependents);
  }

  async #replay(entries: readonly Entry[], when: string): Promise<void> {
    if (entries.length === 0) return;
    if (entries.some((e) => e instanceof Unfinished && !e.done)) {
      this.#dumper.log.warn(`mikro-orm: a flush failed inside a transaction that was committed; invalidating every page`, {});
    }
    try {
      await this.#apply(entries);
    } catch (error) {
      // The transaction has ended: failing its commit would not undo it.
      this.#dumper.log.error(`mikro-orm: invalidating ${when} failed`, { error: error as Error });
    }
  }

  /** The buffer of the outermost transaction a (nested) transaction belongs to. */
  #buffer(ctx: object): Entry[] {
    const root = rootTransaction(ctx);
    let entries = this.#buffers.get(root);
    if (entries === undefined) this.#buffers.set(root, (entries = []));
    return entries;
  }
}

/**
 * The kind of statement a QueryBuilder executes. An update or delete whose `where` joins another
 * table is a SELECT of the keys until it executes (MikroORM turns it into a subquery then).
 */
export function writeType(qb: QueryBuilderLike): string {
  if (qb.flags.has('UPDATE_SUB_QUERY')) return 'UPDATE';
  if (qb.flags.has('DELETE_SUB_QUERY')) return 'DELETE';
  return qb.type ?? 'SELECT';
}

interface NativeOptions {
  ctx?: object;
  upsert?: boolean;
  convertCustomTypes?: boolean;
  loggerContext?: unknown;
  schema?: string;
}

/**
 * The outermost transaction of a savepoint: MikroORM's SQL connection marks a nested
 * transaction with its parent, and fires transaction events for the outermost one only.
 */
function rootTransaction(ctx: object): object {
  let trx = ctx;
  for (;;) {
    const parent = Object.getOwnPropertySymbols(trx).find((s) => s.description === 'parentTransaction');
    const next = parent === undefined ? undefined : (trx as Record<symbol, unknown>)[parent];
    // A knex transaction is a function (its query builder).
    if (next === null || (typeof next !== 'object' && typeof next !== 'function')) return trx;
    trx = next;
  }
}

/**
 * The schema a flush writes in: its entity manager's (`em.fork({ schema })`), else the one its
 * `schema: '*'` entities were loaded from or created in, when they all share one (`mixed` when
 * they do not: their rows cannot be read through one entity manager).
 */
function flushSchema(em: EntityManager, changeSets: readonly ChangeSetLike[], collections: readonly CollectionLike[]): { schema: string | undefined; mixed: boolean } {
  const own = (em as { schema?: string }).schema;
  if (own !== undefined) return { schema: own, mixed: false };
  const schemas = new Set<string>();
  for (const entity of [...changeSets.map((cs) => cs.entity), ...collections.map((c) => c.owner)]) {
    const helper = helperOf(entity) as (EntityHelper & { __schema?: string }) | undefined;
    if (helper?.__meta.schema === '*' && helper.__schema !== undefined) schemas.add(helper.__schema);
  }
  return { schema: schemas.size === 1 ? [...schemas][0] : undefined, mixed: schemas.size > 1 };
}

function hasManyToMany(meta: Meta, data: unknown): boolean {
  if (data === null || typeof data !== 'object') return false;
  return manyToMany(meta).some((p) => (data as Row)[p.name] != null);
}

/** The rows an insert's many-to-many values link the new row to: their pages change too. */
function partnerWants(meta: Meta, row: Row): Want[] {
  const out: Want[] = [];
  for (const prop of manyToMany(meta)) {
    const target = prop.targetMeta;
    const items = row[prop.name];
    if (target === undefined || !Array.isArray(items)) continue;
    for (const item of items) {
      const pk = referencedPk(target, item);
      if (pk !== undefined) out.push({ meta: target, pk, partners: false, linkOnly: true });
    }
  }
  return out;
}

/** Both rows each join-table row links (m2m_changed for each side). */
function linkWants(sides: readonly [Prop, Prop], links: readonly PkCond[]): Want[] {
  const out: Want[] = [];
  for (const link of links) {
    for (const side of sides) {
      const pk = side.targetMeta === undefined ? undefined : referencedPk(side.targetMeta, link[side.name]);
      if (pk !== undefined) out.push({ meta: side.targetMeta!, pk, partners: false, linkOnly: true });
    }
  }
  return out;
}

function affectedOf(result: unknown): number | undefined {
  const affected = result !== null && typeof result === 'object' ? (result as { affectedRows?: unknown }).affectedRows : undefined;
  return typeof affected === 'number' ? affected : undefined;
}

/** Keys the database returned (RETURNING, or MariaDB's computed rows), by property name. */
function returnedPks(meta: Meta, result: unknown, columns: Map<string, string> | undefined): PkCond[] {
  const rows = result !== null && typeof result === 'object' ? (result as { rows?: unknown }).rows : undefined;
  if (!Array.isArray(rows)) return [];
  return rows.flatMap((row: unknown) => {
    if (row === null || typeof row !== 'object') return [];
    const named = columns === undefined ? (row as Row) : Object.fromEntries(Object.entries(row).map(([k, v]) => [columns.get(k) ?? k, v]));
    const pk = pkOf(meta, named);
    return pk === undefined ? [] : [pk];
  });
}

/**
 * The keys of the rows an insert wrote: given in the values, else returned by the database
 * (RETURNING on PostgreSQL and SQLite), else, for an auto-increment key, the first id the
 * database reports and the ones after it (MySQL and MariaDB number a multi-row insert's rows
 * consecutively, by `auto_increment_increment`, as MikroORM itself assumes).
 */
async function insertedPks(
  meta: Meta,
  count: number,
  given: ReadonlyArray<PkCond | undefined>,
  result: unknown,
  columns: Map<string, string>,
  increment: () => Promise<number>,
): Promise<PkCond[] | undefined> {
  const returned = result !== null && typeof result === 'object' ? (result as { rows?: unknown }).rows : undefined;
  const keys = meta.primaryKeys as string[];
  const out: PkCond[] = [];
  let step: number | undefined;
  for (let i = 0; i < count; i++) {
    const known = given[i];
    if (known !== undefined) {
      out.push(known);
      continue;
    }
    const row = Array.isArray(returned) ? (returned[i] as Row | undefined) : undefined;
    const named = row === undefined ? undefined : Object.fromEntries(Object.entries(row).map(([k, v]) => [columns.get(k) ?? k, v]));
    const fromRow = named === undefined ? undefined : pkOf(meta, named);
    if (fromRow !== undefined) {
      out.push(fromRow);
      continue;
    }
    const first = result !== null && typeof result === 'object' ? (result as { insertId?: unknown }).insertId : undefined;
    if (keys.length !== 1 || (typeof first !== 'number' && typeof first !== 'bigint') || Number(first) <= 0) return undefined;
    step ??= await increment();
    out.push({ [keys[0]!]: Number(first) + i * step });
  }
  return out;
}

/**
 * The rows an upsert may overwrite: for each row, its values of the conflict columns (or, with
 * none named, of every unique key it fills in: MySQL's ON DUPLICATE KEY UPDATE fires on any).
 */
function conflictWhere(meta: Meta, onConflict: ReadonlyArray<{ fields?: unknown }>, rows: readonly Row[], columns: Map<string, string>): Row | undefined {
  const named = onConflict.flatMap((c) => (Array.isArray(c.fields) ? c.fields : []));
  if (onConflict.some((c) => c.fields !== undefined && !Array.isArray(c.fields))) return undefined; // raw SQL
  let keys: string[][];
  if (named.length > 0) keys = [named.map((f: unknown) => columns.get(String(f)) ?? String(f))];
  else {
    keys = [meta.primaryKeys as string[], ...(meta.props as Prop[]).filter((p) => p.unique === true).map((p) => [p.name])];
    for (const u of (meta.uniques ?? []) as Array<{ properties?: unknown }>) {
      if (Array.isArray(u.properties)) keys.push(u.properties.map(String));
      else if (typeof u.properties === 'string') keys.push([u.properties]);
    }
  }
  const or: Row[] = [];
  for (const row of rows) {
    let found = false;
    for (const key of keys) {
      if (key.length === 0 || !key.every((k) => row[k] != null)) continue;
      or.push(Object.fromEntries(key.map((k) => [k, row[k]])));
      found = true;
    }
    if (!found) return undefined;
  }
  return { $or: or };
}

// ---------------------------------------------------------------- trackReads

/** Tags to invalidate, in the shape `invalidateDependents()` and the transaction buffers take. */
function readDependents(meta: Meta, tags: readonly string[]): Dependents {
  return { model: meta.className, paths: [], tags, integration: 'mikro-orm' };
}

function zipKey(columns: readonly string[] | undefined, values: readonly unknown[]): KeyValues | undefined {
  if (columns === undefined || columns.length === 0 || columns.length !== values.length || values.some((v) => v == null)) return undefined;
  return Object.fromEntries(columns.map((c, i) => [c, values[i]]));
}

/** A row's primary key and foreign keys, by column name, as the write-side tags need them. */
function writtenRow(meta: Meta, row: object): WrittenRow {
  const keys: KeyValues[] = [];
  for (const prop of meta.relations as Prop[]) {
    if (!(prop.kind === 'm:1' || (prop.kind === '1:1' && prop.owner))) continue;
    const key = foreignKey(prop, (row as Row)[prop.name]);
    if (key !== undefined) keys.push(key);
  }
  return { id: pkColumns(meta, row), keys };
}

/** The sides of join-table rows (by property name: `{ post: 1, tag: 2 }`) as link sides, or `undefined` when one cannot be named. */
function linkSides(sides: readonly [Prop, Prop], link: Row): LinkSide[] | undefined {
  const out: LinkSide[] = [];
  for (const side of sides) {
    const key = foreignKey(side, link[side.name]);
    if (key === undefined) return undefined;
    out.push({ key });
  }
  return out;
}

/** What writing these join-table rows invalidates. */
function pivotTags(meta: Meta, sides: readonly [Prop, Prop], links: readonly PkCond[]): string[] {
  const all = links.map((l) => linkSides(sides, l));
  return all.every((l): l is LinkSide[] => l !== undefined) ? linkTags(tableOf(meta), all) : unknownWriteTags(tableOf(meta));
}

/** A flushed row of a join-table entity: its link as it is and as it was. */
function pivotRowTags(meta: Meta, sides: readonly [Prop, Prop], cs: ChangeSetLike): string[] {
  const links: Row[] = [cs.entity as Row];
  if (cs.originalEntity !== undefined) links.push(cs.originalEntity);
  const all = links.map((l) => linkSides(sides, l));
  return all.every((l): l is LinkSide[] => l !== undefined) ? linkTags(tableOf(meta), all) : unknownWriteTags(tableOf(meta));
}
