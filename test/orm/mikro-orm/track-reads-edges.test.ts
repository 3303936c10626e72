/**
 * `trackReads` for MikroORM where a read depends on more than its `where` says, or a write
 * changes more than its rows: filters applied through relations, collection operators, a
 * QueryBuilder inside a filter, formulas, key spellings, many-to-many values of `em.insert()`,
 * explicit join-table entities, and a changed primary key that the database follows. Each test
 * warms pages, writes, and compares every page served with a fresh render: none may be stale.
 */
import { Collection, EntitySchema, type EntityManager, type EventArgs, type MikroORM } from '@mikro-orm/core';
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { mikroOrmDumper } from '../../../src/orm/mikro-orm/index.js';
import { kinds, openDatabase, Site, type Kind, type TestDatabase } from './support.js';

const targets = await kinds();

type Render = (orm: MikroORM, path: string) => Promise<string>;

interface Harness {
  readonly orm: MikroORM;
  readonly site: Site;
  /** Serves each path until it is stored (a HIT). */
  warm(...paths: string[]): Promise<void>;
  /** Every path served is what a fresh render shows. */
  expectFresh(...paths: string[]): Promise<void>;
  close(): Promise<void>;
}

async function harness(kind: Kind, schemas: EntitySchema<any>[], render: Render, seed: (orm: MikroORM) => Promise<void>): Promise<Harness> {
  const db: TestDatabase = await openDatabase(kind);
  const counted = await db.open(schemas);
  const orm = counted.orm;
  await seed(orm);
  const dumper: Dumper = createDumper();
  const handle = mikroOrmDumper(dumper, orm, { trackReads: true });
  const site = await Site.start(dumper, counted, async (path) => ({ status: 200, body: await render(orm, path) }));
  return {
    orm,
    site,
    async warm(...paths) {
      for (const p of paths) {
        await site.get(p);
        expect((await site.get(p)).cache, `${p} stored`).toBe('HIT');
      }
    },
    async expectFresh(...paths) {
      for (const p of paths) {
        const served = await site.get(p);
        expect(served.body, `${p} is stale (served as a ${served.cache})`).toBe(await render(orm, p));
      }
    },
    async close() {
      await site.close();
      handle.close();
      await dumper.close();
      await db.close();
    },
  };
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A soft-delete filter on authors, which MikroORM applies to every read of posts (it joins the author). */
function softDeletedAuthors() {
  class Author {
    id!: number;
    name!: string;
    deletedAt?: Date | null;
  }
  class Post {
    id!: number;
    title!: string;
    author!: Author;
  }
  const schemas = [
    new EntitySchema<Author>({
      class: Author,
      tableName: 'mo_fauthor',
      filters: { alive: { name: 'alive', cond: { deletedAt: null }, default: true } },
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        name: { type: 'string' },
        deletedAt: { type: 'datetime', nullable: true },
      },
    }),
    new EntitySchema<Post>({
      class: Post,
      tableName: 'mo_fpost',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        title: { type: 'string' },
        author: { kind: 'm:1', entity: () => Author },
      },
    }),
  ];
  return { Author, Post, schemas };
}

/** Posts and tags, many-to-many, with the inverse side mapped. */
function taggedPosts() {
  class Post {
    id!: number;
    title!: string;
    tags = new Collection<Tag>(this);
  }
  class Tag {
    id!: number;
    name!: string;
    posts = new Collection<Post>(this);
  }
  const schemas = [
    new EntitySchema<Post>({
      class: Post,
      tableName: 'mo_p2post',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        title: { type: 'string' },
        tags: { kind: 'm:n', entity: () => Tag, inversedBy: 'posts', pivotTable: 'mo_p2post_tags' },
      },
    }),
    new EntitySchema<Tag>({
      class: Tag,
      tableName: 'mo_p2tag',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        name: { type: 'string' },
        posts: { kind: 'm:n', entity: () => Post, mappedBy: 'tags' },
      },
    }),
  ];
  return { Post, Tag, schemas };
}

/** Posts and tags linked through an explicit join-table entity, PostTag (primary key: both sides). */
function pivotEntity() {
  class Post {
    id!: number;
    title!: string;
    tags = new Collection<Tag>(this);
  }
  class Tag {
    id!: number;
    name!: string;
  }
  class PostTag {
    post!: Post;
    tag!: Tag;
  }
  const schemas = [
    new EntitySchema<Post>({
      class: Post,
      tableName: 'mo_ppost',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        title: { type: 'string' },
        tags: { kind: 'm:n', entity: () => Tag, pivotEntity: () => PostTag },
      },
    }),
    new EntitySchema<Tag>({
      class: Tag,
      tableName: 'mo_ptag',
      properties: { id: { type: 'integer', primary: true, autoincrement: false }, name: { type: 'string' } },
    }),
    new EntitySchema<PostTag>({
      class: PostTag,
      tableName: 'mo_ppost_tag',
      properties: {
        post: { kind: 'm:1', entity: () => Post, primary: true, deleteRule: 'cascade' },
        tag: { kind: 'm:1', entity: () => Tag, primary: true, deleteRule: 'cascade' },
      },
    }),
  ];
  return { Post, Tag, PostTag, schemas };
}

/** Authors, their posts, and the posts' tags. */
function authorsPostsTags() {
  class Author {
    id!: number;
    name!: string;
    posts = new Collection<Post>(this);
  }
  class Post {
    id!: number;
    title!: string;
    author!: Author;
    tags = new Collection<Tag>(this);
  }
  class Tag {
    id!: number;
    name!: string;
  }
  const schemas = [
    new EntitySchema<Author>({
      class: Author,
      tableName: 'mo_wauthor',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        name: { type: 'string' },
        posts: { kind: '1:m', entity: () => Post, mappedBy: 'author' },
      },
    }),
    new EntitySchema<Post>({
      class: Post,
      tableName: 'mo_wpost',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        title: { type: 'string' },
        author: { kind: 'm:1', entity: () => Author },
        tags: { kind: 'm:n', entity: () => Tag, pivotTable: 'mo_wpost_tags' },
      },
    }),
    new EntitySchema<Tag>({
      class: Tag,
      tableName: 'mo_wtag',
      properties: { id: { type: 'integer', primary: true, autoincrement: false }, name: { type: 'string' } },
    }),
  ];
  const seed = async (orm: MikroORM) => {
    const em = orm.em.fork();
    em.create(Author, { id: 1, name: 'Ada' });
    em.create(Author, { id: 2, name: 'Bob' });
    em.create(Tag, { id: 1, name: 'news' });
    em.create(Post, { id: 1, title: 'Hello', author: 1, tags: [1] });
    em.create(Post, { id: 2, title: 'Again', author: 2 });
    await em.flush();
  };
  return { Author, Post, Tag, schemas, seed };
}

describe.each(targets)('MikroORM trackReads on %s: reads that depend on other tables', (kind) => {
  test('a filter on a to-one relation’s entity: soft-deleting the author drops the post page read by primary key', async () => {
    const m = softDeletedAuthors();
    const render = async (orm: MikroORM, path: string) => {
      const p = await orm.em.fork().findOne(m.Post, Number(path.split('/')[2]));
      return p === null ? 'no such post' : `post ${p.title}`;
    };
    h = await harness(kind, m.schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(m.Author, { id: 1, name: 'Ada' });
      em.create(m.Post, { id: 1, title: 'Hello', author: 1 });
      await em.flush();
    });
    await h.warm('/posts/1');
    expect((await h.site.get('/posts/1')).body).toBe('post Hello');
    const em = h.orm.em.fork();
    const ada = await em.findOneOrFail(m.Author, 1, { filters: false });
    ada.deletedAt = new Date();
    await em.flush();
    expect(await render(h.orm, '/posts/1')).toBe('no such post');
    await h.expectFresh('/posts/1');
  });

  test('a filter on a to-one relation’s entity: restoring the author brings a post back into a read by primary keys', async () => {
    const m = softDeletedAuthors();
    const render = async (orm: MikroORM) => {
      const list = await orm.em.fork().find(m.Post, { id: { $in: [1, 2] } }, { orderBy: { id: 'asc' } });
      return `posts: ${list.map((p) => p.title).join(',')}`;
    };
    h = await harness(kind, m.schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(m.Author, { id: 1, name: 'Ada', deletedAt: new Date() });
      em.create(m.Author, { id: 2, name: 'Bob' });
      em.create(m.Post, { id: 1, title: 'Hello', author: 1 });
      em.create(m.Post, { id: 2, title: 'Again', author: 2 });
      await em.flush();
    });
    await h.warm('/list');
    expect((await h.site.get('/list')).body).toBe('posts: Again');
    await h.orm.em.fork().nativeUpdate(m.Author, 1, { deletedAt: null }, { filters: false });
    expect(await render(h.orm)).toBe('posts: Hello,Again');
    await h.expectFresh('/list');
  });

  test('$some on a collection, with a condition on a further relation: renaming the tag drops the page', async () => {
    const m = authorsPostsTags();
    const render = async (orm: MikroORM) => {
      const list = await orm.em.fork().find(m.Author, { posts: { $some: { tags: { name: 'news' } } } }, { orderBy: { id: 'asc' } });
      return `authors with news: ${list.map((a) => a.name).join(',')}`;
    };
    h = await harness(kind, m.schemas, render, m.seed);
    await h.warm('/authors');
    expect((await h.site.get('/authors')).body).toBe('authors with news: Ada');
    const em = h.orm.em.fork();
    (await em.findOneOrFail(m.Tag, 1)).name = 'old';
    await em.flush();
    expect(await render(h.orm)).toBe('authors with news: ');
    await h.expectFresh('/authors');
  });

  test('a QueryBuilder with $some on a collection: renaming the tag drops the page', async () => {
    const m = authorsPostsTags();
    const render = async (orm: MikroORM) => {
      const qb = (orm.em.fork() as unknown as { createQueryBuilder(e: unknown, alias: string): any }).createQueryBuilder(m.Author, 'a');
      const list = (await qb.select('*').where({ posts: { $some: { tags: { name: 'news' } } } }).orderBy({ id: 'asc' }).getResultList()) as Array<{ name: string }>;
      return `authors: ${list.map((p) => p.name).join(',')}`;
    };
    h = await harness(kind, m.schemas, render, m.seed);
    await h.warm('/');
    expect((await h.site.get('/')).body).toBe('authors: Ada');
    const em = h.orm.em.fork();
    (await em.findOneOrFail(m.Tag, 1)).name = 'old';
    await em.flush();
    expect(await render(h.orm)).toBe('authors: ');
    await h.expectFresh('/');
  });

  test('a filter computed by a QueryBuilder select inside a read by primary key: banning the post drops its page', async () => {
    class Ban {
      id!: number;
      postId!: number;
    }
    class Post {
      id!: number;
      title!: string;
    }
    const schemas = [
      new EntitySchema<Ban>({
        class: Ban,
        tableName: 'mo_qban',
        properties: { id: { type: 'integer', primary: true }, postId: { type: 'integer' } },
      }),
      new EntitySchema<Post>({
        class: Post,
        tableName: 'mo_qpost',
        filters: {
          visible: {
            name: 'visible',
            default: true,
            args: false,
            cond: async (_args: unknown, _type: unknown, em: EntityManager) => {
              const qb = (em as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(Ban);
              const rows = (await qb.select('postId').execute('all')) as Array<{ postId: number }>;
              return { id: { $nin: rows.map((r) => r.postId) } };
            },
          },
        },
        properties: { id: { type: 'integer', primary: true, autoincrement: false }, title: { type: 'string' } },
      }),
    ];
    const render = async (orm: MikroORM) => {
      const p = await orm.em.fork().findOne(Post, 1);
      return p === null ? 'no such post' : `post ${p.title}`;
    };
    h = await harness(kind, schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(Post, { id: 1, title: 'Hello' });
      await em.flush();
    });
    await h.warm('/posts/1');
    expect((await h.site.get('/posts/1')).body).toBe('post Hello');
    await h.orm.em.fork().insert(Ban, { postId: 1 });
    expect(await render(h.orm)).toBe('no such post');
    await h.expectFresh('/posts/1');
  });

  test('an onLoad hook that runs a QueryBuilder select inside a read by primary key: banning the post drops its page', async () => {
    class Ban {
      id!: number;
      postId!: number;
    }
    class Post {
      id!: number;
      title!: string;
      banned?: boolean;
    }
    const schemas = [
      new EntitySchema<Ban>({
        class: Ban,
        tableName: 'mo_hban',
        properties: { id: { type: 'integer', primary: true }, postId: { type: 'integer' } },
      }),
      new EntitySchema<Post>({
        class: Post,
        tableName: 'mo_hpost',
        hooks: {
          onLoad: [
            async ({ entity, em }: EventArgs<Post>) => {
              const qb = (em as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(Ban);
              const rows = (await qb.select('id').where({ postId: entity.id }).execute('all')) as unknown[];
              entity.banned = rows.length > 0;
            },
          ],
        },
        properties: { id: { type: 'integer', primary: true, autoincrement: false }, title: { type: 'string' }, banned: { type: 'boolean', persist: false, nullable: true } },
      }),
    ];
    const render = async (orm: MikroORM) => {
      const p = await orm.em.fork().findOneOrFail(Post, 1);
      return `post ${p.title}${p.banned === true ? ' (banned)' : ''}`;
    };
    h = await harness(kind, schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(Post, { id: 1, title: 'Hello' });
      await em.flush();
    });
    await h.warm('/posts/1');
    expect((await h.site.get('/posts/1')).body).toBe('post Hello');
    await h.orm.em.fork().insert(Ban, { postId: 1 });
    expect(await render(h.orm)).toBe('post Hello (banned)');
    await h.expectFresh('/posts/1');
  });

  test('a formula property reading another table: a new comment drops the post page with the old count', async () => {
    class Post {
      id!: number;
      title!: string;
      commentCount?: number;
      comments = new Collection<Comment>(this);
    }
    class Comment {
      id!: number;
      body!: string;
      post!: Post;
    }
    const schemas = [
      new EntitySchema<Post>({
        class: Post,
        tableName: 'mo_xpost',
        properties: {
          id: { type: 'integer', primary: true, autoincrement: false },
          title: { type: 'string' },
          commentCount: {
            type: 'integer',
            persist: false,
            formula: (t) => `(select count(*) from ${t.schema === undefined ? '' : `${t.schema}.`}mo_xcomment c where c.post_id = ${t}.id)`,
          },
          comments: { kind: '1:m', entity: () => Comment, mappedBy: 'post' },
        },
      }),
      new EntitySchema<Comment>({
        class: Comment,
        tableName: 'mo_xcomment',
        properties: {
          id: { type: 'integer', primary: true },
          body: { type: 'string' },
          post: { kind: 'm:1', entity: () => Post },
        },
      }),
    ];
    const render = async (orm: MikroORM) => {
      const p = await orm.em.fork().findOneOrFail(Post, 1);
      return `${p.title} (${Number(p.commentCount)} comments)`;
    };
    h = await harness(kind, schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(Post, { id: 1, title: 'Hello' });
      await em.flush();
    });
    await h.warm('/posts/1');
    expect((await h.site.get('/posts/1')).body).toBe('Hello (0 comments)');
    const em = h.orm.em.fork();
    em.create(Comment, { body: 'nice', post: 1 });
    await em.flush();
    expect(await render(h.orm)).toBe('Hello (1 comments)');
    await h.expectFresh('/posts/1');
  });
});

describe.each(targets)('MikroORM trackReads on %s: writes that change more than their rows', (kind) => {
  type M = ReturnType<typeof taggedPosts>;
  const pages: Record<string, (orm: MikroORM, m: M) => Promise<string>> = {
    '/loadcount': async (orm, m) => `loadCount ${await (await orm.em.fork().findOneOrFail(m.Post, 1)).tags.loadCount()}`,
    '/count': async (orm, m) => `count ${await orm.em.fork().count(m.Post, { tags: 1 })}`,
    '/tags/1': async (orm, m) => {
      const t = await orm.em.fork().findOne(m.Tag, 1, { populate: ['posts'] });
      return t === null ? 'no such tag' : `tag 1: ${t.posts.getItems().map((p) => p.id).sort()}`;
    },
    '/posts/2': async (orm, m) => {
      const p = await orm.em.fork().findOneOrFail(m.Post, 2, { populate: ['tags'], strategy: 'select-in' });
      return `post 2: ${p.tags.getItems().map((t) => t.id).sort()}`;
    },
  };
  const all = Object.keys(pages);

  async function tagged(): Promise<M> {
    const m = taggedPosts();
    h = await harness(kind, m.schemas, (orm, path) => pages[path]!(orm, m), async (orm) => {
      const em = orm.em.fork();
      em.create(m.Tag, { id: 1, name: 'a' });
      em.create(m.Tag, { id: 2, name: 'b' });
      em.create(m.Post, { id: 1, title: 'x', tags: [1] });
      em.create(m.Post, { id: 2, title: 'y', tags: [1, 2] });
      await em.flush();
    });
    await h.warm(...all);
    return m;
  }

  test('em.insert() with many-to-many values: the page of the linked tag’s posts', async () => {
    const m = await tagged();
    await h!.orm.em.fork().insert(m.Post, { id: 3, title: 'z', tags: [1] } as never);
    expect(await pages['/tags/1']!(h!.orm, m)).toBe('tag 1: 1,2,3');
    await h!.expectFresh(...all);
  });

  test('em.insertMany() with many-to-many values: the page of the linked tag’s posts', async () => {
    const m = await tagged();
    await h!.orm.em.fork().insertMany(m.Post, [{ id: 3, title: 'z', tags: [1] }] as never);
    expect(await pages['/tags/1']!(h!.orm, m)).toBe('tag 1: 1,2,3');
    await h!.expectFresh(...all);
  });

  async function linkPage(linked: boolean) {
    const m = pivotEntity();
    const render = async (orm: MikroORM) => {
      const link = await orm.em.fork().findOne(m.PostTag, { post: 1, tag: 2 });
      return link === null ? 'post 1 is not tagged 2' : 'post 1 is tagged 2';
    };
    h = await harness(kind, m.schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(m.Post, { id: 1, title: 'Hello' });
      em.create(m.Tag, { id: 2, name: 'news' });
      if (linked) em.create(m.PostTag, { post: 1, tag: 2 });
      await em.flush();
    });
    await h.warm('/link');
    return { m, render };
  }

  test('a join-table entity read by its key: a link added through the collection drops the page', async () => {
    const { m, render } = await linkPage(false);
    const em = h!.orm.em.fork();
    const post = await em.findOneOrFail(m.Post, 1, { populate: ['tags'] });
    post.tags.add(em.getReference(m.Tag, 2));
    await em.flush();
    expect(await render(h!.orm)).toBe('post 1 is tagged 2');
    await h!.expectFresh('/link');
  });

  test('a join-table entity read by its key: the row flushed as an entity drops the page', async () => {
    const { m, render } = await linkPage(false);
    const em = h!.orm.em.fork();
    em.create(m.PostTag, { post: 1, tag: 2 });
    await em.flush();
    expect(await render(h!.orm)).toBe('post 1 is tagged 2');
    await h!.expectFresh('/link');
  });

  test('a join-table entity read by its key: nativeDelete() of the row drops the page', async () => {
    const { m, render } = await linkPage(true);
    await h!.orm.em.fork().nativeDelete(m.PostTag, { post: 1, tag: 2 });
    expect(await render(h!.orm)).toBe('post 1 is not tagged 2');
    await h!.expectFresh('/link');
  });

  /** Post 1 with a comment, and post 7: the comments pages of posts 1 and 100 and the page of post 7 are warmed. */
  async function movedComments() {
    class Post {
      id!: number;
      title!: string;
      comments = new Collection<Comment>(this);
    }
    class Comment {
      id!: number;
      body!: string;
      post!: Post;
    }
    const schemas = [
      new EntitySchema<Post>({
        class: Post,
        tableName: 'mo_kpost',
        properties: {
          id: { type: 'integer', primary: true, autoincrement: false },
          title: { type: 'string' },
          comments: { kind: '1:m', entity: () => Comment, mappedBy: 'post' },
        },
      }),
      new EntitySchema<Comment>({
        class: Comment,
        tableName: 'mo_kcomment',
        properties: {
          id: { type: 'integer', primary: true },
          body: { type: 'string' },
          post: { kind: 'm:1', entity: () => Post },
        },
      }),
    ];
    const render = async (orm: MikroORM, path: string) => {
      const id = Number(path.split('/')[2]);
      if (!path.endsWith('/comments')) return `post ${(await orm.em.fork().findOne(Post, id))?.title ?? 'none'}`;
      const list = await orm.em.fork().find(Comment, { post: id });
      return `comments of ${id}: ${list.map((c) => c.body).join(',')}`;
    };
    h = await harness(kind, schemas, render, async (orm) => {
      const em = orm.em.fork();
      em.create(Post, { id: 1, title: 'Hello' });
      em.create(Post, { id: 7, title: 'Other' });
      em.create(Comment, { body: 'nice', post: 1 });
      await em.flush();
    });
    await h.warm('/posts/1/comments', '/posts/100/comments', '/posts/7');
    return {
      Post,
      async expectMoved() {
        expect(await render(h!.orm, '/posts/100/comments')).toBe('comments of 100: nice');
        await h!.expectFresh('/posts/1/comments', '/posts/100/comments', '/posts/7');
      },
    };
  }

  test('a primary key changed by a flush: the comments the database moved with it (ON UPDATE CASCADE)', async () => {
    const k = await movedComments();
    const em = h!.orm.em.fork();
    const post = await em.findOneOrFail(k.Post, 1);
    post.id = 100;
    await em.flush();
    await k.expectMoved();
    // Not every page: another post's page, read by its key, stays.
    expect((await h!.site.get('/posts/7')).cache).toBe('HIT');
  });

  // A native update after which its rows are gone is a write of unknown rows: everything read
  // from the table, and from the tables whose foreign keys follow its primary key.
  test('a primary key changed by nativeUpdate() by primary key: the comments the database moved with it', async () => {
    const k = await movedComments();
    await h!.orm.em.fork().nativeUpdate(k.Post, 1, { id: 100 });
    await k.expectMoved();
  });

  test('a primary key changed by nativeUpdate() by another column: the comments the database moved with it', async () => {
    const k = await movedComments();
    await h!.orm.em.fork().nativeUpdate(k.Post, { title: 'Hello' }, { id: 100 });
    await k.expectMoved();
  });

  test('a primary key changed by a QueryBuilder update: the comments the database moved with it', async () => {
    const k = await movedComments();
    const qb = (h!.orm.em.fork() as unknown as { createQueryBuilder(e: unknown): any }).createQueryBuilder(k.Post);
    await qb.update({ id: 100 }).where({ title: 'Hello' }).execute();
    await k.expectMoved();
  });
});

const postgres = targets.filter((k) => k === 'PostgreSQL');

describe.each(postgres)('MikroORM trackReads on %s: uuid keys', (kind) => {
  test('a uuid spelled without hyphens or in braces (PostgreSQL finds the row) is a list: inserting the row drops the page', async () => {
    class Item {
      id!: string;
      name!: string;
    }
    const schemas = [
      new EntitySchema<Item>({
        class: Item,
        tableName: 'mo_uitem',
        properties: { id: { type: 'uuid', primary: true }, name: { type: 'string' } },
      }),
    ];
    const canonical = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    const other = 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12';
    const spellings = [canonical.replaceAll('-', ''), `{${canonical}}`];
    const render = async (orm: MikroORM, path: string) => {
      const item = await orm.em.fork().findOne(Item, decodeURIComponent(path.slice('/items/'.length)));
      return item === null ? 'no such item' : `item ${item.name}`;
    };
    const paths = [...spellings, other].map((s) => `/items/${encodeURIComponent(s)}`);
    h = await harness(kind, schemas, render, async () => undefined);
    await h.warm(...paths);
    for (const p of paths) expect((await h.site.get(p)).body).toBe('no such item');
    const em = h.orm.em.fork();
    em.create(Item, { id: canonical, name: 'Widget' });
    await em.flush();
    for (const p of paths.slice(0, spellings.length)) expect(await render(h.orm, p)).toBe('item Widget');
    await h.expectFresh(...paths);
    // The canonical spelling of another key is still read by its row: that page stays.
    expect((await h.site.get(paths.at(-1)!)).cache).toBe('HIT');
  });
});
