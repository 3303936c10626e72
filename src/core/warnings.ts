import { printable, type Log } from './log.js';
import type { RefusalReason } from './stats.js';

/**
 * The refusals that usually mean a page the site meant to cache is not cached: each is warned
 * about once per path. The others are expected (a 404, a client that left, a store outage, a file
 * the `staticFiles` option keeps out) or already logged as faults.
 */
export const DEFAULT_WARNED_REFUSALS: readonly RefusalReason[] = Object.freeze([
  'set-cookie',
  'cache-control',
  'vary',
  'content-encoding',
  'too large',
  'cookies read',
  'unsupported',
] as const);

/** Distinct (path, reason) pairs warned about before the rest are only counted. */
export const WARNING_LIMIT = 100;

const ADVICE: Partial<Record<RefusalReason, string>> = {
  'set-cookie':
    'A page that sets a cookie is personal: if a session middleware sets one on every response, have it set the cookie only when there is something to keep (express-session: saveUninitialized: false).',
  'cache-control': 'The app marked the page as not for shared caches: a page for every visitor should not say private, no-store or no-cache.',
  vary: 'One page is served to every visitor, so only a Vary on Accept-Encoding is stored.',
  'too large': 'Raise the option maxEntryBytes to store it.',
  'cookies read': "A render that read the request's cookies for a visitor who has some may be personal.",
};

/**
 * Says, once per path and reason, why a render was not stored: at warn level, so that a site sees
 * it without `DEBUG`. The per-request decisions stay at debug level.
 */
export class RefusalWarnings {
  readonly #reasons: ReadonlySet<RefusalReason>;
  readonly #seen = new Set<string>();
  readonly #log: Log;
  #full = false;

  constructor(log: Log, reasons: readonly RefusalReason[]) {
    this.#log = log;
    this.#reasons = new Set(reasons);
  }

  /** `path` without the key prefix or query string. */
  refused(method: string, path: string, reason: RefusalReason, detail: string): void {
    if (!this.#reasons.has(reason) || this.#full) return;
    const id = `${reason}\u0000${path}`;
    if (this.#seen.has(id)) return;
    if (this.#seen.size >= WARNING_LIMIT) {
      this.#full = true;
      this.#log.warn(
        `not storing pages for more reasons than shown: ${WARNING_LIMIT} paths and reasons were warned about; dumper.stats().refusals counts every refusal by reason, and DEBUG=dumper (or a logger at debug level) shows each`,
        {},
      );
      return;
    }
    this.#seen.add(id);
    const advice = ADVICE[reason];
    this.#log.warn(`not storing ${method} ${printable(path)}: ${detail}.${advice === undefined ? '' : ` ${advice}`} Said once per path and reason.`, {
      method,
      path,
      reason,
    });
  }
}
