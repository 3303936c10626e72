/**
 * `trackReads` and entities whose rows are other tables' rows, on SQLite, PostgreSQL and MariaDB:
 * a `@ViewEntity` (a read of the view depends on the tables its expression reads) and a
 * `@VirtualColumn` (a SQL subquery per row, here a comment count). A write of the tables under
 * them must drop the pages that read them.
 */
import { Column, DataSource, Entity, ManyToOne, OneToMany, PrimaryColumn, PrimaryGeneratedColumn, ViewColumn, ViewEntity, VirtualColumn } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { typeormDumper, type TypeormDumper } from '../../../src/orm/typeorm/index.js';
import { databases, Site, type Database, type Target } from './support.js';

/** The entities for one database: its quoting, and on PostgreSQL the suite's schema (known once it is open). */
function entities(name: Target['name']) {
  const at = { schema: '' };
  const q = (id: string) => (name === 'MariaDB' ? `\`${id}\`` : `"${id}"`);
  const table = (t: string) => (name === 'PostgreSQL' ? `${q(at.schema)}.${q(t)}` : q(t));

  @Entity('v_post')
  class VPost {
    @PrimaryColumn({ type: 'int' }) id!: number;
    @Column({ type: 'varchar', length: 100 }) title!: string;
    @OneToMany(() => VComment, (c) => c.post) comments!: VComment[];
    // The number of comments, computed by the database with each read of the post.
    @VirtualColumn({ type: 'int', query: (alias) => `SELECT COUNT(*) FROM ${table('v_comment')} c WHERE c.${q('postId')} = ${alias}.${q('id')}` })
    commentCount!: number;
  }

  @Entity('v_comment')
  class VComment {
    @PrimaryGeneratedColumn() id!: number;
    @Column({ type: 'varchar', length: 100 }) body!: string;
    @ManyToOne(() => VPost, (p) => p.comments, { nullable: false, onDelete: 'CASCADE' }) post!: VPost;
  }

  /** A table no view reads. */
  @Entity('v_note')
  class VNote {
    @PrimaryColumn({ type: 'int' }) id!: number;
    @Column({ type: 'varchar', length: 100 }) text!: string;
  }

  /** A view built by a QueryBuilder of one table: its reads depend on that table. */
  @ViewEntity({ name: 'v_post_title', expression: (ds: DataSource) => ds.createQueryBuilder().select('p.id', 'id').addSelect('p.title', 'title').from(VPost, 'p') })
  class VPostTitle {
    @ViewColumn() id!: number;
    @ViewColumn() title!: string;
  }

  /** A view whose QueryBuilder selects a subquery (a table it does not name as an alias): every table. */
  @ViewEntity({
    name: 'v_post_count',
    expression: (ds: DataSource) =>
      ds
        .createQueryBuilder()
        .select('p.id', 'id')
        .addSelect((sub) => sub.select('COUNT(*)').from(VComment, 'c').where(`c.${q('postId')} = p.${q('id')}`), 'comments')
        .from(VPost, 'p'),
  })
  class VPostCount {
    @ViewColumn() id!: number;
    @ViewColumn() comments!: number;
  }

  /** A view written as SQL (not on PostgreSQL, whose suite schema is not known when it is declared): every table. */
  @ViewEntity({ name: 'v_post_sql', expression: `SELECT p.${q('id')} AS ${q('id')}, (SELECT COUNT(*) FROM ${q('v_comment')} c WHERE c.${q('postId')} = p.${q('id')}) AS ${q('comments')} FROM ${q('v_post')} p` })
  class VPostSql {
    @ViewColumn() id!: number;
    @ViewColumn() comments!: number;
  }

  const all: Function[] = [VPost, VComment, VNote, VPostTitle, VPostCount, ...(name === 'PostgreSQL' ? [] : [VPostSql])];
  return { at, all, VPost, VComment, VNote, VPostTitle, VPostCount, VPostSql };
}

const targets = await databases();

describe.each(targets)('TypeORM trackReads of views and virtual columns on $name', (target) => {
  const e = entities(target.name);
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;

  const render = async (path: string): Promise<string> => {
    const ds = db.dataSource;
    switch (path) {
      case '/post/1': {
        const p = await ds.getRepository(e.VPost).findOneBy({ id: 1 });
        return p === null ? 'none' : `${p.title} (${p.commentCount} comments)`;
      }
      case '/titles':
        return (await ds.getRepository(e.VPostTitle).find({ order: { id: 'ASC' } })).map((r) => `${r.id}:${r.title}`).join(',');
      case '/counts':
        return (await ds.getRepository(e.VPostCount).find({ order: { id: 'ASC' } })).map((r) => `${r.id}:${r.comments}`).join(',');
      case '/counts-sql':
        return (await ds.getRepository(e.VPostSql).find({ order: { id: 'ASC' } })).map((r) => `${r.id}:${r.comments}`).join(',');
      default:
        throw new Error(`no page ${path}`);
    }
  };

  beforeAll(async () => {
    db = await target.open(e.all);
    e.at.schema = (db.dataSource.options as { schema?: string }).schema ?? '';
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    const ds = db.dataSource;
    await ds.createQueryBuilder().delete().from(e.VComment).execute();
    await ds.createQueryBuilder().delete().from(e.VPost).execute();
    await ds.createQueryBuilder().delete().from(e.VNote).execute();
    await ds.createQueryBuilder().insert().into(e.VPost).values([{ id: 1, title: 'Hello' }, { id: 2, title: 'Again' }]).execute();
    await ds.createQueryBuilder().insert().into(e.VComment).values([{ body: 'nice', post: { id: 1 } }]).execute();
    dumper = createDumper({});
    handle = typeormDumper(dumper, ds, { trackReads: true });
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

  test('a post found by id with a @VirtualColumn count: a comment added', async () => {
    await site.warm('/post/1');
    expect((await site.get('/post/1')).body).toBe('Hello (1 comments)');
    await db.dataSource.getRepository(e.VComment).save({ body: 'great', post: { id: 1 } });
    await expectFresh('/post/1', 'Hello (2 comments)');
  });

  test('a @ViewEntity list (a QueryBuilder of one table): a write to the table under the view', async () => {
    await site.warm('/titles');
    await db.dataSource.getRepository(e.VPost).update({ id: 1 }, { title: 'Renamed' });
    await expectFresh('/titles', '1:Renamed,2:Again');
  });

  test('a @ViewEntity of one table is not dropped by a write of a table it does not read', async () => {
    await site.warm('/titles', '/counts');
    await db.dataSource.getRepository(e.VNote).save({ id: 1, text: 'x' });
    await site.expectHit('/titles');
    // A view with a subquery depends on every table.
    await site.expectMiss('/counts');
  });

  test('a @ViewEntity whose QueryBuilder selects a subquery: a comment added', async () => {
    await site.warm('/counts');
    await db.dataSource.getRepository(e.VComment).save({ body: 'great', post: { id: 2 } });
    await expectFresh('/counts', '1:1,2:1');
  });

  (target.name === 'PostgreSQL' ? () => undefined : test)('a @ViewEntity written as SQL: a comment added', async () => {
    await site.warm('/counts-sql');
    await db.dataSource.getRepository(e.VComment).save({ body: 'great', post: { id: 1 } });
    await expectFresh('/counts-sql', '1:2,2:0');
  });
});
