/**
 * The types of `page-dumper/adapter`, what an HTTP adapter is written with, walked through once
 * against a real dumper; and the main entry, which applications import, without them. Checked by
 * `npm run typecheck`; each `@ts-expect-error` marks a mistake that must stay a type error.
 */
import { describe, expect, expectTypeOf, test } from 'vitest';
import {
  ageOf,
  appendCacheStatus,
  isBypass,
  notModified,
  notModifiedHeaders,
  readHeader,
  type AppView,
  type Bypass,
  type BypassReason,
  type CacheStatusValues,
  type Fill,
  type HeaderSource,
  type Log,
  type MissPlan,
  type Reply,
  type Representation,
  type StoredEntry,
  type UnsafeResponse,
} from '../../src/adapter/index.js';
import * as main from '../../src/index.js';
import type * as mainTypes from '../../src/index.js';

describe('page-dumper/adapter types', () => {
  test('a miss filled, then hit and answered with 304, through the adapter API', async () => {
    const dumper = main.createDumper({ logger: false, cacheStatus: true });
    const headers: HeaderSource = { host: 'site.example' };
    const key = dumper.keyFor('GET', '/a', headers);
    expectTypeOf(key).toEqualTypeOf<string | Bypass>();
    if (isBypass(key)) throw new Error(`bypassed: ${key.bypass}`);
    expectTypeOf(key).toBeString();
    expect(await dumper.get(key, headers)).toBeUndefined();

    const plan = await dumper.beginFill(key, 'GET', headers);
    expectTypeOf(plan).toEqualTypeOf<MissPlan>();
    if (plan.kind !== 'fill') throw new Error(`not a fill: ${plan.kind}`);
    expectTypeOf(plan.fill).toEqualTypeOf<Fill>();
    expectTypeOf(plan.fill.view).toEqualTypeOf<AppView>();
    expect(plan.fill.view.target).toBe('/a');
    expect(plan.fill.run(() => 'rendered')).toBe('rendered');
    const head = ['content-type', 'text/plain', 'last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT'];
    expect(plan.fill.head(200, head)).toBeUndefined();
    expect(await plan.fill.complete(200, head, new TextEncoder().encode('hello'))).toBe(true);

    const entry = await dumper.get(key, headers);
    expectTypeOf(entry).toEqualTypeOf<StoredEntry | undefined>();
    if (entry === undefined) throw new Error('not stored');
    const reply = dumper.reply(entry, 'GET', headers);
    expectTypeOf(reply).toEqualTypeOf<Reply>();
    expectTypeOf(reply.representation).toEqualTypeOf<Representation>();
    expect(reply.status).toBe(200);
    expect(new TextDecoder().decode(reply.body)).toBe('hello');
    expect(reply.headers).toContain(dumper.cacheStatusHeader);

    const again = dumper.reply(entry, 'GET', { ...headers, 'if-none-match': reply.representation.etag });
    expect(again.status).toBe(304);
    expect(again.body).toBeUndefined();
    expect(notModified(entry.etag, entry.headers, entry.etag, undefined)).toBe(true);
    expect(notModified(entry.etag, entry.headers, undefined, 'Sun, 31 Dec 2023 00:00:00 GMT')).toBe(false);
    // A 304 repeats the validators, never the content type (RFC 9110 §15.4.5).
    expect(notModifiedHeaders(entry.headers)).toEqual(['last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT', 'etag', entry.etag]);

    expectTypeOf(dumper.cacheStatus).toEqualTypeOf<CacheStatusValues | undefined>();
    const values = dumper.cacheStatus!;
    expect(appendCacheStatus('origin; hit', values.miss, values.cache)).toBe(`origin; hit, ${values.miss}`);
    expectTypeOf(values.bypass).toEqualTypeOf<Readonly<Record<BypassReason, string>>>();

    expectTypeOf(dumper.log).toEqualTypeOf<Log>();
    expect(dumper.log.debugEnabled).toBe(false);
    expectTypeOf(dumper.afterUnsafe).parameters.toEqualTypeOf<[done: UnsafeResponse]>();
    dumper.afterUnsafe({ method: 'POST', target: '/a', host: 'site.example', status: 204 });
    await dumper.close();
  });

  test('helpers', () => {
    expectTypeOf(readHeader).parameters.toEqualTypeOf<[headers: HeaderSource, name: string]>();
    expectTypeOf(readHeader).returns.toEqualTypeOf<string | undefined>();
    expectTypeOf(new Headers()).toMatchTypeOf<HeaderSource>();
    expect(readHeader(new Headers({ 'X-A': '1' }), 'x-a')).toBe('1');
    expect(readHeader({ 'x-a': ['1', '2'] }, 'x-a')).toBe('1, 2');
    expectTypeOf(ageOf).returns.toBeString();
    expect(ageOf(0, 2500)).toBe('2');
    expectTypeOf(isBypass).guards.toEqualTypeOf<Bypass>();
  });

  test('mistakes are type errors', () => {
    const mistakes = (dumper: main.Dumper) => {
      // @ts-expect-error keyFor() takes the method, the target and the request headers
      dumper.keyFor('/a', { host: 'x' });
      // @ts-expect-error a Fill is made by dumper.beginFill(), not by an adapter: a type only
      new Fill();
      // @ts-expect-error afterUnsafe() needs the response status
      dumper.afterUnsafe({ method: 'POST', target: '/a', host: 'x' });
    };
    expectTypeOf(mistakes).toBeFunction();
  });
});

describe('the main entry is the application API', () => {
  test('it does not export what page-dumper/adapter does', () => {
    for (const name of ['Fill', 'isBypass', 'appendCacheStatus', 'ageOf', 'notModified', 'notModifiedHeaders', 'readHeader']) {
      expect(Object.keys(main)).not.toContain(name);
    }
    // What applications and store tools use stays.
    for (const name of ['createDumper', 'Dumper', 'MemoryStore', 'canonicalPath', 'isEnumerable', 'listEntries', 'warm']) {
      expect(Object.keys(main)).toContain(name);
    }
  });

  test('nor its types', () => {
    const absent = () => {
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.Bypass>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.MissPlan>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.Reply>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.Representation>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.HeaderSource>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.CacheStatusValues>();
      // @ts-expect-error in page-dumper/adapter
      expectTypeOf<mainTypes.Fill>();
      // Still there: the reasons are in stats() and on the bypass channel.
      expectTypeOf<mainTypes.BypassReason>().toEqualTypeOf<BypassReason>();
    };
    expectTypeOf(absent).toBeFunction();
  });
});

describe('an adapter written with the public entries only', () => {
  test('passes a bypassed page through with the edge headers the built-in adapters send, and logs its decisions as they do', async () => {
    const { createServer } = await import('node:http');
    const { varnishPurger } = await import('../../src/edge/index.js');
    const { withDumper } = await import('../../src/http/node/index.js');
    const { listen } = await import('../support/listen.js');
    type Listener = Parameters<typeof createServer>[1] & {};
    const app: Listener = (_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<p>page</p>');
    };
    // A made-up framework's adapter: a bypass only (hits and fills are walked through above).
    const outside = (dumper: main.Dumper): Listener => (req, res) => {
      const key = dumper.keyFor(req.method!, req.url!, req.headers);
      if (!isBypass(key)) return app(req, res);
      dumper.logDecision('skipped getting', { method: req.method!, path: req.url!, key: '', reason: key.bypass });
      if (dumper.cacheStatusHeader !== undefined) res.setHeader(dumper.cacheStatusHeader, 'BYPASS');
      if (dumper.edgePurging) {
        const writeHead = res.writeHead;
        res.writeHead = function (this: typeof res, ...args: Parameters<typeof writeHead>) {
          const edge = dumper.passThroughHeaders(req.method!, (name) => {
            const v = res.getHeader(name);
            return v === undefined ? undefined : String(v);
          });
          for (let i = 0; i < edge.length; i += 2) res.setHeader(edge[i]!, edge[i + 1]!);
          return writeHead.apply(this, args);
        } as typeof writeHead;
      }
      app(req, res);
    };
    const headersThrough = async (wrap: (d: main.Dumper) => Listener) => {
      const logged: string[] = [];
      const dumper = main.createDumper({ logger: { debug: (m: string) => logged.push(m) }, purgers: [varnishPurger({ url: 'http://127.0.0.1:9/' })] });
      const m = await listen(wrap(dumper));
      const r = await fetch(m.url + '/page', { headers: { authorization: 'Bearer x' } });
      await r.text();
      await m.close();
      await dumper.close();
      const headers = Object.fromEntries([...r.headers].filter(([name]) => ['cache-control', 'surrogate-control', 'x-cache'].includes(name)));
      return { headers, logged: logged.filter((l) => l.includes('skipped getting')) };
    };
    const builtIn = await headersThrough((d) => withDumper(d, app));
    const own = await headersThrough(outside);
    expect(builtIn.headers).toEqual({ 'cache-control': 'private, max-age=0, must-revalidate', 'surrogate-control': 'no-store', 'x-cache': 'BYPASS' });
    expect(own).toEqual(builtIn);
    expectTypeOf<main.Dumper['passThroughHeaders']>().parameters.toEqualTypeOf<[string, (name: string) => string | undefined]>();
  });
});
