import { parseRetryAfter, PurgeError } from '../core/purge.js';

/** Options every purger takes. */
export interface PurgeRequestOptions {
  /**
   * Milliseconds a purge request may take before it counts as failed (and is retried).
   * @default 10000
   */
  readonly timeout?: number;
}

/**
 * Rejects an option the purger does not know (a misspelling such as `softPurge` for `soft` would
 * otherwise be ignored, and the purger would do something else than asked), naming the closest
 * known one.
 */
export function checkKnown(fn: string, options: object, known: readonly string[]): void {
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const lower = name.toLowerCase();
    const near = known.find((k) => {
      const l = k.toLowerCase();
      return l.includes(lower) || lower.includes(l) || distance(l, lower) <= 2;
    });
    throw new TypeError(`page-dumper: ${fn}() has no option "${name}"${near === undefined ? '' : ` (did you mean "${near}"?)`}; its options are ${known.join(', ')}`);
  }
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

export function checkTimeout(fn: string, timeout: unknown): number {
  if (timeout === undefined) return 10_000;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1) {
    throw new TypeError(`page-dumper: ${fn}() option "timeout" must be a positive integer (milliseconds), got ${String(timeout)}`);
  }
  return timeout;
}

export function checkUrl(fn: string, option: string, value: unknown): URL {
  let url: URL | undefined;
  if (typeof value === 'string') {
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new TypeError(`page-dumper: ${fn}() option "${option}" must be an http or https URL, got ${JSON.stringify(value)}`);
  }
  return url;
}

export function checkString(fn: string, option: string, value: unknown): string {
  if (typeof value !== 'string' || value === '' || /[\s/]/.test(value)) {
    throw new TypeError(`page-dumper: ${fn}() option "${option}" must be a non-empty string without spaces or slashes`);
  }
  return value;
}

/**
 * Sends one purge request. Resolves with the response body when the status is 2xx; otherwise
 * rejects with a `PurgeError` carrying the status and `Retry-After` (429 and 503, RFC 9110
 * §10.2.3 and RFC 6585 §4), or the network error as its cause.
 */
export async function send(url: string, init: RequestInit, timeout: number, what: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeout) });
  } catch (error) {
    throw new PurgeError(`${what}: no answer from ${new URL(url).origin} (${(error as Error).message})`, { cause: error });
  }
  const body = await response.text().catch(() => '');
  if (response.ok) return body;
  throw new PurgeError(`${what}: ${response.status} ${response.statusText}${body === '' ? '' : ` ${body.slice(0, 200)}`}`, {
    status: response.status,
    retryAfter: parseRetryAfter(response.headers.get('retry-after')),
  });
}
