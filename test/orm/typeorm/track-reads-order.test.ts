/**
 * `trackReads` and an `order` that names a relation's column, on SQLite, PostgreSQL and MariaDB:
 * the order of the rows, and with `take` which parents come back at all, depends on rows of the
 * joined table the page may not show (an unselected join for the sort, children of parents not
 * returned). Each page is warmed, a write is made, and the page served must be a fresh render.
 */
import { In } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { typeormDumper, type TypeormDumper } from '../../../src/orm/typeorm/index.js';
import { Author, blogEntities, Comment, Post, seedBlog, Tag } from './blog.js';
import { databases, Site, type Database } from './support.js';

const targets = await databases();

describe.each(targets)('TypeORM trackReads, ordered by a relation, on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;

  const posts = () => db.dataSource.getRepository(Post);
  const render = async (path: string): Promise<string> => {
    switch (path) {
      case '/by-author-name': {
        // By primary keys, ordered by a to-one relation's column: TypeORM joins it for the sort, unselected.
        const list = await posts().find({ where: { id: In([1, 2, 3]) }, order: { author: { name: 'ASC' }, id: 'ASC' } });
        return list.map((p) => p.title).join(',');
      }
      case '/first-by-author-name': {
        const list = await posts().find({ where: { id: In([1, 2, 3]) }, relations: { author: true }, order: { author: { name: 'ASC' }, id: 'ASC' }, take: 1 });
        return list.map((p) => `${p.title} by ${p.author.name}`).join(',');
      }
      case '/by-tag-name': {
        const list = await posts().find({ where: { id: In([1, 2]) }, order: { tags: { name: 'ASC' }, id: 'ASC' } });
        return list.map((p) => p.title).join(',');
      }
      case '/first-by-comment': {
        // The author's post whose comment sorts first: the comments of the posts not returned decide too.
        const list = await posts().find({ where: { author: { id: 1 } }, relations: { comments: true }, order: { comments: { body: 'ASC' }, id: 'ASC' }, take: 1 });
        return list.map((p) => p.title).join(',');
      }
      case '/by-id':
        return (await posts().find({ where: { id: In([1, 2]) }, relations: { author: true }, order: { id: 'DESC' } })).map((p) => `${p.title} by ${p.author.name}`).join(',');
      default:
        throw new Error(`no page ${path}`);
    }
  };

  beforeAll(async () => {
    db = await target.open(blogEntities);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear();
    await seedBlog(db.dataSource);
    dumper = createDumper({});
    handle = typeormDumper(dumper, db.dataSource, { trackReads: true });
    site = await Site.start(dumper, db.logger, async (path) => ({ status: 200, body: await render(path) }));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
  });

  /** The page is rendered again and shows `expected`, which a fresh render shows too. */
  async function expectFresh(path: string, expected: string) {
    const page = await site.get(path);
    expect(page.body, `${path} is stale (${page.cache})`).toBe(await render(path));
    expect(page.body).toBe(expected);
    expect(page.cache).toBe('MISS');
  }

  test('find by ids ordered by a relation column: a rename of a related row reorders it', async () => {
    await site.warm('/by-author-name');
    expect((await site.get('/by-author-name')).body).toBe('Hello,Again,Bye');
    await db.dataSource.getRepository(Author).update({ id: 2 }, { name: 'Aaron' });
    await expectFresh('/by-author-name', 'Bye,Hello,Again');
  });

  test('take 1 ordered by a relation column: a row that was not shown comes first', async () => {
    await site.warm('/first-by-author-name');
    expect((await site.get('/first-by-author-name')).body).toBe('Hello by Ada');
    const bob = await db.dataSource.getRepository(Author).findOneByOrFail({ id: 2 });
    bob.name = 'Aaron';
    await db.dataSource.getRepository(Author).save(bob);
    await expectFresh('/first-by-author-name', 'Bye by Aaron');
  });

  test('find by ids ordered by a many-to-many column: a rename of a linked row reorders it', async () => {
    await site.warm('/by-tag-name');
    expect((await site.get('/by-tag-name')).body).toBe('Again,Hello');
    await db.dataSource.getRepository(Tag).update({ id: 2 }, { name: 'zzz' });
    await expectFresh('/by-tag-name', 'Hello,Again');
  });

  test('take 1 ordered by a one-to-many column: a child added to a parent not returned', async () => {
    await site.warm('/first-by-comment');
    expect((await site.get('/first-by-comment')).body).toBe('Hello');
    await db.dataSource.getRepository(Comment).save({ body: 'aaa', post: { id: 2 } });
    await expectFresh('/first-by-comment', 'Again');
  });

  test('an order of the main table\'s own columns stays finer: another author\'s rename keeps the page', async () => {
    await site.warm('/by-id', '/by-author-name');
    await db.dataSource.getRepository(Author).update({ id: 2 }, { name: 'Aaron' });
    await site.expectHit('/by-id');
    await site.expectMiss('/by-author-name');
  });
});
