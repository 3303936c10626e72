/**
 * One Drizzle write (insert, update, delete builder) turned into the rows it changes, and those
 * rows into invalidations.
 *
 * - Rows written are found with RETURNING where Drizzle has it (PostgreSQL, SQLite): page-dumper
 *   appends the table's columns to the statement's own `returning()` (or adds one) and hands the
 *   caller the result it asked for, without them.
 * - The rows before an update, before a delete and before an upsert are read with a select of the
 *   same predicate first (locked, in the write's transaction). On PostgreSQL and MySQL a write
 *   outside a transaction runs in one page-dumper opens when the client is a pool, so the select
 *   and the write see the same rows (on a single connection they run back to back); its
 *   dependentPaths are called after it commits. On better-sqlite3 they run back to back,
 *   synchronously, on the one connection.
 * - On MySQL (no RETURNING) the rows after an update are read again by primary key, and the rows
 *   an insert wrote by the auto-increment ids it reports (as Drizzle's `$returningId()` does) and
 *   by the unique keys its values set.
 */
import { and, eq, inArray, is, or, Param, sql, type Column, type SQL, type Table } from 'drizzle-orm';
import type { Dependents, Dumper } from '../../core/dumper.js';
import { keyTag, linkTags, listTag, unknownWriteTags, writeTags, type KeyValues } from '../reads.js';
import { referencing, tableInfo, valueKey, type TableInfo } from './tables.js';

export type Row = Record<string, unknown>;
/** The lock a select before a write takes: none, PostgreSQL's FOR NO KEY UPDATE (as an update not touching keys takes), or FOR UPDATE. */
type Lock = false | 'update' | 'no key update';
export type Dialect = 'pg' | 'sqlite' | 'mysql';
export type Operation = 'insert' | 'update' | 'delete';

/** Where page-dumper's own selected columns ride in a RETURNING row: a key no schema field has. */
const HIDDEN = '\u0000page-dumper';

/** The writes of one transaction, invalidated again when the outermost transaction commits. */
export interface Scope {
  readonly parent: Scope | undefined;
  readonly pending: Dependents[];
  /** A write fell back to dropping every page. */
  all: boolean;
  /** better-sqlite3: the invalidations of writes made synchronously, still being computed. */
  readonly jobs: Promise<Outcome>[];
}

export function newScope(parent: Scope | undefined): Scope {
  return { parent, pending: [], all: false, jobs: [] };
}

/** Why the rows of a write are not resolved one by one: every page is invalidated instead. */
export class Fallback {
  constructor(readonly reason: string) {}
}

export type Outcome = Dependents[] | Fallback;

/** The parts of a Drizzle insert/update/delete builder that page-dumper reads (internal in Drizzle, stable since 0.30). */
export interface WriteBuilder {
  session: unknown;
  readonly config: {
    readonly table: Table;
    where?: SQL;
    values?: Row[] | unknown;
    select?: boolean;
    ignore?: boolean;
    returning?: Array<{ path: string[]; field: unknown }>;
    withList?: unknown[];
    orderBy?: unknown[];
    limit?: number | unknown;
    from?: unknown;
    joins?: unknown[];
  };
  [method: string]: unknown;
}

/** What the proxy knows of a builder: whose it is, and the upsert it was told to do. */
export interface BuilderState {
  readonly op: Operation;
  /** The database or transaction (unwrapped) that built it. */
  readonly owner: any;
  readonly scope: Scope | undefined;
  /**
   * `onConflictDoUpdate`/`onDuplicateKeyUpdate`/`onConflictDoNothing` with a target was called:
   * every conflict target named (a chain keeps them all; `undefined` is every unique key), and
   * the fields its `set` assigns.
   */
  upsert?: { readonly targets: Array<readonly Column[] | undefined>; readonly set: Set<string> };
  /** The builder was made by `with()` of a data-modifying CTE (INSERT/UPDATE/DELETE): every page is invalidated after it. */
  cteWrite?: boolean;
}

/**
 * The node-postgres pool client of page-dumper's own transaction, watched while Drizzle holds it.
 * Drizzle sends COMMIT (or ROLLBACK after an error) and releases the client in a `finally`. A
 * client-side timeout (`query_timeout`) rejects a statement the server still runs, and drops the
 * statements queued behind it unsent: a ROLLBACK lost that way leaves the connection in the
 * transaction, and the pool hands it to the next caller, whose statements then run in it (a
 * later BEGIN only warns, its COMMIT commits the failed write too). So when the last statement
 * failed, the release waits: a ROLLBACK is sent with a long timeout of its own — the server
 * answers it once it has finished the write or the COMMIT it was running — and the client goes
 * back to the pool after it, or is closed if it failed. `recovery` resolves to whether the
 * ROLLBACK was answered.
 */
class PgClientGuard {
  recovery: Promise<boolean> | undefined;

  constructor(readonly timeout: number) {}

  /** Watches the client that the pool's next `connect()` hands out (Drizzle calls it synchronously, first). Returns the undo. */
  intercept(pool: { connect: (...args: unknown[]) => unknown }): () => void {
    const own = Object.hasOwn(pool, 'connect');
    const connect = pool.connect;
    const restore = () => {
      if (own) pool.connect = connect;
      else delete (pool as { connect?: unknown }).connect;
    };
    pool.connect = (...args: unknown[]) => {
      restore();
      const out = connect.apply(pool, args);
      if (!(out instanceof Promise)) return out;
      return out.then((client: unknown) => {
        this.watch(client);
        return client;
      });
    };
    return restore;
  }

  watch(client: unknown): void {
    const c = client as { query?: unknown; release?: unknown } | null | undefined;
    if (c === null || c === undefined || typeof c.query !== 'function' || typeof c.release !== 'function') return;
    const pg = c as { query: (...args: unknown[]) => unknown; release: (error?: Error | boolean) => void };
    const query = pg.query;
    const release = pg.release;
    let failed = false;
    pg.query = function (this: unknown, ...args: unknown[]) {
      const result = query.apply(pg, args);
      if (result instanceof Promise) {
        failed = false;
        result.then(
          () => (failed = false),
          () => (failed = true),
        );
      }
      return result;
    };
    pg.release = (error?: Error | boolean) => {
      // pg-pool sets `release` on each client it hands out; `query` is the prototype's.
      if (Object.hasOwn(pg, 'query')) delete (pg as { query?: unknown }).query;
      if (pg.query !== query) pg.query = query;
      pg.release = release;
      if (!failed || error) return pg.release(error);
      this.recovery = (async () => {
        try {
          await pg.query({ text: 'rollback', query_timeout: this.timeout });
          pg.release();
          return true;
        } catch (cause) {
          pg.release(cause instanceof Error ? cause : new Error(String(cause)));
          return false;
        }
      })();
    };
  }
}

/** A database or transaction as page-dumper uses it (unwrapped Drizzle objects). */
type Reader = any;

/** The rows a delete will remove, and their paths, computed before it runs. */
interface Preread {
  readonly rows: readonly Row[];
  readonly dependents: readonly Dependents[];
}

export interface Settings {
  readonly maxRows: number;
  /** `trackReads`: every table is watched, and writes invalidate the tags reads put on pages. */
  readonly trackReads: boolean;
  /** How long a ROLLBACK sent to recover a connection waits for the server (behind what it still runs), in ms. */
  readonly recoveryTimeout: number;
}

export class Writes {
  readonly #dumper: Dumper;
  readonly #dialect: Dialect;
  readonly #settings: Settings;
  /** better-sqlite3 writes made synchronously whose invalidation has not finished. */
  readonly jobs = new Set<Promise<unknown>>();
  readonly #failures: unknown[] = [];

  constructor(dumper: Dumper, dialect: Dialect, settings: Settings) {
    this.#dumper = dumper;
    this.#dialect = dialect;
    this.#settings = settings;
  }

  /** Whether a builder writes a registered table: the others run as they would without page-dumper. */
  watched(builder: WriteBuilder): boolean {
    const table = builder.config?.table;
    return table !== undefined && (this.#settings.trackReads || this.#dumper.isRegistered(tableInfo(table).name));
  }

  // ---------------------------------------------------------------- PostgreSQL, MySQL

  /** An awaited write (`await`, `.then()`, `.execute()`): resolves once its pages are invalidated. */
  async write(builder: WriteBuilder, state: BuilderState, args: unknown[]): Promise<unknown> {
    const execute = () => (builder.execute as (...a: unknown[]) => Promise<unknown>)(...args);
    if (state.cteWrite === true) {
      const result = await execute();
      await this.#finish(new Fallback('a write with a data-modifying CTE (with() of an insert, update or delete), whose rows page-dumper does not read'), state, builder);
      return result;
    }
    const info = tableInfo(builder.config.table);
    const joined = builder.config.from !== undefined || (builder.config.joins?.length ?? 0) > 0;
    if (this.#dialect === 'sqlite') {
      let preread: Preread | undefined;
      if (state.op === 'delete' && !joined) {
        // Awaited, a delete's dependentPaths finish before it runs, even those that await before
        // they read. Another write of this process may run in between on the connection: rows it
        // adds are caught by RETURNING, and their paths computed after the delete.
        const rows = this.#selectSync(state.owner, info, builder.config.where, builder);
        if (rows.length <= this.#settings.maxRows) {
          const cascaded = this.#cascadeSync(state.owner, info, rows);
          preread = { rows, dependents: [...(await this.#dependents(info, rows)), ...cascaded] };
        }
      }
      const { result, job } = this.#writeSync(builder, state, 'execute', args, false, preread);
      await job;
      return result;
    }
    // A delete's rows are read, and their paths computed, before it runs and outside any
    // transaction page-dumper opens (as django-dumper's pre_delete: what dependentPaths reads,
    // which a cascade may delete, still exists). Rows the delete removes that this read did not
    // see (added or changed in between) are computed after it.
    let early: Dependents[] = [];
    let seen: Set<string> = new Set();
    if (state.op === 'delete' && !joined) {
      const rows = await this.#select(state.owner, info, builder.config.where, builder, false);
      if (rows.length > this.#settings.maxRows) {
        const result = await execute();
        await this.#finish(this.#tooMany(rows.length), state, builder);
        return result;
      }
      const cascaded = await this.#cascade(state.owner, info, rows);
      early = [...(await this.#dependents(info, rows)), ...cascaded];
      seen = new Set(rows.map((r) => wholeRow(info, r)));
    }
    // page-dumper opens a transaction of its own (so the select before and the write see the same
    // rows) only outside the caller's transactions, only when a select must come first, and only
    // on a pool: on a single connection (pg.Client, a PoolClient, a mysql2 Connection) its BEGIN
    // and COMMIT would be the caller's (see docs/drizzle.md).
    const needsSelect = state.op === 'update' || (state.op === 'insert' && state.upsert !== undefined) || (state.op === 'delete' && this.#dialect === 'mysql');
    const own = state.scope === undefined && needsSelect && !joined && this.#pooled(state.owner);
    let ran: { result: unknown; rows: Row[] | Fallback };
    let failure: { error: unknown } | undefined;
    if (own) {
      // READ COMMITTED on MySQL: at REPEATABLE READ the locking select of a key that does not
      // exist yet takes a gap lock, and concurrent upserts deadlock on them.
      const config = this.#dialect === 'mysql' ? { isolationLevel: 'read committed' } : undefined;
      const ended = await this.transaction(
        state.owner as Reader,
        async (tx: Reader) => {
          const session = builder.session;
          builder.session = tx.session;
          try {
            return await this.#run(builder, state, tx, args, true);
          } finally {
            builder.session = session;
          }
        },
        config,
      );
      if (ended.ok) ran = ended.value;
      else if (!ended.returned) throw ended.error;
      else {
        // Its COMMIT failed, and the server is done with it (see transaction()): whether it
        // committed is unknown, so its rows are invalidated as if it had, then the error thrown.
        failure = { error: ended.error };
        ran = ended.value;
      }
    } else {
      ran = await this.#run(builder, state, state.owner, args, state.scope !== undefined);
    }
    // Outside a transaction the write has committed: dependentPaths are called now, after the
    // commit, with the rows read in it (never while page-dumper holds a connection).
    let outcome: Outcome;
    if (ran.rows instanceof Fallback) outcome = ran.rows;
    else {
      const rows = ran.rows;
      const rest = state.op === 'delete' ? rows.filter((r) => !seen.has(wholeRow(info, r))) : rows;
      try {
        outcome = [...early, ...(await this.#dependents(info, rest))];
        // Rows the delete removed that the read before it did not see: what their cascades changed is not known.
        if (state.op === 'delete' && rest.length > 0) outcome.push(...this.#unknownCascades(info));
      } catch (error) {
        // The write has run (and, outside a transaction, committed): a dependentPaths that throws
        // for one of its rows must not leave the others' pages stale.
        await this.#finish(new Fallback(`dependentPaths failed for a row it wrote (${error instanceof Error ? error.message : String(error)})`), state, builder);
        throw error;
      }
    }
    await this.#finish(outcome, state, builder);
    if (failure !== undefined) throw failure.error;
    return ran.result;
  }

  /**
   * Drizzle's `transaction()` on `owner`, told apart by how it ended: `ok`, or failed before its
   * callback returned (rolled back: nothing of it committed), or failed after (`returned`, with
   * the callback's value: its COMMIT failed, so whether it committed is unknown).
   *
   * On a node-postgres pool the pool client it takes is watched from before its BEGIN (see
   * PgClientGuard): a failure that leaves the connection busy or in the transaction returns only
   * once the connection has answered a ROLLBACK — the server is then done with the transaction,
   * committed or not — or has been closed.
   */
  async transaction<T>(
    owner: Reader,
    callback: (tx: Reader) => Promise<T>,
    config: unknown,
  ): Promise<{ ok: true; value: T } | { ok: false; error: unknown; returned: false } | { ok: false; error: unknown; returned: true; value: T }> {
    const guard = this.#dialect === 'pg' && this.#pooled(owner) ? new PgClientGuard(this.#settings.recoveryTimeout) : undefined;
    let returned: { value: T } | undefined;
    const restore = guard?.intercept(owner.session.client);
    let running: Promise<T>;
    try {
      running = owner.transaction(async (tx: Reader) => {
        const value = await callback(tx);
        returned = { value };
        return value;
      }, config) as Promise<T>;
    } finally {
      restore?.();
    }
    try {
      return { ok: true, value: await running };
    } catch (error) {
      const recovery = guard?.recovery;
      if (recovery !== undefined) {
        const answered = await recovery;
        this.#dumper.log.warn(
          answered
            ? `drizzle: a transaction failed with its connection busy or still in it (${error instanceof Error ? error.message : String(error)}); the connection answered a ROLLBACK and went back to the pool`
            : `drizzle: a transaction failed with its connection busy or still in it (${error instanceof Error ? error.message : String(error)}); the connection did not answer a ROLLBACK and was closed`,
          {},
        );
      }
      return returned === undefined ? { ok: false, error, returned: false } : { ok: false, error, returned: true, value: returned.value };
    }
  }

  async #finish(outcome: Outcome, state: BuilderState, builder: WriteBuilder): Promise<void> {
    outcome = this.#soften(outcome, state, builder);
    await this.#apply(outcome, state, builder);
    if (state.scope !== undefined) this.#record(outcome, state.scope);
  }

  /** Whether the database's driver client is a pool (pg.Pool, a mysql2 Pool), on which a transaction takes a connection of its own. */
  #pooled(db: Reader): boolean {
    const client = db?.session?.client as Record<string, unknown> | undefined;
    if (client === undefined || client === null) return false;
    if (this.#dialect === 'mysql') return typeof client.getConnection === 'function';
    return (typeof client.connect === 'function' && 'totalCount' in client && 'idleCount' in client) || String(Object.getPrototypeOf(client)?.constructor?.name ?? '').includes('Pool');
  }

  /** The rows the write changed (before and after), or why they are not resolved. `lock`: the select first locks its rows (in a transaction). */
  async #run(b: WriteBuilder, state: BuilderState, reader: Reader, args: unknown[], lock: boolean): Promise<{ result: unknown; rows: Row[] | Fallback }> {
    const info = tableInfo(b.config.table);
    const execute = () => (b.execute as (...a: unknown[]) => Promise<unknown>)(...args);
    const { op } = state;
    const max = this.#settings.maxRows;
    const strength = (set: Iterable<string>): Lock => (!lock ? false : this.#dialect === 'pg' && !touchesKey(info, set) ? 'no key update' : 'update');

    if (op === 'insert') {
      const values = Array.isArray(b.config.values) && b.config.select !== true ? (b.config.values as Row[]) : undefined;
      if (values !== undefined && values.length > max) return { result: await execute(), rows: this.#tooMany(values.length) };
      const before: Row[] = [];
      if (state.upsert !== undefined) {
        const where = values && keyPredicate(info, values, state.upsert.targets);
        if (where === undefined) return { result: await execute(), rows: new Fallback('an upsert whose rows set none of their unique keys') };
        const found = await this.#select(reader, info, where, undefined, strength(state.upsert.set));
        if (found.length > max) return { result: await execute(), rows: this.#tooMany(found.length) };
        before.push(...found);
      }
      if (this.#dialect === 'pg') {
        const { result, rows } = await this.#returning(b, op, () => execute());
        if (rows.length > max) return { result, rows: this.#tooMany(rows.length) };
        return { result, rows: [...before, ...rows] };
      }
      // MySQL: the ids the insert reports, and the unique keys its rows set.
      if (values === undefined) return { result: await execute(), rows: new Fallback('an insert ... select on MySQL, whose rows cannot be read back') };
      if (state.upsert !== undefined && info.primaryKey.some((f) => state.upsert!.set.has(f))) {
        return { result: await execute(), rows: new Fallback('an upsert on MySQL whose update sets the primary key, whose row cannot be read back') };
      }
      const result = await execute();
      const found = await this.#insertedMysql(reader, info, values, state, result, b.config.ignore === true, before);
      if (found instanceof Fallback) return { result, rows: found };
      return { result, rows: [...before, ...found] };
    }

    if (b.config.from !== undefined || (b.config.joins?.length ?? 0) > 0) {
      return { result: await execute(), rows: new Fallback(`an ${op} with from() or joins, whose rows page-dumper does not select`) };
    }
    if (op === 'delete') {
      if (this.#dialect === 'pg') {
        // RETURNING gives the rows deleted, as they were.
        const { result, rows } = await this.#returning(b, op, () => execute());
        return { result, rows: rows.length > max ? this.#tooMany(rows.length) : rows };
      }
      const before = await this.#select(reader, info, b.config.where, b, lock ? 'update' : false);
      if (before.length > max) return { result: await execute(), rows: this.#tooMany(before.length) };
      const result = await execute();
      return { result, rows: missedMysql(result, before) ?? before };
    }

    // update
    const set = Object.keys((b.config as { set?: Row }).set ?? {});
    const before = await this.#select(reader, info, b.config.where, b, strength(set));
    if (before.length > max) return { result: await execute(), rows: this.#tooMany(before.length) };
    if (this.#dialect === 'pg') {
      const { result, rows } = await this.#returning(b, op, () => execute());
      // At READ COMMITTED the UPDATE reads a newer snapshot than the read before it: a row that
      // another transaction made match the predicate in between is updated, and its state before
      // this write was never read. Its pages cannot be told: every page is invalidated.
      if (missedRows(info, set, before, rows)) {
        return { result, rows: new Fallback('an update on PostgreSQL that changed a row the read before it did not see (a concurrent write made it match)') };
      }
      return { result, rows: [...before, ...rows] };
    }
    // MySQL: the rows after, read again by their primary keys (as the update set them).
    if (before.length === 0) {
      const result = await execute();
      return { result, rows: missedMysql(result, before) ?? [] };
    }
    if (info.primaryKey.length === 0) return { result: await execute(), rows: new Fallback('an update on MySQL of a table without a primary key, whose rows cannot be read back') };
    const assigned = (b.config as { set?: Row }).set ?? {};
    let keys: Row[] = before;
    if (info.primaryKey.some((f) => f in assigned)) {
      const fixed: Row = {};
      for (const f of info.primaryKey) {
        if (!(f in assigned)) continue;
        const v = assigned[f];
        if (!is(v, Param) || v.value === undefined || v.value === null) {
          return { result: await execute(), rows: new Fallback('an update on MySQL that sets the primary key to an expression, whose rows cannot be read back') };
        }
        fixed[f] = v.value;
      }
      keys = before.map((r) => ({ ...r, ...fixed }));
    }
    const result = await execute();
    const missed = missedMysql(result, before);
    if (missed !== undefined) return { result, rows: missed };
    const after = await this.#select(reader, info, byKey(info, info.primaryKey, keys), undefined, false);
    return { result, rows: [...before, ...after] };
  }

  async #insertedMysql(reader: Reader, info: TableInfo, values: Row[], state: BuilderState, result: unknown, ignore: boolean, before: readonly Row[]): Promise<Row[] | Fallback> {
    const wheres: SQL[] = [];
    const keyed = values.filter((row) => rowKeys(info, row, undefined).length > 0);
    if (keyed.length > 0) wheres.push(keyPredicate(info, keyed, [undefined])!);
    // An upsert's update may change the keys it matched by: its rows are read again by the
    // primary keys they had.
    if (before.length > 0 && info.primaryKey.length > 0) wheres.push(byKey(info, info.primaryKey, before)!);
    const auto = info.autoIncrement;
    const generated = auto === undefined ? [] : values.filter((row) => plainValue(row, auto) === undefined);
    if (Array.isArray(result) && result.length > 0 && !Array.isArray(result[0]) && auto !== undefined && (result[0] as Row)[auto] !== undefined && (result[0] as { insertId?: unknown }).insertId === undefined) {
      // $returningId(): the ids, one row each.
      wheres.push(inArray(info.columns[auto]!, (result as Row[]).map((r) => r[auto])));
    } else if (generated.length > 0) {
      const header = (Array.isArray(result) ? result[0] : result) as { insertId?: number } | undefined;
      const first = header?.insertId;
      // The ids a multi-row INSERT generates are consecutive from insertId (innodb_autoinc_lock_mode
      // 0 or 1, MariaDB's default; Drizzle's $returningId() assumes the same). With IGNORE or ON
      // DUPLICATE KEY UPDATE some rows take no id, and rows with an id of their own among them
      // move the counter: which rows have which is not known, and those rows are found by their
      // unique keys, or not at all.
      const mixed = generated.length < values.length;
      if (typeof first === 'number' && first > 0 && state.upsert === undefined && !ignore && !mixed) {
        wheres.push(inArray(info.columns[auto!]!, generated.map((_, i) => first + i)));
      } else if (generated.some((row) => !keyed.includes(row))) {
        return new Fallback('an insert on MySQL whose rows set no primary or unique key and whose ids cannot be known');
      }
    } else if (keyed.length < values.length) {
      return new Fallback('an insert on MySQL whose rows set no primary or unique key');
    }
    return this.#select(reader, info, or(...wheres), undefined, false);
  }

  // ---------------------------------------------------------------- better-sqlite3 (synchronous)

  /**
   * A write on better-sqlite3, as synchronous as the driver: the rows are read and written
   * back to back, each registered row's `dependentPaths` is called before the statement runs (a
   * delete) or right after it, and the invalidation finishes asynchronously (`jobs`).
   */
  writeSync(b: WriteBuilder, state: BuilderState, method: string, args: unknown[]): unknown {
    return this.#writeSync(b, state, method, args, true).result;
  }

  /** `keep`: a failure is kept for settled() (a synchronous call); else the awaited write rejects with it. */
  #writeSync(b: WriteBuilder, state: BuilderState, method: string, args: unknown[], keep: boolean, preread?: Preread): { result: unknown; job: Promise<unknown> } {
    const info = tableInfo(b.config.table);
    const call = () => (b[method] as (...a: unknown[]) => unknown)(...args);
    const max = this.#settings.maxRows;
    const { op } = state;
    const reader = state.owner as Reader;
    const early: Array<Promise<Dependents>> = [];
    let seen: Set<string> | undefined;

    let job: Promise<unknown> = Promise.resolve();
    const finish = (outcome: Promise<Outcome>) => {
      const done = outcome.then(
        async (o) => {
          const outcome = this.#soften(o, state, b);
          await this.#apply(outcome, state, b);
          return outcome;
        },
        async (error: unknown) => {
          // The write has run: a dependentPaths that throws for one of its rows must not leave
          // the others' pages stale.
          await this.#apply(new Fallback(`dependentPaths failed for a row it wrote (${error instanceof Error ? error.message : String(error)})`), state, b);
          throw error;
        },
      );
      if (state.scope !== undefined) state.scope.jobs.push(done);
      job = this.#track(done, keep);
    };

    if ((method === 'all' || method === 'get' || method === 'values') && b.config.returning === undefined) {
      // Without returning(), better-sqlite3 refuses these before it writes anything: as without page-dumper.
      const result = call();
      // Should it not have refused, the write ran unseen.
      finish(Promise.resolve(new Fallback(`${method}() of a write without returning()`)));
      return { result, job };
    }

    if (preread !== undefined) {
      for (const d of preread.dependents) early.push(Promise.resolve(d));
      seen = new Set(preread.rows.map((r) => wholeRow(info, r)));
    } else if (op === 'insert' && state.upsert === undefined) {
      const values = Array.isArray(b.config.values) && b.config.select !== true ? (b.config.values as Row[]) : undefined;
      if (values !== undefined && values.length > max) {
        const result = call();
        finish(Promise.resolve(this.#tooMany(values.length)));
        return { result, job };
      }
    } else if (op !== 'insert' && (b.config.from !== undefined || (b.config.joins?.length ?? 0) > 0)) {
      const result = call();
      finish(Promise.resolve(new Fallback(`an ${op} with from() or joins, whose rows page-dumper does not select`)));
      return { result, job };
    } else {
      let where: SQL | undefined = b.config.where;
      if (op === 'insert') {
        const values = Array.isArray(b.config.values) && b.config.select !== true ? (b.config.values as Row[]) : undefined;
        where = values && keyPredicate(info, values, state.upsert?.targets ?? [undefined]);
        if (where === undefined) {
          const result = call();
          finish(Promise.resolve(new Fallback('an upsert whose rows set none of their unique keys')));
          return { result, job };
        }
      }
      const before = this.#selectSync(reader, info, where, op === 'insert' ? undefined : b);
      if (before.length > max) {
        const result = call();
        finish(Promise.resolve(this.#tooMany(before.length)));
        return { result, job };
      }
      // Called now, while the rows exist: what dependentPaths reads synchronously (better-sqlite3
      // reads are) sees them before a delete.
      for (const row of before) early.push(this.#rowDependents(info, row));
      if (op === 'delete' && before.length > 0) for (const d of this.#cascadeSync(reader, info, before)) early.push(Promise.resolve(d));
      seen = new Set(before.map((r) => wholeRow(info, r)));
    }
    let written: { result: unknown; rows: Row[] };
    try {
      written = this.#returningSync(b, state, method, args);
    } catch (error) {
      // The write failed: the paths computed before it are dropped, their failures observed.
      for (const p of early) p.catch(() => undefined);
      throw error;
    }
    const { result, rows } = written;
    // Rows a delete read before it ran were computed above; the others are computed now.
    const rest = op === 'delete' ? rows.filter((r) => !seen!.has(wholeRow(info, r))) : rows;
    const late = rest.map((r) => this.#rowDependents(info, r));
    if (op === 'delete' && rest.length > 0) for (const d of this.#unknownCascades(info)) late.push(Promise.resolve(d));
    const count = rows.length;
    finish(
      (async (): Promise<Outcome> => {
        if (count > max) {
          await Promise.allSettled([...early, ...late]);
          return this.#tooMany(count);
        }
        return Promise.all([...early, ...late]);
      })(),
    );
    return { result, job };
  }

  /** Waits for the invalidations of synchronous writes; rejects with the first that failed since the last call. */
  async settled(): Promise<void> {
    while (this.jobs.size > 0) await Promise.allSettled([...this.jobs]);
    const failure = this.#failures.splice(0)[0];
    if (failure !== undefined) throw failure;
  }

  /** Tracks a job until it settles; returns it, rejecting as it does. */
  #track(job: Promise<unknown>, keep: boolean): Promise<unknown> {
    const tracked = job.then(
      () => {
        this.jobs.delete(tracked);
      },
      (error: unknown) => {
        this.jobs.delete(tracked);
        if (keep) {
          // Only the first is kept until settled() reports it; the others are logged.
          if (this.#failures.length === 0) this.#failures.push(error);
          this.#dumper.log.error('drizzle: invalidating after a synchronous write failed', { error: error as Error });
        }
        throw error;
      },
    );
    // Observed by settled() or by the awaited write: never an unhandled rejection.
    tracked.catch(() => undefined);
    this.jobs.add(tracked);
    return tracked;
  }

  // ---------------------------------------------------------------- transactions

  /** A transaction (or savepoint) committed: its writes join the enclosing one, or are invalidated again now. */
  async commit(scope: Scope): Promise<void> {
    // One write whose rows could not be resolved must not cancel the others' invalidation: it
    // makes the commit drop every page, and its failure is reported after.
    const outcomes = await Promise.allSettled(scope.jobs.splice(0));
    let failure: { reason: unknown } | undefined;
    for (const o of outcomes) {
      if (o.status === 'fulfilled') this.#record(o.value, scope);
      else {
        scope.all = true;
        failure ??= o;
      }
    }
    if (scope.parent !== undefined) {
      scope.parent.pending.push(...scope.pending);
      if (scope.all) scope.parent.all = true;
    } else if (scope.all) await this.#dumper.invalidateAll();
    else if (scope.pending.length > 0) await this.#dumper.invalidateDependents(scope.pending);
    if (failure !== undefined) throw failure.reason;
  }

  /** The commit of a synchronous (better-sqlite3) transaction: its invalidation finishes later. */
  commitSync(scope: Scope): void {
    const job = this.commit(scope);
    if (scope.parent !== undefined) {
      // A savepoint: the jobs go up with it, to be awaited at the outermost commit.
      scope.parent.jobs.push(job.then(() => [] as Dependents[]));
      return;
    }
    this.#track(job, true);
  }

  // ---------------------------------------------------------------- helpers

  #record(outcome: Outcome, scope: Scope): void {
    if (outcome instanceof Fallback) scope.all = true;
    else scope.pending.push(...outcome);
  }

  async #apply(outcome: Outcome, state: BuilderState, b: WriteBuilder): Promise<void> {
    if (outcome instanceof Fallback) {
      this.#dumper.log.warn(`drizzle ${state.op} ${tableInfo(b.config.table).name}: ${outcome.reason}; invalidating every page`, {
        model: tableInfo(b.config.table).name,
        operation: state.op,
      });
      await this.#dumper.invalidateAll();
    } else if (outcome.length > 0) {
      await this.#dumper.invalidateDependents(outcome);
    }
  }

  #tooMany(count: number): Fallback {
    return new Fallback(`${count} rows written, more than maxRows (${this.#settings.maxRows})`);
  }

  async #dependents(info: TableInfo, rows: readonly Row[]): Promise<Dependents[]> {
    return Promise.all(rows.map((r) => this.#rowDependents(info, r)));
  }

  // ---------------------------------------------------------------- trackReads

  /** What a row written changes: its registered model's paths and tags, and with `trackReads` the tags of its reads. */
  #rowDependents(info: TableInfo, row: Row): Promise<Dependents> {
    const tags = this.#settings.trackReads ? readTags(info, [row]) : [];
    if (!this.#dumper.isRegistered(info.name)) return Promise.resolve({ model: info.name, paths: [], tags });
    const model = this.#dumper.dependentsOf(info.name, row);
    return tags.length === 0 ? model : model.then((d) => ({ ...d, tags: [...d.tags, ...tags] }));
  }

  /**
   * With `trackReads`, a write whose rows are unknown, of a table that is not registered:
   * everything read from its table (and, for a delete, from the tables its cascades reach)
   * instead of every page. A registered table's `dependentPaths` cannot be computed without the
   * rows, and a data-modifying CTE may write any table: those still invalidate every page.
   */
  #soften(outcome: Outcome, state: BuilderState, b: WriteBuilder): Outcome {
    if (!(outcome instanceof Fallback) || !this.#settings.trackReads || state.cteWrite === true) return outcome;
    const info = tableInfo(b.config.table);
    if (this.#dumper.isRegistered(info.name)) return outcome;
    if (this.#dumper.log.debugEnabled) this.#dumper.log.debug(`drizzle ${state.op} ${info.name}: ${outcome.reason}; invalidating what pages read from its tables`, { model: info.name });
    return state.op === 'delete' ? this.#unknownCascades(info, true) : [{ model: info.name, paths: [], tags: unknownWriteTags(info.name) }];
  }

  /** Everything read from the tables a delete of `info`'s rows may change through foreign keys (and from the table itself, with `self`). */
  #unknownCascades(info: TableInfo, self = false): Dependents[] {
    if (!this.#settings.trackReads) return [];
    const names = new Set<string>(self ? [info.name] : []);
    const visit = (name: string) => {
      for (const { info: child, fk } of referencing(name)) {
        if (!ACTIONS.has(fk.onDelete) || names.has(child.name)) continue;
        names.add(child.name);
        if (fk.onDelete === 'cascade') visit(child.name);
      }
    };
    visit(info.name);
    return [...names].map((name) => ({ model: name, paths: [], tags: unknownWriteTags(name) }));
  }

  /** The rows a delete of `rows` changes in other tables through `ON DELETE` actions, read before it (see cascadeSteps). */
  async #cascade(reader: Reader, info: TableInfo, rows: readonly Row[]): Promise<Dependents[]> {
    if (!this.#settings.trackReads || rows.length === 0) return [];
    const out: Dependents[] = [];
    const steps = cascadeSteps(info, rows, 0, this.#settings.maxRows, out);
    let next = steps.next();
    while (!next.done) next = steps.next(await this.#select(reader, next.value.info, next.value.where, undefined, false));
    return out;
  }

  #cascadeSync(reader: Reader, info: TableInfo, rows: readonly Row[]): Dependents[] {
    if (!this.#settings.trackReads || rows.length === 0) return [];
    const out: Dependents[] = [];
    const steps = cascadeSteps(info, rows, 0, this.#settings.maxRows, out);
    let next = steps.next();
    while (!next.done) next = steps.next(this.#selectSync(reader, next.value.info, next.value.where, undefined));
    return out;
  }

  /** The rows a predicate matches, as a select of the whole table returns them; at most maxRows + 1. */
  #query(reader: Reader, info: TableInfo, where: SQL | undefined, like: WriteBuilder | undefined, lock: Lock): any {
    const withList = like?.config.withList;
    let q = (withList !== undefined && withList.length > 0 ? reader.with(...withList) : reader).select().from(info.table);
    if (where !== undefined) q = q.where(where);
    const orderBy = like?.config.orderBy;
    if (orderBy !== undefined && orderBy.length > 0) q = q.orderBy(...orderBy);
    const limit = typeof like?.config.limit === 'number' ? Math.min(like.config.limit, this.#settings.maxRows + 1) : this.#settings.maxRows + 1;
    q = q.limit(limit);
    if (lock !== false && this.#dialect !== 'sqlite') q = q.for(lock);
    return q;
  }

  async #select(reader: Reader, info: TableInfo, where: SQL | undefined, like: WriteBuilder | undefined, lock: Lock): Promise<Row[]> {
    return (await this.#query(reader, info, where, like, lock)) as Row[];
  }

  #selectSync(reader: Reader, info: TableInfo, where: SQL | undefined, like: WriteBuilder | undefined): Row[] {
    return this.#query(reader, info, where, like, false).all() as Row[];
  }

  /** Runs the write with the table's columns added to its RETURNING, and hands back the result the caller asked for. */
  async #returning(b: WriteBuilder, op: Operation, execute: () => Promise<unknown>): Promise<{ result: unknown; rows: Row[] }> {
    const own = b.config.returning;
    b.config.returning = [...(own ?? []), ...hiddenFields(b.config.table)];
    let returned: Row[];
    try {
      returned = (await execute()) as Row[];
    } finally {
      b.config.returning = own;
    }
    const rows = returned.map((r) => r[HIDDEN] as Row);
    if (own !== undefined) return { result: returned.map(strip), rows };
    // node-postgres answers a write without RETURNING with its QueryResult: the same fields, no rows.
    const command = { insert: 'INSERT', update: 'UPDATE', delete: 'DELETE' }[op];
    return { result: { command, rowCount: rows.length, oid: command === 'INSERT' ? 0 : null, rows: [], fields: [] }, rows };
  }

  #returningSync(b: WriteBuilder, state: BuilderState, method: string, args: unknown[]): { result: unknown; rows: Row[] } {
    const own = b.config.returning;
    const hidden = hiddenFields(b.config.table);
    b.config.returning = [...(own ?? []), ...hidden];
    try {
      if (method === 'values') {
        const raw = (b.values as (...a: unknown[]) => unknown[][])(...args);
        const n = own?.length ?? 0;
        const rows = raw.map((r) => {
          const row: Row = {};
          hidden.forEach((h, i) => {
            const v = r[n + i];
            row[h.path[1]!] = v === null ? null : (h.field as Column).mapFromDriverValue(v);
          });
          return row;
        });
        return { result: own === undefined ? [] : raw.map((r) => r.slice(0, n)), rows };
      }
      const returned = (b.all as (...a: unknown[]) => Row[])(...args);
      const rows = returned.map((r) => r[HIDDEN] as Row);
      if (own !== undefined && method !== 'run') {
        const mine = returned.map(strip);
        return { result: method === 'get' ? mine[0] : mine, rows };
      }
      if (method === 'all') return { result: [], rows };
      if (method === 'get') return { result: undefined, rows };
      // run() and execute(): better-sqlite3's RunResult, read from the connection that just wrote.
      const [changes, lastInsertRowid] = (b.session as { values(q: SQL): unknown[][] }).values(sql`select changes(), last_insert_rowid()`)[0]!;
      void state;
      return { result: { changes, lastInsertRowid }, rows };
    } finally {
      b.config.returning = own;
    }
  }
}

function hiddenFields(table: Table): Array<{ path: string[]; field: unknown }> {
  return Object.entries(tableInfo(table).columns).map(([key, column]) => ({ path: [HIDDEN, key], field: column }));
}

function strip(row: Row): Row {
  const { [HIDDEN]: _, ...rest } = row;
  return rest;
}

/** The value an insert sets in a field, if it is a plain value (not SQL, not a default). */
function plainValue(row: Row, field: string): { value: unknown } | undefined {
  const v = row[field];
  if (is(v, Param)) return v.value === undefined || v.value === null ? undefined : { value: v.value };
  return undefined;
}

/** The keys (of `target`, or every unique key) whose every column an inserted row sets. */
/**
 * Whether an update's RETURNING holds a row the read before it did not: by primary key, or, when
 * the update sets the primary key or the table has none, by count.
 */
function missedRows(info: TableInfo, set: readonly string[], before: readonly Row[], after: readonly Row[]): boolean {
  if (after.length > before.length) return true;
  const pk = info.primaryKey;
  if (pk.length === 0 || pk.some((f) => set.includes(f))) return false;
  const id = (r: Row) => pk.map((f) => String(r[f])).join('\u0000');
  const seen = new Set(before.map(id));
  return after.some((r) => !seen.has(id(r)));
}

function rowKeys(info: TableInfo, row: Row, target: readonly Column[] | undefined): string[][] {
  const keys = target !== undefined ? [target.map((c) => Object.keys(info.columns).find((k) => info.columns[k] === c)!)] : info.uniqueKeys;
  return keys.filter((k) => k.every((f) => f !== undefined && plainValue(row, f) !== undefined)) as string[][];
}

/** Rows an insert's values may have written over: those sharing one of their unique keys (of any of the conflict targets). */
function keyPredicate(info: TableInfo, rows: readonly Row[], targets: ReadonlyArray<readonly Column[] | undefined>): SQL | undefined {
  const alternatives: SQL[] = [];
  for (const row of rows) {
    const keys = targets.flatMap((target) => rowKeys(info, row, target));
    if (keys.length === 0) return undefined;
    for (const key of keys) alternatives.push(and(...key.map((f) => eq(info.columns[f]!, plainValue(row, f)!.value)))!);
  }
  return or(...alternatives);
}

/** Whether a write assigns a column of a primary or unique key. */
function touchesKey(info: TableInfo, fields: Iterable<string>): boolean {
  const keyed = new Set(info.uniqueKeys.flat());
  for (const f of fields) if (keyed.has(f)) return true;
  return false;
}

/** A row, every column of it: tells apart two states of one row. */
function wholeRow(info: TableInfo, row: Row): string {
  return JSON.stringify(Object.keys(info.columns).map((f) => valueKey(row[f])));
}

/** Rows by their key values. */
function byKey(info: TableInfo, key: readonly string[], rows: readonly Row[]): SQL | undefined {
  if (key.length === 1) return inArray(info.columns[key[0]!]!, rows.map((r) => r[key[0]!]));
  return or(...rows.map((r) => and(...key.map((f) => eq(info.columns[f]!, r[f])))));
}

/**
 * MySQL: an update or delete that affected more rows than the read before it found. At READ
 * COMMITTED (page-dumper's own transaction, or the server's setting) a locking read takes no gap
 * locks, so a row another transaction commits in between can come to match the write: its state
 * before the write was never read, so every page is invalidated.
 */
function missedMysql(result: unknown, before: readonly Row[]): Fallback | undefined {
  const header = Array.isArray(result) ? result[0] : result;
  const affected = (header as { affectedRows?: unknown } | null | undefined)?.affectedRows;
  if (typeof affected !== 'number' || affected <= before.length) return undefined;
  return new Fallback(`a write on MySQL that affected ${affected} rows where the read before it found ${before.length} (a concurrent write made more match)`);
}

// ---------------------------------------------------------------- trackReads

/** `ON DELETE` actions by which the database changes rows of another table. */
const ACTIONS = new Set(['cascade', 'set null', 'set default']);
/** How many levels of `ON DELETE CASCADE` are followed row by row; deeper, their tables' reads are invalidated whole. */
const MAX_CASCADE_DEPTH = 4;

/** The tags of rows written (before or after the write): a link table's links, or the rows with their foreign keys. */
export function readTags(info: TableInfo, rows: readonly Row[]): string[] {
  if (info.link) {
    return linkTags(
      info.name,
      rows.map((r) => info.foreignKeys.filter((fk) => fk.columns.every((c) => info.primaryKey.some((f) => info.columns[f]!.name === c))).map((fk) => ({ key: keyOf(fk.fields, fk.columns, r) }))),
    );
  }
  return writeTags(
    info.name,
    rows.map((r) => ({
      id: info.primaryKey.length === 0 ? undefined : keyOf(info.primaryKey, info.primaryKey.map((f) => info.columns[f]!.name), r),
      keys: info.foreignKeys.map((fk) => keyOf(fk.fields, fk.columns, r)).filter((k) => Object.values(k).every((v) => v !== null && v !== undefined)),
    })),
  );
}

function keyOf(fields: readonly string[], columns: readonly string[], row: Row): KeyValues {
  const key: Record<string, unknown> = {};
  fields.forEach((f, i) => (key[columns[i]!] = row[f]));
  return key;
}

/**
 * The rows of other tables that a delete of `rows` of `info` changes through their foreign keys
 * (`ON DELETE CASCADE`, `SET NULL`, `SET DEFAULT`), looked for among the tables page-dumper knows
 * (the schema given to drizzle(), tables read or written): yields each select to run and receives
 * its rows, and pushes onto `out` the tags of what it finds. Cascades are followed `MAX_CASCADE_DEPTH`
 * levels; past that, above `maxRows` rows, or for a foreign key of several columns, everything read
 * from the tables reached is invalidated.
 */
function* cascadeSteps(info: TableInfo, rows: readonly Row[], depth: number, maxRows: number, out: Dependents[]): Generator<{ info: TableInfo; where: SQL }, void, Row[]> {
  for (const { info: child, fk } of referencing(info.name)) {
    if (!ACTIONS.has(fk.onDelete)) continue;
    const unknown = () => {
      const names = new Set<string>([child.name]);
      const visit = (name: string) => {
        for (const r of referencing(name)) if (ACTIONS.has(r.fk.onDelete) && !names.has(r.info.name)) (names.add(r.info.name), r.fk.onDelete === 'cascade' && visit(r.info.name));
      };
      if (fk.onDelete === 'cascade') visit(child.name);
      for (const name of names) out.push({ model: name, paths: [], tags: unknownWriteTags(name) });
    };
    const parentField = Object.keys(info.columns).find((f) => info.columns[f]!.name === fk.targetColumns[0]);
    if (fk.columns.length !== 1 || parentField === undefined || depth >= MAX_CASCADE_DEPTH || rows.length > maxRows) {
      unknown();
      continue;
    }
    const values = [...new Map(rows.map((r) => [valueKey(r[parentField]), r[parentField]])).values()].filter((v) => v !== null && v !== undefined);
    if (values.length === 0) continue;
    // The rows pointing at the deleted ones go, whichever they are by then: a row added after
    // the read below (by another connection, before the delete) is still named by its key, and
    // the lists that may show it by the table's list tag.
    out.push({ model: child.name, paths: [], tags: [listTag(child.name), ...values.map((v) => keyTag(child.name, { [fk.columns[0]!]: v })).filter((t): t is string => t !== undefined)] });
    const found: Row[] = yield { info: child, where: inArray(child.columns[fk.fields[0]!]!, values) };
    if (found.length > maxRows) {
      unknown();
      continue;
    }
    if (found.length === 0) continue;
    out.push({ model: child.name, paths: [], tags: readTags(child, found) });
    if (fk.onDelete === 'cascade') yield* cascadeSteps(child, found, depth + 1, maxRows, out);
  }
}
