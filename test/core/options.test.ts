import { describe, expect, test } from 'vitest';
import { createDumper, MemoryStore } from '../../src/index.js';

const bad = (options: unknown, message: string) => () =>
  expect(() => createDumper(options as never)).toThrow(new TypeError(message));

describe('createDumper() validates its options once, with precise messages', () => {
  test('defaults are accepted', () => {
    const d = createDumper();
    expect(d.keyPrefix).toBe('dumper.cached_path.');
    expect(d.statuses).toEqual([200]);
    expect(d.cacheStatusHeader).toBe('x-cache');
    expect(d.store).toBeInstanceOf(MemoryStore);
  });
  test('not an object', bad(42, 'page-dumper: createDumper() options must be an object'));
  test('unknown option', bad({ keyprefix: 'x' }, 'page-dumper: unknown option "keyprefix"'));
  test('keyPrefix', bad({ keyPrefix: 3 }, 'page-dumper: option "keyPrefix" must be a string, got number 3'));
  test('store', bad({ store: {} }, 'page-dumper: option "store" must be a Store (missing method "sequence"), got an object'));
  test('ignore regex string', bad({ ignore: '(' }, 'page-dumper: option "ignore" is not a valid regular expression: Invalid regular expression: /(/: Unterminated group'));
  test('ignore type', bad({ ignore: 5 }, 'page-dumper: option "ignore" must be a RegExp, a regular-expression string, a function or null, got number 5'));
  test('statuses empty', bad({ statuses: [] }, 'page-dumper: option "statuses" must be a non-empty array of status codes, got an array'));
  test('statuses range', bad({ statuses: [99] }, 'page-dumper: option "statuses" must be status codes between 200 and 599, got number 99'));
  test('statuses without a body', bad({ statuses: [200, 304] }, 'page-dumper: option "statuses" cannot include 304: it has no complete body to replay'));
  test('hosts', bad({ hosts: 'a.example' }, 'page-dumper: option "hosts" must be an array of host names, got string a.example'));
  test('maxEntryBytes', bad({ maxEntryBytes: -1 }, 'page-dumper: option "maxEntryBytes" must be a positive integer, got number -1'));
  test('maxVariantsPerPath', bad({ maxVariantsPerPath: 0 }, 'page-dumper: option "maxVariantsPerPath" must be a positive integer, got number 0'));
  test('cacheStatusHeader', bad({ cacheStatusHeader: 'X Cache' }, 'page-dumper: option "cacheStatusHeader" must be a header name or false, got string X Cache'));
  test('logger', bad({ logger: {} }, 'page-dumper: option "logger" must be an object with a debug() method (console, pino, winston) or false, got an object'));
  test('coalesceTimeout', bad({ coalesceTimeout: 1.5 }, 'page-dumper: option "coalesceTimeout" must be a non-negative integer, got number 1.5'));
  test('ignoreQueryParams', bad({ ignoreQueryParams: [1] }, 'page-dumper: option "ignoreQueryParams" must be an array of parameter names or RegExps, got an array'));
  test('bypassCookies', bad({ bypassCookies: [''] }, 'page-dumper: option "bypassCookies" must be an array of cookie names, got an array'));
  test('compress', bad({ compress: 'br' }, 'page-dumper: option "compress" must be an object, true or false, got string br'));
  test('compress: unknown key', bad({ compress: { brotli: 9 } }, 'page-dumper: unknown option "compress.brotli"'));
  test('compress.br', bad({ compress: { br: 12 } }, 'page-dumper: option "compress.br" must be an integer from 0 to 11, or false, got number 12'));
  test('compress.gzip', bad({ compress: { gzip: 0 } }, 'page-dumper: option "compress.gzip" must be an integer from 1 to 9, or false, got number 0'));
  test('compress.zstd', bad({ compress: { zstd: '10' } }, 'page-dumper: option "compress.zstd" must be an integer from 1 to 19, or false, got string 10'));
  test(
    'compress.types',
    bad({ compress: { types: ['html'] } }, 'page-dumper: option "compress.types" must be an array of media types (such as "text/*" or "application/json") or RegExps, got an array'),
  );
  test('compress.minBytes', bad({ compress: { minBytes: -1 } }, 'page-dumper: option "compress.minBytes" must be a non-negative integer, got number -1'));
  test('compress: every coding off, true or false, is accepted', () => {
    expect(() => createDumper({ compress: { br: false, gzip: false, zstd: false } })).not.toThrow();
    expect(() => createDumper({ compress: false })).not.toThrow();
    expect(() => createDumper({ compress: true })).not.toThrow();
  });
});
