import type { SetOptions, StoredEntry } from '../../src/index.js';

/** Store limits for tests that set entries through the store API: plenty of variants, plain pages. */
export const storeLimits: SetOptions = { maxVariantsPerPath: 1000, variant: false };

/** A small stored page of `path` at `seq` (100-byte body), tagged with its path and `layout` unless told otherwise. */
export const pageEntry = (path: string, seq: number, tags: string[] = [path, 'layout']): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new Uint8Array(100),
  etag: '"x"',
  storedAt: 0,
  seq,
  path,
  tags,
});
