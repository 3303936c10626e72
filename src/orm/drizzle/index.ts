/**
 * page-dumper/drizzle: a Drizzle database whose writes invalidate the pages of the rows they
 * change, as django-dumper's post_save, pre_delete and m2m_changed signals do.
 *
 * ```ts
 * const db = drizzleDumper(dumper, drizzle(pool, { schema }));
 * dumper.register('ice_cream', { dependentPaths: (row) => ['/ice-cream/', `/ice-cream/${row.slug}/`] });
 * ```
 *
 * Drizzle has no hooks. The database returned is a Proxy of the one given, of the same type: its
 * `insert`, `update` and `delete` builders (and those of `with()` and of transactions) run
 * through page-dumper when they execute (`await`, `.then()`, `.execute()`, and on better-sqlite3
 * `.run()`, `.all()`, `.get()`, `.values()`), and `transaction()` invalidates a transaction's
 * writes again once the outermost one has committed. Everything else is the database itself.
 */
import { is } from 'drizzle-orm';
import { MySqlDatabase } from 'drizzle-orm/mysql-core';
import { PgDatabase } from 'drizzle-orm/pg-core';
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { newScope, Writes, type BuilderState, type Dialect, type Operation, type Scope, type WriteBuilder } from './writes.js';

export interface DrizzleDumperOptions {
  /**
   * The most rows one write resolves one by one (an update or delete by a predicate, a
   * many-row insert). Above it the write still runs, and every page is invalidated
   * (`dumper.invalidateAll()`) with a warning.
   *
   * Default: 1000 rows. Trap: the rows up to this many are read (and, for an update, returned)
   * by every write of a registered table; a larger bound costs as many rows per such write.
   */
  maxRows?: number;
}

const DEFAULT_MAX_ROWS = 1000;

const OPERATIONS: Readonly<Record<string, Operation>> = { insert: 'insert', update: 'update', delete: 'delete' };
/** better-sqlite3 builders execute synchronously through these. */
const SYNC_METHODS = new Set(['run', 'all', 'get', 'values']);
const BUILDER_KINDS = /(Insert|Update|Delete)(Builder)?$/;

const engines = new WeakMap<object, Writes>();

function validate(options: DrizzleDumperOptions | undefined): { maxRows: number } {
  if (options === undefined) return { maxRows: DEFAULT_MAX_ROWS };
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: drizzleDumper(dumper, db, options): options must be an object');
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  if (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new TypeError(`page-dumper: drizzleDumper() option maxRows must be a positive integer, got ${String(maxRows)}`);
  }
  return { maxRows };
}

function dialectOf(db: unknown): Dialect {
  if (is(db, PgDatabase)) return 'pg';
  if (is(db, MySqlDatabase)) return 'mysql';
  if (is(db, BaseSQLiteDatabase)) {
    if ((db as unknown as { resultKind?: unknown }).resultKind !== 'sync') {
      throw new TypeError('page-dumper: drizzleDumper() supports SQLite through better-sqlite3 (drizzle-orm/better-sqlite3); this SQLite driver is asynchronous');
    }
    return 'sqlite';
  }
  throw new TypeError('page-dumper: drizzleDumper(dumper, db) needs a Drizzle database: drizzle(...) from drizzle-orm/node-postgres, drizzle-orm/mysql2 or drizzle-orm/better-sqlite3');
}

function entityKind(value: unknown): string {
  if (value === null || typeof value !== 'object') return '';
  return String((value.constructor as unknown as Record<symbol, unknown> | undefined)?.[Symbol.for('drizzle:entityKind')] ?? '');
}

/**
 * The database, whose writes to registered tables invalidate their rows' pages. Tables are
 * registered by their SQL name: `dumper.register('ice_cream', { dependentPaths(row) { ... } })`,
 * where `row` has the schema's field names and JS values, as `db.select().from(iceCream)` returns it.
 *
 * Not seen: `db.execute(sql...)` and other raw SQL, prepared write statements (`.prepare()`),
 * and rows the database changes by itself (`ON DELETE CASCADE`, triggers). Invalidate those with
 * `dumper.changed('ice_cream', row)` or `dumper.invalidate(paths)`.
 */
export function drizzleDumper<DB extends object>(dumper: Dumper, db: DB, options?: DrizzleDumperOptions): DB {
  assertDumper(dumper, 'drizzleDumper');
  const settings = validate(options);
  const dialect = dialectOf(db);
  const writes = new Writes(dumper, dialect, settings);
  let warnedPrepare = false;

  function builder(target: WriteBuilder, state: BuilderState): WriteBuilder {
    // `db.insert(t)` and `db.update(t)` first return a builder that only makes the statement
    // (`.values()`, `.set()`): it executes nothing, and its `values` is not better-sqlite3's.
    const statement = !entityKind(target).endsWith('Builder');
    const proxy: WriteBuilder = new Proxy(target, {
      get(t, prop) {
        if (!statement) return passThrough(t, prop);
        if (prop === 'then') {
          return (resolve?: (v: unknown) => unknown, reject?: (e: unknown) => unknown) => run([]).then(resolve, reject);
        }
        if (prop === 'execute') return (...args: unknown[]) => run(args);
        if (dialect === 'sqlite' && typeof prop === 'string' && SYNC_METHODS.has(prop)) {
          return (...args: unknown[]) => (writes.watched(t) ? writes.writeSync(t, state, prop, args) : (t[prop] as (...a: unknown[]) => unknown)(...args));
        }
        if (prop === 'onConflictDoUpdate' || prop === 'onDuplicateKeyUpdate') {
          return (config: { target?: unknown }) => {
            const target = config?.target;
            state.upsert = { target: target === undefined ? undefined : Array.isArray(target) ? target : [target] };
            (t[prop] as (c: unknown) => unknown)(config);
            return proxy;
          };
        }
        if (prop === 'prepare' && !warnedPrepare && writes.watched(t)) {
          warnedPrepare = true;
          dumper.log.warn('drizzle: a prepared write statement (.prepare()) runs without page-dumper; invalidate its rows by hand', {
            model: String(t.config.table ? (t.config.table as unknown as Record<symbol, unknown>)[Symbol.for('drizzle:Name')] : ''),
          });
        }
        return passThrough(t, prop);
      },
    });

    /** Any other property: chained calls keep returning the proxy, or a wrapped builder. */
    function passThrough(t: WriteBuilder, prop: PropertyKey): unknown {
      const value = Reflect.get(t, prop, t) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const out = (value as (...a: unknown[]) => unknown).apply(t, args);
        if (out === t) return proxy;
        return BUILDER_KINDS.test(entityKind(out)) ? builder(out as WriteBuilder, { op: state.op, owner: state.owner, scope: state.scope }) : out;
      };
    }

    function run(args: unknown[]): Promise<unknown> {
      if (!writes.watched(target)) return (target.execute as (...a: unknown[]) => Promise<unknown>)(...args);
      return writes.write(target, state, args);
    }
    return proxy;
  }

  function database<T extends object>(raw: T, scope: Scope | undefined): T {
    const methods = new Map<PropertyKey, unknown>();
    const wrapWrites = (source: Record<string, unknown>, prop: string) => (table: unknown) =>
      builder((source[prop] as (t: unknown) => WriteBuilder)(table), { op: OPERATIONS[prop]!, owner: raw, scope });
    return new Proxy(raw, {
      get(t, prop) {
        const known = methods.get(prop);
        if (known !== undefined) return known;
        let method: unknown;
        if (typeof prop === 'string' && prop in OPERATIONS) {
          method = wrapWrites(t as Record<string, unknown>, prop);
        } else if (prop === 'with') {
          method = (...queries: unknown[]) => {
            const scoped = (t as { with(...q: unknown[]): Record<string, unknown> }).with(...queries);
            return { ...scoped, insert: wrapWrites(scoped, 'insert'), update: wrapWrites(scoped, 'update'), delete: wrapWrites(scoped, 'delete') };
          };
        } else if (prop === 'transaction') {
          method = dialect === 'sqlite' ? syncTransaction(t, scope) : asyncTransaction(t, scope);
        } else {
          return Reflect.get(t, prop, t);
        }
        methods.set(prop, method);
        return method;
      },
    });
  }

  function asyncTransaction(raw: object, parent: Scope | undefined) {
    const transaction = (raw as { transaction(cb: (tx: object) => Promise<unknown>, config?: unknown): Promise<unknown> }).transaction;
    return async (callback: (tx: object) => Promise<unknown>, config?: unknown): Promise<unknown> => {
      const scope = newScope(parent);
      // A rollback (the callback threw, tx.rollback()) rejects here: the scope is dropped, and
      // with it the second invalidation; the first, at each write, has been made.
      const result = await transaction.call(raw, (tx: object) => callback(database(tx, scope)), config);
      await writes.commit(scope);
      return result;
    };
  }

  function syncTransaction(raw: object, parent: Scope | undefined) {
    const transaction = (raw as { transaction(cb: (tx: object) => unknown, config?: unknown): unknown }).transaction;
    return (callback: (tx: object) => unknown, config?: unknown): unknown => {
      const scope = newScope(parent);
      const result = transaction.call(raw, (tx: object) => callback(database(tx, scope)), config);
      // Committed (or released, for a savepoint): better-sqlite3 returned synchronously.
      writes.commitSync(scope);
      return result;
    };
  }

  const wrapped = database(db, undefined);
  engines.set(wrapped, writes);
  return wrapped;
}

/**
 * Resolves once every invalidation started by synchronous writes of a `drizzleDumper()`
 * database has finished: better-sqlite3's `.run()`, `.all()`, `.get()`, `.values()` and
 * `db.transaction()` return before their pages are invalidated. Rejects with the first failure
 * since the last call (such as a `dependentPaths` returning a string). Awaited writes
 * (`await db.update(...)`) need none of this: they resolve after their invalidation.
 */
export async function drizzleSettled(db: object): Promise<void> {
  const writes = engines.get(db);
  if (writes === undefined) throw new TypeError('page-dumper: drizzleSettled(db) needs a database returned by drizzleDumper()');
  await writes.settled();
}
