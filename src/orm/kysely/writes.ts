/**
 * Turns one Kysely write, as it reaches a database connection, into the rows it changed, and
 * invalidates their pages. Writes are seen compiled (after the caller's plugins), so the table
 * names are the SQL names, schema included.
 *
 * - insert: the new rows come back with RETURNING (PostgreSQL, SQLite). MySQL has none: the rows
 *   are read again by a unique key the inserted values set, or by the auto-increment ids the
 *   insert reports. An upsert also reads the rows it may overwrite, first.
 * - update: the rows matching the update's predicate (its joins and FROM included) are read
 *   first, on the same connection (inside the transaction, if any); the new rows come back with
 *   RETURNING, or on MySQL are read again by primary key. Both reach `dependentPaths`.
 * - delete: the rows are read, and their dependents computed, before the delete runs (as
 *   django-dumper's `pre_delete`); on PostgreSQL and SQLite a RETURNING catches any row the read
 *   did not see.
 *
 * Outside a transaction, `dependentPaths` does not run while the write holds its connection: the
 * rows are collected, and resolved once it is released (see `probe`, `resolve` and index.ts).
 *
 * A write to a table that is not registered runs as it is. A write whose rows cannot be known
 * (more than `maxRows`, `INSERT ... SELECT` on MySQL, `MERGE`...) still runs, and every page is
 * invalidated, with a warning.
 */
import {
  AliasNode,
  AndNode,
  BinaryOperationNode,
  ColumnNode,
  CompiledQuery,
  FromNode,
  IdentifierNode,
  LimitNode,
  OperatorNode,
  OrNode,
  ParensNode,
  PrimitiveValueListNode,
  ReferenceNode,
  ReturningNode,
  SelectionNode,
  SelectModifierNode,
  TableNode,
  ValueNode,
  WhereNode,
  type DatabaseConnection,
  type DeleteQueryNode,
  type InsertQueryNode,
  type OperationNode,
  type QueryResult,
  type RootOperationNode,
  type SelectQueryNode,
  type UpdateQueryNode,
  type WithNode,
} from 'kysely';
import type { Dependents, Dumper } from '../../core/dumper.js';
import { linkTags, unknownWriteTags, writeTags, type KeyValues, type WrittenRow } from '../reads.js';
import { readTable, tagTable, type DialectName, type Schemas, type TableInfo, type TableSchema } from './tables.js';

type Row = Record<string, unknown>;

/** Why the rows of a write cannot be known: every page is invalidated instead. */
export class Fallback {
  constructor(readonly reason: string) {}
}

/** What a write invalidates: the dependents of the rows it changed, or everything. */
export type Outcome = Dependents[] | Fallback;

/** The writes of one open transaction since its start or one of its savepoints. */
export interface Frame {
  /** The savepoint that opened the frame; `undefined` for the transaction itself. */
  readonly name: string | undefined;
  pending: Dependents[];
  /** A write fell back to dropping every page. */
  all: boolean;
}

export interface WriteSettings {
  readonly maxRows: number;
  /** With trackReads: the schemas of the tables written (every table is then watched). */
  readonly schemas: Schemas | undefined;
}

/** How many levels of `ON DELETE CASCADE` a delete follows to find the rows the database deletes with it. */
const CASCADE_DEPTH = 4;

/** The table a write names, and the registered model it is (with trackReads, maybe none). */
export interface Target {
  readonly node: TableNode;
  readonly model: string | undefined;
  readonly schema: string | undefined;
  readonly table: string;
  /** How the query refers to it: its alias, or the table itself. */
  readonly ref: TableNode;
  /** The table as the write names it (`ky_item as i`), for a read of it alone. */
  readonly from: OperationNode;
}

/** The write statements a query holds in its WITH clauses (at any depth), not the query itself. */
export function nestedWrites(node: OperationNode): OperationNode[] {
  const out: OperationNode[] = [];
  const walk = (n: OperationNode) => {
    const withNode = (n as { with?: WithNode }).with;
    for (const cte of withNode?.expressions ?? []) {
      const e = cte.expression;
      if (isWrite(e)) out.push(e);
      walk(e);
    }
  };
  walk(node);
  return out;
}

export function isWrite(node: OperationNode): boolean {
  return node.kind === 'InsertQueryNode' || node.kind === 'UpdateQueryNode' || node.kind === 'DeleteQueryNode' || node.kind === 'MergeQueryNode';
}

/** The write ran (and, outside a transaction, committed), then resolving its rows failed. */
export class AfterWrite extends Error {
  constructor(readonly error: unknown) {
    super('page-dumper: resolving the rows of a write failed after it ran');
  }
}

/**
 * A write in page-dumper's own transaction failed after its BEGIN was sent, and whether it
 * committed is unknown (a COMMIT that failed, or a ROLLBACK that failed): the caller invalidates
 * every page before rethrowing `error`. `stuck`: the ROLLBACK failed, so the connection may still
 * be in that transaction, whose end page-dumper does not know.
 */
export class Unknown extends Error {
  constructor(
    readonly error: unknown,
    readonly stuck: boolean,
  ) {
    super('page-dumper: the outcome of a write in its own transaction is unknown');
  }
}

/**
 * A write outside a transaction: the rows whose dependents were resolved before its connection
 * was taken (`known`), and those left for after its release (`rows`).
 */
export interface Deferred {
  known: Map<string, Dependents>;
  readonly rows: { model: string; row: Row }[];
}

const STOP = Symbol('page-dumper: probe stops before the write');

const PREFIX = '__page_dumper_';
const QUERY_ID = { queryId: 'page-dumper' };

/** A comparable spelling of a row (Date, Buffer and BigInt included), to drop duplicates. */
function rowKey(row: Row): string {
  return JSON.stringify(row, function (this: Row, key: string, value: unknown) {
    const raw = key === '' ? value : this[key];
    if (typeof raw === 'bigint') return `${raw}n`;
    if (raw instanceof Date) return `d${raw.getTime()}`;
    if (raw instanceof Uint8Array) return `u${Buffer.from(raw).toString('base64')}`;
    return value;
  });
}

function pick(row: Row, columns: readonly string[]): Row {
  return Object.fromEntries(columns.map((c) => [c, row[c]]));
}

function unique(rows: readonly Row[]): Row[] {
  const seen = new Map<string, Row>();
  for (const row of rows) seen.set(rowKey(row), row);
  return [...seen.values()];
}

/** `(a, b) matches one of rows`: `a in (...)` for one column, else `(a = ? and b = ?) or ...`. */
function matching(ref: TableNode | undefined, columns: readonly string[], rows: readonly Row[]): OperationNode {
  const column = (c: string) => ReferenceNode.create(ColumnNode.create(c), ref);
  if (columns.length === 1) {
    return BinaryOperationNode.create(column(columns[0]!), OperatorNode.create('in'), PrimitiveValueListNode.create(rows.map((r) => r[columns[0]!])));
  }
  const one = (row: Row) =>
    ParensNode.create(
      columns
        .map((c): OperationNode => BinaryOperationNode.create(column(c), OperatorNode.create('='), ValueNode.create(row[c])))
        .reduce((a, b) => AndNode.create(a, b)),
    );
  return rows.map((r): OperationNode => one(r)).reduce((a, b) => OrNode.create(a, b));
}

/** The column a SET names: `col` or `table.col`. */
function columnName(node: OperationNode): string | undefined {
  if (node.kind === 'ColumnNode') return (node as ColumnNode).column.name;
  if (node.kind === 'ReferenceNode') return columnName((node as ReferenceNode).column);
  return undefined;
}

export class Writes {
  readonly #dumper: Dumper;
  readonly #dialect: DialectName;
  readonly #compile: (node: RootOperationNode) => CompiledQuery;
  readonly #maxRows: number;
  readonly #schemas: Schemas | undefined;
  readonly #tables = new Map<string, Promise<TableInfo>>();
  /** The rows whose dependents wait for the connection's release, by the connection of a run. */
  readonly #deferred = new WeakMap<DatabaseConnection, Deferred>();
  /** MySQL's innodb_autoinc_lock_mode: whether the ids of one multi-row insert are consecutive. */
  #lockMode: Promise<number> | undefined;

  constructor(dumper: Dumper, dialect: DialectName, compile: (node: RootOperationNode) => CompiledQuery, settings: WriteSettings) {
    this.#dumper = dumper;
    this.#dialect = dialect;
    this.#compile = compile;
    this.#maxRows = settings.maxRows;
    this.#schemas = settings.schemas;
  }

  /** The registered targets of a write, `undefined` when it touches no registered table. */
  targets(node: OperationNode): Target[] | undefined {
    const nodes: OperationNode[] = [];
    switch (node.kind) {
      case 'InsertQueryNode':
        if ((node as InsertQueryNode).into) nodes.push((node as InsertQueryNode).into!);
        break;
      case 'UpdateQueryNode': {
        const table = (node as UpdateQueryNode).table;
        if (table?.kind === 'ListNode') nodes.push(...(table as unknown as { items: OperationNode[] }).items);
        else if (table) nodes.push(table);
        break;
      }
      case 'DeleteQueryNode':
        nodes.push(...(node as DeleteQueryNode).from.froms);
        break;
      case 'MergeQueryNode':
        nodes.push((node as unknown as { into: OperationNode }).into);
        break;
      default:
        return undefined;
    }
    const out: Target[] = [];
    for (const n of nodes) {
      const t = this.#target(n);
      if (t !== undefined) out.push(t);
    }
    return out.length === 0 ? undefined : out;
  }

  #target(n: OperationNode): Target | undefined {
    let table = n;
    let ref: TableNode | undefined;
    if (n.kind === 'AliasNode') {
      const alias = (n as AliasNode).alias;
      table = (n as AliasNode).node;
      if (alias.kind === 'IdentifierNode') ref = TableNode.create((alias as IdentifierNode).name);
    }
    if (table.kind !== 'TableNode') return undefined;
    const node = table as TableNode;
    const name = node.table.identifier.name;
    const schema = node.table.schema?.name;
    const model = schema !== undefined && this.#dumper.isRegistered(`${schema}.${name}`) ? `${schema}.${name}` : this.#dumper.isRegistered(name) ? name : undefined;
    if (model === undefined && this.#schemas === undefined) return undefined;
    return { node, model, schema, table: name, ref: ref ?? node, from: n };
  }

  /**
   * Runs a write of registered tables: returns its result, and what it changed. Once the write
   * has run, a failure to resolve its rows (a `dependentPaths` that throws for a new row...) is
   * thrown as an `AfterWrite`, for the caller to invalidate every page before rethrowing.
   *
   * On MySQL outside a transaction, an update, a delete or an upsert runs with the reads around
   * it in a transaction of its own (`FOR UPDATE` on the read before): MySQL has no RETURNING to
   * tell which rows the write really changed. On PostgreSQL the same holds for a write on a
   * connection of its own (see `ownPostgres`), its read locked FOR NO KEY UPDATE (FOR UPDATE for a
   * delete, or an update that sets a key column), so no other connection changes those rows
   * between the read and the write.
   */
  async run(
    connection: DatabaseConnection,
    query: CompiledQuery,
    targets: Target[],
    inTransaction: boolean,
    deferred?: Deferred,
  ): Promise<{ result: QueryResult<unknown>; outcome: Outcome }> {
    const node = query.query;
    const state = { ran: false };
    const conn: DatabaseConnection = {
      executeQuery: async <R>(q: CompiledQuery) => {
        const result = await connection.executeQuery<R>(q);
        if (isWrite(q.query)) state.ran = true;
        return result;
      },
      streamQuery: (q, chunkSize) => connection.streamQuery(q, chunkSize),
    };
    if (deferred !== undefined) this.#deferred.set(conn, deferred);
    let own = this.#dialect === 'mysql' && !inTransaction && this.#overwrites(node);
    // PostgreSQL: the read before an update, a delete or an upsert is locked only in a
    // transaction; without one, a row another connection changes between that read and the write
    // has a state read by no one. One is opened only on a connection the pool handed out for this
    // write alone (`deferred`) and that the statements seen leave idle: a BEGIN there cannot land
    // in a caller's transaction (PostgreSQL only warns of it), nor its COMMIT end one.
    const ownPostgres = this.#dialect === 'postgres' && !inTransaction && deferred !== undefined && this.readsFirst(node);
    own ||= ownPostgres;
    if (own && !ownPostgres && (await this.#serverTransaction(connection))) {
      // A transaction the statements seen do not tell (SET autocommit = 0, XA START, a comment
      // before BEGIN...): a BEGIN here would commit the caller's work. The write runs in it, its
      // reads locked; its commit is not seen, so its pages are invalidated only now.
      own = false;
      inTransaction = true;
      this.#dumper.log.warn(
        `kysely write of ${namesOf(targets)}: it runs in a transaction page-dumper did not see open (autocommit off, XA...); its pages are invalidated when it runs, not again at the commit`,
        { table: namesOf(targets) },
      );
    }
    try {
      if (!own) return await this.#narrowed(conn, query, targets, inTransaction);
      // Once BEGIN is sent, a failure leaves the outcome unknown unless a ROLLBACK is known to
      // have run before any COMMIT was sent: a client-side timeout (node-postgres `query_timeout`)
      // rejects a statement the server still runs, and the statements queued behind it with it.
      let committing = false;
      try {
        await connection.executeQuery(CompiledQuery.raw('begin'));
        const out = await this.#narrowed(conn, query, targets, true);
        committing = true;
        await connection.executeQuery(CompiledQuery.raw('commit'));
        return out;
      } catch (error) {
        let rolledBack = false;
        if (!committing) {
          rolledBack = await connection.executeQuery(CompiledQuery.raw('rollback')).then(
            () => true,
            () => false,
          );
        }
        if (rolledBack) {
          state.ran = false;
          throw error;
        }
        // A COMMIT was sent and failed (the server may have completed it), or the ROLLBACK
        // failed: the write may be committed, and the connection may still hold the transaction.
        throw new Unknown(error, !committing);
      }
    } catch (error) {
      if (error instanceof Unknown) throw error;
      if (state.ran) throw new AfterWrite(error);
      throw error;
    }
  }

  /** MySQL: whether the server has a transaction open (or autocommit off) on this connection. */
  async #serverTransaction(connection: DatabaseConnection): Promise<boolean> {
    const { rows } = await connection.executeQuery<{ t: unknown; a: unknown }>(CompiledQuery.raw('select @@in_transaction as t, @@autocommit as a'));
    const row = rows[0];
    return row === undefined || Number(row.t) !== 0 || Number(row.a) !== 1;
  }

  /** An update, a delete or an upsert: a write whose rows are read before it runs. */
  #overwrites(node: OperationNode): boolean {
    if (node.kind === 'UpdateQueryNode' || node.kind === 'DeleteQueryNode') return true;
    if (node.kind !== 'InsertQueryNode') return false;
    const n = node as InsertQueryNode;
    return n.onDuplicateKey !== undefined || n.replace === true;
  }

  /** A write that reads rows before it runs, on any dialect (an upsert included). */
  readsFirst(node: OperationNode): boolean {
    if (this.#overwrites(node)) return true;
    const conflict = (node as InsertQueryNode).onConflict;
    return node.kind === 'InsertQueryNode' && conflict !== undefined && !conflict.doNothing && conflict.updates !== undefined;
  }

  async #narrowed(connection: DatabaseConnection, query: CompiledQuery, targets: Target[], inTransaction: boolean): Promise<{ result: QueryResult<unknown>; outcome: Outcome }> {
    const out = await this.#run(connection, query, targets, inTransaction);
    return { result: out.result, outcome: await this.#narrow(connection, targets, out.outcome) };
  }

  async #run(connection: DatabaseConnection, query: CompiledQuery, targets: Target[], inTransaction: boolean): Promise<{ result: QueryResult<unknown>; outcome: Outcome }> {
    const node = query.query;
    const plain = async (reason: string) => ({ result: await connection.executeQuery(query), outcome: new Fallback(reason) });
    switch (node.kind) {
      case 'InsertQueryNode':
        return this.#insert(connection, query, node as InsertQueryNode, targets[0]!, inTransaction);
      case 'UpdateQueryNode':
        return this.#update(connection, query, node as UpdateQueryNode, targets, inTransaction);
      case 'DeleteQueryNode':
        return this.#delete(connection, query, node as DeleteQueryNode, targets, inTransaction);
      default:
        return plain(`${node.kind} is not resolved row by row`);
    }
  }

  // ---------------------------------------------------------------- the three kinds of write

  async #insert(connection: DatabaseConnection, query: CompiledQuery, node: InsertQueryNode, target: Target, inTransaction: boolean) {
    const conflict = node.onConflict;
    const overwrites = (conflict !== undefined && !conflict.doNothing && conflict.updates !== undefined) || node.onDuplicateKey !== undefined;
    const replaces = node.replace === true || (node.orAction as { action?: string } | undefined)?.action === 'replace';
    let before: Row[] = [];
    let early: Dependents[] = [];

    if (this.#dialect !== 'mysql') {
      if (replaces) return { result: await connection.executeQuery(query), outcome: new Fallback('INSERT OR REPLACE is not resolved row by row') };
      if (overwrites) {
        // The rows an upsert may overwrite: found by its conflict target's columns.
        const keys = conflict?.columns?.map((c) => c.column.name);
        const values = keys === undefined ? undefined : this.#literalRows(node, keys);
        if (keys === undefined || values === undefined) {
          return { result: await connection.executeQuery(query), outcome: new Fallback('an upsert without a conflict target of columns and literal values is not resolved row by row') };
        }
        const read = await this.#select(connection, target, [target.from], undefined, WhereNode.create(matching(undefined, keys, values)), undefined, inTransaction);
        if (read === undefined) return { result: await connection.executeQuery(query), outcome: this.#tooMany() };
        before = read;
        early = await this.#dependents(connection, target, before);
      }
      const { result, rows } = await this.#returning(connection, query, node, target);
      if (rows.length > this.#maxRows) return { result, outcome: this.#tooMany() };
      return { result, outcome: [...early, ...(await this.#dependents(connection, target, unique(rows)))] };
    }

    // MySQL: find the rows again by the unique keys the inserted rows set, or by the ids the insert reports.
    const info = await this.#info(connection, target);
    const auto = info.autoIncrement;
    const columns = node.columns?.map((c) => c.column.name) ?? [];
    const rows = this.#literalRows(node, columns, true);
    const fallback = async (reason: string) => ({ result: await connection.executeQuery(query), outcome: new Fallback(reason) });
    if (rows === undefined || rows.length > this.#maxRows) {
      return fallback(rows === undefined ? 'a MySQL INSERT ... SELECT (or values that are not literals) is not resolved row by row' : this.#tooMany().reason);
    }
    // An auto-increment column given 0 is generated (unless NO_AUTO_VALUE_ON_ZERO): it is no key.
    const isSet = (row: Row, c: string) => {
      const v = row[c];
      return v !== undefined && v !== null && !(c === auto && (v === 0 || v === 0n || v === '0'));
    };
    const setsKey = (row: Row) => info.uniques.some((u) => u.every((c) => isSet(row, c)));
    /** Every row that any unique key the values set finds. */
    const byValues = (): OperationNode | undefined => {
      const conditions: OperationNode[] = [];
      for (const u of info.uniques) {
        const list = rows.filter((r) => u.every((c) => isSet(r, c)));
        if (list.length > 0) conditions.push(matching(undefined, u, list));
      }
      return conditions.length === 0 ? undefined : conditions.reduce((a, b) => OrNode.create(a, b));
    };

    if (overwrites || replaces) {
      if (!rows.every(setsKey)) return fallback('a MySQL upsert with a row that sets no unique key is not resolved row by row');
      const uniqueColumns = new Set(info.uniques.flat());
      if (node.onDuplicateKey?.updates.some((u) => uniqueColumns.has(columnName(u.column) ?? ''))) {
        return fallback('a MySQL upsert whose update changes a unique key is not resolved row by row');
      }
      // The rows it may overwrite: any row one of the values' unique keys finds (it conflicts on any of them).
      const found = byValues()!;
      const read = await this.#select(connection, target, [target.from], undefined, WhereNode.create(found), undefined, inTransaction);
      if (read === undefined) return fallback(this.#tooMany().reason);
      before = read;
      early = await this.#dependents(connection, target, before);
      if (before.length > 0 && info.primaryKey.length === 0) return fallback(`${target.table} has no primary key, so the upserted rows cannot be found again`);
      const result = await connection.executeQuery(query);
      // After: the rows it overwrote (by primary key: an update keeps its unique keys) and those the values name.
      const key = before.length > 0 ? OrNode.create(found, matching(undefined, info.primaryKey, before)) : found;
      const after = await this.#select(connection, target, [target.from], undefined, WhereNode.create(key), undefined, false);
      if (after === undefined) return { result, outcome: this.#tooMany() };
      return { result, outcome: [...early, ...(await this.#dependents(connection, target, after))] };
    }

    let key = rows.length > 0 && rows.every(setsKey) ? byValues() : undefined;
    const result = await connection.executeQuery(query);
    if (key === undefined) {
      const n = Number(result.numAffectedRows ?? 0n);
      const simple = !node.ignore && auto !== undefined && info.primaryKey.length === 1 && info.primaryKey[0] === auto;
      if (!simple || result.insertId === undefined || n > this.#maxRows) {
        return { result, outcome: new Fallback('a MySQL insert whose rows set no unique key (or INSERT IGNORE) is not resolved row by row') };
      }
      // Rows that give their id beside rows whose id is generated: the ids reported are not theirs.
      if (rows.some((r) => isSet(r, auto))) return { result, outcome: new Fallback('a MySQL insert mixing given and generated ids is not resolved row by row') };
      if (n === 0) return { result, outcome: [] };
      if (n > 1 && (await this.#autoIncLockMode(connection)) > 1) {
        return { result, outcome: new Fallback('a multi-row insert with innodb_autoinc_lock_mode = 2 may not get consecutive ids') };
      }
      const first = result.insertId;
      const ids = Array.from({ length: n }, (_, i) => first + BigInt(i));
      key = matching(undefined, [auto], ids.map((id) => ({ [auto]: id })));
    }
    const after = await this.#select(connection, target, [target.from], undefined, WhereNode.create(key), undefined, false);
    if (after === undefined) return { result, outcome: this.#tooMany() };
    return { result, outcome: [...early, ...(await this.#dependents(connection, target, after))] };
  }

  async #update(connection: DatabaseConnection, query: CompiledQuery, node: UpdateQueryNode, targets: Target[], inTransaction: boolean) {
    // MySQL's multi-table update lists its tables (`updateTable(['a', 'b'])`): each registered one is read.
    const tables = node.table?.kind === 'ListNode' ? (node.table as unknown as { items: OperationNode[] }).items : [node.table!];
    const froms = [...tables, ...(node.from?.froms ?? [])];
    const before: Row[][] = [];
    const early: Dependents[] = [];
    for (const target of targets) {
      // PostgreSQL: FOR NO KEY UPDATE (the lock the update itself takes) unless it sets a key column.
      let lock: boolean | 'no key' = inTransaction;
      if (inTransaction && this.#dialect === 'postgres') {
        const keyed = new Set((await this.#info(connection, target)).uniques.flat());
        if (!(node.updates?.some((u) => keyed.has(columnName(u.column) ?? '')) ?? false)) lock = 'no key';
      }
      const rows = await this.#select(connection, target, froms, node.joins, node.where, node.with, lock);
      if (rows === undefined) return { result: await connection.executeQuery(query), outcome: this.#tooMany() };
      before.push(rows);
      // Computed before the write: a `dependentPaths` that fails rejects the write before it runs.
      early.push(...(await this.#dependents(connection, target, rows)));
      if (rows.length > 0) early.push(...(await this.#updateCascades(connection, target, node)));
    }
    if (this.#dialect !== 'mysql') {
      const target = targets[0]!;
      const info = await this.#info(connection, target);
      const { result, rows } = await this.#returning(connection, query, node, target);
      const after = unique(rows);
      // A row the read did not see (it came to match in between): its old state is unknown.
      const key = info.primaryKey;
      const changesKey = node.updates?.some((u) => key.includes(columnName(u.column) ?? '')) ?? false;
      const seen = new Set(before[0]!.map((r) => rowKey(pick(r, key))));
      const missed = key.length === 0 || changesKey ? after.length > before[0]!.length : after.some((r) => !seen.has(rowKey(pick(r, key))));
      if (missed) return { result, outcome: new Fallback('it changed a row the read before it did not see (a concurrent write)') };
      return { result, outcome: [...early, ...(await this.#dependents(connection, target, after))] };
    }
    const infos = await Promise.all(targets.map((t) => this.#info(connection, t)));
    const result = await connection.executeQuery(query);
    if (this.#missed(result, before)) return { result, outcome: new Fallback('it changed more rows than the read before it saw (a concurrent write at READ COMMITTED)') };
    const outcome = [...early];
    for (const [i, target] of targets.entries()) {
      const rows = before[i]!;
      const key = infos[i]!.primaryKey;
      if (rows.length === 0) continue;
      if (key.length === 0) return { result, outcome: new Fallback(`${target.table} has no primary key, so the updated rows cannot be found again`) };
      if (node.updates?.some((u) => key.includes(columnName(u.column) ?? ''))) {
        return { result, outcome: new Fallback('it changes primary keys, so the rows cannot be found again') };
      }
      const after = await this.#select(connection, target, [target.from], undefined, WhereNode.create(matching(undefined, key, rows)), undefined, false);
      outcome.push(...(await this.#dependents(connection, target, after ?? [])));
    }
    return { result, outcome };
  }

  async #delete(connection: DatabaseConnection, query: CompiledQuery, node: DeleteQueryNode, targets: Target[], inTransaction: boolean) {
    // PostgreSQL's USING lists the other tables; MySQL's lists the targets too.
    const using = node.using?.tables ?? [];
    const froms = this.#dialect === 'mysql' ? (using.length > 0 ? using : node.from.froms) : [...node.from.froms, ...using];
    const early: Dependents[] = [];
    const seen = new Set<string>();
    const read: Row[][] = [];
    for (const target of targets) {
      const before = await this.#select(connection, target, froms, node.joins, node.where, node.with, inTransaction);
      if (before === undefined) return { result: await connection.executeQuery(query), outcome: this.#tooMany() };
      read.push(before);
      for (const row of before) seen.add(rowKey(row));
      // Before the delete: what dependentPaths reads may go with the row, and the rows the database changes with it.
      early.push(...(await this.#dependents(connection, target, before)));
      early.push(...(await this.#cascades(connection, target.schema, target.table, before)));
    }
    if (this.#dialect === 'mysql') {
      const result = await connection.executeQuery(query);
      if (this.#missed(result, read)) return { result, outcome: new Fallback('it deleted more rows than the read before it saw (a concurrent write at READ COMMITTED)') };
      return { result, outcome: early };
    }
    if (targets.length > 1) return { result: await connection.executeQuery(query), outcome: early };
    // A row the read did not see (inserted in between by another connection) still comes back here.
    const { result, rows } = await this.#returning(connection, query, node, targets[0]!);
    const missed = unique(rows).filter((row) => !seen.has(rowKey(row)));
    return { result, outcome: [...early, ...(await this.#dependents(connection, targets[0]!, missed))] };
  }

  /**
   * MySQL: the write reports more rows than the reads before it found. At READ COMMITTED InnoDB
   * takes no gap locks and lets go of the rows that did not match, so a row that comes to match
   * between the read and the write is written unseen. mysql2 connects with CLIENT_FOUND_ROWS (its
   * default): an update's affected rows are the rows it matched, changed or not. (A multi-table
   * write counts the rows of unregistered tables too: it may fall back with no need.)
   */
  #missed(result: QueryResult<unknown>, before: readonly Row[][]): boolean {
    const affected = result.numAffectedRows ?? (result as { numUpdatedRows?: bigint }).numUpdatedRows;
    if (affected === undefined) return true;
    return Number(affected) > before.reduce((n, rows) => n + rows.length, 0);
  }

  // ---------------------------------------------------------------- reading rows

  /**
   * The target's rows that a predicate matches, as `selectAll()` returns them, read on the
   * write's connection; `undefined` when there are more than `maxRows`. Inside a MySQL or
   * PostgreSQL transaction the read locks them (FOR UPDATE, or FOR NO KEY UPDATE for an update setting no key), so the write changes the rows it read.
   */
  async #select(
    connection: DatabaseConnection,
    target: Target,
    froms: readonly OperationNode[],
    joins: SelectQueryNode['joins'],
    where: WhereNode | undefined,
    withNode: SelectQueryNode['with'],
    lock: boolean | 'no key',
  ): Promise<Row[] | undefined> {
    const select: SelectQueryNode = {
      kind: 'SelectQueryNode',
      from: FromNode.create(froms),
      selections: [SelectionNode.createSelectAllFromTable(target.ref)],
      ...(joins !== undefined && { joins }),
      ...(where !== undefined && { where }),
      ...(withNode !== undefined && { with: withNode }),
      limit: LimitNode.create(ValueNode.createImmediate(this.#maxRows + 1)),
      // PostgreSQL locks only the target's rows (FOR UPDATE OF); MariaDB has no OF: every table's.
      ...(lock && this.#dialect === 'mysql' && { endModifiers: [SelectModifierNode.create('ForUpdate')] }),
      ...(lock !== false &&
        this.#dialect === 'postgres' && {
          endModifiers: [SelectModifierNode.create(lock === 'no key' ? 'ForNoKeyUpdate' : 'ForUpdate', [target.ref === target.node ? TableNode.create(target.table) : target.ref])],
        }),
    };
    const { rows } = await connection.executeQuery<Row>(this.#compile(select));
    if (rows.length > this.#maxRows) return undefined;
    return froms.length > 1 || (joins?.length ?? 0) > 0 ? unique(rows) : rows;
  }

  /**
   * Runs an insert, update or delete with the target's columns added to its RETURNING, and
   * hands back the caller's result as the query without them would have returned it.
   */
  async #returning(connection: DatabaseConnection, query: CompiledQuery, node: InsertQueryNode | UpdateQueryNode | DeleteQueryNode, target: Target) {
    const own = node.returning?.selections;
    const sqlite = this.#dialect === 'sqlite';
    if (own === undefined) {
      // SQLite's RETURNING names only the written table's columns, and takes no `table.*`.
      const all = sqlite ? SelectionNode.createSelectAll() : SelectionNode.createSelectAllFromTable(target.ref);
      const result = await connection.executeQuery<Row>(this.#compile({ ...node, returning: ReturningNode.create([all]) } as RootOperationNode));
      const rows = result.rows;
      let shaped: QueryResult<unknown> = { ...result, rows: [] };
      if (sqlite) {
        // better-sqlite3 reports no changes for a statement that returns rows: give back what it would have.
        shaped = { ...shaped, numAffectedRows: BigInt(rows.length) };
        if (node.kind === 'InsertQueryNode') {
          const { rows: last } = await connection.executeQuery<{ id: number | bigint }>(CompiledQuery.raw('select last_insert_rowid() as id'));
          if (last[0] !== undefined) shaped = { ...shaped, insertId: BigInt(last[0].id) };
        }
      }
      return { result: shaped, rows };
    }
    const info = await this.#info(connection, target);
    const extra = info.columns.map((c, i) =>
      SelectionNode.create(AliasNode.create(ReferenceNode.create(ColumnNode.create(c), sqlite ? undefined : target.ref), IdentifierNode.create(`${PREFIX}${i}`))),
    );
    const result = await connection.executeQuery<Row>(this.#compile({ ...node, returning: ReturningNode.create([...own, ...extra]) } as RootOperationNode));
    const rows: Row[] = [];
    const theirs = result.rows.map((r) => {
      const mine: Row = {};
      const rest: Row = {};
      for (const [k, v] of Object.entries(r)) {
        if (k.startsWith(PREFIX)) mine[info.columns[Number(k.slice(PREFIX.length))]!] = v;
        else rest[k] = v;
      }
      rows.push(mine);
      return rest;
    });
    return { result: { ...result, rows: theirs }, rows };
  }

  /**
   * The inserted rows' values for `columns`, one object per row, when every value is a literal
   * (`all`: every row must give every one of `columns`); `undefined` otherwise.
   */
  #literalRows(node: InsertQueryNode, columns: readonly string[], partial = false): Row[] | undefined {
    const names = node.columns?.map((c) => c.column.name);
    const values = node.values;
    if (names === undefined || values === undefined || values.kind !== 'ValuesNode') return undefined;
    const out: Row[] = [];
    for (const item of (values as unknown as { values: OperationNode[] }).values) {
      const row: Row = {};
      const list = item as unknown as { kind: string; values: readonly unknown[] };
      list.values.forEach((v, i) => {
        const name = names[i]!;
        if (list.kind === 'PrimitiveValueListNode') row[name] = v;
        else if ((v as OperationNode).kind === 'ValueNode') row[name] = (v as ValueNode).value;
      });
      if (!partial && !columns.every((c) => c in row)) return undefined;
      out.push(row);
    }
    return out;
  }

  async #info(connection: DatabaseConnection, target: Target): Promise<TableInfo> {
    const key = `${target.schema ?? ''}\u0000${target.table}`;
    let info = this.#tables.get(key);
    if (info === undefined) {
      info = readTable(connection, this.#dialect, target.schema, target.table);
      this.#tables.set(key, info);
      info.catch(() => this.#tables.delete(key));
    }
    return info;
  }

  #autoIncLockMode(connection: DatabaseConnection): Promise<number> {
    this.#lockMode ??= connection
      .executeQuery<{ mode: number | string | null }>(CompiledQuery.raw('select @@innodb_autoinc_lock_mode as mode'))
      .then(({ rows }) => Number(rows[0]?.mode ?? 2), () => 2);
    return this.#lockMode;
  }

  // ---------------------------------------------------------------- dependents

  async #dependents(connection: DatabaseConnection, target: Target, rows: readonly Row[]): Promise<Dependents[]> {
    // With trackReads, the tags of the rows' reads (no user code: computed at once).
    const out: Dependents[] = this.#schemas !== undefined && rows.length > 0 ? [await this.#readTags(connection, target.schema, target.table, rows)] : [];
    const model = target.model;
    if (model === undefined) return out;
    const deferred = this.#deferred.get(connection);
    if (deferred === undefined) return [...out, ...(await Promise.all(rows.map((row) => this.#dumper.dependentsOf(model, row))))];
    // Outside a transaction: only the rows read (and resolved) before the write's connection was
    // taken are resolved here; the others are collected, for after the connection is released.
    for (const row of rows) {
      const known = deferred.known.get(`${model}\u0000${rowKey(row)}`);
      if (known !== undefined) out.push(known);
      else deferred.rows.push({ model, row });
    }
    return out;
  }

  // ---------------------------------------------------------------- trackReads

  /** A row's value of a column a key names (SQLite and MySQL let a key spell it in another case). */
  #valueOf(row: Row, column: string): unknown {
    if (column in row || this.#dialect === 'postgres') return row[column];
    const lower = column.toLowerCase();
    for (const [name, value] of Object.entries(row)) if (name.toLowerCase() === lower) return value;
    return undefined;
  }

  #schemaOf(connection: DatabaseConnection, schema: string | undefined, table: string): Promise<TableSchema> {
    return this.#schemas!.get(connection, schema, table);
  }

  /**
   * The tags a write of these rows (as they were, or are) invalidates: `writeTags` of their
   * primary and foreign keys; for a join table (every column in a foreign key, two of them or
   * more), `linkTags` of both sides.
   */
  async #readTags(connection: DatabaseConnection, schema: string | undefined, table: string, rows: readonly Row[]): Promise<Dependents> {
    const info = await this.#schemaOf(connection, schema, table);
    const name = tagTable(this.#dialect, table);
    const keyOf = (row: Row, columns: readonly string[]): KeyValues | undefined => {
      const values = columns.map((c) => this.#valueOf(row, c));
      return values.every((v) => v !== null && v !== undefined) ? Object.fromEntries(columns.map((c, i) => [c, values[i]])) : undefined;
    };
    const written: WrittenRow[] = rows.map((row) => ({
      id: info.primaryKey.length === 0 ? undefined : keyOf(row, info.primaryKey),
      keys: info.foreignKeys.map((k) => keyOf(row, k.columns)).filter((k): k is KeyValues => k !== undefined),
    }));
    const tags = writeTags(name, written);
    const fkColumns = new Set(info.foreignKeys.flatMap((k) => k.columns));
    const junction = info.foreignKeys.length >= 2 && [...info.kinds.keys()].every((c) => fkColumns.has(c));
    if (junction && rows.every((row) => info.foreignKeys.every((k) => keyOf(row, k.columns) !== undefined))) {
      // A link: both sides' keys; and its own row, which a lookup by primary key reads.
      return tagsOf(table, [...new Set([...linkTags(name, rows.map((row) => info.foreignKeys.map((k) => ({ key: keyOf(row, k.columns)! })))), ...tags])]);
    }
    return tagsOf(table, tags);
  }

  /**
   * The tables whose rows may change without being named when rows of `table` whose rows are not
   * known change: those whose foreign keys point at it with an action (`ON DELETE CASCADE`, `SET
   * NULL`, `ON UPDATE CASCADE`...), transitively.
   */
  async #referencing(connection: DatabaseConnection, schema: string | undefined, table: string, seen = new Set<string>()): Promise<string[]> {
    const name = tagTable(this.#dialect, table);
    if (seen.has(name)) return [];
    seen.add(name);
    const info = await this.#schemaOf(connection, schema, table);
    const out = [name];
    for (const ref of info.referencedBy) {
      if (ref.onDelete !== 'none' || ref.onUpdate !== 'none') out.push(...(await this.#referencing(connection, schema, ref.from, seen)));
    }
    return out;
  }

  /**
   * With trackReads, a write whose rows are unknown, of tables none of which is registered,
   * invalidates everything read from them and from the tables the database may change with them,
   * instead of every page. `undefined` when it cannot (a registered table, or the schema cannot be read).
   */
  async unknown(connection: DatabaseConnection, targets: readonly Target[], reason: string): Promise<Dependents[] | undefined> {
    if (this.#schemas === undefined || targets.some((t) => t.model !== undefined)) return undefined;
    try {
      const tables = new Set<string>();
      for (const t of targets) for (const name of await this.#referencing(connection, t.schema, t.table)) tables.add(name);
      if (this.#dumper.log.debugEnabled) this.#dumper.log.debug(`kysely: cannot tell which rows a write changed (${reason}); invalidating what pages read from ${[...tables].join(', ')}`, {});
      return [tagsOf(namesOf(targets), [...tables].flatMap(unknownWriteTags))];
    } catch {
      return undefined;
    }
  }

  /** The outcome of a write, with a fallback of unregistered tables narrowed to their tags (see `unknown`). */
  async #narrow(connection: DatabaseConnection, targets: readonly Target[], outcome: Outcome): Promise<Outcome> {
    if (!(outcome instanceof Fallback)) return outcome;
    return (await this.unknown(connection, targets, outcome.reason)) ?? outcome;
  }

  /**
   * With trackReads, before a delete of these rows: the rows the database deletes or changes with
   * them (`ON DELETE CASCADE`, `SET NULL`), read by their foreign key (at most `maxRows` per key,
   * `CASCADE_DEPTH` levels of cascades), as written rows; past the bounds, or for `SET DEFAULT`,
   * everything read from their tables.
   */
  async #cascades(connection: DatabaseConnection, schema: string | undefined, table: string, rows: readonly Row[], depth = 0): Promise<Dependents[]> {
    if (this.#schemas === undefined || rows.length === 0) return [];
    const info = await this.#schemaOf(connection, schema, table);
    const out: Dependents[] = [];
    for (const ref of info.referencedBy) {
      if (ref.onDelete === 'none') continue;
      const unknown = async () => {
        const tables = await this.#referencing(connection, schema, ref.from);
        out.push(tagsOf(ref.from, tables.flatMap(unknownWriteTags)));
      };
      if (ref.onDelete === 'set default' || depth >= CASCADE_DEPTH) {
        await unknown();
        continue;
      }
      const keys = unique(
        rows
          .map((row) => Object.fromEntries(ref.columns.map((c, i) => [c, this.#valueOf(row, ref.references[i]!)])))
          .filter((key) => Object.values(key).every((v) => v !== null && v !== undefined)),
      );
      if (keys.length === 0) continue;
      const node = schema === undefined ? TableNode.create(ref.from) : TableNode.createWithSchema(schema, ref.from);
      const children = await this.#selectRows(connection, node, WhereNode.create(matching(undefined, ref.columns, keys)));
      if (children === undefined) {
        await unknown();
        continue;
      }
      if (children.length === 0) continue;
      out.push(await this.#readTags(connection, schema, ref.from, children));
      if (ref.onDelete === 'cascade') out.push(...(await this.#cascades(connection, schema, ref.from, children, depth + 1)));
    }
    return out;
  }

  /** Rows of a table by a predicate, at most `maxRows` (else `undefined`), without locking them. */
  async #selectRows(connection: DatabaseConnection, table: TableNode, where: WhereNode): Promise<Row[] | undefined> {
    const select: SelectQueryNode = {
      kind: 'SelectQueryNode',
      from: FromNode.create([table]),
      selections: [SelectionNode.createSelectAll()],
      where,
      limit: LimitNode.create(ValueNode.createImmediate(this.#maxRows + 1)),
    };
    const { rows } = await connection.executeQuery<Row>(this.#compile(select));
    return rows.length > this.#maxRows ? undefined : rows;
  }

  /**
   * With trackReads, an update that sets a column other tables' foreign keys reference with an
   * `ON UPDATE` action: everything read from those tables (their rows change unseen).
   */
  async #updateCascades(connection: DatabaseConnection, target: Target, node: UpdateQueryNode): Promise<Dependents[]> {
    if (this.#schemas === undefined) return [];
    const info = await this.#schemaOf(connection, target.schema, target.table);
    const set = new Set((node.updates ?? []).map((u) => columnName(u.column)));
    const out: Dependents[] = [];
    for (const ref of info.referencedBy) {
      if (ref.onUpdate === 'none' || !ref.references.some((c) => set.has(c))) continue;
      out.push(tagsOf(ref.from, (await this.#referencing(connection, target.schema, ref.from)).flatMap(unknownWriteTags)));
    }
    return out;
  }

  /** The dependents of collected rows (`dependentPaths` runs here, with no connection held). */
  async resolve(rows: readonly { model: string; row: Row }[]): Promise<Map<string, Dependents>> {
    const out = new Map<string, Dependents>();
    const all = await Promise.all(rows.map(({ model, row }) => this.#dumper.dependentsOf(model, row)));
    rows.forEach(({ model, row }, i) => out.set(`${model}\u0000${rowKey(row)}`, all[i]!));
    return out;
  }

  /**
   * Reads, on a connection of its own (released before `dependentPaths` runs), the rows an
   * update, a delete or an upsert reads before it writes: the write itself does not run.
   */
  async probe(connection: DatabaseConnection, query: CompiledQuery, targets: Target[]): Promise<{ model: string; row: Row }[]> {
    const deferred: Deferred = { known: new Map(), rows: [] };
    const conn: DatabaseConnection = {
      executeQuery: async <R>(q: CompiledQuery) => {
        if (isWrite(q.query)) throw STOP;
        return connection.executeQuery<R>(q);
      },
      streamQuery: (q, chunkSize) => connection.streamQuery(q, chunkSize),
    };
    this.#deferred.set(conn, deferred);
    try {
      await this.#run(conn, query, targets, false);
    } catch (error) {
      if (error !== STOP) throw error;
    }
    return deferred.rows;
  }

  #tooMany(): Fallback {
    return new Fallback(`it matches more than ${this.#maxRows} rows (the maxRows option)`);
  }
}

export { QUERY_ID };

/** The tables of targets, for messages: their registered names, or their tables. */
export function namesOf(targets: readonly Target[]): string {
  return [...new Set(targets.map((t) => t.model ?? t.table))].join(', ');
}

/** Tags to invalidate, in the shape `invalidateDependents()` and the transaction frames take. */
function tagsOf(table: string, tags: readonly string[]): Dependents {
  return { model: table, paths: [], tags };
}
