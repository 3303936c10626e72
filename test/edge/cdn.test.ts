/**
 * fastlyPurger and cloudflarePurger against local servers that implement the vendors' documented
 * purge APIs: authentication, payload shape, per-request limits (a request over the limit is
 * refused, as the vendor refuses it), 429 with Retry-After. Each fake names the document it was
 * written from. Also varnishPurger's handling of several instances, against fake instances.
 */
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import { cloudflarePurger, fastlyPurger, varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper } from '../../src/index.js';
import { EDGE_ALL_TAG, edgeBucket, purgeTags } from '../../src/core/purge.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** `Date.now()` when it arrived. */
  at: number;
}

/** A fake API: records every request; `reply` decides the answer (after the fake's own checks). */
async function fakeApi(check: (r: Received) => { status: number; headers?: Record<string, string>; body: unknown }): Promise<Mounted & { received: Received[]; next: Array<(r: Received) => { status: number; headers?: Record<string, string>; body: unknown } | undefined> }> {
  const received: Received[] = [];
  const next: Array<(r: Received) => { status: number; headers?: Record<string, string>; body: unknown } | undefined> = [];
  const server = await listen((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const r: Received = { method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() };
      received.push(r);
      const answer = next.shift()?.(r) ?? check(r);
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
  });
  return Object.assign(server, { received, next });
}

/**
 * Fastly, written from the API reference, "Purging" (https://www.fastly.com/documentation/reference/api/purging/),
 * "Purge multiple surrogate keys": `POST /service/{service_id}/purge`, the token in `Fastly-Key`,
 * the keys in a JSON body `{"surrogate_keys": [...]}` (or a space-separated `Surrogate-Key`
 * header), at most 256 keys per request, `Fastly-Soft-Purge: 1` for a soft purge; the answer maps
 * each key to a purge id. And "Rate limiting" (https://www.fastly.com/documentation/reference/api/#rate-limiting):
 * 429 when over the limit.
 */
function fastlyCheck(serviceId: string, token: string) {
  return (r: Received) => {
    if (r.method !== 'POST' || r.url !== `/service/${serviceId}/purge`) return { status: 404, body: { msg: 'Record not found' } };
    if (r.headers['fastly-key'] !== token) return { status: 401, body: { msg: 'Provided credentials are missing or invalid' } };
    let keys: unknown;
    try {
      keys = r.headers['surrogate-key'] !== undefined ? String(r.headers['surrogate-key']).split(' ') : (JSON.parse(r.body) as { surrogate_keys?: unknown }).surrogate_keys;
    } catch {
      return { status: 400, body: { msg: 'Bad request' } };
    }
    if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => typeof k !== 'string')) return { status: 400, body: { msg: 'Bad request' } };
    if (keys.length > 256) return { status: 400, body: { msg: 'Too many surrogate keys (max 256)' } };
    return { status: 200, body: Object.fromEntries(keys.map((k: string, i: number) => [k, `purge-${i}`])) };
  };
}

/**
 * Cloudflare, written from the API reference, "Purge Cached Content"
 * (https://developers.cloudflare.com/api/resources/cache/methods/purge/): `POST
 * /client/v4/zones/{zone_id}/purge_cache`, `Authorization: Bearer <token>`, `{"tags": [...]}`,
 * an envelope `{"success", "errors", "messages", "result"}`; and "Purge cache"
 * (https://developers.cloudflare.com/cache/how-to/purge-cache/): at most 100 operations (tags)
 * per request, a token bucket rate limit answered with 429.
 */
function cloudflareCheck(zoneId: string, token: string) {
  const envelope = (success: boolean, errors: Array<{ code: number; message: string }> = []) => ({
    success,
    errors,
    messages: [],
    result: success ? { id: zoneId } : null,
  });
  return (r: Received) => {
    if (r.method !== 'POST' || r.url !== `/client/v4/zones/${zoneId}/purge_cache`) return { status: 404, body: envelope(false, [{ code: 7003, message: 'No route' }]) };
    if (r.headers.authorization !== `Bearer ${token}`) return { status: 403, body: envelope(false, [{ code: 10000, message: 'Authentication error' }]) };
    let tags: unknown;
    try {
      tags = (JSON.parse(r.body) as { tags?: unknown }).tags;
    } catch {
      return { status: 400, body: envelope(false, [{ code: 1012, message: 'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"' }]) };
    }
    if (!Array.isArray(tags) || tags.length === 0) return { status: 400, body: envelope(false, [{ code: 1012, message: 'Request must contain tags' }]) };
    if (tags.length > 100) return { status: 400, body: envelope(false, [{ code: 1018, message: 'Too many tags; a maximum of 100 is allowed per request' }]) };
    return { status: 200, body: envelope(true) };
  };
}

let dumpers: Dumper[] = [];
let servers: Mounted[] = [];
afterEach(async () => {
  await Promise.all(dumpers.map((d) => d.close()));
  await Promise.all(servers.map((s) => s.close()));
  dumpers = [];
  servers = [];
});

function make(options: Parameters<typeof createDumper>[0]): Dumper {
  const d = createDumper({ logger: false, trackRenders: true, ...options });
  dumpers.push(d);
  return d;
}

/** The set of keys the fake was asked to purge, from JSON bodies. */
const keysOf = (r: Received, field: 'surrogate_keys' | 'tags') => (JSON.parse(r.body) as Record<string, string[]>)[field]!;

async function originHeaders(dumper: Dumper, path: string): Promise<http.IncomingHttpHeaders> {
  const origin = await listen(
    withDumper(dumper, (_req, res) => {
      dumper.tag('flavour:vanilla');
      res.end('page');
    }),
  );
  servers.push(origin);
  return new Promise((resolve, reject) => http.get(`${origin.url}${path}`, (r) => resolve(r.resume().headers)).on('error', reject));
}

describe('fastlyPurger', () => {
  test('pages carry Surrogate-Key and Surrogate-Control; a purge is the documented request, up to 256 keys each', async () => {
    const api = await fakeApi(fastlyCheck('SVC123', 'tok'));
    servers.push(api);
    const dumper = make({ purgers: [fastlyPurger({ serviceId: 'SVC123', token: 'tok', endpoint: api.url })], edge: { raceWindow: 400 } });
    const headers = await originHeaders(dumper, '/flavours/vanilla');
    expect(String(headers['surrogate-key']).split(' ')).toEqual([EDGE_ALL_TAG, '/flavours/vanilla', 'flavour:vanilla']);
    expect(headers['surrogate-control']).toBe('max-age=31536000');
    // 300 tags and their buckets: more than one request can take.
    const tags = Array.from({ length: 300 }, (_, i) => `flavour:${i}`);
    await dumper.invalidateTags(tags);
    await dumper.flushPurges();
    expect(api.received.every((r) => r.headers['fastly-key'] === 'tok' && r.headers['fastly-soft-purge'] === undefined)).toBe(true);
    expect(api.received.every((r) => r.headers['content-type'] === 'application/json')).toBe(true);
    const sizes = api.received.map((r) => keysOf(r, 'surrogate_keys').length);
    expect(Math.max(...sizes)).toBe(256);
    const want = purgeTags({ name: 'surrogate-key', separator: ' ', maxBytes: 16384, maxTagBytes: 1024 }, tags);
    expect(new Set(api.received.flatMap((r) => keysOf(r, 'surrogate_keys')))).toEqual(new Set(want));
    expect(dumper.purgeStats.failed).toBe(0);
    // The key the page carries is one a purge of its tag sends.
    await dumper.invalidateTags('flavour:vanilla');
    await dumper.flushPurges();
    expect(keysOf(api.received.at(-1)!, 'surrogate_keys')).toContain('flavour:vanilla');
  });

  test('soft: true sends Fastly-Soft-Purge: 1', async () => {
    const api = await fakeApi(fastlyCheck('SVC', 'tok'));
    servers.push(api);
    const dumper = make({ purgers: [fastlyPurger({ serviceId: 'SVC', token: 'tok', soft: true, endpoint: api.url })], edge: { raceWindow: 400 } });
    await dumper.invalidate('/a');
    await dumper.flushPurges();
    expect(api.received.length).toBeGreaterThan(0);
    expect(api.received.every((r) => r.headers['fastly-soft-purge'] === '1')).toBe(true);
  });

  test('a 429 with Retry-After puts the purge back until then; a 401 is retried too, and counted', async () => {
    const api = await fakeApi(fastlyCheck('SVC', 'tok'));
    servers.push(api);
    const store = new MemoryStore();
    const dumper = make({ store, purgers: [fastlyPurger({ serviceId: 'SVC', token: 'tok', endpoint: api.url })], edge: { raceWindow: 3_600_000, retryDelay: 10 } });
    api.next.push(() => ({ status: 429, headers: { 'retry-after': '30' }, body: { msg: 'Too many requests' } }));
    await dumper.invalidate('/a');
    for (let i = 0; i < 500 && dumper.purgeStats.retried === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const refusedAt = api.received[0]!.at;
    const stats = store.queueStats('dumper.cached_path.purge fastly SVC');
    // Due 30 s after the 429 (Retry-After), not after retryDelay (10 ms).
    expect(stats.nextDue!).toBeGreaterThanOrEqual(refusedAt + 29_000);
    expect(dumper.purgeStats).toMatchObject({ failed: 1, retried: 1, sent: 0 });

    const wrong = make({ purgers: [fastlyPurger({ serviceId: 'SVC', token: 'wrong', endpoint: api.url })], edge: { raceWindow: 3_600_000, retryDelay: 10 } });
    await wrong.invalidate('/b');
    for (let i = 0; i < 500 && wrong.purgeStats.failed < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(wrong.purgeStats.failed).toBeGreaterThanOrEqual(2);
    expect(wrong.purgeStats.sent).toBe(0);
  });

  test('options are checked', () => {
    expect(() => fastlyPurger({ serviceId: 's', token: 't', softPurge: true } as never)).toThrow(
      new TypeError('page-dumper: fastlyPurger() has no option "softPurge" (did you mean "soft"?); its options are serviceId, token, soft, endpoint, timeout'),
    );
    expect(() => fastlyPurger({ serviceId: '', token: 't' })).toThrow(new TypeError('page-dumper: fastlyPurger() option "serviceId" must be a non-empty string without spaces or slashes'));
    expect(() => fastlyPurger({ serviceId: 's', token: '' })).toThrow(new TypeError('page-dumper: fastlyPurger() option "token" must be a non-empty string'));
    expect(() => fastlyPurger({ serviceId: 's', token: 't', endpoint: 'ftp://x' })).toThrow(
      new TypeError('page-dumper: fastlyPurger() option "endpoint" must be an http or https URL, got "ftp://x"'),
    );
    expect(() => fastlyPurger({ serviceId: 's', token: 't', timeout: 0 })).toThrow(
      new TypeError('page-dumper: fastlyPurger() option "timeout" must be a positive integer (milliseconds), got 0'),
    );
  });
});

describe('cloudflarePurger', () => {
  test('pages carry Cache-Tag and CDN-Cache-Control (RFC 9213); a purge is the documented request, up to 100 tags each', async () => {
    const api = await fakeApi(cloudflareCheck('ZONE1', 'cf-token'));
    servers.push(api);
    const dumper = make({
      purgers: [cloudflarePurger({ zoneId: 'ZONE1', token: 'cf-token', endpoint: `${api.url}/client/v4` })],
      edge: { raceWindow: 400 },
    });
    const headers = await originHeaders(dumper, '/flavours/vanilla');
    expect(headers['cache-tag']).toBe(`${EDGE_ALL_TAG}, /flavours/vanilla, flavour:vanilla`);
    expect(headers['cdn-cache-control']).toBe('max-age=31536000');
    expect(headers['cache-control']).toBe('max-age=0, must-revalidate');
    const tags = Array.from({ length: 150 }, (_, i) => `product:${i}`);
    await dumper.invalidateTags(tags);
    await dumper.flushPurges();
    expect(api.received.every((r) => r.headers.authorization === 'Bearer cf-token')).toBe(true);
    const sizes = api.received.map((r) => keysOf(r, 'tags').length);
    expect(Math.max(...sizes)).toBe(100);
    const want = purgeTags({ name: 'cache-tag', separator: ',', maxBytes: 16000, maxTagBytes: 1024 }, tags);
    expect(new Set(api.received.flatMap((r) => keysOf(r, 'tags')))).toEqual(new Set(want));
    expect(dumper.purgeStats.failed).toBe(0);
  });

  test('an answer with success: false is retried; a 429 with Retry-After waits', async () => {
    const api = await fakeApi(cloudflareCheck('Z', 't'));
    servers.push(api);
    const store = new MemoryStore();
    const dumper = make({ store, purgers: [cloudflarePurger({ zoneId: 'Z', token: 't', endpoint: `${api.url}/client/v4` })], edge: { raceWindow: 20, retryDelay: 10 } });
    api.next.push(() => ({ status: 200, body: { success: false, errors: [{ code: 1134, message: 'Purge failed' }], messages: [], result: null } }));
    await dumper.invalidate('/a');
    await dumper.flushPurges();
    expect(dumper.purgeStats.failed).toBe(1);
    expect(api.received.filter((r) => keysOf(r, 'tags').includes('/a')).length).toBeGreaterThanOrEqual(2);

    api.next.push(() => ({ status: 429, headers: { 'retry-after': '45' }, body: { success: false, errors: [{ code: 971, message: 'rate limited' }], messages: [], result: null } }));
    const slow = make({ store, purgers: [cloudflarePurger({ zoneId: 'Z', token: 't', endpoint: `${api.url}/client/v4` })], keyPrefix: 'other.', edge: { raceWindow: 3_600_000, retryDelay: 10 } });
    await slow.invalidate('/b');
    for (let i = 0; i < 500 && slow.purgeStats.retried === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const refusedAt = api.received.at(-1)!.at;
    expect(store.queueStats('other.purge cloudflare Z').nextDue!).toBeGreaterThanOrEqual(refusedAt + 44_000);
  });

  test('options are checked', () => {
    expect(() => cloudflarePurger({ zoneId: 'z', token: 't', maxBatch: 501 })).toThrow(
      new TypeError('page-dumper: cloudflarePurger() option "maxBatch" must be an integer from 1 to 500, got 501'),
    );
    expect(() => cloudflarePurger({ zoneId: 'a/b', token: 't' })).toThrow(TypeError);
    expect(() => cloudflarePurger({ zoneId: 'z', token: 't', maxbatch: 500 } as never)).toThrow(
      new TypeError('page-dumper: cloudflarePurger() has no option "maxbatch" (did you mean "maxBatch"?); its options are zoneId, token, maxBatch, endpoint, timeout'),
    );
  });
});

describe('varnishPurger against several instances', () => {
  test('a purge an instance failed is sent to it again until it acknowledged it; the other instance, from its own queue, once', async () => {
    const answers = [200, 200];
    const got: Array<{ port: number; tags: string }> = [];
    const instance = async (i: number) => {
      const m = await listen((req, res) => {
        got.push({ port: i, tags: String(req.headers['xkey-purge']) });
        expect(req.method).toBe('PURGE');
        res.writeHead(answers[i]!).end();
      });
      servers.push(m);
      return m;
    };
    const [a, b] = [await instance(0), await instance(1)];
    answers[1] = 503;
    const dumper = make({ purgers: [varnishPurger({ url: [a.url, b.url] })], edge: { raceWindow: 3_600_000, retryDelay: 10 } });
    await dumper.invalidate('/x');
    for (let i = 0; i < 500 && dumper.purgeStats.failed === 0; i++) await new Promise((r) => setTimeout(r, 10));
    answers[1] = 200;
    for (let i = 0; i < 500 && dumper.purgeStats.sent < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(dumper.purgeStats).toMatchObject({ failed: 1, sent: 2 });
    const want = `/x ${edgeBucket('/x')}`;
    expect(got.filter((g) => g.port === 1 && g.tags === want).length).toBe(2);
    expect(got.filter((g) => g.port === 0 && g.tags === want).length).toBe(1);
  });

  test('soft: true asks for xkey.softpurge (the xkey-softpurge header the VCL reads)', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const m = await listen((req, res) => {
      seen.push(req.headers);
      res.end();
    });
    servers.push(m);
    const dumper = make({ purgers: [varnishPurger({ url: m.url, soft: true })], edge: { raceWindow: 3_600_000 } });
    await dumper.invalidate('/x');
    for (let i = 0; i < 500 && dumper.purgeStats.sent === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(seen[0]).toMatchObject({ 'xkey-purge': `/x ${edgeBucket('/x')}`, 'xkey-softpurge': '1' });
  });

  test('options are checked', () => {
    expect(() => varnishPurger({ url: [] })).toThrow(new TypeError('page-dumper: varnishPurger() option "url" must be a URL or a non-empty array of URLs'));
    expect(() => varnishPurger({ url: 'localhost:6081' })).toThrow(TypeError);
    expect(() => varnishPurger({ urls: ['http://127.0.0.1:6081'] } as never)).toThrow(
      new TypeError('page-dumper: varnishPurger() has no option "urls" (did you mean "url"?); its options are url, soft, timeout'),
    );
  });
});
