/**
 * Decoded entries a process keeps beside a shared store (SqliteStore, RedisStore), each with the
 * identity of the stored entry it was read from. A copy is never served on trust: the store first
 * asks the shared store which entry the key holds now, and serves the copy only if it is that one.
 * What the copy saves is reading, sending and decoding the body.
 *
 * Bounded by bytes; the least recently used copy goes first.
 */
import type { ContentCoding, EncodedBody, StoredEntry } from '../core/store.js';
import { compact, entryBytes } from './memory/index.js';

/** What a store keeps per key: the identity of the stored entry, and the entry. */
export interface LocalCopy<Id> {
  readonly id: Id;
  readonly entry: StoredEntry;
}

/**
 * Bytes counted per copy on top of its entry (`entryBytes`): its place in the Map and the copy
 * object (120, measured on Node 20 x64 by `bench/memory-flood.mjs`, rounded up), and the record of
 * its size and its place in the recency list (32 more).
 */
const COPY_OVERHEAD = 152;

/** One copy in the recency list. */
interface Held<C> {
  readonly key: string;
  readonly copy: C;
  readonly size: number;
  /** Toward the least recently used. */
  older: Held<C> | undefined;
  /** Toward the most recently used. */
  newer: Held<C> | undefined;
}

export class LocalCopies<C extends LocalCopy<unknown>> {
  /**
   * key → copy. The recency order is a list of its own, not the Map's insertion order: taking
   * the oldest key of a Map that keeps losing its first entries walks over the holes they leave,
   * which costs microseconds per eviction at thousands of keys.
   */
  readonly #copies = new Map<string, Held<C>>();
  #oldest: Held<C> | undefined;
  #newest: Held<C> | undefined;
  #used = 0;

  constructor(readonly maxBytes: number) {}

  /** The copy kept for `key`, made the most recently used. */
  get(key: string): C | undefined {
    const held = this.#copies.get(key);
    if (held === undefined) return undefined;
    if (held !== this.#newest) {
      this.#unlink(held);
      this.#append(held);
    }
    return held.copy;
  }

  /** The copy kept for `key`, its recency unchanged. */
  peek(key: string): C | undefined {
    return this.#copies.get(key)?.copy;
  }

  /** Bytes accounted to the copies held. */
  get bytes(): number {
    return this.#used;
  }

  /**
   * Keeps `copy` for `key` (replacing any other), unless it alone is larger than the bound.
   * `extraBytes`: what the copy holds besides its entry (a store's own fields), counted with it. What is
   * kept is a compact copy of the entry (a body of its own, arrays of their exact length), as in
   * the MemoryStore; the copy kept is returned (answer its entry rather than the one given, so that
   * the one given can be collected), or `undefined` when nothing was kept.
   */
  keep(key: string, copy: C, extraBytes = 0): C | undefined {
    if (this.maxBytes === 0) return undefined;
    this.forget(key);
    const size = COPY_OVERHEAD + entryBytes(key, copy.entry) + extraBytes;
    if (size > this.maxBytes) return undefined;
    const kept = { ...copy, entry: compact(copy.entry) };
    const held: Held<C> = { key, copy: kept, size, older: undefined, newer: undefined };
    this.#copies.set(key, held);
    this.#append(held);
    this.#used += size;
    while (this.#used > this.maxBytes) this.forget(this.#oldest!.key);
    return kept;
  }

  forget(key: string): void {
    const held = this.#copies.get(key);
    if (held === undefined) return;
    this.#copies.delete(key);
    this.#unlink(held);
    this.#used -= held.size;
  }

  clear(): void {
    this.#copies.clear();
    this.#oldest = this.#newest = undefined;
    this.#used = 0;
  }

  #append(held: Held<C>): void {
    held.older = this.#newest;
    held.newer = undefined;
    if (this.#newest === undefined) this.#oldest = held;
    else this.#newest.newer = held;
    this.#newest = held;
  }

  #unlink(held: Held<C>): void {
    if (held.older === undefined) this.#oldest = held.newer;
    else held.older.newer = held.newer;
    if (held.newer === undefined) this.#newest = held.older;
    else held.newer.older = held.older;
    held.older = held.newer = undefined;
  }
}

// The encoded bodies of an entry, as the shared stores keep them next to the entry (a SQLite
// column, a Redis hash field): one buffer, a 4-byte length, a JSON head `[[coding, byteLength],
// ...]` in the entry's order, then the bodies one after the other.

/**
 * `encodings` as one buffer, or `undefined` when there are none (absent or empty).
 * @internal
 */
export function encodeEncodings(encodings: readonly EncodedBody[] | undefined): Buffer | undefined {
  if (encodings === undefined || encodings.length === 0) return undefined;
  const head = Buffer.from(JSON.stringify(encodings.map((e) => [e.coding, e.body.byteLength])));
  let length = 4 + head.length;
  for (const e of encodings) length += e.body.byteLength;
  const out = Buffer.allocUnsafe(length);
  out.writeUInt32BE(head.length, 0);
  head.copy(out, 4);
  let at = 4 + head.length;
  for (const e of encodings) {
    out.set(e.body, at);
    at += e.body.byteLength;
  }
  return out;
}

/**
 * The encoded bodies `encodeEncodings` wrote, each a view into `buf` (a store that keeps them
 * copies them, see `compact`). `null` or an empty buffer: none.
 * @internal
 */
export function decodeEncodings(buf: Buffer | null | undefined): EncodedBody[] | undefined {
  if (buf == null || buf.length === 0) return undefined;
  const n = buf.readUInt32BE(0);
  const head = JSON.parse(buf.toString('utf8', 4, 4 + n)) as Array<[ContentCoding, number]>;
  let at = 4 + n;
  const encodings = head.map(([coding, length]): EncodedBody => {
    const body = buf.subarray(at, at + length);
    at += length;
    return { coding, body };
  });
  if (at !== buf.length) throw new Error(`page-dumper: stored encodings are damaged (${buf.length} bytes, the head accounts for ${at})`);
  return encodings;
}

/**
 * The codings and sizes named by the head of encoded bodies (see `encodeEncodings`).
 * @internal
 */
export function encodingSizes(head: Buffer | null): Array<{ coding: ContentCoding; bytes: number }> {
  if (head === null || head.length < 4) return [];
  const n = head.readUInt32BE(0);
  const list = JSON.parse(head.toString('utf8', 4, 4 + n)) as Array<[ContentCoding, number]>;
  return list.map(([coding, bytes]) => ({ coding, bytes }));
}
