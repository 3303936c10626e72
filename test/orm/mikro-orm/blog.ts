/**
 * A small blog on MikroORM for the `trackReads` suite, as test/orm/typeorm/blog.ts: authors,
 * posts (many-to-one to an author, deleted with it), tags (many-to-many with posts, posts own
 * the join table) and comments (many-to-one to a post, deleted with it); and categories, whose
 * primary key is a string (for the key-spelling cases). No model is registered and nothing names
 * a page: the pages are tagged by what they read. Each `blog()` call makes fresh entity classes
 * (MikroORM keeps per-ORM state on a class).
 */
import { Collection, EntitySchema, type EntityManager, type MikroORM } from '@mikro-orm/core';
import type { BlogApp } from '../track-reads/check.js';

export function blog() {
  class Author {
    id!: number;
    name!: string;
    posts = new Collection<Post>(this);
  }
  class Post {
    // Ids are not generated (but the comments'): the pages name them, and a test inserts the post
    // a page looked for before it existed.
    id!: number;
    title!: string;
    author!: Author;
    tags = new Collection<Tag>(this);
    comments = new Collection<Comment>(this);
  }
  class Tag {
    id!: number;
    name!: string;
    posts = new Collection<Post>(this);
  }
  class Comment {
    id!: number;
    body!: string;
    post!: Post;
  }
  class Category {
    code!: string;
    name!: string;
  }
  const schemas = [
    new EntitySchema<Author>({
      class: Author,
      tableName: 'mo_author',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        name: { type: 'string', length: 100 },
        posts: { kind: '1:m', entity: () => Post, mappedBy: 'author' },
      },
    }),
    new EntitySchema<Post>({
      class: Post,
      tableName: 'mo_post',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        title: { type: 'string', length: 200 },
        author: { kind: 'm:1', entity: () => Author, deleteRule: 'cascade' },
        tags: { kind: 'm:n', entity: () => Tag, inversedBy: 'posts', pivotTable: 'mo_post_tags' },
        comments: { kind: '1:m', entity: () => Comment, mappedBy: 'post' },
      },
    }),
    new EntitySchema<Tag>({
      class: Tag,
      tableName: 'mo_tag',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: false },
        name: { type: 'string', length: 100 },
        posts: { kind: 'm:n', entity: () => Post, mappedBy: 'tags' },
      },
    }),
    new EntitySchema<Comment>({
      class: Comment,
      tableName: 'mo_comment',
      properties: {
        id: { type: 'integer', primary: true, autoincrement: true },
        body: { type: 'string', length: 200 },
        post: { kind: 'm:1', entity: () => Post, deleteRule: 'cascade' },
      },
    }),
    new EntitySchema<Category>({
      class: Category,
      tableName: 'mo_category',
      properties: {
        code: { type: 'string', length: 20, primary: true },
        name: { type: 'string', length: 100 },
      },
    }),
  ];
  return { Author, Post, Tag, Comment, Category, schemas };
}

export type Blog = ReturnType<typeof blog>;

const byId = <T extends { id: number }>(rows: Iterable<T>) => [...rows].sort((a, b) => a.id - b.id);

/** The blog's pages (see ../track-reads/check.ts), each rendered with a fresh fork of `orm`'s entity manager. */
export function blogApp(orm: MikroORM, b: Blog): BlogApp & { handle(path: string): Promise<{ status: number; body: string }> } {
  async function render(path: string): Promise<string> {
    const em = orm.em.fork();
    let m: RegExpExecArray | null;
    if (path === '/') {
      const all = await em.find(b.Post, {}, { populate: ['author'], orderBy: { id: 'asc' } });
      return all.map((p) => `${p.id}:${p.title} by ${p.author.name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const p = await em.findOne(b.Post, { id: Number(m[1]) }, { populate: ['author', 'tags', 'comments'] });
      if (p === null) return 'no such post';
      return [`${p.title} by ${p.author.name}`, `tags: ${byId(p.tags).map((t) => t.name).join(',')}`, `comments: ${byId(p.comments).map((c) => c.body).join(',')}`].join('\n');
    }
    if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
      const list = await em.find(b.Post, { author: { id: Number(m[1]) } }, { orderBy: { id: 'asc' } });
      return `posts: ${list.map((p) => p.title).join(',')}`;
    }
    if ((m = /^\/titled\/([a-z])$/.exec(path))) {
      const list = await em.find(b.Post, { title: { $like: `%${m[1]}%` } }, { orderBy: { id: 'asc' } });
      return `titled: ${list.map((p) => p.title).join(',')}`;
    }
    if (path === '/count') {
      const all = await em.count(b.Comment);
      const first = await em.count(b.Comment, { post: 1 });
      return `comments: ${all}, on post 1: ${first}`;
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      const t = await em.findOne(b.Tag, { id: Number(m[1]) }, { populate: ['posts'] });
      if (t === null) return 'no such tag';
      return `${t.name}: ${byId(t.posts).map((p) => p.title).join(',')}`;
    }
    if (path === '/about') return 'about this blog';
    throw new Error(`no page ${path}`);
  }
  return {
    render,
    async handle(path) {
      return { status: 200, body: await render(path) };
    },
  };
}

/**
 * Ada (posts 1 "Hello" and 2 "Again"), Bob (post 3 "Bye"); tags news (posts 1 and 3) and misc
 * (post 2); comments on post 1 ("nice", "great") and on post 2 ("ok"); category "news".
 */
export async function seedBlog(em: EntityManager, b: Blog): Promise<void> {
  const ada = em.create(b.Author, { id: 1, name: 'Ada' });
  const bob = em.create(b.Author, { id: 2, name: 'Bob' });
  const news = em.create(b.Tag, { id: 1, name: 'news' });
  const misc = em.create(b.Tag, { id: 2, name: 'misc' });
  const hello = em.create(b.Post, { id: 1, title: 'Hello', author: ada, tags: [news] });
  const again = em.create(b.Post, { id: 2, title: 'Again', author: ada, tags: [misc] });
  em.create(b.Post, { id: 3, title: 'Bye', author: bob, tags: [news] });
  await em.flush();
  em.create(b.Comment, { body: 'nice', post: hello });
  em.create(b.Comment, { body: 'great', post: hello });
  em.create(b.Comment, { body: 'ok', post: again });
  em.create(b.Category, { code: 'news', name: 'News' });
  await em.flush();
  em.clear();
}
