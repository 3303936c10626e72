/**
 * Which columns compare text other than byte for byte, which Drizzle's schema does not say: read
 * from the database's catalog once per table, on the session of the read that first needs it (so
 * in its transaction, on its connection).
 *
 * - SQLite: a `COLLATE` other than `BINARY` in the column's definition (`sqlite_master.sql`).
 * - PostgreSQL: a non-deterministic collation, or a type other than `text`, `varchar`, `uuid` and
 *   the integers (the schema may say `text()` for a `citext` or `char` column).
 *
 * A key value asked for in such a column may find a row spelled otherwise (`'ADA@example.com'`
 * finds `'ada@example.com'` under `COLLATE NOCASE`), so it names no row or key tag: the read is a
 * list. Until a table's catalog is known (or when it cannot be read), every column of it is
 * treated so. MySQL and MariaDB need none of this: their string keys are lists anyway.
 */
import { is, sql, Table, type Column, type SQL } from 'drizzle-orm';
import { tableInfo } from './tables.js';
import type { Dialect } from './writes.js';
import { sqliteInexact } from '../sqlite-collations.js';

/** The session of a query builder, as this module uses it (Drizzle's `PgSession`, `SQLiteSession`). */
interface Session {
  all(query: SQL): unknown;
}

const SCHEMA = Symbol.for('drizzle:Schema');

function keyOf(table: Table): { key: string; schema: string | undefined; name: string } {
  const name = tableInfo(table).name;
  const schema = (table as unknown as Record<symbol, string | undefined>)[SCHEMA];
  return { key: schema ? `${schema}.${name}` : name, schema: schema || undefined, name };
}

export class Collations {
  readonly #dialect: Dialect;
  /** Table → the SQL names of its inexact columns, or `'all'` when the catalog did not describe it. */
  readonly #known = new Map<string, ReadonlySet<string> | 'all'>();
  readonly #loading = new Map<string, Promise<void>>();

  constructor(dialect: Dialect) {
    this.#dialect = dialect;
  }

  /** Whether the database compares `column` byte for byte (known from its catalog). */
  exact(column: Column): boolean {
    if (!is(column.table, Table)) return false;
    const known = this.#known.get(keyOf(column.table).key);
    return known !== undefined && known !== 'all' && !known.has(column.name);
  }

  /**
   * Reads the catalog of those of `tables` not known yet, on `session`: synchronously on SQLite
   * (better-sqlite3), else the promise to wait for before the read is classified.
   */
  prepare(tables: Iterable<Table>, session: unknown): Promise<void> | undefined {
    if (this.#dialect === 'mysql' || session === null || typeof session !== 'object' || typeof (session as Session).all !== 'function') return undefined;
    const waits: Promise<void>[] = [];
    for (const table of tables) {
      const { key, schema, name } = keyOf(table);
      if (this.#known.has(key)) continue;
      if (this.#dialect === 'sqlite') {
        try {
          const rows = (session as Session).all(sql`select sql from sqlite_master where type = 'table' and name = ${name} collate nocase`) as Array<{ sql?: unknown }>;
          this.#known.set(key, rows[0] === undefined ? 'all' : sqliteInexact(String(rows[0].sql ?? '')));
        } catch {
          // Not known: its text keys stay lists, and the next read asks again.
        }
        continue;
      }
      let loading = this.#loading.get(key);
      if (loading === undefined) {
        const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
        const regclass = schema === undefined ? quote(name) : `${quote(schema)}.${quote(name)}`;
        // collisdeterministic exists from PostgreSQL 12 on (before, every collation is
        // deterministic): read through to_jsonb, so that the query cannot fail (in the caller's
        // transaction) on an older server.
        loading = Promise.resolve(
          (session as Session).all(sql`select to_regclass(${regclass}) is not null as found, coalesce((select json_agg(a.attname) from pg_attribute a
              join pg_type t on t.oid = a.atttypid left join pg_collation co on co.oid = a.attcollation
              where a.attrelid = to_regclass(${regclass}) and a.attnum > 0 and not a.attisdropped
                and (t.typname not in ('text', 'varchar', 'uuid', 'int2', 'int4', 'int8') or coalesce((to_jsonb(co) ->> 'collisdeterministic')::boolean, true) = false)), '[]'::json) as inexact`),
        ).then(
          (rows) => {
            const row = (rows as Array<{ found?: unknown; inexact?: unknown }>)[0];
            const inexact = typeof row?.inexact === 'string' ? (JSON.parse(row.inexact) as unknown) : row?.inexact;
            this.#known.set(key, row?.found === true && Array.isArray(inexact) ? new Set(inexact.map(String)) : 'all');
            this.#loading.delete(key);
          },
          () => void this.#loading.delete(key),
        );
        this.#loading.set(key, loading);
      }
      waits.push(loading);
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => undefined);
  }
}

/** Re-exported for the tests that check the parser through this module. */
export { sqliteInexact };
