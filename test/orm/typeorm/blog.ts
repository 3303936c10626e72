/**
 * A small blog on TypeORM for the `trackReads` suites: authors, posts (many-to-one to an author),
 * tags (many-to-many with posts) and comments (many-to-one to a post, deleted with it). No model
 * is registered and nothing names a page: the pages are tagged by what they read.
 */
import { Column, Entity, JoinTable, ManyToMany, ManyToOne, OneToMany, PrimaryColumn, PrimaryGeneratedColumn, Like, type DataSource } from 'typeorm';
import type { BlogApp } from '../track-reads/check.js';

@Entity()
export class Author {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @OneToMany(() => Post, (p) => p.author) posts!: Post[];
}

@Entity()
export class Post {
  // Ids are not generated (but the comments'): the pages name them, the suites clear the tables
  // between tests, and a test inserts the post a page looked for before it existed.
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 200 }) title!: string;
  @ManyToOne(() => Author, (a) => a.posts, { nullable: false, onDelete: 'CASCADE' }) author!: Author;
  @ManyToMany(() => Tag, (t) => t.posts) @JoinTable() tags!: Tag[];
  @OneToMany(() => Comment, (c) => c.post) comments!: Comment[];
}

@Entity()
export class Tag {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @ManyToMany(() => Post, (p) => p.tags) posts!: Post[];
}

@Entity()
export class Comment {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 200 }) body!: string;
  @ManyToOne(() => Post, (p) => p.comments, { nullable: false, onDelete: 'CASCADE' }) post!: Post;
}

export const blogEntities = [Author, Post, Tag, Comment];

const byId = <T extends { id: number }>(rows: T[]) => [...rows].sort((a, b) => a.id - b.id);

/** The blog's pages (see ../track-reads/check.ts): each renders what it read, nothing else. */
export function blogApp(ds: DataSource): BlogApp & { handle(path: string): Promise<{ status: number; body: string }> } {
  const posts = () => ds.getRepository(Post);
  async function render(path: string): Promise<string> {
    let m: RegExpExecArray | null;
    if (path === '/') {
      const all = await posts().find({ relations: { author: true }, order: { id: 'ASC' } });
      return all.map((p) => `${p.id}:${p.title} by ${p.author.name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const p = await posts().findOne({ where: { id: Number(m[1]) }, relations: { author: true, tags: true, comments: true } });
      if (p === null) return 'no such post';
      return [
        `${p.title} by ${p.author.name}`,
        `tags: ${byId(p.tags).map((t) => t.name).join(',')}`,
        `comments: ${byId(p.comments).map((c) => c.body).join(',')}`,
      ].join('\n');
    }
    if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
      const list = await posts().find({ where: { author: { id: Number(m[1]) } }, order: { id: 'ASC' } });
      return `posts: ${list.map((p) => p.title).join(',')}`;
    }
    if ((m = /^\/titled\/([a-z])$/.exec(path))) {
      const list = await posts().find({ where: { title: Like(`%${m[1]}%`) }, order: { id: 'ASC' } });
      return `titled: ${list.map((p) => p.title).join(',')}`;
    }
    if (path === '/count') {
      const all = await ds.getRepository(Comment).count();
      const first = await ds.getRepository(Comment).countBy({ post: { id: 1 } });
      return `comments: ${all}, on post 1: ${first}`;
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      const t = await ds.getRepository(Tag).findOne({ where: { id: Number(m[1]) }, relations: { posts: true } });
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
 * (post 2); comments on post 1 ("nice", "great") and on post 2 ("ok").
 */
export async function seedBlog(ds: DataSource) {
  const [ada, bob] = await ds.getRepository(Author).save([
    { id: 1, name: 'Ada' },
    { id: 2, name: 'Bob' },
  ]);
  const [news, misc] = await ds.getRepository(Tag).save([
    { id: 1, name: 'news' },
    { id: 2, name: 'misc' },
  ]);
  await ds.getRepository(Post).save([
    { id: 1, title: 'Hello', author: ada!, tags: [news!] },
    { id: 2, title: 'Again', author: ada!, tags: [misc!] },
    { id: 3, title: 'Bye', author: bob!, tags: [news!] },
  ]);
  await ds.getRepository(Comment).save([
    { body: 'nice', post: { id: 1 } },
    { body: 'great', post: { id: 1 } },
    { body: 'ok', post: { id: 2 } },
  ]);
  return { ada: ada!, bob: bob!, news: news!, misc: misc! };
}
