/**
 * The tags `PrismaReads` puts on a page for one read, given the arguments and the answer Prisma
 * hands a query extension: the cases the end-to-end suites (track-reads*.test.ts) cannot reach
 * through a client, such as a client that does not say where a fluent call's rows are.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { PrismaReads } from '../../../src/orm/prisma/reads.js';
import { readDataModel, type ModelInfo, type RuntimeDataModel } from '../../../src/orm/prisma/schema.js';
import { keyTag, listTag, ReadTracker, rowTag } from '../../../src/orm/reads.js';
import { openDatabase, type TestDatabase } from './support.js';

let db: TestDatabase;
let models: Map<string, ModelInfo>;
let dumper: Dumper;

beforeAll(async () => {
  db = await openDatabase('sqlite');
  const client = db.client().prisma as unknown as { _runtimeDataModel: RuntimeDataModel; _engineConfig: { inlineSchema: string } };
  models = readDataModel(client._runtimeDataModel, client._engineConfig.inlineSchema, 'sqlite');
  dumper = createDumper({ logger: false });
});
afterAll(async () => {
  await dumper?.close();
  await db?.drop();
});

/** The tags one read puts on the page (outside a render, every tag reaches `dumper.tag()`). */
async function tagsOf(model: string, args: Record<string, unknown>, answer: unknown, dataPath?: unknown[]): Promise<string[]> {
  const tags: string[] = [];
  const original = dumper.tag.bind(dumper);
  const reads = new PrismaReads(new ReadTracker(dumper, { maxTagsPerPage: 500, integration: 'prisma' }), models);
  dumper.tag = (...t: string[]) => void tags.push(...t);
  try {
    await reads.handle(model, 'findUnique', args, async () => answer, dataPath);
  } finally {
    dumper.tag = original;
  }
  return tags;
}

test('an integer key in any spelling is the tag of the integer', async () => {
  for (const id of [5, 5n, '5', '05', '+5']) {
    expect(await tagsOf('BlogKeyed', { where: { id } }, null), String(id)).toContain(rowTag('BlogKeyed', { id: 5 }));
  }
  expect(await tagsOf('BlogKeyed', { where: { id: 1.5 } }, null)).toContain(listTag('BlogKeyed'));
});

test('a lookup by a unique key also tags the row it found by the primary key the database returned', async () => {
  const tags = await tagsOf('Simple', { where: { slug: 'a' } }, { id: 3, slug: 'a' });
  expect(tags).toContain(keyTag('Simple', { slug: 'a' }));
  expect(tags).toContain(rowTag('Simple', { id: 3 }));
  // A key whose spelling cannot be told: the model's list, which every write of it invalidates.
  expect(await tagsOf('BlogKeyed', { where: { price: '1.50' } }, { id: 5n, price: '1.5' })).toContain(listTag('BlogKeyed'));
});

test('a fluent call: the root row, and the related rows returned', async () => {
  const tags = await tagsOf('BlogPost', { where: { id: 1 }, select: { author: true } }, { id: 2, name: 'Bob' }, ['select', 'author']);
  expect(tags).toContain(rowTag('BlogPost', { id: 1 }));
  expect(tags).toContain(rowTag('BlogAuthor', { id: 2 }));
  expect(tags).not.toContain(listTag('BlogAuthor'));
  const children = await tagsOf('BlogPost', { where: { id: 1 }, select: { comments: true } }, [{ id: 11, postId: 1 }], ['select', 'comments']);
  expect(children).toContain(keyTag('BlogComment', { postId: 1 }));
  expect(children).not.toContain(keyTag('BlogComment', { postId: 11 }));
});

test('a client that does not say where the rows are: every model its selection names, whole', async () => {
  const tags = await tagsOf('BlogPost', { where: { id: 1 }, select: { author: true, tags: { select: { posts: true } } } }, { id: 2, name: 'Bob' }, undefined);
  expect(tags).toEqual(expect.arrayContaining([listTag('BlogAuthor'), listTag('BlogTag'), listTag('BlogPost'), listTag('_BlogPost.tags+BlogTag.posts')]));
});
