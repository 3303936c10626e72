/** HTTP rules shared by every adapter: what may be stored, what a stored reply carries, 304s. */
import { createHash } from 'node:crypto';
import { canDecode, codingOf } from './encoding.js';

/** Request headers as Node gives them, or a Fetch `Headers`. */
export type HeaderSource =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

/** Reads one request header (lower-case name) from either shape. */
export function readHeader(headers: HeaderSource, name: string): string | undefined {
  const get = (headers as { get?: unknown }).get;
  if (typeof get === 'function') return (get as (n: string) => string | null).call(headers, name) ?? undefined;
  const v = (headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Value of the first header named `name` in a flat `[name, value, ...]` list. */
export function flatGet(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

function tokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** What a dumper stores (see `responseVeto`). */
export interface StoragePolicy {
  /** Statuses that are stored. */
  readonly statuses: readonly number[];
  /** Whether responses of static file handlers are stored. */
  readonly staticFiles: boolean;
}

/**
 * Why a response must not be stored, or `undefined` if it may be. `headers` is a flat list with
 * lower-case names. These are the safety defaults: other visitors must never receive a response
 * meant for one visitor, or one the origin asked not to be shared (RFC 9111 §3, §5.2.2).
 */
export function responseVeto(status: number, headers: readonly string[], policy: StoragePolicy): string | undefined {
  if (!policy.statuses.includes(status)) return `status ${status}`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    switch (name) {
      case 'set-cookie':
        return 'response sets a cookie';
      case 'cache-control':
        for (const d of tokens(value)) {
          const directive = d.split('=')[0]!.trim();
          if (directive === 'private' || directive === 'no-store' || directive === 'no-cache') {
            return `Cache-Control: ${directive}`;
          }
        }
        break;
      case 'vary':
        for (const v of tokens(value)) if (v !== 'accept-encoding') return `Vary: ${v}`;
        break;
      case 'content-encoding': {
        // A body the app compressed is decoded when it is stored (see Fill.complete); only a
        // coding that cannot be decoded here keeps it out.
        const coding = codingOf(headers);
        if (coding === undefined) break;
        if (!canDecode(coding)) return `Content-Encoding: ${value} (a coding page-dumper cannot decode)`;
        // The origin asked for these bytes as they are (RFC 9111 §5.2.2.6): a client that does
        // not accept the coding could only be sent them decoded.
        if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(flatGet(headers, 'cache-control') ?? '')) return 'Cache-Control: no-transform on a compressed response';
        break;
      }
      case 'content-type':
        if (value.toLowerCase().startsWith('text/event-stream')) return 'event stream';
        break;
      case 'accept-ranges':
        // The mark of a file handler (send: express.static, serve-static, @fastify/static): a
        // file changes with a deploy, never with a write, and its handler already answers from
        // the file system with validators.
        if (!policy.staticFiles && value.trim().toLowerCase() === 'bytes') return 'a static file (option staticFiles)';
        break;
    }
  }
  return undefined;
}

/**
 * Headers never stored: hop-by-hop (RFC 9110 §7.6.1) and those made afresh for each reply. `Date`
 * is kept, as Varnish keeps it: it says when the page was generated, and `Age` counts from it.
 */
const NOT_STORED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'age',
  'content-length',
]);

/** A strong validator of the body: the same bytes always give the same ETag, across processes. */
export function makeEtag(body: Uint8Array): string {
  return `"${createHash('sha1').update(body).digest('base64url')}"`;
}

/**
 * The headers of a stored entry: the response's own minus hop-by-hop ones and the cache-status
 * header, plus `etag` (made from the body if the app sent none), `content-length`, and `date`
 * (the time `now`, when the app sent none). `age`: the `Age` the response arrived with, in
 * seconds (RFC 9111 §5.1), or 0.
 */
export function storedHeaders(
  headers: readonly string[],
  body: Uint8Array,
  statusHeader: string | undefined,
  now: number,
): { headers: string[]; etag: string; age: number } {
  const connectionListed = new Set<string>();
  const conn = flatGet(headers, 'connection');
  if (conn) for (const t of tokens(conn)) connectionListed.add(t);
  const out: string[] = [];
  let etag: string | undefined;
  let date = false;
  let age = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'age') {
      // delta-seconds (RFC 9111 §1.2.2); anything else is ignored, as §5.1 lets a cache do.
      const v = headers[i + 1]!.trim();
      if (/^\d{1,10}$/.test(v)) age = Math.max(age, Number(v));
      continue;
    }
    if (NOT_STORED.has(name) || connectionListed.has(name) || name === statusHeader) continue;
    if (name === 'etag') etag = headers[i + 1]!;
    else if (name === 'date') {
      if (date) continue;
      date = true;
    }
    out.push(name, headers[i + 1]!);
  }
  if (etag === undefined) {
    etag = makeEtag(body);
    out.push('etag', etag);
  }
  if (!date) out.push('date', new Date(now).toUTCString());
  out.push('content-length', String(body.byteLength));
  return { headers: out, etag, age };
}

function opaque(tag: string): string {
  const t = tag.trim();
  return t.startsWith('W/') ? t.slice(2) : t;
}

/**
 * Whether a stored entry answers a conditional GET/HEAD with 304 (RFC 9110 §13.1.2, §13.2.2):
 * `If-None-Match` uses the weak comparison and, when present, `If-Modified-Since` is ignored.
 */
export function notModified(
  etag: string,
  headers: readonly string[],
  ifNoneMatch: string | undefined,
  ifModifiedSince: string | undefined,
): boolean {
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() === '*') return true;
    const mine = opaque(etag);
    for (const candidate of ifNoneMatch.split(',')) if (opaque(candidate) === mine) return true;
    return false;
  }
  if (ifModifiedSince !== undefined) {
    const lm = flatGet(headers, 'last-modified');
    if (lm === undefined) return false;
    const since = Date.parse(ifModifiedSince);
    const modified = Date.parse(lm);
    return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since;
  }
  return false;
}

/** The stored headers a 304 repeats (RFC 9110 §15.4.5). */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'etag', 'expires', 'vary', 'last-modified']);

export function notModifiedHeaders(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (NOT_MODIFIED_HEADERS.has(headers[i]!)) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

/** Seconds since the entry was stored, for the `Age` header (RFC 9111 §5.1). */
export function ageOf(storedAt: number, now: number): string {
  const s = Math.floor((now - storedAt) / 1000);
  return s > 0 ? String(s) : '0';
}
