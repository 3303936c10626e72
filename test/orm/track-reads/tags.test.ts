/**
 * The tag names of `trackReads` (src/orm/reads.ts): canonical for every spelling of a key,
 * collision-free whatever the table names and values hold, bounded in length; and the tags each
 * kind of write invalidates.
 */
import { describe, expect, test } from 'vitest';
import { keyTag, linkTags, listTag, MAX_TAG_LENGTH, readOptions, rowTag, tableTag, unknownWriteTags, writeTags } from '../../../src/orm/reads.js';

describe('tag names', () => {
  test('one key, one tag: numbers, bigints and numeric strings agree; column order does not matter', () => {
    expect(rowTag('post', { id: 42 })).toBe('orm:row:post:id=42');
    expect(rowTag('post', { id: 42n })).toBe(rowTag('post', { id: 42 }));
    expect(rowTag('post', { id: '42' })).toBe(rowTag('post', { id: 42 }));
    expect(rowTag('pin', { b: 2, a: 1 })).toBe(rowTag('pin', { a: 1, b: 2 }));
    expect(rowTag('day', { at: new Date('2026-01-02T03:04:05Z') })).toBe('orm:row:day:at=2026-01-02T03%3A04%3A05.000Z');
  });

  test('no table name or value makes two tags spell the same', () => {
    expect(rowTag('a:b', { id: 'c' })).not.toBe(rowTag('a', { 'b:id': 'c' }));
    expect(rowTag('a', { id: '1&b=2' })).not.toBe(rowTag('a', { id: 1, b: 2 }));
    expect(keyTag('post', { id: 1 })).not.toBe(rowTag('post', { id: 1 }));
    expect(listTag('post')).not.toBe(tableTag('post'));
    expect(listTag('schema.post')).not.toBe(listTag('schema_post'));
  });

  test('a value that is no key gives no tag', () => {
    expect(rowTag('post', { id: null })).toBeUndefined();
    expect(rowTag('post', { id: { nested: 1 } })).toBeUndefined();
    expect(rowTag('post', {})).toBeUndefined();
    expect(keyTag('post', { authorId: Number.NaN })).toBeUndefined();
  });

  test('a long tag is shortened to its kind and a hash of its text, and stays distinct', () => {
    const long = 'x'.repeat(500);
    const a = rowTag('post', { slug: long })!;
    const b = rowTag('post', { slug: `${long}y` })!;
    expect(a.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
    expect(a).toMatch(/^orm:row:#[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(rowTag('post', { slug: long })).toBe(a);
  });
});

describe('what writes invalidate', () => {
  test('known rows: the list, each row, each foreign key', () => {
    expect(
      writeTags('comment', [
        { id: { id: 1 }, keys: [{ postId: 7 }] },
        { id: { id: 1 }, keys: [{ postId: 8 }] },
      ]).sort(),
    ).toEqual([listTag('comment'), rowTag('comment', { id: 1 }), keyTag('comment', { postId: 7 }), keyTag('comment', { postId: 8 })].sort());
  });

  test('a row whose key cannot be named: everything read from the table', () => {
    expect(writeTags('comment', [{ id: undefined, keys: [] }])).toEqual([tableTag('comment')]);
    expect(unknownWriteTags('comment')).toEqual([tableTag('comment')]);
  });

  test("links: the join table's list, the keys of both sides, and the link's own row", () => {
    expect(linkTags('post_tags', [[{ key: { postId: 1 } }, { key: { tagId: 2 } }]]).sort()).toEqual(
      [listTag('post_tags'), keyTag('post_tags', { postId: 1 }), keyTag('post_tags', { tagId: 2 }), rowTag('post_tags', { postId: 1, tagId: 2 })].sort(),
    );
    expect(linkTags('post_tags', [[{ key: { postId: null } }, { key: { tagId: 2 } }]])).toEqual([tableTag('post_tags')]);
  });
});

describe('options', () => {
  test('trackReads and maxTagsPerPage are checked, each TypeError naming its option', () => {
    expect(readOptions('f', undefined, undefined)).toEqual({ trackReads: false, maxTagsPerPage: 500 });
    expect(readOptions('f', true, 10)).toEqual({ trackReads: true, maxTagsPerPage: 10 });
    expect(() => readOptions('f', 'yes', undefined)).toThrow(new TypeError('page-dumper: f() option "trackReads" must be a boolean, got string'));
    expect(() => readOptions('f', true, 0)).toThrow(new TypeError('page-dumper: f() option "maxTagsPerPage" must be a positive integer, got 0'));
    expect(() => readOptions('f', false, 10)).toThrow(new TypeError('page-dumper: f() option "maxTagsPerPage" needs trackReads: true'));
  });
});
