import diagnostics from 'node:diagnostics_channel';
import { afterEach, describe, expect, test } from 'vitest';
import {
  CHANNELS,
  createDumper,
  MemoryStore,
  type BypassMessage,
  type HitMessage,
  type InvalidateMessage,
  type MissMessage,
  type RefusalMessage,
  type SetOptions,
  type StoredEntry,
  type StoreMessage,
} from '../../src/index.js';
import { refusalOf } from '../../src/core/stats.js';
import { eventually, metricsSite, type MetricsSite } from './support.js';

const open: MetricsSite[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function site(options: Parameters<typeof metricsSite>[0] = {}): Promise<MetricsSite> {
  const s = await metricsSite(options);
  open.push(s);
  return s;
}

/** Subscribes to every channel; `messages` holds what `dumper` published, by channel name. */
function listenAll() {
  const messages = new Map<string, Array<{ dumper: unknown }>>();
  const subscriptions = Object.values(CHANNELS).map((name) => {
    const fn = (message: unknown) => {
      const list = messages.get(name) ?? [];
      list.push(message as { dumper: unknown });
      messages.set(name, list);
    };
    diagnostics.subscribe(name, fn);
    return () => diagnostics.unsubscribe(name, fn);
  });
  return {
    of<T>(name: string, dumper: unknown): T[] {
      return (messages.get(name) ?? []).filter((m) => m.dumper === dumper) as T[];
    },
    stop: () => subscriptions.forEach((u) => u()),
  };
}

describe('dumper.stats()', () => {
  test('starts at zero, with every reason and kind present', () => {
    const d = createDumper({ logger: false });
    const s = d.stats();
    expect(s.hits + s.misses + s.coalesced + s.stores + s.storeErrors + s.bytesServed + s.bytesStored + s.notModified).toBe(0);
    expect(Object.keys(s.bypasses)).toHaveLength(13);
    expect(Object.values(s.bypasses).every((n) => n === 0)).toBe(true);
    expect(Object.keys(s.refusals)).toContain('store refused');
    expect(s.invalidations).toEqual({ paths: 0, tags: 0, prefix: 0, all: 0, dependents: 0, unsafe: 0 });
    expect(s.since).toBeLessThanOrEqual(Date.now());
  });

  test('a snapshot is a copy: changing it changes nothing, and later traffic does not change it', async () => {
    const { dumper, get } = await site();
    const s = dumper.stats();
    (s.bypasses as Record<string, number>).method = 99;
    await get('/page/a');
    expect(s.misses).toBe(0);
    expect(dumper.stats().bypasses.method).toBe(0);
    expect(dumper.stats().misses).toBe(1);
  });

  test('refusals by reason: a veto, too large, the fill protocol (a write during the render)', async () => {
    const { dumper, get, gate } = await site({ maxEntryBytes: 1024 });
    await get('/private');
    await get('/missing');
    await get('/big');
    const g = gate();
    const slow = get('/slow');
    await g.reached;
    await dumper.invalidate('/slow');
    g.release();
    await slow;
    await get('/tagged/x');
    const s = dumper.stats();
    expect(Object.entries(s.refusals).filter(([, n]) => n !== 0)).toEqual([
      ['status', 1],
      ['cache-control', 1],
      ['too large', 1],
      ['store refused', 1],
    ]);
    expect(s.stores).toBe(1);
    expect(s.misses).toBe(5);
  });

  test('invalidations by kind: paths, tags, prefix, all, dependents (changed() too), unsafe', async () => {
    const { dumper, get } = await site({ prefixInvalidation: true });
    class Flavour {
      dependentPaths() {
        return ['/page/flavours'];
      }
    }
    dumper.register(Flavour);
    await dumper.invalidate(['/page/a', '/page/b']);
    await dumper.invalidate([]);
    await dumper.invalidateTags('t');
    await dumper.invalidatePrefix('/page/');
    await dumper.invalidateAll();
    await dumper.changed(new Flavour());
    await dumper.invalidateDependents([await dumper.dependentsOf(new Flavour()), { model: 'Other', paths: ['/page/o'], tags: ['o'] }]);
    await get('/page/a', { method: 'POST' });
    expect(await eventually(() => dumper.stats().invalidations.unsafe === 1)).toBe(true);
    expect(dumper.stats().invalidations).toEqual({ paths: 1, tags: 1, prefix: 1, all: 1, dependents: 2, unsafe: 1 });
  });

  test('store errors: a failing set is counted, refused as a store error, and the next request bypasses while the store cools down', async () => {
    class FailingSet extends MemoryStore {
      override set(_key: string, _entry: StoredEntry, _options: SetOptions): boolean {
        throw new Error('disk full');
      }
    }
    const { dumper, get } = await site({ store: new FailingSet(), storeCooldown: 60_000 });
    expect((await get('/page/a')).status).toBe(200);
    expect((await get('/page/b')).status).toBe(200);
    const s = dumper.stats();
    expect(s.storeErrors).toBe(1);
    expect(s.refusals['store error']).toBe(1);
    expect(s.stores).toBe(0);
    expect(s.misses).toBe(1);
    expect(s.bypasses['store unavailable']).toBe(1);
  });

  test('a failing read is a store error and a miss', async () => {
    class FailingGet extends MemoryStore {
      override get(): StoredEntry | undefined {
        throw new Error('timeout');
      }
    }
    const { dumper, get } = await site({ store: new FailingGet() });
    await get('/page/a');
    const s = dumper.stats();
    expect(s.storeErrors).toBe(1);
    expect(s.misses).toBe(1);
    expect(s.hits).toBe(0);
  });

  test('the reasons adapters give map to their RefusalReason', () => {
    const cases: Array<[string, string]> = [
      ['status 404', 'status'],
      ['status changed to 500 after onSend', 'incomplete'],
      ['response sets a cookie', 'set-cookie'],
      ['Cache-Control: no-store', 'cache-control'],
      ['Cache-Control: no-transform on a compressed response', 'content-encoding'],
      ['Vary: cookie', 'vary'],
      ['Content-Encoding: compress (a coding page-dumper cannot decode)', 'content-encoding'],
      ['Content-Encoding set before the dumper ran', 'content-encoding'],
      ['the gzip body could not be decoded (bad header)', 'content-encoding'],
      ['event stream', 'event stream'],
      ['a static file (option staticFiles)', 'static file'],
      ['body larger than maxEntryBytes (1024)', 'too large'],
      ['decoded body larger than maxEntryBytes (1024)', 'too large'],
      ["the render read the request's cookies", 'cookies read'],
      ['the render may have called dumper.tag() before render contexts were tracked', 'untraceable'],
      ['response queued behind a pipelined one', 'pipelined'],
      ['response closed before the app ran', 'incomplete'],
      ['response aborted before it ended', 'incomplete'],
      ['response destroyed before it ended', 'incomplete'],
      ['body of 3 bytes does not match Content-Length 5', 'incomplete'],
      ['the body stream failed', 'incomplete'],
      ['the app threw', 'incomplete'],
      ['no response head', 'incomplete'],
      ['no response was sent through onSend', 'incomplete'],
      ['the response was replaced after onSend (an error in a later hook)', 'incomplete'],
      ['the request could not be given the URL of its key', 'unsupported'],
      ['the query string could not be parsed again for the URL of its key (a custom querystringParser)', 'unsupported'],
      ['unsupported payload', 'unsupported'],
      ['unsupported body chunk', 'unsupported'],
      ['HEAD route sent no body', 'incomplete'],
      ['store unavailable', 'store unavailable'],
      ['something else entirely', 'other'],
    ];
    for (const [detail, reason] of cases) expect(refusalOf(detail), detail).toBe(reason);
  });
});

describe('diagnostics_channel', () => {
  test('hit, miss, store, refusal, bypass and invalidate messages carry what happened', async () => {
    const channels = listenAll();
    try {
      const { dumper, get, m } = await site({ prefixInvalidation: true });
      const miss = await get('/page/Ch');
      const hit = await get('/page/Ch');
      await get('/page/Ch', { headers: { 'if-none-match': hit.headers.get('etag')! } });
      await get('/private');
      await get('/page/Ch', { headers: { authorization: 'Bearer x' } });
      await get('/tagged/flavour:1');
      await dumper.invalidate('/page/Ch');
      await dumper.invalidateTags(['flavour:1']);
      await dumper.invalidatePrefix('/page/');
      await dumper.invalidateDependents({ model: 'IceCream', paths: ['/page/ice'], tags: ['ice:1'], integration: 'typeorm' });
      await dumper.invalidateAll();
      await get('/page/x?y=1', { method: 'POST' });
      expect(await eventually(() => channels.of('page-dumper:invalidate', dumper).length === 6)).toBe(true);

      const misses = channels.of<MissMessage>(CHANNELS.miss, dumper);
      expect(misses.map((x) => [x.path, x.method, x.coalesced])).toEqual([
        ['/page/ch', 'GET', false],
        ['/private', 'GET', false],
        ['/tagged/flavour:1', 'GET', false],
      ]);
      expect(misses[0]!.key).toBe(dumper.keyFor('GET', '/page/Ch', { host: `127.0.0.1:${m.port}` }));

      const hits = channels.of<HitMessage>(CHANNELS.hit, dumper);
      expect(hits.map((x) => [x.path, x.status, x.bytes, x.coding])).toEqual([
        ['/page/ch', 200, Buffer.byteLength(miss.body), 'identity'],
        ['/page/ch', 304, 0, 'identity'],
      ]);
      expect(hits[0]!.entry.path).toBe('dumper.cached_path./page/ch');

      const stores = channels.of<StoreMessage>(CHANNELS.store, dumper);
      expect(stores.map((x) => [x.path, x.tags, x.bytes])).toEqual([
        ['/page/ch', ['/page/ch', '/*', '/page/*'], Buffer.byteLength(miss.body)],
        ['/tagged/flavour:1', ['/tagged/flavour:1', '/*', '/tagged/*', 'flavour:1'], Buffer.byteLength('<p>/tagged/flavour:1</p>')],
      ]);
      expect(typeof stores[0]!.seq).toBe('number');

      const refusals = channels.of<RefusalMessage>(CHANNELS.refusal, dumper);
      expect(refusals.map((x) => [x.path, x.reason, x.detail])).toEqual([['/private', 'cache-control', 'Cache-Control: private']]);

      const bypasses = channels.of<BypassMessage>(CHANNELS.bypass, dumper);
      expect(bypasses.map((x) => [x.reason, x.method, x.target])).toEqual([
        ['authorization', 'GET', '/page/Ch'],
        ['method', 'POST', '/page/x?y=1'],
      ]);

      const invalidations = channels.of<InvalidateMessage>(CHANNELS.invalidate, dumper);
      expect(invalidations.map(({ dumper: _, ...rest }) => rest)).toEqual([
        { kind: 'paths', paths: ['/page/Ch'], tags: [], prefixes: [], models: [], integrations: [], method: undefined },
        { kind: 'tags', paths: [], tags: ['flavour:1'], prefixes: [], models: [], integrations: [], method: undefined },
        { kind: 'prefix', paths: [], tags: [], prefixes: ['/page/'], models: [], integrations: [], method: undefined },
        { kind: 'dependents', paths: ['/page/ice'], tags: ['ice:1'], prefixes: [], models: ['IceCream'], integrations: ['typeorm'], method: undefined },
        { kind: 'all', paths: [], tags: [], prefixes: [], models: [], integrations: [], method: undefined },
        { kind: 'unsafe', paths: ['/page/x?y=1'], tags: [], prefixes: [], models: [], integrations: [], method: 'POST' },
      ]);
    } finally {
      channels.stop();
    }
  });

  test('a waiter for a concurrent render that was not stored is a coalesced miss', async () => {
    const channels = listenAll();
    try {
      const { dumper, get, gate } = await site();
      const g = gate();
      const first = get('/slow');
      await g.reached;
      const second = get('/slow');
      await eventually(() => dumper.stats().coalesced === 1);
      await dumper.invalidate('/slow');
      g.release();
      await Promise.all([first, second]);
      expect(channels.of<MissMessage>(CHANNELS.miss, dumper).map((x) => x.coalesced)).toEqual([false, true]);
      const s = dumper.stats();
      expect([s.misses, s.coalesced, s.hits, s.refusals['store refused']]).toEqual([2, 1, 0, 1]);
    } finally {
      channels.stop();
    }
  });

  test('the channel names are the documented ones', () => {
    expect(CHANNELS).toEqual({
      hit: 'page-dumper:hit',
      miss: 'page-dumper:miss',
      store: 'page-dumper:store',
      refusal: 'page-dumper:refusal',
      bypass: 'page-dumper:bypass',
      invalidate: 'page-dumper:invalidate',
    });
  });
});

describe('option cacheStatus', () => {
  const bad = (value: unknown, shown: string) => () =>
    expect(() => createDumper({ cacheStatus: value as never })).toThrow(
      new TypeError(`page-dumper: option "cacheStatus" must be true, false or a cache name (a token such as "page-dumper" or "web-1.example"), got ${shown}`),
    );
  test('a number', bad(1, 'number 1'));
  test('an empty name', bad('', 'string '));
  test('a name with a space', bad('my cache', 'string my cache'));
  test('a name with a semicolon', bad('a;hit', 'string a;hit'));
  test('a name starting with a digit', bad('1cache', 'string 1cache'));
  test('null', bad(null, 'null'));
  test('accepted values', () => {
    expect(createDumper({ cacheStatus: true }).cacheStatus?.hit).toBe('page-dumper; hit');
    expect(createDumper({ cacheStatus: 'web-1.example:8080' }).cacheStatus?.stored).toBe('web-1.example:8080; fwd=uri-miss; stored');
    expect(createDumper({ cacheStatus: false }).cacheStatus).toBeUndefined();
    expect(createDumper().cacheStatus).toBeUndefined();
    const values = createDumper({ cacheStatus: true }).cacheStatus!;
    expect(values.bypass['no host']).toBe('page-dumper; fwd=bypass; detail=no-host');
    expect(values.bypass.method).toBe('page-dumper; fwd=method');
    expect(values.miss).toBe('page-dumper; fwd=uri-miss');
  });

  test("a Cache-Status from a cache behind the app is kept, and this cache's member added after it; its own is never stored", async () => {
    const { dumperFetch } = await import('../../src/http/fetch/index.js');
    const d = createDumper({ logger: false, cacheStatus: true });
    const handler = dumperFetch(d, (request) =>
      new Response('page', {
        headers: {
          'content-type': 'text/plain',
          // A cache behind the app, and a stale member under this cache's own name.
          'cache-status': new URL(request.url).pathname === '/own' ? 'page-dumper; hit' : 'origin-cache; hit; ttl=30',
        },
      }),
    );
    const miss = await handler(new Request('http://site.example/a'));
    expect(miss.headers.get('cache-status')).toBe('origin-cache; hit; ttl=30, page-dumper; fwd=uri-miss; stored');
    await miss.text();
    await d.flushCompression();
    const hit = await handler(new Request('http://site.example/a'));
    expect(hit.headers.get('cache-status')).toBe('origin-cache; hit; ttl=30, page-dumper; hit');
    await (await handler(new Request('http://site.example/own'))).text();
    await d.flushCompression();
    const own = await handler(new Request('http://site.example/own'));
    expect(own.headers.get('x-cache')).toBe('HIT');
    expect(own.headers.get('cache-status')).toBe('page-dumper; hit');
    await d.close();
  });
});
