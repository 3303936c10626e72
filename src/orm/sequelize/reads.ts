/**
 * `trackReads` for Sequelize: every SELECT a model runs goes through the query interface's
 * `select()` (findAll, findOne, findByPk, findAndCountAll, reload, association getters, `include`)
 * or `rawSelect()` (count, aggregate, max, min, sum), which are wrapped on the instance's query
 * interface, so reads with `hooks: false` are seen too. Each tags the page being rendered,
 * following the model of ../reads.ts:
 *
 * - A `where` that asks for the primary key (`{ id: 1 }`, `{ id: { [Op.eq]: 1 } }`,
 *   `{ id: { [Op.in]: [1, 2] } }`, an `[Op.or]` of those) tags those rows, found or not; one that
 *   asks for a foreign key (`{ postId: 1 }`: what `post.getComments()` runs) tags that key. Other
 *   plain conditions on the same row beside it (the paranoid `deletedAt` condition, `{ title: 'a' }`)
 *   only narrow the answer. A key value not spelled as the database returns it is no key.
 * - `include`: a belongsTo tags the rows the parents' foreign keys name; a hasMany or hasOne the
 *   children's foreign key for each parent; a belongsToMany the through table's key for each
 *   parent and the rows it loaded. An include that filters its parents (`required: true`), joins
 *   `on` a condition of its own, or is read only for a computed column tags the list of its table
 *   and of everything below it.
 * - A belongsToMany getter (`post.getTags()`, `hasTag()`, `countTags()`) tags the through table's
 *   key of the parent, and the rows it loaded.
 * - Anything else (no `where`, other conditions, `Sequelize.where()`, `$nested.column$` keys,
 *   `groupedLimit`) tags the list of every table the query names.
 *
 * Raw SQL (`sequelize.query()`, `literal()` subqueries) is not parsed: it tags nothing.
 */
import type { Model, Sequelize } from 'sequelize';
import { keyPart, type KeyValues, type ReadTracker, type WrittenRow } from '../reads.js';
import { Catalog } from './catalog.js';
import type { ModelInfo } from './rows.js';

/** Marks the options of the integration's own reads (rows of a write): they tag no page. */
export const INTERNAL = Symbol('page-dumper.sequelize.internal');

/** The operators this module reads, from the app's own copy of Sequelize. */
export interface ReadOps {
  readonly and: symbol;
  readonly or: symbol;
  readonly eq: symbol;
  readonly in: symbol;
  readonly col: symbol;
}

/** An association as this module reads it (Sequelize 6's fields). */
interface Association {
  readonly associationType: string;
  readonly source: ReadModel;
  readonly target: ReadModel;
  readonly foreignKey: string;
  readonly otherKey?: string;
  readonly sourceKey?: string;
  readonly targetKey?: string;
  readonly through?: { readonly model: ReadModel };
  readonly oneFromTarget?: Association;
  readonly paired?: Association;
}

type ReadModel = ModelInfo & {
  readonly options: { readonly paranoid?: boolean; readonly timestamps?: boolean };
  readonly _schema?: string;
  readonly associations: Readonly<Record<string, Association>>;
  readonly rawAttributes: Readonly<Record<string, { readonly field?: string; readonly references?: unknown; readonly type?: { readonly key?: string } }>>;
};

/** A conformed include, as `select()` receives it. */
interface Include {
  readonly model: ReadModel;
  readonly association: Association;
  readonly as: string;
  readonly where?: unknown;
  readonly on?: unknown;
  readonly required?: boolean;
  readonly hasIncludeRequired?: boolean;
  readonly separate?: boolean;
  readonly attributes?: readonly unknown[];
  readonly through?: { readonly where?: unknown; readonly model?: ReadModel };
  readonly include?: readonly Include[];
  readonly paranoid?: boolean;
  /** The through model's columns of a belongsToMany include, which Sequelize adds as an include of its own. */
  readonly _pseudo?: boolean;
}

interface SelectOptions {
  readonly where?: unknown;
  readonly include?: readonly Include[];
  readonly raw?: boolean;
  readonly group?: unknown;
  readonly attributes?: readonly unknown[];
  readonly groupedLimit?: unknown;
  readonly paranoid?: boolean;
  readonly transaction?: unknown;
  readonly order?: unknown;
  readonly limit?: unknown;
  readonly offset?: unknown;
  readonly [INTERNAL]?: boolean;
}

type Row = Record<string, unknown>;

/** What a `where` says about the rows of its model. */
type Where =
  | { readonly kind: 'rows'; readonly ids: KeyValues[] }
  | { readonly kind: 'keys'; readonly keys: KeyValues[] }
  /** No condition at all: every row. */
  | { readonly kind: 'all' }
  | { readonly kind: 'list' };
const LIST: Where = { kind: 'list' };

function isPlain(value: unknown): value is Row {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function info(model: unknown): ReadModel {
  return model as ReadModel;
}

/** A model's table, as tags name it: its table name, with its schema if it has one. */
export function tableOf(model: ModelInfo): string {
  const m = info(model);
  return m._schema ? `${m._schema}.${m.tableName}` : m.tableName;
}

/** The attribute a name (an attribute or a field name) stands for. */
function attributeOf(model: ReadModel, name: string): string | undefined {
  if (Object.hasOwn(model.rawAttributes, name)) return name;
  return model.fieldRawAttributesMap?.[name]?.fieldName;
}

function fieldOf(model: ReadModel, attribute: string): string {
  return model.rawAttributes[attribute]?.field ?? attribute;
}

/**
 * The attributes of a model that hold a foreign key, each of one column: those that reference
 * another table, those of its belongsTo associations, those that other models' hasMany and hasOne
 * point with, and both keys of a belongsToMany's through model. The read side tags keys only of
 * these, and the write side names them on every row: the two must agree.
 */
export function foreignKeys(model: ModelInfo): ReadonlySet<string> {
  const m = info(model);
  const out = new Set<string>();
  for (const [name, attribute] of Object.entries(m.rawAttributes)) if (attribute.references != null) out.add(name);
  for (const other of Object.values(m.sequelize.models) as unknown as ReadModel[]) {
    for (const a of Object.values(other.associations ?? {})) {
      if (a.associationType === 'BelongsTo' && a.source === m) out.add(a.foreignKey);
      if ((a.associationType === 'HasMany' || a.associationType === 'HasOne') && a.target === m) out.add(a.foreignKey);
      if (a.associationType === 'BelongsToMany' && a.through?.model === m) {
        out.add(a.foreignKey);
        if (a.otherKey !== undefined) out.add(a.otherKey);
      }
    }
  }
  // Not kept: associations may be added after the first read.
  return new Set([...out].filter((a) => Object.hasOwn(m.rawAttributes, a)));
}

const INTEGER_TYPES = new Set(['INTEGER', 'BIGINT', 'SMALLINT', 'TINYINT', 'MEDIUMINT']);
const STRING_TYPES = new Set(['STRING', 'TEXT']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A key value spelled as the database hands it out, or `undefined` when another spelling of the
 * same row is possible and the value cannot be trusted to name one row's tag:
 * - an integer column: a safe integer, a bigint, or a string of digits with no leading zero
 *   (`'01'` finds row 1, but names no tag of it);
 * - a string column: as is on PostgreSQL and SQLite; never on MySQL and MariaDB, whose default
 *   collations match other cases and trailing spaces;
 * - a UUID: lower case on PostgreSQL (whose uuid type matches any case), as is on SQLite;
 * - anything else: no key.
 */
export function canonical(model: ModelInfo, attribute: string, value: unknown, dialect: string): unknown {
  const type = info(model).rawAttributes[attribute]?.type?.key;
  if (type === undefined) return undefined;
  if (INTEGER_TYPES.has(type)) {
    if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
    if (typeof value === 'bigint') return value;
    if (typeof value === 'string') return /^-?(0|[1-9][0-9]{0,30})$/.test(value) && value !== '-0' ? value : undefined;
    return undefined;
  }
  if (typeof value !== 'string') return undefined;
  if (dialect === 'mysql' || dialect === 'mariadb') return undefined;
  if (STRING_TYPES.has(type)) return value;
  if (type === 'UUID') {
    if (dialect === 'sqlite') return value;
    return UUID.test(value) ? value.toLowerCase() : undefined;
  }
  return undefined;
}

/**
 * Rows' primary keys and foreign keys, by column, for the write side; a row's `id` is `undefined`
 * (so the write is one of unknown rows) when a value is not spelled as the database stores it.
 */
export function writtenRows(model: ModelInfo, rows: readonly Model[], dialect: string): WrittenRow[] {
  const fks = foreignKeys(model);
  return rows.map((r) => writtenRow(model, r, dialect, fks));
}

function writtenRow(model: ModelInfo, row: Model, dialect: string, fks: ReadonlySet<string>): WrittenRow {
  const m = info(model);
  const get = (attribute: string) => (row as unknown as { get(key: string, options: { raw: true }): unknown }).get(attribute, { raw: true });
  const id: Record<string, unknown> = {};
  let known = m.primaryKeyAttributes.length > 0;
  for (const a of m.primaryKeyAttributes) {
    const v = canonicalOrRaw(m, a, get(a), dialect);
    if (v === undefined) known = false;
    id[fieldOf(m, a)] = v;
  }
  const keys: KeyValues[] = [];
  for (const a of fks) {
    const raw = get(a);
    if (raw == null) continue;
    const v = canonicalOrRaw(m, a, raw, dialect);
    if (v === undefined) known = false;
    keys.push({ [fieldOf(m, a)]: v });
  }
  return { id: known ? id : undefined, keys };
}

/**
 * On the write side a string key on MySQL and MariaDB is tagged as stored: reads by a string key
 * there tag the list, which the write invalidates anyway, and rows loaded carry the stored value.
 */
function canonicalOrRaw(model: ReadModel, attribute: string, value: unknown, dialect: string): unknown {
  const c = canonical(model, attribute, value, dialect);
  if (c !== undefined) return c;
  if ((dialect === 'mysql' || dialect === 'mariadb') && typeof value === 'string') {
    const type = model.rawAttributes[attribute]?.type?.key;
    if (type !== undefined && (STRING_TYPES.has(type) || type === 'UUID')) return value;
  }
  return undefined;
}

export class SequelizeReads {
  readonly #tracker: ReadTracker;
  readonly #op: ReadOps;
  readonly #dialect: string;
  readonly #catalog: Catalog;

  constructor(tracker: ReadTracker, sequelize: Sequelize) {
    this.#tracker = tracker;
    this.#op = (sequelize.constructor as unknown as { Op: ReadOps }).Op;
    this.#dialect = sequelize.getDialect();
    this.#catalog = new Catalog(sequelize);
  }

  /** The models a select or a count reads: its own, its includes' and their through models. */
  #models(model: unknown, options: SelectOptions | undefined): ReadModel[] {
    const out = new Set<ReadModel>();
    const m = info(model);
    if (typeof m?.tableName === 'string') out.add(m);
    const visit = (includes: readonly Include[] | undefined) => {
      for (const i of includes ?? []) {
        if (i.separate) continue;
        if (typeof i.model?.tableName === 'string') out.add(i.model);
        const through = i.association?.through?.model;
        if (through !== undefined) out.add(through);
        visit(i.include);
      }
    };
    visit(options?.include);
    return [...out];
  }

  /**
   * Before a select or a count is tagged: reads, once per table, what the catalog says of the
   * tables it names (views, inexact columns), in the read's transaction.
   */
  async prepare(model: unknown, options: SelectOptions | undefined): Promise<void> {
    if (options === undefined || options[INTERNAL]) return;
    const transaction = (options.transaction ?? undefined) as Parameters<Catalog['load']>[2];
    for (const m of this.#models(model, options)) {
      if (this.#catalog.get(tableOf(m)) === undefined) await this.#catalog.load(tableOf(m), { schema: m._schema || undefined, name: m.tableName }, transaction);
    }
  }

  /**
   * For a model over a view, the tables under it (their names as tags may spell them), read from
   * the catalog once: a write through the view changes their rows, which page-dumper does not see.
   */
  async underlying(model: ModelInfo, transaction: unknown): Promise<readonly string[]> {
    const m = info(model);
    const facts = this.#catalog.get(tableOf(m)) ?? (await this.#catalog.load(tableOf(m), { schema: m._schema || undefined, name: m.tableName }, transaction as Parameters<Catalog['load']>[2]));
    return facts.underlying ?? [];
  }

  /** The lists of the tables under the views among the models a query read. */
  #views(model: unknown, options: SelectOptions): void {
    for (const m of this.#models(model, options)) {
      for (const t of this.#catalog.get(tableOf(m))?.underlying ?? []) this.#tracker.list(t);
    }
  }

  /**
   * `canonical()`, and `undefined` when the database compares the column other than byte for
   * byte (a collation that ignores case, `citext`), or its catalog was not read.
   */
  #canonical(m: ReadModel, attribute: string, value: unknown): unknown {
    const c = canonical(m, attribute, value, this.#dialect);
    if (c === undefined) return undefined;
    const facts = this.#catalog.get(tableOf(m));
    if (facts === undefined || facts.inexact === 'all') return INTEGER_TYPES.has(m.rawAttributes[attribute]?.type?.key ?? '') ? c : undefined;
    return facts.inexact.has(fieldOf(m, attribute)) ? undefined : c;
  }

  /** After `queryInterface.select(model, table, options)`: its results (instances, or rows when `raw`). */
  select(model: unknown, options: SelectOptions | undefined, results: unknown): void {
    if (options === undefined || options[INTERNAL]) return;
    const m = info(model);
    if (typeof m?.tableName !== 'string') return;
    this.#views(m, options);
    const rows = (Array.isArray(results) ? results : results == null ? [] : [results]).filter((r): r is object => r !== null && typeof r === 'object');
    const includes = (options.include ?? []).filter((i) => !i.separate);
    if (options.groupedLimit !== undefined) return this.#lists(m, includes);
    const where = this.#classify(m, options.where);
    // With a limit or an offset, which rows come back depends on rows that do not: those the
    // ordering puts before them. The parents' own candidates are named by their `where`; the
    // included rows of candidates not returned are not, so an ordering by an included column
    // makes that include's table a list.
    const limited = options.limit != null || (options.offset != null && options.offset !== 0);
    if (limited) this.#orderedIncludes(m, options.order, includes);
    // A belongsToMany getter: the target's rows joined to the through rows of one parent.
    const links = includes.find((i) => this.#isLinkFilter(m, i));
    if (links !== undefined) {
      const keys = this.#classify(links.model, links.where);
      if (keys.kind === 'keys') this.#tracker.keys(tableOf(links.model), keys.keys);
      else this.#tracker.list(tableOf(links.model));
      if (where.kind === 'rows') this.#tracker.rows(tableOf(m), where.ids);
      // With a limit, a linked row not returned may come first once changed: the loaded rows do not name it.
      else if (where.kind === 'all' && !this.#paranoid(m, options) && !limited) {
        const ids = this.#ids(m, rows, options.raw === true);
        if (ids === undefined) this.#tracker.list(tableOf(m));
        else this.#tracker.rows(tableOf(m), ids);
      } else this.#tag(m, where);
      for (const i of includes) if (i !== links) this.#subtree(i);
      return;
    }
    this.#tag(m, where);
    if (includes.length === 0) return;
    // `'$comments.body$'` and the like: the parents are filtered by the joined rows.
    if (!this.#narrowing(m, options.where)) return this.#lists(m, includes);
    // Raw rows of joins, or columns computed over them: which rows were joined is not known.
    const computed = options.group !== undefined || (options.attributes ?? []).some((a) => typeof a !== 'string');
    if (options.raw === true || computed) {
      for (const i of includes) this.#included(m, i, undefined, computed);
      return;
    }
    for (const i of includes) this.#included(m, i, rows as Model[], false);
  }

  /** After `queryInterface.rawSelect()`: a count or an aggregate; nothing is known of the joined rows. */
  aggregate(model: unknown, options: SelectOptions | undefined): void {
    if (options === undefined || options[INTERNAL]) return;
    const m = info(model);
    if (typeof m?.tableName !== 'string') return;
    this.#views(m, options);
    this.#tag(m, this.#classify(m, options.where));
    for (const i of options.include ?? []) this.#included(m, i, undefined, true);
  }

  #tag(m: ReadModel, where: Where): void {
    if (where.kind === 'rows') this.#tracker.rows(tableOf(m), where.ids);
    else if (where.kind === 'keys') this.#tracker.keys(tableOf(m), where.keys);
    else this.#tracker.list(tableOf(m));
  }

  #lists(m: ReadModel, includes: readonly Include[]): void {
    this.#tracker.list(tableOf(m));
    for (const i of includes) this.#subtree(i);
  }

  /**
   * The lists of the includes an `order` names (`[{ model, as }, 'name']`, `['author', 'name']`, a
   * nested path: each include along it); an ordering by anything but the model's own attributes
   * and the includes it can name (`literal()`, `fn()`, `col()`) the lists of every include.
   */
  #orderedIncludes(m: ReadModel, order: unknown, includes: readonly Include[]): void {
    if (order == null || includes.length === 0) return;
    const items = Array.isArray(order) ? order : [order];
    const named = new Set<Include>();
    const matches = (i: Include, e: unknown): boolean => {
      if (typeof e === 'string') return i.as === e;
      if (e === i.model || e === i.association) return true;
      if (e !== null && typeof e === 'object' && (e as { model?: unknown }).model === i.model) {
        const as = (e as { as?: unknown }).as;
        return as === undefined || as === i.as;
      }
      return false;
    };
    for (const item of items) {
      if (typeof item === 'string' && attributeOf(m, item) !== undefined) continue;
      if (Array.isArray(item)) {
        const direction = typeof item[item.length - 1] === 'string' && item.length >= 2 && /^(asc|desc)( nulls (first|last))?$/i.test(item[item.length - 1] as string) ? 1 : 0;
        const path = item.slice(0, item.length - 1 - direction);
        const column = item[item.length - 1 - direction];
        if (typeof column === 'string' && !column.includes('.') && !column.includes('$')) {
          if (path.length === 0 && attributeOf(m, column) !== undefined) continue;
          let level: readonly Include[] = includes;
          const along: Include[] = [];
          for (const e of path) {
            const found = level.find((i) => matches(i, e));
            if (found === undefined) break;
            along.push(found);
            level = found.include ?? [];
          }
          if (path.length > 0 && along.length === path.length) {
            for (const i of along) named.add(i);
            continue;
          }
        }
      }
      // Anything else may name any included column.
      for (const i of includes) this.#subtree(i);
      return;
    }
    for (const i of named) {
      this.#tracker.list(tableOf(i.model));
      const through = i.association.through?.model;
      if (through !== undefined) this.#tracker.list(tableOf(through));
    }
  }

  /** The list of an include's table, its through table, and everything below it. */
  #subtree(include: Include): void {
    this.#tracker.list(tableOf(include.model));
    const through = include.association.through?.model;
    if (through !== undefined) this.#tracker.list(tableOf(through));
    for (const i of include.include ?? []) this.#subtree(i);
  }

  /** Whether the model's paranoid condition is on this query (soft-deleted rows are left out). */
  #paranoid(m: ReadModel, options: { readonly paranoid?: boolean }): boolean {
    return m.options.paranoid === true && m.options.timestamps !== false && options.paranoid !== false;
  }

  /** `post.getTags()`: an inner join of the through model, whose `where` names its key to the parent. */
  #isLinkFilter(m: ReadModel, include: Include): boolean {
    const a = include.association;
    if (a.associationType !== 'HasOne' || include.required !== true || include.on !== undefined || (include.include?.length ?? 0) > 0) return false;
    for (const other of Object.values(m.sequelize.models) as unknown as ReadModel[]) {
      for (const btm of Object.values(other.associations ?? {})) {
        if (btm.associationType === 'BelongsToMany' && btm.oneFromTarget === a && btm.target === m) return true;
      }
    }
    return false;
  }

  /**
   * One include, below parents whose rows are `parents` (instances), or `undefined` when they are
   * not known (raw rows, a count). `computed`: columns are computed over the joined rows.
   */
  #included(parent: ReadModel, include: Include, parents: readonly Model[] | undefined, computed: boolean): void {
    if (include.separate) return; // its own query tags it
    if (include._pseudo) return; // the through rows of the belongsToMany above: tagged with it
    const a = include.association;
    const target = include.model;
    const filters = include.required === true || include.hasIncludeRequired === true || include.on !== undefined || include.through?.where !== undefined;
    const where = include.where === undefined ? ({ kind: 'all' } as Where) : this.#classify(target, include.where);
    // A filter on the parents, or conditions that are not plain comparisons of the joined row's own columns.
    if (filters || (where.kind === 'list' && !this.#narrowing(target, include.where))) return this.#subtree(include);
    const value = (r: Model, attribute: string): unknown => (r as unknown as { get(k: string, o: { raw: true }): unknown }).get(attribute, { raw: true });
    const has = (r: Model, attribute: string): boolean => Object.hasOwn((r as unknown as { dataValues: Row }).dataValues, attribute);
    let loaded: Model[] | undefined;
    if (parents !== undefined) {
      loaded = [];
      for (const p of parents) {
        const v = (p as unknown as { get(k: string): unknown }).get(include.as);
        for (const r of Array.isArray(v) ? v : [v]) if (r !== null && typeof r === 'object') loaded.push(r as Model);
      }
    }
    if (a.associationType === 'BelongsTo') {
      // The rows the parents' foreign keys name, found or not: a paranoid or filtered row left out is still named.
      const pk = target.primaryKeyAttributes;
      if (parents === undefined || pk.length !== 1 || a.targetKey !== pk[0] || !parents.every((p) => has(p, a.foreignKey))) return this.#subtree(include);
      const ids: KeyValues[] = [];
      for (const p of parents) {
        const v = value(p, a.foreignKey);
        if (v == null) continue;
        const c = this.#canonical(target, pk[0]!, v);
        if (c === undefined || this.#canonical(parent, a.foreignKey, v) === undefined) return this.#subtree(include);
        ids.push({ [fieldOf(target, pk[0]!)]: c });
      }
      this.#tracker.rows(tableOf(target), ids);
    } else if (a.associationType === 'HasMany' || a.associationType === 'HasOne') {
      if (parents === undefined || computed) return this.#subtree(include);
      const keys = this.#parentKeys(parent, a.sourceKey, target, a.foreignKey, parents);
      if (keys === undefined) return this.#subtree(include);
      this.#tracker.keys(tableOf(target), keys);
    } else if (a.associationType === 'BelongsToMany') {
      const through = a.through!.model;
      const keys = parents === undefined ? undefined : this.#parentKeys(parent, a.sourceKey, through, a.foreignKey, parents);
      if (keys === undefined) this.#tracker.list(tableOf(through));
      else this.#tracker.keys(tableOf(through), keys);
      // The rows linked: those loaded, when none can be left out (no condition, no soft delete, a
      // foreign key constraint so that a link names a row that exists) and they were selected.
      const constrained = a.otherKey !== undefined && through.rawAttributes[a.otherKey]?.references != null;
      const ids = loaded === undefined || computed || where.kind !== 'all' || this.#paranoid(target, include) || !constrained || (include.attributes?.length ?? 1) === 0 ? undefined : this.#ids(target, loaded, false);
      if (ids === undefined) return this.#subtree(include);
      this.#tracker.rows(tableOf(target), ids);
    } else {
      return this.#subtree(include);
    }
    for (const i of include.include ?? []) this.#included(target, i, computed ? undefined : loaded, computed);
  }

  /** The keys (`foreignKey` of `child`, one per parent) that point at the parents' `sourceKey`, or `undefined`. */
  #parentKeys(parent: ReadModel, sourceKey: string | undefined, child: ReadModel, foreignKey: string, parents: readonly Model[]): KeyValues[] | undefined {
    if (sourceKey === undefined || !Object.hasOwn(child.rawAttributes, foreignKey)) return undefined;
    const field = fieldOf(child, foreignKey);
    const keys: KeyValues[] = [];
    for (const p of parents) {
      const dataValues = (p as unknown as { dataValues: Row }).dataValues;
      if (!Object.hasOwn(dataValues, sourceKey)) return undefined;
      const v = this.#canonical(parent, sourceKey, dataValues[sourceKey]);
      if (v === undefined || this.#canonical(child, foreignKey, v) === undefined) return undefined;
      keys.push({ [field]: v });
    }
    return keys;
  }

  /** The primary keys of loaded rows (instances, or raw rows by attribute), or `undefined` when one is missing. */
  #ids(m: ReadModel, rows: readonly object[], raw: boolean): KeyValues[] | undefined {
    const pk = m.primaryKeyAttributes;
    if (pk.length === 0) return undefined;
    const ids: KeyValues[] = [];
    for (const r of rows) {
      const values = raw ? (r as Row) : (r as { dataValues: Row }).dataValues;
      const id: Record<string, unknown> = {};
      for (const a of pk) {
        const v = this.#canonical(m, a, values[a]);
        if (v === undefined) return undefined;
        id[fieldOf(m, a)] = v;
      }
      ids.push(id);
    }
    return ids;
  }

  // ---------------------------------------------------------------- where

  /** Whether a `where` is only plain comparisons of the model's own columns (so it narrows, and names no other table). */
  #narrowing(m: ReadModel, where: unknown): boolean {
    return this.#conjunction(m, where) !== undefined;
  }

  /**
   * A `where` as a conjunction of conditions on the model's own columns (attribute → condition),
   * with `[Op.or]`s of such conjunctions kept apart; `undefined` when it is anything else.
   */
  #conjunction(m: ReadModel, where: unknown): { pairs: Array<[string, unknown]>; ors: unknown[][] } | undefined {
    const out = { pairs: [] as Array<[string, unknown]>, ors: [] as unknown[][] };
    const walk = (w: unknown): boolean => {
      if (w === undefined || w === null) return true;
      if (Array.isArray(w)) return w.every(walk);
      if (!isPlain(w)) return false;
      for (const name of Object.keys(w)) {
        const attribute = attributeOf(m, name);
        if (attribute === undefined || !this.#plainCondition(w[name])) return false;
        out.pairs.push([attribute, w[name]]);
      }
      for (const s of Object.getOwnPropertySymbols(w)) {
        const v = (w as Record<symbol, unknown>)[s];
        if (s === this.#op.and) {
          if (!walk(v)) return false;
        } else if (s === this.#op.or) {
          const items = Array.isArray(v) ? v : isPlain(v) ? Object.entries(v).map(([k, x]) => ({ [k]: x })) : undefined;
          if (items === undefined || !items.every((x) => this.#conjunction(m, x) !== undefined)) return false;
          if (items.length === 1) walk(items[0]);
          else out.ors.push(items);
        } else return false;
      }
      return true;
    };
    return walk(where) ? out : undefined;
  }

  /** A condition on one column whose values are values (not columns, functions, literals, or other tables). */
  #plainCondition(c: unknown): boolean {
    if (c === null || c === undefined) return true;
    if (typeof c !== 'object') return typeof c !== 'function' && typeof c !== 'symbol';
    if (c instanceof Date || Buffer.isBuffer(c)) return true;
    if (Array.isArray(c)) return c.every((x) => this.#plainCondition(x));
    if (!isPlain(c)) return false;
    for (const s of Object.getOwnPropertySymbols(c)) if (s === this.#op.col || !this.#plainCondition((c as Record<symbol, unknown>)[s])) return false;
    return Object.values(c).every((x) => this.#plainCondition(x));
  }

  /** The key values one condition asks for: `v`, `{ [Op.eq]: v }`, `{ [Op.in]: [...] }`; `undefined` for anything else. */
  #values(m: ReadModel, attribute: string, c: unknown): unknown[] | undefined {
    let values: unknown[];
    if (isPlain(c)) {
      const symbols = Object.getOwnPropertySymbols(c);
      if (Object.keys(c).length !== 0 || symbols.length !== 1) return undefined;
      const v = (c as Record<symbol, unknown>)[symbols[0]!];
      if (symbols[0] === this.#op.eq) values = [v];
      else if (symbols[0] === this.#op.in && Array.isArray(v)) values = v;
      else return undefined;
    } else if (Array.isArray(c)) {
      values = c; // `{ id: [1, 2] }` is IN
    } else values = [c];
    const out: unknown[] = [];
    for (const v of values) {
      const canon = this.#canonical(m, attribute, v);
      if (canon === undefined || keyPart(canon) === undefined) return undefined;
      out.push(canon);
    }
    return out;
  }

  /** What a `where` says: rows by primary key, rows by foreign key, every row, or a list. */
  #classify(m: ReadModel, where: unknown): Where {
    const c = this.#conjunction(m, where);
    if (c === undefined) return LIST;
    if (c.pairs.length === 0 && c.ors.length === 0) return { kind: 'all' };
    const direct = this.#keyed(m, c.pairs);
    if (direct !== undefined) return direct;
    // `[Op.or]: [{ id: 1 }, { id: 2 }]` (what `hasTags()` asks): each branch by the same kind of key.
    for (const branches of c.ors) {
      const ws = branches.map((b) => {
        const inner = this.#conjunction(m, b)!;
        return inner.ors.length > 0 ? undefined : this.#keyed(m, inner.pairs);
      });
      if (ws.every((w) => w?.kind === 'rows')) return { kind: 'rows', ids: ws.flatMap((w) => (w as { ids: KeyValues[] }).ids) };
      if (ws.every((w) => w?.kind === 'keys')) return { kind: 'keys', keys: ws.flatMap((w) => (w as { keys: KeyValues[] }).keys) };
    }
    return LIST;
  }

  #keyed(m: ReadModel, pairs: ReadonlyArray<[string, unknown]>): Where | undefined {
    const pk = m.primaryKeyAttributes;
    if (pk.length === 1) {
      for (const [a, cond] of pairs) {
        if (a !== pk[0]) continue;
        const values = this.#values(m, a, cond);
        if (values !== undefined) return { kind: 'rows', ids: values.map((v) => ({ [fieldOf(m, a)]: v })) };
      }
    } else if (pk.length > 1) {
      const id: Record<string, unknown> = {};
      for (const a of pk) {
        const found = pairs.map(([x, cond]) => (x === a ? this.#values(m, a, cond) : undefined)).find((v) => v?.length === 1);
        if (found === undefined) break;
        id[fieldOf(m, a)] = found[0];
      }
      if (Object.keys(id).length === pk.length) return { kind: 'rows', ids: [id] };
    }
    const fks = foreignKeys(m);
    for (const [a, cond] of pairs) {
      if (!fks.has(a)) continue;
      const values = this.#values(m, a, cond);
      if (values !== undefined) return { kind: 'keys', keys: values.map((v) => ({ [fieldOf(m, a)]: v })) };
    }
    return undefined;
  }
}
