/**
 * The read-tracking model shared by every ORM integration (`trackReads: true`): which tags a read
 * puts on the page being rendered, and which tags a write invalidates. See docs/track-reads.md.
 *
 * Four kinds of tags, per table (the database's table name):
 * - `orm:row:<table>:<pk>`: the page read the row with this primary key (found or not).
 * - `orm:key:<table>:<column>=<value>`: the page read every row whose foreign key has this value
 *   (a post's comments, a post's links in a join table).
 * - `orm:list:<table>`: the page ran a query whose answer may change when any row of the table
 *   changes (a list, a filter, a count, an aggregate, a join on other columns).
 * - `orm:table:<table>`: the page read something from the table, whatever it was. Every read adds it.
 *
 * A write of known rows invalidates their row tags, the key tags of their foreign keys (the
 * values before and after the write) and the table's list tag; an insert the same for the new
 * row. A join-table row (a many-to-many link) is a row whose columns are both foreign keys: its
 * write invalidates the key tags of both sides' links. A write whose rows are unknown invalidates
 * the table tag: everything read from the table.
 * Each `row` and `key` tag is covered by the table's `list` tag, which is what a page gets instead
 * once it carries `maxTagsPerPage` tags (see `ReadTracker`).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Dumper, Fill, MissPlan } from '../core/dumper.js';

/** Column name → value: a primary key, or the foreign key a set of rows shares. */
export type KeyValues = Readonly<Record<string, unknown>>;

/** Tags longer than this are shortened to a hash of their full text. */
export const MAX_TAG_LENGTH = 200;
/** The default of the integrations' option `maxTagsPerPage`. */
export const DEFAULT_MAX_TAGS_PER_PAGE = 500;

const PREFIX = 'orm:';

/**
 * One value of a key, as text that is the same for every spelling of it the drivers hand out
 * (`42`, `42n` and `'42'`: PostgreSQL returns bigints as strings), or `undefined` for a value that
 * is no key (null, an object the model cannot name).
 */
export function keyPart(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? String(value) : undefined;
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
      if (value instanceof Uint8Array) return `0x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
      // Decimal.js and similar: a number kept as an object, printed exactly.
      if (value !== null && typeof (value as { toFixed?: unknown }).toFixed === 'function') return String(value);
      return undefined;
    default:
      return undefined;
  }
}

/** `a=1&b=x` with the columns sorted, each part percent-encoded, or `undefined` when a value is no key. */
function keyText(key: KeyValues): string | undefined {
  const names = Object.keys(key).sort();
  if (names.length === 0) return undefined;
  let out = '';
  for (const name of names) {
    const part = keyPart(key[name]);
    if (part === undefined) return undefined;
    out += `${out === '' ? '' : '&'}${encodeURIComponent(name)}=${encodeURIComponent(part)}`;
  }
  return out;
}

/**
 * A tag from its kind and parts. The parts are percent-encoded, so no `:` or `#` inside them can
 * make two different tags spell the same; a tag over `MAX_TAG_LENGTH` becomes its kind and a
 * hash, which starts with `#`, which no encoded part does.
 */
function make(kind: string, table: string, rest?: string): string {
  const tag = rest === undefined ? `${PREFIX}${kind}:${encodeURIComponent(table)}` : `${PREFIX}${kind}:${encodeURIComponent(table)}:${rest}`;
  if (tag.length <= MAX_TAG_LENGTH) return tag;
  return `${PREFIX}${kind}:#${createHash('sha256').update(tag).digest('base64url')}`;
}

/** The tag of everything read from a table: invalidated by writes whose rows are unknown. */
export function tableTag(table: string): string {
  return make('table', table);
}

/** The tag of queries whose answer depends on any row of the table. */
export function listTag(table: string): string {
  return make('list', table);
}

/** The tag of one row by its primary key (columns → values), or `undefined` when a value is no key. */
export function rowTag(table: string, id: KeyValues): string | undefined {
  const text = keyText(id);
  return text === undefined ? undefined : make('row', table, text);
}

/** The tag of the rows whose foreign key (columns → values) is this, or `undefined` when a value is no key. */
export function keyTag(table: string, key: KeyValues): string | undefined {
  const text = keyText(key);
  return text === undefined ? undefined : make('key', table, text);
}

// ---------------------------------------------------------------- writes

/** A row a write changed, as it was before or is after: its primary key and its foreign keys. */
export interface WrittenRow {
  readonly id: KeyValues | undefined;
  /** The row's foreign keys (one entry per relation it holds); a null foreign key is left out. */
  readonly keys: readonly KeyValues[];
}

/**
 * What a write of known rows of one table invalidates (an insert, update, delete or restore: the
 * rows before and after it): the table's list tag, each row's tag and its foreign keys' tags. A row
 * whose key cannot be named makes it the table tag: everything read from the table.
 */
export function writeTags(table: string, rows: Iterable<WrittenRow>): string[] {
  const tags = new Set<string>([listTag(table)]);
  for (const row of rows) {
    const id = row.id && rowTag(table, row.id);
    if (id === undefined) return unknownWriteTags(table);
    tags.add(id);
    for (const key of row.keys) {
      const tag = keyTag(table, key);
      if (tag !== undefined) tags.add(tag);
    }
  }
  return [...tags];
}

/** What a write whose rows are unknown (bulk by criteria past the bound, raw) invalidates. */
export function unknownWriteTags(table: string): string[] {
  return [tableTag(table)];
}

/** One side of a many-to-many link: the join table's foreign key to that side's row, its columns → values. */
export interface LinkSide {
  readonly key: KeyValues;
}

/**
 * What adding or removing rows of a join table (each given by its two sides) invalidates: the
 * join table's list, its key tags for both sides, which every read of a row's links puts on the
 * page (a post's tags, a tag's posts), and the join row's own row tag (its two sides' columns
 * together), which a read of that one link by its key puts there. The linked rows themselves did
 * not change, so neither do their row tags: a page that shows a tag's name next to some other
 * post stays.
 */
export function linkTags(junction: string, links: Iterable<readonly LinkSide[]>): string[] {
  const tags = new Set<string>([listTag(junction)]);
  for (const sides of links) {
    const id: Record<string, unknown> = {};
    for (const side of sides) {
      const key = keyTag(junction, side.key);
      if (key === undefined) return unknownWriteTags(junction);
      tags.add(key);
      Object.assign(id, side.key);
    }
    const row = rowTag(junction, id);
    if (row !== undefined) tags.add(row);
  }
  return [...tags];
}

// ---------------------------------------------------------------- reads

/** What one render has read, for the bound on its tags. */
interface RenderReads {
  /** Tags this module added to the page. */
  readonly tags: Set<string>;
  /** Tables whose row and key tags were replaced by their list tag. */
  readonly coarse: Set<string>;
}

/**
 * The renders' reads and the dumpers whose fills open a `RenderReads` context, one for every copy
 * of this module in the process (the ES module and the CommonJS build of page-dumper loaded
 * together): integrations from both copies on one dumper wrap its fills once and count one bound.
 */
const { reads, wrapped } = ((globalThis as Record<symbol, unknown>)[Symbol.for('page-dumper.reads@0')] ??= {
  reads: new AsyncLocalStorage<RenderReads>(),
  wrapped: new WeakSet<Dumper>(),
}) as { readonly reads: AsyncLocalStorage<RenderReads>; readonly wrapped: WeakSet<Dumper> };

/**
 * Wraps the dumper's `beginFill()` so that each fill's `run()` also opens a context of this
 * module: the bound on tags per page needs to know which render a read belongs to, and the core
 * keeps its render context to itself. Apps whose adapter took `beginFill` before this ran keep
 * working; their pages are tagged without the bound.
 */
function wrapFills(dumper: Dumper): void {
  if (wrapped.has(dumper)) return;
  wrapped.add(dumper);
  const begin = dumper.beginFill;
  const open = (plan: MissPlan): MissPlan => {
    if (plan.kind === 'fill') {
      const fill: Fill = plan.fill;
      const run = fill.run.bind(fill);
      fill.run = function runWithReads<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
        return reads.run({ tags: new Set(), coarse: new Set() }, () => run(fn, ...args));
      };
    }
    return plan;
  };
  dumper.beginFill = function beginFill(this: Dumper, ...args: Parameters<Dumper['beginFill']>) {
    const plan = begin.apply(this, args);
    return plan instanceof Promise ? plan.then(open) : open(plan);
  };
}

/**
 * Puts the tags of reads on the page being rendered, through `dumper.tag()`. Outside a render it
 * costs a lookup and does nothing.
 */
export class ReadTracker {
  readonly dumper: Dumper;
  /** The most tags this module puts on one page; past it, a table's reads tag its list. */
  readonly maxTagsPerPage: number;
  readonly #integration: string;

  constructor(dumper: Dumper, options: { readonly maxTagsPerPage: number; readonly integration: string }) {
    this.dumper = dumper;
    this.maxTagsPerPage = options.maxTagsPerPage;
    this.#integration = options.integration;
    wrapFills(dumper);
    // Tags must reach the render that read the rows, so render contexts are tracked from now on
    // (as `trackRenders: true` does): a tag() outside any render switches that on.
    dumper.tag(tableTag('page-dumper'));
  }

  /** Rows read by primary key, found or not. */
  rows(table: string, ids: Iterable<KeyValues>): void {
    const tags: string[] = [];
    for (const id of ids) {
      const tag = rowTag(table, id);
      if (tag === undefined) return this.list(table);
      tags.push(tag);
    }
    this.#add(table, tags);
  }

  /** Every row whose foreign key has one of these values. */
  keys(table: string, keys: Iterable<KeyValues>): void {
    const tags: string[] = [];
    for (const key of keys) {
      const tag = keyTag(table, key);
      if (tag === undefined) return this.list(table);
      tags.push(tag);
    }
    this.#add(table, tags);
  }

  /** A query whose answer may change with any row of the table. */
  list(table: string): void {
    const list = listTag(table);
    const all = tableTag(table);
    const state = reads.getStore();
    if (state === undefined) return this.dumper.tag(list, all);
    if (state.tags.has(list) && state.tags.has(all)) return;
    state.tags.add(list);
    state.tags.add(all);
    this.dumper.tag(list, all);
  }

  #add(table: string, tags: readonly string[]): void {
    const all = tableTag(table);
    const state = reads.getStore();
    if (state === undefined) {
      this.dumper.tag(all, ...tags);
      return;
    }
    if (state.coarse.has(table)) return;
    let fresh = state.tags.has(all) ? 0 : 1;
    for (const t of tags) if (!state.tags.has(t)) fresh++;
    if (fresh === 0) return;
    if (state.tags.size + fresh > this.maxTagsPerPage) {
      state.coarse.add(table);
      this.dumper.log.warn(
        `${this.#integration}: a page read more than maxTagsPerPage (${this.maxTagsPerPage}) rows; it is tagged with the whole table ${table} instead`,
        { table },
      );
      return this.list(table);
    }
    state.tags.add(all);
    for (const t of tags) state.tags.add(t);
    this.dumper.tag(all, ...tags);
  }
}

/** Validates the options `trackReads` and `maxTagsPerPage` of an integration; a `TypeError` names the option. */
export function readOptions(fn: string, trackReads: unknown, maxTagsPerPage: unknown): { trackReads: boolean; maxTagsPerPage: number } {
  if (trackReads !== undefined && typeof trackReads !== 'boolean') {
    throw new TypeError(`page-dumper: ${fn}() option "trackReads" must be a boolean, got ${typeof trackReads}`);
  }
  if (maxTagsPerPage !== undefined && !(Number.isSafeInteger(maxTagsPerPage) && (maxTagsPerPage as number) >= 1)) {
    throw new TypeError(`page-dumper: ${fn}() option "maxTagsPerPage" must be a positive integer, got ${String(maxTagsPerPage)}`);
  }
  if (maxTagsPerPage !== undefined && trackReads !== true) {
    throw new TypeError(`page-dumper: ${fn}() option "maxTagsPerPage" needs trackReads: true`);
  }
  return { trackReads: trackReads === true, maxTagsPerPage: (maxTagsPerPage as number | undefined) ?? DEFAULT_MAX_TAGS_PER_PAGE };
}
