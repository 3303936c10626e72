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
 * Bytes counted per copy on top of its entry (`entryBytes`): its place in the Map, the record of
 * its size and the copy object. Measured on Node 20 (x64) by `bench/memory-flood.mjs`, rounded up.
 */
const COPY_OVERHEAD = 120;

export class LocalCopies<C extends LocalCopy<unknown>> {
  /** key → copy and its size; the Map's order is the recency order (oldest first). */
  readonly #copies = new Map<string, { copy: C; size: number }>();
  #used = 0;

  constructor(readonly maxBytes: number) {}

  /** The copy kept for `key`, made the most recently used. */
  get(key: string): C | undefined {
    const kept = this.#copies.get(key);
    if (kept === undefined) return undefined;
    if (this.#copies.size > 1) {
      this.#copies.delete(key);
      this.#copies.set(key, kept);
    }
    return kept.copy;
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
    this.#copies.set(key, { copy: kept, size });
    this.#used += size;
    while (this.#used > this.maxBytes) this.forget(this.#copies.keys().next().value!);
    return kept;
  }

  forget(key: string): void {
    const kept = this.#copies.get(key);
    if (kept === undefined) return;
    this.#copies.delete(key);
    this.#used -= kept.size;
  }

  clear(): void {
    this.#copies.clear();
    this.#used = 0;
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
