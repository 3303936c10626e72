/**
 * `trackReads` for Kysely: every SELECT the wrapped instance runs tags the page being rendered,
 * following the model of ../reads.ts. The query is seen as it reaches the connection (compiled,
 * after the caller's plugins), as an operation node tree, with the rows the database returned;
 * the tables' primary keys, foreign keys and column types are read from the database once (see
 * `readSchema` in tables.ts).
 *
 * - A query of one table (no CTE, no UNION) whose `where` has, among its ANDed conditions,
 *   `pk = value` or `pk in (values)` (every column of a composite key set to one value) tags those
 *   rows, found or not; else one with `fk = value` or `fk in (values)` on a foreign key of one
 *   column tags that key. The other conditions only narrow the answer. A value must be spelled as
 *   the database returns it (see `canonical`), else the condition is not used.
 * - Every other table the query names (joins, subqueries, `exists`) tags its list, as does the
 *   main table when its `where` says nothing the above can use, or when it is named twice.
 * - A join of a parent along `parent.pk = child.fk` (LEFT, or INNER when the foreign key is
 *   declared and enforced), whose parent is referred to only in the selection, and whose
 *   selection returns `child.fk` or `parent.pk` under a name of its own: the parent rows it
 *   returned (by those values), instead of the parent's list.
 * - A query that is raw SQL (`sql\`...\`.execute(db)`, `CompiledQuery.raw`) is not parsed: it tags
 *   nothing. Raw fragments inside a built query are not either (the tables around them are).
 *
 * A streamed SELECT tags the lists of every table it names.
 */
import type {
  AliasNode,
  AndNode,
  BinaryOperationNode,
  ColumnNode,
  DatabaseConnection,
  IdentifierNode,
  JoinNode,
  OperationNode,
  OperatorNode,
  ParensNode,
  PrimitiveValueListNode,
  ReferenceNode,
  SelectQueryNode,
  TableNode,
  ValueListNode,
  ValueNode,
} from 'kysely';
import { CompiledQuery } from 'kysely';
import type { KeyValues, ReadTracker } from '../reads.js';
import { tagTable, type ColumnKind, type DialectName, type Schemas, type TableSchema } from './tables.js';

type Row = Record<string, unknown>;

/** A table where the query names it (FROM, JOIN, subqueries...): not a column's qualifier. */
interface Named {
  readonly schema: string | undefined;
  readonly table: string;
}

/**
 * Whether a key value is spelled as the database hands the column's values out, so that its tag is
 * the one a write of the row makes (`'01'` finds the row 1 of an integer column; a MySQL string
 * finds other cases and trailing spaces).
 */
export function canonical(kind: ColumnKind | undefined, value: unknown): boolean {
  switch (kind) {
    case 'int':
      if (typeof value === 'number') return Number.isSafeInteger(value) && !Object.is(value, -0);
      if (typeof value === 'bigint') return true;
      return typeof value === 'string' && /^(0|-?[1-9][0-9]*)$/.test(value);
    case 'text':
      return typeof value === 'string';
    case 'uuid':
      return typeof value === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
    default:
      return false;
  }
}

/** The table a FROM or JOIN item names, and the name the query refers to it by. */
function tableOf(node: OperationNode): { named: Named; ref: string } | undefined {
  let table = node;
  let alias: string | undefined;
  if (node.kind === 'AliasNode') {
    const a = (node as AliasNode).alias;
    if (a.kind !== 'IdentifierNode') return undefined;
    alias = (a as IdentifierNode).name;
    table = (node as AliasNode).node;
  }
  if (table.kind !== 'TableNode') return undefined;
  const t = (table as TableNode).table;
  return { named: { schema: t.schema?.name, table: t.identifier.name }, ref: alias ?? t.identifier.name };
}

/**
 * Calls `fn` on every node under `node` (itself included), but not on the tables that qualify a
 * column (`post.id`): those name no new table. Values are not entered.
 */
function walk(node: unknown, fn: (n: OperationNode) => void): void {
  if (Array.isArray(node)) {
    for (const item of node) walk(item, fn);
    return;
  }
  if (node === null || typeof node !== 'object' || typeof (node as { kind?: unknown }).kind !== 'string') return;
  const n = node as OperationNode;
  fn(n);
  if (n.kind === 'ValueNode' || n.kind === 'PrimitiveValueListNode') return;
  if (n.kind === 'ReferenceNode') return walk((n as ReferenceNode).column, fn);
  for (const value of Object.values(n)) if (value !== null && typeof value === 'object') walk(value, fn);
}

/** Every table named anywhere in the query (FROM, joins, subqueries, CTEs, `sql.table()`), with how many times. */
function namedTables(root: OperationNode): Named[] {
  const out: Named[] = [];
  walk(root, (n) => {
    if (n.kind === 'TableNode') {
      const t = (n as TableNode).table;
      out.push({ schema: t.schema?.name, table: t.identifier.name });
    }
  });
  return out;
}

/** The conditions a `where` ANDs together. */
function conjuncts(node: OperationNode | undefined, out: OperationNode[] = []): OperationNode[] {
  if (node === undefined) return out;
  if (node.kind === 'AndNode') {
    conjuncts((node as AndNode).left, out);
    conjuncts((node as AndNode).right, out);
  } else if (node.kind === 'ParensNode') {
    conjuncts((node as ParensNode).node, out);
  } else out.push(node);
  return out;
}

/** `column = value`, `column in (values)` (either side) on the column of a reference: the column and its values. */
function equality(node: OperationNode): { ref: ReferenceNode; values: unknown[] } | undefined {
  if (node.kind !== 'BinaryOperationNode') return undefined;
  const b = node as BinaryOperationNode;
  if (b.operator.kind !== 'OperatorNode') return undefined;
  const op = (b.operator as OperatorNode).operator;
  let [ref, value] = [b.leftOperand, b.rightOperand];
  if (op === '=' || op === '==') {
    if (ref.kind !== 'ReferenceNode') [ref, value] = [value, ref];
  } else if (op !== 'in') return undefined;
  if (ref.kind !== 'ReferenceNode' || (ref as ReferenceNode).column.kind !== 'ColumnNode') return undefined;
  let values: unknown[];
  if (value.kind === 'ValueNode') {
    if (op === 'in') return undefined;
    values = [(value as ValueNode).value];
  } else if (op === 'in' && value.kind === 'PrimitiveValueListNode') {
    values = [...(value as PrimitiveValueListNode).values];
  } else if (op === 'in' && value.kind === 'ValueListNode') {
    const items = (value as ValueListNode).values;
    if (!items.every((v) => v.kind === 'ValueNode')) return undefined;
    values = items.map((v) => (v as ValueNode).value);
  } else return undefined;
  return { ref: ref as ReferenceNode, values };
}

const columnOf = (ref: ReferenceNode) => ((ref.column as ColumnNode).column as IdentifierNode).name;
const qualifierOf = (ref: ReferenceNode) => ref.table?.table.identifier.name;

export class KyselyReads {
  readonly #tracker: ReadTracker;
  readonly #dialect: DialectName;
  readonly #schemas: Schemas;
  /** Whether each connection enforces foreign keys (SQLite's and MySQL's are per connection). */
  readonly #enforced = new WeakMap<DatabaseConnection, Promise<boolean>>();

  constructor(tracker: ReadTracker, dialect: DialectName, schemas: Schemas) {
    this.#tracker = tracker;
    this.#dialect = dialect;
    this.#schemas = schemas;
  }

  #name(table: string): string {
    return tagTable(this.#dialect, table);
  }

  /** A column of the table as the database spells it (SQLite and MySQL ignore case). */
  #column(schema: TableSchema, name: string): string | undefined {
    if (schema.kinds.has(name)) return name;
    if (this.#dialect === 'postgres') return undefined;
    const lower = name.toLowerCase();
    for (const c of schema.kinds.keys()) if (c.toLowerCase() === lower) return c;
    return undefined;
  }

  /** The lists of every table a query names, and of the tables under the views among them (streams, before they start). */
  async lists(connection: DatabaseConnection, root: OperationNode): Promise<void> {
    if (root.kind !== 'SelectQueryNode') return;
    const named = namedTables(root);
    for (const t of named) this.#tracker.list(this.#name(t.table));
    await this.#views(connection, named);
  }

  /**
   * A database view's rows are its tables' rows: a read of one tags the lists of the base tables
   * under it (a write of them never names the view). Read from the catalog once per name.
   */
  async #views(connection: DatabaseConnection, named: readonly Named[]): Promise<void> {
    const done = new Set<string>();
    for (const t of named) {
      const name = this.#name(t.table);
      if (done.has(name)) continue;
      done.add(name);
      const under = await this.#schemas.view(connection, t.schema, t.table);
      for (const table of under ?? []) this.#tracker.list(this.#name(table));
    }
  }

  /**
   * Tags the page with what a SELECT that ran on `connection` read, `rows` being what the
   * database returned. Reads the tables' schemas on the connection the first time; if that fails,
   * the lists.
   */
  async tag(connection: DatabaseConnection, root: OperationNode, rows: readonly Row[]): Promise<void> {
    // Raw SQL is not parsed; schema statements read nothing.
    if (root.kind !== 'SelectQueryNode') return;
    const named = namedTables(root);
    if (named.length === 0) return;
    const lists = new Set(named.map((t) => this.#name(t.table)));
    await this.#views(connection, named);
    try {
      await this.#precise(connection, root as SelectQueryNode, named, rows, lists);
    } catch {
      // The schema could not be read: what is left are lists.
    } finally {
      for (const table of lists) this.#tracker.list(table);
    }
  }

  /** Tags what can be told more precisely than a list, and takes those tables out of `lists`. */
  async #precise(connection: DatabaseConnection, q: SelectQueryNode, named: readonly Named[], rows: readonly Row[], lists: Set<string>): Promise<void> {
    if (q.with !== undefined || q.setOperations !== undefined || q.explain !== undefined || q.from?.froms.length !== 1) return;
    const main = tableOf(q.from.froms[0]!);
    if (main === undefined) return;
    const count = (t: Named) => named.filter((n) => this.#name(n.table) === this.#name(t.table)).length;
    const joins = q.joins ?? [];
    if (count(main.named) === 1) {
      const schema = await this.#schemas.get(connection, main.named.schema, main.named.table);
      if (this.#where(schema, q, main.ref, joins.length > 0)) lists.delete(this.#name(main.named.table));
    }
    for (const join of joins) {
      const parent = await this.#parent(connection, q, join, main, rows, count);
      if (parent !== undefined) lists.delete(parent);
    }
  }

  /** Tags the main table's rows or keys from the conditions of the `where`; false if none can be used. */
  #where(schema: TableSchema, q: SelectQueryNode, ref: string, joined: boolean): boolean {
    const byColumn = new Map<string, unknown[]>();
    for (const c of conjuncts(q.where?.where)) {
      const eq = equality(c);
      if (eq === undefined) continue;
      const qualifier = qualifierOf(eq.ref);
      // With joins, an unqualified column may be another table's.
      if (qualifier === undefined ? joined : qualifier !== ref) continue;
      const column = this.#column(schema, columnOf(eq.ref));
      if (column === undefined || byColumn.has(column)) continue;
      const kind = schema.kinds.get(column);
      if (eq.values.every((v) => canonical(kind, v))) byColumn.set(column, eq.values);
    }
    const table = this.#name(schema.name);
    const pk = schema.primaryKey;
    if (pk.length > 0 && pk.every((c) => byColumn.has(c)) && (pk.length === 1 || pk.every((c) => byColumn.get(c)!.length === 1))) {
      const ids: KeyValues[] = pk.length === 1 ? byColumn.get(pk[0]!)!.map((v) => ({ [pk[0]!]: v })) : [Object.fromEntries(pk.map((c) => [c, byColumn.get(c)![0]]))];
      this.#tracker.rows(table, ids);
      return true;
    }
    for (const fk of schema.foreignKeys) {
      if (fk.columns.length !== 1) continue;
      const values = byColumn.get(fk.columns[0]!);
      if (values === undefined) continue;
      this.#tracker.keys(
        table,
        values.map((v) => ({ [fk.columns[0]!]: v })),
      );
      return true;
    }
    return false;
  }

  /**
   * A join of a parent table along its primary key: tags the parent rows the query returned, and
   * gives the parent's tag name; `undefined` when that cannot be proven (the parent's list then).
   */
  async #parent(
    connection: DatabaseConnection,
    q: SelectQueryNode,
    join: JoinNode,
    main: { named: Named; ref: string },
    rows: readonly Row[],
    count: (t: Named) => number,
  ): Promise<string | undefined> {
    if (join.joinType !== 'LeftJoin' && join.joinType !== 'InnerJoin') return undefined;
    const parent = tableOf(join.table);
    if (parent === undefined || count(parent.named) !== 1 || join.on === undefined) return undefined;
    const eq = join.on.on;
    if (eq.kind !== 'BinaryOperationNode') return undefined;
    const b = eq as BinaryOperationNode;
    if (b.operator.kind !== 'OperatorNode' || (b.operator as OperatorNode).operator !== '=') return undefined;
    if (b.leftOperand.kind !== 'ReferenceNode' || b.rightOperand.kind !== 'ReferenceNode') return undefined;
    let [p, c] = [b.leftOperand as ReferenceNode, b.rightOperand as ReferenceNode];
    if (qualifierOf(p) !== parent.ref) [p, c] = [c, p];
    if (qualifierOf(p) !== parent.ref || p.column.kind !== 'ColumnNode' || c.column.kind !== 'ColumnNode') return undefined;
    const childRef = qualifierOf(c);
    if (childRef === undefined || childRef === parent.ref) return undefined;
    // The child: the main table or a table joined before, named once.
    const child = [main, ...(q.joins ?? []).slice(0, q.joins!.indexOf(join)).map((j) => tableOf(j.table))].find((t) => t?.ref === childRef);
    if (child === undefined || count(child.named) !== 1) return undefined;

    // The parent is referred to only in the selection and in this ON, nothing aggregates, and no
    // unqualified column (which may be the parent's) decides which rows come back.
    if (q.groupBy !== undefined || q.having !== undefined) return undefined;
    let clean = true;
    // An ordering decides which rows come back only with a limit or an offset.
    const ordering = q.limit !== undefined || q.offset !== undefined || q.fetch !== undefined || q.top !== undefined ? q.orderBy : undefined;
    const others: unknown[] = [q.where, ordering, q.distinctOn, ...(q.joins ?? []).filter((j) => j !== join)];
    walk(others, (n) => {
      if (n.kind === 'ReferenceNode' && (qualifierOf(n as ReferenceNode) ?? parent.ref) === parent.ref) clean = false;
    });
    walk(q.selections, (n) => {
      if (n.kind === 'AggregateFunctionNode' || n.kind === 'SelectAllNode') clean = false;
    });
    if (!clean) return undefined;

    const [parentSchema, childSchema] = [await this.#schemas.get(connection, parent.named.schema, parent.named.table), await this.#schemas.get(connection, child.named.schema, child.named.table)];
    const pk = this.#column(parentSchema, columnOf(p));
    const fk = this.#column(childSchema, columnOf(c));
    if (pk === undefined || fk === undefined || parentSchema.primaryKey.length !== 1 || parentSchema.primaryKey[0] !== pk) return undefined;
    if (join.joinType === 'InnerJoin') {
      // An inner join drops the child rows whose parent is missing: only a foreign key the database enforces rules that out.
      const declared = childSchema.foreignKeys.some(
        (k) => k.columns.length === 1 && k.columns[0] === fk && this.#name(k.table) === this.#name(parentSchema.name) && k.references[0] === pk,
      );
      if (!declared || !(await this.#enforces(connection))) return undefined;
    }
    const fkOut = this.#output(q, c);
    const pkOut = this.#output(q, p);
    if (fkOut === undefined && pkOut === undefined) return undefined;
    const ids: KeyValues[] = [];
    const kind = parentSchema.kinds.get(pk);
    for (const row of rows) {
      const value = fkOut !== undefined ? row[fkOut] : row[pkOut!];
      if (value === null || value === undefined) {
        // No parent: the child's key is null (its own tags cover it), unless only the parent's side was returned.
        if (fkOut === undefined && join.joinType === 'LeftJoin') return undefined;
        continue;
      }
      // The child's value as the parent's key spells it (a MySQL string matches other cases).
      if (fkOut !== undefined && !canonical(kind, value)) return undefined;
      ids.push({ [pk]: value });
    }
    const table = this.#name(parentSchema.name);
    this.#tracker.rows(table, ids);
    return table;
  }

  /** The name a selection of exactly this column (`t.col` or `t.col as x`) comes back under, if it is the only one of that name. */
  #output(q: SelectQueryNode, ref: ReferenceNode): string | undefined {
    const names: string[] = [];
    let found: string | undefined;
    for (const s of q.selections ?? []) {
      let node = s.selection as OperationNode;
      let name: string | undefined;
      if (node.kind === 'AliasNode') {
        const alias = (node as AliasNode).alias;
        name = alias.kind === 'IdentifierNode' ? (alias as IdentifierNode).name : undefined;
        node = (node as AliasNode).node;
      }
      if (node.kind === 'ReferenceNode' && (node as ReferenceNode).column.kind === 'ColumnNode') {
        name ??= columnOf(node as ReferenceNode);
        if (qualifierOf(node as ReferenceNode) === qualifierOf(ref) && columnOf(node as ReferenceNode) === columnOf(ref)) found ??= name;
      }
      if (name !== undefined) names.push(name);
    }
    return found !== undefined && names.filter((n) => n === found).length === 1 ? found : undefined;
  }

  /** Whether the connection enforces foreign keys (PostgreSQL always; SQLite and MySQL per connection). */
  #enforces(connection: DatabaseConnection): Promise<boolean> {
    if (this.#dialect === 'postgres') return Promise.resolve(true);
    let known = this.#enforced.get(connection);
    if (known === undefined) {
      const sql = this.#dialect === 'sqlite' ? 'pragma foreign_keys' : 'select @@foreign_key_checks as foreign_keys';
      known = connection.executeQuery<{ foreign_keys: unknown }>(CompiledQuery.raw(sql)).then(
        ({ rows }) => Number(rows[0]?.foreign_keys) === 1,
        () => false,
      );
      this.#enforced.set(connection, known);
    }
    return known;
  }
}
