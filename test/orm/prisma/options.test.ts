/**
 * prismaDumper() setup: options are checked when it is called, model and relation names when the
 * client is extended, each mistake a TypeError with a message that names it. The schema reader
 * that finds primary keys and list fields, and the types the extended client keeps.
 */
import { describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { prismaDumper, type PrismaDumperOptions } from '../../../src/orm/prisma/index.js';
import { parseSchema, readDataModel, type RuntimeDataModel } from '../../../src/orm/prisma/schema.js';
import { openDatabase, type Extended } from './support.js';

describe('prismaDumper() options', () => {
  const dumper = createDumper({ logger: false });

  test('needs a dumper', () => {
    expect(() => prismaDumper({} as never)).toThrow(new TypeError('page-dumper: prismaDumper() needs a dumper made by createDumper()'));
  });

  test.each([
    ['options', 'nope', 'page-dumper: prismaDumper(dumper, options): options must be an object'],
    ['include', { include: [] }, 'page-dumper: prismaDumper() option include must be an object of Prisma includes keyed by model name, such as { IceCream: { sizes: true } }'],
    ['include.Simple', { include: { Simple: true } }, 'page-dumper: prismaDumper() option include.Simple must be a Prisma include object, such as { sizes: true }'],
    ['maxRows 0', { maxRows: 0 }, 'page-dumper: prismaDumper() option maxRows must be a positive integer, got 0'],
    ['maxRows 1.5', { maxRows: 1.5 }, 'page-dumper: prismaDumper() option maxRows must be a positive integer, got 1.5'],
    ['maxRows "10"', { maxRows: '10' }, 'page-dumper: prismaDumper() option maxRows must be a positive integer, got 10'],
  ])('a bad %s is a TypeError', (_, options, message) => {
    expect(() => prismaDumper(dumper, options as PrismaDumperOptions)).toThrow(new TypeError(message));
  });

  test('model and relation names are checked against the client when it is extended', async () => {
    const db = await openDatabase('sqlite');
    try {
      const { prisma } = db.client();
      expect(() => prisma.$extends(prismaDumper(dumper, { include: { Nope: {} } }))).toThrow(
        new TypeError('page-dumper: prismaDumper() option include names model "Nope", which this Prisma Client does not have'),
      );
      expect(() => prisma.$extends(prismaDumper(dumper, { include: { Simple: { name: true } } }))).toThrow(
        new TypeError('page-dumper: prismaDumper() option include.Simple.name: Simple has no relation named "name"'),
      );
      expect(() => prisma.$extends(prismaDumper(dumper, { include: { Simple: { related: true, _count: true } } }))).not.toThrow();
    } finally {
      await db.drop();
    }
  });
});

describe('reading the schema', () => {
  const schema = `
    generator client {
      provider = "prisma-client"
      output   = "./x" // a comment
    }
    datasource db {
      provider = "postgresql"
    }
    /// A doc comment
    model Post {
      id       Int       @id(map: "post_pk") @default(autoincrement())
      url      String    @default("https://example.com//path(") // not a comment, nor a parenthesis, inside the string
      tags     Tag[]
      author   User?     @relation(
        fields: [authorId],
        references: [id]
      )
      authorId Int?
    }
    model Tag {
      name  String
      lang  String
      posts Post[]
      @@id([name, lang])
    }
    model User {
      email String  @unique
      posts Post[]
      @@unique(fields: [email], name: "byEmail")
    }
    view Totals {
      day   String @unique
      count Int
    }
    enum Role {
      ADMIN
    }
  `;

  test('fields, lists, @id, @@id and @unique, with comments and wrapped attributes', () => {
    const models = parseSchema(schema);
    expect([...models.keys()]).toEqual(['Post', 'Tag', 'User', 'Totals']);
    const post = models.get('Post')!;
    expect([...post.fields.keys()]).toEqual(['id', 'url', 'tags', 'author', 'authorId']);
    expect(post.fields.get('id')).toEqual({ list: false, id: true, unique: false, fields: [], references: [] });
    expect(post.fields.get('tags')).toEqual({ list: true, id: false, unique: false, fields: [], references: [] });
    expect(post.fields.get('author')).toEqual({ list: false, id: false, unique: false, fields: ['authorId'], references: ['id'] });
    expect(models.get('Tag')!.id).toEqual(['name', 'lang']);
    expect(models.get('User')!.fields.get('email')).toEqual({ list: false, id: false, unique: true, fields: [], references: [] });
    expect(models.get('User')!.uniques).toEqual([['email']]);
  });

  test('with the runtime data model: primary keys, unique keys, relations and their back fields', () => {
    const runtime: RuntimeDataModel = {
      models: {
        Post: {
          fields: [
            { name: 'id', kind: 'scalar', type: 'Int' },
            { name: 'url', kind: 'scalar', type: 'String' },
            { name: 'tags', kind: 'object', type: 'Tag', relationName: 'PostToTag' },
            { name: 'author', kind: 'object', type: 'User', relationName: 'PostToUser' },
            { name: 'authorId', kind: 'scalar', type: 'Int' },
          ],
        },
        Tag: {
          fields: [
            { name: 'name', kind: 'scalar', type: 'String' },
            { name: 'lang', kind: 'scalar', type: 'String' },
            { name: 'posts', kind: 'object', type: 'Post', relationName: 'PostToTag' },
          ],
        },
        User: {
          fields: [
            { name: 'email', kind: 'scalar', type: 'String' },
            { name: 'posts', kind: 'object', type: 'Post', relationName: 'PostToUser' },
          ],
        },
      },
    };
    const models = readDataModel(runtime, schema);
    const post = models.get('Post')!;
    expect(post.delegate).toBe('post');
    expect(post.id).toEqual(['id']);
    expect(post.scalars).toEqual(['id', 'url', 'authorId']);
    expect(post.relations.get('tags')).toEqual({ name: 'tags', model: 'Tag', list: true, back: 'posts', backList: true, manyToMany: true, fields: [], references: [] });
    expect(post.relations.get('author')).toEqual({ name: 'author', model: 'User', list: false, back: 'posts', backList: true, manyToMany: false, fields: ['authorId'], references: ['id'] });
    expect(models.get('Tag')!.id).toEqual(['name', 'lang']);
    // No @id: the first unique key identifies the row.
    expect(models.get('User')!.id).toEqual(['email']);
    expect(models.get('User')!.relations.get('posts')).toMatchObject({ list: true, back: 'author', backList: false, manyToMany: false });
    // Without the schema text no key is known: writes of registered models fall back.
    expect(readDataModel(runtime, undefined).get('Post')!.id).toBeUndefined();
  });

  test('onDelete on both sides of a relation, and which fields can name rows on each database (trackReads)', () => {
    const text = `
      datasource db {
        provider = "postgresql"
      }
      model Author {
        id    BigInt @id
        email String @unique @db.Citext
        slug  String @unique
        code  String @unique @db.VarChar(20)
        at    DateTime @unique
        price Decimal @unique
        posts Post[]
      }
      model Post {
        id       Int    @id
        authorId BigInt
        author   Author @relation(fields: [authorId], references: [id], onDelete: Cascade)
      }
    `;
    const runtime: RuntimeDataModel = {
      models: {
        Author: {
          fields: [
            { name: 'id', kind: 'scalar', type: 'BigInt' },
            { name: 'email', kind: 'scalar', type: 'String' },
            { name: 'slug', kind: 'scalar', type: 'String' },
            { name: 'code', kind: 'scalar', type: 'String' },
            { name: 'at', kind: 'scalar', type: 'DateTime' },
            { name: 'price', kind: 'scalar', type: 'Decimal' },
            { name: 'posts', kind: 'object', type: 'Post', relationName: 'AuthorToPost' },
          ],
        },
        Post: {
          fields: [
            { name: 'id', kind: 'scalar', type: 'Int' },
            { name: 'authorId', kind: 'scalar', type: 'BigInt' },
            { name: 'author', kind: 'object', type: 'Author', relationName: 'AuthorToPost' },
          ],
        },
      },
    };
    const pg = readDataModel(runtime, text);
    expect(pg.get('Post')!.relations.get('author')!.onDelete).toBe('Cascade');
    expect(pg.get('Author')!.relations.get('posts')!.onDelete).toBe('Cascade');
    expect(Object.fromEntries(pg.get('Author')!.keyTypes)).toEqual({ id: 'int', slug: 'exact', code: 'exact' });
    expect(Object.fromEntries(pg.get('Post')!.keyTypes)).toEqual({ id: 'int', authorId: 'int' });
    // MySQL and MariaDB compare Strings by collation (case, trailing spaces): no String names rows.
    const mysql = readDataModel(runtime, text, 'mysql');
    expect(Object.fromEntries(mysql.get('Author')!.keyTypes)).toEqual({ id: 'int' });
    expect(Object.fromEntries(readDataModel(runtime, text, 'sqlite').get('Author')!.keyTypes)).toEqual({ id: 'int', email: 'exact', slug: 'exact', code: 'exact' });
    // A database this code does not know: only integers.
    expect(Object.fromEntries(readDataModel(runtime, text, 'sqlserver').get('Author')!.keyTypes)).toEqual({ id: 'int' });
  });
});

// Compiled by the type check (`npm test` runs tsc): the extended client keeps the generated types.
// Never called.
export function typesAreKept(writer: Extended): void {
  void writer.simple.update({ where: { id: 1 }, data: { name: 'x' }, select: { name: true } }).then((row) => {
    const name: string = row.name;
    // @ts-expect-error only `name` was selected
    void row.slug;
    return name;
  });
  // @ts-expect-error Simple has no field `nope`
  void writer.simple.create({ data: { slug: 'x', name: 'x', nope: 1 } });
  void writer.$transaction(async (tx) => {
    const count: number = (await tx.simple.updateMany({ data: { name: 'y' } })).count;
    // @ts-expect-error no such model
    void tx.nope;
    return count;
  });
}
