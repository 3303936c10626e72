/**
 * What `trackReads` needs to know of a model's table that Sequelize does not say, read from the
 * database's catalog once per table name:
 *
 * - whether it is a view, and then the tables it reads (PostgreSQL: the view's rule's
 *   dependencies in `pg_depend`; MySQL and MariaDB: `information_schema.VIEW_TABLE_USAGE` where
 *   it exists, else every table whose name its definition spells; SQLite: every table whose name
 *   its SQL spells), views under views followed: a read of the view is also a read of the lists
 *   of those tables, which their writes invalidate;
 * - which columns compare text other than byte for byte (SQLite: a `COLLATE` other than `BINARY`
 *   in the column's definition; PostgreSQL: a non-deterministic collation, or a type other than
 *   `text`, `varchar`, `uuid` and the integers, such as `citext` or `char`): a key value asked
 *   for there may find a row spelled otherwise, so it names no row or key tag.
 *
 * A table the catalog does not describe (not found, or the catalog could not be read) is treated
 * as having every column inexact, and as no view.
 */
import type { Sequelize, Transaction } from 'sequelize';
import { sqliteInexact } from '../sqlite-collations.js';

export interface TableFacts {
  /** For a view: the tables it reads, each as a tag may name it (with and without its schema). */
  readonly underlying: readonly string[] | undefined;
  /** Columns (by field name) whose comparisons are not exact; `'all'` when the catalog said nothing. */
  readonly inexact: ReadonlySet<string> | 'all';
}

const UNKNOWN: TableFacts = { underlying: undefined, inexact: 'all' };
/** How many views under views are followed; past it, every table of the database. */
const MAX_DEPTH = 8;

/** A table's name and schema as the catalog spells them. */
export interface TableName {
  readonly schema: string | undefined;
  readonly name: string;
}

type Rows = Array<Record<string, unknown>>;

export class Catalog {
  readonly #sequelize: Sequelize;
  readonly #dialect: string;
  readonly #known = new Map<string, TableFacts>();
  readonly #loading = new Map<string, Promise<TableFacts>>();

  constructor(sequelize: Sequelize) {
    this.#sequelize = sequelize;
    this.#dialect = sequelize.getDialect();
  }

  /** The facts of a table already read, or `undefined`. */
  get(key: string): TableFacts | undefined {
    return this.#known.get(key);
  }

  /** Reads the facts of a table (once; `key` is its tag name), in `transaction` when there is one. */
  load(key: string, table: TableName, transaction: Transaction | null | undefined): Promise<TableFacts> {
    const known = this.#known.get(key);
    if (known !== undefined) return Promise.resolve(known);
    let loading = this.#loading.get(key);
    if (loading === undefined) {
      loading = this.#read(table, transaction, 0).then(
        (facts) => {
          this.#known.set(key, facts);
          this.#loading.delete(key);
          return facts;
        },
        () => {
          // Not kept: the next read asks again.
          this.#loading.delete(key);
          return UNKNOWN;
        },
      );
      this.#loading.set(key, loading);
    }
    return loading;
  }

  async #query(sql: string, replacements: Record<string, unknown>, transaction: Transaction | null | undefined): Promise<Rows> {
    return (await this.#sequelize.query(sql, { type: 'SELECT' as never, replacements, ...(transaction ? { transaction } : {}) })) as unknown as Rows;
  }

  async #read(table: TableName, transaction: Transaction | null | undefined, depth: number): Promise<TableFacts> {
    if (this.#dialect === 'postgres') return this.#postgres(table, transaction, depth);
    if (this.#dialect === 'sqlite') return this.#sqlite(table, transaction);
    if (this.#dialect === 'mysql' || this.#dialect === 'mariadb') return this.#mysql(table, transaction, depth);
    return UNKNOWN;
  }

  // ---------------------------------------------------------------- PostgreSQL

  async #postgres(table: TableName, transaction: Transaction | null | undefined, depth: number): Promise<TableFacts> {
    const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const regclass = table.schema === undefined ? quote(table.name) : `${quote(table.schema)}.${quote(table.name)}`;
    // collisdeterministic exists from PostgreSQL 12 on (before, every collation is deterministic):
    // read through to_jsonb so that an older server does not fail the query.
    const rows = await this.#query(
      `SELECT c.relkind::text AS kind,
        (SELECT json_agg(json_build_object('schema', n2.nspname, 'name', c2.relname, 'kind', c2.relkind::text))
           FROM pg_rewrite r
           JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
           JOIN pg_class c2 ON c2.oid = d.refobjid
           JOIN pg_namespace n2 ON n2.oid = c2.relnamespace
          WHERE r.ev_class = c.oid AND d.refobjid <> c.oid) AS uses,
        (SELECT json_agg(a.attname)
           FROM pg_attribute a
           JOIN pg_type t ON t.oid = a.atttypid
           LEFT JOIN pg_collation co ON co.oid = a.attcollation
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            AND (t.typname NOT IN ('text', 'varchar', 'uuid', 'int2', 'int4', 'int8')
              OR coalesce((to_jsonb(co) ->> 'collisdeterministic')::boolean, true) = false)) AS inexact
       FROM pg_class c WHERE c.oid = to_regclass(:name)`,
      { name: regclass },
      transaction,
    );
    const row = rows[0];
    if (row === undefined) return UNKNOWN;
    const inexact = new Set(((row.inexact as string[] | null) ?? []).map(String));
    const kind = String(row.kind);
    if (kind !== 'v' && kind !== 'm') return { underlying: undefined, inexact };
    const uses = (row.uses as Array<{ schema: string; name: string; kind: string }> | null) ?? [];
    const underlying = new Set<string>();
    for (const u of uses) {
      if (u.kind === 'v' || u.kind === 'm') {
        const inner = depth >= MAX_DEPTH ? await this.#allPostgres(transaction) : (await this.#postgres({ schema: u.schema, name: u.name }, transaction, depth + 1)).underlying;
        for (const t of inner ?? []) underlying.add(t);
      } else {
        underlying.add(u.name);
        underlying.add(`${u.schema}.${u.name}`);
      }
    }
    return { underlying: [...underlying], inexact };
  }

  async #allPostgres(transaction: Transaction | null | undefined): Promise<string[]> {
    const rows = await this.#query(`SELECT schemaname AS schema, tablename AS name FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`, {}, transaction);
    return rows.flatMap((r) => [String(r.name), `${String(r.schema)}.${String(r.name)}`]);
  }

  // ---------------------------------------------------------------- MySQL, MariaDB

  async #mysql(table: TableName, transaction: Transaction | null | undefined, depth: number): Promise<TableFacts> {
    const found = await this.#query(
      `SELECT TABLE_SCHEMA AS s, TABLE_TYPE AS kind FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name`,
      { schema: table.schema ?? null, name: table.name },
      transaction,
    );
    const row = found[0];
    // Strings are never keys on MySQL and MariaDB: which columns are exact does not matter.
    const inexact = new Set<string>();
    if (row === undefined) return { underlying: undefined, inexact: 'all' };
    if (String(row.kind) !== 'VIEW') return { underlying: undefined, inexact };
    const schema = String(row.s);
    const underlying = new Set<string>();
    const add = (s: string, n: string) => (underlying.add(n), underlying.add(`${s}.${n}`));
    const usage = await this.#query(`SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'VIEW_TABLE_USAGE'`, {}, transaction);
    let uses: Rows;
    if (Number(usage[0]?.n) > 0) {
      uses = await this.#query(
        `SELECT u.TABLE_SCHEMA AS s, u.TABLE_NAME AS n, t.TABLE_TYPE AS kind FROM information_schema.VIEW_TABLE_USAGE u
           LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = u.TABLE_SCHEMA AND t.TABLE_NAME = u.TABLE_NAME
          WHERE u.VIEW_SCHEMA = :schema AND u.VIEW_NAME = :name`,
        { schema, name: table.name },
        transaction,
      );
    } else {
      // No VIEW_TABLE_USAGE (MariaDB): every table whose name the definition spells.
      const definition = String((await this.#query(`SELECT VIEW_DEFINITION AS d FROM information_schema.VIEWS WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :name`, { schema, name: table.name }, transaction))[0]?.d ?? '');
      const candidates = await this.#query(
        `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS n, TABLE_TYPE AS kind FROM information_schema.TABLES
          WHERE TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')${definition === '' ? '' : ' AND LOCATE(LOWER(TABLE_NAME), LOWER(:definition)) > 0'}`,
        { definition },
        transaction,
      );
      uses = definition === '' ? candidates : candidates.filter((c) => spells(definition, String(c.n)) && !(String(c.s) === schema && String(c.n) === table.name));
    }
    for (const u of uses) {
      if (String(u.kind) === 'VIEW') {
        if (depth >= MAX_DEPTH) return { underlying: await this.#allMysql(transaction), inexact };
        for (const t of (await this.#mysql({ schema: String(u.s), name: String(u.n) }, transaction, depth + 1)).underlying ?? []) underlying.add(t);
      } else add(String(u.s), String(u.n));
    }
    return { underlying: [...underlying], inexact };
  }

  async #allMysql(transaction: Transaction | null | undefined): Promise<string[]> {
    const rows = await this.#query(`SELECT TABLE_SCHEMA AS s, TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys') AND TABLE_TYPE <> 'VIEW'`, {}, transaction);
    return rows.flatMap((r) => [String(r.n), `${String(r.s)}.${String(r.n)}`]);
  }

  // ---------------------------------------------------------------- SQLite

  async #sqlite(table: TableName, transaction: Transaction | null | undefined): Promise<TableFacts> {
    const rows = await this.#query(`SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view')`, {}, transaction);
    const key = (table.schema === undefined ? table.name : `${table.schema}.${table.name}`).toLowerCase();
    const byName = new Map(rows.map((r) => [String(r.name).toLowerCase(), r]));
    const row = byName.get(key);
    if (row === undefined) return UNKNOWN;
    if (row.type === 'table') return { underlying: undefined, inexact: sqliteInexact(String(row.sql ?? '')) };
    // A view: the tables its SQL spells, and those of the views it spells.
    const underlying = new Set<string>();
    const seen = new Set<string>([key]);
    const visit = (sql: string) => {
      for (const [name, r] of byName) {
        if (seen.has(name) || !spells(sql, String(r.name))) continue;
        seen.add(name);
        if (r.type === 'view') visit(String(r.sql ?? ''));
        else underlying.add(String(r.name));
      }
    };
    visit(String(row.sql ?? ''));
    return { underlying: [...underlying], inexact: 'all' };
  }
}

/** Whether `sql` spells `name` as an identifier (case-insensitively, bounded by characters no identifier has). */
export function spells(sql: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\w$])${escaped}($|[^\\w$])`, 'i').test(sql);
}

/** Re-exported for the tests that check the parser through this module. */
export { sqliteInexact };
