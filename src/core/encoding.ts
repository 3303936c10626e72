/**
 * Content codings (RFC 9110 §8.4): which stored bodies are compressed and how, the compressor
 * that makes their encodings off the request path, decoding what an app compressed itself, and
 * the negotiation of `Accept-Encoding` (§12.5.3) with what a hit sends for each representation.
 */
import zlib from 'node:zlib';
import { flatGet, notModifiedHeaders } from './http.js';
import type { ContentCoding, EncodedBody, StoredEntry } from './store.js';

/** Media types compressed by default: text, and the structured text formats served as `application/*`. */
export const DEFAULT_COMPRESSIBLE_TYPES: readonly string[] = Object.freeze([
  'text/*',
  'application/json',
  'application/*+json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/*+xml',
  'application/xhtml+xml',
  'application/rss+xml',
  'application/x-ndjson',
  'application/graphql-response+json',
  'application/wasm',
  'image/svg+xml',
  'image/x-icon',
  'image/bmp',
  'font/ttf',
  'font/otf',
]);

/** Whether the running Node's zlib has Zstandard (Node 22.15 and later, 23.8 and later). */
export const ZSTD_AVAILABLE = typeof (zlib as { zstdCompress?: unknown }).zstdCompress === 'function';

/** What the `compress` option may say. */
export interface CompressOptions {
  /**
   * Brotli quality, 0–11, or `false` for no brotli variant. Quality 9 with a 64 KiB window
   * compresses a 15 KB page in about 0.25 ms of thread-pool time; 10 saves 5 % more for about
   * 20 times that, 11 about 9 % for 55 times (`node bench/compress-levels.mjs`).
   * @default 9
   */
  br?: number | false;
  /**
   * gzip level, 1–9, or `false`. Level 6 is zlib's default; 9 saves almost nothing on HTML.
   * @default 6
   */
  gzip?: number | false;
  /**
   * Zstandard level, 1–19, or `false`. Made only where the running Node's `node:zlib` has
   * Zstandard (22.15 and later); elsewhere this option is ignored. (Levels 20–22 use windows
   * larger than the 8 MB a `zstd` content coding may use, RFC 9659 §3.)
   * @default 10
   */
  zstd?: number | false;
  /**
   * Media types (the `Content-Type` without parameters) whose bodies are compressed. A `*`
   * matches any run of characters (`text/*`, `application/*+json`). Replaces the default list;
   * to add to it, spread `DEFAULT_COMPRESSIBLE_TYPES`.
   * @default DEFAULT_COMPRESSIBLE_TYPES (text/*, JSON, JavaScript, XML, SVG, ...)
   */
  types?: ReadonlyArray<string | RegExp>;
  /**
   * Bodies shorter than this many bytes are not compressed: below about a kilobyte the saving is
   * smaller than a packet, and the headers a variant adds eat into it.
   * @default 1024
   */
  minBytes?: number;
}

/** The codings made, in the order they are made. */
interface Coder {
  readonly coding: ContentCoding;
  readonly level: number;
}

/** The compression settings of a dumper, validated. */
export interface CompressPolicy {
  readonly coders: readonly Coder[];
  readonly types: (mediaType: string) => boolean;
  readonly minBytes: number;
}

function typeMatcher(types: ReadonlyArray<string | RegExp>): (mediaType: string) => boolean {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const t of types) {
    if (t instanceof RegExp) patterns.push(t);
    else if (t.includes('*')) {
      const source = t.toLowerCase().split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*');
      patterns.push(new RegExp(`^${source}$`));
    } else exact.add(t.toLowerCase());
  }
  return (mediaType) => {
    if (exact.has(mediaType)) return true;
    for (const p of patterns) {
      p.lastIndex = 0;
      if (p.test(mediaType)) return true;
    }
    return false;
  };
}

/** The policy of the `compress` option, or `undefined` when nothing is compressed. */
export function compressPolicy(options: CompressOptions | boolean | undefined): CompressPolicy | undefined {
  if (options === false) return undefined;
  const o = options === true || options === undefined ? {} : options;
  const coders: Coder[] = [];
  const br = o.br ?? 9;
  const gzip = o.gzip ?? 6;
  const zstd = o.zstd ?? 10;
  if (br !== false) coders.push({ coding: 'br', level: br });
  if (zstd !== false && ZSTD_AVAILABLE) coders.push({ coding: 'zstd', level: zstd });
  if (gzip !== false) coders.push({ coding: 'gzip', level: gzip });
  if (coders.length === 0) return undefined;
  return { coders, types: typeMatcher(o.types ?? DEFAULT_COMPRESSIBLE_TYPES), minBytes: o.minBytes ?? 1024 };
}

/** Validates the `compress` option; `fail` throws the dumper's option error. */
export function validateCompress(value: unknown, fail: (name: string, expected: string, got: unknown) => never): void {
  if (value === false || value === true || value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('compress', 'an object, true or false', value);
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['br', 'gzip', 'zstd', 'types', 'minBytes'].includes(k)) throw new TypeError(`page-dumper: unknown option "compress.${k}"`);
  }
  const level = (name: string, min: number, max: number) => {
    const v = o[name];
    if (v === undefined || v === false) return;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`compress.${name}`, `an integer from ${min} to ${max}, or false`, v);
  };
  level('br', 0, 11);
  level('gzip', 1, 9);
  level('zstd', 1, 19);
  if (o.types !== undefined) {
    if (!Array.isArray(o.types) || o.types.some((t) => (typeof t !== 'string' || !/^[a-z0-9!#$&^_.+*-]+\/[a-z0-9!#$&^_.+*-]+$/i.test(t)) && !(t instanceof RegExp))) {
      fail('compress.types', 'an array of media types (such as "text/*" or "application/json") or RegExps', o.types);
    }
  }
  if (o.minBytes !== undefined && (typeof o.minBytes !== 'number' || !Number.isInteger(o.minBytes) || o.minBytes < 0)) {
    fail('compress.minBytes', 'a non-negative integer', o.minBytes);
  }
}

// ------------------------------------------------------------------ compressing

const Z = zlib.constants;

/** A 64 KiB window: brotli at qualities 5–9 with a larger one allocates megabytes per call and takes 20–70 times longer. */
const BROTLI_WINDOW = 16;

function brotliParams(level: number, size: number): zlib.BrotliOptions {
  const lgwin = level >= 10 ? Math.min(Math.max(Math.ceil(Math.log2(Math.max(size, 1))), BROTLI_WINDOW), 24) : BROTLI_WINDOW;
  return {
    params: {
      [Z.BROTLI_PARAM_QUALITY]: level,
      [Z.BROTLI_PARAM_LGWIN]: lgwin,
      [Z.BROTLI_PARAM_SIZE_HINT]: size,
      [Z.BROTLI_PARAM_MODE]: Z.BROTLI_MODE_TEXT,
    },
  };
}

type Callback = (error: Error | null, result: Buffer) => void;
type ZstdFn = (buf: Uint8Array, options: object, callback: Callback) => void;

/** One compression on zlib's thread pool. */
function compressOne(coder: Coder, body: Uint8Array, callback: Callback): void {
  switch (coder.coding) {
    case 'br':
      return zlib.brotliCompress(body, brotliParams(coder.level, body.byteLength), callback);
    case 'gzip':
      return zlib.gzip(body, { level: coder.level }, callback);
    case 'zstd':
      return ((zlib as unknown as { zstdCompress: ZstdFn }).zstdCompress)(
        body,
        { params: { [(Z as Record<string, number>).ZSTD_c_compressionLevel!]: coder.level, [(Z as Record<string, number>).ZSTD_c_checksumFlag!]: 0 } },
        callback,
      );
  }
}

/** Memory of its own, as stores expect (zlib's result may be a slice of a pooled buffer). */
function own(buf: Uint8Array): Uint8Array {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) return buf;
  const out = Buffer.allocUnsafeSlow(buf.byteLength);
  out.set(buf);
  return out;
}

/**
 * Makes the encodings of stored bodies on zlib's thread pool, a bounded number at a time, so a
 * burst of misses neither waits on a compressor nor takes every thread the pool has (file system
 * and DNS calls share it).
 */
export class Compressor {
  readonly #coders: readonly Coder[];
  /** zlib calls in flight at most: half of libuv's default pool of 4. */
  readonly #maxRunning = 2;
  /** Bytes of bodies waiting; past this, new work is turned down (a later hit asks again). */
  readonly #maxQueuedBytes = 32 * 2 ** 20;
  #running = 0;
  #queuedBytes = 0;
  #closed = false;
  readonly #queue: Array<() => void> = [];

  constructor(coders: readonly Coder[]) {
    this.#coders = coders;
  }

  /**
   * The encodings of `body` that are smaller than it, skipping codings in `have`; `undefined` when
   * too much is queued already.
   */
  encode(body: Uint8Array, have: readonly EncodedBody[] = []): Promise<EncodedBody[]> | undefined {
    if (this.#closed) return undefined;
    if (this.#queuedBytes + body.byteLength > this.#maxQueuedBytes && this.#queuedBytes !== 0) return undefined;
    const coders = this.#coders.filter((c) => !have.some((h) => h.coding === c.coding));
    this.#queuedBytes += body.byteLength;
    const made = coders.map(
      (coder) =>
        new Promise<EncodedBody | undefined>((resolve) => {
          this.#run((done) => {
            if (this.#closed) {
              done();
              return resolve(undefined);
            }
            try {
              compressOne(coder, body, (error, result) => {
                done();
                resolve(error === null && result.byteLength < body.byteLength ? { coding: coder.coding, body: own(result) } : undefined);
              });
            } catch {
              // zlib refused the call itself: no copy in this coding, and the slot is free again.
              done();
              resolve(undefined);
            }
          });
        }),
    );
    return Promise.all(made).then((list) => {
      this.#queuedBytes -= body.byteLength;
      const out = have.slice();
      for (const e of list) if (e !== undefined) out.push(e);
      return out;
    });
  }

  /** Whether compressions are waiting for the thread pool: more than a burst of misses makes. */
  get busy(): boolean {
    return this.#queue.length > 32;
  }

  /** Drops the work not started yet (each of it resolves without a copy); takes no more. */
  close(): void {
    this.#closed = true;
    for (const start of this.#queue.splice(0)) start();
  }

  #run(job: (done: () => void) => void): void {
    const start = () => {
      this.#running++;
      job(() => {
        this.#running--;
        this.#queue.shift()?.();
      });
    };
    if (this.#running < this.#maxRunning) start();
    else this.#queue.push(start);
  }
}

// ------------------------------------------------------------------ decoding

/** The content coding of a stored response's headers, lower-case; `undefined` for none. */
export function codingOf(headers: readonly string[]): string | undefined {
  let coding: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'content-encoding') continue;
    for (const part of headers[i + 1]!.split(',')) {
      const c = part.trim().toLowerCase();
      if (c === '' || c === 'identity') continue;
      // Two codings applied one over the other: not something an app's compressor does.
      if (coding !== undefined) return 'multiple codings';
      coding = c;
    }
  }
  return coding;
}

/** Codings a response may arrive in that are decoded at fill time (RFC 9110 §8.4.1; `x-gzip` is `gzip`). */
export function canDecode(coding: string): boolean {
  return coding === 'gzip' || coding === 'x-gzip' || coding === 'br' || coding === 'deflate' || (coding === 'zstd' && ZSTD_AVAILABLE);
}

/**
 * Decodes a body the app compressed, on zlib's thread pool, refusing to make more than `max`
 * bytes of it (a small body can decode to gigabytes).
 */
export function decode(coding: string, body: Uint8Array, max: number): Promise<Buffer> {
  const options = { maxOutputLength: Math.max(max, 1) };
  return new Promise((resolve, reject) => {
    const done: Callback = (error, result) => (error === null ? resolve(result) : reject(error));
    switch (coding) {
      case 'gzip':
      case 'x-gzip':
        return zlib.gunzip(body, options, done);
      case 'br':
        return zlib.brotliDecompress(body, options, done);
      case 'zstd':
        return (zlib as unknown as { zstdDecompress: ZstdFn }).zstdDecompress(body, options, done);
      case 'deflate':
        // "deflate" is the zlib format (RFC 9110 §8.4.1.2); some servers send raw deflate instead.
        return zlib.inflate(body, options, (error, result) => {
          if (error === null) return resolve(result);
          if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return reject(error);
          zlib.inflateRaw(body, options, done);
        });
      default:
        reject(new TypeError(`cannot decode ${coding}`));
    }
  });
}

/**
 * The `EncodedBody` an app's own compression gives, when it is one of the codings the dumper
 * makes: kept as that variant, so it is not made again.
 */
export function ownEncoding(coding: string, body: Uint8Array, coders: readonly { coding: ContentCoding }[]): EncodedBody | undefined {
  const c = coding === 'x-gzip' ? 'gzip' : coding;
  if (!coders.some((k) => k.coding === c)) return undefined;
  return { coding: c as ContentCoding, body };
}

/** Whether a stored entry's body is one to compress under `policy`. */
export function compressible(entry: StoredEntry, policy: CompressPolicy): boolean {
  if (entry.body.byteLength < policy.minBytes) return false;
  const type = flatGet(entry.headers, 'content-type');
  if (type === undefined) return false;
  const semi = type.indexOf(';');
  if (!policy.types((semi === -1 ? type : type.slice(0, semi)).trim().toLowerCase())) return false;
  const cc = flatGet(entry.headers, 'cache-control');
  // no-transform: intermediaries must not change the content coding (RFC 9111 §5.2.2.6); the
  // origin asked for the bytes it sent.
  if (cc !== undefined && /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(cc)) return false;
  return flatGet(entry.headers, 'content-range') === undefined;
}

// ------------------------------------------------------------------ negotiation

/**
 * What a request's `Accept-Encoding` accepts: the q-value (0 to 1000, thousandths) of each coding
 * a dumper may have, in the order of `CODES`.
 */
type Accepted = readonly [identity: number, br: number, gzip: number, zstd: number];

const CODES = ['identity', 'br', 'gzip', 'zstd'] as const;
const IDENTITY_ONLY: Accepted = Object.freeze([1000, 0, 0, 0]) as Accepted;

/** qvalue (RFC 9110 §12.4.2): "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ], in thousandths. */
function qvalue(text: string): number | undefined {
  if (!/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text)) return undefined;
  return Math.round(Number(text) * 1000);
}

/** Parses an `Accept-Encoding` value (RFC 9110 §12.5.3). */
export function parseAcceptEncoding(value: string | undefined): Accepted {
  // No field: "any content coding is acceptable", but a client that sends none is more likely
  // one that cannot decode (a script, a health check) than one that can: identity.
  if (value === undefined) return IDENTITY_ONLY;
  const explicit: Array<number | undefined> = [undefined, undefined, undefined, undefined];
  let star: number | undefined;
  for (const element of value.split(',')) {
    const semi = element.indexOf(';');
    const name = (semi === -1 ? element : element.slice(0, semi)).trim().toLowerCase();
    if (name === '') continue;
    let q = 1000;
    if (semi !== -1) {
      const params = element.slice(semi + 1).split(';');
      let parsed: number | undefined = 1000;
      for (const p of params) {
        const eq = p.indexOf('=');
        if (eq === -1) continue;
        if (p.slice(0, eq).trim().toLowerCase() === 'q') parsed = qvalue(p.slice(eq + 1).trim());
      }
      if (parsed === undefined) continue; // a malformed weight: the element says nothing sure
      q = parsed;
    }
    if (name === '*') star = q;
    else {
      const i = (CODES as readonly string[]).indexOf(name === 'x-gzip' ? 'gzip' : name);
      if (i !== -1) explicit[i] = Math.max(explicit[i] ?? 0, q);
    }
  }
  // identity is acceptable unless "identity;q=0", or "*;q=0" without an identity entry; `*`
  // stands for every coding not listed (§12.5.3). Unlisted, it is acceptable but not preferred:
  // it ranks with the least preferred coding listed ("gzip;q=0.5" still prefers gzip).
  let least = 1000;
  for (const q of explicit) if (q !== undefined && q > 0 && q < least) least = q;
  return [
    explicit[0] ?? star ?? least,
    explicit[1] ?? star ?? 0,
    explicit[2] ?? star ?? 0,
    explicit[3] ?? star ?? 0,
  ] as Accepted;
}

/** Parsed `Accept-Encoding` values: a few strings cover nearly every client. */
const acceptedCache = new Map<string, Accepted>();
const MAX_ACCEPTED_CACHE = 256;

export function accepted(value: string | undefined): Accepted {
  if (value === undefined) return IDENTITY_ONLY;
  let a = acceptedCache.get(value);
  if (a === undefined) {
    a = parseAcceptEncoding(value);
    if (value.length < 200) {
      // Start again when full: a few values cover nearly every client, and junk must not keep
      // them out for the life of the process.
      if (acceptedCache.size >= MAX_ACCEPTED_CACHE) acceptedCache.clear();
      acceptedCache.set(value, a);
    }
  }
  return a;
}

/**
 * One way of sending an entry: its body in one content coding, with every header a hit of it
 * sends but `Age`. Made once per entry and coding.
 */
export interface Representation {
  readonly coding: ContentCoding | 'identity';
  readonly body: Uint8Array;
  readonly etag: string;
  /** The headers of a full reply, flat with lower-case names: the entry's, with this body's `Content-Length`, `ETag`, `Content-Encoding` and `Vary`, and the cache-status header. */
  readonly headers: readonly string[];
  /** The headers of a 304 for it (RFC 9110 §15.4.5), and the cache-status header. */
  readonly notModifiedHeaders: readonly string[];
}

/** The representations of one entry, smallest body first, and what `accepted()` picks among them. */
export interface Representations {
  readonly list: readonly Representation[];
  /** The entry is one to compress (its hits carry `Vary: Accept-Encoding`). */
  readonly compressible: boolean;
  /** This process has set out to compress this entry already (see `Dumper#uncompressed`). */
  tried: boolean;
  /** The entry's path without the key prefix, once a hit message needed it (see `Dumper#publishHit`). */
  path?: string;
}

const CODE_INDEX: Record<string, number> = { identity: 0, br: 1, gzip: 2, zstd: 3 };

/**
 * The entity tag of an encoding: a strong validator names one sequence of bytes, so each
 * encoding gets its own (RFC 9110 §8.8.3); a weak one may stand for all of them.
 */
export function encodingEtag(etag: string, coding: ContentCoding): string {
  if (etag.startsWith('W/')) return etag;
  return etag.endsWith('"') && etag.length >= 2 ? `${etag.slice(0, -1)}-${coding}"` : `${etag}-${coding}`;
}

/**
 * The representations of an entry. `hit`: the headers every reply of it adds, flat (the
 * cache-status header and `Cache-Status`), or the name of a cache-status header that says `HIT`.
 * `edge`: the edge caches' headers (tags, edge freshness; see `PurgeDispatcher.headersFor`).
 */
export function representations(
  entry: StoredEntry,
  encodings: readonly EncodedBody[] | undefined,
  compressibleEntry: boolean,
  hit: readonly string[] | string | undefined,
  edge?: readonly string[],
): Representations {
  const shared: RepShared = {
    entry,
    vary: compressibleEntry || (encodings !== undefined && encodings.length !== 0),
    hit: hit === undefined ? NO_HEADERS : typeof hit === 'string' ? [hit, 'HIT'] : hit,
    edge,
  };
  const list: Rep[] = [new Rep('identity', entry.body, entry.etag, shared)];
  if (encodings !== undefined) {
    for (const e of encodings) list.push(new Rep(e.coding, e.body, encodingEtag(entry.etag, e.coding), shared));
    if (list.length > 1) list.sort((a, b) => a.body.byteLength - b.body.byteLength);
  }
  return { list, compressible: compressibleEntry, tried: false };
}

const NO_HEADERS: readonly string[] = Object.freeze([]);

/** What every representation of one entry shares. */
interface RepShared {
  readonly entry: StoredEntry;
  /** Replies carry `Vary: Accept-Encoding`. */
  readonly vary: boolean;
  /** Headers every reply adds: the cache-status header, `Cache-Status`. */
  readonly hit: readonly string[];
  /** Headers for edge caches (tags, edge freshness; see `PurgeDispatcher.headersFor`), sent with every reply. */
  readonly edge: readonly string[] | undefined;
}

/**
 * One representation; its header lists are made when it is first sent, so a store that answers
 * every `get` with a new object costs one list per hit, not one per encoding.
 */
class Rep implements Representation {
  #headers: string[] | undefined;
  #notModified: string[] | undefined;
  constructor(
    readonly coding: ContentCoding | 'identity',
    readonly body: Uint8Array,
    readonly etag: string,
    readonly shared: RepShared,
  ) {}

  get headers(): readonly string[] {
    if (this.#headers === undefined) {
      const headers: string[] = [];
      let hasVary = false;
      const src = this.shared.entry.headers;
      const edge = this.shared.edge;
      for (let i = 0; i < src.length; i += 2) {
        const name = src[i]!;
        let value = src[i + 1]!;
        // A stored header the edge list sends too (the app's own tags or edge freshness) is in it, merged.
        if (edge !== undefined && edgeNamed(edge, name)) continue;
        if (name === 'content-length') value = String(this.body.byteLength);
        else if (name === 'etag') value = this.etag;
        else if (name === 'content-encoding') continue;
        else if (name === 'vary' && /(?:^|,)\s*accept-encoding\s*(?:,|$)/i.test(value)) hasVary = true;
        headers.push(name, value);
      }
      if (this.coding !== 'identity') headers.push('content-encoding', this.coding);
      if (this.shared.vary && !hasVary) headers.push('vary', 'Accept-Encoding');
      if (edge !== undefined) headers.push(...edge);
      headers.push(...this.shared.hit);
      this.#headers = headers;
    }
    return this.#headers;
  }

  get notModifiedHeaders(): readonly string[] {
    if (this.#notModified === undefined) {
      // Made from the full list, whose cache-status headers a 304 does not repeat by itself.
      const nm = notModifiedHeaders(this.headers);
      // An edge that revalidates its copy keeps the tags and the freshness it gets with the 304
      // (RFC 9111 §4.3.4: the stored headers are updated from it).
      if (this.shared.edge !== undefined) nm.push(...this.shared.edge);
      // The members of the caches behind the app (a Cache-Status stored with the page) come
      // first, as on a full reply, then this cache's own (RFC 9211 §2: the list is in path order),
      // in one field line: a 304 is written by some adapters over headers already set, where a
      // second line of the same name would replace the first.
      const src = this.shared.entry.headers;
      let behind: string | undefined;
      for (let i = 0; i < src.length; i += 2) if (src[i] === 'cache-status') behind = behind === undefined ? src[i + 1]! : `${behind}, ${src[i + 1]!}`;
      const hit = this.shared.hit;
      let merged = behind === undefined;
      for (let i = 0; i < hit.length; i += 2) {
        if (!merged && hit[i] === 'cache-status') {
          nm.push('cache-status', `${behind!}, ${hit[i + 1]!}`);
          merged = true;
        } else nm.push(hit[i]!, hit[i + 1]!);
      }
      if (!merged) nm.push('cache-status', behind!);
      this.#notModified = nm;
    }
    return this.#notModified;
  }
}

/**
 * The representation to send: of those the request accepts, the one with the highest q-value,
 * the smallest among equals; identity when it accepts none of them.
 */
export function choose(reps: Representations, acceptEncoding: string | undefined): Representation {
  const list = reps.list;
  if (list.length === 1) return list[0]!;
  const a = accepted(acceptEncoding);
  let best: Representation | undefined;
  let bestQ = 0;
  for (const r of list) {
    const q = a[CODE_INDEX[r.coding]!]!;
    if (q > bestQ) {
      best = r;
      bestQ = q;
    }
  }
  return best ?? list.find((r) => r.coding === 'identity')!;
}

/** Whether the request accepts a representation at all. */
export function accepts(acceptEncoding: string | undefined, rep: Representation): boolean {
  return accepted(acceptEncoding)[CODE_INDEX[rep.coding]!]! > 0;
}

function edgeNamed(edge: readonly string[], name: string): boolean {
  for (let i = 0; i < edge.length; i += 2) if (edge[i] === name) return true;
  return false;
}
