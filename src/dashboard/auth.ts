/**
 * The dashboard's credentials: the token (as `Authorization: Bearer`), and a session cookie the
 * login form sets, which holds an HMAC keyed by the token, never the token. Every comparison is
 * constant-time over SHA-256 digests of equal length, so neither the length nor a prefix of the
 * token leaks through the time an answer takes.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The name of the session cookie. */
export const SESSION_COOKIE = 'page-dumper-dashboard';

/** The shortest token accepted. */
export const MIN_TOKEN_LENGTH = 16;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Whether `presented` equals `expected`, in time that depends on neither. */
export function safeEqual(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * How many logged-out sessions are remembered (each until it would have expired anyway). Past
 * it, a logout ends every session issued until then, in this process.
 */
export const MAX_ENDED_SESSIONS = 10_000;

/** A session's proof: the time it was issued, its id, and an HMAC of both keyed by the token. */
export interface Session {
  /** When the session was issued (ms since the epoch). */
  readonly issued: number;
  /** The session's random id. */
  readonly id: string;
  /** The CSRF token of the session, which the page sends back with every purge. */
  readonly csrf: string;
}

export class Credentials {
  readonly #token: string;
  /** The ids of the sessions logged out (`end()`), with when each was issued. */
  readonly #ended = new Map<string, number>();
  /** Sessions issued at or before this time are refused (see `MAX_ENDED_SESSIONS`). */
  #endedBefore = -Infinity;

  constructor(
    token: string,
    /** How long a login lasts, in milliseconds. */
    readonly sessionMaxAge: number,
  ) {
    this.#token = token;
  }

  #mac(purpose: string, issued: number, id: string): string {
    return createHmac('sha256', this.#token).update(`page-dumper dashboard ${purpose}\n${issued}\n${id}`).digest('base64url');
  }

  /** Whether an `Authorization` header carries the token as a bearer credential. */
  bearer(header: string | undefined): boolean {
    if (header === undefined) return false;
    // Any characters after the scheme, not only RFC 6750's token68: a token may hold spaces.
    const m = /^\s*bearer\s+(.+?)\s*$/i.exec(header);
    return m !== null && safeEqual(m[1]!, this.#token);
  }

  /** Whether a login form's token is the token. */
  check(presented: string): boolean {
    return safeEqual(presented, this.#token);
  }

  /** A new session cookie's value. */
  issue(now = Date.now()): string {
    const id = randomBytes(16).toString('base64url');
    return `v2.${now.toString(36)}.${id}.${this.#mac('session', now, id)}`;
  }

  /**
   * The session a cookie value proves, or `undefined` (forged, expired, from another token, or
   * logged out in this process).
   */
  session(value: string | undefined, now = Date.now()): Session | undefined {
    if (value === undefined) return undefined;
    const m = /^v2\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (m === null) return undefined;
    const issued = parseInt(m[1]!, 36);
    const id = m[2]!;
    // A clock that went back a little (another process's) is forgiven; a session from the future is not.
    if (!(issued <= now + 60_000 && now - issued < this.sessionMaxAge)) return undefined;
    if (!safeEqual(m[3]!, this.#mac('session', issued, id))) return undefined;
    if (issued <= this.#endedBefore || this.#ended.has(id)) return undefined;
    return { issued, id, csrf: this.#mac('csrf', issued, id) };
  }

  /**
   * Ends a session (a logout): its cookie opens nothing in this process from now on, even
   * replayed. The cookie is stateless, so the id is remembered until the session would have
   * expired anyway; with `MAX_ENDED_SESSIONS` remembered, every session issued so far ends
   * instead, and the memory is given back.
   */
  end(session: Session, now = Date.now()): void {
    for (const [id, issued] of this.#ended) {
      // Oldest first (insertion order, near enough): drop those expired by now.
      if (now - issued < this.sessionMaxAge + 60_000) break;
      this.#ended.delete(id);
    }
    if (this.#ended.size >= MAX_ENDED_SESSIONS) {
      this.#ended.clear();
      this.#endedBefore = Math.max(now, session.issued);
      return;
    }
    this.#ended.set(session.id, session.issued);
  }
}

/** The value of one cookie of a request, or `undefined`. */
export function cookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Whether a state-changing request comes from a page of the dashboard's own origin (the CSRF
 * check, with the session's token). `Sec-Fetch-Site`, which a page cannot forge, must say
 * `same-origin` when sent; `Origin`, when it names an origin, must name this host (`Host`, or
 * `X-Forwarded-Host` behind a proxy: neither can be set by a cross-site page without a CORS
 * preflight). A browser sends `Origin: null` with a form posted from a page whose referrer policy
 * is `no-referrer`, as the dashboard's is: then `Sec-Fetch-Site` decides alone. A request with
 * neither is refused: every browser that runs the dashboard sends one or the other with a POST.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = one(req.headers['sec-fetch-site']);
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = one(req.headers.origin);
  if (origin === undefined || origin === 'null') return site !== undefined;
  return originIsHost(req, origin);
}

/** Whether `origin` names the host the request was sent to (`Host`, or `X-Forwarded-Host`). */
function originIsHost(req: IncomingMessage, origin: string): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const hosts = [one(req.headers.host), one(req.headers['x-forwarded-host'])?.split(',')[0]?.trim()];
  return hosts.some((h) => h !== undefined && h.toLowerCase() === host);
}

/**
 * Whether a browser says the request comes from another site: `Sec-Fetch-Site` other than
 * `same-origin` or `none`, an `Origin` naming another host, or `Origin: null` without
 * `Sec-Fetch-Site: same-origin` (a form posted from a page with `no-referrer`, or from a sandboxed
 * frame, by a browser too old to send `Sec-Fetch-Site`: it may come from anywhere). A script
 * (curl) sends no `Origin` at all. Checked for bearer requests too, in case a proxy in front adds
 * the `Authorization` header to every request, a cross-site one included.
 */
export function crossSite(req: IncomingMessage): boolean {
  const site = one(req.headers['sec-fetch-site']);
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true;
  const origin = one(req.headers.origin);
  if (origin === 'null') return site !== 'same-origin';
  return origin !== undefined && !originIsHost(req, origin);
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
