/**
 * `trackReads` for Drizzle: each read a wrapped database runs (`select()`, `selectDistinct()`,
 * `selectDistinctOn()`, `$count()`, `db.query.<table>.findFirst/findMany`, in `with()` and in
 * transactions) tags the page being rendered, following the model of ../reads.ts. Tags name
 * tables and columns by their SQL names.
 *
 * - A select of one table (no join, no union, no CTE, the table named once) whose `where` sets
 *   the primary key (`eq(t.id, 1)`, `inArray(t.id, [1, 2])`, each column of a compound key) tags
 *   those rows, found or not; one that sets a foreign key (`eq(t.authorId, 1)`) tags that key.
 *   Other conditions ANDed beside it only narrow the answer. An `or()` of such reads is their union.
 * - A value is used only when its spelling is the one the database hands back: an integer (or a
 *   decimal string without leading zeros) for an integer column, a string for a text column on
 *   PostgreSQL and SQLite, a lower-case uuid. On MySQL/MariaDB, where `'a'` finds `'A '`, a string
 *   key is a list. Anything else is a list.
 * - Anything else tags the list of every table the query names (its SQL walked: joins,
 *   subqueries, CTEs, views defined in the schema).
 * - Relational queries: the top-level `where` as above; each relation of `with` loaded along a
 *   foreign key tags, for each parent, the rows it points at (to-one by primary key) or the key of
 *   the rows that point at it (one-to-many); a relation the table's foreign keys do not describe
 *   tags the list.
 * - A read of a many-to-many link table (its primary key is two foreign keys) by primary key tags
 *   the key of one side: links are invalidated by their sides' keys (`linkTags`).
 *
 * Raw SQL (`db.execute(sql...)`, `db.all(sql...)`, a `sql` string naming tables) is not parsed.
 */
import { Column, getOperators, is, normalizeRelation, Param, SQL, StringChunk, Subquery, Table, View, getTableUniqueName, type Relation } from 'drizzle-orm';
import { keyPart, type KeyValues, type ReadTracker } from '../reads.js';
import { Collations } from './collations.js';
import { isAlias, tableInfo, type TableInfo } from './tables.js';
import type { Dialect } from './writes.js';

type Row = Record<string, unknown>;

/** What a `where` says about one table's rows. */
type Where = { readonly kind: 'rows'; readonly ids: KeyValues[] } | { readonly kind: 'keys'; readonly keys: KeyValues[] } | { readonly kind: 'list' };
const LIST: Where = { kind: 'list' };

const INTEGER = /^(Pg(Integer|Serial|SmallInt|SmallSerial|BigInt53|BigInt64|BigSerial53|BigSerial64)|SQLiteInteger|MySql(Int|Serial|SmallInt|TinyInt|MediumInt|BigInt53|BigInt64))$/;
const TEXT = /^(PgText|PgVarchar|SQLiteText)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DECIMAL = /^-?(0|[1-9][0-9]*)$/;

/**
 * Whether `value`, compared with `column` by the database, finds exactly the rows whose value
 * the driver hands back with the same `keyPart()`: only then may it name a row or key tag.
 */
export function canonical(dialect: Dialect, column: Column, value: unknown): boolean {
  const type = column.columnType;
  if (INTEGER.test(type)) {
    if (typeof value === 'number') return Number.isSafeInteger(value);
    if (typeof value === 'bigint') return true;
    return typeof value === 'string' && DECIMAL.test(value);
  }
  if (typeof value !== 'string') return false;
  if (type === 'PgUUID') return UUID.test(value);
  // MySQL/MariaDB compare strings by their collation (case, trailing spaces): never a key.
  return dialect !== 'mysql' && TEXT.test(type);
}

/** Tables a piece of SQL names: how often each appears as a table (FROM, JOIN), and every table a column of it names. */
interface Named {
  readonly tables: Map<string, Table>;
  readonly occurrences: Map<string, number>;
}

function walk(node: unknown, out: Named, seen: Set<object>): void {
  if (node === null || typeof node !== 'object') return;
  if (is(node, Table)) {
    const name = tableInfo(node).name;
    out.tables.set(name, node);
    out.occurrences.set(name, (out.occurrences.get(name) ?? 0) + 1);
    return;
  }
  if (is(node, Column)) {
    const name = tableInfo(node.table).name;
    if (!out.tables.has(name)) out.tables.set(name, node.table);
    return;
  }
  if (is(node, Param) || is(node, StringChunk)) return;
  // Tables are counted each time they appear; a piece of SQL is walked once (it may be shared).
  if (seen.has(node)) return;
  seen.add(node);
  if (Array.isArray(node)) {
    for (const n of node) walk(n, out, seen);
    return;
  }
  if (is(node, SQL)) return walk(node.queryChunks, out, seen);
  if (is(node, SQL.Aliased)) return walk(node.sql, out, seen);
  if (is(node, Subquery)) return walk((node as unknown as { _: { sql: unknown } })._.sql, out, seen);
  if (is(node, View)) {
    // A view defined in the schema (`.as(query)`) names its query's tables; an `.existing()` one names none.
    return walk((node as unknown as Record<symbol, { query?: unknown }>)[Symbol.for('drizzle:ViewBaseConfig')]?.query, out, seen);
  }
  const getSQL = (node as { getSQL?: unknown }).getSQL;
  if (typeof getSQL === 'function') {
    try {
      walk(getSQL.call(node), out, seen);
    } catch {
      // Not buildable: nothing to name.
    }
  }
}

export function named(...nodes: unknown[]): Named {
  const out: Named = { tables: new Map(), occurrences: new Map() };
  const seen = new Set<object>();
  for (const n of nodes) walk(n, out, seen);
  return out;
}

/** The chunks of a SQL node that say something (empty strings dropped). */
function chunks(node: SQL): unknown[] {
  return node.queryChunks.filter((c) => !(is(c, StringChunk) && c.value.join('').trim() === ''));
}

function text(chunk: unknown): string | undefined {
  return is(chunk, StringChunk) ? chunk.value.join('').trim().toLowerCase() : undefined;
}

/** The parts of `a and b and ...` (or `or`), through parentheses and single wrappers. */
function parts(node: unknown, op: 'and' | 'or'): unknown[] {
  if (!is(node, SQL)) return [node];
  const c = chunks(node);
  if (c.length === 1 && is(c[0], SQL)) return parts(c[0], op);
  if (c.length === 3 && text(c[0]) === '(' && text(c[2]) === ')' && is(c[1], SQL)) return parts(c[1], op);
  if (c.length >= 3 && c.length % 2 === 1) {
    let joined = true;
    for (let i = 1; i < c.length; i += 2) if (text(c[i]) !== op) joined = false;
    if (joined) return c.filter((_, i) => i % 2 === 0).flatMap((p) => parts(p, op));
  }
  return [node];
}

/** `column = value` or `column in (values)`: the column and the values, when they are plain values. */
function atom(node: unknown): { column: Column; values: unknown[] } | undefined {
  if (!is(node, SQL)) return undefined;
  const c = chunks(node);
  if (c.length !== 3 || !is(c[0], Column)) return undefined;
  const op = text(c[1]);
  const values = op === '=' ? [c[2]] : op === 'in' && Array.isArray(c[2]) ? (c[2] as unknown[]) : undefined;
  if (values === undefined || values.length === 0 || !values.every((v) => is(v, Param))) return undefined;
  return { column: c[0], values: (values as Param[]).map((p) => p.value) };
}

export class DrizzleReads {
  readonly #tracker: ReadTracker;
  readonly #dialect: Dialect;
  readonly #collations: Collations;

  constructor(tracker: ReadTracker, dialect: Dialect) {
    this.#tracker = tracker;
    this.#dialect = dialect;
    this.#collations = new Collations(dialect);
  }

  /**
   * Before a read is classified: the catalog of the tables it names, read once per table on its
   * session (see ./collations.ts). A promise to wait for, or `undefined` when nothing is missing
   * or it was read synchronously.
   */
  prepare(query: unknown): Promise<void> | undefined {
    if (this.#dialect === 'mysql' || query === null || typeof query !== 'object') return undefined;
    const session = (query as { session?: unknown }).session;
    if (session === undefined) return undefined;
    let tables: Iterable<Table>;
    try {
      tables = named(query).tables.values();
    } catch {
      return undefined;
    }
    return this.#collations.prepare(tables, session);
  }

  /** `canonical()`; for a text column, one the database compares byte for byte (its catalog says so). */
  #canonical(column: Column, value: unknown): boolean {
    if (!canonical(this.#dialect, column, value)) return false;
    return !TEXT.test(column.columnType) || this.#collations.exact(column);
  }

  /** What a `where` on `info`'s table says: rows, keys, or a list. */
  classify(info: TableInfo, where: unknown): Where {
    if (where === undefined || where === null) return LIST;
    const alternatives = parts(where, 'or');
    if (alternatives.length > 1) {
      const each = alternatives.map((a) => this.#conjunction(info, a));
      if (each.every((w) => w.kind === 'rows')) return { kind: 'rows', ids: each.flatMap((w) => (w as { ids: KeyValues[] }).ids) };
      if (each.every((w) => w.kind === 'keys')) return { kind: 'keys', keys: each.flatMap((w) => (w as { keys: KeyValues[] }).keys) };
      return LIST;
    }
    return this.#conjunction(info, where);
  }

  #conjunction(info: TableInfo, where: unknown): Where {
    const set = new Map<string, unknown[]>();
    for (const part of parts(where, 'and')) {
      const a = atom(part);
      if (a === undefined || tableInfo(a.column.table).name !== info.name || set.has(a.column.name)) continue;
      const own = Object.values(info.columns).find((c) => c.name === a.column.name);
      if (own === undefined || !a.values.every((v) => this.#canonical(own, v))) continue;
      set.set(a.column.name, a.values);
    }
    const keyed = (columns: readonly string[]): KeyValues[] | undefined => {
      if (columns.length === 0 || !columns.every((c) => set.has(c))) return undefined;
      if (columns.length === 1) return set.get(columns[0]!)!.map((v) => ({ [columns[0]!]: v }));
      const key: Record<string, unknown> = {};
      for (const c of columns) {
        const values = set.get(c)!;
        if (values.length !== 1) return undefined;
        key[c] = values[0];
      }
      return [key];
    };
    const ids = keyed(info.primaryKey.map((f) => info.columns[f]!.name));
    if (ids !== undefined) return this.#rows(info, ids);
    for (const fk of info.foreignKeys) {
      const keys = keyed(fk.columns);
      if (keys !== undefined) return { kind: 'keys', keys };
    }
    return LIST;
  }

  /** Rows by primary key; for a link table, the links of the first side (what its writes invalidate). */
  #rows(info: TableInfo, ids: KeyValues[]): Where {
    if (!info.link) return { kind: 'rows', ids };
    const side = info.foreignKeys.find((fk) => fk.columns.every((c) => info.primaryKey.some((f) => info.columns[f]!.name === c)))!;
    return { kind: 'keys', keys: ids.map((id) => Object.fromEntries(side.columns.map((c) => [c, id[c]]))) };
  }

  #tag(info: TableInfo, where: Where): void {
    if (where.kind === 'rows') this.#tracker.rows(info.name, where.ids);
    else if (where.kind === 'keys') this.#tracker.keys(info.name, where.keys);
    else this.#tracker.list(info.name);
  }

  /** Lists every table in `found` but `except`. */
  #lists(found: Named, except?: string): void {
    for (const name of found.tables.keys()) if (name !== except) this.#tracker.list(name);
  }

  /** Any read: the lists of every table it names. */
  lists(query: unknown): void {
    this.#lists(named(query));
  }

  /** A select builder (`db.select()...from()`) that has run. */
  select(builder: { config?: Row; getSQL?: () => unknown }): void {
    const config = builder.config ?? {};
    let found: Named;
    try {
      found = named(builder.getSQL?.());
    } catch {
      found = named(config.table, config.where, config.joins, config.fields, config.withList);
    }
    const table = config.table;
    const empty = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
    if (is(table, Table) && !isAlias(table) && empty(config.joins) && empty(config.setOperators) && empty(config.withList)) {
      const info = tableInfo(table);
      if (found.occurrences.get(info.name) === 1) {
        this.#tag(info, this.classify(info, config.where));
        this.#lists(found, info.name);
        return;
      }
    }
    this.#lists(found);
  }

  /** `db.$count(source, filters)`, run. */
  count(source: unknown, filters: unknown): void {
    if (is(source, Table) && !isAlias(source)) {
      const info = tableInfo(source);
      const inner = named(filters);
      if (!inner.tables.has(info.name) || inner.occurrences.get(info.name) === undefined) {
        this.#tag(info, this.classify(info, filters));
        this.#lists(inner, info.name);
        return;
      }
    }
    this.#lists(named(source, filters));
  }

  /** A relational query (`db.query.<table>.findFirst/findMany`) and its result. */
  relational(query: RelationalQuery, result: unknown): void {
    const rows = ((query.queryMode ?? query.mode) === 'first' ? (result === undefined || result === null ? [] : [result]) : Array.isArray(result) ? result : []) as Row[];
    const info = tableInfo(query.table);
    const config = query.config ?? {};
    const extra = this.#expressions(query.tableConfig, config);
    if (extra.tables.has(info.name) && (extra.occurrences.get(info.name) ?? 0) > 0) this.#tracker.list(info.name);
    else this.#tag(info, this.classify(info, this.#where(query.tableConfig, config.where)));
    this.#lists(extra, info.name);
    this.#relations(query, query.tableConfig, config.with, rows);
  }

  #where(tableConfig: TableConfig, where: unknown): unknown {
    if (typeof where !== 'function') return where;
    try {
      return (where as (fields: unknown, ops: unknown) => unknown)(tableConfig.columns, getOperators());
    } catch {
      return undefined;
    }
  }

  /** The tables a relational config's where, extras and orderBy name (subqueries, correlated or not). */
  #expressions(tableConfig: TableConfig, config: Row): Named {
    const call = (v: unknown, arg: unknown) => {
      if (typeof v !== 'function') return v;
      try {
        return (v as (fields: unknown, ops: unknown) => unknown)(tableConfig.columns, arg);
      } catch {
        return undefined;
      }
    };
    const ops = getOperators();
    return named(call(config.where, ops), call(config.extras, { sql: ops.sql }), call(config.orderBy, { ...ops, asc: (c: unknown) => c, desc: (c: unknown) => c }));
  }

  #relations(query: RelationalQuery, tableConfig: TableConfig, selection: unknown, parents: readonly Row[]): void {
    if (selection === null || typeof selection !== 'object') return;
    for (const [name, value] of Object.entries(selection as Row)) {
      if (value === undefined || value === false) continue;
      const relation = tableConfig.relations[name];
      if (relation === undefined) continue;
      const target = tableInfo(relation.referencedTable);
      const targetConfig = query.schema[query.tableNamesMap[getTableUniqueName(relation.referencedTable)] ?? ''];
      const sub = (value !== null && typeof value === 'object' ? value : {}) as Row;
      const loaded: Row[] = [];
      for (const p of parents) {
        const v = p[name];
        for (const r of Array.isArray(v) ? v : [v]) if (r !== null && typeof r === 'object') loaded.push(r as Row);
      }
      this.#relation(query, tableConfig, relation, target, parents);
      if (targetConfig !== undefined) {
        const extra = this.#expressions(targetConfig, sub);
        if ((extra.occurrences.get(target.name) ?? 0) > 0) this.#tracker.list(target.name);
        this.#lists(extra, target.name);
        this.#relations(query, targetConfig, sub.with, loaded);
      } else {
        this.#tracker.list(target.name);
      }
    }
  }

  /** One relation loaded for these parents: the rows it points at, the key of the rows pointing at them, or the list. */
  #relation(query: RelationalQuery, tableConfig: TableConfig, relation: Relation, target: TableInfo, parents: readonly Row[]): void {
    let pair: { fields: Column[]; references: Column[] };
    try {
      pair = normalizeRelation(query.schema as never, query.tableNamesMap, relation) as { fields: Column[]; references: Column[] };
    } catch {
      return this.#tracker.list(target.name);
    }
    const { fields, references } = pair;
    const fieldKeys = fields.map((f) => Object.keys(tableConfig.columns).find((k) => tableConfig.columns[k] === f || tableConfig.columns[k]!.name === f.name));
    const refNames = references.map((r) => r.name);
    const targetColumns = refNames.map((n) => Object.values(target.columns).find((c) => c.name === n));
    if (fieldKeys.some((k) => k === undefined) || targetColumns.some((c) => c === undefined) || fields.length !== references.length || fields.length === 0) {
      return this.#tracker.list(target.name);
    }
    const values: KeyValues[] = [];
    for (const p of parents) {
      const key: Record<string, unknown> = {};
      let none = false;
      for (let i = 0; i < fieldKeys.length; i++) {
        const v = p[fieldKeys[i]!];
        if (v === undefined) return this.#tracker.list(target.name); // not selected: which rows is not known
        if (v === null) none = true;
        else if (!this.#canonical(targetColumns[i]!, v) || !this.#canonical(fields[i]!, v) || keyPart(v) === undefined) return this.#tracker.list(target.name);
        key[refNames[i]!] = v;
      }
      if (!none) values.push(key);
    }
    const pk = target.primaryKey.map((f) => target.columns[f]!.name);
    const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));
    if (same(pk, refNames)) return this.#tag(target, this.#rows(target, values));
    if (target.foreignKeys.some((fk) => same(fk.columns, refNames))) {
      if (values.length > 0) this.#tracker.keys(target.name, values);
      return;
    }
    this.#tracker.list(target.name);
  }
}

/** The parts of a relational query (`PgRelationalQuery` and its SQLite and MySQL twins) read here. */
export interface RelationalQuery {
  readonly table: Table;
  readonly tableConfig: TableConfig;
  readonly schema: Record<string, TableConfig>;
  readonly tableNamesMap: Record<string, string>;
  readonly config?: Row;
  /** `many` or `first` (MySQL: `queryMode`, its `mode` being the server's kind). */
  readonly mode: string;
  readonly queryMode?: string;
}

interface TableConfig {
  readonly columns: Record<string, Column>;
  readonly relations: Record<string, Relation>;
}
