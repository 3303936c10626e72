/**
 * Turns one Prisma write into the rows whose pages it changes, and invalidates them.
 *
 * A write is handled in three steps:
 * 1. Before it runs, the rows it will change are read (by its `where`, inside its transaction)
 *    with the relations its nested writes touch, and their dependents are computed: after a
 *    delete or a `disconnect` nothing is left to tell which pages showed them.
 * 2. The write runs.
 * 3. The rows are read again by primary key, and every row that is new, gone, changed, moved
 *    (connected, disconnected) or whose relation gained or lost a row is invalidated, with the
 *    dependents it had before and the ones it has now. In a batch `$transaction([...])` this
 *    step waits for the batch to commit.
 *
 * Only rows of registered models are invalidated, but rows of other models are read when the
 * relations of a write lead through them to registered ones. A write that touches no registered
 * model runs as it would without the extension.
 */
import type { Dependents, Dumper } from '../../core/dumper.js';
import { linkTags, unknownWriteTags, writeTags, type KeyValues, type WrittenRow } from '../reads.js';
import { junctionKey, junctionOf } from './reads.js';
import type { ModelInfo } from './schema.js';

type Row = Record<string, unknown>;

/** Relation fields to read with a row, each with the relations to read below it. */
type Tree = Map<string, Tree>;

/** The part of a model delegate (`prisma.iceCream`) that the extension reads through. */
interface Delegate {
  findUnique(args: object): PromiseLike<Row | null>;
  findMany(args: object): PromiseLike<Row[]>;
}

/** A client or a transaction client: model delegates by name. */
export type Reader = Record<string, unknown>;

/** The writes of one transaction, invalidated again when the outermost transaction commits. */
export interface Scope {
  /** The interactive transaction's client; `undefined` for a batch `$transaction([...])`. */
  tx: Reader | undefined;
  /** The enclosing transaction of a nested one: its writes commit (or not) with that one. */
  readonly parent: Scope | undefined;
  readonly pending: Dependents[];
  /** A write fell back to dropping every page. */
  all: boolean;
  /** The writes of a batch, finished once it has committed. */
  readonly deferred: Array<{ readonly finish: () => Promise<Outcome>; readonly model: string; readonly operation: string }>;
}

/** Why the rows of a write cannot be known: every page is invalidated instead. */
export class Fallback {
  /** `models`: the models whose rows the write may have changed, when known. */
  constructor(
    readonly reason: string,
    readonly models?: readonly ModelInfo[],
  ) {}
}

/** What a write invalidates: the dependents of the rows it changed, or everything. */
export type Outcome = Dependents[] | Fallback;

const UNIDENTIFIED = new Fallback('a row came back without its primary key (is it omitted globally?)');

function fallback(reason: string, models?: readonly ModelInfo[]): () => Promise<Outcome> {
  return async () => new Fallback(reason, models);
}

export interface WriteContext {
  /** Where to read rows: the transaction's client inside one, else the client itself. */
  readonly reader: Reader;
  /** The transaction the write belongs to, if any. */
  readonly scope: Scope | undefined;
}

export interface WriteSettings {
  readonly include: ReadonlyMap<string, Readonly<Row>>;
  readonly maxRows: number;
  /** `trackReads`: every model's writes invalidate the tags its reads put on pages. */
  readonly trackReads: boolean;
}

/** A row that a nested `connect` (or `set`, `connectOrCreate`) may take away from another owner. */
interface Target {
  readonly model: ModelInfo;
  readonly where: Row;
  /** The field of the connected row that points to its one owner. */
  readonly back: string;
}

interface Seen {
  readonly model: ModelInfo;
  readonly row: Row;
  /** Where the row was found: its parent's key and the relation field, or one of the markers below. */
  readonly edges: Set<string>;
  /** Invalidated whatever the comparison says: the written rows themselves. */
  always: boolean;
}

const TOP = '\u0000top';
const TARGET = '\u0000target';
/** Between the parent's key and the field in an edge: `${parentKey}${FIELD}${field}`. */
const FIELD = '\u0002';

class Snapshot {
  readonly rows = new Map<string, Seen>();
  /** A row came back without its primary key (a global `omit`): rows cannot be compared. */
  incomplete = false;
}

const SINGLE = new Set(['create', 'update', 'upsert', 'delete']);
const BULK = new Set(['updateMany', 'updateManyAndReturn', 'deleteMany']);
const CREATE_MANY = new Set(['createMany', 'createManyAndReturn']);
const LOGICAL = new Set(['AND', 'OR', 'NOT']);

export function isPlain(value: unknown): value is Row {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function each(value: unknown): Row[] {
  return (Array.isArray(value) ? value : [value]).filter(isPlain);
}

/** A comparable spelling of a column value (Date, Decimal, Buffer, BigInt and JSON included). */
function valueKey(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  switch (typeof value) {
    case 'string':
      return `s${value}`;
    case 'number':
      return `n${value}`;
    case 'boolean':
      return `t${value}`;
    case 'bigint':
      return `b${value}`;
  }
  if (value instanceof Date) return `d${value.getTime()}`;
  if (value instanceof Uint8Array) return `u${Buffer.from(value).toString('base64')}`;
  if (Array.isArray(value)) return `[${value.map(valueKey).join(',')}]`;
  if (!isPlain(value)) return `o${String(value)}`; // Decimal and other value classes print their value
  return `j${JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`;
}

/** The row's columns only (a write's own `include` may have added relations). */
function columns(model: ModelInfo, row: Row): Row {
  const out: Row = {};
  for (const f of model.scalars) out[f] = row[f];
  return out;
}

function idKey(model: ModelInfo, row: Row): string | undefined {
  let key = model.name;
  for (const f of model.id!) {
    if (row[f] === undefined) return undefined;
    key += `\u0001${valueKey(row[f])}`;
  }
  return key;
}

/** A `where` that finds rows by primary key. */
function byIds(model: ModelInfo, rows: readonly Row[]): Row {
  const id = model.id!;
  if (id.length === 1) return { [id[0]!]: { in: rows.map((r) => r[id[0]!]) } };
  return { OR: rows.map((r) => Object.fromEntries(id.map((f) => [f, r[f]]))) };
}

/**
 * A unique `where` as a filter `findMany` accepts: a compound key (`slug_lang: { slug, lang }`)
 * is spread into its fields.
 */
function asFilter(model: ModelInfo, where: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(where)) {
    if (!model.scalars.includes(k) && !model.relations.has(k) && !LOGICAL.has(k) && isPlain(v)) Object.assign(out, v);
    else out[k] = v;
  }
  return out;
}

/** The data of a nested `update`: `{ where, data }` on a list, the data itself (or `{ data }`) on a single row. */
function updateData(item: Row): unknown {
  const keys = Object.keys(item);
  return 'data' in item && keys.every((k) => k === 'data' || k === 'where') ? item.data : item;
}

/** Makes sure a write returns the primary key even under `select` or `omit`, and takes it out again. */
function withIds(model: ModelInfo, args: Row): { args: Row; strip(result: unknown): void } {
  const id = model.id!;
  let added: string[] = [];
  let next = args;
  if (isPlain(args.select)) {
    const select = args.select;
    added = id.filter((f) => select[f] !== true);
    if (added.length > 0) next = { ...args, select: { ...select, ...Object.fromEntries(added.map((f) => [f, true])) } };
  } else if (isPlain(args.omit)) {
    const omit = args.omit;
    added = id.filter((f) => omit[f] === true);
    if (added.length > 0) next = { ...args, omit: { ...omit, ...Object.fromEntries(added.map((f) => [f, false])) } };
  }
  return {
    args: next,
    strip(result) {
      if (added.length === 0) return;
      for (const row of Array.isArray(result) ? result : [result]) {
        if (row !== null && typeof row === 'object') for (const f of added) delete (row as Row)[f];
      }
    },
  };
}

export class Writes {
  readonly #dumper: Dumper;
  readonly #models: ReadonlyMap<string, ModelInfo>;
  readonly #include: ReadonlyMap<string, Readonly<Row>>;
  readonly #maxRows: number;
  readonly #trackReads: boolean;

  constructor(dumper: Dumper, models: ReadonlyMap<string, ModelInfo>, settings: WriteSettings) {
    this.#dumper = dumper;
    this.#models = models;
    this.#include = settings.include;
    this.#maxRows = settings.maxRows;
    this.#trackReads = settings.trackReads;
  }

  /** Whether a write of these models invalidates anything: one is registered, or reads are tracked. */
  #watched(models: readonly ModelInfo[]): boolean {
    return this.#trackReads || models.some((x) => this.#dumper.isRegistered(x.name));
  }

  /** Runs one top-level operation of a model, invalidating around it if it writes. */
  handle(model: string, operation: string, args: Row, query: (args: Row) => Promise<unknown>, context: () => WriteContext, dataPath?: readonly unknown[]): Promise<unknown> {
    const m = this.#models.get(model);
    if (m === undefined) return query(args);
    if (SINGLE.has(operation)) return this.#single(m, operation, args, query, context(), dataPath !== undefined && dataPath.length > 0);
    if (BULK.has(operation)) return this.#bulk(m, operation, args, query, context());
    if (CREATE_MANY.has(operation)) return this.#createMany(m, operation, args, query, context());
    return query(args);
  }

  /**
   * A transaction resolved: its writes go to the enclosing transaction, or are invalidated again
   * (in one store call). A batch's writes are invalidated here only: Prisma hands each query of a
   * batch its result before it knows whether the batch commits.
   */
  async settle(scope: Scope): Promise<void> {
    for (const write of scope.deferred.splice(0)) this.#record(await write.finish(), write.model, write.operation, scope);
    if (scope.parent !== undefined) {
      scope.parent.pending.push(...scope.pending);
      if (scope.all) scope.parent.all = true;
      return;
    }
    if (scope.all) await this.#dumper.invalidateAll();
    else if (scope.pending.length > 0) await this.#dumper.invalidateDependents(scope.pending);
  }

  // ---------------------------------------------------------------- the three kinds of write

  /** create, update, upsert, delete: one row, and the rows its nested writes touch. */
  /**
   * `fluent`: the write was called fluently (`update({ where, data }).author()`): Prisma hands back
   * the related rows, not the written one, which is then found again by its key before the write,
   * and by the unique fields its data and `where` set.
   */
  async #single(m: ModelInfo, operation: string, args: Row, query: (args: Row) => Promise<unknown>, ctx: WriteContext, fluent: boolean) {
    const tree: Tree = new Map();
    const targets: Target[] = [];
    if (operation === 'upsert') {
      this.#plan(m, args.create, tree, targets);
      this.#plan(m, args.update, tree, targets);
    } else if (operation === 'delete') {
      this.#joinTables(m, tree);
      this.#owners(m, undefined, tree);
    } else {
      this.#plan(m, args.data, tree, targets);
    }
    const models = this.#modelsOf(m, tree, targets);
    if (!this.#watched(models)) return query(args);
    const unknown = models.find((x) => x.id === undefined);
    if (unknown !== undefined) return this.#done(await query(args), fallback(`model ${unknown.name} has no primary key page-dumper can read`, models), m, operation, ctx);

    const include = this.#includeFor(m, tree);
    const before = new Snapshot();
    if (operation !== 'create') {
      const row = await this.#delegate(ctx, m).findUnique({ where: args.where, include });
      if (row !== null) this.#collect(before, m, row, tree, TOP, true);
    }
    await this.#readTargets(ctx, targets, before);
    const early = before.incomplete ? new Map<string, Dependents>() : await this.#dependents(before);

    if (fluent && operation !== 'delete') {
      const wheres: Row[] = [];
      const found = [...before.rows.values()].filter((r) => r.model === m && r.edges.has(TOP)).map((r) => r.row);
      if (found.length > 0) wheres.push(byIds(m, found));
      for (const data of operation === 'upsert' ? [args.create, args.update] : [args.data]) {
        const unique = isPlain(data) ? this.#uniqueWhere(m, data) : undefined;
        if (unique !== undefined) wheres.push(unique);
      }
      if (isPlain(args.where)) wheres.push(asFilter(m, args.where));
      const result = await query(args);
      if (wheres.length === 0) return this.#done(result, fallback('it is a fluent create whose data sets no unique field, so its row cannot be found again', models), m, operation, ctx);
      return this.#done(
        result,
        async () => {
          const after = new Snapshot();
          for (const r of await this.#delegate(ctx, m).findMany({ where: { OR: wheres }, include })) this.#collect(after, m, r, tree, TOP, true);
          return before.incomplete || after.incomplete ? UNIDENTIFIED : this.#changes(before, early, after, hasNestedRows(m, args, this.#models));
        },
        m,
        operation,
        ctx,
      );
    }
    const ids = operation === 'delete' ? undefined : withIds(m, args);
    const result = await query(ids?.args ?? args);
    const written = ids !== undefined && result !== null && typeof result === 'object' ? { ...(result as Row) } : undefined;
    ids?.strip(result);
    return this.#done(
      result,
      async () => {
        const after = new Snapshot();
        if (written !== undefined) {
          const complete = tree.size === 0 && !this.#include.has(m.name) && m.scalars.every((f) => f in written);
          const rows = complete ? [columns(m, written)] : idKey(m, written) === undefined ? [] : await this.#delegate(ctx, m).findMany({ where: byIds(m, [written]), include });
          if (rows.length === 0) after.incomplete = true;
          for (const r of rows) this.#collect(after, m, r, tree, TOP, true);
        }
        return before.incomplete || after.incomplete ? UNIDENTIFIED : this.#changes(before, early, after, hasNestedRows(m, args, this.#models));
      },
      m,
      operation,
      ctx,
    );
  }

  /** updateMany, updateManyAndReturn, deleteMany: the rows are resolved by their `where` first. */
  async #bulk(m: ModelInfo, operation: string, args: Row, query: (args: Row) => Promise<unknown>, ctx: WriteContext) {
    const tree: Tree = new Map();
    if (operation === 'deleteMany') this.#joinTables(m, tree);
    this.#owners(m, operation === 'deleteMany' ? undefined : args.data, tree);
    const models = this.#modelsOf(m, tree, []);
    if (!this.#watched(models)) return query(args);
    const unknown = models.find((x) => x.id === undefined);
    if (unknown !== undefined) return this.#done(await query(args), fallback(`model ${unknown.name} has no primary key page-dumper can read`, models), m, operation, ctx);
    if (operation !== 'deleteMany' && isPlain(args.data) && m.id!.some((f) => (args.data as Row)[f] !== undefined)) {
      return this.#done(await query(args), fallback('it changes primary keys, so the rows cannot be found again', models), m, operation, ctx);
    }

    const include = this.#includeFor(m, tree);
    // `limit` is left out on purpose: the rows a limited write picks are the database's choice,
    // so all the rows it may pick are invalidated.
    const rows = await this.#delegate(ctx, m).findMany({ where: args.where, include, take: this.#maxRows + 1 });
    if (rows.length > this.#maxRows) {
      return this.#done(await query(args), fallback(`it matches more than ${this.#maxRows} rows (the maxRows option)`, models), m, operation, ctx);
    }
    const before = new Snapshot();
    for (const row of rows) this.#collect(before, m, row, tree, TOP, true);
    const early = before.incomplete ? new Map<string, Dependents>() : await this.#dependents(before);

    const result = await query(args);
    return this.#done(
      result,
      async () => {
        const after = new Snapshot();
        if (operation !== 'deleteMany' && rows.length > 0 && !before.incomplete) {
          const now = await this.#delegate(ctx, m).findMany({ where: byIds(m, rows), include });
          for (const row of now) this.#collect(after, m, row, tree, TOP, true);
        }
        return before.incomplete || after.incomplete ? UNIDENTIFIED : this.#changes(before, early, after);
      },
      m,
      operation,
      ctx,
    );
  }

  /** createMany (found again by the unique keys in its data) and createManyAndReturn (by the rows it returns). */
  async #createMany(m: ModelInfo, operation: string, args: Row, query: (args: Row) => Promise<unknown>, ctx: WriteContext) {
    const data = each(args.data);
    const tree: Tree = new Map();
    for (const row of data) this.#owners(m, row, tree);
    const models = this.#modelsOf(m, tree, []);
    if (!this.#watched(models)) return query(args);
    const unknown = models.find((x) => x.id === undefined);
    if (unknown !== undefined) return this.#done(await query(args), fallback(`model ${unknown.name} has no primary key page-dumper can read`, models), m, operation, ctx);
    const include = this.#includeFor(m, tree);
    const read = async (where: Row): Promise<Outcome> => {
      const after = new Snapshot();
      for (const row of await this.#delegate(ctx, m).findMany({ where, include })) this.#collect(after, m, row, tree, TOP, true);
      return after.incomplete ? UNIDENTIFIED : this.#changes(new Snapshot(), new Map(), after);
    };

    if (operation === 'createManyAndReturn') {
      const ids = withIds(m, args);
      const result = await query(ids.args);
      const returned = (Array.isArray(result) ? result : []).map((row: Row) => ({ ...row }));
      const full = include === undefined && returned.every((row) => m.scalars.every((f) => f in row));
      ids.strip(result);
      return this.#done(
        result,
        async () => {
          if (returned.length === 0) return [];
          if (!full) return read(byIds(m, returned));
          const after = new Snapshot();
          for (const row of returned) this.#collect(after, m, columns(m, row), new Map(), TOP, true);
          return after.incomplete ? UNIDENTIFIED : this.#changes(new Snapshot(), new Map(), after);
        },
        m,
        operation,
        ctx,
      );
    }
    if (data.length > this.#maxRows) {
      return this.#done(await query(args), fallback(`it creates more than ${this.#maxRows} rows (the maxRows option)`, models), m, operation, ctx);
    }
    const wheres = data.map((row) => this.#uniqueWhere(m, row));
    if (wheres.includes(undefined)) {
      const reason = 'a row in its data has no unique field set, so it cannot be found again (use createManyAndReturn, or set a unique field)';
      return this.#done(await query(args), fallback(reason, models), m, operation, ctx);
    }
    const result = await query(args);
    return this.#done(result, async () => (wheres.length === 0 ? [] : read({ OR: wheres })), m, operation, ctx);
  }

  // ---------------------------------------------------------------- reading the write's arguments

  /**
   * Walks the `data` of a create or update: each relation field with nested writes becomes a
   * branch of the tree of rows to read, and each row it connects becomes a target.
   */
  #plan(m: ModelInfo, data: unknown, tree: Tree, targets: Target[]): void {
    if (!isPlain(data)) return;
    this.#owners(m, data, tree);
    for (const [field, value] of Object.entries(data)) {
      const relation = m.relations.get(field);
      if (relation === undefined || !isPlain(value)) continue;
      const child = this.#models.get(relation.model);
      if (child === undefined) continue;
      let branch = tree.get(field);
      if (branch === undefined) tree.set(field, (branch = new Map()));
      // A row connected here may be taken from the one owner it had (its back field is not a
      // list): read it first, with that owner. A row of a many-to-many relation keeps its other
      // owners, and shows up in the relation after the write.
      const back = relation.back !== undefined && !relation.backList ? relation.back : undefined;
      const target = (where: unknown) => {
        if (back !== undefined && isPlain(where)) targets.push({ model: child, where, back });
      };
      for (const [op, arg] of Object.entries(value)) {
        for (const item of each(arg)) {
          switch (op) {
            case 'create':
              this.#plan(child, item, branch, targets);
              break;
            case 'connectOrCreate':
              target(item.where);
              this.#plan(child, item.create, branch, targets);
              break;
            case 'connect':
            case 'set':
              target(item);
              break;
            case 'update':
              this.#plan(child, updateData(item), branch, targets);
              break;
            case 'upsert':
              this.#plan(child, item.create, branch, targets);
              this.#plan(child, item.update, branch, targets);
              break;
            // createMany, updateMany, delete, deleteMany, disconnect: their rows are in the
            // relation before or after the write, so reading it is enough.
          }
        }
      }
    }
  }

  /**
   * The rows this row points to by a foreign key it holds (a note's `simple`): they gain or lose
   * it when the key is written (`data` sets it) or the row is deleted (`data` undefined), whether
   * the write names the relation or sets the key's columns.
   */
  #owners(m: ModelInfo, data: unknown, tree: Tree): void {
    for (const relation of m.relations.values()) {
      if (relation.fields.length === 0 || tree.has(relation.name)) continue;
      if (data === undefined || (isPlain(data) && relation.fields.some((f) => data[f] !== undefined))) tree.set(relation.name, new Map());
    }
  }

  /** Deleting a row removes it from implicit many-to-many relations: the other side changes too. */
  #joinTables(m: ModelInfo, tree: Tree): void {
    for (const relation of m.relations.values()) if (relation.manyToMany) tree.set(relation.name, new Map());
  }

  #modelsOf(m: ModelInfo, tree: Tree, targets: readonly Target[]): ModelInfo[] {
    const out = new Set<ModelInfo>([m]);
    const walk = (model: ModelInfo, branch: Tree) => {
      for (const [field, sub] of branch) {
        const child = this.#models.get(model.relations.get(field)!.model)!;
        out.add(child);
        walk(child, sub);
      }
    };
    walk(m, tree);
    for (const t of targets) out.add(t.model);
    return [...out];
  }

  // ---------------------------------------------------------------- reading rows

  #delegate(ctx: WriteContext, m: ModelInfo): Delegate {
    return ctx.reader[m.delegate] as Delegate;
  }

  /** The `include` for a model's rows: what its `dependentPaths` needs (the include option), and the tree. */
  #includeFor(m: ModelInfo, tree: Tree | undefined): Row | undefined {
    const configured = this.#include.get(m.name);
    if (tree === undefined || tree.size === 0) return configured;
    const include: Row = { ...configured };
    for (const [field, sub] of tree) {
      const nested = this.#includeFor(this.#models.get(m.relations.get(field)!.model)!, sub);
      include[field] = nested === undefined ? true : { include: nested };
    }
    return include;
  }

  async #readTargets(ctx: WriteContext, targets: readonly Target[], into: Snapshot): Promise<void> {
    const groups = new Map<string, { model: ModelInfo; back: string; wheres: Row[] }>();
    for (const t of targets) {
      const key = `${t.model.name}\u0000${t.back}`;
      let group = groups.get(key);
      if (group === undefined) groups.set(key, (group = { model: t.model, back: t.back, wheres: [] }));
      group.wheres.push(asFilter(t.model, t.where));
    }
    for (const { model, back, wheres } of groups.values()) {
      const tree: Tree = new Map([[back, new Map()]]);
      const rows = await this.#delegate(ctx, model).findMany({ where: { OR: wheres }, include: this.#includeFor(model, tree) });
      for (const row of rows) this.#collect(into, model, row, tree, TARGET, true);
    }
  }

  /** Records a row and, below it, the rows of the tree's relations. */
  #collect(snapshot: Snapshot, m: ModelInfo, row: Row, tree: Tree, edge: string, always: boolean): void {
    const key = idKey(m, row);
    if (key === undefined) {
      snapshot.incomplete = true;
      return;
    }
    let seen = snapshot.rows.get(key);
    if (seen === undefined) snapshot.rows.set(key, (seen = { model: m, row: this.#view(m, row, tree), edges: new Set(), always: false }));
    seen.edges.add(edge);
    if (always) seen.always = true;
    for (const [field, sub] of tree) {
      const child = this.#models.get(m.relations.get(field)!.model)!;
      const value = row[field];
      for (const r of Array.isArray(value) ? value : value == null ? [] : [value]) {
        if (r !== null && typeof r === 'object') this.#collect(snapshot, child, r as Row, sub, `${key}${FIELD}${field}`, false);
      }
    }
  }

  /**
   * The row as `dependentPaths` sees it: its columns and the relations of the include option,
   * whatever relations this write read besides, so that its shape does not depend on the write.
   */
  #view(m: ModelInfo, row: Row, tree: Tree): Row {
    const configured = this.#include.get(m.name);
    let view = row;
    for (const field of tree.keys()) {
      if (configured !== undefined && field in configured) continue;
      if (view === row) view = { ...row };
      delete view[field];
    }
    return view;
  }

  /** A unique `where` for a row of createMany's data, from the first unique key it sets. */
  #uniqueWhere(m: ModelInfo, data: Row): Row | undefined {
    for (const fields of m.uniques) {
      if (fields.every((f) => data[f] !== undefined && data[f] !== null && !isPlain(data[f]))) {
        return Object.fromEntries(fields.map((f) => [f, data[f]]));
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------- invalidating

  /** The dependents of every registered row of a snapshot, computed while the rows still exist. */
  async #dependents(snapshot: Snapshot): Promise<Map<string, Dependents>> {
    const out = new Map<string, Dependents>();
    const rows = [...snapshot.rows].filter(([, s]) => this.#dumper.isRegistered(s.model.name));
    const computed = await Promise.all(rows.map(([, s]) => this.#dumper.dependentsOf(s.model.name, s.row)));
    rows.forEach(([key], i) => out.set(key, computed[i]!));
    return out;
  }

  /** Whether an edge leads from a parent to a child that holds the foreign key (one-to-many, the back of a one-to-one). */
  #childEdge(edge: string, before: Snapshot, after: Snapshot): boolean {
    const cut = edge.lastIndexOf(FIELD);
    if (cut === -1) return false;
    const parent = before.rows.get(edge.slice(0, cut)) ?? after.rows.get(edge.slice(0, cut));
    const relation = parent?.model.relations.get(edge.slice(cut + 1));
    // An unknown parent or relation: count it as written.
    return relation === undefined || (relation.fields.length === 0 && !relation.manyToMany);
  }

  /** The dependents to invalidate: of the rows before the write (computed then) and after it. */
  async #changes(before: Snapshot, early: ReadonlyMap<string, Dependents>, after: Snapshot, nested = false): Promise<Dependents[]> {
    // A row whose relation gained or lost a row changed too, even if its columns did not.
    const owners = new Set<string>();
    const lost = (from: Snapshot, to: Snapshot) => {
      for (const [key, seen] of from.rows) {
        const other = to.rows.get(key);
        for (const edge of seen.edges) {
          const cut = edge.lastIndexOf(FIELD);
          if (cut !== -1 && !other?.edges.has(edge)) owners.add(edge.slice(0, cut));
        }
      }
    };
    lost(before, after);
    lost(after, before);
    const list: Dependents[] = [];
    for (const [key, b] of before.rows) {
      const d = early.get(key);
      if (d !== undefined && (owners.has(key) || changed(b, after.rows.get(key)))) list.push(d);
    }
    const late = [...after.rows]
      .filter(([key, a]) => this.#dumper.isRegistered(a.model.name) && (owners.has(key) || changed(a, before.rows.get(key))))
      .map(([, a]) => this.#dumper.dependentsOf(a.model.name, a.row));
    list.push(...(await Promise.all(late)));
    if (this.#trackReads) list.push(...this.#readChanges(before, after, nested));
    return list;
  }

  /**
   * With `trackReads`, the tags of what the write changed (see ../reads.ts): each row that is new,
   * gone or whose columns changed, as it was and as it is (its row, unique and foreign
   * keys, and its model's list); each implicit many-to-many link added or removed (the join
   * table's keys of both rows); and, for a row gone (deleted), everything read from the models
   * whose rows point at it, which the database may delete or change with it (`onDelete`), and,
   * through each `onDelete: Cascade`, from what those deletions reach in turn (`#cascade`).
   *
   * A row read on one side only is new or gone when it was written (the write's own rows), or
   * reached as a child holding a foreign key (created, deleted, connected, disconnected). Reached
   * otherwise (the row a foreign key points at, the other side of a link) it was only read, unless
   * the write has nested creates or deletes (`nested`): then it may be one of theirs.
   */
  #readChanges(before: Snapshot, after: Snapshot, nested: boolean): Dependents[] {
    const out: Dependents[] = [];
    const byModel = new Map<ModelInfo, WrittenRow[]>();
    const add = (seen: Seen) => {
      let rows = byModel.get(seen.model);
      if (rows === undefined) byModel.set(seen.model, (rows = []));
      rows.push(writtenRow(seen.model, seen.row));
    };
    /** Links added or removed, by join table: the join table's key of each side. */
    const links = new Map<string, Array<readonly { key: KeyValues }[]>>();
    const edges = (from: Snapshot, to: Snapshot) => {
      for (const [key, seen] of from.rows) {
        const other = to.rows.get(key);
        for (const edge of seen.edges) {
          const cut = edge.lastIndexOf(FIELD);
          if (cut === -1 || other?.edges.has(edge)) continue;
          const parent = before.rows.get(edge.slice(0, cut)) ?? after.rows.get(edge.slice(0, cut));
          const relation = parent?.model.relations.get(edge.slice(cut + 1));
          if (parent === undefined || relation === undefined || !relation.manyToMany) continue;
          const back = relation.back === undefined ? undefined : seen.model.relations.get(relation.back);
          const a = junctionKey(parent.model, relation, parent.row);
          const b = back === undefined ? undefined : junctionKey(seen.model, back, seen.row);
          const table = junctionOf(parent.model, relation);
          if (a === undefined || b === undefined) {
            out.push(tagsOf(table, unknownWriteTags(table)));
            continue;
          }
          let list = links.get(table);
          if (list === undefined) links.set(table, (list = []));
          list.push([{ key: a }, { key: b }]);
        }
      }
    };
    edges(before, after);
    edges(after, before);
    for (const [table, list] of links) out.push(tagsOf(table, linkTags(table, list)));
    const written = (seen: Seen) => nested || seen.always || [...seen.edges].some((edge) => this.#childEdge(edge, before, after));
    for (const [key, b] of before.rows) {
      const a = after.rows.get(key);
      if (a === undefined) {
        if (!written(b)) continue;
        add(b);
        out.push(...this.#cascade(b.model, new Set([b.model.name])));
      } else if (columnsChanged(b, a)) {
        // A row on both sides changed only if its columns did (a written row too): what its
        // relations gained or lost is the links' and the children's business.
        add(b);
        add(a);
        out.push(...this.#rekeyed(b, a));
      }
    }
    for (const [key, a] of after.rows) if (!before.rows.has(key) && written(a)) add(a);
    for (const [model, rows] of byModel) out.push(tagsOf(model.name, writeTags(model.name, rows)));
    return out;
  }

  /**
   * What a delete of rows of `m` may change in the database besides them: every model whose rows
   * point at them (deleted, set to null, or set to their default by `onDelete`), and, through each
   * `onDelete: Cascade`, what the deletion of those rows changes in turn, at any depth, with the
   * implicit many-to-many links of the rows deleted so. Everything read from those models and
   * join tables: their rows are not read.
   */
  #cascade(m: ModelInfo, seen: Set<string>, deleted = false): Dependents[] {
    const out: Dependents[] = [];
    for (const relation of m.relations.values()) {
      if (relation.manyToMany) {
        // The links of the deleted row itself are read before and after the write.
        if (deleted) out.push(tagsOf(junctionOf(m, relation), unknownWriteTags(junctionOf(m, relation))));
        continue;
      }
      if (relation.fields.length > 0) continue;
      out.push(tagsOf(relation.model, unknownWriteTags(relation.model)));
      const child = this.#models.get(relation.model);
      if (child === undefined || relation.onDelete !== 'Cascade' || seen.has(child.name)) continue;
      seen.add(child.name);
      out.push(...this.#cascade(child, seen, true));
    }
    return out;
  }

  /**
   * A row whose fields that other rows point at changed (its primary key, or a unique field a
   * relation references): the database changes those rows with it (`onUpdate`, Cascade by
   * default) or refuses. Everything read from the models and join tables that point at it.
   */
  #rekeyed(b: Seen, a: Seen): Dependents[] {
    const out: Dependents[] = [];
    const moved = (fields: readonly string[] | undefined) => fields === undefined || fields.some((f) => valueKey(b.row[f]) !== valueKey(a.row[f]));
    for (const relation of b.model.relations.values()) {
      if (relation.manyToMany) {
        if (moved(b.model.id)) out.push(tagsOf(junctionOf(b.model, relation), unknownWriteTags(junctionOf(b.model, relation))));
        continue;
      }
      if (relation.fields.length > 0) continue;
      const back = relation.back === undefined ? undefined : this.#models.get(relation.model)?.relations.get(relation.back);
      const referenced = back !== undefined && back.references.length > 0 ? back.references : b.model.id;
      if (moved(referenced)) out.push(tagsOf(relation.model, unknownWriteTags(relation.model)));
    }
    return out;
  }

  /**
   * The write has run: invalidate now (and, in an interactive transaction, again at its commit),
   * or, in a batch, once the batch has committed.
   */
  async #done<T>(result: T, finish: () => Promise<Outcome>, m: ModelInfo, operation: string, ctx: WriteContext): Promise<T> {
    const scope = ctx.scope;
    if (scope !== undefined && scope.tx === undefined) {
      scope.deferred.push({ finish, model: m.name, operation });
      return result;
    }
    const outcome = this.#narrow(await finish(), m, describe(m, operation));
    if (outcome instanceof Fallback) await this.#dumper.invalidateAll();
    else if (outcome.length > 0) await this.#dumper.invalidateDependents(outcome);
    if (scope !== undefined) this.#record(outcome, m.name, operation, scope);
    else if (outcome instanceof Fallback) this.#warn(outcome, m.name, operation);
    return result;
  }

  /**
   * With `trackReads`, a write whose rows are unknown, of models none of which is registered,
   * invalidates everything read from those models instead of every page.
   */
  #narrow(outcome: Outcome, m: ModelInfo, what: string): Outcome {
    if (!(outcome instanceof Fallback) || !this.#trackReads) return outcome;
    const models = outcome.models ?? [m];
    if (models.some((x) => this.#dumper.isRegistered(x.name))) return outcome;
    if (this.#dumper.log.debugEnabled) this.#dumper.log.debug(`prisma ${what}: ${outcome.reason}; invalidating what pages read from ${models.map((x) => x.name).join(', ')}`, {});
    const out: Dependents[] = [];
    for (const x of models) {
      out.push(tagsOf(x.name, unknownWriteTags(x.name)));
      for (const relation of x.relations.values()) if (relation.manyToMany) out.push(tagsOf(x.name, unknownWriteTags(junctionOf(x, relation))));
      // Its rows are unknown, so may be deleted ones: what the database changes with them too.
      out.push(...this.#cascade(x, new Set([x.name])));
    }
    return out;
  }

  /** Keeps an outcome for the transaction's commit. */
  #record(outcome: Outcome, model: string, operation: string, scope: Scope): void {
    outcome = this.#narrow(outcome, this.#models.get(model)!, `${model}.${operation}`);
    if (outcome instanceof Fallback) {
      this.#warn(outcome, model, operation);
      scope.all = true;
    } else {
      scope.pending.push(...outcome);
    }
  }

  #warn(outcome: Fallback, model: string, operation: string): void {
    this.#dumper.log.warn(`prisma ${model}.${operation}: ${outcome.reason}; invalidating every page`, { model, operation });
  }
}

/** Whether a row must be invalidated: it was written, or is new, gone, changed or moved. */
function changed(seen: Seen, other: Seen | undefined): boolean {
  if (seen.always || other === undefined) return true;
  for (const f of seen.model.scalars) if (valueKey(seen.row[f]) !== valueKey(other.row[f])) return true;
  if (seen.edges.size !== other.edges.size) return true;
  for (const e of seen.edges) if (!other.edges.has(e)) return true;
  return false;
}

// ---------------------------------------------------------------- trackReads

function describe(m: ModelInfo, operation: string): string {
  return `${m.name}.${operation}`;
}

/** Tags to invalidate, in the shape `invalidateDependents()` and the transaction scopes take. */
function tagsOf(model: string, tags: readonly string[]): Dependents {
  return { model, paths: [], tags };
}

/** Whether a row's own columns differ between two snapshots. */
function columnsChanged(a: Seen, b: Seen): boolean {
  for (const f of a.model.scalars) if (valueKey(a.row[f]) !== valueKey(b.row[f])) return true;
  return false;
}

/** A row as the write-side tags need it: its primary key, and its unique and foreign keys. */
function writtenRow(m: ModelInfo, row: Row): WrittenRow {
  const id = m.id === undefined ? undefined : Object.fromEntries(m.id.map((f) => [f, row[f]]));
  const keys: KeyValues[] = [];
  const sets = [...m.uniques, ...[...m.relations.values()].map((r) => r.fields)];
  for (const fields of sets) {
    if (fields.length === 0 || (fields.length === m.id?.length && fields.every((f, i) => m.id?.[i] === f))) continue;
    if (fields.some((f) => row[f] == null)) continue;
    keys.push(Object.fromEntries(fields.map((f) => [f, row[f]])));
  }
  return { id, keys };
}

const CREATES_OR_DELETES = new Set(['create', 'createMany', 'connectOrCreate', 'upsert', 'delete', 'deleteMany']);

/** Whether a write's data creates or deletes rows through its relations (nested writes), at any depth. */
function hasNestedRows(m: ModelInfo, args: Row, models: ReadonlyMap<string, ModelInfo>): boolean {
  const walk = (model: ModelInfo, data: unknown): boolean => {
    for (const item of each(data)) {
      for (const [field, value] of Object.entries(item)) {
        const relation = model.relations.get(field);
        if (relation === undefined || !isPlain(value)) continue;
        const child = models.get(relation.model);
        for (const [op, arg] of Object.entries(value)) {
          if (CREATES_OR_DELETES.has(op)) return true;
          if (child !== undefined && op === 'update' && each(arg).some((u) => walk(child, updateData(u)))) return true;
        }
      }
    }
    return false;
  };
  return walk(m, args.data) || walk(m, args.create) || walk(m, args.update);
}
