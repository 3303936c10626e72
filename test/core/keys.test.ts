import { describe, expect, test } from 'vitest';
import { canonicalPath, compileQueryIgnore, normalizePercentEncoding, normalizeQuery, prefixTags, splitTarget } from '../../src/core/keys.js';
import { isBypass } from '../../src/adapter/index.js';
import { createDumper, MemoryStore } from '../../src/index.js';

describe('canonical path tags are coarse', () => {
  test.each([
    ['/ice-cream/', '/ice-cream'],
    ['/ice-cream', '/ice-cream'],
    ['/ICE-CREAM/', '/ice-cream'],
    ['//ice-cream//', '/ice-cream'],
    ['/ice%2Dcream', '/ice-cream'],
    ['/a/./b/../c/', '/a/c'],
    ['/', '/'],
    ['', '/'],
    ['/caf%C3%A9', '/café'],
  ])('%s -> %s', (input, tag) => expect(canonicalPath(input)).toBe(tag));
  test('undecodable paths have no tag', () => expect(canonicalPath('/%E0%A4%A')).toBeUndefined());
  test('prefix tags', () => expect(prefixTags('/a/b/c')).toEqual(['/*', '/a/*', '/a/b/*']));
});

describe('keys are exact where exactness is safe', () => {
  const ignore = compileQueryIgnore(['utm_*', 'gclid', /^_ga$/]);
  test('percent-encoding: case and unreserved characters only', () => {
    expect(normalizePercentEncoding('/a%7eb%2fc')).toBe('/a~b%2Fc');
    expect(normalizePercentEncoding('/a%zz')).toBeUndefined();
    expect(normalizePercentEncoding('/a%')).toBeUndefined();
  });
  test('query: sorted by name, repeated names keep their order, ignored names dropped', () => {
    expect(normalizeQuery('b=2&a=1&a=0&utm_source=x&gclid=1&_ga=2&&', ignore, true)).toEqual({ key: 'a=1&a=0&b=2', stripped: true });
    expect(normalizeQuery('b=2&a=1', ignore, false)).toEqual({ key: 'b=2&a=1', stripped: false });
    expect(normalizeQuery('q=a+b', ignore, true)!.key).not.toBe(normalizeQuery('q=a%2Bb', ignore, true)!.key);
    expect(normalizeQuery('q=%zz', ignore, true)).toBeUndefined();
  });
  test('targets: fragments dropped, absolute-form understood', () => {
    expect(splitTarget('/a?b=1#frag')).toEqual({ path: '/a', query: 'b=1', host: undefined });
    expect(splitTarget('http://user@Example.com:8080/x?y')).toEqual({ path: '/x', query: 'y', host: 'Example.com:8080' });
    expect(splitTarget('*')).toBeUndefined();
  });
  test('the key holds prefix, host, path and normalized query; never the fragment', () => {
    const d = createDumper({ logger: false });
    expect(d.keyFor('GET', '/a/?b=2&a=1#x', { host: 'Site.example' })).toBe('dumper.cached_path.site.example/a/?a=1&b=2');
    expect(d.keyFor('HEAD', '/a', { host: 'x' })).toBe(d.keyFor('GET', '/a', { host: 'x' }));
    expect(d.keyFor('GET', '/a', { host: 'x' })).not.toBe(d.keyFor('GET', '/a/', { host: 'x' }));
    const post = d.keyFor('POST', '/a', { host: 'x' });
    expect(isBypass(post) && post.bypass).toBe('method');
  });
  test('fetch-style headers work as well as node records', () => {
    const d = createDumper({ logger: false });
    expect(d.keyFor('GET', '/a', new Headers({ host: 'x' }))).toBe(d.keyFor('GET', '/a', { host: 'x' }));
  });
  test("HTTP/2: `:authority` names the host when there is no Host; a Host naming another host bypasses", () => {
    const d = createDumper({ logger: false });
    const viaHost = d.keyFor('GET', '/a', { host: 'site.example' });
    expect(d.keyFor('GET', '/a', { ':authority': 'Site.example' })).toBe(viaHost);
    expect(d.keyFor('GET', '/a', { ':authority': 'site.example', host: 'SITE.example' })).toBe(viaHost);
    const other = d.keyFor('GET', '/a', { ':authority': 'evil.example', host: 'site.example' });
    expect(isBypass(other) && other.bypass).toBe('bad host');
    const bad = d.keyFor('GET', '/a', { ':authority': 'site.example/x' });
    expect(isBypass(bad) && bad.bypass).toBe('bad host');
    // Asked again, once the plain path's key is remembered for that Host.
    const again = d.keyFor('GET', '/a', { ':authority': 'evil.example', host: 'site.example' });
    expect(isBypass(again) && again.bypass).toBe('bad host');
  });
});

describe('keys of plain paths are remembered, and nothing that decides a key is skipped', () => {
  test('the same request gets the same key again, and every per-request check still runs', () => {
    const d = createDumper({ logger: false, hosts: ['site.example'], ignore: /^\/admin\// });
    const first = d.keyFor('GET', '/a', { host: 'Site.example' });
    expect(first).toBe('dumper.cached_path.site.example/a');
    expect(d.keyFor('GET', '/a', { host: 'Site.example' })).toBe(first);
    // Per-request headers are read again for a remembered key.
    const reasons = (headers: Record<string, string>) => {
      const k = d.keyFor('GET', '/a', { host: 'Site.example', ...headers });
      return isBypass(k) ? k.bypass : k;
    };
    expect(reasons({ authorization: 'Bearer x' })).toBe('authorization');
    expect(reasons({ range: 'bytes=0-1' })).toBe('conditional request');
    expect(reasons({ 'x-forwarded-host': 'evil.example' })).toBe('dumper.cached_path.site.example||evil.example/a');
    expect(reasons({ 'x-forwarded-host': 'bad host/' })).toBe('bad host');
    // Host and path checks hold for requests never seen, and are not remembered as keys.
    for (let i = 0; i < 2; i++) {
      const other = d.keyFor('GET', '/a', { host: 'other.example' });
      expect(isBypass(other) && other.bypass).toBe('host not allowed');
      const admin = d.keyFor('GET', '/admin/x', { host: 'site.example' });
      expect(isBypass(admin) && admin.bypass).toBe('ignored path');
    }
  });

  test('a remembered key still bypasses while the store is unavailable', async () => {
    let failing = false;
    const store = new MemoryStore();
    const get = store.get.bind(store);
    store.get = (key) => {
      if (failing) throw new Error('down');
      return get(key);
    };
    const d = createDumper({ logger: false, store, storeCooldown: 60_000 });
    const key = d.keyFor('GET', '/a', { host: 'x' }) as string;
    expect(d.keyFor('GET', '/a', { host: 'x' })).toBe(key);
    failing = true;
    expect(d.get(key, { host: 'x' })).toBeUndefined(); // the failure opens the circuit
    const after = d.keyFor('GET', '/a', { host: 'x' });
    expect(isBypass(after) && after.bypass).toBe('store unavailable');
    await d.close();
  });

  test('keys stay right past the bound of remembered keys (10,000), where remembering starts again', () => {
    const d = createDumper({ logger: false });
    for (let i = 0; i < 25_000; i++) expect(d.keyFor('GET', `/p/${i}`, { host: 'x' })).toBe(`dumper.cached_path.x/p/${i}`);
    expect(d.keyFor('GET', '/p/24999', { host: 'x' })).toBe('dumper.cached_path.x/p/24999');
  });
});

test('afterUnsafe: a Host that only looks like an IP literal is no origin, and throws nothing', async () => {
  const store = new MemoryStore();
  const d = createDumper({ logger: false, store });
  const invalidated: string[][] = [];
  const inner = store.invalidate.bind(store);
  store.invalidate = (tags) => {
    invalidated.push([...tags]);
    return inner(tags);
  };
  expect(() => d.afterUnsafe({ method: 'POST', target: '/a', host: '[1:2]', status: 303, location: 'http://[1:2]/b' })).not.toThrow();
  d.afterUnsafe({ method: 'POST', target: '/a/x', host: 'site.example', status: 303, location: 'y', contentLocation: '//other.example/z' });
  await new Promise((r) => setTimeout(r, 10));
  expect(invalidated).toEqual([['dumper.cached_path./a'], ['dumper.cached_path./a/x', 'dumper.cached_path./a/y']]);
  await d.close();
});
