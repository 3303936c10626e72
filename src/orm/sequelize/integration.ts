/**
 * The machinery behind `sequelizeDumper()`: hooks on the Sequelize instance (they run for every
 * model of it, defined before or after), which find the rows of each write and call their models'
 * `dependentPaths()`; a wrapper of the query interface's increment and decrement (Sequelize runs
 * no hook for them) and of its bulk update and delete (whose hooks are not told how many rows
 * the write touched); and, per transaction, the invalidations to make again after the commit.
 * With `trackReads`, every model is watched, a write also invalidates the read tags of its rows
 * (and of the rows a delete cascades to), and `select()` and `rawSelect()` are wrapped for reads.
 */
import type { Model, ModelStatic, Sequelize, Transaction } from 'sequelize';
import type { Dependents, Dumper } from '../../core/dumper.js';
import type { ModelClass } from '../../core/models.js';
import { keyTag, listTag, unknownWriteTags, writeTags, type ReadTracker } from '../reads.js';
import { foreignKeys, INTERNAL, SequelizeReads, tableOf, writtenRows } from './reads.js';
import {
  asBefore,
  byKey,
  collisions,
  differs,
  info,
  isParanoid,
  keyless,
  rootOf,
  row,
  sidesOf,
  softDeleted,
  type ModelInfo,
  type Ops,
  type TransactionInfo,
} from './rows.js';

export interface Settings {
  readonly maxRows: number;
  readonly invalidateOnRollback: boolean;
  /** With `trackReads`: reads tag pages, and every model's writes invalidate the tags of what they changed. */
  readonly reads: ReadTracker | undefined;
}

/** Marks a point in a transaction's buffer where every page must be invalidated. */
const ALL = Symbol('every page');
type Entry = Dependents[] | typeof ALL;

/** What a transaction holds until its outermost transaction commits. */
interface TransactionState {
  readonly entries: Array<{ readonly transaction: Transaction; readonly entry: Entry }>;
}

/** What a before-hook found, for the after-hook of the same write. */
interface Pending {
  /** The rows as they were (a bulk write's matching rows; an instance's stored row). */
  readonly rows: readonly Model[];
  readonly before: Dependents[];
  /** The condition that found the rows of an upsert, to find them again after it. */
  readonly where?: object;
  /** Why the rows cannot be told (every page is invalidated after the write). */
  readonly unresolved?: string;
}

/** Options of a write as the hooks see them (Sequelize passes one object to the before- and after-hook). */
interface WriteOptions {
  transaction?: Transaction | null;
  individualHooks?: boolean;
  force?: boolean;
  truncate?: boolean;
  cascade?: boolean;
  where?: object;
  fields?: readonly string[];
  updateOnDuplicate?: readonly string[];
  instance?: Model;
  model?: ModelStatic<Model>;
  /** The values of a Model.update(), which Sequelize hands to its bulk update hooks. */
  attributes?: object;
}

type QueryInterfaceMethod = (this: unknown, ...args: unknown[]) => Promise<unknown>;

/** Rows are found again by primary key this many at a time (bound parameters: SQLite allows 32766). */
const CHUNK = 500;

/** The hooks, by Sequelize hook name. */
export const HOOKS = [
  'afterCreate',
  'beforeUpdate',
  'afterUpdate',
  'beforeDestroy',
  'afterDestroy',
  'beforeRestore',
  'afterRestore',
  'beforeUpsert',
  'afterUpsert',
  'beforeBulkCreate',
  'afterBulkCreate',
  'beforeBulkUpdate',
  'afterBulkUpdate',
  'beforeBulkDestroy',
  'afterBulkDestroy',
  'beforeBulkRestore',
  'afterBulkRestore',
] as const;
export type HookName = (typeof HOOKS)[number];

/**
 * The query interface methods wrapped: increment and decrement run no hook, the bulk hooks are
 * not told how many rows a bulk update or delete touched, and Sequelize runs a transaction's
 * afterCommit callbacks even when its COMMIT fails (its error is seen only here, before them).
 */
export const WRAPPED = ['increment', 'decrement', 'bulkUpdate', 'bulkDelete', 'commitTransaction'] as const;

/**
 * With `trackReads`, the query interface methods every model read goes through: `select()` (finds,
 * association getters, includes) and `rawSelect()` (counts and aggregates). Reads with
 * `hooks: false` run no find hook, but still come through here.
 */
export const READ_WRAPPED = ['select', 'rawSelect'] as const;

/** How deep the rows deleted with a row (`ON DELETE CASCADE`) are followed before their tables are given up. */
const MAX_CASCADE_DEPTH = 4;

export class SequelizeIntegration {
  readonly #dumper: Dumper;
  readonly #sequelize: Sequelize;
  readonly #settings: Settings;
  readonly #op: Ops;
  /** Bulk writes (and upserts, bulk creates): what their before-hook found, by their options object. */
  readonly #pending = new WeakMap<object, Pending>();
  /** Instance writes: by options object, then instance (`individualHooks` shares one options object). */
  readonly #pendingRows = new WeakMap<object, Map<Model, Pending>>();
  /** How many rows a bulk update or delete touched, by its options object. */
  readonly #affected = new WeakMap<object, number>();
  readonly #transactions = new WeakMap<Transaction, TransactionState>();
  readonly #rollbackWrapped = new WeakSet<Transaction>();
  /** Transactions whose COMMIT the database refused: they were rolled back. */
  readonly #refused = new WeakSet<Transaction>();
  readonly #reads: SequelizeReads | undefined;
  readonly #dialect: string;
  #closed = false;

  constructor(dumper: Dumper, sequelize: Sequelize, settings: Settings) {
    this.#dumper = dumper;
    this.#sequelize = sequelize;
    this.#settings = settings;
    this.#op = (sequelize.constructor as unknown as { Op: Ops }).Op;
    this.#dialect = sequelize.getDialect();
    this.#reads = settings.reads === undefined ? undefined : new SequelizeReads(settings.reads, sequelize);
  }

  /** With `trackReads`: replacements for `select()` and `rawSelect()`, which tag the page with what they read. */
  wrapRead(method: (typeof READ_WRAPPED)[number], original: QueryInterfaceMethod): QueryInterfaceMethod {
    const self = this;
    if (method === 'select') {
      // select(model, tableName, options)
      return async function (this: unknown, ...args: unknown[]) {
        const result = await original.apply(this, args);
        if (!self.#closed) await self.#reads?.prepare(args[0], args[2] as never);
        if (!self.#closed) self.#reads?.select(args[0], args[2] as never, result);
        return result;
      };
    }
    // rawSelect(tableName, options, attributeSelector, model)
    return async function (this: unknown, ...args: unknown[]) {
      const result = await original.apply(this, args);
      if (!self.#closed) await self.#reads?.prepare(args[3], args[1] as never);
      if (!self.#closed) self.#reads?.aggregate(args[3], args[1] as never);
      return result;
    };
  }

  close(): void {
    this.#closed = true;
  }

  /** The hook functions, to add with `sequelize.addHook()`. Each runs with the model as `this`. */
  hooks(): Record<HookName, (...args: never[]) => Promise<void>> {
    const self = this;
    const model = (m: unknown, options: WriteOptions | undefined): ModelInfo => info((options?.model ?? m) as ModelInfo);
    return {
      async afterCreate(instance: Model, options: WriteOptions) {
        await self.#created(ownModel(instance), [instance], options, 'a create');
      },
      async beforeUpdate(instance: Model, options: WriteOptions) {
        await self.#beforeRow(instance, options);
      },
      async afterUpdate(instance: Model, options: WriteOptions) {
        await self.#afterRow(instance, options, 'an update', new Set(options.fields ?? []));
      },
      async beforeDestroy(instance: Model, options: WriteOptions) {
        await self.#beforeRow(instance, options, options.force === true || !isParanoid(ownModel(instance)));
      },
      async afterDestroy(instance: Model, options: WriteOptions) {
        await self.#afterRow(instance, options, 'a destroy', undefined, options.force === true || !isParanoid(ownModel(instance)));
      },
      async beforeRestore(instance: Model, options: WriteOptions) {
        await self.#beforeRow(instance, options);
      },
      async afterRestore(instance: Model, options: WriteOptions) {
        // A restore writes the deletedAt column (and updatedAt), whatever `fields` says.
        const { deletedAt, updatedAt } = ownModel(instance)._timestampAttributes ?? {};
        await self.#afterRow(instance, options, 'a restore', new Set([deletedAt, updatedAt].filter((a): a is string => a !== undefined)));
      },
      async beforeUpsert(this: unknown, _values: object, options: WriteOptions) {
        const m = model(this, options);
        if (options.instance === undefined) return;
        await self.#beforeCollisions(m, [options.instance], options);
      },
      async afterUpsert(this: unknown, result: [Model, boolean | null], options: WriteOptions) {
        const m = model(this, options);
        await self.#afterCollisions(m, result[0] === undefined ? [] : [result[0]], options, 'an upsert');
      },
      async beforeBulkCreate(this: unknown, instances: Model[], options: WriteOptions) {
        // With individualHooks, each row is saved with its own create hooks.
        if (options.individualHooks || !options.updateOnDuplicate) return;
        await self.#beforeCollisions(model(this, options), instances, options);
      },
      async afterBulkCreate(this: unknown, instances: readonly Model[], options: WriteOptions) {
        if (options.individualHooks) return;
        const m = model(this, options);
        if (options.updateOnDuplicate) await self.#afterCollisions(m, instances, options, 'a bulkCreate with updateOnDuplicate');
        else await self.#created(m, instances, options, 'a bulkCreate');
      },
      async beforeBulkUpdate(this: unknown, options: WriteOptions) {
        // Model.update() adds its paranoid condition to `where` before this hook.
        await self.#beforeBulk(model(this, options), options, options.where, false, false);
      },
      async afterBulkUpdate(this: unknown, options: WriteOptions) {
        await self.#afterBulk(model(this, options), options, 'update');
      },
      async beforeBulkDestroy(this: unknown, options: WriteOptions) {
        const m = model(this, options);
        // PostgreSQL's TRUNCATE ... CASCADE empties the tables that refer to this one too.
        if (options.truncate && options.cascade) {
          if (!self.#closed && self.#watched(m)) self.#pending.set(options, pending([], 'a truncate with cascade empties other tables too'));
          return;
        }
        // A soft delete touches the rows not yet deleted; a hard one, every row of the where (a
        // truncate: every row).
        const soft = isParanoid(m) && !options.force;
        await self.#beforeBulk(m, options, options.truncate ? undefined : options.where, soft, !soft);
      },
      async afterBulkDestroy(this: unknown, options: WriteOptions) {
        await self.#afterBulk(model(this, options), options, options.truncate ? 'truncate' : 'destroy');
      },
      async beforeBulkRestore(this: unknown, options: WriteOptions) {
        const m = model(this, options);
        const deleted = softDeleted(m, self.#op);
        await self.#beforeBulk(m, options, options.where === undefined ? deleted : { [self.#op.and]: [options.where, deleted] }, false, false);
      },
      async afterBulkRestore(this: unknown, options: WriteOptions) {
        await self.#afterBulk(model(this, options), options, 'restore');
      },
    };
  }

  /** Replacements for query interface methods, given the originals. */
  wrap(method: (typeof WRAPPED)[number], original: QueryInterfaceMethod): QueryInterfaceMethod {
    const self = this;
    if (method === 'increment' || method === 'decrement') {
      return function (this: unknown, ...args: unknown[]) {
        return self.#arithmetic(method, () => original.apply(this, args), args);
      };
    }
    if (method === 'commitTransaction') {
      // commitTransaction(transaction, options)
      return async function (this: unknown, ...args: unknown[]) {
        try {
          return await original.apply(this, args);
        } catch (error) {
          const t = args[0];
          if (t !== null && typeof t === 'object' && refusedByServer(error)) self.#refused.add(t as Transaction);
          throw error;
        }
      };
    }
    // bulkUpdate(table, values, where, options, attributes), bulkDelete(table, where, options, model)
    const at = method === 'bulkUpdate' ? 3 : 2;
    return async function (this: unknown, ...args: unknown[]) {
      const result = await original.apply(this, args);
      const options = args[at];
      const affected = typeof result === 'number' ? result : Array.isArray(result) ? result.length : undefined;
      if (options !== null && typeof options === 'object' && affected !== undefined) self.#affected.set(options, affected);
      return result;
    };
  }

  // ---------------------------------------------------------------- instance writes

  async #created(model: ModelInfo, instances: readonly Model[], options: WriteOptions, what: string): Promise<void> {
    if (this.#closed || !this.#watched(model)) return;
    const t = this.#transactionOf(options);
    await this.#settle(model, t, `${what} of ${model.name}`, async () => {
      if (instances.length > this.#settings.maxRows) return this.#tooMany();
      return this.#dependents(model, instances, t, true, await this.#inserted(model, instances, t));
    });
  }

  /**
   * With `trackReads`, the rows an insert wrote, for their tags: the instances, unless one lacks
   * its primary key or a foreign key (the database may have filled it in: a default, a sequence
   * Sequelize was not told of), then the rows read again by primary key; `null` when they cannot be.
   */
  async #inserted(model: ModelInfo, instances: readonly Model[], t: Transaction | undefined): Promise<readonly Model[] | null> {
    if (this.#settings.reads === undefined) return instances;
    const columns = [...model.primaryKeyAttributes, ...foreignKeys(model)];
    if (instances.every((r) => columns.every((a) => Object.hasOwn(row(r).dataValues, a)))) return instances;
    const chunks = byKey(model, instances, this.#op, CHUNK);
    if (chunks === undefined) return null;
    const rows: Model[] = [];
    for (const where of chunks) rows.push(...(await this.#find(model, where, t)));
    return rows.length === instances.length ? rows : null;
  }

  /**
   * Before an instance is saved, destroyed or restored: the row as stored, read in the write's
   * transaction (the instance may have been loaded before someone else changed it), and its pages.
   */
  async #beforeRow(instance: Model, options: WriteOptions, hardDelete = false): Promise<void> {
    const model = ownModel(instance);
    if (this.#closed || !this.#watched(model)) return;
    const t = this.#transactionOf(options);
    let stored: Model | undefined;
    // individualHooks: Sequelize has just read these rows, in the same transaction.
    if (!options.individualHooks) {
      const where = byKey(model, [instance], this.#op, 1, { previous: true });
      if (where !== undefined) stored = (await this.#find(model, where[0]!, t))[0];
    }
    let rows = this.#pendingRows.get(options);
    if (rows === undefined) this.#pendingRows.set(options, (rows = new Map()));
    const before = stored ?? asBefore(instance);
    let deps = await this.#dependents(model, [before], t);
    // The rows the database deletes or changes with it, found while they are still there.
    if (hardDelete && typeof deps !== 'string') deps = concat(deps, await this.#cascade(model, [before], t, 0));
    rows.set(instance, pending(stored ? [stored] : [], deps));
  }

  /**
   * After an instance is saved, destroyed or restored: the pages before (from the before-hook) and,
   * unless it is gone, after: the instance itself (its `previous()` values still answer), and the
   * row read again if the instance did not hold what was stored in the columns left alone.
   */
  async #afterRow(instance: Model, options: WriteOptions, what: string, written: ReadonlySet<string> | undefined, hardDelete = false): Promise<void> {
    const model = ownModel(instance);
    if (this.#closed || !this.#watched(model)) return;
    const rows = this.#pendingRows.get(options);
    const before = rows?.get(instance);
    rows?.delete(instance);
    const t = this.#transactionOf(options);
    await this.#settle(model, t, `${what} of ${model.name}`, async () => {
      if (before?.unresolved !== undefined) return before.unresolved;
      // A destroy: its pages are those of the row before it went (a before-hook that did not run
      // leaves the instance as it is).
      if (written === undefined) return before === undefined ? this.#dependents(model, [instance], t) : before.before;
      const after: Model[] = [instance];
      const stored = before?.rows[0];
      if (stored !== undefined && differs(stored, instance, written)) {
        const where = byKey(model, [instance], this.#op, 1);
        if (where === undefined) return 'its primary key is not a value to find it by';
        after.push(...(await this.#find(model, where[0]!, t)));
      }
      return concat(before?.before ?? [], await this.#dependents(model, after, t));
    }, hardDelete);
  }

  // ---------------------------------------------------------------- upserts

  /** An upsert, or a bulkCreate with updateOnDuplicate: the rows its values may collide with, before. */
  async #beforeCollisions(model: ModelInfo, instances: readonly Model[], options: WriteOptions): Promise<void> {
    if (this.#closed || !this.#watched(model)) return;
    const where = collisions(model, instances, this.#op);
    // No key is filled in: nothing to collide with, a plain insert.
    if (where === undefined) return void this.#pending.set(options, { rows: [], before: [] });
    const t = this.#transactionOf(options);
    const rows = await this.#find(model, where, t, true);
    const found = rows.length > this.#settings.maxRows ? pending([], this.#tooMany()) : pending(rows, await this.#dependents(model, rows, t));
    this.#pending.set(options, { ...found, where });
  }

  async #afterCollisions(model: ModelInfo, instances: readonly Model[], options: WriteOptions, what: string): Promise<void> {
    if (this.#closed || !this.#watched(model)) return;
    const before = this.#pending.get(options);
    this.#pending.delete(options);
    const t = this.#transactionOf(options);
    await this.#settle(model, t, `${what} of ${model.name}`, async () => {
      if (before?.unresolved !== undefined) return before.unresolved;
      // The rows are read again by the same keys: on MySQL and SQLite the instance an upsert
      // returns holds the values given, not the row (another id, none of the columns left alone).
      // Rows that filled in no key could collide with nothing: they were inserted as they are.
      const now = before?.where === undefined ? [] : await this.#find(model, before.where, t, true);
      const inserted = before?.where === undefined ? instances : keyless(model, instances);
      if (now.length + inserted.length > this.#settings.maxRows) return this.#tooMany();
      return concat(before?.before ?? [], await this.#dependents(model, [...now, ...inserted], t));
    });
  }

  // ---------------------------------------------------------------- bulk writes

  /** Model.update(), destroy() or restore() by `where`: the rows it will touch, before it runs. */
  async #beforeBulk(model: ModelInfo, options: WriteOptions, where: object | undefined, paranoid: boolean, hardDelete: boolean): Promise<void> {
    // With individualHooks, Sequelize runs each row's own hooks.
    if (this.#closed || options.individualHooks || !this.#watched(model)) return;
    const t = this.#transactionOf(options);
    const rows = await this.#find(model, where, t, true, paranoid);
    if (rows.length > this.#settings.maxRows) return void this.#pending.set(options, pending([], this.#tooMany()));
    let deps = await this.#dependents(model, rows, t);
    if (hardDelete && typeof deps !== 'string') deps = concat(deps, await this.#cascade(model, rows, t, 0));
    this.#pending.set(options, pending(rows, deps));
  }

  async #afterBulk(model: ModelInfo, options: WriteOptions, kind: 'update' | 'destroy' | 'restore' | 'truncate'): Promise<void> {
    if (this.#closed || options.individualHooks) return;
    const before = this.#pending.get(options);
    this.#pending.delete(options);
    if (before === undefined) return; // not watched
    const affected = this.#affected.get(options);
    // Model.update() with nothing to set writes nothing.
    if (affected === undefined && before.unresolved === undefined && kind === 'update') return;
    const t = this.#transactionOf(options);
    const what = kind === 'truncate' ? `a truncate of ${model.name}` : `${kind === 'update' ? 'an' : 'a'} ${kind} of ${model.name} by where`;
    const hardDelete = kind === 'truncate' || (kind === 'destroy' && !(isParanoid(model) && !options.force));
    await this.#settle(model, t, what, async () => {
      if (before.unresolved !== undefined) return before.unresolved;
      if (affected !== undefined && affected > before.rows.length) return 'it touched more rows than matched just before it';
      if (kind === 'destroy' || kind === 'truncate') return before.before;
      return this.#again(model, before, t, options.attributes);
    }, hardDelete);
  }

  /** The rows of a write by `where` as they are after it, found by their primary keys, and their pages with those before. */
  async #again(model: ModelInfo, before: Pending, t: Transaction | undefined, set?: object): Promise<Dependents[] | string> {
    if (before.rows.length === 0) return before.before;
    const chunks = byKey(model, before.rows, this.#op, CHUNK, { set });
    if (chunks === undefined) return 'its rows have no primary key to find them by after it';
    const now: Model[] = [];
    for (const where of chunks) now.push(...(await this.#find(model, where, t)));
    // A row was deleted meanwhile, or a key was set to an expression: the rows after cannot all be found.
    if (now.length < before.rows.length) return 'some of its rows could not be found after it';
    return concat(before.before, await this.#dependents(model, now, t));
  }

  /** Model.increment() and decrement(), and the instance methods that call them: no hooks, so the query interface. */
  async #arithmetic(method: string, write: () => Promise<unknown>, args: unknown[]): Promise<unknown> {
    if (this.#closed || typeof args[0] !== 'function') return write();
    const model = info(args[0] as unknown as ModelInfo);
    const where = args[2] as object | undefined;
    const options = (args[5] ?? {}) as WriteOptions;
    if (!this.#watched(model)) return write();
    const t = this.#transactionOf(options);
    const rows = await this.#find(model, where, t, true);
    const before = rows.length > this.#settings.maxRows ? pending([], this.#tooMany()) : pending(rows, await this.#dependents(model, rows, t));
    const result = await write();
    await this.#settle(model, t, `${method === 'increment' ? 'an increment' : 'a decrement'} of ${model.name}`, async () =>
      before.unresolved ?? this.#again(model, before, t),
    );
    return result;
  }

  #tooMany(): string {
    return `more than maxRows: ${this.#settings.maxRows} rows`;
  }

  // ---------------------------------------------------------------- rows and dependents

  /**
   * Rows of a model, in the write's transaction, soft-deleted ones included unless `paranoid`,
   * without the model's scopes and find hooks (the write has its where already). `limited`: at
   * most maxRows + 1, to tell when there are too many.
   */
  #find(model: ModelInfo, where: object | undefined, t: Transaction | undefined, limited = false, paranoid = false): Promise<Model[]> {
    const max = this.#settings.maxRows;
    return model.unscoped().findAll({
      where,
      transaction: t ?? null,
      paranoid,
      hooks: false,
      // Rows of a write: no page read them.
      [INTERNAL]: true,
      ...(limited && Number.isFinite(max) ? { limit: max + 1 } : {}),
    });
  }

  /** The registered model of a Sequelize model: its class (or one it extends), else its name, else its table's. */
  #modelOf(model: ModelInfo): ModelClass | string | undefined {
    let c: unknown = model;
    while (typeof c === 'function' && c !== Function.prototype) {
      if (this.#dumper.isRegistered(c)) return c as ModelClass;
      c = Object.getPrototypeOf(c);
    }
    if (this.#dumper.isRegistered(model.name)) return model.name;
    if (typeof model.tableName === 'string' && this.#dumper.isRegistered(model.tableName)) return model.tableName;
    return undefined;
  }

  /** Registered, or a junction model between registered ones; with `trackReads`, every model. */
  #watched(model: ModelInfo): boolean {
    if (this.#settings.reads !== undefined || this.#modelOf(model) !== undefined) return true;
    return sidesOf(model).some((s) => this.#modelOf(s.model) !== undefined);
  }

  /**
   * The pages of rows: their model's `dependentPaths()`; for a junction model that is not
   * registered, those of the rows it links on both sides, read in the write's transaction (as
   * django-dumper's m2m_changed reaches both ends). A string says why they cannot be told.
   */
  async #dependents(
    model: ModelInfo,
    rows: readonly Model[],
    t: Transaction | undefined,
    reads = true,
    tagged: readonly Model[] | null = rows,
  ): Promise<Dependents[] | string> {
    const registered = this.#modelOf(model);
    const out: Dependents[] = [];
    // With trackReads, the tags of the rows (`tagged`: as stored; `null`: unknown): their ids, their
    // foreign keys (a junction row's are both sides' links) and the table's list. The rows a
    // junction row links did not change.
    if (reads && this.#settings.reads !== undefined && rows.length > 0) {
      const tags = tagged === null ? unknownWriteTags(tableOf(model)) : writeTags(tableOf(model), writtenRows(model, tagged, this.#dialect));
      // A model over a view: the rows it changed in the tables under it are not known.
      for (const table of (await this.#reads?.underlying(model, t)) ?? []) tags.push(...unknownWriteTags(table));
      out.push(readDependents(model, tags));
    }
    if (registered !== undefined) {
      for (const r of rows) out.push(await this.#dumper.dependentsOf(registered, r));
      return out;
    }
    for (const side of sidesOf(model)) {
      if (this.#modelOf(side.model) === undefined) continue;
      const ids = [...new Set(rows.map((r) => row(r).get(side.foreignKey, { raw: true })).filter((v) => v != null))];
      if (ids.length === 0) continue;
      const linked: Model[] = [];
      for (let i = 0; i < ids.length; i += CHUNK) linked.push(...(await this.#find(side.model, { [side.key]: { [this.#op.in]: ids.slice(i, i + CHUNK) } }, t)));
      const deps = await this.#dependents(side.model, linked, t, false);
      if (typeof deps === 'string') return deps;
      out.push(...deps);
    }
    return out;
  }

  /**
   * With `trackReads`, what a delete of `rows` also changes without Sequelize saying so, found
   * before the delete: the rows of every model whose foreign key references them with
   * `ON DELETE CASCADE` (followed down, `MAX_CASCADE_DEPTH` levels), `SET NULL` or `SET DEFAULT`,
   * read by that key in the write's transaction. Past `maxRows` rows or the depth, or for a key
   * that is not a value, everything read from their tables (and the tables below them).
   */
  async #cascade(model: ModelInfo, rows: readonly Model[], t: Transaction | undefined, depth: number): Promise<Dependents[]> {
    if (this.#settings.reads === undefined || rows.length === 0) return [];
    const out: Dependents[] = [];
    for (const ref of referencesTo(model)) {
      if (ref.onDelete !== 'CASCADE' && ref.onDelete !== 'SET NULL' && ref.onDelete !== 'SET DEFAULT') continue;
      const values = [...new Set(rows.map((r) => row(r).get(ref.key, { raw: true })).filter((v) => v != null))];
      if (values.length === 0) continue;
      const unknown = () => readDependents(ref.model, [ref.model, ...referencingClosure(ref.model)].flatMap((m) => unknownWriteTags(tableOf(m))));
      if (depth >= MAX_CASCADE_DEPTH || values.length > this.#settings.maxRows) {
        out.push(unknown());
        continue;
      }
      // The rows pointing at the deleted ones go, whichever they are by then: one another
      // connection adds after the read below and before the delete is named by its key, and the
      // lists that may show it by the table's list tag.
      const field = ref.model.rawAttributes[ref.attribute]?.field ?? ref.attribute;
      const table = tableOf(ref.model);
      out.push(readDependents(ref.model, [listTag(table), ...values.map((v) => keyTag(table, { [field]: v })).filter((tag): tag is string => tag !== undefined)]));
      const children: Model[] = [];
      for (let i = 0; i < values.length && children.length <= this.#settings.maxRows; i += CHUNK) {
        children.push(...(await this.#find(ref.model, { [ref.attribute]: { [this.#op.in]: values.slice(i, i + CHUNK) } }, t, true)));
      }
      if (children.length > this.#settings.maxRows) {
        out.push(unknown());
        continue;
      }
      if (children.length === 0) continue;
      out.push(readDependents(ref.model, writeTags(tableOf(ref.model), writtenRows(ref.model, children, this.#dialect))));
      if (ref.onDelete === 'CASCADE') out.push(...(await this.#cascade(ref.model, children, t, depth + 1)));
    }
    return out;
  }

  /** The write's transaction: its own option, else the CLS namespace's (`Sequelize.useCLS()`), as Sequelize does. */
  #transactionOf(options: WriteOptions | undefined): Transaction | undefined {
    if (options?.transaction !== undefined) return options.transaction ?? undefined;
    const cls = (this.#sequelize.constructor as unknown as { _cls?: { get(key: string): unknown } })._cls;
    return (cls?.get('transaction') as Transaction | null | undefined) ?? undefined;
  }

  // ---------------------------------------------------------------- invalidation

  /**
   * Invalidates what a write changed now and, inside a transaction, again after the outermost one
   * commits. `compute` resolves a string when the rows cannot be told (why): then every page
   * goes. An error (a `dependentPaths()` that returns a string) also invalidates every page,
   * since the write has happened, and is rethrown to the writer.
   */
  async #settle(model: ModelInfo, t: Transaction | undefined, what: string, compute: () => Promise<Dependents[] | string>, hardDelete = false): Promise<void> {
    let deps: Dependents[] | string;
    try {
      deps = await compute();
    } catch (error) {
      await this.#fallback(model, t, `${what} (${(error as Error)?.message ?? String(error)})`, hardDelete);
      throw error;
    }
    if (typeof deps === 'string') return this.#fallback(model, t, `${what} (${deps})`, hardDelete);
    if (deps.length === 0) return;
    await this.#dumper.invalidateDependents(deps);
    if (t !== undefined) this.#record(t, deps);
  }

  /**
   * A write whose rows are unknown. With `trackReads`, for a model that is not registered (nor a
   * junction model with a registered side), everything read from its table, and for a delete from
   * every table whose rows the database may delete or change with it; else every page.
   */
  async #fallback(model: ModelInfo, t: Transaction | undefined, what: string, hardDelete: boolean): Promise<void> {
    if (this.#settings.reads !== undefined && this.#modelOf(model) === undefined && !sidesOf(model).some((s) => this.#modelOf(s.model) !== undefined)) {
      const tables = [model, ...(hardDelete ? referencingClosure(model) : [])];
      const under = (await this.#reads?.underlying(model, t)) ?? [];
      const deps = [readDependents(model, [...tables.flatMap((m) => unknownWriteTags(tableOf(m))), ...under.flatMap((table) => unknownWriteTags(table))])];
      if (this.#dumper.log.debugEnabled) {
        this.#dumper.log.debug(`sequelize: cannot tell which rows ${what} changed; invalidating what pages read from its tables`, { tables: tables.map(tableOf) });
      }
      await this.#dumper.invalidateDependents(deps);
      if (t !== undefined) this.#record(t, deps);
      return;
    }
    this.#dumper.log.warn(`sequelize: cannot tell which rows ${what} changed; invalidating every page`, {});
    await this.#dumper.invalidateAll();
    if (t !== undefined) this.#record(t, ALL);
  }

  /** Keeps an invalidation to make again when the outermost transaction commits. */
  #record(t: Transaction, entry: Entry): void {
    const root = rootOf(t);
    let state = this.#transactions.get(root);
    if (state === undefined) {
      state = { entries: [] };
      this.#transactions.set(root, state);
      // Sequelize runs afterCommit callbacks once the COMMIT is done (a savepoint's "commit" is
      // no COMMIT, so they go on the outermost transaction), and awaits them before commit()
      // resolves: a managed transaction resolves after the pages are invalidated again.
      root.afterCommit(() => this.#committed(root));
    }
    state.entries.push({ transaction: t, entry });
    if (this.#settings.invalidateOnRollback) {
      for (let x: Transaction | undefined = t; x !== undefined; x = (x as TransactionInfo).parent) this.#onRollback(x, root);
    }
  }

  async #committed(root: Transaction): Promise<void> {
    const state = this.#transactions.get(root);
    this.#transactions.delete(root);
    if (this.#closed || state === undefined) return;
    // Sequelize calls this even when the COMMIT failed. Refused by the database (a deferred
    // constraint, a serialization failure): nothing was committed, as for a rollback. Failed on
    // the way (a timeout, a lost connection): it may have been committed, so invalidate again.
    if (this.#refused.has(root)) {
      if (this.#settings.invalidateOnRollback) await this.#replay(state.entries.map((e) => e.entry), 'after the rollback');
      return;
    }
    // A savepoint rolled back took its writes with it: theirs need no second invalidation.
    const kept = state.entries.filter((e) => !rolledBack(e.transaction, root)).map((e) => e.entry);
    await this.#replay(kept, 'after the commit');
  }

  /**
   * On a connection that readers share (SQLite in memory), a page rendered during the transaction
   * may show rows that a rollback undoes: Sequelize has no rollback hook, so `rollback()` of each
   * transaction that wrote is wrapped, on that transaction object only.
   */
  #onRollback(t: Transaction, root: Transaction): void {
    if (this.#rollbackWrapped.has(t)) return;
    this.#rollbackWrapped.add(t);
    const original = t.rollback;
    const self = this;
    Object.defineProperty(t, 'rollback', {
      configurable: true,
      writable: true,
      value: async function rollback(this: Transaction) {
        try {
          return await original.call(this);
        } finally {
          const state = self.#transactions.get(root);
          const undone = state?.entries.filter((e) => within(e.transaction, t)).map((e) => e.entry) ?? [];
          if (t === root) self.#transactions.delete(root);
          if (!self.#closed) await self.#replay(undone, 'after the rollback');
        }
      },
    });
  }

  async #replay(entries: readonly Entry[], when: string): Promise<void> {
    if (entries.length === 0) return;
    try {
      if (entries.includes(ALL)) await this.#dumper.invalidateAll();
      else await this.#dumper.invalidateDependents((entries as Dependents[][]).flat());
    } catch (error) {
      // The transaction has ended: failing its commit would not undo it.
      this.#dumper.log.error(`sequelize: invalidating ${when} failed`, { error: error as Error });
    }
  }
}

/** Tags to invalidate, in the shape `invalidateDependents()` and the transaction buffers take. */
function readDependents(model: ModelInfo, tags: readonly string[]): Dependents {
  return { model: model.name, paths: [], tags };
}

/** A foreign key of `model` (its `attribute`) that references `key` of another model's rows. */
interface Reference {
  readonly model: ModelInfo;
  readonly attribute: string;
  /** The referenced attribute of the parent. */
  readonly key: string;
  /** `CASCADE`, `SET NULL`, ... upper case; `undefined` when none is declared. */
  readonly onDelete: string | undefined;
}

type ReferencingAttribute = { readonly field?: string; readonly references?: { readonly model?: unknown; readonly key?: string } | string; readonly onDelete?: string };

/** The foreign keys, in every model of the instance, that reference rows of `parent` (as Sequelize declares them in the tables). */
function referencesTo(parent: ModelInfo): Reference[] {
  const out: Reference[] = [];
  const table = parent.tableName;
  for (const m of Object.values(parent.sequelize.models) as unknown as ModelInfo[]) {
    for (const [attribute, definition] of Object.entries(m.rawAttributes as Record<string, ReferencingAttribute>)) {
      const ref = definition.references;
      if (ref == null) continue;
      const target = typeof ref === 'string' ? ref : ref.model;
      const name = typeof target === 'string' ? target : (target as { tableName?: unknown } | undefined)?.tableName;
      if (name !== table && target !== parent) continue;
      const keyField = (typeof ref === 'object' ? ref.key : undefined) ?? parent.primaryKeyAttributes[0];
      if (keyField === undefined) continue;
      const key = Object.hasOwn(parent.rawAttributes, keyField) ? keyField : (parent.fieldRawAttributesMap?.[keyField]?.fieldName ?? keyField);
      out.push({ model: m, attribute, key, onDelete: definition.onDelete?.toUpperCase() });
    }
  }
  return out;
}

/** Every model whose rows reference `model`'s, directly or through others (what a TRUNCATE ... CASCADE reaches). */
function referencingClosure(model: ModelInfo): ModelInfo[] {
  const seen = new Set<ModelInfo>([model]);
  const queue = [model];
  while (queue.length > 0) {
    for (const ref of referencesTo(queue.shift()!)) {
      if (seen.has(ref.model)) continue;
      seen.add(ref.model);
      queue.push(ref.model);
    }
  }
  seen.delete(model);
  return [...seen];
}

/** The model class of an instance (the class it was built by: a scoped copy extends the model). */
function ownModel(instance: Model): ModelInfo {
  return info(instance.constructor as unknown as ModelInfo);
}

function concat(a: readonly Dependents[], b: Dependents[] | string): Dependents[] | string {
  return typeof b === 'string' ? b : [...a, ...b];
}

/** What a before-hook keeps: the rows and their pages, or why they cannot be told. */
function pending(rows: readonly Model[], before: Dependents[] | string): Pending {
  return typeof before === 'string' ? { rows, before: [], unresolved: before } : { rows, before };
}

/**
 * Whether a failed COMMIT was answered by the database with an error that means the transaction
 * was rolled back: an integrity constraint violation (SQLSTATE class 23: a deferred foreign key)
 * or a transaction rollback (class 40: a serialization failure, a deadlock) on PostgreSQL,
 * MySQL and MariaDB, a constraint on SQLite. Anything else (no answer, a lost connection, a
 * timeout, an error of another kind) leaves the outcome unknown: false, and the commit is
 * treated as done.
 */
export function refusedByServer(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const wrapped = error as { parent?: unknown; original?: unknown };
  const cause = (wrapped.parent ?? wrapped.original ?? error) as { code?: unknown; sqlState?: unknown; severity?: unknown; fatal?: unknown } | null;
  if (cause === null || typeof cause !== 'object' || cause.fatal === true) return false;
  const rolledBackClass = (state: string) => /^(23|40)[0-9A-Z]{3}$/.test(state);
  // node-postgres: `severity` is set only on an error the server sent.
  if (typeof cause.severity === 'string' && typeof cause.code === 'string') return rolledBackClass(cause.code);
  // mysql2, mariadb: the server's SQLSTATE.
  if (typeof cause.sqlState === 'string') return rolledBackClass(cause.sqlState);
  // sqlite3: SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_FOREIGNKEY, ...
  return typeof cause.code === 'string' && cause.code.startsWith('SQLITE_CONSTRAINT');
}

/** Whether `t` is `ancestor` or a savepoint inside it. */
function within(t: Transaction, ancestor: Transaction): boolean {
  for (let x: Transaction | undefined = t; x !== undefined; x = (x as TransactionInfo).parent) if (x === ancestor) return true;
  return false;
}

/** Whether `t`, or a savepoint between it and `root`, was rolled back. */
function rolledBack(t: Transaction, root: Transaction): boolean {
  for (let x: Transaction | undefined = t; x !== undefined && x !== root; x = (x as TransactionInfo).parent) {
    if ((x as TransactionInfo).finished === 'rollback') return true;
  }
  return false;
}
