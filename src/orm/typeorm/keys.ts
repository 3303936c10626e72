/**
 * Key values as the database spells them, so that the tag a read puts on a page and the tag a
 * write invalidates name a row the same way. A write tags the rows as the database hands them
 * back; a read asks with whatever the app passed, and the database may match a different spelling
 * (`'01'` finds the integer 1, an upper-case uuid finds the lower-case one on PostgreSQL, `'Hello '`
 * finds `'hello'` under MySQL's default collations). A value asked for is only used for a tag
 * when its canonical form is proven for the column's type and the driver (`askedKey`); otherwise
 * the read tags the table's list, which every write of the table invalidates.
 *
 * The rules:
 * - a column with a transformer, a collation, an array, an enum, or a type not below: never;
 * - integer types: a safe integer (a number, a bigint, or a string of an optional sign and
 *   decimal digits, which PostgreSQL, MySQL/MariaDB and SQLite all read as that integer, leading
 *   zeros and `+` included; other drivers only the exact decimal text), as its decimal text; on
 *   PostgreSQL, whose driver hands `bigint` out as exact text, the whole 64-bit range;
 * - `uuid` on PostgreSQL and MariaDB (a native type that compares the value, not its spelling):
 *   the 36- or 32-character hex form, lower-case with hyphens;
 * - strings on PostgreSQL (`varchar`, `text`: deterministic comparison) and SQLite (text
 *   affinity, BINARY comparison): the string itself. Not `char` (PostgreSQL ignores its trailing
 *   spaces), not `citext`, and no string on MySQL/MariaDB (case- and trailing-space-insensitive
 *   collations by default) or another driver.
 *
 * Rows read back from the database are tagged by their values as returned, normalized the same
 * way on both sides by `returnedKey` (an integer as its decimal text, a native uuid lower-case).
 */
import type { EntityMetadata } from 'typeorm';
import { keyPart } from '../reads.js';

type Column = EntityMetadata['columns'][number];

type Family = 'postgres' | 'mysql' | 'sqlite' | 'other';

const FAMILIES: Readonly<Record<string, Family>> = {
  postgres: 'postgres',
  'aurora-postgres': 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  'aurora-mysql': 'mysql',
  sqlite: 'sqlite',
  'better-sqlite3': 'sqlite',
  sqljs: 'sqlite',
  capacitor: 'sqlite',
  cordova: 'sqlite',
  expo: 'sqlite',
  nativescript: 'sqlite',
  'react-native': 'sqlite',
};

const INTEGER = new Set([
  'int',
  'integer',
  'int2',
  'int4',
  'int8',
  'int64',
  'smallint',
  'mediumint',
  'bigint',
  'tinyint',
  'unsigned big int',
]);
const PG_TEXT = new Set(['character varying', 'varchar', 'text']);

const MAX_INT64 = 2n ** 63n - 1n;
const MIN_INT64 = -(2n ** 63n);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const UUID = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;

/** What a column's values compare as, per driver and type. */
type Kind = 'integer' | 'uuid' | 'string' | 'other';

interface ColumnInfo {
  readonly kind: Kind;
  readonly family: Family;
  /** Whether the column's values may be keyed at all (no transformer, collation, ...). */
  readonly plain: boolean;
}

const infos = new WeakMap<Column, ColumnInfo>();

function infoOf(column: Column): ColumnInfo {
  let info = infos.get(column);
  if (info !== undefined) return info;
  const driver = column.entityMetadata.dataSource.driver;
  const family = FAMILIES[driver.options.type] ?? 'other';
  const type = String(driver.normalizeType(column)).toLowerCase();
  let kind: Kind = 'other';
  if (INTEGER.has(type)) kind = 'integer';
  else if (type === 'uuid' && (family === 'postgres' || family === 'mysql')) kind = 'uuid';
  else if (family === 'postgres' && PG_TEXT.has(type)) kind = 'string';
  else if (family === 'sqlite' && /char|clob|text/.test(type) && !type.includes('int')) kind = 'string';
  // A foreign key column is compared as the column it references, with that column's transformer.
  const plain =
    column.transformer === undefined &&
    !column.collation &&
    !column.isArray &&
    column.enum === undefined &&
    (column.referencedColumn === undefined || column.referencedColumn === column || infoOf(column.referencedColumn).plain);
  info = { kind, family, plain };
  infos.set(column, info);
  return info;
}

/** The integer a value spells, as its decimal text, or `undefined`. */
function integerText(value: unknown, range: 'safe' | 'int64', spellings: 'decimal' | 'exact'): string | undefined {
  let n: bigint;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return undefined;
    n = BigInt(value);
  } else if (typeof value === 'bigint') n = value;
  else if (typeof value === 'string') {
    if (!/^[+-]?[0-9]+$/.test(value)) return undefined;
    n = BigInt(value);
    if (spellings === 'exact' && n.toString() !== value) return undefined;
  } else return undefined;
  if (range === 'safe' ? n > MAX_SAFE || n < -MAX_SAFE : n > MAX_INT64 || n < MIN_INT64) return undefined;
  return n.toString();
}

function uuidText(value: unknown): string | undefined {
  if (typeof value !== 'string' || !UUID.test(value)) return undefined;
  const hex = value.replaceAll('-', '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A value a read asks for, compared with `column`, as the database spells the rows it matches;
 * `undefined` when that cannot be told (then the read tags the table's list).
 */
export function askedKey(column: Column, value: unknown): string | undefined {
  const { kind, family, plain } = infoOf(column);
  if (!plain) return undefined;
  switch (kind) {
    case 'integer':
      return integerText(value, family === 'postgres' ? 'int64' : 'safe', family === 'other' ? 'exact' : 'decimal');
    case 'uuid':
      return uuidText(value);
    case 'string':
      return typeof value === 'string' ? value : undefined;
    default:
      return undefined;
  }
}

/**
 * A value of `column` the database returned (or a write is about to store), normalized as
 * `askedKey` spells it; `undefined` when it is no key, or an integer column holds something that
 * spells no integer (then a write invalidates everything read from the table). Other values are
 * kept as they are: reads compare them only with rows read back the same way.
 */
export function returnedKey(column: Column, value: unknown): unknown {
  if (keyPart(value) === undefined) return undefined;
  const { kind, plain } = infoOf(column);
  if (column.transformer !== undefined || !plain) return value;
  if (kind === 'integer') {
    // A number past the safe range is as lossy on both sides (a driver without exact bigints).
    if (typeof value === 'number' || typeof value === 'bigint') return typeof value === 'bigint' || Number.isInteger(value) ? BigInt(value).toString() : value;
    return typeof value === 'string' && /^[+-]?[0-9]+$/.test(value) ? BigInt(value).toString() : undefined;
  }
  if (kind === 'uuid') return uuidText(value) ?? value;
  return value;
}
