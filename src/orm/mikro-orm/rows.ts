/**
 * Rows of MikroORM entities as page-dumper handles them: primary-key conditions, the entity
 * helper MikroORM puts on every entity, and the metadata questions the integration asks (which
 * relations, which pivot table, which columns). Nothing here runs a query.
 */
import type { EntityMetadata, EntityProperty } from '@mikro-orm/core';

export type Row = Record<string, unknown>;
/** A primary key as a condition: `{ id: 1 }`, `{ iceCream: 1, size: 2 }`. */
export type PkCond = Record<string, unknown>;
export type Meta = EntityMetadata<any>;
export type Prop = EntityProperty<any>;

/** What MikroORM keeps on every entity (`wrap(entity, true)`), as far as page-dumper reads it. */
export interface EntityHelper {
  readonly __meta: Meta;
  readonly __originalEntityData?: Row;
  getPrimaryKey(): unknown;
}

export function helperOf(entity: unknown): EntityHelper | undefined {
  if (entity === null || typeof entity !== 'object') return undefined;
  const h = (entity as { __helper?: EntityHelper }).__helper;
  return h !== undefined && typeof h.getPrimaryKey === 'function' ? h : undefined;
}

/** The entity behind a `Reference` (`ref: true` relations), or the value itself. */
export function unwrapRef(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && typeof (value as { unwrap?: unknown }).unwrap === 'function' && !helperOf(value)) {
    return (value as { unwrap(): unknown }).unwrap();
  }
  return value;
}

function isPlain(value: unknown): value is Row {
  return value !== null && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value) && !Array.isArray(value);
}

/** A key value as a condition: an entity (or reference) becomes its own primary key. */
function keyValue(value: unknown): unknown {
  const v = unwrapRef(value);
  const h = helperOf(v);
  return h === undefined ? v : h.getPrimaryKey();
}

/**
 * The primary-key condition of a row, from an entity or a plain object (mapped query results,
 * original entity data). `undefined` when a key part is missing (a new entity before its insert).
 */
export function pkOf(meta: Meta, source: unknown): PkCond | undefined {
  if (source === null || typeof source !== 'object') return undefined;
  const cond: PkCond = {};
  for (const pk of meta.primaryKeys as string[]) {
    const value = keyValue((source as Row)[pk]);
    if (value == null) return undefined;
    cond[pk] = value;
  }
  return cond;
}

/** A stable text for a key value: `id=1`, `iceCream=1&size=2`. */
export function valueKey(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  if (Array.isArray(value)) return `[${value.map(valueKey).join(',')}]`;
  if (isPlain(value)) {
    return Object.keys(value)
      .sort()
      .map((k) => `${k}=${valueKey(value[k])}`)
      .join('&');
  }
  return `${typeof value}:${String(value)}`;
}

export function rowKey(meta: Meta, pk: PkCond): string {
  return `${meta.root.className}|${valueKey(pk)}`;
}

/** A `where` for rows by primary key: `{ id: { $in: [...] } }`, or `$or` for composite keys. */
export function wherePks(meta: Meta, pks: readonly PkCond[]): Row {
  const keys = meta.primaryKeys as string[];
  if (keys.length === 1) return { [keys[0]!]: { $in: pks.map((p) => p[keys[0]!]) } };
  return { $or: pks.map((p) => ({ ...p })) };
}

export const MANY_TO_MANY = 'm:n';
const LOADED_BY_DEFAULT = new Set(['m:n', 'm:1', '1:1']);

/** The relations `'auto'` loads: many-to-many (both sides), many-to-one and one-to-one. */
export function autoRelations(meta: Meta): string[] {
  return (meta.relations as Prop[]).filter((p) => LOADED_BY_DEFAULT.has(p.kind) && !isPivotProp(meta, p)).map((p) => p.name);
}

export function allRelations(meta: Meta): string[] {
  return (meta.relations as Prop[]).filter((p) => !isPivotProp(meta, p)).map((p) => p.name);
}

export function manyToMany(meta: Meta): Prop[] {
  return (meta.relations as Prop[]).filter((p) => p.kind === MANY_TO_MANY);
}

function isPivotProp(meta: Meta, prop: Prop): boolean {
  return meta.pivotTable === true && prop.kind !== 'm:1';
}

/**
 * The two sides of a pivot entity (the join table of a many-to-many relation): its many-to-one
 * properties. `undefined` when it is not a plain two-sided join table.
 */
export function pivotSides(meta: Meta): [Prop, Prop] | undefined {
  if (meta.pivotTable !== true) return undefined;
  const sides = (meta.relations as Prop[]).filter((p) => p.kind === 'm:1');
  return sides.length === 2 ? [sides[0]!, sides[1]!] : undefined;
}

/**
 * The primary-key condition of the row a many-to-one value points at: a key value (query
 * results carry the referenced key), an entity, or a reference. `undefined` for a composite
 * reference given as a bare value.
 */
export function referencedPk(target: Meta, value: unknown): PkCond | undefined {
  const v = unwrapRef(value);
  if (v == null) return undefined;
  if (helperOf(v) !== undefined || isPlain(v)) return pkOf(target, v);
  const keys = target.primaryKeys as string[];
  if (keys.length === 1) return { [keys[0]!]: v };
  if (Array.isArray(v) && v.length === keys.length) return Object.fromEntries(keys.map((k, i) => [k, v[i]]));
  return undefined;
}

/** Property name by column name, for the single-column properties (QueryBuilder data is by column). */
export function propsByColumn(meta: Meta): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of meta.props as Prop[]) {
    if (p.fieldNames?.length === 1) out.set(p.fieldNames[0]!, p.name);
  }
  return out;
}
