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
 * writes again once the outermost one has committed. With `trackReads`, its reads (`select()`,
 * `$count()`, `db.query`) also tag the page being rendered (./reads.ts). Everything else is the
 * database itself.
 */
import { is } from 'drizzle-orm';
import { MySqlDatabase } from 'drizzle-orm/mysql-core';
import { PgDatabase } from 'drizzle-orm/pg-core';
import { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { assertDumper, type Dumper } from '../../core/dumper.js';
import { DEFAULT_MAX_TAGS_PER_PAGE, readOptions, ReadTracker } from '../reads.js';
import { DrizzleReads, type RelationalQuery } from './reads.js';
import { noteTables } from './tables.js';
import { newScope, Writes, type BuilderState, type Dialect, type Operation, type Scope, type Settings, type WriteBuilder } from './writes.js';

/** The tag names of `trackReads` (docs/track-reads.md), to tag or invalidate by hand beside it. */
export { keyTag, listTag, rowTag, tableTag } from '../reads.js';

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
  /**
   * node-postgres pools: how long, in milliseconds, a connection whose transaction failed with
   * the connection busy or still in it (a client-side `query_timeout`) may take to answer the
   * ROLLBACK page-dumper sends before it goes back to the pool; past it the connection is closed.
   * The failed call returns only then (see docs/drizzle.md, "Transactions").
   *
   * Default: 60000 (one minute).
   */
  recoveryTimeout?: number;
  /**
   * Tag each page with the rows and tables its render read through this database, and invalidate
   * those tags on every write of every table (registered or not): pages need no
   * `dependentPaths()`. Reads by primary key (`eq(t.id, 1)`, `inArray(t.id, [...])`) tag rows,
   * by a foreign key tag that key, relations of `db.query` loaded along foreign keys tag the rows
   * or keys they follow; lists, filters, counts and joins tag every table they name. Raw SQL
   * (`db.execute(sql...)`) is not parsed. See docs/drizzle.md and docs/track-reads.md.
   * @default false
   */
  trackReads?: boolean;
  /**
   * With `trackReads`: the most tags a page gets from its reads. Past it, a table's further row
   * reads tag the whole table (its list tag, which every write of the table invalidates), with a
   * warning in the log. Each tag costs a few bytes in the entry and in the store's tag index.
   * @default 500
   */
  maxTagsPerPage?: number;
}

const DEFAULT_MAX_ROWS = 1000;
const DEFAULT_RECOVERY_TIMEOUT = 60_000;

const OPERATIONS: Readonly<Record<string, Operation>> = { insert: 'insert', update: 'update', delete: 'delete' };
/** better-sqlite3 builders execute synchronously through these. */
const SYNC_METHODS = new Set(['run', 'all', 'get', 'values']);
const SELECTS = new Set(['select', 'selectDistinct', 'selectDistinctOn']);
const BUILDER_KINDS = /(Insert|Update|Delete)(Builder)?$/;

const engines = new WeakMap<object, Writes>();

function validate(options: DrizzleDumperOptions | undefined): Settings & { maxTagsPerPage: number } {
  if (options === undefined) return { maxRows: DEFAULT_MAX_ROWS, recoveryTimeout: DEFAULT_RECOVERY_TIMEOUT, trackReads: false, maxTagsPerPage: DEFAULT_MAX_TAGS_PER_PAGE };
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: drizzleDumper(dumper, db, options): options must be an object');
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  if (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new TypeError(`page-dumper: drizzleDumper() option maxRows must be a positive integer, got ${String(maxRows)}`);
  }
  const recoveryTimeout = options.recoveryTimeout ?? DEFAULT_RECOVERY_TIMEOUT;
  if (typeof recoveryTimeout !== 'number' || !Number.isSafeInteger(recoveryTimeout) || recoveryTimeout < 1 || recoveryTimeout > 2 ** 31 - 1) {
    throw new TypeError(`page-dumper: drizzleDumper() option recoveryTimeout must be a positive integer of milliseconds (at most 2147483647), got ${String(recoveryTimeout)}`);
  }
  const { trackReads, maxTagsPerPage } = readOptions('drizzleDumper', options.trackReads, options.maxTagsPerPage);
  return { maxRows, recoveryTimeout, trackReads, maxTagsPerPage };
}

const SESSIONS: Readonly<Record<Dialect, string>> = { pg: 'NodePgSession', mysql: 'MySql2Session', sqlite: 'BetterSQLiteSession' };

function dialectOf(db: unknown): Dialect {
  let dialect: Dialect | undefined;
  if (is(db, PgDatabase)) dialect = 'pg';
  else if (is(db, MySqlDatabase)) dialect = 'mysql';
  else if (is(db, BaseSQLiteDatabase)) {
    if ((db as unknown as { resultKind?: unknown }).resultKind !== 'sync') {
      throw new TypeError('page-dumper: drizzleDumper() supports SQLite through better-sqlite3 (drizzle-orm/better-sqlite3); this SQLite driver is asynchronous');
    }
    dialect = 'sqlite';
  }
  if (dialect !== undefined) {
    // The results and transactions page-dumper reproduces are these drivers': another driver's
    // (postgres-js, neon, PlanetScale, libsql...) would be answered differently, so it is refused.
    const session = entityKind((db as { session?: unknown }).session);
    if (session !== SESSIONS[dialect]) {
      throw new TypeError(
        `page-dumper: drizzleDumper() supports drizzle-orm/node-postgres, drizzle-orm/mysql2 and drizzle-orm/better-sqlite3; this database's driver session is ${session || 'unknown'}`,
      );
    }
    return dialect;
  }
  throw new TypeError('page-dumper: drizzleDumper(dumper, db) needs a Drizzle database: drizzle(...) from drizzle-orm/node-postgres, drizzle-orm/mysql2 or drizzle-orm/better-sqlite3');
}

/** `catch()` or `finally()` of a wrapped builder, run through its wrapped `then()`. */
function settle(query: PromiseLike<unknown>, prop: 'catch' | 'finally') {
  if (prop === 'catch') return (onRejected?: (e: unknown) => unknown) => Promise.resolve(query).catch(onRejected);
  return (onFinally?: () => void) => Promise.resolve(query).finally(onFinally);
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
 * and rows the database changes by itself (`ON DELETE CASCADE`, seen with `trackReads`; triggers). Invalidate those with
 * `dumper.changed('ice_cream', row)` or `dumper.invalidate(paths)`.
 */
export function drizzleDumper<DB extends object>(dumper: Dumper, db: DB, options?: DrizzleDumperOptions): DB {
  assertDumper(dumper, 'drizzleDumper');
  const settings = validate(options);
  const dialect = dialectOf(db);
  const writes = new Writes(dumper, dialect, settings);
  const tracker = settings.trackReads ? new ReadTracker(dumper, { maxTagsPerPage: settings.maxTagsPerPage, integration: 'drizzle' }) : undefined;
  const reads = tracker === undefined ? undefined : new DrizzleReads(tracker, dialect);
  // The schema's tables are where a delete's cascades are looked for.
  if (reads !== undefined) noteTables(Object.values(((db as { _?: { fullSchema?: object } })._?.fullSchema ?? {}) as object));
  /** Tables whose prepared writes were warned about, once each. */
  const warnedPrepare = new WeakSet<object>();

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
        // Drizzle's catch() and finally() call the builder's own then(): through page-dumper's instead.
        if (prop === 'catch' || prop === 'finally') return settle(proxy as unknown as PromiseLike<unknown>, prop);
        if (dialect === 'sqlite' && typeof prop === 'string' && SYNC_METHODS.has(prop)) {
          return (...args: unknown[]) => (writes.watched(t) ? writes.writeSync(t, state, prop, args) : (t[prop] as (...a: unknown[]) => unknown)(...args));
        }
        if (prop === 'onConflictDoUpdate' || prop === 'onDuplicateKeyUpdate') {
          return (config: { target?: unknown; set?: object }) => {
            const target = config?.target;
            // A chain of onConflictDoUpdate() calls (SQLite) keeps every target.
            const upsert = (state.upsert ??= { targets: [], set: new Set() });
            upsert.targets.push(target === undefined ? undefined : Array.isArray(target) ? target : [target]);
            for (const f of Object.keys(config?.set ?? {})) upsert.set.add(f);
            (t[prop] as (c: unknown) => unknown)(config);
            return proxy;
          };
        }
        if (prop === 'prepare' && writes.watched(t) && !warnedPrepare.has(t.config.table)) {
          warnedPrepare.add(t.config.table);
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
        return BUILDER_KINDS.test(entityKind(out)) ? builder(out as WriteBuilder, { op: state.op, owner: state.owner, scope: state.scope, cteWrite: state.cteWrite }) : out;
      };
    }

    function run(args: unknown[]): Promise<unknown> {
      if (!writes.watched(target) && state.cteWrite !== true) return (target.execute as (...a: unknown[]) => Promise<unknown>)(...args);
      return writes.write(target, state, args);
    }
    return proxy;
  }

  function database<T extends object>(raw: T, scope: Scope | undefined): T {
    const methods = new Map<PropertyKey, unknown>();
    const wrapWrites = (source: Record<string, unknown>, prop: string, cteWrite = false) => (table: unknown) =>
      builder((source[prop] as (t: unknown) => WriteBuilder)(table), { op: OPERATIONS[prop]!, owner: raw, scope, cteWrite });
    return new Proxy(raw, {
      get(t, prop) {
        const known = methods.get(prop);
        if (known !== undefined) return known;
        let method: unknown;
        if (typeof prop === 'string' && prop in OPERATIONS) {
          method = wrapWrites(t as Record<string, unknown>, prop);
        } else if (reads !== undefined && typeof prop === 'string' && SELECTS.has(prop)) {
          method = selects(t as Record<string, unknown>, prop);
        } else if (reads !== undefined && prop === '$count') {
          method = (source: unknown, filters?: unknown) => tracked((t as { $count(s: unknown, f: unknown): object }).$count(source, filters), () => reads.count(source, filters));
        } else if (reads !== undefined && prop === 'query') {
          method = relational(Reflect.get(t, prop, t) as Record<string, object> | undefined);
        } else if (prop === 'with') {
          method = (...queries: unknown[]) => {
            const scoped = (t as { with(...q: unknown[]): Record<string, unknown> }).with(...queries);
            // A CTE that writes (PostgreSQL: WITH x AS (INSERT/UPDATE/DELETE ... RETURNING)) is
            // not read back: the statement runs once, as written, and every page is invalidated.
            const cteWrite = queries.some((q) => writesData(t, q));
            const out: Record<string, unknown> = { ...scoped, insert: wrapWrites(scoped, 'insert', cteWrite), update: wrapWrites(scoped, 'update', cteWrite), delete: wrapWrites(scoped, 'delete', cteWrite) };
            if (reads !== undefined && !cteWrite) {
              for (const name of SELECTS) if (typeof scoped[name] === 'function') out[name] = selects(scoped, name);
            }
            if (cteWrite) {
              for (const name of ['select', 'selectDistinct', 'selectDistinctOn']) {
                if (typeof scoped[name] === 'function') out[name] = (...a: unknown[]) => afterAll((scoped[name] as (...x: unknown[]) => object)(...a), scope);
              }
            }
            return out;
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

  /** Whether a `with()` query's SQL is an INSERT, UPDATE or DELETE. */
  function writesData(raw: object, query: unknown): boolean {
    const inner = (query as { _?: { sql?: unknown } } | null)?._?.sql;
    if (inner === undefined) return false;
    try {
      const text = (raw as { dialect: { sqlToQuery(s: unknown): { sql: string } } }).dialect.sqlToQuery(inner).sql;
      return /^\s*\(?\s*(insert|update|delete)\b/i.test(text);
    } catch {
      return true; // not readable: taken as a write, the safe side
    }
  }

  /** A select builder of a data-modifying CTE: once it has run, every page is invalidated. */
  function afterAll<T extends object>(query: T, scope: Scope | undefined): T {
    const proxy: T = new Proxy(query, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t) as unknown;
        if (prop === 'then') {
          return (resolve?: (v: unknown) => unknown, reject?: (e: unknown) => unknown) => invalidated((t as { execute(): Promise<unknown> }).execute()).then(resolve, reject);
        }
        if (prop === 'execute') return (...a: unknown[]) => invalidated((value as (...x: unknown[]) => Promise<unknown>).apply(t, a));
        if (typeof value !== 'function') return value;
        return (...a: unknown[]) => {
          const out = (value as (...x: unknown[]) => unknown).apply(t, a);
          if (out === t) return proxy;
          if (/Select/.test(entityKind(out))) return afterAll(out as object, scope);
          if (dialect === 'sqlite' && typeof prop === 'string' && SYNC_METHODS.has(prop)) void invalidated(Promise.resolve(out));
          return out;
        };
      },
    });
    const invalidated = async (done: Promise<unknown>): Promise<unknown> => {
      const result = await done;
      reads?.select(query as { config?: Record<string, unknown>; getSQL?: () => unknown });
      dumper.log.warn('drizzle: a select with a data-modifying CTE (with() of an insert, update or delete), whose rows page-dumper does not read; invalidating every page', {});
      if (scope !== undefined) scope.all = true;
      await dumper.invalidateAll();
      return result;
    };
    return proxy;
  }

  /** `select()`, `selectDistinct()`, `selectDistinctOn()`: the select `from()` makes tags the page when it has run. */
  function selects(source: Record<string, unknown>, prop: string) {
    return (...args: unknown[]) => {
      const builder = (source[prop] as (...a: unknown[]) => object)(...args);
      return new Proxy(builder, {
        get(t, p) {
          const value = Reflect.get(t, p, t) as unknown;
          if (p !== 'from' || typeof value !== 'function') return value;
          return (...a: unknown[]) => {
            const query = (value as (...x: unknown[]) => object).apply(t, a);
            return tracked(query, () => reads!.select(query as { config?: Record<string, unknown>; getSQL?: () => unknown }));
          };
        },
      });
    };
  }

  /** `db.query.<table>.findFirst/findMany(config)`: the relational query tags the page with what it returned. */
  function relational(query: Record<string, object> | undefined): unknown {
    if (query === undefined || query === null || typeof query !== 'object') return query;
    const builders = new Map<PropertyKey, unknown>();
    return new Proxy(query, {
      get(t, name) {
        const target = Reflect.get(t, name, t) as unknown;
        if (target === null || typeof target !== 'object') return target;
        let wrapped = builders.get(name);
        if (wrapped === undefined) {
          wrapped = new Proxy(target, {
            get(b, p) {
              const value = Reflect.get(b, p, b) as unknown;
              if ((p !== 'findMany' && p !== 'findFirst') || typeof value !== 'function') return value;
              return (...a: unknown[]) => {
                const q = (value as (...x: unknown[]) => object).apply(b, a);
                return trackedWith(q, (result) => reads!.relational(q as unknown as RelationalQuery, result));
              };
            },
          });
          builders.set(name, wrapped);
        }
        return wrapped;
      },
    });
  }

  function tracked<T extends object>(query: T, tag: () => void): T {
    return trackedWith(query, () => tag());
  }

  /**
   * A read builder that tags the page once it has run (`await`, `.then()`, `.execute()`, and on
   * better-sqlite3 `.all()`, `.get()`, `.values()`, `.run()`, `.sync()`), also through `.prepare()`;
   * `.iterator()` tags the lists of its tables when it is called.
   * Its chained calls keep returning it; anything else it hands out is Drizzle's own.
   */
  function trackedWith<T extends object>(query: T, tag: (result: unknown) => void, source: object = query): T {
    const safely = (result: unknown) => {
      try {
        tag(result);
      } catch (error) {
        // Not classified: the lists of every table it names (a failure there fails the read, rather than store a page untagged).
        dumper.log.warn(`drizzle: a read could not be classified (${error instanceof Error ? error.message : String(error)}); tagging the lists of its tables`, {});
        reads!.lists(source);
      }
      return result;
    };
    // The catalog of the tables it names (their columns' collations), read once per table, first.
    const ready = (result: unknown): unknown => {
      let wait: Promise<void> | undefined;
      try {
        wait = reads!.prepare(source);
      } catch {
        wait = undefined;
      }
      return wait === undefined ? safely(result) : wait.then(() => safely(result));
    };
    const proxy: T = new Proxy(query, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t) as unknown;
        if (typeof value !== 'function' || prop === 'constructor') return value;
        if (prop === 'then') {
          return (resolve?: (v: unknown) => unknown, reject?: (e: unknown) => unknown) => (value as (f: (v: unknown) => unknown) => Promise<unknown>).call(t, ready).then(resolve, reject);
        }
        if (prop === 'execute') {
          return (...a: unknown[]) => Promise.resolve((value as (...x: unknown[]) => unknown).apply(t, a)).then(ready);
        }
        if (prop === 'catch' || prop === 'finally') return settle(proxy as unknown as PromiseLike<unknown>, prop);
        if (dialect === 'sqlite' && typeof prop === 'string' && (SYNC_METHODS.has(prop) || prop === 'sync')) {
          return (...a: unknown[]) => {
            const result = (value as (...x: unknown[]) => unknown).apply(t, a);
            reads!.prepare(source); // synchronous on better-sqlite3
            return safely(result);
          };
        }
        if (prop === 'prepare') {
          return (...a: unknown[]) => trackedWith((value as (...x: unknown[]) => object).apply(t, a), tag, source);
        }
        if (prop === 'iterator') {
          // Rows read one by one (mysql2 streams them): no result to classify, so the lists of
          // every table it names, put on the page before the first row.
          return (...a: unknown[]) => {
            reads!.lists(source);
            return (value as (...x: unknown[]) => unknown).apply(t, a);
          };
        }
        return (...a: unknown[]) => {
          const out = (value as (...x: unknown[]) => unknown).apply(t, a);
          return out === t ? proxy : out;
        };
      },
    });
    return proxy;
  }

  function asyncTransaction(raw: object, parent: Scope | undefined) {
    return async (callback: (tx: object) => Promise<unknown>, config?: unknown): Promise<unknown> => {
      const scope = newScope(parent);
      const ended = await writes.transaction(raw, (tx: object) => callback(database(tx, scope)), config);
      if (ended.ok) {
        await writes.commit(scope);
        return ended.value;
      }
      // Its COMMIT failed, the server done with it: whether it committed is unknown, so its
      // writes are invalidated again as if it had. A rollback (the callback threw,
      // tx.rollback()) drops the scope, and with it the second invalidation; the first, at each
      // write, has been made.
      if (ended.returned) await writes.commit(scope);
      throw ended.error;
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
