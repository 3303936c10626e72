/**
 * What page-dumper needs to know about a Drizzle table: its SQL name (the model name rows are
 * registered under), its columns by schema field name, and the keys that identify a row.
 */
import { Column, getTableColumns, getTableName, is, Table } from 'drizzle-orm';
import { getTableConfig as mysqlTableConfig, MySqlTable } from 'drizzle-orm/mysql-core';
import { getTableConfig as pgTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';

export interface TableInfo {
  readonly table: Table;
  /** The SQL table name, without a schema: the name the table is registered under. */
  readonly name: string;
  /** Columns by the schema's field names (the keys of a selected row). */
  readonly columns: Readonly<Record<string, Column>>;
  /** The primary key's field names; empty when the schema declares none. */
  readonly primaryKey: readonly string[];
  /** Every key that identifies one row (the primary key first, then unique columns, constraints and indexes), as field names. */
  readonly uniqueKeys: readonly (readonly string[])[];
  /** The primary key's one auto-increment column (MySQL `serial`, `int().autoincrement()`), if any. */
  readonly autoIncrement: string | undefined;
  /** The table's foreign key constraints, as its schema declares them (`.references()`, `foreignKey()`). */
  readonly foreignKeys: readonly ForeignKeyInfo[];
  /**
   * A many-to-many link table: its primary key is made of the columns of two of its foreign keys
   * and nothing else. Its rows are links: written, they invalidate both sides' links (`linkTags`).
   */
  readonly link: boolean;
}

export interface ForeignKeyInfo {
  /** The referencing columns' field names, and their SQL names (the names tags use). */
  readonly fields: readonly string[];
  readonly columns: readonly string[];
  /** The referenced table, and its referenced columns' SQL names, in the same order. */
  readonly target: Table;
  readonly targetColumns: readonly string[];
  /** `cascade`, `set null`, `set default`, `restrict` or `no action`. */
  readonly onDelete: string;
}

interface ExtraConfig {
  readonly primaryKeys: readonly { readonly columns: readonly Column[] }[];
  readonly uniqueConstraints: readonly { readonly columns: readonly Column[] }[];
  readonly indexes: readonly { readonly config: { readonly unique?: boolean; readonly columns: readonly unknown[] } }[];
  readonly foreignKeys?: readonly { readonly onDelete?: string; reference(): { columns: readonly Column[]; foreignColumns: readonly Column[]; foreignTable: Table } }[];
}

const cache = new WeakMap<Table, TableInfo>();

function extraConfig(table: Table): ExtraConfig | undefined {
  if (is(table, PgTable)) return pgTableConfig(table) as unknown as ExtraConfig;
  if (is(table, SQLiteTable)) return sqliteTableConfig(table) as unknown as ExtraConfig;
  if (is(table, MySqlTable)) return mysqlTableConfig(table) as unknown as ExtraConfig;
  return undefined;
}

export function tableInfo(table: Table): TableInfo {
  let info = cache.get(table);
  if (info !== undefined) return info;
  const columns = getTableColumns(table) as Record<string, Column>;
  const fieldOf = new Map<Column, string>(Object.entries(columns).map(([k, c]) => [c, k]));
  const byName = new Map<string, string>(Object.entries(columns).map(([k, c]) => [c.name, k]));
  const fields = (cols: readonly unknown[]): string[] | undefined => {
    const out: string[] = [];
    for (const c of cols) {
      // PostgreSQL hands a table's extra config (primaryKey(), index()) columns of their own: matched by name.
      const f = fieldOf.get(c as Column) ?? (is(c, Column) ? byName.get(c.name) : undefined);
      if (f === undefined) return undefined; // an index on an expression identifies nothing we can compare
      out.push(f);
    }
    return out;
  };
  const keys: string[][] = [];
  const add = (key: string[] | undefined) => {
    if (key !== undefined && key.length > 0 && !keys.some((k) => k.join('\u0000') === key.join('\u0000'))) keys.push(key);
  };
  const extra = extraConfig(table);
  const inline = Object.keys(columns).filter((k) => columns[k]!.primary);
  add(inline.length > 0 ? inline : extra?.primaryKeys[0] && fields(extra.primaryKeys[0].columns));
  const primaryKey = keys[0] ?? [];
  for (const [k, c] of Object.entries(columns)) if (c.isUnique) add([k]);
  for (const u of extra?.uniqueConstraints ?? []) add(fields(u.columns));
  for (const i of extra?.indexes ?? []) if (i.config.unique) add(fields(i.config.columns));
  const auto = primaryKey.length === 1 && (columns[primaryKey[0]!] as { autoIncrement?: boolean }).autoIncrement === true ? primaryKey[0] : undefined;
  const foreignKeys: ForeignKeyInfo[] = [];
  for (const fk of extra?.foreignKeys ?? []) {
    const ref = fk.reference();
    const f = fields(ref.columns);
    if (f === undefined || ref.foreignColumns.length !== ref.columns.length) continue;
    foreignKeys.push({ fields: f, columns: ref.columns.map((c) => c.name), target: ref.foreignTable, targetColumns: ref.foreignColumns.map((c) => c.name), onDelete: fk.onDelete ?? 'no action' });
  }
  const pkColumns = primaryKey.map((f) => columns[f]!.name);
  const covering = foreignKeys.filter((fk) => fk.columns.every((c) => pkColumns.includes(c)));
  const link =
    covering.length === 2 &&
    pkColumns.every((c) => covering.some((fk) => fk.columns.includes(c))) &&
    !covering[0]!.columns.some((c) => covering[1]!.columns.includes(c));
  info = { table, name: sqlName(table), columns, primaryKey, uniqueKeys: keys, autoIncrement: auto, foreignKeys, link };
  cache.set(table, info);
  if (!isAlias(table) && !known.has(info.name)) known.set(info.name, table);
  return info;
}

/** Tables seen by name (schemas given to drizzle(), tables read or written): where cascades are looked for. */
const known = new Map<string, Table>();

/** Makes a schema's tables known (for the foreign keys that point at a table being deleted from). */
export function noteTables(values: Iterable<unknown>): void {
  for (const v of values) if (is(v, Table)) tableInfo(v);
}

/** Every known table whose foreign keys reference `name`, with those keys. */
export function referencing(name: string): Array<{ info: TableInfo; fk: ForeignKeyInfo }> {
  const out: Array<{ info: TableInfo; fk: ForeignKeyInfo }> = [];
  for (const table of known.values()) {
    const info = tableInfo(table);
    for (const fk of info.foreignKeys) if (tableInfo(fk.target).name === name) out.push({ info, fk });
  }
  return out;
}

/** `alias(t, 'x')`: a table object of its own for a table of the schema. */
export function isAlias(table: Table): boolean {
  return (table as unknown as Record<symbol, unknown>)[Symbol.for('drizzle:IsAlias')] === true;
}

/**
 * The name a table is registered under: its SQL name, that of the table an alias (`alias(t, 'x')`)
 * stands for, prefixed with its schema (`schema.table`) when it is in a schema of its own
 * (`pgSchema('s').table(...)`, `mysqlSchema('s').table(...)`).
 */
function sqlName(table: Table): string {
  const t = table as unknown as Record<symbol, unknown>;
  const name = String(t[Symbol.for('drizzle:OriginalName')] ?? getTableName(table));
  const schema = t[Symbol.for('drizzle:Schema')];
  return typeof schema === 'string' && schema !== '' ? `${schema}.${name}` : name;
}

/** A key for a row, to tell rows apart: its primary key, or every column when there is none. */
export function rowKey(info: TableInfo, row: Record<string, unknown>): string {
  const fields = info.primaryKey.length > 0 ? info.primaryKey : Object.keys(info.columns);
  return JSON.stringify(fields.map((f) => valueKey(row[f])));
}

export function valueKey(value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return value;
}
