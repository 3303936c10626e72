/**
 * `trackReads` for MikroORM: every read an entity manager makes tags the page being rendered,
 * following the model of ../reads.ts.
 *
 * - `em.find()`, `findOne()`, `count()` (and what calls them: `findOneOrFail()`, `findAll()`,
 *   `findAndCount()`, `findByCursor()`, repositories, `Reference.load()`, `wrap(e).init()`,
 *   `Collection.loadCount()` / `matching()`): a `where` that names only the primary key (`1`,
 *   `{ id: 1 }`, `{ id: { $in: [1, 2] } }`) tags those rows, found or not; one that names only a
 *   foreign key (`{ post: 1 }`, `{ post: { id: 1 } }`, `{ post: entity }`) tags that key. Anything
 *   else tags the list of its table and of every table its `where` names.
 * - The entities it returns, and every initialized entity and collection reachable from them
 *   (populated now, or earlier into the identity map: a `findOne()` served from the identity map
 *   runs no query, and its page shows them all the same): each entity tags its row; an
 *   initialized one-to-many collection tags the children's foreign key for its owner; a
 *   many-to-many collection the join table's key for its owner, and its items' rows.
 * - `em.populate()`, `Collection.init()` / `load()` / `loadItems()`: their own queries (the
 *   above), then the entities they filled, as above; `em.getReference()` of an initialized entity.
 * - A filter (`@Filter`, `em.addFilter()`) whose condition names other tables makes the read a
 *   list of its table and of those tables; so does a filter of another entity applied to the
 *   read (a to-one relation MikroORM joins for its filter, a populated relation's filter).
 * - A QueryBuilder run outside the SQL of the above (`em.createQueryBuilder()...getResult()`,
 *   `execute()`, `getCount()`, also inside a read: in a filter's condition, a hook) tags the
 *   list of every table it names (its aliases and joins, its collection operators' subqueries).
 * - An entity with a `formula` whose SQL may read other tables makes the read a list of every
 *   table of the ORM's metadata.
 *
 * Key values are tagged only in the spelling the database hands back: an integer for an integer
 * column (or its canonical digits), a string for a text column on PostgreSQL and SQLite (on
 * MySQL and MariaDB a string key may match other case or trailing spaces), a uuid in lower case
 * with its hyphens.
 * Any other spelling makes the read a list. Raw SQL (`em.getConnection().execute()`, `raw()`
 * fragments, `qb.getKnexQuery()` run by hand) is not seen.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import { keyPart, type KeyValues, type ReadTracker } from '../reads.js';
import { helperOf, unwrapRef, type Meta, type Prop, type Row } from './rows.js';

/** What the read being made inside an entity manager method has already tagged. */
interface Scope {
  /** The entity manager method tagged what its SQL reads: the SQL its driver call runs is not tagged again, as lists. */
  readonly classified: boolean;
  /** Tables a filter applied under it names, beyond its own (tagged as lists when it ends). */
  readonly filtered: Set<Meta>;
  /** The entity read (none for `em.populate()`): a filter of another entity applies through a relation. */
  readonly meta?: Meta;
  /** Inside the read's own `processWhere()`: the filters of its entity applied to its own `where`. */
  readonly own?: boolean;
  /**
   * Inside the driver call that runs the read's own SQL. Only there does `classified` hold: a
   * QueryBuilder a filter's condition or a hook runs inside the read is tagged as any other.
   */
  readonly driver?: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();
const WRAPPED = Symbol('page-dumper.mikro-orm.reads');

/** The read tracker of each ORM with `trackReads`, by its driver. */
const trackers = new WeakMap<object, ReadTracker>();

/** Entities visited per read before the rest is tagged as whole tables. */
const MAX_WALK = 5000;

type Method = (this: any, ...args: unknown[]) => unknown;

interface EmLike {
  getDriver(): object;
  getMetadata(entityName?: unknown): unknown;
}

interface QueryBuilderLike {
  readonly type?: string;
  readonly driver: object;
  readonly flags?: Set<string>;
  readonly _aliases?: Record<string, { metadata?: Meta }>;
  readonly _joins?: Record<string, { prop?: Prop }>;
  readonly mainAlias?: { metadata?: Meta };
}

// ---------------------------------------------------------------- tables and keys

/** The table name page-dumper's tags use for an entity: its schema (unless `*`) and table. */
export function tableOf(meta: Meta): string {
  return meta.schema && meta.schema !== '*' ? `${meta.schema}.${meta.tableName}` : meta.tableName;
}

function props(meta: Meta): Record<string, Prop> {
  return meta.properties as Record<string, Prop>;
}

function isRelation(prop: Prop): boolean {
  return prop.kind === 'm:1' || prop.kind === '1:1' || prop.kind === '1:m' || prop.kind === 'm:n';
}

/** A to-one relation that holds the foreign key (many-to-one, owning one-to-one). */
function holdsKey(prop: Prop): boolean {
  return prop.kind === 'm:1' || (prop.kind === '1:1' && prop.owner === true);
}

/** A primary key's values, flattened in column order, from an entity, a reference or a plain key value. */
export function pkValues(meta: Meta, source: unknown): unknown[] | undefined {
  const v = unwrapRef(source);
  if (v === null || v === undefined) return undefined;
  const keys = meta.primaryKeys as string[];
  if (typeof v !== 'object' || v instanceof Date || Buffer.isBuffer(v)) {
    if (keys.length !== 1) return undefined;
    const prop = props(meta)[keys[0]!]!;
    return isRelation(prop) ? pkValues(prop.targetMeta!, v) : [v];
  }
  const out: unknown[] = [];
  for (const name of keys) {
    const prop = props(meta)[name]!;
    const value = (v as Row)[name];
    if (value === null || value === undefined) return undefined;
    if (isRelation(prop)) {
      const inner = prop.targetMeta === undefined ? undefined : pkValues(prop.targetMeta, value);
      if (inner === undefined) return undefined;
      out.push(...inner);
    } else out.push(unwrapRef(value));
  }
  return out;
}

/** The primary-key columns of an entity (or a plain row by property name) → values. */
export function pkColumns(meta: Meta, source: unknown): KeyValues | undefined {
  const values = pkValues(meta, source);
  return values === undefined ? undefined : zip(pkFields(meta), values);
}

function pkFields(meta: Meta): string[] {
  return (meta.primaryKeys as string[]).flatMap((name) => props(meta)[name]!.fieldNames);
}

function zip(columns: readonly string[], values: readonly unknown[]): KeyValues | undefined {
  if (columns.length === 0 || columns.length !== values.length || values.some((v) => keyPart(v) === undefined)) return undefined;
  return Object.fromEntries(columns.map((c, i) => [c, values[i]]));
}

/** The foreign key a to-one relation holds (its columns → the referenced row's key), or `undefined` (null, or not a key). */
export function foreignKey(prop: Prop, value: unknown): KeyValues | undefined {
  const target = prop.targetMeta;
  const values = target === undefined ? undefined : pkValues(target, value);
  return values === undefined ? undefined : zip(prop.fieldNames, values);
}

// ---------------------------------------------------------------- canonical key values

/** Whether the database hands this key value back spelled as given (else a read by it is a list). */
function canonical(prop: Prop, value: unknown, mysql: boolean): boolean {
  if (isRelation(prop)) {
    const target = prop.targetMeta;
    const keys = (target?.primaryKeys ?? []) as string[];
    return keys.length === 1 && canonical(props(target!)[keys[0]!]!, unwrapRef(value), mysql);
  }
  const column = String(prop.columnTypes?.[0] ?? prop.type ?? '').toLowerCase();
  if (/^((tiny|small|medium|big)?int(eger)?\d*|(small|big)?serial\d*)\b/.test(column)) {
    if (typeof value === 'number') return Number.isSafeInteger(value);
    if (typeof value === 'bigint') return true;
    return typeof value === 'string' && /^(0|-?[1-9]\d*)$/.test(value);
  }
  if (typeof value !== 'string' || mysql) return false;
  // PostgreSQL also finds a uuid spelled in upper case, without hyphens or in braces.
  if (column.startsWith('uuid')) return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
  if (/^(char|character|bpchar|nchar)\b/.test(column) || /citext|nocase/.test(column)) return false;
  return /char|text|string/.test(column);
}

function isMysql(platform: object): boolean {
  for (let p: object | null = Object.getPrototypeOf(platform) as object | null; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    if ((p as { constructor?: { name?: string } }).constructor?.name === 'MySqlPlatform') return true;
  }
  return false;
}

// ---------------------------------------------------------------- what a where names

function isPlain(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value) && !Array.isArray(value) && helperOf(value) === undefined;
}

/** No condition: absent, or an empty object (what MikroORM passes down when nothing was asked). */
function isEmpty(value: unknown): boolean {
  return value === undefined || value === null || (isPlain(value) && Object.keys(value).length === 0);
}

function isScalar(value: unknown): boolean {
  return keyPart(value) !== undefined || value === null;
}

/** The values of `v`, `{ $eq: v }` or `{ $in: [...] }`, each a key value (a scalar, an entity, a reference). */
function valuesOf(condition: unknown): unknown[] | undefined {
  if (isPlain(condition)) {
    const names = Object.keys(condition);
    if (names.length !== 1) return undefined;
    if (names[0] === '$eq') return valuesOf(condition.$eq);
    if (names[0] === '$in' && Array.isArray(condition.$in)) {
      const items = condition.$in as unknown[];
      return items.every((i) => !Array.isArray(i) && valuesOf(i)?.length === 1) ? items.map(unwrapRef) : undefined;
    }
    return undefined;
  }
  const v = unwrapRef(condition);
  return v === null || v === undefined || Array.isArray(v) ? undefined : [v];
}

type Classified = { readonly kind: 'rows'; readonly ids: KeyValues[] } | { readonly kind: 'keys'; readonly keys: KeyValues[] };

/** What a `where` says, if it names only the primary key or only a foreign key of the entity, in canonical spelling. */
function classify(meta: Meta, where: unknown, mysql: boolean): Classified | undefined {
  const keys = meta.primaryKeys as string[];
  const entity = unwrapRef(where);
  if (helperOf(entity) !== undefined) {
    const id = pkColumns(meta, entity);
    return id === undefined || !keys.every((k) => canonical(props(meta)[k]!, (entity as Row)[k], mysql)) ? undefined : { kind: 'rows', ids: [id] };
  }
  if (!isPlain(where)) {
    // A bare primary key value.
    if (keys.length !== 1 || !isScalar(where) || where === null || !canonical(props(meta)[keys[0]!]!, where, mysql)) return undefined;
    const id = pkColumns(meta, where);
    return id === undefined ? undefined : { kind: 'rows', ids: [id] };
  }
  const names = Object.keys(where);
  if (names.length === 0) return undefined;
  if (names.length === keys.length && keys.every((k) => names.includes(k))) {
    if (keys.length === 1) {
      const prop = props(meta)[keys[0]!]!;
      const values = valuesOf(where[keys[0]!]);
      if (values === undefined || !values.every((v) => canonical(prop, v, mysql))) return undefined;
      const ids = values.map((v) => pkColumns(meta, { [keys[0]!]: v }));
      return ids.every((id): id is KeyValues => id !== undefined) ? { kind: 'rows', ids } : undefined;
    }
    const row: Row = {};
    for (const k of keys) {
      const values = valuesOf(where[k]);
      if (values?.length !== 1 || !canonical(props(meta)[k]!, values[0], mysql)) return undefined;
      row[k] = values[0];
    }
    const id = pkColumns(meta, row);
    return id === undefined ? undefined : { kind: 'rows', ids: [id] };
  }
  if (names.length !== 1) return undefined;
  const prop = props(meta)[names[0]!];
  if (prop === undefined || !holdsKey(prop) || prop.fieldNames.length !== 1 || prop.targetMeta === undefined) return undefined;
  const target = prop.targetMeta;
  const targetKeys = target.primaryKeys as string[];
  if (targetKeys.length !== 1) return undefined;
  let condition = where[names[0]!];
  // `{ post: { id: 1 } }`, `{ post: { id: { $in: [...] } } }`
  if (isPlain(condition) && Object.keys(condition).length === 1 && Object.keys(condition)[0] === targetKeys[0]) condition = condition[targetKeys[0]!];
  const values = valuesOf(condition);
  if (values === undefined || !values.every((v) => canonical(prop, v, mysql))) return undefined;
  const found = values.map((v) => foreignKey(prop, v));
  return found.every((k): k is KeyValues => k !== undefined) ? { kind: 'keys', keys: found } : undefined;
}

/**
 * The entities (beyond `meta`) whose tables a `where` (or a filter's condition) reads: those of
 * relations it looks into, and the join tables of many-to-many relations it names. `false` when
 * it names something that is not a property (a raw fragment): it cannot be told.
 *
 * An operator's value that is itself a condition (`$and`, `$or`, `$not`, the collection
 * operators `$some`, `$none` and `$every`, an `$eq` or `$in` of conditions on a relation) is a
 * condition on the same entity, and is looked into as such.
 */
function namedTables(meta: Meta, where: unknown, out: Set<Meta>, orm: MikroORM, depth = 0): boolean {
  if (depth > 20) return false;
  if (Array.isArray(where)) return where.every((w) => namedTables(meta, w, out, orm, depth + 1));
  if (!isPlain(where)) return true;
  for (const [key, value] of Object.entries(where)) {
    if (key.startsWith('$')) {
      if (!namedTables(meta, value, out, orm, depth + 1)) return false;
      continue;
    }
    const prop = props(meta)[key];
    if (prop === undefined) return false;
    if (!isRelation(prop)) continue;
    const target = prop.targetMeta!;
    if (prop.kind === 'm:n') {
      const pivot = orm.getMetadata().find(prop.pivotEntity) as Meta | undefined;
      if (pivot === undefined) return false;
      out.add(pivot);
    }
    if (holdsKey(prop) && (valuesOf(value) !== undefined || (isPlain(value) && onlyKeyOf(target, value)))) continue;
    out.add(target);
    if (isPlain(value) && !namedTables(target, value, out, orm, depth + 1)) return false;
  }
  return true;
}

function onlyKeyOf(target: Meta, value: Row): boolean {
  const names = Object.keys(value);
  const keys = target.primaryKeys as string[];
  return names.length === 1 && keys.length === 1 && names[0] === keys[0] && valuesOf(value[names[0]!]) !== undefined;
}

// ---------------------------------------------------------------- tagging

class Tagger {
  readonly #tracker: ReadTracker;
  readonly #orm: MikroORM;
  readonly #mysql: boolean;

  constructor(tracker: ReadTracker, orm: MikroORM) {
    this.#tracker = tracker;
    this.#orm = orm;
    this.#mysql = isMysql(orm.em.getPlatform());
  }

  get tracker(): ReadTracker {
    return this.#tracker;
  }

  metaOf(em: EmLike, entityName: unknown): Meta | undefined {
    if (entityName === null || entityName === undefined) return undefined;
    const name =
      typeof entityName === 'string'
        ? entityName
        : typeof entityName === 'function'
          ? entityName.name
          : ((entityName as { meta?: { className?: string } }).meta?.className ?? undefined);
    return name === undefined ? undefined : (this.#orm.getMetadata().find(name) as Meta | undefined);
  }

  /**
   * Tags a read of `meta` by `where` before it runs. `true` when that covers every table its SQL
   * names but the relations it populates (which the entities it returns tag): a read by rows or
   * keys, or a list whose `where`, `populateWhere` and `orderBy` name only properties. `false`:
   * its SQL tags the lists of all its tables (a raw fragment somewhere).
   */
  where(meta: Meta, where: unknown, options: Row | undefined, listed: Set<string>): boolean {
    const plain = (isEmpty(options?.populateWhere) || typeof options?.populateWhere === 'string') && isEmpty(options?.populateFilter);
    const orderBy = options?.orderBy;
    const byRelation = orderBy !== undefined && JSON.stringify(orderBy) !== undefined && this.#ordersByRelation(meta, orderBy);
    const found = plain && !byRelation ? classify(meta, where, this.#mysql) : undefined;
    const table = tableOf(meta);
    if (found?.kind === 'rows') this.#tracker.rows(table, found.ids);
    else if (found?.kind === 'keys') this.#tracker.keys(table, found.keys);
    else {
      this.#list(meta, listed);
      const named = new Set<Meta>();
      let known = namedTables(meta, where, named, this.#orm);
      if (options !== undefined && !isEmpty(options.populateWhere) && typeof options.populateWhere === 'object') known = namedTables(meta, options.populateWhere, named, this.#orm) && known;
      if (!isEmpty(options?.populateFilter)) known = namedTables(meta, options!.populateFilter, named, this.#orm) && known;
      if (orderBy !== undefined) known = namedTables(meta, orderBy, named, this.#orm) && known;
      for (const m of named) this.#list(m, listed);
      return known;
    }
    return true;
  }

  #ordersByRelation(meta: Meta, orderBy: unknown): boolean {
    const items = Array.isArray(orderBy) ? orderBy : [orderBy];
    return items.some((item) => isPlain(item) && Object.keys(item).some((k) => props(meta)[k] === undefined || isRelation(props(meta)[k]!)));
  }

  #list(meta: Meta, listed: Set<string>): void {
    const table = tableOf(meta);
    listed.add(table);
    this.#tracker.list(table);
  }

  /** The lists of the tables a filter named (the read's own table among them). */
  filtered(meta: Meta | undefined, scope: Scope, listed: Set<string>): void {
    if (scope.filtered.size === 0) return;
    if (meta !== undefined) this.#list(meta, listed);
    for (const m of scope.filtered) this.#list(m, listed);
  }

  /**
   * The entities a read returned or filled, and every initialized entity and collection
   * reachable from them: what the page can show. Tables already tagged as lists are skipped.
   */
  entities(roots: Iterable<unknown>, listed: Set<string>): void {
    const seen = new Set<object>();
    const queue: object[] = [];
    const push = (value: unknown) => {
      const v = unwrapRef(value);
      if (v !== null && typeof v === 'object' && !seen.has(v) && helperOf(v) !== undefined) {
        seen.add(v);
        queue.push(v);
      }
    };
    for (const r of roots) push(r);
    const metas = new Set<Meta>();
    let everything = false;
    for (let i = 0; i < queue.length; i++) {
      const entity = queue[i]!;
      const helper = helperOf(entity)! as ReturnType<typeof helperOf> & { __initialized?: boolean };
      const meta = helper!.__meta;
      if (i >= MAX_WALK) {
        metas.add(meta);
        continue;
      }
      if (helper!.__initialized === false || meta.virtual === true || meta.expression !== undefined) continue;
      if (this.#readsOtherTables(meta, entity as Row)) everything = true;
      const table = tableOf(meta);
      if (!listed.has(table)) {
        const id = pkColumns(meta, entity);
        if (id === undefined) this.#list(meta, listed);
        else this.#tracker.rows(table, [id]);
      }
      for (const prop of meta.relations as Prop[]) {
        const value = (entity as Row)[prop.name];
        if (value === undefined) continue;
        if (holdsKey(prop)) {
          push(value);
          continue;
        }
        const target = prop.targetMeta;
        if (target === undefined) continue;
        const ownerKey = pkValues(meta, entity);
        if (prop.kind === '1:1') {
          // The inverse side: the row whose foreign key names this one (loaded, or found missing).
          const owning = props(target)[prop.mappedBy];
          const key = owning === undefined || ownerKey === undefined ? undefined : zip(owning.fieldNames, ownerKey);
          if (key === undefined) this.#list(target, listed);
          else if (!listed.has(tableOf(target))) this.#tracker.keys(tableOf(target), [key]);
          push(value);
          continue;
        }
        const coll = value as { isInitialized?(fully?: boolean): boolean; getItems?(check?: boolean): object[] };
        if (typeof coll.isInitialized !== 'function' || !coll.isInitialized() || typeof coll.getItems !== 'function') continue;
        if (prop.kind === '1:m') {
          const owning = props(target)[prop.mappedBy];
          const key = owning === undefined || ownerKey === undefined ? undefined : zip(owning.fieldNames, ownerKey);
          if (key === undefined) this.#list(target, listed);
          else if (!listed.has(tableOf(target))) this.#tracker.keys(tableOf(target), [key]);
        } else {
          const pivot = this.#orm.getMetadata().find(prop.pivotEntity) as Meta | undefined;
          const key = ownerKey === undefined ? undefined : zip(prop.joinColumns, ownerKey);
          if (pivot === undefined) this.#list(target, listed);
          else if (key === undefined) this.#list(pivot, listed);
          else if (!listed.has(tableOf(pivot))) this.#tracker.keys(tableOf(pivot), [key]);
        }
        for (const item of coll.getItems(false)) push(item);
      }
    }
    if (metas.size > 0) for (const m of closure(metas)) this.#list(m, listed);
    if (everything) this.#everything(listed);
  }

  /**
   * Whether an entity holds a `formula` property whose SQL may read other tables (it has a
   * subquery or calls a function): formulas are SQL, not parsed, so such a read is a list of
   * every table of the ORM.
   */
  #readsOtherTables(meta: Meta, entity: Row): boolean {
    let known = this.#formulas.get(meta);
    if (known === undefined) {
      known = (meta.props as Prop[]).filter((p) => typeof p.formula === 'function' && !ownRowFormula(p)).map((p) => p.name);
      this.#formulas.set(meta, known);
    }
    return known.some((name) => entity[name] !== undefined);
  }

  readonly #formulas = new WeakMap<Meta, string[]>();

  #everything(listed: Set<string>): void {
    for (const m of Object.values(this.#orm.getMetadata().getAll()) as Meta[]) {
      if (m.embeddable === true || m.virtual === true || m.expression !== undefined || typeof m.tableName !== 'string') continue;
      this.#list(m, listed);
    }
  }

  /** Every table a QueryBuilder names: its aliases' entities, the join tables of its many-to-many joins, its subqueries' tables. */
  queryBuilder(qb: QueryBuilderLike): void {
    const metas = this.tablesOf(qb);
    for (const m of subqueryTables.get(qb) ?? []) metas.add(m);
    for (const m of metas) this.#tracker.list(tableOf(m));
  }

  /** The tables a QueryBuilder names itself. */
  tablesOf(qb: QueryBuilderLike): Set<Meta> {
    const metas = new Set<Meta>();
    if (qb.mainAlias?.metadata !== undefined) metas.add(qb.mainAlias.metadata);
    for (const alias of Object.values(qb._aliases ?? {})) if (alias.metadata !== undefined) metas.add(alias.metadata);
    for (const join of Object.values(qb._joins ?? {})) {
      const prop = join.prop;
      if (prop?.targetMeta !== undefined) metas.add(prop.targetMeta);
      if (prop?.kind === 'm:n') {
        const pivot = this.#orm.getMetadata().find(prop.pivotEntity) as Meta | undefined;
        if (pivot !== undefined) metas.add(pivot);
      }
    }
    return metas;
  }

  /**
   * The tables a filter's condition names, beyond the row's own columns. `own`: applied to the
   * read's own `where`; any other application (a filter of a to-one relation's entity, which
   * MikroORM joins for it, `autoJoinRefsForFilters`; of a populated relation, `populateFilter`)
   * filters the rows read by another table's rows, so that table is a list too.
   */
  filterTables(meta: Meta, where: unknown, own: boolean, into: Set<Meta>): void {
    const named = new Set<Meta>();
    // A raw condition: whatever it reads, the row's own table is at least a list.
    if (!own || !namedTables(meta, where, named, this.#orm)) into.add(meta);
    for (const m of named) into.add(m);
  }
}

/**
 * A formula whose SQL can read nothing but its own row: no subquery (`select`) and no call (an
 * identifier followed by `(`, which may be a function reading other tables). Anything else, or
 * a formula that cannot be called here, may read any table.
 */
function ownRowFormula(prop: Prop): boolean {
  let sql: unknown;
  try {
    const table = { alias: 'e0', name: 'e0', qualifiedName: 'e0', toString: () => 'e0' };
    const columns = new Proxy({}, { get: (_t, name) => (typeof name === 'string' ? `e0.${name}` : undefined) });
    sql = (prop.formula as (table: unknown, columns: unknown) => unknown)(table, columns);
  } catch {
    return false;
  }
  return typeof sql === 'string' && !/\bselect\b/i.test(sql) && !/[\w"`\]]\s*\(/.test(sql);
}

/** The entities reachable from these through relations (and their join tables). */
function closure(start: Iterable<Meta>): Set<Meta> {
  const out = new Set<Meta>();
  const queue = [...start];
  while (queue.length > 0) {
    const meta = queue.pop()!;
    if (out.has(meta)) continue;
    out.add(meta);
    for (const prop of meta.relations as Prop[]) {
      if (prop.targetMeta !== undefined) queue.push(prop.targetMeta);
      const pivot = (prop as { pivotEntity?: unknown }).pivotEntity;
      if (pivot !== undefined && typeof pivot === 'object') queue.push(pivot as Meta);
    }
  }
  return out;
}

// ---------------------------------------------------------------- wrappers

const taggers = new WeakMap<object, Tagger>();

function taggerOf(em: unknown): Tagger | undefined {
  const driver = (em as EmLike | null)?.getDriver?.();
  return driver === undefined ? undefined : taggers.get(driver);
}

export function trackReads(orm: MikroORM, tracker: ReadTracker): () => void {
  const driver = orm.em.getDriver() as unknown as Record<string, unknown>;
  const tagger = new Tagger(tracker, orm);
  trackers.set(driver, tracker);
  taggers.set(driver, tagger);
  wrapEntityManager(orm);

  const restore: Array<() => void> = [];
  /** Replaces a method of this ORM's driver, and says how to put it back. */
  const replace = (name: string, make: (original: Method) => Method) => {
    const original = driver[name] as Method | undefined;
    if (typeof original !== 'function') return;
    const own = Object.hasOwn(driver, name);
    const wrapper = make(original);
    driver[name] = wrapper;
    restore.push(() => {
      if (driver[name] !== wrapper) return; // wrapped again since: ours only calls through
      if (own) driver[name] = original;
      else delete driver[name];
    });
  };

  // The SQL of a read the entity manager classified: what it runs is its own, not a QueryBuilder
  // of yours (those a filter's condition or a hook runs inside the read are outside these calls).
  for (const name of ['find', 'findOne', 'count']) {
    replace(
      name,
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          const scope = scopes.getStore();
          return scope === undefined || scope.driver === true ? original.apply(this, args) : scopes.run({ ...scope, driver: true }, () => original.apply(this, args));
        },
    );
  }

  // Many-to-many collections loaded on their own (select-in): the owners' links in the join table.
  replace(
    'loadFromPivotTable',
    (original) =>
      async function (this: unknown, ...args: unknown[]) {
        const [prop, owners, where, , , options] = args as [Prop, unknown[][], unknown, unknown, unknown, Row | undefined];
        const plain = isEmpty(where) && isEmpty(options?.populateFilter);
        const result = await scopes.run({ classified: plain, filtered: new Set(), driver: true }, () => original.apply(this, args));
        const pivot = orm.getMetadata().find(prop.pivotEntity) as Meta | undefined;
        if (pivot !== undefined) {
          const keys = owners.map((o) => zip(prop.joinColumns, o));
          if (keys.every((k): k is KeyValues => k !== undefined)) tracker.keys(tableOf(pivot), keys);
          else tracker.list(tableOf(pivot));
        }
        return result;
      },
  );
  return () => {
    trackers.delete(driver);
    taggers.delete(driver);
    for (const undo of restore.splice(0).reverse()) undo();
  };
}

/** The prototype (of `object`'s chain) that defines `name` itself. */
function ownerOf(object: object, name: string): Record<PropertyKey, unknown> | undefined {
  let proto = Object.getPrototypeOf(object) as Record<PropertyKey, unknown> | null;
  while (proto !== null && !Object.hasOwn(proto, name)) proto = Object.getPrototypeOf(proto) as Record<PropertyKey, unknown> | null;
  return proto ?? undefined;
}

function wrap(object: object, name: string, make: (original: Method) => Method): void {
  const proto = ownerOf(object, name);
  if (proto === undefined || typeof proto[name] !== 'function' || (proto[name] as { [WRAPPED]?: true })[WRAPPED]) return;
  const wrapper = make(proto[name] as Method);
  Object.defineProperty(wrapper, WRAPPED, { value: true });
  proto[name] = wrapper;
}

/**
 * Wraps, once per process, the read methods of the ORM's own `EntityManager` class. For an ORM
 * without `trackReads`, the wrappers only call through.
 */
function wrapEntityManager(orm: MikroORM): void {
  const em = orm.em as unknown as object;
  const read = (kind: 'find' | 'findOne' | 'count') => (original: Method) =>
    async function (this: EmLike, ...args: unknown[]) {
      const tagger = taggerOf(this);
      const meta = tagger?.metaOf(this, args[0]);
      // A virtual entity is an SQL expression: not parsed (as raw SQL).
      if (tagger === undefined || meta === undefined || meta.virtual === true || meta.expression !== undefined) return original.apply(this, args);
      const options = (args[2] ?? undefined) as Row | undefined;
      const listed = new Set<string>();
      const classified = tagger.where(meta, args[1] ?? {}, options, listed);
      const scope: Scope = { classified, filtered: new Set(), meta };
      const result = await scopes.run(scope, () => original.apply(this, args));
      tagger.filtered(meta, scope, listed);
      if (kind === 'find') tagger.entities(result as unknown[], listed);
      else if (kind === 'findOne') tagger.entities([result], listed);
      return result;
    };
  wrap(em, 'find', read('find'));
  wrap(em, 'findOne', read('findOne'));
  wrap(em, 'count', read('count'));
  wrap(
    em,
    'populate',
    (original) =>
      async function (this: EmLike, ...args: unknown[]) {
        const tagger = taggerOf(this);
        if (tagger === undefined) return original.apply(this, args);
        const scope: Scope = { classified: false, filtered: new Set() };
        const result = await scopes.run(scope, () => original.apply(this, args));
        const listed = new Set<string>();
        tagger.filtered(undefined, scope, listed);
        tagger.entities(Array.isArray(args[0]) ? args[0] : [args[0]], listed);
        return result;
      },
  );
  wrap(
    em,
    'getReference',
    (original) =>
      function (this: EmLike, ...args: unknown[]) {
        const result = original.apply(this, args);
        const tagger = taggerOf(this);
        if (tagger !== undefined && (helperOf(unwrapRef(result)) as { __initialized?: boolean } | undefined)?.__initialized === true) tagger.entities([result], new Set());
        return result;
      },
  );
  wrap(
    em,
    'processWhere',
    (original) =>
      function (this: EmLike, ...args: unknown[]) {
        const scope = scopes.getStore();
        if (scope === undefined || scope.own === true) return original.apply(this, args);
        const meta = taggerOf(this)?.metaOf(this, args[0]);
        return scopes.run({ ...scope, own: meta !== undefined && meta === scope.meta }, () => original.apply(this, args));
      },
  );
  wrap(
    em,
    'applyFilters',
    (original) =>
      async function (this: EmLike, ...args: unknown[]) {
        const scope = scopes.getStore();
        // A filter's condition callback may read (a QueryBuilder, a find): not the read's own SQL.
        const result = await (scope === undefined ? original.apply(this, args) : scopes.run({ ...scope, own: false, driver: false }, () => original.apply(this, args)));
        const tagger = taggerOf(this);
        if (scope === undefined || tagger === undefined || result === args[1] || isEmpty(result)) return result;
        const meta = tagger.metaOf(this, args[0]);
        if (meta !== undefined) tagger.filterTables(meta, result, scope.own === true && meta === scope.meta, scope.filtered);
        return result;
      },
  );
}

/** A SELECT a QueryBuilder runs: tagged as the lists of its tables, unless it is the SQL of a classified read. */
export function selectExecuted(qb: QueryBuilderLike): void {
  const tagger = taggers.get(qb.driver);
  const scope = scopes.getStore();
  if (tagger === undefined || (scope?.classified === true && scope.driver === true)) return;
  tagger.queryBuilder(qb);
}

/**
 * The QueryBuilders of the subqueries MikroORM builds for a QueryBuilder (`$some`, `$none`,
 * `$every`: a clone of it, compiled into its SQL, never executed on its own), by the builder
 * they were cloned from, and the entities their tables hold.
 */
const origins = new WeakMap<object, object>();
const subqueryTables = new WeakMap<object, Set<Meta>>();

/** `clone` was made from `qb` (a subquery, a count, a page of it). */
export function queryBuilderCloned(qb: object, clone: object): void {
  origins.set(clone, qb);
}

/** A QueryBuilder was compiled to SQL: a clone's tables are read by every builder it was cloned from. */
export function queryBuilderCompiled(qb: QueryBuilderLike): void {
  if (!origins.has(qb)) return;
  const tagger = taggers.get(qb.driver);
  if (tagger === undefined) return;
  const metas = tagger.tablesOf(qb);
  for (let o = origins.get(qb); o !== undefined; o = origins.get(o)) {
    let set = subqueryTables.get(o);
    if (set === undefined) subqueryTables.set(o, (set = new Set()));
    for (const m of metas) set.add(m);
  }
}
