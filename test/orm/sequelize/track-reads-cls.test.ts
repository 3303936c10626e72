/**
 * `trackReads` with CLS (`Sequelize.useCLS(namespace)`): pages render their reads inside a managed
 * transaction that the queries find through the namespace (no `transaction` option), and writes
 * join a CLS transaction the same way. The tags still reach the render that read the rows, and
 * the writes are invalidated at the write and again at the commit. `useCLS` is global to the
 * Sequelize class, so this file (its own module graph under vitest) turns it off again at the end.
 */
import { Sequelize } from 'sequelize';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumper } from '../../../src/orm/sequelize/index.js';
import { expectNoStale, warmAll } from '../track-reads/check.js';
import { blogApp, defineBlog, seedBlog, type Blog } from './blog.js';
import { clsNamespace, databases, recordingLogger, Site, type Database } from './support.js';

const targets = await databases();

beforeAll(() => {
  Sequelize.useCLS(clsNamespace());
});
afterAll(() => {
  (Sequelize as unknown as { _cls?: unknown })._cls = undefined;
});

describe.each(targets)('Sequelize trackReads through CLS on $name', (target) => {
  let db: Database;
  let blog: Blog;
  let dumper: Dumper;
  let handle: SequelizeDumper;
  let site: Site;
  let log: ReturnType<typeof recordingLogger>;
  let app: ReturnType<typeof blogApp>;

  beforeAll(async () => {
    db = await target.open();
    blog = defineBlog(db.sequelize);
    await db.sequelize.sync();
    app = blogApp(blog);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.clear(blog.all);
    await seedBlog(blog);
    log = recordingLogger();
    dumper = createDumper({ logger: log.logger });
    handle = sequelizeDumper(dumper, db.sequelize, { trackReads: true });
    // Each page reads inside a CLS transaction of its own.
    site = await Site.start(dumper, db.counter, async (path) => ({ status: 200, body: await db.sequelize.transaction(() => app.render(path)) }));
    await warmAll((p) => site.get(p));
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
    expect(log.warnings).toEqual([]);
  });

  test('reads inside a CLS transaction tag their page: a write drops exactly the pages that read it', async () => {
    await blog.Comment.create({ body: 'fine', postId: 2 });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toEqual(expect.arrayContaining(['/posts/2', '/count']));
    for (const p of ['/', '/posts/1', '/authors/1/posts', '/tags/2', '/about']) expect(missed).not.toContain(p);
  });

  test('writes joining a CLS transaction are invalidated again at its commit', async () => {
    await db.sequelize.transaction(async () => {
      await blog.Post.update({ title: 'Anew' }, { where: { id: 2 } });
      await (await blog.Post.findByPk(1))!.addTag(2);
      // Another connection (outside this CLS context) reads the last commit, and stores it.
      await site.get('/posts/2');
      await site.get('/tags/2');
    });
    const missed = await expectNoStale((p) => site.get(p), app);
    expect(missed).toEqual(expect.arrayContaining(['/posts/2', '/posts/1', '/tags/2', '/']));
    expect(missed).not.toContain('/about');
    expect(missed).not.toContain('/count');
  });
});
