/**
 * `trackReads` for TypeORM: every SELECT a data source's QueryBuilders run (which is every read of
 * `find*()`, `count*()`, `exist*()`, relation loaders and hand-built QueryBuilders) tags the page
 * being rendered, following the model of ../reads.ts:
 *
 * - `find*()` whose `where` names only the primary key (`{ id: 1 }`, `{ id: In([1, 2]) }`) tags
 *   the rows asked for, found or not; one whose `where` names only a foreign key
 *   (`{ post: { id: 1 } }`, `{ postId: 1 }`) tags that key.
 * - Relations loaded with such a `find*()` (`relations`, eager relations; LEFT joins by relation):
 *   a to-one relation tags the rows it loaded; a one-to-many relation tags the children's foreign
 *   key for each parent; a many-to-many relation tags the join table's key for each parent and
 *   the rows it loaded.
 * - Anything else (other conditions, `or`, inner joins, joins with conditions, raw selections of
 *   joined rows, QueryBuilders built by hand) tags the list of every table it names.
 * - An ORDER BY on a joined alias's column tags that table's list (and its join table's): the
 *   order, and with `take`/`skip` which parents come back, depends on rows the page may not show.
 * - A read of a `@ViewEntity` also tags the lists of the tables under it; of an entity with a
 *   `@VirtualColumn`, or a view whose tables cannot be told, the lists of every table.
 *
 * A key value asked for is tagged as the database spells the rows it matches (`'01'` as the
 * integer 1), or, where that cannot be told for its column and driver, as the table's list; the
 * rows found are also tagged by their keys as returned, which is how writes tag them (./keys.ts).
 *
 * The QueryBuilder methods wrapped are those of the data source's own copy of TypeORM, once per
 * process; for a data source without `trackReads`, the wrappers only call through.
 */
import type { DataSource, EntityMetadata, ObjectLiteral } from 'typeorm';
import { keyPart, type KeyValues, type ReadTracker } from '../reads.js';
import { askedKey, returnedKey } from './keys.js';

type Relation = EntityMetadata['relations'][number];

/**
 * What a find's `where` says about the rows of its main table: their primary keys, or the foreign
 * keys they share, as the database spells them (see ./keys.ts); `undefined` when a value asked for
 * cannot be spelled so (the read then tags the table's list).
 */
type Where = { readonly kind: 'rows'; readonly ids: KeyValues[] | undefined } | { readonly kind: 'keys'; readonly keys: KeyValues[] | undefined };

/** The shapes of TypeORM's internals read here (not in its public types). */
interface Alias {
  readonly name: string;
  readonly hasMetadata: boolean;
  readonly metadata: EntityMetadata;
}
interface JoinAttribute {
  readonly direction: 'LEFT' | 'INNER';
  readonly condition?: string | undefined;
  readonly alias: Alias;
  readonly parentAlias: string | undefined;
  readonly relation: Relation | undefined;
  readonly metadata: EntityMetadata | undefined;
  readonly isSelected: boolean;
  readonly mapToProperty?: string | undefined;
}
interface WhereClause {
  readonly type: 'simple' | 'and' | 'or';
  readonly condition: unknown;
  [WHERE]?: Where;
}
interface ExpressionMap {
  readonly mainAlias: Alias | undefined;
  readonly aliases: readonly Alias[];
  readonly joinAttributes: readonly JoinAttribute[];
  readonly wheres: WhereClause[];
  readonly relationLoadStrategy?: string;
  /** The ORDER BY, by `alias.property` or expression; with the entity's default order when none is set. */
  readonly allOrderBys?: Readonly<Record<string, unknown>>;
  readonly orderBys?: Readonly<Record<string, unknown>>;
}
interface SelectBuilder {
  readonly expressionMap: ExpressionMap;
  readonly findOptions?: { readonly where?: unknown };
  readonly conditions?: string;
  readonly dataSource?: object;
  readonly connection?: object;
}
type Method = (this: SelectBuilder, ...args: unknown[]) => unknown;

/** Marks the WHERE clause that `setFindOptions()` added with what its `where` means; clones keep it. */
const WHERE = Symbol('page-dumper.typeorm.where');
const WRAPPED = Symbol('page-dumper.typeorm.reads');

/** The read tracker of each data source with `trackReads`. */
const trackers = new WeakMap<object, ReadTracker>();
/**
 * Builders an outer wrapper is tagging for (an entity query, a count, an exists), and their
 * clones: the SELECTs they run on the way are not tagged again, more coarsely. A count per
 * builder, for one builder executed twice at once.
 */
const running = new WeakMap<object, number>();

function trackerOf(qb: SelectBuilder): ReadTracker | undefined {
  return trackers.get(qb.dataSource ?? qb.connection ?? {});
}

export function trackReads(dataSource: DataSource, tracker: ReadTracker): void {
  trackers.set(dataSource, tracker);
  wrapSelects(dataSource);
}

export function untrackReads(dataSource: DataSource): void {
  trackers.delete(dataSource);
}

function wrapSelects(dataSource: DataSource): void {
  const proto = Object.getPrototypeOf(dataSource.createQueryBuilder()) as Record<PropertyKey, unknown>;
  if (Object.hasOwn(proto, WRAPPED)) return;
  Object.defineProperty(proto, WRAPPED, { value: true });

  const setFindOptions = proto.setFindOptions as Method;
  proto.setFindOptions = function (this: SelectBuilder, ...args: unknown[]) {
    const before = this.expressionMap.wheres.length;
    const result = setFindOptions.apply(this, args);
    const metadata = this.expressionMap.mainAlias?.hasMetadata ? this.expressionMap.mainAlias.metadata : undefined;
    const added = this.expressionMap.wheres.length === before + 1 ? this.expressionMap.wheres[before] : undefined;
    if (metadata !== undefined && added !== undefined && trackerOf(this) !== undefined) {
      const where = classify(metadata, this.findOptions?.where);
      if (where !== undefined) added[WHERE] = where;
    }
    return result;
  };

  const clone = proto.clone as Method;
  proto.clone = function (this: SelectBuilder, ...args: unknown[]) {
    const copy = clone.apply(this, args) as object;
    if (running.has(this)) running.set(copy, 1);
    return copy;
  };

  const outer = (name: string, mode: Mode) => {
    const original = proto[name] as Method;
    proto[name] = async function (this: SelectBuilder, ...args: unknown[]) {
      const tracker = trackerOf(this);
      if (tracker === undefined) return original.apply(this, args);
      running.set(this, (running.get(this) ?? 0) + 1);
      let result: unknown;
      try {
        result = await original.apply(this, args);
      } finally {
        const n = running.get(this)! - 1;
        if (n === 0) running.delete(this);
        else running.set(this, n);
      }
      tagQuery(tracker, this, mode, mode === 'entities' ? ((result as { entities?: unknown[] }).entities ?? []) : undefined);
      return result;
    };
  };
  outer('executeEntitiesAndRawResults', 'entities');
  outer('executeCountQuery', 'count');
  outer('executeExistsQuery', 'count');

  const loadRawResults = proto.loadRawResults as Method;
  proto.loadRawResults = async function (this: SelectBuilder, ...args: unknown[]) {
    const result = await loadRawResults.apply(this, args);
    const tracker = trackerOf(this);
    if (tracker !== undefined && !running.has(this)) tagQuery(tracker, this, 'raw', undefined);
    return result;
  };
}

/**
 * - `entities`: rows were turned into entities (the loaded relations are known);
 * - `count`: only how many main rows match (a count, an exists): LEFT joins change nothing;
 * - `raw`: raw rows, whose joined columns are not known to be entities.
 */
type Mode = 'entities' | 'count' | 'raw';

function tagQuery(tracker: ReadTracker, qb: SelectBuilder, mode: Mode, entities: readonly unknown[] | undefined): void {
  const map = qb.expressionMap;
  const main = map.mainAlias;
  const dataSource = (qb.dataSource ?? qb.connection) as DataSource | undefined;
  if (dataSource !== undefined) for (const alias of map.aliases) if (alias.hasMetadata) tagHidden(tracker, dataSource, alias.metadata);
  const where = whereOf(map);
  if (main === undefined || !main.hasMetadata || where === undefined || !map.joinAttributes.every(isPlainJoin)) {
    return tagLists(tracker, map);
  }
  const table = main.metadata.tablePath;
  const asked = where.kind === 'rows' ? where.ids : where.keys;
  if (asked === undefined) tracker.list(table);
  else if (where.kind === 'rows') tracker.rows(table, asked);
  else tracker.keys(table, asked);
  if (mode === 'count') return;
  if (!tagOrder(tracker, map)) return tagLists(tracker, map);
  // The rows found, as the database returned their keys: what a write of them tags.
  if (where.kind === 'rows' && asked !== undefined && entities !== undefined) tagRows(tracker, main.metadata, entities.filter(isObject));

  // Entities by alias, to name the rows each relation loaded and the parents of to-many relations.
  const byAlias = new Map<string, ObjectLiteral[]>();
  if (entities !== undefined) byAlias.set(main.name, entities.filter(isObject));
  for (const join of map.joinAttributes) {
    const relation = join.relation!;
    const target = relation.inverseEntityMetadata;
    const parentAlias = join.parentAlias!;
    const parents = byAlias.get(parentAlias);
    let loaded: ObjectLiteral[] | undefined;
    if (parents !== undefined) {
      loaded = [];
      for (const p of parents) {
        const value = relation.getEntityValue(p);
        if (Array.isArray(value)) loaded.push(...value.filter(isObject));
        else if (isObject(value)) loaded.push(value);
      }
      byAlias.set(join.alias.name, loaded);
    }
    // The parents' primary keys: the rows asked for when the parent is the main table found by
    // id (found or not, so a parent inserted later is covered by its row tag), else the loaded ones.
    const parentIds =
      parentAlias === main.name && where.kind === 'rows' && where.ids !== undefined
        ? where.ids
        : parents?.map((p) => relation.entityMetadata.getEntityIdMap(p)).filter((id): id is ObjectLiteral => id !== undefined);
    if (relation.isManyToOne || relation.isOneToOneOwner) {
      // Which row is joined is the parent's foreign key (covered by the parent's tags); what it shows is its own.
      if (!join.isSelected) continue;
      if (loaded === undefined) {
        tracker.list(target.tablePath);
        continue;
      }
      tagRows(tracker, target, loaded);
    } else if (relation.isManyToMany) {
      const junction = relation.junctionEntityMetadata!;
      const columns = relation.isOwning ? junction.ownerColumns : junction.inverseColumns;
      const keys = parentIds === undefined ? undefined : keysOf(columns, parentIds);
      if (keys === undefined) tracker.list(junction.tablePath);
      else tracker.keys(junction.tablePath, keys);
      if (loaded === undefined) tracker.list(target.tablePath);
      else tagRows(tracker, target, loaded);
    } else {
      // One-to-many, or the inverse side of a one-to-one: the children whose foreign key names a parent.
      const inverse = relation.inverseRelation;
      const keys = inverse === undefined || parentIds === undefined ? undefined : keysOf(inverse.joinColumns, parentIds);
      if (keys === undefined) tracker.list(target.tablePath);
      else tracker.keys(target.tablePath, keys);
    }
  }
}

/**
 * The tables a read of `metadata` depends on beyond its own rows, as lists: a view's (`@ViewEntity`)
 * are the tables its expression reads; an entity with a `@VirtualColumn` (a SQL subquery per row)
 * depends on every table of the data source, since its SQL is not parsed. A view's expression built
 * by a QueryBuilder function names its tables (views among them followed); one written as SQL, or
 * whose QueryBuilder has a subquery, a join of a raw table name or a SQL expression as its source,
 * is every table of the data source too.
 */
function tagHidden(tracker: ReadTracker, dataSource: DataSource, metadata: EntityMetadata): void {
  let tables = hidden.get(metadata);
  if (tables === undefined) {
    tables = hiddenTables(dataSource, metadata, new Set()) ?? everyTable(dataSource);
    hidden.set(metadata, tables);
  }
  for (const table of tables) tracker.list(table);
}

/** What `tagHidden()` tags for each entity, worked out once (a view's expression is built once). */
const hidden = new WeakMap<EntityMetadata, readonly string[]>();

/** The tables behind `metadata` (see `tagHidden()`), or `undefined` when they cannot be told (then: every table). */
function hiddenTables(dataSource: DataSource, metadata: EntityMetadata, seen: Set<EntityMetadata>): string[] | undefined {
  if (metadata.columns.some((c) => c.isVirtualProperty && typeof c.query === 'function')) return undefined;
  if (metadata.tableType !== 'view') return [];
  if (seen.has(metadata)) return undefined;
  seen.add(metadata);
  const expression = metadata.expression;
  if (typeof expression !== 'function') return undefined;
  let built: unknown;
  try {
    built = expression(dataSource);
  } catch {
    return undefined;
  }
  const map = (built as Partial<SelectBuilder> | null)?.expressionMap;
  if (map === undefined || typeof (built as { getQuery?: unknown }).getQuery !== 'function') return undefined;
  // One SELECT in its SQL: no subquery (in a selection, a condition, a join or a virtual column it
  // selects) reads a table unnamed here.
  if (((built as { getQuery(): string }).getQuery().match(/\bselect\b/gi) ?? []).length !== 1) return undefined;
  const tables: string[] = [];
  for (const alias of map.aliases) {
    if (!alias.hasMetadata) return undefined;
    if (alias.metadata.tableType !== 'view') {
      tables.push(alias.metadata.tablePath);
      continue;
    }
    const under = hiddenTables(dataSource, alias.metadata, seen);
    if (under === undefined) return undefined;
    tables.push(...under);
  }
  for (const join of map.joinAttributes) {
    const junction = join.relation?.junctionEntityMetadata;
    if (junction !== undefined) tables.push(junction.tablePath);
  }
  return tables;
}

/** Every table of the data source's entities (views are covered by theirs). */
function everyTable(dataSource: DataSource): string[] {
  return dataSource.entityMetadatas.filter((m) => m.tableType !== 'view').map((m) => m.tablePath);
}

/**
 * An ORDER BY on a joined alias's column: the order of the rows (and, with `take`/`skip`, which
 * parents are returned at all) depends on rows of that table that the page may not show, the
 * joined rows of parents not returned among them, so the query depends on the whole table: its
 * list, and the join table's list for a many-to-many relation. `false` when an ordering names
 * no alias of the query (an expression): the caller then tags every table's list.
 */
function tagOrder(tracker: ReadTracker, map: ExpressionMap): boolean {
  const order = map.allOrderBys ?? map.orderBys ?? {};
  const main = map.mainAlias!;
  for (const key of Object.keys(order)) {
    const alias = orderAlias(map, key);
    if (alias === undefined) return false;
    if (alias === main.name) continue;
    const join = map.joinAttributes.find((j) => j.alias.name === alias);
    if (join === undefined) return false;
    const junction = join.relation?.junctionEntityMetadata;
    if (junction !== undefined) tracker.list(junction.tablePath);
    if (join.alias.hasMetadata) tracker.list(join.alias.metadata.tablePath);
    else return false;
  }
  return true;
}

/** The alias an ORDER BY key (`alias.property`, maybe quoted) starts with, the longest that fits; `undefined` for none. */
function orderAlias(map: ExpressionMap, key: string): string | undefined {
  let found: string | undefined;
  for (const alias of map.aliases) {
    const name = alias.name;
    const spellings = [`${name}.`, `"${name}".`, `\`${name}\`.`, `[${name}].`];
    if (spellings.some((s) => key.startsWith(s)) && (found === undefined || name.length > found.length)) found = name;
  }
  return found;
}

/** Every table a query names, as lists: the aliases with an entity and the join tables of many-to-many joins. */
function tagLists(tracker: ReadTracker, map: ExpressionMap): void {
  for (const alias of map.aliases) if (alias.hasMetadata) tracker.list(alias.metadata.tablePath);
  for (const join of map.joinAttributes) {
    const junction = join.relation?.junctionEntityMetadata;
    if (junction !== undefined) tracker.list(junction.tablePath);
    else if (join.metadata !== undefined) tracker.list(join.metadata.tablePath);
  }
}

/**
 * A join along a relation, with no condition of its own, that adds columns and never drops a
 * parent row: a LEFT join, or the INNER join TypeORM makes for a non-nullable to-one relation
 * whose foreign key constraint guarantees the joined row exists.
 */
function isPlainJoin(join: JoinAttribute): boolean {
  const relation = join.relation;
  if (relation === undefined || join.condition !== undefined || join.parentAlias === undefined || join.mapToProperty !== undefined) return false;
  if (join.direction === 'LEFT') return true;
  return (relation.isManyToOne || relation.isOneToOneOwner) && relation.createForeignKeyConstraints && !relation.isNullable;
}

/** The find's `where` when the builder's conditions are still it, maybe narrowed with AND; else `undefined`. */
function whereOf(map: ExpressionMap): Where | undefined {
  let found: Where | undefined;
  for (const clause of map.wheres) {
    if (clause.type === 'or') return undefined;
    if (clause[WHERE] !== undefined) found = clause[WHERE];
  }
  return found;
}

function isObject(value: unknown): value is ObjectLiteral {
  return value !== null && typeof value === 'object';
}

function isFindOperator(value: unknown): value is { readonly type: string; readonly value: unknown } {
  return isObject(value) && value['@instanceof'] === Symbol.for('FindOperator');
}

/** The key values a condition on one column asks for: a value, `Equal(value)` or `In([...])`. */
function valuesOf(condition: unknown): unknown[] | undefined {
  if (isFindOperator(condition)) {
    if (condition.type === 'equal') return valuesOf(condition.value);
    if (condition.type === 'in' && Array.isArray(condition.value)) return condition.value.every((v) => keyPart(v) !== undefined) ? condition.value : undefined;
    return undefined;
  }
  return keyPart(condition) === undefined ? undefined : [condition];
}

/** What a find's `where` (an object, or an array of them: OR) says, if it names only a primary or a foreign key. */
function classify(metadata: EntityMetadata, where: unknown): Where | undefined {
  const items = Array.isArray(where) ? where : [where];
  if (items.length === 0 || !items.every(isObject)) return undefined;
  const ids: KeyValues[] = [];
  const keys: KeyValues[] = [];
  for (const item of items) {
    const byId = primaryKeys(metadata, item);
    if (byId !== undefined) {
      ids.push(...byId);
      continue;
    }
    const byKey = foreignKeys(metadata, item);
    if (byKey === undefined) return undefined;
    keys.push(...byKey);
  }
  if (ids.length > 0 && keys.length > 0) return undefined;
  const canonical = (values: KeyValues[]): KeyValues[] | undefined => {
    const out: KeyValues[] = [];
    for (const value of values) {
      const key: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(value)) {
        const column = metadata.findColumnWithDatabaseName(name);
        const text = column === undefined ? undefined : askedKey(column, v);
        if (text === undefined) return undefined;
        key[name] = text;
      }
      out.push(key);
    }
    return out;
  };
  return ids.length > 0 ? { kind: 'rows', ids: canonical(ids) } : keys.length > 0 ? { kind: 'keys', keys: canonical(keys) } : undefined;
}

/** `{ id: 1 }`, `{ id: In([1, 2]) }`, `{ a: 1, b: 2 }` for a composite key: the ids, by column name. */
function primaryKeys(metadata: EntityMetadata, item: ObjectLiteral): KeyValues[] | undefined {
  const primary = metadata.primaryColumns;
  const names = Object.keys(item);
  if (primary.length === 0 || names.length !== primary.length) return undefined;
  if (primary.length === 1) {
    const column = primary[0]!;
    if (names[0] !== column.propertyPath) return undefined;
    return valuesOf(item[names[0]!])?.map((v) => ({ [column.databaseName]: v }));
  }
  const id: Record<string, unknown> = {};
  for (const column of primary) {
    if (!Object.hasOwn(item, column.propertyPath)) return undefined;
    const values = valuesOf(item[column.propertyPath]);
    if (values?.length !== 1) return undefined;
    id[column.databaseName] = values[0];
  }
  return [id];
}

/** `{ post: { id: 1 } }`, `{ post: 1 }` or `{ postId: 1 }` (a column of the foreign key): the key, by column name. */
function foreignKeys(metadata: EntityMetadata, item: ObjectLiteral): KeyValues[] | undefined {
  const names = Object.keys(item);
  if (names.length !== 1) return undefined;
  const name = names[0]!;
  const value = item[name];
  const relation = metadata.relations.find((r) => r.propertyPath === name && (r.isManyToOne || r.isOneToOneOwner));
  if (relation !== undefined) {
    const [column, ...more] = relation.joinColumns;
    if (column === undefined || more.length > 0 || column.referencedColumn === undefined) return undefined;
    let condition = value;
    if (isObject(value) && !isFindOperator(value) && !(value instanceof Date)) {
      const inner = Object.keys(value);
      if (inner.length !== 1 || inner[0] !== column.referencedColumn.propertyPath) return undefined;
      condition = value[inner[0]!];
    }
    return valuesOf(condition)?.map((v) => ({ [column.databaseName]: v }));
  }
  const column = metadata.columns.find((c) => c.propertyPath === name);
  if (column === undefined) return undefined;
  const isForeignKey = metadata.relations.some(
    (r) => (r.isManyToOne || r.isOneToOneOwner) && r.joinColumns.length === 1 && r.joinColumns[0]!.databaseName === column.databaseName,
  );
  if (!isForeignKey) return undefined;
  return valuesOf(value)?.map((v) => ({ [column.databaseName]: v }));
}

/** Loaded rows, by their keys as the database returned them (as a write of them tags them); a row whose key is not one, the list. */
function tagRows(tracker: ReadTracker, metadata: EntityMetadata, rows: readonly ObjectLiteral[]): void {
  const ids: KeyValues[] = [];
  for (const row of rows) {
    const id: Record<string, unknown> = {};
    for (const column of metadata.primaryColumns) {
      const value = returnedKey(column, column.getEntityValue(row));
      if (value === undefined) return tracker.list(metadata.tablePath);
      id[column.databaseName] = value;
    }
    ids.push(id);
  }
  tracker.rows(metadata.tablePath, ids);
}

/**
 * The foreign keys (`columns`, each referencing a primary column of the parent) that point at the
 * parents with these ids (by column name), or `undefined` when one cannot be told.
 */
function keysOf(columns: readonly EntityMetadata['columns'][number][], ids: readonly ObjectLiteral[]): KeyValues[] | undefined {
  if (columns.length === 0) return undefined;
  const keys: KeyValues[] = [];
  for (const id of ids) {
    const key: Record<string, unknown> = {};
    for (const column of columns) {
      const referenced = column.referencedColumn;
      if (referenced === undefined) return undefined;
      // `id` is by database name (asked for) or by property (an entity id map). The key column's
      // rows are spelled as the database compares them with it, which may not be the parent's way.
      const value = askedKey(column, Object.hasOwn(id, referenced.databaseName) ? id[referenced.databaseName] : referenced.getEntityValue(id));
      if (value === undefined) return undefined;
      key[column.databaseName] = value;
    }
    keys.push(key);
  }
  return keys;
}
