/**
 * Keys and canonical path tags.
 *
 * A key names one stored variant: prefix + build version + host (+ forwarded scheme and host) +
 * path + normalized query string. On a fill the app is given the request the key describes
 * (see `AppView` in dumper.ts), so nothing a key folds or leaves out reaches a stored page. It is exact
 * where exactness is safe (`/a` and `/a/` stay different pages) and normalizes only what
 * RFC 3986 §6.2.2 says is equivalent (percent-encoding case, percent-encoded unreserved
 * characters). A path *tag* is deliberately coarse (decoded, case-folded, dot segments resolved,
 * duplicate and trailing slashes dropped), because invalidating too much is harmless and
 * invalidating too little serves a stale page.
 */

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const HEX = '0123456789ABCDEF';

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Upper-cases percent-encodings and decodes those of unreserved characters (RFC 3986 §6.2.2.1-2).
 * Returns `undefined` for a malformed escape such as `%zz` or a trailing `%`.
 */
export function normalizePercentEncoding(s: string): string | undefined {
  let i = s.indexOf('%');
  if (i === -1) return s;
  let out = s.slice(0, i);
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 37 /* % */) {
      out += s[i];
      i++;
      continue;
    }
    const hi = hexValue(s.charCodeAt(i + 1));
    const lo = hexValue(s.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return undefined;
    const ch = String.fromCharCode(hi * 16 + lo);
    out += UNRESERVED.test(ch) ? ch : '%' + HEX[hi] + HEX[lo];
    i += 3;
  }
  return out;
}

/** A compiled list of query parameter names to leave out of the key. */
export interface QueryIgnore {
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly patterns: readonly RegExp[];
}

export function compileQueryIgnore(list: ReadonlyArray<string | RegExp>): QueryIgnore {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const patterns: RegExp[] = [];
  for (const item of list) {
    if (item instanceof RegExp) patterns.push(item);
    else if (item.endsWith('*')) prefixes.push(item.slice(0, -1));
    else exact.add(item);
  }
  return { exact, prefixes, patterns };
}

/** Whether a (decoded) query parameter name is left out of keys. */
export function isIgnoredParam(name: string, ignore: QueryIgnore): boolean {
  if (ignore.exact.has(name)) return true;
  for (const p of ignore.prefixes) if (name.startsWith(p)) return true;
  for (const r of ignore.patterns) {
    r.lastIndex = 0;
    if (r.test(name)) return true;
  }
  return false;
}

/** The result of normalizing a query string. */
export interface NormalizedQuery {
  /** The query for the key, without `?`; `''` when nothing is left. */
  readonly key: string;
  /** True when an ignored parameter was removed: the request URL the app sees is rewritten. */
  readonly stripped: boolean;
}

/**
 * Normalizes a raw query string (without `?`): drops empty pairs and ignored parameters, fixes
 * percent-encoding, and (when `sort`) orders parameters by their decoded name, keeping the
 * relative order of repeated names (`a=2&a=1` is not `a=1&a=2` to most applications), however
 * each is spelled: `a+b=1&a%20b=2` is the parameter `a b` twice to a form parser, so its two
 * values keep their order. `+` is left alone: it means a space to form parsers but a plus sign to
 * others, so merging it with `%20` could serve the wrong page.
 * Returns `undefined` for malformed percent-encoding.
 */
export function normalizeQuery(
  raw: string,
  ignore: QueryIgnore,
  sort: boolean,
): NormalizedQuery | undefined {
  if (raw === '') return { key: '', stripped: false };
  const parts = raw.split('&');
  const kept: Array<{ name: string; pair: string }> = [];
  let stripped = false;
  for (const part of parts) {
    if (part === '') continue;
    const pair = normalizePercentEncoding(part);
    if (pair === undefined) return undefined;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    let decodedName: string;
    try {
      decodedName = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      return undefined;
    }
    if (isIgnoredParam(decodedName, ignore)) {
      stripped = true;
      continue;
    }
    kept.push({ name: decodedName, pair });
  }
  if (sort) kept.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let key = '';
  for (const k of kept) key = key === '' ? k.pair : key + '&' + k.pair;
  return { key, stripped };
}

/**
 * The canonical path tag of a request path (no query, no fragment): percent-decoded, dot segments
 * resolved (RFC 3986 §5.2.4), case-folded, duplicate and trailing slashes removed. `/ICE-CREAM/`,
 * `/ice-cream`, `//ice-cream//` and `/ice%2Dcream` all give `/ice-cream`. Returns `undefined`
 * for a path that cannot be decoded.
 */
export function canonicalPath(path: string): string | undefined {
  let decoded: string;
  try {
    decoded = path.indexOf('%') === -1 ? path : decodeURIComponent(path);
  } catch {
    return undefined;
  }
  const out: string[] = [];
  for (const seg of decoded.toLowerCase().split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

/** Tags that let `invalidatePrefix('/ice-cream')` reach `/ice-cream/vanilla`: `/*`, `/ice-cream/*`. */
export function prefixTags(canonical: string): string[] {
  const tags = ['/*'];
  if (canonical === '/') return tags;
  let i = canonical.indexOf('/', 1);
  while (i !== -1) {
    tags.push(canonical.slice(0, i) + '/*');
    i = canonical.indexOf('/', i + 1);
  }
  return tags;
}

/** The tags that invalidating a prefix bumps: the prefix's own page and everything below it. */
export function tagsForPrefix(canonical: string): string[] {
  return canonical === '/' ? ['/', '/*'] : [canonical, canonical + '/*'];
}

/** Splits a request target (origin-form or absolute-form) into path and raw query, dropping any fragment. */
export function splitTarget(target: string): { path: string; query: string; host?: string } | undefined {
  let t = target;
  const hash = t.indexOf('#');
  if (hash !== -1) t = t.slice(0, hash);
  let host: string | undefined;
  if (t.charCodeAt(0) !== 47 /* / */) {
    // absolute-form (RFC 9112 §3.2.2), as a proxy would send it; anything else is not a page.
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)(.*)$/.exec(t);
    if (!m) return undefined;
    host = m[1]!.replace(/^[^@]*@/, '');
    t = m[2] === '' ? '/' : m[2]!;
    if (t.charCodeAt(0) !== 47) t = '/' + t;
  }
  const q = t.indexOf('?');
  return q === -1
    ? { path: t, query: '', host }
    : { path: t.slice(0, q), query: t.slice(q + 1), host };
}
