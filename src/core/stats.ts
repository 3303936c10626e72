/**
 * What a dumper counts (`dumper.stats()`) and what it publishes on `node:diagnostics_channel`.
 * Counting is a few integer increments per request; a channel message is made only while the
 * channel has subscribers (as undici and Fastify publish theirs), so a hit allocates nothing for
 * either.
 */
import diagnostics from 'node:diagnostics_channel';
import type { BypassReason, Dumper } from './dumper.js';
import type { StoredEntry } from './store.js';

/**
 * Why a render was not stored. Every fill that is not stored is counted under exactly one:
 * - `status`: the status is not one of `statuses` (a 404, a redirect, a 500...).
 * - `set-cookie`: the response sets a cookie.
 * - `cache-control`: `Cache-Control: private`, `no-store` or `no-cache` (or `no-transform` on a
 *   body the app compressed).
 * - `vary`: a `Vary` on anything but `Accept-Encoding`, or `Vary: *`.
 * - `content-encoding`: a content coding that cannot be decoded here, or a body that failed to decode.
 * - `event stream`: `text/event-stream`.
 * - `static file`: a file handler's response, without the option `staticFiles`.
 * - `too large`: the body (or the decoded body) is larger than `maxEntryBytes`.
 * - `cookies read`: the render read the cookies of a request that carried some.
 * - `untraceable`: `dumper.tag()` was called where it could not be attributed to one render.
 * - `incomplete`: the response was aborted, destroyed, replaced or did not match its `Content-Length`,
 *   the app threw, or the client left before the app ran.
 * - `pipelined`: the response waited behind a pipelined one on its connection.
 * - `unsupported`: the adapter could not capture the response (a payload type it cannot tee) or
 *   could not give the app the request its key describes.
 * - `store refused`: the store turned the entry down: one of its tags was invalidated while it was
 *   rendered (the fill protocol), or a store limit was reached.
 * - `store unavailable`: the store was failing (circuit open) or had invalidations to replay.
 * - `store error`: the store's `set` failed.
 * - `other`: a reason a third-party adapter gave that is none of these.
 */
export type RefusalReason =
  | 'status'
  | 'set-cookie'
  | 'cache-control'
  | 'vary'
  | 'content-encoding'
  | 'event stream'
  | 'static file'
  | 'too large'
  | 'cookies read'
  | 'untraceable'
  | 'incomplete'
  | 'pipelined'
  | 'unsupported'
  | 'store refused'
  | 'store unavailable'
  | 'store error'
  | 'other';

/** Every `RefusalReason`, in a fixed order. */
export const REFUSAL_REASONS: readonly RefusalReason[] = Object.freeze([
  'status',
  'set-cookie',
  'cache-control',
  'vary',
  'content-encoding',
  'event stream',
  'static file',
  'too large',
  'cookies read',
  'untraceable',
  'incomplete',
  'pipelined',
  'unsupported',
  'store refused',
  'store unavailable',
  'store error',
  'other',
] as const);

/** Every `BypassReason`, in a fixed order. */
export const BYPASS_REASONS: readonly BypassReason[] = Object.freeze([
  'method',
  'authorization',
  'cookie',
  'no host',
  'bad host',
  'conditional request',
  'request body',
  'host not allowed',
  'ignored path',
  'bad url',
  'url too long',
  'store unavailable',
  'closed',
] as const);

/**
 * What asked for an invalidation: `invalidate()` (`paths`), `invalidateTags()` (`tags`),
 * `invalidatePrefix()` (`prefix`), `invalidateAll()` (`all`), `changed()` and
 * `invalidateDependents()` (`dependents`, what the ORM integrations call), and a successful
 * unsafe request (`unsafe`, the option `invalidateOnUnsafe`).
 */
export type InvalidationKind = 'paths' | 'tags' | 'prefix' | 'all' | 'dependents' | 'unsafe';

/** Every `InvalidationKind`, in a fixed order. */
export const INVALIDATION_KINDS: readonly InvalidationKind[] = Object.freeze(['paths', 'tags', 'prefix', 'all', 'dependents', 'unsafe'] as const);

/**
 * A snapshot of a dumper's counters since it was created (`dumper.stats()`). Every request an
 * adapter serves is counted once as a hit, a miss or a bypass, whichever adapter serves it.
 */
export interface DumperStats {
  /** When counting started: the dumper's creation, in milliseconds since the epoch. */
  readonly since: number;
  /**
   * Requests answered from the store (`dumper.reply()`), 304s included; also the requests that
   * waited for a concurrent render of their page and were given its entry (see `coalesced`).
   */
  readonly hits: number;
  /** Of `hits`, those answered `304 Not Modified`. */
  readonly notModified: number;
  /**
   * Requests that had a key but no usable entry, and went to the app: each render that may be
   * stored, each request passed to the app without one (the store failing, say), and each
   * request that waited for a concurrent render that was not stored.
   */
  readonly misses: number;
  /** Requests that neither read nor filled the cache, by reason (`keyFor()` returned a `Bypass`). */
  readonly bypasses: Readonly<Record<BypassReason, number>>;
  /** Misses that joined a concurrent render of the same page instead of rendering it again. */
  readonly coalesced: number;
  /** Renders stored. */
  readonly stores: number;
  /** Renders not stored, by reason. */
  readonly refusals: Readonly<Record<RefusalReason, number>>;
  /** Invalidations asked for, by what asked (each call counts once, however many paths or tags it names). */
  readonly invalidations: Readonly<Record<InvalidationKind, number>>;
  /** Store operations that failed (read, write, sequence, invalidate, clear, replay). */
  readonly storeErrors: number;
  /** Body bytes of the renders stored (identity coding; compressed copies are not counted). */
  readonly bytesStored: number;
  /** Body bytes sent by hits (the representation sent; nothing for a 304 or a HEAD). */
  readonly bytesServed: number;
}

function zeroes<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = 0;
  return out;
}

/**
 * @internal A dumper's counters. The plain counts live in a `Float64Array`: a byte count passes
 * 2^31 within minutes of traffic, and a number field that does is boxed by V8, which then costs
 * every hit an allocation; an element of a `Float64Array` is updated in place. Callers use the
 * methods, which V8 inlines.
 */
export class Counters {
  readonly since = Date.now();
  /** hits, notModified, misses, coalesced, stores, storeErrors, bytesStored, bytesServed */
  readonly #n = new Float64Array(8);
  readonly bypasses: Record<BypassReason, number> = zeroes(BYPASS_REASONS);
  readonly refusals: Record<RefusalReason, number> = zeroes(REFUSAL_REASONS);
  readonly invalidations: Record<InvalidationKind, number> = zeroes(INVALIDATION_KINDS);

  hit(bytes: number): void {
    this.#n[0] = this.#n[0]! + 1;
    this.#n[7] = this.#n[7]! + bytes;
  }

  notModified(): void {
    this.#n[1] = this.#n[1]! + 1;
  }

  miss(): void {
    this.#n[2] = this.#n[2]! + 1;
  }

  coalesced(): void {
    this.#n[3] = this.#n[3]! + 1;
  }

  stored(bytes: number): void {
    this.#n[4] = this.#n[4]! + 1;
    this.#n[6] = this.#n[6]! + bytes;
  }

  storeError(): void {
    this.#n[5] = this.#n[5]! + 1;
  }

  snapshot(): DumperStats {
    const n = this.#n;
    return {
      since: this.since,
      hits: n[0]!,
      notModified: n[1]!,
      misses: n[2]!,
      bypasses: { ...this.bypasses },
      coalesced: n[3]!,
      stores: n[4]!,
      refusals: { ...this.refusals },
      invalidations: { ...this.invalidations },
      storeErrors: n[5]!,
      bytesStored: n[6]!,
      bytesServed: n[7]!,
    };
  }
}

/**
 * The `RefusalReason` of the reason a fill was abandoned with (the text the debug log shows):
 * the core's vetoes (`responseVeto`), the fill's own, and the adapters'.
 */
export function refusalOf(detail: string): RefusalReason {
  if (detail.startsWith('status ')) return detail.startsWith('status changed') ? 'incomplete' : 'status';
  if (detail === 'response sets a cookie') return 'set-cookie';
  // The app compressed the page and forbade transforming it: a matter of its coding.
  if (detail.includes('no-transform')) return 'content-encoding';
  if (detail.startsWith('Cache-Control:')) return 'cache-control';
  if (detail.startsWith('Vary:')) return 'vary';
  if (detail.includes('Content-Encoding') || detail.includes('could not be decoded')) return 'content-encoding';
  if (detail === 'event stream') return 'event stream';
  if (detail.startsWith('a static file')) return 'static file';
  if (detail.includes('larger than maxEntryBytes')) return 'too large';
  if (detail.includes("read the request's cookies")) return 'cookies read';
  if (detail.includes('dumper.tag()')) return 'untraceable';
  if (detail.includes('pipelined')) return 'pipelined';
  if (detail === 'store unavailable') return 'store unavailable';
  if (/abort|destroyed|closed|does not match Content-Length|stream failed|app threw|no response|replaced after onSend/.test(detail)) return 'incomplete';
  // A HEAD route answering headers only (correct HTTP): nothing to store, as for a body cut short.
  if (detail.includes('sent no body')) return 'incomplete';
  if (/could not be|unsupported/.test(detail)) return 'unsupported';
  return 'other';
}

// ------------------------------------------------------------------ diagnostics_channel

/** The names of the channels a dumper publishes on (`node:diagnostics_channel`). */
export const CHANNELS = Object.freeze({
  /** A hit: `HitMessage`. */
  hit: 'page-dumper:hit',
  /** A miss: `MissMessage`. */
  miss: 'page-dumper:miss',
  /** A render stored: `StoreMessage`. */
  store: 'page-dumper:store',
  /** A render not stored: `RefusalMessage`. */
  refusal: 'page-dumper:refusal',
  /** A request that bypassed the cache: `BypassMessage`. */
  bypass: 'page-dumper:bypass',
  /** An invalidation asked for: `InvalidateMessage`. */
  invalidate: 'page-dumper:invalidate',
} as const);

export type ChannelName = (typeof CHANNELS)[keyof typeof CHANNELS];

/** Published on `page-dumper:hit` for every reply from the store (`dumper.reply()`). */
export interface HitMessage {
  readonly dumper: Dumper;
  readonly method: string;
  /** The page's canonical path (lower-case, no trailing slash), as invalidations name it. */
  readonly path: string;
  /** 200 (or the entry's status), or 304. */
  readonly status: number;
  /** The content coding sent. */
  readonly coding: 'identity' | 'br' | 'gzip' | 'zstd';
  /** Body bytes sent (0 for a 304 or a HEAD). */
  readonly bytes: number;
  /** The entry served (its tags carry the key prefix). */
  readonly entry: StoredEntry;
}

/** Published on `page-dumper:miss` for every miss (see `DumperStats.misses`). */
export interface MissMessage {
  readonly dumper: Dumper;
  readonly key: string;
  readonly method: string;
  /** The page's canonical path, or `undefined` when the key names none the app could be given. */
  readonly path: string | undefined;
  /** Whether the request waited for a concurrent render of its page (which was not stored). */
  readonly coalesced: boolean;
}

/** Published on `page-dumper:store` when a render is stored. */
export interface StoreMessage {
  readonly dumper: Dumper;
  readonly key: string;
  readonly method: string;
  /** The page's canonical path. */
  readonly path: string;
  /** The entry's tags without the key prefix: its path first, then prefix and render tags. */
  readonly tags: readonly string[];
  /** Body bytes stored (identity coding). */
  readonly bytes: number;
  /** The store's sequence number the render started at (the fill protocol). */
  readonly seq: number;
}

/** Published on `page-dumper:refusal` when a render is not stored. */
export interface RefusalMessage {
  readonly dumper: Dumper;
  readonly key: string;
  readonly method: string;
  /** The page's canonical path. */
  readonly path: string;
  readonly reason: RefusalReason;
  /** The reason as the debug log gives it ("Cache-Control: private", "status 404"...). */
  readonly detail: string;
}

/** Published on `page-dumper:bypass` for every request that bypasses the cache. */
export interface BypassMessage {
  readonly dumper: Dumper;
  readonly method: string;
  /** The request target as the adapter gave it to `keyFor()`. */
  readonly target: string;
  readonly reason: BypassReason;
}

/** Published on `page-dumper:invalidate` for every invalidation asked for, before the store has it. */
export interface InvalidateMessage {
  readonly dumper: Dumper;
  readonly kind: InvalidationKind;
  /** The paths named (`paths`, `dependents`, `unsafe`; for `unsafe`, the target and the `Location`s). */
  readonly paths: readonly string[];
  /** The tags named (`tags`, `dependents`). */
  readonly tags: readonly string[];
  /** The prefixes named (`prefix`). */
  readonly prefixes: readonly string[];
  /** The registered models whose instances changed (`dependents`). */
  readonly models: readonly string[];
  /** The integrations that reported the change (`Dependents.integration`: `typeorm`, `prisma`...), if they said. */
  readonly integrations: readonly string[];
  /** The method of the unsafe request (`unsafe`). */
  readonly method: string | undefined;
}

/** @internal The channels, made once per process (Node keeps one channel per name). */
export const hitChannel = diagnostics.channel(CHANNELS.hit);
/** @internal */
export const missChannel = diagnostics.channel(CHANNELS.miss);
/** @internal */
export const storeChannel = diagnostics.channel(CHANNELS.store);
/** @internal */
export const refusalChannel = diagnostics.channel(CHANNELS.refusal);
/** @internal */
export const bypassChannel = diagnostics.channel(CHANNELS.bypass);
/** @internal */
export const invalidateChannel = diagnostics.channel(CHANNELS.invalidate);
