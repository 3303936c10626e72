/**
 * What the extension needs to know about the models: their scalar fields, their relations (to
 * which model, one or many, which field points back) and the fields that identify a row.
 *
 * Prisma 7 clients carry a trimmed runtime data model (field names, kinds, types and relation
 * names, but no primary keys and no list flags) and the schema text they were generated from.
 * The kinds come from the former; keys and lists are read from the latter.
 */

/** One field of the client's runtime data model. */
interface RuntimeField {
  readonly name: string;
  readonly kind: string;
  readonly type: string;
  readonly relationName?: string;
}

/** The client's runtime data model: `{ models: { Name: { fields: [...] } } }`. */
export interface RuntimeDataModel {
  readonly models: Readonly<Record<string, { readonly fields: readonly RuntimeField[] }>>;
}

export interface RelationInfo {
  readonly name: string;
  /** The related model's name. */
  readonly model: string;
  readonly list: boolean;
  /** The field on the related model that points back, when the schema has one. */
  readonly back: string | undefined;
  /** Whether the back field is a list: a related row may belong to several rows of this model. */
  readonly backList: boolean;
  /** Both sides are lists: an implicit many-to-many relation (rows of a join table). */
  readonly manyToMany: boolean;
  /** The foreign key's fields when this model holds it (`@relation(fields: [...])`), else empty. */
  readonly fields: readonly string[];
  /** The related model's fields the foreign key points at (`@relation(references: [...])`), in the order of `fields`. */
  readonly references: readonly string[];
  /**
   * `@relation(onDelete: ...)` on the side that holds the foreign key (this side, or the back
   * field's), as written: `Cascade`, `SetNull`, `Restrict`, `NoAction`, `SetDefault`, or
   * `undefined` when the schema does not say (Prisma then restricts a required relation and sets
   * an optional one to null).
   */
  readonly onDelete: string | undefined;
}

/**
 * How a scalar field's values can name rows in a tag: `int` (Int, BigInt: any spelling of the
 * integer is one value), `exact` (the database compares the value as it is spelled: a String on
 * PostgreSQL without a native type that compares otherwise, or on SQLite; a Boolean). A field
 * without a key type (Float, Decimal, DateTime, Bytes, Json, enums and Strings on MySQL/MariaDB,
 * whose default collations ignore case and trailing spaces) never names rows from a `where`: a
 * read by it is a list.
 */
export type KeyType = 'int' | 'exact';

export interface ModelInfo {
  readonly name: string;
  /** The client property: `iceCream` for `IceCream`. */
  readonly delegate: string;
  /** Scalar and enum fields: what a row is made of. */
  readonly scalars: readonly string[];
  readonly relations: ReadonlyMap<string, RelationInfo>;
  /** The primary key's fields, or the first unique field(s); `undefined` when none was found. */
  readonly id: readonly string[] | undefined;
  /** Every set of fields that identifies a row: the primary key and each unique constraint. */
  readonly uniques: readonly (readonly string[])[];
  /** The scalar fields whose values can name rows in a tag (see `KeyType`); the others are absent. */
  readonly keyTypes: ReadonlyMap<string, KeyType>;
}

interface ParsedField {
  readonly list: boolean;
  readonly id: boolean;
  readonly unique: boolean;
  /** `@relation(fields: [...])`: the foreign key this field's relation uses. */
  readonly fields: readonly string[];
  /** `@relation(references: [...])`: what the foreign key points at. */
  readonly references: readonly string[];
  /** `@relation(onDelete: X)`. */
  readonly onDelete: string | undefined;
  /** `@db.X`: the native type, when the schema names one. */
  readonly native: string | undefined;
}

interface ParsedModel {
  readonly fields: Map<string, ParsedField>;
  id: string[] | undefined;
  readonly uniques: string[][];
}

/** Drops a `//` comment, unless the slashes are inside a string (`@default("http://...")`). */
function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '/' && !quoted && line[i + 1] === '/') return line.slice(0, i);
  }
  return line;
}

/** The field names of a block attribute: `@@id([a, b])` or `@@unique(fields: [a, b], name: "x")`. */
function blockFields(args: string): string[] {
  const list = /\[([^\]]*)\]/.exec(args)?.[1] ?? '';
  return list
    .split(',')
    .map((f) => f.trim().replace(/\(.*$/, ''))
    .filter((f) => f !== '');
}

/** Reads the models (and views) of a Prisma schema: list fields, `@id`, `@unique`, `@@id`, `@@unique`. */
export function parseSchema(schema: string): Map<string, ParsedModel> {
  const models = new Map<string, ParsedModel>();
  let current: ParsedModel | undefined;
  let pending = '';
  for (const raw of schema.split(/\r?\n/)) {
    // Attributes may wrap over several lines: join until the parentheses balance.
    pending += (pending ? ' ' : '') + stripComment(raw).trim();
    const bare = pending.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    if ((bare.match(/\(/g) ?? []).length > (bare.match(/\)/g) ?? []).length) continue;
    const line = pending;
    pending = '';
    if (line === '') continue;
    if (current === undefined) {
      const start = /^(model|view)\s+(\w+)\s*\{$/.exec(line);
      if (start) {
        current = { fields: new Map(), id: undefined, uniques: [] };
        models.set(start[2]!, current);
      }
      continue;
    }
    if (line === '}') {
      current = undefined;
      continue;
    }
    if (line.startsWith('@@id')) {
      current.id = blockFields(line);
      continue;
    }
    if (line.startsWith('@@unique')) {
      current.uniques.push(blockFields(line));
      continue;
    }
    if (line.startsWith('@')) continue;
    const field = /^(\w+)\s+([\w.]+)(\[\])?(\?)?(.*)$/.exec(line);
    if (!field) continue;
    const attributes = field[5] ?? '';
    const foreignKey = /@relation\s*\([^)]*?\bfields\s*:\s*(\[[^\]]*\])/.exec(attributes)?.[1];
    const references = /@relation\s*\([^)]*?\breferences\s*:\s*(\[[^\]]*\])/.exec(attributes)?.[1];
    current.fields.set(field[1]!, {
      list: field[3] !== undefined,
      id: /(^|\s)@id\b/.test(attributes),
      unique: /(^|\s)@unique\b/.test(attributes),
      fields: foreignKey === undefined ? [] : blockFields(foreignKey),
      references: references === undefined ? [] : blockFields(references),
      onDelete: /@relation\s*\([^)]*?\bonDelete\s*:\s*(\w+)/.exec(attributes)?.[1],
      native: /@db\.(\w+)/.exec(attributes)?.[1],
    });
  }
  return models;
}

/** The key type of a scalar field of this Prisma type, native type and database (see `KeyType`). */
function keyTypeOf(kind: string, type: string, native: string | undefined, provider: string | undefined): KeyType | undefined {
  if (kind !== 'scalar') return undefined; // enums: MySQL compares them by collation
  if (type === 'Int' || type === 'BigInt') return 'int';
  if (type === 'Boolean') return provider === 'sqlite' || provider === 'postgresql' || provider === 'postgres' ? 'exact' : undefined;
  if (type !== 'String') return undefined;
  if (provider === 'sqlite') return 'exact';
  // PostgreSQL: text and varchar compare as spelled (with deterministic collations, the default);
  // citext ignores case, char(n) trailing spaces, uuid accepts several spellings.
  if (provider === 'postgresql' || provider === 'postgres' || provider === 'cockroachdb') {
    return native === undefined || native === 'Text' || native === 'VarChar' ? 'exact' : undefined;
  }
  return undefined;
}

/** The `provider` of the schema's datasource block. */
function providerOf(schema: string): string | undefined {
  return /datasource\s+\w+\s*\{[^}]*?\bprovider\s*=\s*"([^"]*)"/.exec(schema)?.[1];
}

/**
 * Combines the runtime data model (kinds, relation names) and the schema text (keys, lists).
 * `provider` is the database the client talks to (`sqlite`, `postgresql`, `mysql`, ...), when the
 * client says; else the schema's datasource decides.
 */
export function readDataModel(runtime: RuntimeDataModel, schema: string | undefined, provider?: string): Map<string, ModelInfo> {
  const parsed = schema === undefined ? new Map<string, ParsedModel>() : parseSchema(schema);
  const database = provider ?? (schema === undefined ? undefined : providerOf(schema));
  const out = new Map<string, ModelInfo>();
  for (const [name, model] of Object.entries(runtime.models)) {
    const p = parsed.get(name);
    const scalars: string[] = [];
    const relations = new Map<string, RelationInfo>();
    const keyTypes = new Map<string, KeyType>();
    for (const f of model.fields) {
      if (f.kind === 'object' && f.relationName !== undefined && runtime.models[f.type] !== undefined) {
        const other = runtime.models[f.type]!;
        const back = other.fields.find((o) => o.relationName === f.relationName && !(f.type === name && o.name === f.name));
        const list = p?.fields.get(f.name)?.list ?? false;
        const backList = back === undefined ? false : (parsed.get(f.type)?.fields.get(back.name)?.list ?? false);
        const fields = p?.fields.get(f.name)?.fields ?? [];
        const references = p?.fields.get(f.name)?.references ?? [];
        const onDelete = fields.length > 0 ? p?.fields.get(f.name)?.onDelete : back === undefined ? undefined : parsed.get(f.type)?.fields.get(back.name)?.onDelete;
        relations.set(f.name, { name: f.name, model: f.type, list, back: back?.name, backList, manyToMany: list && backList, fields, references, onDelete });
      } else if (f.kind !== 'object' || f.relationName === undefined) {
        scalars.push(f.name);
        const keyType = keyTypeOf(f.kind, f.type, p?.fields.get(f.name)?.native, database);
        if (keyType !== undefined) keyTypes.set(f.name, keyType);
      }
    }
    const uniques: string[][] = [];
    let id: string[] | undefined;
    if (p !== undefined) {
      const single = [...p.fields].filter(([, f]) => f.id).map(([n]) => n);
      id = p.id ?? (single.length > 0 ? single : undefined);
      if (id) uniques.push(id);
      for (const [n, f] of p.fields) if (f.unique) uniques.push([n]);
      uniques.push(...p.uniques);
      // A model without @id is identified by its first unique constraint (Prisma requires one).
      id ??= uniques[0];
    }
    const known = new Set(scalars);
    const valid = (fields: readonly string[]) => fields.length > 0 && fields.every((f) => known.has(f));
    out.set(name, {
      name,
      delegate: name.charAt(0).toLowerCase() + name.slice(1),
      scalars,
      relations,
      id: id && valid(id) ? id : undefined,
      uniques: uniques.filter(valid),
      keyTypes,
    });
  }
  return out;
}
