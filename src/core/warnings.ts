import { printable, type Log } from './log.js';
import type { RefusalReason } from './stats.js';

/**
 * The refusals that usually mean a page the site meant to cache is not cached: each is warned
 * about once per path. The others are expected (a 404, a client that left, a store outage, a file
 * the `staticFiles` option keeps out), already logged as faults, or usually the site's intent: a
 * `Cache-Control: private`/`no-store` (a password-reset page), a render that read a logged-in
 * visitor's cookies.
 */
export const DEFAULT_WARNED_REFUSALS: readonly RefusalReason[] = Object.freeze(['set-cookie', 'vary', 'content-encoding', 'too large', 'unsupported'] as const);

/** Paths warned about per reason before the rest of that reason are only counted. */
export const WARNINGS_PER_REASON = 10;

const ADVICE: Partial<Record<RefusalReason, string>> = {
  'set-cookie':
    'A page that sets a cookie is personal: if a session middleware sets one on every response, have it set the cookie only when there is something to keep (express-session: saveUninitialized: false).',
  'cache-control': 'If the page is the same for every visitor, it should not say private, no-store or no-cache.',
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
  /** The canonical paths warned about, by reason: at most WARNINGS_PER_REASON each. */
  readonly #seen = new Map<RefusalReason, Set<string>>();
  readonly #log: Log;

  constructor(log: Log, reasons: readonly RefusalReason[]) {
    this.#log = log;
    this.#reasons = new Set(reasons);
  }

  /**
   * `canonical`: the path the page is stored under (one warning for `/A` and `/a/`); `shown`: the
   * path as requested, without its query string (never logged: it may carry a token).
   */
  refused(method: string, canonical: string, shown: string, reason: RefusalReason, detail: string): void {
    if (!this.#reasons.has(reason)) return;
    let seen = this.#seen.get(reason);
    if (seen === undefined) this.#seen.set(reason, (seen = new Set()));
    if (seen.size > WARNINGS_PER_REASON || seen.has(canonical)) return;
    if (seen.size === WARNINGS_PER_REASON) {
      seen.add('');
      this.#log.warn(
        `not storing pages on more paths for the same reason (${reason}) than the ${WARNINGS_PER_REASON} warned about: dumper.stats().refusals counts them, and DEBUG=dumper (or a logger at debug level) shows each`,
        { reason },
      );
      return;
    }
    seen.add(canonical);
    const advice = ADVICE[reason];
    this.#log.warn(`not storing ${method} ${printable(shown)}: ${detail}.${advice === undefined ? '' : ` ${advice}`} Said once per path and reason.`, {
      method,
      path: shown,
      reason,
    });
  }
}
