/** The dashboard's pieces on their own: options, the token check, the session cookie, the bounded structures. */
import type { IncomingMessage } from 'node:http';
import { describe, expect, test } from 'vitest';
import { Credentials, crossSite, MAX_ENDED_SESSIONS, safeEqual, sameOrigin } from '../../src/dashboard/auth.js';
import { Ring, TopCounter } from '../../src/dashboard/bounded.js';
import { dashboardHandler } from '../../src/dashboard/index.js';
import { createDumper } from '../../src/index.js';
import { TOKEN } from './support.js';

describe('dashboardHandler() options', () => {
  const dumper = createDumper({ logger: false });

  test('without options, or without a token, is a TypeError naming the option', () => {
    expect(() => (dashboardHandler as (d: unknown) => unknown)(dumper)).toThrow(
      new TypeError('page-dumper: dashboardHandler(dumper, options) needs the option "token" (a secret of at least 16 characters)'),
    );
    expect(() => dashboardHandler(dumper, {} as never)).toThrow('needs the option "token"');
  });

  test('a weak token is a TypeError', () => {
    expect(() => dashboardHandler(dumper, { token: '0123456789abcde' })).toThrow(
      new TypeError('page-dumper: dashboardHandler() option "token" must be a string of at least 16 characters'),
    );
    expect(() => dashboardHandler(dumper, { token: 42 as never })).toThrow('option "token" must be a string of at least 16 characters');
    dashboardHandler(dumper, { token: '0123456789abcdef' }).close();
  });

  test('other options are checked too', () => {
    expect(() => dashboardHandler(dumper, { token: TOKEN, sampleInterval: 0 })).toThrow(
      new TypeError('page-dumper: dashboardHandler() option "sampleInterval" must be an integer of at least 100, got 0'),
    );
    expect(() => dashboardHandler(dumper, { token: TOKEN, trackedPages: 1.5 })).toThrow('option "trackedPages" must be an integer of at least 2, got 1.5');
    expect(() => dashboardHandler(dumper, { token: TOKEN, basePath: '_cache' })).toThrow('option "basePath" must be a path like "/_cache", got "_cache"');
    expect(() => dashboardHandler(dumper, { token: TOKEN, basePath: '/a;b' })).toThrow('option "basePath"');
    expect(() => dashboardHandler(dumper, { token: TOKEN, secureCookie: 'yes' as never })).toThrow('option "secureCookie"');
    expect(() => dashboardHandler({} as never, { token: TOKEN })).toThrow('page-dumper: dashboardHandler() needs a dumper made by createDumper()');
  });
});

describe('the token check', () => {
  test('safeEqual compares whole values, of any lengths', () => {
    expect(safeEqual(TOKEN, TOKEN)).toBe(true);
    expect(safeEqual(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(safeEqual(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(safeEqual('', TOKEN)).toBe(false);
    expect(safeEqual(TOKEN.toUpperCase(), TOKEN)).toBe(false);
  });

  test('Authorization: Bearer', () => {
    const c = new Credentials(TOKEN, 3600_000);
    expect(c.bearer(`Bearer ${TOKEN}`)).toBe(true); // spaces and all
    expect(c.bearer(`Bearer ${TOKEN.slice(0, -1)}`)).toBe(false);
    const t = 'Zm9vYmFyYmF6cXV4cXV1eA';
    const d = new Credentials(t, 3600_000);
    expect(d.bearer(`Bearer ${t}`)).toBe(true);
    expect(d.bearer(`bearer ${t}`)).toBe(true);
    expect(d.bearer(`Bearer ${t}x`)).toBe(false);
    expect(d.bearer(`Basic ${t}`)).toBe(false);
    expect(d.bearer(undefined)).toBe(false);
  });

  test('the session cookie holds an HMAC keyed by the token, expires, and dies with the token', () => {
    const c = new Credentials(TOKEN, 3600_000);
    const now = 1_800_000_000_000;
    const value = c.issue(now);
    expect(value).not.toContain(TOKEN);
    expect(value).toMatch(/^v2\.[0-9a-z]+\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    const session = c.session(value, now + 1000);
    expect(session?.issued).toBe(now);
    // The CSRF token is another HMAC, bound to the session.
    expect(session?.csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(session?.csrf).not.toBe(value.split('.')[3]);
    expect(c.session(c.issue(now + 1), now + 1000)?.csrf).not.toBe(session?.csrf);
    // Expired, from the future, forged, from another token.
    expect(c.session(value, now + 3600_000)).toBeUndefined();
    expect(c.session(c.issue(now + 120_000), now)).toBeUndefined();
    const [v, issued, id, mac] = value.split('.');
    expect(c.session(`${v}.${(now + 1).toString(36)}.${id}.${mac}`, now + 1000)).toBeUndefined();
    expect(c.session(`${v}.${issued}.${id!.slice(0, -1)}${id!.endsWith('A') ? 'B' : 'A'}.${mac}`, now + 1000)).toBeUndefined();
    expect(c.session(`${v}.${issued}.${id}.${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'B' : 'A'}`, now + 1000)).toBeUndefined();
    expect(new Credentials(`${TOKEN}!`, 3600_000).session(value, now + 1000)).toBeUndefined();
    expect(c.session(TOKEN, now)).toBeUndefined();
    expect(c.session(undefined, now)).toBeUndefined();
  });

  test('end(): a logged-out session is refused, others are not; past MAX_ENDED_SESSIONS every session issued so far ends, and memory is given back', () => {
    const c = new Credentials(TOKEN, 3600_000);
    const now = 1_800_000_000_000;
    const a = c.issue(now);
    const b = c.issue(now);
    expect(a).not.toBe(b);
    c.end(c.session(a, now + 1)!, now + 1);
    expect(c.session(a, now + 2)).toBeUndefined();
    expect(c.session(b, now + 2)?.issued).toBe(now);
    // Expired ids are forgotten as later logouts come.
    for (let i = 0; i < MAX_ENDED_SESSIONS - 1; i++) c.end(c.session(c.issue(now + 10), now + 10)!, now + 10);
    expect(c.session(b, now + 20)?.issued).toBe(now);
    // Full: this logout ends every session issued until now, in place of remembering each.
    c.end(c.session(c.issue(now + 20), now + 20)!, now + 30);
    expect(c.session(b, now + 40)).toBeUndefined();
    expect(c.session(c.issue(now + 31), now + 40)?.issued).toBe(now + 31);
    // An hour later, the ids logged out since have expired and are dropped at the next logout.
    const later = now + 2 * 3600_000;
    const d = c.issue(later);
    c.end(c.session(d, later)!, later);
    expect(c.session(d, later + 1)).toBeUndefined();
    expect(c.session(c.issue(later), later + 1)).toBeDefined();
  });

  test('sameOrigin: Sec-Fetch-Site and Origin', () => {
    const req = (headers: Record<string, string>) => ({ headers: { host: 'example.test:8080', ...headers } }) as unknown as IncomingMessage;
    expect(sameOrigin(req({ origin: 'http://example.test:8080', 'sec-fetch-site': 'same-origin' }))).toBe(true);
    expect(sameOrigin(req({ origin: 'https://example.test:8080' }))).toBe(true);
    expect(sameOrigin(req({ 'sec-fetch-site': 'same-origin', origin: 'null' }))).toBe(true);
    expect(sameOrigin(req({ origin: 'http://evil.test' }))).toBe(false);
    expect(sameOrigin(req({ origin: 'http://example.test:8080', 'sec-fetch-site': 'cross-site' }))).toBe(false);
    expect(sameOrigin(req({ origin: 'http://example.test:8080', 'sec-fetch-site': 'same-site' }))).toBe(false);
    expect(sameOrigin(req({ 'sec-fetch-site': 'same-origin', origin: 'http://evil.test' }))).toBe(false);
    expect(sameOrigin(req({ origin: 'null' }))).toBe(false);
    expect(sameOrigin(req({}))).toBe(false);
    // Behind a proxy that passes the public host on.
    expect(sameOrigin(req({ origin: 'https://shop.test', 'x-forwarded-host': 'shop.test' }))).toBe(true);
    // crossSite: what a browser says about a bearer request; a script says nothing.
    expect(crossSite(req({}))).toBe(false);
    expect(crossSite(req({ 'sec-fetch-site': 'none' }))).toBe(false);
    expect(crossSite(req({ 'sec-fetch-site': 'same-origin', origin: 'http://example.test:8080' }))).toBe(false);
    expect(crossSite(req({ 'sec-fetch-site': 'same-site' }))).toBe(true);
    expect(crossSite(req({ origin: 'http://evil.test' }))).toBe(true);
    expect(crossSite(req({ 'sec-fetch-site': 'same-origin', origin: 'http://evil.test' }))).toBe(true);
    // Origin: null says nothing of where a request comes from; only Sec-Fetch-Site: same-origin vouches for it.
    expect(crossSite(req({ origin: 'null' }))).toBe(true);
    expect(crossSite(req({ 'sec-fetch-site': 'none', origin: 'null' }))).toBe(true);
    expect(crossSite(req({ 'sec-fetch-site': 'same-origin', origin: 'null' }))).toBe(false);
  });
});

describe('bounded structures', () => {
  test('Ring keeps the last items, oldest first', () => {
    const r = new Ring<number>(3);
    expect(r.toArray()).toEqual([]);
    r.push(1);
    r.push(2);
    expect(r.toArray()).toEqual([1, 2]);
    for (let i = 3; i <= 10; i++) r.push(i);
    expect(r.toArray()).toEqual([8, 9, 10]);
    expect(r.size).toBe(3);
    expect(() => new Ring(0)).toThrow(TypeError);
  });

  test('TopCounter counts exactly while it holds every key', () => {
    const t = new TopCounter(10);
    for (const [k, hit] of [['/a', true], ['/a', true], ['/b', false], ['/a', false], ['/c', true], ['/b', true]] as const) t.add(k, hit);
    expect(t.top(2)).toEqual([
      { key: '/a', hits: 2, misses: 1, error: 0 },
      { key: '/b', hits: 1, misses: 1, error: 0 },
    ]);
  });

  test('TopCounter holds at most `capacity` keys however many distinct keys come, and keeps the frequent ones', () => {
    const t = new TopCounter(100);
    let largest = 0;
    for (let i = 0; i < 100_000; i++) {
      t.add(`/junk/${i}`, false);
      if (i % 10 === 0) t.add('/popular', true);
      if (i % 25 === 0) t.add('/second', true);
      largest = Math.max(largest, t.size);
    }
    expect(largest).toBe(100);
    const [first, second] = t.top(2);
    expect(first!.key).toBe('/popular');
    expect(first!.hits).toBe(10_000);
    expect(second!.key).toBe('/second');
    // Upper bounds: never less than the true count.
    expect(second!.hits + second!.misses + second!.error).toBeGreaterThanOrEqual(4000);
  });

  test('TopCounter cuts long keys', () => {
    const t = new TopCounter(4, 16);
    t.add(`/${'x'.repeat(100)}`, true);
    expect(t.top(1)[0]!.key).toBe(`/${'x'.repeat(14)}…`);
  });
});
