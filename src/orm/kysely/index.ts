/**
 * page-dumper/kysely: a Kysely instance whose writes invalidate the pages of the rows they
 * change, as django-dumper's post_save and pre_delete signals do.
 *
 * ```ts
 * const db = kyselyDumper(dumper, new Kysely<DB>({ dialect }));
 * dumper.register('ice_cream', { dependentPaths: (row) => ['/ice-cream/', `/ice-cream/${row.slug}/`] });
 * ```
 *
 * Kysely has no hooks, and a plugin sees queries but not commits. So the wrapped instance is
 * the same Kysely (same dialect, driver, pool and plugins) with one change: every connection it
 * hands out is wrapped. The wrapper sees each compiled query before the database does: writes to
 * registered tables are resolved to their rows (see writes.ts), and the transaction statements
 * that Kysely's driver sends on that connection (begin, savepoint, release, rollback to, commit,
 * rollback) tell which transaction a write belongs to. `transaction().execute()`,
 * `startTransaction()` with its savepoints, `connection()` and even a `sql\`begin\`` of the
 * caller's own are all seen the same way.
 */
import { CompiledQuery, MysqlAdapter, PostgresAdapter, SqliteAdapter, type DatabaseConnection, type QueryResult, type RootOperationNode } from 'kysely';
import type { ConnectionProvider, Kysely, QueryExecutor } from 'kysely';
import { assertDumper, type Dependents, type Dumper } from '../../core/dumper.js';
import { readOptions, ReadTracker } from '../reads.js';
import { KyselyReads } from './reads.js';
import { Schemas, type DialectName } from './tables.js';
import { AfterWrite, Fallback, isWrite, namesOf, nestedWrites, QUERY_ID, Unknown, Writes, type Deferred, type Frame, type Outcome, type Target } from './writes.js';

/** A write's own acquisition of a connection: what runs once it is released. */
interface Acquisition extends Deferred {
  readonly after: (() => Promise<void>)[];
}

export type { DialectName } from './tables.js';
export { listTag, rowTag, keyTag, tableTag } from '../reads.js';

export interface KyselyDumperOptions {
  /**
   * The most rows one write resolves one by one (each read before an update or a delete, and
   * handed to `dependentPaths`). Above it the write still runs, and every page is invalidated
   * (`dumper.invalidateAll()`) with a warning.
   *
   * Default: 1000 rows.
   */
  maxRows?: number;
  /**
   * The SQL dialect, for a third-party Kysely dialect whose adapter is not one of Kysely's
   * `PostgresAdapter`, `SqliteAdapter` or `MysqlAdapter`.
   *
   * Default: read from the instance's adapter.
   */
  dialect?: DialectName;
  /**
   * How long, in milliseconds, page-dumper keeps sending ROLLBACK on a connection whose
   * transaction failed with its outcome unknown (a COMMIT or ROLLBACK rejected by a client-side
   * timeout such as node-postgres' `query_timeout`, while the server may still run it), waiting
   * for the server to be done before the error reaches the caller. Past it the connection goes
   * back to the pool marked: its next query sends ROLLBACK first (see docs/kysely.md).
   *
   * Default: 60000 (one minute).
   */
  recoveryTimeout?: number;
  /**
   * Tag each page with what its render read, and invalidate exactly those tags on each write (see
   * docs/kysely.md#trackreads and docs/track-reads.md): no table needs `register()`. Every
   * SELECT the wrapped instance runs during a render tags the page (a row read by primary key,
   * the rows of a foreign key, or the lists of the tables it names); every write of any table,
   * registered or not, invalidates the tags of the rows it changed. Raw SQL is not seen.
   *
   * It switches on the dumper's render context tracking (as `trackRenders: true` does). The
   * first read or write of each table reads its schema (primary key, foreign keys, column types)
   * from the database, once.
   *
   * Default: false.
   */
  trackReads?: boolean;
  /**
   * With `trackReads`, the most tags a page gets from its reads. Past it, the page is tagged with
   * the list of each table it goes on reading (dropped by every write of those tables), with a
   * warning naming the page's table.
   *
   * Default: 500.
   */
  maxTagsPerPage?: number;
}

const DEFAULT_MAX_ROWS = 1000;
const DEFAULT_RECOVERY_TIMEOUT = 60_000;

interface Settings {
  readonly maxRows: number;
  readonly dialect: DialectName | undefined;
  readonly recoveryTimeout: number;
  readonly trackReads: boolean;
  readonly maxTagsPerPage: number;
}

function validate(options: KyselyDumperOptions | undefined): Settings {
  if (options === undefined) return { maxRows: DEFAULT_MAX_ROWS, dialect: undefined, recoveryTimeout: DEFAULT_RECOVERY_TIMEOUT, ...readOptions('kyselyDumper', undefined, undefined) };
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: kyselyDumper(dumper, db, options): options must be an object');
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  if (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new TypeError(`page-dumper: kyselyDumper() option maxRows must be a positive integer, got ${String(maxRows)}`);
  }
  const dialect = options.dialect;
  if (dialect !== undefined && dialect !== 'postgres' && dialect !== 'sqlite' && dialect !== 'mysql') {
    throw new TypeError(`page-dumper: kyselyDumper() option dialect must be 'postgres', 'sqlite' or 'mysql', got ${String(dialect)}`);
  }
  const recoveryTimeout = options.recoveryTimeout ?? DEFAULT_RECOVERY_TIMEOUT;
  if (typeof recoveryTimeout !== 'number' || !Number.isSafeInteger(recoveryTimeout) || recoveryTimeout < 0) {
    throw new TypeError(`page-dumper: kyselyDumper() option recoveryTimeout must be a non-negative integer of milliseconds, got ${String(recoveryTimeout)}`);
  }
  return { maxRows, dialect, recoveryTimeout, ...readOptions('kyselyDumper', options.trackReads, options.maxTagsPerPage) };
}

function dialectOf(executor: QueryExecutor): DialectName | undefined {
  const adapter = executor.adapter;
  if (adapter instanceof PostgresAdapter) return 'postgres';
  if (adapter instanceof MysqlAdapter) return 'mysql';
  if (adapter instanceof SqliteAdapter) return 'sqlite';
  // Another copy of kysely: the class names still tell.
  const name = adapter?.constructor?.name;
  return name === 'PostgresAdapter' ? 'postgres' : name === 'MysqlAdapter' ? 'mysql' : name === 'SqliteAdapter' ? 'sqlite' : undefined;
}

/** A transaction statement Kysely's drivers send (or the caller does, with `sql`). */
type Control = { kind: 'begin' | 'rollback' } | { kind: 'commit'; chain: boolean } | { kind: 'savepoint' | 'release' | 'rollback to'; name: string };

function control(sql: string): Control | undefined {
  const text = sql.trim().toLowerCase();
  const c = text.charCodeAt(0);
  // b(egin) s(tart, savepoint) c(ommit) r(ollback, release) e(nd): anything else is not one.
  if (c !== 98 && c !== 115 && c !== 99 && c !== 114 && c !== 101) return undefined;
  if (/^(begin|start\s+transaction)\b/.test(text)) return { kind: 'begin' };
  if (/^(commit|end)\b/.test(text)) return { kind: 'commit', chain: /\band\s+chain\b/.test(text) && !/\bno\s+chain\b/.test(text) };
  let m = /^rollback\s+to\s+(?:savepoint\s+)?(.+?);?$/.exec(text);
  if (m) return { kind: 'rollback to', name: unquote(m[1]!) };
  if (/^rollback\b/.test(text)) return { kind: 'rollback' };
  m = /^savepoint\s+(.+?);?$/.exec(text);
  if (m) return { kind: 'savepoint', name: unquote(m[1]!) };
  m = /^release\s+(?:savepoint\s+)?(.+?);?$/.exec(text);
  if (m) return { kind: 'release', name: unquote(m[1]!) };
  return undefined;
}

const unquote = (name: string) => name.replace(/^["`[](.*)["`\]]$/, '$1');

/**
 * Wraps a Kysely instance: the instance returned is a `Kysely<DB>` of the same type (and still
 * `instanceof Kysely`) on the same driver and plugins, whose inserts, updates and deletes
 * invalidate the `dependentPaths` and `dependentTags` of the rows they change, for tables
 * registered by their SQL name: `dumper.register('ice_cream', { dependentPaths(row) { ... } })`.
 * `row` is the row as `selectAll()` returns it without plugins: column names, as the driver
 * returns them.
 *
 * Inside a transaction the pages are invalidated when the write runs and again once the
 * transaction has committed (a rollback drops the second invalidation; a rollback to a savepoint
 * drops the writes since it).
 *
 * With `trackReads: true`, no table needs registering: every SELECT run during a render tags the
 * page with what it read (see reads.ts), and every write of any table invalidates the tags of the
 * rows it changed, and of the rows `ON DELETE CASCADE`/`SET NULL` change with a delete.
 *
 * Not seen: raw SQL (`sql\`...\`.execute(db)`, `CompiledQuery.raw`) and rows the database
 * changes by itself (triggers; `ON DELETE CASCADE` without trackReads). Invalidate those with
 * `dumper.changed('table', row)`, `dumper.invalidate(paths)` or `dumper.invalidateTags([tableTag(table)])`.
 */
export function kyselyDumper<DB>(dumper: Dumper, db: Kysely<DB>, options?: KyselyDumperOptions): Kysely<DB> {
  assertDumper(dumper, 'kyselyDumper');
  if (!isKysely(db)) throw new TypeError('page-dumper: kyselyDumper(dumper, db) needs a Kysely instance: new Kysely<DB>({ dialect })');
  if (db.isTransaction) throw new TypeError('page-dumper: kyselyDumper() needs the Kysely instance, not a transaction: wrap the instance the transaction comes from');
  const settings = validate(options);
  const base = db.getExecutor();
  const dialect = settings.dialect ?? dialectOf(base);
  if (dialect === undefined) {
    throw new TypeError(
      `page-dumper: kyselyDumper() supports the PostgreSQL, SQLite and MySQL dialects; this instance's adapter is ${base.adapter?.constructor?.name ?? 'unknown'} (pass { dialect } if it speaks one of them)`,
    );
  }
  const plain = base.withoutPlugins();
  const schemas = settings.trackReads ? new Schemas(dialect) : undefined;
  const reads = schemas && new KyselyReads(new ReadTracker(dumper, { maxTagsPerPage: settings.maxTagsPerPage, integration: 'kysely' }), dialect, schemas);
  const writes = new Writes(dumper, dialect, (node) => plain.compileQuery(node, QUERY_ID), { maxRows: settings.maxRows, schemas });
  /** The open transaction of each connection: its frames, from the transaction down to the last savepoint. */
  const transactions = new WeakMap<DatabaseConnection, Frame[]>();
  const wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  async function apply(outcome: Outcome, frames: Frame[] | undefined, table: string, kind: string): Promise<void> {
    if (outcome instanceof Fallback) {
      dumper.log.warn(`kysely ${kind} of ${table}: ${outcome.reason}; invalidating every page`, { table, operation: kind });
      await dumper.invalidateAll();
      if (frames !== undefined) frames[frames.length - 1]!.all = true;
    } else if (outcome.length > 0) {
      await dumper.invalidateDependents(outcome);
      if (frames !== undefined) frames[frames.length - 1]!.pending.push(...outcome);
    }
  }

  /**
   * A write whose rows are not resolved: every page, or with trackReads, for tables none of which
   * is registered, everything read from them (read before the write runs).
   */
  async function unresolved(connection: DatabaseConnection, targets: readonly Target[], reason: string): Promise<Outcome> {
    return (await writes.unknown(connection, targets, reason)) ?? new Fallback(reason);
  }

  /** A transaction committed: its writes are invalidated again, in one store call. */
  async function settle(frames: readonly Frame[]): Promise<void> {
    if (frames.some((f) => f.all)) return dumper.invalidateAll();
    const pending: Dependents[] = frames.flatMap((f) => f.pending);
    if (pending.length > 0) await dumper.invalidateDependents(pending);
  }

  /**
   * Connections whose ROLLBACK of page-dumper's own transaction failed (a client-side timeout
   * drops it unsent while the write still runs on the server): they may still be in that
   * transaction. Nothing else may run in it — a later write would be lost with it, or committed
   * with it — so the next query on such a connection first sends ROLLBACK again (the write that
   * failed is then rolled back: its pages were invalidated when it failed), and fails, without
   * running, if that fails too.
   */
  const stuck = new WeakSet<DatabaseConnection>();

  async function unstick(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } catch (error) {
      throw new Error(`page-dumper: this connection may still be in a transaction page-dumper opened and could not roll back; the query was not run (${error instanceof Error ? error.message : String(error)})`, { cause: error });
    }
    stuck.delete(connection);
    transactions.delete(connection);
    // The server has finished whatever it still ran of the failed write (its COMMIT, maybe).
    await dumper.invalidateAll();
  }

  /**
   * After page-dumper's own transaction failed with its outcome unknown: sends ROLLBACK until the
   * connection answers one. A client-side timeout rejects a statement the server still runs (the
   * write, or its COMMIT) and the ROLLBACK queued behind it, unsent; once the server is done, a
   * ROLLBACK is answered, and the write has committed or never will. Gives up on an error that is
   * not a timeout (the connection is broken) or after `recoveryTimeout`.
   */
  async function recover(connection: DatabaseConnection): Promise<boolean> {
    const deadline = Date.now() + settings.recoveryTimeout;
    for (;;) {
      const started = Date.now();
      try {
        await connection.executeQuery(CompiledQuery.raw('rollback'));
        return true;
      } catch (error) {
        if (!/\btime(d\s*)?out\b/i.test(error instanceof Error ? error.message : String(error)) || Date.now() >= deadline) return false;
        if (Date.now() - started < 10) await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /**
   * A COMMIT of the caller's transaction failed: it may have committed (a client-side timeout
   * rejects a COMMIT the server still completes), so its writes are invalidated again now, and
   * once more when the connection has answered a ROLLBACK (the server done with it), before the
   * error reaches the caller. An extra invalidation after a COMMIT that really failed costs only
   * re-renders.
   */
  async function uncertainCommit(connection: DatabaseConnection, frames: readonly Frame[], error: unknown): Promise<void> {
    transactions.delete(connection);
    await settle(frames);
    if (await recover(connection)) return settle(frames);
    stuck.add(connection);
    dumper.log.warn(
      `kysely: the COMMIT of a transaction failed (${error instanceof Error ? error.message : String(error)}) and the connection did not answer a ROLLBACK; its next query sends ROLLBACK first, and fails if that fails again`,
      {},
    );
  }

  async function execute<R>(connection: DatabaseConnection, query: CompiledQuery, acquisition?: Acquisition): Promise<QueryResult<R>> {
    if (stuck.has(connection)) await unstick(connection);
    const node = query.query;
    if (node.kind === 'RawNode') {
      const statement = control(query.sql);
      if (statement === undefined) return connection.executeQuery<R>(query);
      const frames = transactions.get(connection);
      let result: QueryResult<R>;
      try {
        result = await connection.executeQuery<R>(query);
      } catch (error) {
        if (statement.kind !== 'commit' || frames === undefined) throw error;
        await uncertainCommit(connection, frames, error);
        throw error;
      }
      switch (statement.kind) {
        case 'begin':
          // PostgreSQL only warns of a BEGIN inside a transaction, which goes on; MySQL commits it first.
          if (frames !== undefined && dialect === 'postgres') break;
          transactions.set(connection, [{ name: undefined, pending: [], all: false }]);
          if (frames !== undefined && dialect === 'mysql') await settle(frames);
          break;
        case 'commit': {
          // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
          const committed = (result.rows[0] as { command?: unknown } | undefined)?.command !== 'ROLLBACK';
          // COMMIT AND CHAIN opens the next transaction at once.
          if (statement.chain) transactions.set(connection, [{ name: undefined, pending: [], all: false }]);
          else transactions.delete(connection);
          if (frames !== undefined && committed) await settle(frames);
          break;
        }
        case 'rollback':
          if (/\band\s+chain\b/.test(query.sql.toLowerCase()) && !/\bno\s+chain\b/.test(query.sql.toLowerCase())) {
            transactions.set(connection, [{ name: undefined, pending: [], all: false }]);
          } else transactions.delete(connection);
          break;
        case 'savepoint':
          frames?.push({ name: statement.name, pending: [], all: false });
          break;
        case 'rollback to': {
          const at = frames?.findLastIndex((f) => f.name === statement.name) ?? -1;
          if (at > 0) {
            frames!.length = at + 1;
            frames![at]!.pending = [];
            frames![at]!.all = false;
          }
          break;
        }
        case 'release': {
          const at = frames?.findLastIndex((f) => f.name === statement.name) ?? -1;
          if (at > 0) {
            const merged = frames!.splice(at);
            frames![at - 1]!.pending.push(...merged.flatMap((f) => f.pending));
            if (merged.some((f) => f.all)) frames![at - 1]!.all = true;
          }
          break;
        }
      }
      return result;
    }
    // Writes inside WITH clauses (PostgreSQL): the query runs as it is, and if one of them (or the
    // query itself) writes a registered table, every page is invalidated. Reading their rows
    // before would run them twice.
    const nested = nestedWrites(node);
    if (nested.length > 0) {
      const targets = [...(isWrite(node) ? [node] : []), ...nested].flatMap((n) => writes.targets(n) ?? []);
      const outcome = targets.length > 0 ? await unresolved(connection, targets, 'a write inside a WITH is not resolved row by row') : undefined;
      const result = await connection.executeQuery<R>(query);
      if (reads !== undefined && !isWrite(node)) await reads.tag(connection, node, result.rows as Record<string, unknown>[]);
      if (outcome !== undefined) await apply(outcome, transactions.get(connection), namesOf(targets), kindOf(node));
      return result;
    }
    if (!isWrite(node)) {
      const result = await connection.executeQuery<R>(query);
      // With trackReads: the read tags the page it runs for (this runs in the caller's async context).
      if (reads !== undefined) await reads.tag(connection, node, result.rows as Record<string, unknown>[]);
      return result;
    }
    const targets = writes.targets(node);
    if (targets === undefined) return connection.executeQuery<R>(query);
    const models = namesOf(targets);
    const explain = (node as { explain?: unknown }).explain;
    if (explain !== undefined) {
      // A plain EXPLAIN does not run the write; EXPLAIN ANALYZE does, and is not resolved.
      const analyze = /^\s*explain\b[^;]*\banaly[sz]e\b/i.test(query.sql);
      const outcome = analyze ? await unresolved(connection, targets, 'EXPLAIN ANALYZE of a write is not resolved row by row') : undefined;
      const result = await connection.executeQuery<R>(query);
      if (outcome !== undefined) await apply(outcome, transactions.get(connection), models, kindOf(node));
      return result;
    }
    const frames = transactions.get(connection);
    // Outside a transaction, on a connection taken for this write alone: dependentPaths runs once it is released.
    const deferred = frames === undefined ? acquisition : undefined;
    let ran: { result: QueryResult<unknown>; outcome: Outcome };
    try {
      ran = await writes.run(connection, query, targets, frames !== undefined, deferred);
    } catch (error) {
      if (error instanceof Unknown) {
        const reason = error.error instanceof Error ? error.error.message : String(error.error);
        // The write may have committed already: every page is invalidated now. The server may
        // also still be running it, or its COMMIT: once the connection answers a ROLLBACK, it is
        // done, and every page is invalidated again, before the error reaches the caller.
        await apply(new Fallback(`page-dumper's own transaction failed after its BEGIN (${reason}); whether the write committed is unknown`), undefined, models, kindOf(node));
        const failed = error.stuck ? 'the ROLLBACK of' : 'the COMMIT of';
        if (await recover(connection)) {
          dumper.log.warn(`kysely ${kindOf(node)} of ${models}: ${failed} page-dumper's own transaction failed (${reason}); the connection has since answered a ROLLBACK: invalidating every page again`, {
            table: models,
            operation: kindOf(node),
          });
          await dumper.invalidateAll();
        } else {
          // The connection may still be in the transaction, the server still running it. It goes
          // back to the pool marked: its next query sends ROLLBACK first (and fails if that fails
          // again), then every page is invalidated again.
          stuck.add(connection);
          dumper.log.warn(
            `kysely ${kindOf(node)} of ${models}: ${failed} page-dumper's own transaction failed (${reason}) and the connection did not answer a ROLLBACK; it may still be in that transaction: its next query sends ROLLBACK first, and fails if that fails again`,
            { table: models, operation: kindOf(node) },
          );
        }
        throw error.error;
      }
      if (!(error instanceof AfterWrite)) throw error;
      // The write ran but its rows could not all be resolved: nothing may stay stale.
      const reason = error.error instanceof Error ? error.error.message : String(error.error);
      await apply(new Fallback(`resolving its rows failed after it ran (${reason})`), frames, models, kindOf(node));
      throw error.error;
    }
    if (deferred === undefined) {
      await apply(ran.outcome, frames, models, kindOf(node));
      return ran.result as QueryResult<R>;
    }
    const outcome = ran.outcome;
    deferred.after.push(async () => {
      if (outcome instanceof Fallback || deferred.rows.length === 0) return apply(outcome, undefined, models, kindOf(node));
      let resolved: Map<string, Dependents>;
      try {
        resolved = await writes.resolve(deferred.rows);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        await apply(new Fallback(`resolving its rows failed after it ran (${reason})`), undefined, models, kindOf(node));
        throw error;
      }
      await apply([...outcome, ...resolved.values()], undefined, models, kindOf(node));
    });
    return ran.result as QueryResult<R>;
  }

  async function* stream<R>(connection: DatabaseConnection, query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    const node = query.query;
    if (stuck.has(connection)) await unstick(connection);
    const targets = [...(isWrite(node) ? [node] : []), ...nestedWrites(node)].flatMap((n) => writes.targets(n) ?? []);
    // A streamed read tags the lists of the tables it names, and of the tables under the views
    // among them (read from the catalog before it starts: the connection is busy until it ends).
    if (reads !== undefined && !isWrite(node)) await reads.lists(connection, node);
    if (targets.length === 0) return yield* connection.streamQuery<R>(query, chunkSize);
    // Narrowed before the stream starts: the connection cannot read the schema while it streams.
    const outcome = await unresolved(connection, targets, 'a streamed write is not resolved row by row');
    const invalidate = () => apply(outcome, transactions.get(connection), namesOf(targets), kindOf(node));
    // Once as the first rows arrive (the write has run), and again however the stream ends
    // (a consumer that stops early returns from the `yield`: only `finally` runs then).
    let first = true;
    try {
      for await (const chunk of connection.streamQuery<R>(query, chunkSize)) {
        if (first) {
          first = false;
          await invalidate();
        }
        yield chunk;
      }
    } finally {
      await invalidate();
    }
  }

  /** The connection as the driver made it, but for its two query methods. */
  function wrap(connection: DatabaseConnection, acquisition?: Acquisition): DatabaseConnection {
    let out = acquisition === undefined ? wrapped.get(connection) : undefined;
    if (out === undefined) {
      out = new Proxy(connection, {
        get(target, key) {
          if (key === 'executeQuery') return (query: CompiledQuery) => execute(target, query, acquisition);
          if (key === 'streamQuery') return (query: CompiledQuery, chunkSize?: number) => stream(target, query, chunkSize);
          const value = Reflect.get(target, key, target) as unknown;
          // The driver's own methods (PostgreSQL's release and discard) run on the real connection.
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      if (acquisition === undefined) wrapped.set(connection, out);
    }
    return out;
  }

  /** The acquisition the next `provideConnection` is for: set by `single`, for one synchronous call. */
  let next: Acquisition | undefined;
  const provider: ConnectionProvider = {
    provideConnection: (consumer) => {
      const acquisition = next;
      next = undefined;
      return base.provideConnection((connection) => consumer(wrap(connection, acquisition)));
    },
  };

  /**
   * One query on a connection of its own (`db.updateTable(...).execute()`, not a transaction's nor
   * `connection()`'s): an update, a delete or an upsert reads its rows first on a short acquisition
   * of its own, whose `dependentPaths` runs once it is released (before the write: a delete's rows
   * are still there); the rows the write itself finds reach `dependentPaths` once its connection
   * is released (and page-dumper's own MySQL transaction committed), before its promise resolves.
   */
  async function single(executor: QueryExecutor, query: CompiledQuery, rest: unknown[]): Promise<QueryResult<unknown>> {
    const run = (acquisition: Acquisition | undefined) => {
      next = acquisition;
      try {
        return (executor.executeQuery as (q: CompiledQuery, ...r: unknown[]) => Promise<QueryResult<unknown>>).call(executor, query, ...rest);
      } finally {
        next = undefined;
      }
    };
    const node = query.query;
    const targets = isWrite(node) && nestedWrites(node).length === 0 && (node as { explain?: unknown }).explain === undefined ? writes.targets(node) : undefined;
    if (targets === undefined) return run(undefined);
    const acquisition: Acquisition = { known: new Map(), rows: [], after: [] };
    // Only a registered table's rows wait for dependentPaths; the others' tags are computed at once.
    if (writes.readsFirst(node) && targets.some((t) => t.model !== undefined)) {
      const rows = await base.provideConnection(async (connection) => {
        // The read runs on the raw connection: one left in a failed transaction is unstuck first.
        if (stuck.has(connection)) await unstick(connection);
        return transactions.has(connection) ? [] : writes.probe(connection, query, targets);
      });
      acquisition.known = await writes.resolve(rows);
    }
    const result = await run(acquisition);
    for (const task of acquisition.after) await task();
    return result;
  }

  /** The executor, and those its plugin methods derive, with `executeQuery` through `single`. */
  function decorate(executor: QueryExecutor): QueryExecutor {
    return new Proxy(executor, {
      get(target, key) {
        if (key === 'executeQuery') return (query: CompiledQuery, ...rest: unknown[]) => single(target, query, rest);
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key === 'withPlugin' || key === 'withPlugins' || key === 'withPluginAtFront' || key === 'withoutPlugins') {
          return (...args: unknown[]) => decorate((value as (...a: unknown[]) => QueryExecutor).apply(target, args));
        }
        return (value as (...args: unknown[]) => unknown).bind(target);
      },
    });
  }

  return withExecutor(db, decorate(base.withConnectionProvider(provider)));
}

/** A Kysely instance, from this copy of kysely or another (its CommonJS build): by its methods. */
function isKysely(db: unknown): db is Kysely<unknown> {
  const k = db as Partial<Record<'getExecutor' | 'withPlugin' | 'selectFrom' | 'transaction', unknown>> | null;
  return (
    typeof k === 'object' && k !== null && typeof k.getExecutor === 'function' && typeof k.withPlugin === 'function' && typeof k.selectFrom === 'function' && typeof k.transaction === 'function'
  );
}

function kindOf(node: RootOperationNode): string {
  return node.kind.replace(/QueryNode$/, '').toLowerCase();
}

/**
 * The same Kysely (config, dialect, driver) with another executor. Kysely keeps them private and
 * only `withPlugin()` and its kin make a copy with a new executor, which they get from the
 * executor itself: for the time of that call, the executor hands back ours.
 */
function withExecutor<DB>(db: Kysely<DB>, executor: QueryExecutor): Kysely<DB> {
  const original = db.getExecutor() as QueryExecutor & { withPlugin: unknown };
  const own = Object.getOwnPropertyDescriptor(original, 'withPlugin');
  Object.defineProperty(original, 'withPlugin', { configurable: true, writable: true, value: () => executor });
  try {
    const copy = db.withPlugin({ transformQuery: (args) => args.node, transformResult: async (args) => args.result });
    if (copy.getExecutor() !== executor) throw new TypeError('page-dumper: kyselyDumper() could not wrap this Kysely instance (it needs Kysely 0.28)');
    return copy;
  } finally {
    if (own !== undefined) Object.defineProperty(original, 'withPlugin', own);
    else delete (original as { withPlugin?: unknown }).withPlugin;
  }
}
