/**
 * How `trackReads` classifies a Drizzle read, without a database: which `where` names rows (the
 * primary key), which a key (a foreign key), which is a list; which values are spelled as the
 * database hands them back (per column type and dialect); and which tables a query's SQL names.
 */
import { and, eq, gt, inArray, like, or, sql } from 'drizzle-orm';
import * as pgc from 'drizzle-orm/pg-core';
import { describe, expect, test } from 'vitest';
import { DrizzleReads, canonical, named } from '../../../src/orm/drizzle/reads.js';
import { tableInfo } from '../../../src/orm/drizzle/tables.js';
import type { ReadTracker } from '../../../src/orm/reads.js';

const author = pgc.pgTable('cl_author', { id: pgc.integer('id').primaryKey(), name: pgc.text('name') });
const post = pgc.pgTable('cl_post', {
  id: pgc.integer('id').primaryKey(),
  title: pgc.text('title'),
  authorId: pgc.integer('author_id').references(() => author.id),
});
const tag = pgc.pgTable('cl_tag', { id: pgc.uuid('id').primaryKey(), slug: pgc.varchar('slug', { length: 20 }) });
const link = pgc.pgTable(
  'cl_post_tag',
  { postId: pgc.integer('post_id').references(() => post.id), tagId: pgc.uuid('tag_id').references(() => tag.id) },
  (t) => [pgc.primaryKey({ columns: [t.postId, t.tagId] })],
);

const reads = (dialect: 'pg' | 'mysql' | 'sqlite' = 'pg') => new DrizzleReads({} as ReadTracker, dialect);
const classify = (table: pgc.PgTable, where: unknown, dialect: 'pg' | 'mysql' | 'sqlite' = 'pg') => reads(dialect).classify(tableInfo(table), where);

describe('a where on one table', () => {
  test('the primary key: rows, one or several, with other conditions only narrowing', () => {
    expect(classify(post, eq(post.id, 1))).toEqual({ kind: 'rows', ids: [{ id: 1 }] });
    expect(classify(post, inArray(post.id, [1, 2]))).toEqual({ kind: 'rows', ids: [{ id: 1 }, { id: 2 }] });
    expect(classify(post, and(eq(post.id, 1), like(post.title, '%a%')))).toEqual({ kind: 'rows', ids: [{ id: 1 }] });
    expect(classify(post, or(eq(post.id, 1), eq(post.id, 3)))).toEqual({ kind: 'rows', ids: [{ id: 1 }, { id: 3 }] });
  });

  test('a foreign key: keys', () => {
    expect(classify(post, eq(post.authorId, 7))).toEqual({ kind: 'keys', keys: [{ author_id: 7 }] });
    expect(classify(post, and(gt(post.id, 3), eq(post.authorId, 7)))).toEqual({ kind: 'keys', keys: [{ author_id: 7 }] });
  });

  test('anything else: a list', () => {
    expect(classify(post, undefined)).toEqual({ kind: 'list' });
    expect(classify(post, like(post.title, '%a%'))).toEqual({ kind: 'list' });
    expect(classify(post, gt(post.id, 1))).toEqual({ kind: 'list' });
    expect(classify(post, or(eq(post.id, 1), eq(post.authorId, 2)))).toEqual({ kind: 'list' });
    expect(classify(post, sql`${post.id} = 1`)).toEqual({ kind: 'list' });
    expect(classify(post, eq(author.id, 1))).toEqual({ kind: 'list' });
  });

  test('a link table read by its primary key: the key of one side', () => {
    const id = '0a1b2c3d-0000-4000-8000-000000000001';
    expect(classify(link, and(eq(link.postId, 1), eq(link.tagId, id)))).toEqual({ kind: 'keys', keys: [{ post_id: 1 }] });
  });
});

describe('key spelling', () => {
  test('a value names a row only spelled as the database returns it', () => {
    expect(classify(post, eq(post.id, '01' as never))).toEqual({ kind: 'list' });
    expect(classify(post, eq(post.id, 1.5))).toEqual({ kind: 'list' });
    expect(classify(post, eq(post.id, '12' as never))).toEqual({ kind: 'rows', ids: [{ id: '12' }] });
    expect(classify(tag, eq(tag.id, '0A1B2C3D-0000-4000-8000-000000000001'))).toEqual({ kind: 'list' });
    expect(classify(tag, eq(tag.id, '0a1b2c3d-0000-4000-8000-000000000001'))).toEqual({ kind: 'rows', ids: [{ id: '0a1b2c3d-0000-4000-8000-000000000001' }] });
  });

  test('strings: exact on PostgreSQL and SQLite text columns, never on MySQL', () => {
    const slug = tableInfo(tag).columns.slug!;
    expect(canonical('pg', slug, 'Ada ')).toBe(true);
    expect(canonical('mysql', slug, 'ada')).toBe(false);
    expect(canonical('pg', tableInfo(author).columns.id!, 10n)).toBe(true);
    expect(canonical('pg', tableInfo(author).columns.id!, Number.MAX_SAFE_INTEGER + 2)).toBe(false);
  });
});

describe('tables a query names', () => {
  test('every table, and how often it is read from', () => {
    const sub = sql`(select count(*) from ${post})`;
    const found = named(sql`select ${sub} from ${post} join ${author} on ${eq(author.id, post.authorId)}`);
    expect([...found.tables.keys()].sort()).toEqual(['cl_author', 'cl_post']);
    expect(found.occurrences.get('cl_post')).toBe(2);
    expect(found.occurrences.get('cl_author')).toBe(1);
  });
});
