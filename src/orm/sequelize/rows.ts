/**
 * What the Sequelize integration reads off models and rows: primary and unique keys, paranoid
 * columns, the junction models of belongsToMany associations, and copies of rows as they were.
 * Sequelize 6 keeps most of this on underscored properties; they are read here, in one place.
 */
import type { Model, ModelStatic, Sequelize, Transaction } from 'sequelize';

/** A model class as page-dumper reads it (Sequelize 6's own fields, some undocumented). */
export interface ModelInfo {
  readonly name: string;
  readonly tableName: string;
  readonly sequelize: Sequelize;
  readonly primaryKeyAttributes: readonly string[];
  readonly rawAttributes: Readonly<Record<string, { readonly field?: string; readonly defaultValue?: unknown }>>;
  readonly fieldRawAttributesMap?: Readonly<Record<string, { readonly fieldName?: string }>>;
  readonly uniqueKeys?: Readonly<Record<string, { readonly fields?: readonly string[] }>>;
  readonly _indexes?: ReadonlyArray<{ readonly unique?: boolean; readonly where?: unknown; readonly fields?: ReadonlyArray<string | { readonly name?: string; readonly attribute?: string }> }>;
  readonly _timestampAttributes?: { readonly deletedAt?: string; readonly updatedAt?: string };
  readonly associations?: Readonly<Record<string, Association>>;
  unscoped(): ModelInfo;
  findAll(options: object): Promise<Model[]>;
}

/** The fields of a belongsToMany association that lead from a junction row to the rows it links. */
interface Association {
  readonly associationType?: string;
  readonly throughModel?: unknown;
  readonly source?: ModelInfo;
  readonly target?: ModelInfo;
  readonly sourceKey?: string;
  readonly targetKey?: string;
  readonly foreignKey?: string;
  readonly otherKey?: string;
}

/** A row as page-dumper reads it. */
export interface RowInfo {
  dataValues: Record<string, unknown>;
  _previousDataValues: Record<string, unknown>;
  _changed?: Set<string>;
  get(key: string, options?: { raw?: boolean }): unknown;
}

/** A transaction as page-dumper reads it: Sequelize 6 sets `parent` on a savepoint and `finished` when it ends. */
export interface TransactionInfo {
  readonly parent?: Transaction | undefined;
  readonly finished?: string | undefined;
}

/** The Sequelize operators, from the app's own copy of Sequelize (they are `Symbol.for()` names). */
export interface Ops {
  readonly or: symbol;
  readonly and: symbol;
  readonly ne: symbol;
  readonly in: symbol;
}

export function info(model: ModelStatic<Model> | ModelInfo): ModelInfo {
  return model as unknown as ModelInfo;
}

export function row(instance: Model): RowInfo {
  return instance as unknown as RowInfo;
}

export function rootOf(transaction: Transaction): Transaction {
  let t = transaction;
  while ((t as TransactionInfo).parent) t = (t as TransactionInfo).parent!;
  return t;
}

/** One side of a junction row: the junction's column (`foreignKey`) holds the `key` of a row of `model`. */
export interface Side {
  readonly model: ModelInfo;
  readonly foreignKey: string;
  readonly key: string;
}

/** The rows a junction (through) model links, found from every belongsToMany association through it. */
export function sidesOf(model: ModelInfo): Side[] {
  const sides = new Map<string, Side>();
  for (const m of Object.values(model.sequelize.models) as unknown as ModelInfo[]) {
    for (const a of Object.values(m.associations ?? {})) {
      if (a.associationType !== 'BelongsToMany' || a.throughModel !== model) continue;
      for (const side of [
        { model: a.source, foreignKey: a.foreignKey, key: a.sourceKey },
        { model: a.target, foreignKey: a.otherKey, key: a.targetKey },
      ]) {
        if (side.model === undefined || !side.foreignKey || !side.key) continue;
        sides.set(`${side.model.name}|${side.foreignKey}`, side as Side);
      }
    }
  }
  return [...sides.values()];
}

/** The attribute that a field name (or an attribute name) stands for. */
function attributeOf(model: ModelInfo, name: string): string | undefined {
  if (Object.hasOwn(model.rawAttributes, name)) return name;
  return model.fieldRawAttributesMap?.[name]?.fieldName;
}

/**
 * The keys a row may collide on in an upsert, as attribute names: the primary key, every unique
 * attribute or group, every unique index without a WHERE. MySQL's ON DUPLICATE KEY UPDATE fires on
 * any of them; PostgreSQL's and SQLite's ON CONFLICT on one of them.
 */
export function keyGroups(model: ModelInfo): string[][] {
  const groups: string[][] = [];
  const add = (names: ReadonlyArray<string | { readonly name?: string; readonly attribute?: string }> | undefined) => {
    const attrs = (names ?? []).map((n) => attributeOf(model, typeof n === 'string' ? n : (n.attribute ?? n.name ?? '')));
    if (attrs.length > 0 && attrs.every((a): a is string => a !== undefined)) groups.push(attrs);
  };
  add(model.primaryKeyAttributes);
  for (const u of Object.values(model.uniqueKeys ?? {})) add(u.fields);
  for (const i of model._indexes ?? []) if (i.unique && i.where === undefined) add(i.fields);
  return groups;
}

function isKeyValue(value: unknown): boolean {
  return value != null && (typeof value !== 'object' || value instanceof Date || Buffer.isBuffer(value));
}

/** The keys of `instance` that are filled in, as conditions (`[{ id: 1 }, { slug: 'a' }]`). */
function keysOf(groups: readonly string[][], instance: Model): object[] {
  const out: object[] = [];
  for (const group of groups) {
    const values = group.map((a) => row(instance).get(a, { raw: true }));
    if (values.every(isKeyValue)) out.push(Object.fromEntries(group.map((a, i) => [a, values[i]])));
  }
  return out;
}

/** A condition finding the existing rows that `rows` may collide with, or `undefined` when no key is filled in. */
export function collisions(model: ModelInfo, rows: readonly Model[], op: Ops): object | undefined {
  const groups = keyGroups(model);
  const any = rows.flatMap((r) => keysOf(groups, r));
  return any.length === 0 ? undefined : { [op.or]: any };
}

/** The rows among `rows` that fill in no key: they cannot collide, and are plain inserts. */
export function keyless(model: ModelInfo, rows: readonly Model[]): Model[] {
  const groups = keyGroups(model);
  return rows.filter((r) => keysOf(groups, r).length === 0);
}

/**
 * Conditions finding `rows` again by primary key, in chunks of `size`, or `undefined` for a model
 * without one (or a key set to something else than a value). `previous`: by the key they had
 * before the write (an instance's save may change it). `set`: the values a write by where sets,
 * which may change the key (a junction row's primary key is its two foreign keys).
 */
export function byKey(model: ModelInfo, rows: readonly Model[], op: Ops, size: number, { previous = false, set }: { previous?: boolean; set?: object } = {}): object[] | undefined {
  const pk = model.primaryKeyAttributes;
  if (pk.length === 0) return undefined;
  const value = (r: Model, a: string) => {
    if (set !== undefined && Object.hasOwn(set, a)) return (set as Record<string, unknown>)[a];
    const v = previous ? row(r)._previousDataValues[a] : undefined;
    return v ?? row(r).get(a, { raw: true });
  };
  const out: object[] = [];
  for (let i = 0; i < rows.length; i += size) {
    const chunk = rows.slice(i, i + size);
    if (pk.length === 1) {
      const ids = chunk.map((r) => value(r, pk[0]!));
      if (!ids.every(isKeyValue)) return undefined;
      out.push({ [pk[0]!]: { [op.in]: ids } });
    } else {
      const ids = chunk.map((r) => Object.fromEntries(pk.map((a) => [a, value(r, a)])));
      if (!ids.every((id) => Object.values(id).every(isKeyValue))) return undefined;
      out.push({ [op.or]: ids });
    }
  }
  return out;
}

/** The condition Sequelize itself adds for "soft-deleted" (the deletedAt column is not its default). */
export function softDeleted(model: ModelInfo, op: Ops): object | undefined {
  const attr = model._timestampAttributes?.deletedAt;
  if (attr === undefined) return undefined;
  const definition = model.rawAttributes[attr];
  const alive = definition !== undefined && Object.hasOwn(definition, 'defaultValue') ? definition.defaultValue : null;
  return { [attr]: { [op.ne]: alive } };
}

export function isParanoid(model: ModelInfo): boolean {
  return model._timestampAttributes?.deletedAt !== undefined;
}

/**
 * A copy of an instance holding its previous values (what it was loaded with, or last saved
 * with): the row as it was, for `dependentPaths()`. Included associations come along.
 */
export function asBefore(instance: Model): Model {
  const r = row(instance);
  const copy = Object.assign(Object.create(Object.getPrototypeOf(instance) as object) as RowInfo, r);
  copy.dataValues = { ...r.dataValues, ...r._previousDataValues };
  copy._previousDataValues = { ...copy.dataValues };
  copy._changed = new Set();
  return copy as unknown as Model;
}

/** Whether a stored value and an instance's value are the same. */
function same(stored: unknown, mine: unknown): boolean {
  const a = stored;
  const b = mine;
  if (Object.is(a, b)) return true;
  if (a instanceof Date && b instanceof Date) {
    // A DATETIME column without fractional seconds (MySQL, MariaDB) keeps the whole seconds of
    // the instance's timestamp.
    return a.getTime() === b.getTime() || (a.getTime() % 1000 === 0 && a.getTime() === Math.floor(b.getTime() / 1000) * 1000);
  }
  if (a === null || b === null || a === undefined || b === undefined) return false;
  if (typeof a === 'object' && typeof b === 'object') return JSON.stringify(a) === JSON.stringify(b);
  if (typeof a !== 'object' && typeof b !== 'object') return String(a) === String(b);
  return false;
}

/**
 * Whether an instance held other values than the stored row in the columns a save left alone
 * (someone else changed the row since it was loaded): the row after the save is then neither
 * the stored row nor the instance, and is read again. Unsure means yes.
 */
export function differs(stored: Model, instance: Model, written: ReadonlySet<string>): boolean {
  const mine = row(instance).dataValues;
  for (const [attr, value] of Object.entries(row(stored).dataValues)) {
    if (written.has(attr) || !Object.hasOwn(mine, attr)) continue;
    if (!same(value, mine[attr])) return true;
  }
  return false;
}
