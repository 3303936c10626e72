/**
 * What page-dumper needs to know about a written table, read from the database once per table
 * (per wrapped Kysely) on the write's own connection: its columns (to add them to a RETURNING the
 * caller narrowed), its primary key and unique keys (on PostgreSQL, to choose the lock of the read
 * before an update), and on MySQL its auto-increment column (to find the rows a write touched
 * again, MySQL having no RETURNING).
 */
import { CompiledQuery, type DatabaseConnection } from 'kysely';

export type DialectName = 'postgres' | 'sqlite' | 'mysql';

export interface TableInfo {
  /** Every column, in table order. */
  readonly columns: readonly string[];
  /** The primary key's columns; empty when the table has none. */
  readonly primaryKey: readonly string[];
  /** Every unique key (the primary key first), as column lists. MySQL and PostgreSQL. */
  readonly uniques: ReadonlyArray<readonly string[]>;
  /** The auto-increment column, if any. MySQL only. */
  readonly autoIncrement: string | undefined;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function readTable(connection: DatabaseConnection, dialect: DialectName, schema: string | undefined, table: string): Promise<TableInfo> {
  if (dialect === 'sqlite') {
    const prefix = schema === undefined ? '' : `${quote(schema)}.`;
    const { rows } = await connection.executeQuery<{ name: string; pk: number }>(CompiledQuery.raw(`pragma ${prefix}table_info(${quote(table)})`));
    const primaryKey = rows.filter((r) => r.pk > 0).sort((a, b) => a.pk - b.pk).map((r) => r.name);
    return { columns: rows.map((r) => r.name), primaryKey, uniques: primaryKey.length > 0 ? [primaryKey] : [], autoIncrement: undefined };
  }
  if (dialect === 'postgres') {
    const name = schema === undefined ? quote(table) : `${quote(schema)}.${quote(table)}`;
    const { rows } = await connection.executeQuery<{ attname: string }>(
      CompiledQuery.raw('select attname from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped order by attnum', [name]),
    );
    const pk = await connection.executeQuery<{ attname: string }>(
      CompiledQuery.raw(
        'select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = to_regclass($1) and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)',
        [name],
      ),
    );
    const primaryKey = pk.rows.map((r) => r.attname);
    // Every unique index's columns (an update setting none takes FOR NO KEY UPDATE).
    const idx = await connection.executeQuery<{ idx: string; attname: string }>(
      CompiledQuery.raw(
        'select i.indexrelid::text as idx, a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = to_regclass($1) and i.indisunique and not i.indisprimary order by i.indexrelid, array_position(i.indkey::int2[], a.attnum)',
        [name],
      ),
    );
    const others = new Map<string, string[]>();
    for (const { idx: i, attname } of idx.rows) {
      let list = others.get(i);
      if (list === undefined) others.set(i, (list = []));
      list.push(attname);
    }
    return { columns: rows.map((r) => r.attname), primaryKey, uniques: [...(primaryKey.length > 0 ? [primaryKey] : []), ...others.values()], autoIncrement: undefined };
  }
  const where = `TABLE_SCHEMA = ${schema === undefined ? 'database()' : '?'} and TABLE_NAME = ?`;
  const params = schema === undefined ? [table] : [schema, table];
  const columns = await connection.executeQuery<{ name: string; extra: string }>(
    CompiledQuery.raw(`select COLUMN_NAME as name, EXTRA as extra from information_schema.COLUMNS where ${where} order by ORDINAL_POSITION`, params),
  );
  const indexes = await connection.executeQuery<{ idx: string; col: string }>(
    CompiledQuery.raw(
      `select INDEX_NAME as idx, COLUMN_NAME as col from information_schema.STATISTICS where ${where} and NON_UNIQUE = 0 order by INDEX_NAME = 'PRIMARY' desc, INDEX_NAME, SEQ_IN_INDEX`,
      params,
    ),
  );
  const uniques = new Map<string, string[]>();
  for (const { idx, col } of indexes.rows) {
    let list = uniques.get(idx);
    if (list === undefined) uniques.set(idx, (list = []));
    list.push(col);
  }
  return {
    columns: columns.rows.map((r) => r.name),
    primaryKey: uniques.get('PRIMARY') ?? [],
    uniques: [...uniques.values()],
    autoIncrement: columns.rows.find((r) => /auto_increment/i.test(r.extra))?.name,
  };
}
