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
import { Kysely, MysqlAdapter, PostgresAdapter, SqliteAdapter, type CompiledQuery, type DatabaseConnection, type QueryResult, type RootOperationNode } from 'kysely';
import type { ConnectionProvider, QueryExecutor } from 'kysely';
import { assertDumper, type Dependents, type Dumper } from '../../core/dumper.js';
import type { DialectName } from './tables.js';
import { Fallback, QUERY_ID, Writes, type Frame, type Outcome } from './writes.js';

export type { DialectName } from './tables.js';

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
}

const DEFAULT_MAX_ROWS = 1000;

function validate(options: KyselyDumperOptions | undefined): { maxRows: number; dialect: DialectName | undefined } {
  if (options === undefined) return { maxRows: DEFAULT_MAX_ROWS, dialect: undefined };
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: kyselyDumper(dumper, db, options): options must be an object');
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  if (typeof maxRows !== 'number' || !Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new TypeError(`page-dumper: kyselyDumper() option maxRows must be a positive integer, got ${String(maxRows)}`);
  }
  const dialect = options.dialect;
  if (dialect !== undefined && dialect !== 'postgres' && dialect !== 'sqlite' && dialect !== 'mysql') {
    throw new TypeError(`page-dumper: kyselyDumper() option dialect must be 'postgres', 'sqlite' or 'mysql', got ${String(dialect)}`);
  }
  return { maxRows, dialect };
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
type Control = { kind: 'begin' | 'commit' | 'rollback' } | { kind: 'savepoint' | 'release' | 'rollback to'; name: string };

function control(sql: string): Control | undefined {
  const text = sql.trim().toLowerCase();
  const c = text.charCodeAt(0);
  // b(egin) s(tart, savepoint) c(ommit) r(ollback, release) e(nd): anything else is not one.
  if (c !== 98 && c !== 115 && c !== 99 && c !== 114 && c !== 101) return undefined;
  if (/^(begin|start\s+transaction)\b/.test(text)) return { kind: 'begin' };
  if (/^(commit|end)\b/.test(text)) return { kind: 'commit' };
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
 * Not seen: raw SQL (`sql\`...\`.execute(db)`, `CompiledQuery.raw`) and rows the database
 * changes by itself (`ON DELETE CASCADE`, triggers). Invalidate those with
 * `dumper.changed('table', row)` or `dumper.invalidate(paths)`.
 */
export function kyselyDumper<DB>(dumper: Dumper, db: Kysely<DB>, options?: KyselyDumperOptions): Kysely<DB> {
  assertDumper(dumper, 'kyselyDumper');
  if (!(db instanceof Kysely)) throw new TypeError('page-dumper: kyselyDumper(dumper, db) needs a Kysely instance: new Kysely<DB>({ dialect })');
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
  const writes = new Writes(dumper, dialect, (node) => plain.compileQuery(node, QUERY_ID), settings);
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

  /** A transaction committed: its writes are invalidated again, in one store call. */
  async function settle(frames: readonly Frame[]): Promise<void> {
    if (frames.some((f) => f.all)) return dumper.invalidateAll();
    const pending: Dependents[] = frames.flatMap((f) => f.pending);
    if (pending.length > 0) await dumper.invalidateDependents(pending);
  }

  async function execute<R>(connection: DatabaseConnection, query: CompiledQuery): Promise<QueryResult<R>> {
    const node = query.query;
    if (node.kind === 'RawNode') {
      const statement = control(query.sql);
      if (statement === undefined) return connection.executeQuery<R>(query);
      const result = await connection.executeQuery<R>(query);
      const frames = transactions.get(connection);
      switch (statement.kind) {
        case 'begin':
          transactions.set(connection, [{ name: undefined, pending: [], all: false }]);
          break;
        case 'commit':
          transactions.delete(connection);
          // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
          if (frames !== undefined && (result.rows[0] as { command?: unknown } | undefined)?.command !== 'ROLLBACK') await settle(frames);
          break;
        case 'rollback':
          transactions.delete(connection);
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
    if (node.kind !== 'InsertQueryNode' && node.kind !== 'UpdateQueryNode' && node.kind !== 'DeleteQueryNode' && node.kind !== 'MergeQueryNode') {
      return connection.executeQuery<R>(query);
    }
    const targets = writes.targets(node);
    if (targets === undefined) return connection.executeQuery<R>(query);
    const frames = transactions.get(connection);
    const { result, outcome } = await writes.run(connection, query, targets, frames !== undefined);
    await apply(outcome, frames, targets.map((t) => t.model).join(', '), kindOf(node));
    return result as QueryResult<R>;
  }

  async function* stream<R>(connection: DatabaseConnection, query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    const targets = writes.targets(query.query);
    yield* connection.streamQuery<R>(query, chunkSize);
    if (targets !== undefined) {
      await apply(new Fallback('a streamed write is not resolved row by row'), transactions.get(connection), targets.map((t) => t.model).join(', '), kindOf(query.query));
    }
  }

  /** The connection as the driver made it, but for its two query methods. */
  function wrap(connection: DatabaseConnection): DatabaseConnection {
    let out = wrapped.get(connection);
    if (out === undefined) {
      out = new Proxy(connection, {
        get(target, key) {
          if (key === 'executeQuery') return (query: CompiledQuery) => execute(target, query);
          if (key === 'streamQuery') return (query: CompiledQuery, chunkSize?: number) => stream(target, query, chunkSize);
          const value = Reflect.get(target, key, target) as unknown;
          // The driver's own methods (PostgreSQL's release and discard) run on the real connection.
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      wrapped.set(connection, out);
    }
    return out;
  }

  const provider: ConnectionProvider = {
    provideConnection: (consumer) => base.provideConnection((connection) => consumer(wrap(connection))),
  };
  return withExecutor(db, base.withConnectionProvider(provider));
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
