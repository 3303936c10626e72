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

// ---------------------------------------------------------------- trackReads

/**
 * How a key value of a column can be spelled so that the tag it makes is the one a write of the
 * matching row makes (from the row the database returns):
 * - `int`: an integer column: a safe integer, a bigint, or a string of one in its plain decimal form;
 * - `text`: a string column compared byte for byte (PostgreSQL `text`/`varchar` with a
 *   deterministic collation; SQLite TEXT affinity when the table declares no COLLATE): a string;
 * - `uuid`: PostgreSQL `uuid`: a string in lower-case hyphenated form;
 * - `other`: no spelling is known to be canonical (MySQL strings, which compare case- and
 *   trailing-space-insensitively, dates, decimals...): a condition on it is a list.
 */
export type ColumnKind = 'int' | 'text' | 'uuid' | 'other';

/** What the database does to a referencing row when the row it points at goes or changes its key. */
export type ReferentialAction = 'cascade' | 'set null' | 'set default' | 'none';

export interface ForeignKey {
  /** The referencing columns, in the table that holds the key. */
  readonly columns: readonly string[];
  /** The referenced table (its name, and schema when another than the referencing table's). */
  readonly table: string;
  /** The referenced columns, in the order of `columns`. */
  readonly references: readonly string[];
  readonly onDelete: ReferentialAction;
  readonly onUpdate: ReferentialAction;
}

/** A foreign key of another table that points at this one. */
export interface Reference extends ForeignKey {
  /** The referencing table. */
  readonly from: string;
}

/** What trackReads needs of a table: its key columns' kinds and its foreign keys, both ways. */
export interface TableSchema {
  readonly name: string;
  /** Column names (as the database spells them) → kind. */
  readonly kinds: ReadonlyMap<string, ColumnKind>;
  readonly primaryKey: readonly string[];
  readonly foreignKeys: readonly ForeignKey[];
  readonly referencedBy: readonly Reference[];
}

function action(rule: unknown): ReferentialAction {
  const r = String(rule ?? '').toLowerCase().replace(/_/g, ' ');
  // PostgreSQL's confdeltype: c(ascade), n(ull), d(efault), a/r (no action, restrict).
  if (r === 'cascade' || r === 'c') return 'cascade';
  if (r === 'set null' || r === 'n') return 'set null';
  if (r === 'set default' || r === 'd') return 'set default';
  return 'none';
}

function sqliteKind(type: string, collates: boolean): ColumnKind {
  const t = type.toUpperCase();
  // SQLite's affinity rules, in their order: INT first, then text.
  if (t.includes('INT')) return 'int';
  if ((t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) && !collates) return 'text';
  return 'other';
}

function pgKind(base: string, exact: boolean): ColumnKind {
  if (base === 'int2' || base === 'int4' || base === 'int8') return 'int';
  if ((base === 'text' || base === 'varchar') && exact) return 'text';
  if (base === 'uuid') return 'uuid';
  return 'other';
}

function mysqlKind(type: string): ColumnKind {
  return /^(tiny|small|medium|big)?int$/i.test(type) ? 'int' : 'other';
}

/** Groups the rows of a foreign key listing (one row per column) into keys. */
function group<R extends { id: unknown }>(rows: readonly R[], make: (first: R, all: R[]) => ForeignKey & { from?: string }): Array<ForeignKey & { from?: string }> {
  const by = new Map<string, R[]>();
  for (const row of rows) {
    const id = String(row.id);
    let list = by.get(id);
    if (list === undefined) by.set(id, (list = []));
    list.push(row);
  }
  return [...by.values()].map((list) => make(list[0]!, list));
}

/**
 * Reads a table's schema for trackReads, on the connection given (inside the caller's
 * transaction, if any: every statement here only reads the catalog, and cannot fail on a table
 * that does not exist). Names keep the database's spelling; tags spell them with `tagTable`.
 */
export async function readSchema(connection: DatabaseConnection, dialect: DialectName, schema: string | undefined, table: string): Promise<TableSchema> {
  if (dialect === 'sqlite') {
    const prefix = schema === undefined ? '' : `${quote(schema)}.`;
    const master = schema === undefined ? 'sqlite_master' : `${quote(schema)}.sqlite_master`;
    const { rows: defs } = await connection.executeQuery<{ sql: string | null }>(CompiledQuery.raw(`select sql from ${master} where type = 'table' and name = ? collate nocase`, [table]));
    const collates = defs.some((d) => /\bcollate\b/i.test(d.sql ?? ''));
    const { rows } = await connection.executeQuery<{ name: string; type: string; pk: number }>(CompiledQuery.raw(`pragma ${prefix}table_info(${quote(table)})`));
    const primaryKey = rows.filter((r) => r.pk > 0).sort((a, b) => a.pk - b.pk).map((r) => r.name);
    type Fk = { id: number; seq: number; table: string; from: string; to: string | null; on_update: string; on_delete: string };
    const pkOf = async (name: string) => {
      const { rows: cols } = await connection.executeQuery<{ name: string; pk: number }>(CompiledQuery.raw(`pragma ${prefix}table_info(${quote(name)})`));
      return cols.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name);
    };
    const keysOf = async (name: string): Promise<ForeignKey[]> => {
      const { rows: fks } = await connection.executeQuery<Fk>(CompiledQuery.raw(`pragma ${prefix}foreign_key_list(${quote(name)})`));
      const out: ForeignKey[] = [];
      for (const key of group(fks, (first, all) => {
        all.sort((a, b) => a.seq - b.seq);
        return { columns: all.map((r) => r.from), table: first.table, references: all.map((r) => r.to ?? ''), onDelete: action(first.on_delete), onUpdate: action(first.on_update) };
      })) {
        // A key declared without its columns references the primary key.
        out.push(key.references.some((r) => r === '') ? { ...key, references: await pkOf(key.table) } : key);
      }
      return out;
    };
    const { rows: tables } = await connection.executeQuery<{ name: string }>(CompiledQuery.raw(`select name from ${master} where type = 'table'`));
    const referencedBy: Reference[] = [];
    for (const { name } of tables) {
      for (const key of await keysOf(name)) if (key.table.toLowerCase() === table.toLowerCase()) referencedBy.push({ ...key, from: name });
    }
    return {
      name: table,
      kinds: new Map(rows.map((r) => [r.name, sqliteKind(r.type, collates)])),
      primaryKey,
      foreignKeys: await keysOf(table),
      referencedBy,
    };
  }
  if (dialect === 'postgres') {
    const name = schema === undefined ? quote(table) : `${quote(schema)}.${quote(table)}`;
    const { rows } = await connection.executeQuery<{ name: string; base: string; exact: boolean }>(
      CompiledQuery.raw(
        `select a.attname as name, coalesce(bt.typname, t.typname) as base, coalesce((to_jsonb(c) ->> 'collisdeterministic')::boolean, true) as exact
         from pg_attribute a join pg_type t on t.oid = a.atttypid left join pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
         left join pg_collation c on c.oid = a.attcollation
         where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped order by a.attnum`,
        [name],
      ),
    );
    const pk = await connection.executeQuery<{ attname: string }>(
      CompiledQuery.raw(
        'select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = to_regclass($1) and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)',
        [name],
      ),
    );
    const keys = (side: 'conrelid' | 'confrelid') =>
      connection.executeQuery<{ id: string; other: string; del: string; upd: string; cols: string[]; refs: string[] }>(
        CompiledQuery.raw(
          `select con.oid::text as id, (select relname::text from pg_class where oid = ${side === 'conrelid' ? 'con.confrelid' : 'con.conrelid'}) as other,
             con.confdeltype::text as del, con.confupdtype::text as upd,
             array(select a.attname::text from unnest(con.conkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.o) as cols,
             array(select a.attname::text from unnest(con.confkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.o) as refs
           from pg_constraint con where con.contype = 'f' and con.${side} = to_regclass($1)`,
          [name],
        ),
      );
    const [out, into] = [await keys('conrelid'), await keys('confrelid')];
    const key = (r: (typeof out.rows)[number]): ForeignKey => ({ columns: r.cols, table: r.other, references: r.refs, onDelete: action(r.del), onUpdate: action(r.upd) });
    return {
      name: table,
      kinds: new Map(rows.map((r) => [r.name, pgKind(r.base, r.exact)])),
      primaryKey: pk.rows.map((r) => r.attname),
      foreignKeys: out.rows.map(key),
      referencedBy: into.rows.map((r) => ({ ...key(r), table, from: r.other })),
    };
  }
  const where = schema === undefined ? 'database()' : '?';
  const params = schema === undefined ? [table] : [schema, table];
  const columns = await connection.executeQuery<{ name: string; type: string; ckey: string }>(
    CompiledQuery.raw(`select COLUMN_NAME as name, DATA_TYPE as type, COLUMN_KEY as ckey from information_schema.COLUMNS where TABLE_SCHEMA = ${where} and TABLE_NAME = ? order by ORDINAL_POSITION`, params),
  );
  const pk = await connection.executeQuery<{ col: string }>(
    CompiledQuery.raw(`select COLUMN_NAME as col from information_schema.STATISTICS where TABLE_SCHEMA = ${where} and TABLE_NAME = ? and INDEX_NAME = 'PRIMARY' order by SEQ_IN_INDEX`, params),
  );
  type Fk = { id: string; tbl: string; col: string; rtbl: string; rcol: string; del: string; upd: string };
  const keys = async (side: 'TABLE_NAME' | 'REFERENCED_TABLE_NAME') => {
    const schemaSide = side === 'TABLE_NAME' ? 'k.TABLE_SCHEMA' : 'k.REFERENCED_TABLE_SCHEMA';
    const { rows } = await connection.executeQuery<Fk>(
      CompiledQuery.raw(
        `select concat(k.TABLE_NAME, '.', k.CONSTRAINT_NAME) as id, k.TABLE_NAME as tbl, k.COLUMN_NAME as col, k.REFERENCED_TABLE_NAME as rtbl, k.REFERENCED_COLUMN_NAME as rcol,
           r.DELETE_RULE as del, r.UPDATE_RULE as upd
         from information_schema.KEY_COLUMN_USAGE k join information_schema.REFERENTIAL_CONSTRAINTS r
           on r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA and r.CONSTRAINT_NAME = k.CONSTRAINT_NAME and r.TABLE_NAME = k.TABLE_NAME
         where ${schemaSide} = ${where} and k.${side} = ? and k.REFERENCED_TABLE_NAME is not null order by k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
        params,
      ),
    );
    return group(rows, (first, all) => ({
      from: first.tbl,
      columns: all.map((r) => r.col),
      table: first.rtbl,
      references: all.map((r) => r.rcol),
      onDelete: action(first.del),
      onUpdate: action(first.upd),
    }));
  };
  const out = await keys('TABLE_NAME');
  const into = await keys('REFERENCED_TABLE_NAME');
  return {
    name: table,
    kinds: new Map(columns.rows.map((r) => [r.name, mysqlKind(r.type)])),
    primaryKey: pk.rows.map((r) => r.col),
    foreignKeys: out.map(({ from: _, ...k }) => k),
    referencedBy: into.map((k) => ({ ...k, from: k.from! })),
  };
}

/** The name a table's tags use: the table without its schema, in lower case where the database ignores case. */
export function tagTable(dialect: DialectName, table: string): string {
  return dialect === 'postgres' ? table : table.toLowerCase();
}

/** The trackReads schemas of the tables one wrapped Kysely has met, read once each. */
export class Schemas {
  readonly #dialect: DialectName;
  readonly #cache = new Map<string, Promise<TableSchema>>();
  readonly #views = new Map<string, Promise<readonly string[] | undefined>>();

  constructor(dialect: DialectName) {
    this.#dialect = dialect;
  }

  /** The base tables under a view (see `readView`), or `undefined` for a table, read once per name. */
  view(connection: DatabaseConnection, schema: string | undefined, table: string): Promise<readonly string[] | undefined> {
    const key = `${schema ?? ''}\u0000${tagTable(this.#dialect, table)}`;
    let found = this.#views.get(key);
    if (found === undefined) {
      found = readView(connection, this.#dialect, schema, table);
      this.#views.set(key, found);
      found.catch(() => this.#views.delete(key));
    }
    return found;
  }

  get(connection: DatabaseConnection, schema: string | undefined, table: string): Promise<TableSchema> {
    const key = `${schema ?? ''}\u0000${tagTable(this.#dialect, table)}`;
    let found = this.#cache.get(key);
    if (found === undefined) {
      found = readSchema(connection, this.#dialect, schema, table);
      this.#cache.set(key, found);
      found.catch(() => this.#cache.delete(key));
    }
    return found;
  }
}

// ---------------------------------------------------------------- views

/** Whether `name` is spelled in `sql` as a whole identifier (bare, quoted, bracketed or backticked), ignoring case. */
function mentions(sql: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9_$\\u0080-\\uffff])${escaped}($|[^A-Za-z0-9_$\\u0080-\\uffff])`, 'i').test(sql);
}

/**
 * The base tables a database view reads (through the views it reads, too), or `undefined` when
 * `table` is no view. Where the tables cannot be told for sure, every base table of the database
 * (of the schema, on MySQL and SQLite):
 * - PostgreSQL: the relations the view's rewrite rule depends on (`pg_depend`); a call of a
 *   function outside `pg_catalog` (which may read any table) makes it every table.
 * - MySQL and MariaDB: the tables of the schema whose names the stored definition
 *   (`information_schema.VIEWS`, which spells every table it reads) mentions, a superset; a
 *   definition that calls a stored function of the schema, or that cannot be read, every table.
 * - SQLite: the tables and views of the schema whose names the view's SQL mentions, a superset.
 *   Functions an application defines on its connection are not seen.
 * A materialized view (PostgreSQL) counts as a view: its rows change with `REFRESH`, which is raw
 * SQL, so its pages are dropped by writes of its tables, more often than needed.
 */
export async function readView(connection: DatabaseConnection, dialect: DialectName, schema: string | undefined, table: string): Promise<readonly string[] | undefined> {
  if (dialect === 'postgres') {
    const rel = schema === undefined ? quote(table) : `${quote(schema)}.${quote(table)}`;
    const { rows } = await connection.executeQuery<{ oid: string; relkind: string }>(
      CompiledQuery.raw('select oid::text as oid, relkind::text as relkind from pg_class where oid = to_regclass($1)', [rel]),
    );
    const first = rows[0];
    if (first === undefined || (first.relkind !== 'v' && first.relkind !== 'm')) return undefined;
    // Followed by oid: a view may read a view of another schema.
    const seen = new Set<string>([first.oid]);
    const queue = [first.oid];
    const out = new Set<string>();
    for (let view = queue.shift(); view !== undefined; view = queue.shift()) {
      const deps = await connection.executeQuery<{ oid: string | null; name: string | null; relkind: string | null; fn: boolean }>(
        CompiledQuery.raw(
          `select c.oid::text as oid, c.relname::text as name, c.relkind::text as relkind,
             d.refclassid = 'pg_proc'::regclass and not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace where p.oid = d.refobjid and n.nspname = 'pg_catalog') as fn
           from pg_rewrite r join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
             left join pg_class c on d.refclassid = 'pg_class'::regclass and c.oid = d.refobjid
           where r.ev_class = $1::oid and d.refobjid <> r.ev_class`,
          [view],
        ),
      );
      for (const d of deps.rows) {
        if (d.fn) return baseTables(connection, dialect, schema);
        if (d.oid === null || d.name === null) continue;
        if (d.relkind === 'v' || d.relkind === 'm') {
          if (!seen.has(d.oid)) {
            seen.add(d.oid);
            queue.push(d.oid);
          }
        } else out.add(d.name);
      }
    }
    return [...out];
  }
  const seen = new Set<string>();
  // The base tables under `name`, `null` when every table, `undefined` when `name` is no view.
  const under = async (name: string): Promise<string[] | null | undefined> => {
    const named = await viewOf(connection, dialect, schema, name);
    if (named === undefined) return undefined;
    if (seen.has(name.toLowerCase())) return [];
    seen.add(name.toLowerCase());
    if (named === null) return null;
    const out: string[] = [];
    for (const next of named) {
      const below = await under(next);
      if (below === null) return null;
      if (below === undefined) out.push(next);
      else out.push(...below);
    }
    return out;
  };
  const found = await under(table);
  if (found === undefined) return undefined;
  return found ?? (await baseTables(connection, dialect, schema));
}

/**
 * The relations a view names (tables and views) on SQLite and MySQL, `null` when they cannot be
 * told, `undefined` when `name` is no view.
 */
async function viewOf(connection: DatabaseConnection, dialect: Exclude<DialectName, 'postgres'>, schema: string | undefined, name: string): Promise<string[] | null | undefined> {
  if (dialect === 'sqlite') {
    const master = schema === undefined ? 'sqlite_master' : `${quote(schema)}.sqlite_master`;
    const { rows } = await connection.executeQuery<{ sql: string | null }>(CompiledQuery.raw(`select sql from ${master} where type = 'view' and name = ? collate nocase`, [name]));
    if (rows.length === 0) return undefined;
    const sql = rows[0]!.sql;
    if (sql === null) return null;
    const { rows: names } = await connection.executeQuery<{ name: string }>(CompiledQuery.raw(`select name from ${master} where type in ('table', 'view') and name <> ? collate nocase`, [name]));
    // A superset of what it reads: a column or an alias may share a table's name.
    return names.map((r) => r.name).filter((n) => mentions(sql, n));
  }
  const where = schema === undefined ? 'database()' : '?';
  const params = schema === undefined ? [name] : [schema, name];
  const { rows } = await connection.executeQuery<{ def: string | null }>(
    CompiledQuery.raw(`select VIEW_DEFINITION as def from information_schema.VIEWS where TABLE_SCHEMA = ${where} and TABLE_NAME = ?`, params),
  );
  if (rows.length === 0) return undefined;
  const def = rows[0]!.def;
  if (def === null || def.trim() === '') return null;
  const { rows: names } = await connection.executeQuery<{ name: string }>(
    CompiledQuery.raw(`select TABLE_NAME as name from information_schema.TABLES where TABLE_SCHEMA = ${where} and TABLE_NAME <> ?`, params),
  );
  const { rows: functions } = await connection.executeQuery<{ name: string }>(
    CompiledQuery.raw(`select ROUTINE_NAME as name from information_schema.ROUTINES where ROUTINE_SCHEMA = ${where} and ROUTINE_TYPE = 'FUNCTION'`, schema === undefined ? [] : [schema]),
  );
  if (functions.some((f) => mentions(def, f.name))) return null;
  return names.map((r) => r.name).filter((n) => mentions(def, n));
}

/** Every base table of the database (PostgreSQL: of every schema but the system's; MySQL and SQLite: of the schema). */
async function baseTables(connection: DatabaseConnection, dialect: DialectName, schema: string | undefined): Promise<readonly string[]> {
  if (dialect === 'postgres') {
    const { rows } = await connection.executeQuery<{ name: string }>(
      CompiledQuery.raw(
        `select c.relname::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p', 'f') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'`,
      ),
    );
    return rows.map((r) => r.name);
  }
  if (dialect === 'sqlite') {
    const master = schema === undefined ? 'sqlite_master' : `${quote(schema)}.sqlite_master`;
    const { rows } = await connection.executeQuery<{ name: string }>(CompiledQuery.raw(`select name from ${master} where type = 'table'`));
    return rows.map((r) => r.name);
  }
  const { rows } = await connection.executeQuery<{ name: string }>(
    CompiledQuery.raw(`select TABLE_NAME as name from information_schema.TABLES where TABLE_SCHEMA = ${schema === undefined ? 'database()' : '?'} and TABLE_TYPE = 'BASE TABLE'`, schema === undefined ? [] : [schema]),
  );
  return rows.map((r) => r.name);
}
