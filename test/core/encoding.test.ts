/**
 * The content-coding rules of the core: Accept-Encoding as RFC 9110 §12.5.3 reads it, which
 * representation a request gets, and which entries are compressed. (The HTTP behaviour suite
 * checks the same through every adapter and store.)
 */
import { describe, expect, test } from 'vitest';
import { choose, compressible, compressPolicy, encodingEtag, parseAcceptEncoding, representations } from '../../src/core/encoding.js';
import type { StoredEntry } from '../../src/core/store.js';

/** q-values in thousandths: identity, br, gzip, zstd. */
describe('parseAcceptEncoding', () => {
  test.each<[string | undefined, number[]]>([
    [undefined, [1000, 0, 0, 0]],
    ['', [1000, 0, 0, 0]],
    ['gzip, deflate, br', [1000, 1000, 1000, 0]],
    ['gzip, deflate, br, zstd', [1000, 1000, 1000, 1000]],
    ['br;q=0.8, gzip;q=0.9', [800, 800, 900, 0]],
    ['gzip;q=0.5, br;q=0.4', [400, 400, 500, 0]],
    ['br;q=0, gzip', [1000, 0, 1000, 0]],
    ['*', [1000, 1000, 1000, 1000]],
    ['*;q=0', [0, 0, 0, 0]],
    ['*;q=0, identity', [1000, 0, 0, 0]],
    ['identity;q=0', [0, 0, 0, 0]],
    ['br, *;q=0.1', [100, 1000, 100, 100]],
    ['x-gzip', [1000, 0, 1000, 0]],
    ['GZIP ; Q=0.7', [700, 0, 700, 0]],
    ['gzip;q=1.5, br', [1000, 1000, 0, 0]],
    ['gzip;q=0.1234', [1000, 0, 0, 0]],
    ['br;level=5;q=0.3', [300, 300, 0, 0]],
    [' , ,gzip', [1000, 0, 1000, 0]],
  ])('%j', (value, q) => {
    expect([...parseAcceptEncoding(value)]).toEqual(q);
  });
});

function entry(body: Uint8Array, headers: string[] = ['content-type', 'text/html; charset=utf-8'], encodings: StoredEntry['encodings'] = []): StoredEntry {
  return {
    status: 200,
    headers: [...headers, 'etag', '"e"', 'content-length', String(body.byteLength)],
    body,
    etag: '"e"',
    storedAt: 0,
    seq: 0,
    path: '/p',
    tags: ['/p'],
    encodings,
  };
}

describe('choose', () => {
  const e = entry(new Uint8Array(5000), undefined, [
    { coding: 'gzip', body: new Uint8Array(900) },
    { coding: 'br', body: new Uint8Array(800) },
  ]);
  const reps = representations(e, e.encodings, true, 'x-cache');

  test.each<[string | undefined, string]>([
    ['gzip, br', 'br'],
    ['gzip', 'gzip'],
    ['gzip;q=1, br;q=0.9', 'gzip'],
    ['zstd', 'identity'],
    ['*;q=0', 'identity'],
    [undefined, 'identity'],
  ])('%j gets %s', (ae, coding) => {
    expect(choose(reps, ae).coding).toBe(coding);
  });

  test('every representation has its length, its ETag, Vary and the cache status; identity too', () => {
    const br = reps.list.find((r) => r.coding === 'br')!;
    expect(br.headers).toEqual(['content-type', 'text/html; charset=utf-8', 'etag', '"e-br"', 'content-length', '800', 'content-encoding', 'br', 'vary', 'Accept-Encoding', 'x-cache', 'HIT']);
    expect(br.notModifiedHeaders).toEqual(['etag', '"e-br"', 'vary', 'Accept-Encoding', 'x-cache', 'HIT']);
    const id = reps.list.find((r) => r.coding === 'identity')!;
    expect(id.headers).toContain('vary');
    expect(id.etag).toBe('"e"');
  });

  test('ETags: a suffix inside the quotes of a strong one; a weak one is shared', () => {
    expect(encodingEtag('"abc"', 'gzip')).toBe('"abc-gzip"');
    expect(encodingEtag('W/"abc"', 'br')).toBe('W/"abc"');
  });
});

describe('compressible', () => {
  const policy = compressPolicy(undefined)!;
  test.each<[string, string[], boolean]>([
    ['text/html', ['content-type', 'text/html; charset=utf-8'], true],
    ['JSON', ['content-type', 'application/json'], true],
    ['JSON-LD by the +json suffix', ['content-type', 'application/ld+json'], true],
    ['SVG', ['content-type', 'image/svg+xml'], true],
    ['upper case', ['content-type', 'TEXT/CSS'], true],
    ['PNG', ['content-type', 'image/png'], false],
    ['no type', [], false],
    ['no-transform', ['content-type', 'text/html', 'cache-control', 'public, no-transform'], false],
  ])('%s: %s', (_, headers, yes) => {
    expect(compressible(entry(new Uint8Array(2000), headers), policy)).toBe(yes);
  });
  test('below minBytes, and the types option', () => {
    expect(compressible(entry(new Uint8Array(1023)), policy)).toBe(false);
    const custom = compressPolicy({ types: ['application/x-thing', /^text\/plain$/], minBytes: 0 })!;
    expect(compressible(entry(new Uint8Array(10), ['content-type', 'application/x-thing']), custom)).toBe(true);
    expect(compressible(entry(new Uint8Array(10), ['content-type', 'text/html']), custom)).toBe(false);
    expect(compressible(entry(new Uint8Array(10), ['content-type', 'text/plain; charset=utf-8']), custom)).toBe(true);
  });
});
