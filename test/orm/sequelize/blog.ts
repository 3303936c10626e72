/**
 * A small blog on Sequelize for the `trackReads` suite, the same as test/orm/typeorm/blog.ts:
 * authors, posts (belongsTo an author, deleted with it), tags (belongsToMany with posts, through
 * Sequelize's own junction model) and comments (belongsTo a post, deleted with it). No model is
 * registered and nothing names a page: the pages are tagged by what they read. The post page reads
 * with `include` (belongsTo, belongsToMany, hasMany), the tag page with an association getter
 * (`tag.getPosts()`), the author page by foreign key, the count page with `count()`.
 */
import {
  DataTypes,
  Model,
  Op,
  type BelongsToGetAssociationMixin,
  type BelongsToManyAddAssociationMixin,
  type BelongsToManyCountAssociationsMixin,
  type BelongsToManyGetAssociationsMixin,
  type BelongsToManyHasAssociationMixin,
  type BelongsToManyRemoveAssociationMixin,
  type HasManyCountAssociationsMixin,
  type HasManyGetAssociationsMixin,
  type Sequelize,
} from 'sequelize';
import type { BlogApp } from '../track-reads/check.js';

export function defineBlog(sequelize: Sequelize) {
  class Author extends Model {
    declare id: number;
    declare name: string;
  }
  class Post extends Model {
    declare id: number;
    declare title: string;
    declare authorId: number;
    declare author?: Author;
    declare tags?: Tag[];
    declare comments?: Comment[];
    declare addTag: BelongsToManyAddAssociationMixin<Tag, number>;
    declare removeTag: BelongsToManyRemoveAssociationMixin<Tag, number>;
    declare getComments: HasManyGetAssociationsMixin<Comment>;
    declare countComments: HasManyCountAssociationsMixin;
  }
  class Tag extends Model {
    declare id: number;
    declare name: string;
    declare getPosts: BelongsToManyGetAssociationsMixin<Post>;
    declare hasPost: BelongsToManyHasAssociationMixin<Post, number>;
    declare countPosts: BelongsToManyCountAssociationsMixin;
  }
  class Comment extends Model {
    declare id: number;
    declare body: string;
    declare postId: number;
    declare getPost: BelongsToGetAssociationMixin<Post>;
  }
  // Ids are not generated (but the comments'): the pages name them, the suite clears the tables
  // between tests, and a test inserts the post a page looked for before it existed.
  const id = { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: false };
  Author.init({ id, name: { type: DataTypes.STRING(100), allowNull: false } }, { sequelize, tableName: 'sq_author', modelName: 'Author', timestamps: false });
  Post.init({ id, title: { type: DataTypes.STRING(200), allowNull: false } }, { sequelize, tableName: 'sq_post', modelName: 'Post', timestamps: false });
  Tag.init({ id, name: { type: DataTypes.STRING(100), allowNull: false } }, { sequelize, tableName: 'sq_tag', modelName: 'Tag', timestamps: false });
  Comment.init({ body: { type: DataTypes.STRING(200), allowNull: false } }, { sequelize, tableName: 'sq_comment', modelName: 'Comment', timestamps: false });
  Post.belongsTo(Author, { as: 'author', foreignKey: { name: 'authorId', allowNull: false }, onDelete: 'CASCADE' });
  Author.hasMany(Post, { as: 'posts', foreignKey: { name: 'authorId', allowNull: false }, onDelete: 'CASCADE' });
  Post.belongsToMany(Tag, { as: 'tags', through: 'sq_post_tag', foreignKey: 'postId', otherKey: 'tagId', timestamps: false });
  Tag.belongsToMany(Post, { as: 'posts', through: 'sq_post_tag', foreignKey: 'tagId', otherKey: 'postId', timestamps: false });
  Comment.belongsTo(Post, { as: 'post', foreignKey: { name: 'postId', allowNull: false }, onDelete: 'CASCADE' });
  Post.hasMany(Comment, { as: 'comments', foreignKey: { name: 'postId', allowNull: false }, onDelete: 'CASCADE' });
  const PostTag = sequelize.models.sq_post_tag!;
  return { Author, Post, Tag, Comment, PostTag, all: [PostTag, Comment, Post, Tag, Author] as const };
}

export type Blog = ReturnType<typeof defineBlog>;

const byId = <T extends { id: number }>(rows: readonly T[]) => [...rows].sort((a, b) => a.id - b.id);

/** The blog's pages (see ../track-reads/check.ts): each renders what it read, nothing else. */
export function blogApp(blog: Blog): BlogApp & { handle(path: string): Promise<{ status: number; body: string }> } {
  const { Post, Tag, Comment } = blog;
  async function render(path: string): Promise<string> {
    let m: RegExpExecArray | null;
    if (path === '/') {
      const all = await Post.findAll({ include: [{ association: 'author' }], order: [['id', 'ASC']] });
      return all.map((p) => `${p.id}:${p.title} by ${p.author!.name}`).join('\n');
    }
    if ((m = /^\/posts\/(\d+)$/.exec(path))) {
      const p = await Post.findOne({ where: { id: Number(m[1]) }, include: [{ association: 'author' }, { association: 'tags' }, { association: 'comments' }] });
      if (p === null) return 'no such post';
      return [
        `${p.title} by ${p.author!.name}`,
        `tags: ${byId(p.tags!).map((t) => t.name).join(',')}`,
        `comments: ${byId(p.comments!).map((c) => c.body).join(',')}`,
      ].join('\n');
    }
    if ((m = /^\/authors\/(\d+)\/posts$/.exec(path))) {
      const list = await Post.findAll({ where: { authorId: Number(m[1]) }, order: [['id', 'ASC']] });
      return `posts: ${list.map((p) => p.title).join(',')}`;
    }
    if ((m = /^\/titled\/([a-z])$/.exec(path))) {
      const list = await Post.findAll({ where: { title: { [Op.like]: `%${m[1]}%` } }, order: [['id', 'ASC']] });
      return `titled: ${list.map((p) => p.title).join(',')}`;
    }
    if (path === '/count') {
      const all = await Comment.count();
      const first = await Comment.count({ where: { postId: 1 } });
      return `comments: ${all}, on post 1: ${first}`;
    }
    if ((m = /^\/tags\/(\d+)$/.exec(path))) {
      const t = await Tag.findByPk(Number(m[1]));
      if (t === null) return 'no such tag';
      return `${t.name}: ${byId(await t.getPosts()).map((p) => p.title).join(',')}`;
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
export async function seedBlog(blog: Blog): Promise<void> {
  const { Author, Post, Tag, Comment, PostTag } = blog;
  await Author.bulkCreate([
    { id: 1, name: 'Ada' },
    { id: 2, name: 'Bob' },
  ]);
  await Tag.bulkCreate([
    { id: 1, name: 'news' },
    { id: 2, name: 'misc' },
  ]);
  await Post.bulkCreate([
    { id: 1, title: 'Hello', authorId: 1 },
    { id: 2, title: 'Again', authorId: 1 },
    { id: 3, title: 'Bye', authorId: 2 },
  ]);
  await PostTag.bulkCreate([
    { postId: 1, tagId: 1 },
    { postId: 2, tagId: 2 },
    { postId: 3, tagId: 1 },
  ]);
  await Comment.bulkCreate([
    { body: 'nice', postId: 1 },
    { body: 'great', postId: 1 },
    { body: 'ok', postId: 2 },
  ]);
}
