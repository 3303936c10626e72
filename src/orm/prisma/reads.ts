/**
 * `trackReads` for Prisma: each model read (findUnique, findFirst, findMany, count, aggregate,
 * groupBy, and their OrThrow forms) tags the page being rendered, following the model of
 * ../reads.ts. Tags name models and fields as the Prisma schema does (not the database's table
 * and column names), so they match what the write side of this extension invalidates.
 *
 * - A `where` whose only conditions on other rows are none, and which sets the primary key
 *   (`{ id: 1 }`, `{ id: { in: [1, 2] } }`, a compound key) tags those rows, found or not; one that
 *   sets a foreign key or another unique field (`{ authorId: 1 }`, `{ slug: 'a' }`) tags that key.
 *   Other scalar conditions beside it only narrow the answer, and are allowed. Only fields whose
 *   values are compared as the database stores them name rows (see `KeyType` in ./schema.ts): an
 *   Int or BigInt in any spelling (`7`, `7n`, `'7'` are the tag of 7); a String on PostgreSQL
 *   (text, varchar) or SQLite as spelled. A String on MySQL/MariaDB (whose default collations
 *   ignore case and trailing spaces), a DateTime, Decimal, Float, Bytes, Json or enum value tags
 *   the model's list. A lookup of one row also tags the row it found, by its primary key as the
 *   database returned it: the spelling its writes invalidate.
 * - A fluent call (`findUnique({ where }).author()`, `.tags()`, `.post().author()`) is the root
 *   model's read, with the relations selected along a path, answered with the last relation's
 *   rows: the root's where tags as above, and each relation on the path as if included for the
 *   root's ids (a child's key, the join table's key), or its model's list (and its join table's)
 *   where the rows before it are not known (a root found by a filter, a step past the first);
 *   the rows returned tag themselves and the relations read below them.
 * - Anything else (no `where`, other conditions, relation filters, ordering by a relation) tags
 *   the model's list, and the lists of the models its relation filters and orderings name.
 * - Relations read with `include`, `select` or `_count`: a to-one relation whose key the parent
 *   holds tags the rows it loaded; a relation whose key the other side holds (one-to-many, the
 *   back of a one-to-one) tags that key for each parent; an implicit many-to-many relation tags the
 *   join table's key for each parent and the rows it loaded (the model's list when it picks some
 *   of them by a `where`, `take`, `skip`, `cursor` or `distinct`: a linked row not loaded may come
 *   in when it changes). A relation read with a `where` that filters on relations tags lists.
 *
 * Raw queries (`$queryRaw`, `$executeRaw`) are not parsed: tag their pages by hand.
 */
import { keyPart, type KeyValues, type ReadTracker } from '../reads.js';
import type { ModelInfo, RelationInfo } from './schema.js';

type Row = Record<string, unknown>;

export const READS = new Set(['findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy']);
const LOGICAL = new Set(['AND', 'OR', 'NOT']);
/** Scalar filter operators that name one value (the others name sets, patterns or ranges). */
const EQUALS = 'equals';

function isPlain(value: unknown): value is Row {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The name of an implicit many-to-many relation's join table, the same from either side. */
export function junctionOf(model: ModelInfo, relation: RelationInfo): string {
  return `_${[`${model.name}.${relation.name}`, `${relation.model}.${relation.back ?? ''}`].sort().join('+')}`;
}

/** The join table's key that holds a row of `model` through `relation`: its columns, named after the side. */
export function junctionKey(model: ModelInfo, relation: RelationInfo, row: Row): KeyValues | undefined {
  const id = model.id;
  if (id === undefined) return undefined;
  const key: Record<string, unknown> = {};
  for (const f of id) {
    if (keyPart(row[f]) === undefined) return undefined;
    key[id.length === 1 ? `${model.name}.${relation.name}` : `${model.name}.${relation.name}.${f}`] = row[f];
  }
  return key;
}

/**
 * A value of a `where` as the value the database stores for the row it finds, or `undefined`
 * when that cannot be told: an Int or BigInt in any spelling Prisma takes (`7`, `7n`, `'7'`) is
 * the integer's text; a value of an `exact` field is itself; anything else (a String that MySQL
 * compares ignoring case and trailing spaces, a DateTime, a Decimal, ...) names no row.
 */
function canonical(m: ModelInfo, field: string, value: unknown): unknown {
  switch (m.keyTypes.get(field)) {
    case 'int':
      if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'string' && /^[+-]?\d+$/.test(value)) return BigInt(value).toString();
      return undefined;
    case 'exact':
      return typeof value === 'string' || typeof value === 'boolean' ? value : undefined;
    default:
      return undefined;
  }
}

/**
 * The values one scalar condition on `field` asks for: a value, `{ equals }`, `{ in: [...] }`,
 * each canonical (see `canonical`); `undefined` for anything else.
 */
function valuesOf(m: ModelInfo, field: string, condition: unknown): unknown[] | undefined {
  if (isPlain(condition)) {
    const keys = Object.keys(condition);
    if (keys.length === 1 && keys[0] === EQUALS) return valuesOf(m, field, condition.equals);
    if (keys.length === 1 && keys[0] === 'in' && Array.isArray(condition.in)) {
      const values = condition.in.map((v) => canonical(m, field, v));
      return values.every((v) => v !== undefined) ? values : undefined;
    }
    return undefined;
  }
  const value = canonical(m, field, condition);
  return value === undefined ? undefined : [value];
}

/** Whether every field can name rows in a tag (the values are compared as the database stores them). */
function keyed(m: ModelInfo, fields: readonly string[]): boolean {
  return fields.every((f) => m.keyTypes.has(f));
}

/** What a `where` says about a model's rows. */
type Where = { readonly kind: 'rows'; readonly ids: KeyValues[] } | { readonly kind: 'keys'; readonly keys: KeyValues[] } | { readonly kind: 'list' };
const LIST: Where = { kind: 'list' };

export class PrismaReads {
  readonly #tracker: ReadTracker;
  readonly #models: ReadonlyMap<string, ModelInfo>;

  constructor(tracker: ReadTracker, models: ReadonlyMap<string, ModelInfo>) {
    this.#tracker = tracker;
    this.#models = models;
  }

  /**
   * Runs a read and tags the page with what it read. `dataPath` is where, in the answer to the
   * query, the rows the caller gets are: empty for a plain read; for a fluent call
   * (`findUnique({ where }).author()`), Prisma runs the root model's read with the relation
   * selected (`select: { author: true }`) and hands back the rows at `['select', 'author']`, which
   * is also what `query()` resolves to. `undefined` when the client does not say (see `#unsure`).
   */
  async handle(model: string, operation: string, args: Row, query: (args: Row) => Promise<unknown>, dataPath?: readonly unknown[]): Promise<unknown> {
    const result = await query(args);
    const m = this.#models.get(model);
    if (m === undefined) return result;
    if (dataPath !== undefined && dataPath.length > 0) {
      this.#fluent(m, args, dataPath, result);
      return result;
    }
    if (dataPath === undefined) this.#unsure(m, args.select);
    this.#tag(m, operation, args, result);
    return result;
  }

  /** The tags of a `where` (and `cursor`, `orderBy`) of a model's rows, and what the where says. */
  #root(m: ModelInfo, args: Row): Where {
    const where = this.#classify(m, args.where);
    if (where.kind === 'rows') this.#tracker.rows(m.name, where.ids);
    else if (where.kind === 'keys') this.#tracker.keys(m.name, where.keys);
    else this.#tracker.list(m.name);
    if (args.cursor !== undefined) {
      const cursor = this.#classify(m, args.cursor);
      if (cursor.kind === 'rows') this.#tracker.rows(m.name, cursor.ids);
      else this.#tracker.list(m.name);
    }
    this.#orderings(m, args.orderBy);
    return where;
  }

  #tag(m: ModelInfo, operation: string, args: Row, result: unknown): void {
    const where = this.#root(m, args);
    const rows = (Array.isArray(result) ? result : [result]).filter(isPlain);
    // The rows found, by their primary keys as the database returned them: the spelling every
    // write of them invalidates, whatever spelling the where used. Only for lookups of one row
    // (a page of children by key stays one key tag, not one tag per child).
    if (where.kind === 'rows' || (where.kind === 'keys' && !Array.isArray(result))) {
      const ids = idsOf(m, rows);
      if (ids !== undefined && ids.length > 0) this.#tracker.rows(m.name, ids);
    }
    const selection = isPlain(args.include) ? args.include : isPlain(args.select) ? args.select : undefined;
    if (selection === undefined) return;
    this.#relations(m, selection, rows, where.kind === 'rows' ? where.ids : undefined);
  }

  /**
   * A fluent call: the root row is found by its `where`; each relation on the path is read for
   * the rows before it, and the rows returned are the last relation's. The rows on the way are not
   * returned, so only the root's ids (when the where names them) are known: a relation read for
   * rows whose ids are not known tags its model's list (and its join table's).
   */
  #fluent(m: ModelInfo, args: Row, path: readonly unknown[], result: unknown): void {
    const where = this.#root(m, args);
    let model = m;
    let at: Row = args;
    let parents: readonly KeyValues[] | undefined = where.kind === 'rows' ? where.ids : undefined;
    const rows = (Array.isArray(result) ? result : [result]).filter(isPlain);
    for (let i = 0; i < path.length; i += 2) {
      const selection = at.select;
      const field = path[i + 1];
      const relation = path[i] === 'select' && typeof field === 'string' ? model.relations.get(field) : undefined;
      const child = relation === undefined ? undefined : this.#models.get(relation.model);
      if (relation === undefined || child === undefined || !isPlain(selection)) {
        // A path this code does not know: every model the selection names, whole.
        this.#unsure(model, selection);
        return;
      }
      const value = selection[relation.name];
      const sub = isPlain(value) ? value : {};
      const last = i + 2 >= path.length;
      this.#relation(model, relation, sub, parents ?? [], last ? rows : undefined, parents === undefined, !last);
      parents = undefined;
      model = child;
      at = sub;
    }
  }

  /**
   * The client did not say where the rows it returns are: were it a fluent call, they would be
   * the rows of a relation in `select`. Every model the selection names is tagged whole.
   */
  #unsure(m: ModelInfo, selection: unknown): void {
    if (!isPlain(selection)) return;
    for (const [field, value] of Object.entries(selection)) {
      const relation = m.relations.get(field);
      const child = relation === undefined ? undefined : this.#models.get(relation.model);
      if (relation === undefined || child === undefined || value === undefined || value === false) continue;
      this.#tracker.list(child.name);
      if (relation.manyToMany) this.#tracker.list(junctionOf(m, relation));
      if (isPlain(value)) this.#unsure(child, value.select ?? value.include);
    }
  }

  /**
   * What a `where` says: rows by primary key, rows by a foreign or unique key, or a list. Lists
   * are tagged here for the models that relation filters name.
   */
  #classify(m: ModelInfo, where: unknown): Where {
    if (where === undefined) return LIST;
    if (!isPlain(where)) return LIST;
    let scalarOnly = true;
    for (const [field, value] of Object.entries(where)) {
      if (value === undefined) continue;
      if (LOGICAL.has(field) || m.relations.has(field)) {
        scalarOnly = false;
        this.#filterLists(m, { [field]: value });
      } else if (!m.scalars.includes(field) && !isPlain(value)) {
        scalarOnly = false;
      }
    }
    if (!scalarOnly) return LIST;
    // A compound unique spelled `a_b: { a, b }` is spread into its fields.
    const flat: Row = {};
    for (const [field, value] of Object.entries(where)) {
      if (value === undefined) continue;
      if (!m.scalars.includes(field) && isPlain(value)) Object.assign(flat, value);
      else flat[field] = value;
    }
    const named = (fields: readonly string[]): KeyValues[] | undefined => {
      if (fields.length === 0 || !fields.every((f) => f in flat)) return undefined;
      if (fields.length === 1) return valuesOf(m, fields[0]!, flat[fields[0]!])?.map((v) => ({ [fields[0]!]: v }));
      const key: Record<string, unknown> = {};
      for (const f of fields) {
        const values = valuesOf(m, f, flat[f]);
        if (values?.length !== 1) return undefined;
        key[f] = values[0];
      }
      return [key];
    };
    const ids = m.id === undefined ? undefined : named(m.id);
    if (ids !== undefined) return { kind: 'rows', ids };
    for (const fields of [...m.uniques, ...[...m.relations.values()].map((r) => r.fields)]) {
      const keys = named(fields);
      if (keys !== undefined) return { kind: 'keys', keys };
    }
    return LIST;
  }

  /** The lists of every model a filter's relation conditions name (and join tables on the way). */
  #filterLists(m: ModelInfo, where: unknown): void {
    for (const item of Array.isArray(where) ? where : [where]) {
      if (!isPlain(item)) continue;
      for (const [field, value] of Object.entries(item)) {
        if (LOGICAL.has(field)) {
          this.#filterLists(m, value);
          continue;
        }
        const relation = m.relations.get(field);
        if (relation === undefined) continue;
        const child = this.#models.get(relation.model);
        if (child === undefined) continue;
        this.#tracker.list(child.name);
        if (relation.manyToMany) this.#tracker.list(junctionOf(m, relation));
        // { some: {...} }, { every }, { none }, { is }, { isNot }, or the related row's fields directly.
        if (isPlain(value)) {
          for (const [op, inner] of Object.entries(value)) {
            if (['some', 'every', 'none', 'is', 'isNot'].includes(op)) this.#filterLists(child, inner);
          }
          this.#filterLists(child, value);
        }
      }
    }
  }

  /** Ordering by a relation's fields (or its `_count`) depends on the related rows. */
  #orderings(m: ModelInfo, orderBy: unknown): void {
    for (const item of Array.isArray(orderBy) ? orderBy : [orderBy]) {
      if (!isPlain(item)) continue;
      for (const [field, value] of Object.entries(item)) {
        const relation = m.relations.get(field);
        if (relation === undefined) continue;
        this.#tracker.list(relation.model);
        if (relation.manyToMany) this.#tracker.list(junctionOf(m, relation));
        const child = this.#models.get(relation.model);
        if (child !== undefined) this.#orderings(child, value);
      }
    }
  }

  /**
   * The relations an `include` or `select` reads for `parents` (the rows returned), or, when the
   * parents are rows asked for by primary key, for those ids (found or not).
   */
  #relations(m: ModelInfo, selection: Row, parents: readonly Row[], asked: readonly KeyValues[] | undefined): void {
    for (const [field, value] of Object.entries(selection)) {
      if (value === undefined || value === false) continue;
      if (field === '_count') {
        const counted = isPlain(value) && isPlain(value.select) ? value.select : undefined;
        for (const relation of m.relations.values()) {
          if (!relation.list) continue;
          const arg = counted === undefined ? (value === true ? true : undefined) : counted[relation.name];
          if (arg === undefined || arg === false) continue;
          this.#relation(m, relation, isPlain(arg) ? arg : {}, asked ?? parents, undefined, false, false);
        }
        continue;
      }
      const relation = m.relations.get(field);
      if (relation === undefined) continue;
      const args = isPlain(value) ? value : {};
      const loaded: Row[] = [];
      for (const parent of parents) {
        const v = parent[field];
        for (const r of Array.isArray(v) ? v : [v]) if (isPlain(r)) loaded.push(r);
      }
      this.#relation(m, relation, args, asked ?? parents, loaded, false, false);
    }
  }

  /**
   * One relation read for some parents: `sources` are the parents' rows or ids, from which the
   * keys are taken, or none known (`unknown`: the relation's rows are tagged by their model's
   * list). `loaded` is the rows it loaded, `undefined` for a `_count` or a step of a fluent path
   * (`step`), whose rows are not returned.
   */
  #relation(m: ModelInfo, relation: RelationInfo, args: Row, sources: readonly Row[], loaded: Row[] | undefined, unknown: boolean, step: boolean): void {
    const child = this.#models.get(relation.model);
    if (child === undefined) return;
    // A `where` on the relation's rows: scalar conditions narrow them, relation conditions need lists.
    if (args.where !== undefined) this.#filterLists(child, args.where);
    this.#orderings(child, args.orderBy);
    if (relation.manyToMany) {
      const keys = unknown || m.id === undefined || !keyed(m, m.id) ? undefined : sources.map((p) => junctionKey(m, relation, p));
      if (keys !== undefined && keys.every((k): k is KeyValues => k !== undefined)) this.#tracker.keys(junctionOf(m, relation), keys);
      else this.#tracker.list(junctionOf(m, relation));
      this.#children(child, args, loaded, true, step);
    } else if (relation.fields.length > 0) {
      // The parent holds the key: which row is joined is the parent's business (its own tags).
      this.#children(child, args, loaded, true, step);
    } else {
      // The child holds the key: every child whose key names a parent.
      const back = relation.back === undefined ? undefined : child.relations.get(relation.back);
      const keys = unknown || back === undefined || !keyed(child, back.fields) ? undefined : keysOf(back, sources, m);
      if (keys === undefined) this.#tracker.list(child.name);
      else this.#tracker.keys(child.name, keys);
      this.#children(child, args, loaded, false, step);
    }
  }

  /**
   * The rows a relation loaded: their own row tags (when `byRow`), and the relations read below
   * them. `step`: a relation on a fluent path whose rows are not returned.
   */
  #children(child: ModelInfo, args: Row, loaded: Row[] | undefined, byRow: boolean, step: boolean): void {
    if (loaded === undefined) {
      // A step of a fluent path: which rows it reached is not known. A `_count` of a many-to-many
      // relation with a filter on the related rows' columns.
      if (byRow && (step || args.where !== undefined)) this.#tracker.list(child.name);
      return;
    }
    if (byRow) {
      const ids = idsOf(child, loaded);
      // Rows picked from the linked ones by their columns (a filter, a page of them): a linked row
      // not loaded may come in when it changes.
      const picked = PICKS.some((k) => args[k] !== undefined);
      if (ids === undefined || picked) this.#tracker.list(child.name);
      else this.#tracker.rows(child.name, ids);
    }
    const selection = isPlain(args.include) ? args.include : isPlain(args.select) ? args.select : undefined;
    if (selection !== undefined) this.#relations(child, selection, loaded, undefined);
  }
}

/** Arguments of a relation read that pick some of the related rows by their columns. */
const PICKS = ['where', 'take', 'skip', 'cursor', 'distinct'] as const;

/** The primary keys of rows as returned, or `undefined` when a row lacks one (a `select` without it). */
function idsOf(m: ModelInfo, rows: readonly Row[]): KeyValues[] | undefined {
  const id = m.id;
  if (id === undefined) return undefined;
  const ids = rows.map((r) => Object.fromEntries(id.map((f) => [f, r[f]])));
  return ids.some((k) => Object.values(k).some((v) => keyPart(v) === undefined)) ? undefined : ids;
}

/**
 * The keys of `back` (the relation on the child that holds the foreign key) that point at these
 * parents, from the fields the key references; `undefined` when a parent lacks one of them.
 */
function keysOf(back: RelationInfo, parents: readonly Row[], parent: ModelInfo): KeyValues[] | undefined {
  const references = back.references.length === back.fields.length ? back.references : parent.id;
  if (back.fields.length === 0 || references === undefined || references.length !== back.fields.length) return undefined;
  const keys: KeyValues[] = [];
  for (const p of parents) {
    const key: Record<string, unknown> = {};
    for (let i = 0; i < back.fields.length; i++) {
      const value = p[references[i]!];
      if (keyPart(value) === undefined) return undefined;
      key[back.fields[i]!] = value;
    }
    keys.push(key);
  }
  return keys;
}
