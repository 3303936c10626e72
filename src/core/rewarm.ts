/**
 * Rewarming (option `rewarm`): the pages an invalidation drops that visitors asked for recently
 * are requested again from the site, in the background and a few at a time, so that the next
 * visitor gets a hit instead of waiting for a render. Each request is an ordinary miss: the site
 * renders it through the fill protocol, which refuses to store a render that raced a newer write
 * (the next invalidation asks for it again).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { readHeader, type HeaderSource } from './http.js';
import type { Log } from './log.js';

/** The header that marks a rewarm's own requests (with a secret of the process), which are not counted as visitors'. */
export const REWARM_HEADER = 'x-page-dumper-rewarm';

export interface RewarmOptions {
  /**
   * Where the site itself listens, as the dumper's process reaches it (`http://127.0.0.1:3000`):
   * pages are requested there, with the `Host` (and `X-Forwarded-Host` / `-Proto`) of their key.
   */
  readonly base: string | URL;
  /**
   * Only pages hit within this many milliseconds before the invalidation are requested again.
   * @default 600000 (ten minutes)
   */
  readonly recent?: number;
  /**
   * The most pages remembered as recently hit (the least recently hit are forgotten first).
   * @default 1000
   */
  readonly pages?: number;
  /**
   * Requests in flight at once.
   * @default 2
   */
  readonly concurrency?: number;
  /**
   * Milliseconds after an invalidation before its pages are requested: writes often come in a
   * burst, and an ORM integration invalidates again when the transaction commits.
   * @default 100
   */
  readonly delay?: number;
  /**
   * Milliseconds one request may take before it is abandoned.
   * @default 30000
   */
  readonly timeout?: number;
}

/** What rewarming has done so far. */
export interface RewarmStats {
  /** Pages requested again. */
  readonly requested: number;
  /** Requests that failed (no answer, an error status, a timeout). */
  readonly failed: number;
  /** Pages remembered as recently hit now. */
  readonly tracked: number;
}

interface Hot {
  /** The tags of the entry last hit (store spelling). */
  tags: readonly string[];
  /** When it was last hit. */
  at: number;
}

const KNOWN = new Set(['base', 'recent', 'pages', 'concurrency', 'delay', 'timeout']);

function positive(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || (value === 0 && name !== 'delay')) {
    throw new TypeError(`page-dumper: option "rewarm.${name}" must be a ${name === 'delay' ? 'non-negative' : 'positive'} integer, got ${String(value)}`);
  }
  return value;
}

/** Checks the option `rewarm`; a `TypeError` names what is wrong. */
export function validateRewarm(value: unknown): void {
  if (value === undefined || value === false) return;
  if (value === null || typeof value !== 'object') throw new TypeError('page-dumper: option "rewarm" must be an object ({ base: "http://127.0.0.1:3000" }) or false');
  for (const k of Object.keys(value)) if (!KNOWN.has(k)) throw new TypeError(`page-dumper: option "rewarm" has no "${k}"; it takes ${[...KNOWN].join(', ')}`);
  const o = value as RewarmOptions;
  let base: URL | undefined;
  try {
    base = new URL(String(o.base));
  } catch {
    base = undefined;
  }
  if (base === undefined || (base.protocol !== 'http:' && base.protocol !== 'https:') || base.pathname !== '/' || base.search !== '') {
    throw new TypeError(`page-dumper: option "rewarm.base" must be the site's own http(s) origin, such as "http://127.0.0.1:3000", got ${JSON.stringify(o.base)}`);
  }
  positive('recent', o.recent, 0);
  positive('pages', o.pages, 0);
  positive('concurrency', o.concurrency, 0);
  positive('delay', o.delay, 0);
  positive('timeout', o.timeout, 0);
}

/**
 * Remembers the keys hit recently with their tags, and requests the ones an invalidation drops
 * again. Keys are `keyHead + host[|proto|forwarded host] + path[?query]` (see `Dumper.keyFor`).
 */
export class Rewarmer {
  readonly #keyHead: string;
  readonly #log: Log;
  readonly #base: URL;
  readonly #recent: number;
  readonly #max: number;
  readonly #concurrency: number;
  readonly #delay: number;
  readonly #timeout: number;
  /** Recently hit keys, least recently hit first (a Map keeps insertion order). */
  readonly #hot = new Map<string, Hot>();
  /** Keys waiting to be requested, in order. */
  readonly #queue = new Set<string>();
  /** Keys being requested now; those asked for again meanwhile go round once more. */
  readonly #active = new Map<string, boolean>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #secret = randomBytes(16).toString('hex');
  #requested = 0;
  #failed = 0;
  readonly #idle = new Set<() => void>();

  constructor(options: RewarmOptions, keyHead: string, log: Log) {
    this.#keyHead = keyHead;
    this.#log = log;
    this.#base = new URL(String(options.base));
    this.#recent = options.recent ?? 600_000;
    this.#max = options.pages ?? 1000;
    this.#concurrency = options.concurrency ?? 2;
    this.#delay = options.delay ?? 100;
    this.#timeout = options.timeout ?? 30_000;
  }

  get stats(): RewarmStats {
    return { requested: this.#requested, failed: this.#failed, tracked: this.#hot.size };
  }

  /** Whether a request is one of this rewarmer's own. */
  isOwn(headers: HeaderSource): boolean {
    return readHeader(headers, REWARM_HEADER) === this.#secret;
  }

  /** The entry of `key` was stored again (rewarmed, or rendered for a visitor): its tags now. */
  stored(key: string, tags: readonly string[]): void {
    const hot = this.#hot.get(key);
    if (hot !== undefined) hot.tags = tags;
  }

  /** A hit of the entry stored under `key`. */
  hit(key: string, tags: readonly string[]): void {
    const hot = this.#hot.get(key);
    if (hot !== undefined) {
      this.#hot.delete(key);
      hot.tags = tags;
      hot.at = Date.now();
      this.#hot.set(key, hot);
      return;
    }
    this.#hot.set(key, { tags, at: Date.now() });
    if (this.#hot.size > this.#max) this.#hot.delete(this.#hot.keys().next().value!);
  }

  /** The store took an invalidation of these tags (store spelling); `undefined`: every page. */
  invalidated(tags: readonly string[] | undefined): void {
    if (this.#closed || this.#hot.size === 0) return;
    const since = Date.now() - this.#recent;
    const wanted = tags === undefined ? undefined : new Set(tags);
    for (const [key, hot] of this.#hot) {
      if (hot.at < since) {
        this.#hot.delete(key);
        continue;
      }
      if (wanted === undefined || hot.tags.some((t) => wanted.has(t))) this.#want(key);
    }
  }

  #want(key: string): void {
    if (this.#active.has(key)) {
      this.#active.set(key, true);
      return;
    }
    this.#queue.add(key);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, this.#delay);
      this.#timer.unref();
    }
  }

  #pump(): void {
    while (!this.#closed && this.#active.size < this.#concurrency && this.#queue.size !== 0) {
      const key: string = this.#queue.values().next().value!;
      this.#queue.delete(key);
      this.#active.set(key, false);
      void this.#request(key).finally(() => {
        const again = this.#active.get(key) === true;
        this.#active.delete(key);
        if (again && !this.#closed) this.#want(key);
        else this.#pump();
        if (this.#active.size === 0 && this.#queue.size === 0 && this.#timer === undefined) for (const done of this.#idle) done();
      });
    }
  }

  /** Requests the page of `key` from the site. */
  #request(key: string): Promise<void> {
    const rest = key.slice(this.#keyHead.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return Promise.resolve();
    const [host, proto, forwardedHost] = rest.slice(0, slash).split('|');
    const headers: Record<string, string> = { host: host!, [REWARM_HEADER]: this.#secret };
    if (proto) headers['x-forwarded-proto'] = proto;
    if (forwardedHost) headers['x-forwarded-host'] = forwardedHost;
    const client = this.#base.protocol === 'https:' ? https : http;
    this.#requested++;
    return new Promise<void>((resolve) => {
      const req = client.request(
        { protocol: this.#base.protocol, hostname: this.#base.hostname, port: this.#base.port, method: 'GET', path: rest.slice(slash), headers, timeout: this.#timeout },
        (res) => {
          res.resume();
          res.on('end', () => {
            if ((res.statusCode ?? 500) >= 500) this.#fail(key, `status ${res.statusCode}`);
            resolve();
          });
          res.on('error', (error) => {
            this.#fail(key, error.message);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeout} ms`)));
      req.on('error', (error) => {
        this.#fail(key, error.message);
        resolve();
      });
      req.end();
    });
  }

  #fail(key: string, why: string): void {
    this.#failed++;
    this.#log.warn('rewarm request failed', { key, error: new Error(why) });
  }

  /** Resolves once nothing is waiting or in flight. */
  settled(): Promise<void> {
    if (this.#active.size === 0 && this.#queue.size === 0 && this.#timer === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#idle.delete(done);
        resolve();
      };
      this.#idle.add(done);
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.clear();
    for (const done of this.#idle) done();
  }
}
