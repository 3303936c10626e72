/**
 * `trackReads` where the value a page asks for is not spelled as the database returns the row
 * (`'01'` for the integer 1, an upper-case uuid, `'Hello '` under MariaDB's collations, a
 * transformed key), and deletes whose `ON DELETE` actions reach several levels of rows. On SQLite,
 * PostgreSQL and MariaDB: after each write, no page served may differ from a fresh render.
 */
import {
  Column,
  Entity,
  In,
  IsNull,
  JoinTable,
  ManyToMany,
  ManyToOne,
  OneToMany,
  PrimaryColumn,
  type DataSource,
  type EntityTarget,
  type ObjectLiteral,
} from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import { listTag, rowTag, typeormDumper, type TypeormDumper, type TypeormDumperOptions } from '../../../src/orm/typeorm/index.js';
import { expectNoStale } from '../track-reads/check.js';
import { databases, Site, type Database } from './support.js';

// ---------------------------------------------------------------- keys spelled another way

@Entity()
class KPost {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) title!: string;
  @OneToMany(() => KComment, (c) => c.post) comments!: KComment[];
}

@Entity()
class KComment {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) body!: string;
  @ManyToOne(() => KPost, (p) => p.comments, { nullable: false, onDelete: 'CASCADE' }) post!: KPost;
}

@Entity()
class KDoc {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

@Entity()
class KSlug {
  @PrimaryColumn({ type: 'varchar', length: 50 }) slug!: string;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

@Entity()
class KBig {
  @PrimaryColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

@Entity()
class KDay {
  @PrimaryColumn({ type: Date }) at!: Date;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

/** The key `c1` is stored as the integer 1: `c01` finds it too. */
@Entity()
class KCoded {
  @PrimaryColumn({
    type: 'int',
    transformer: { to: (v: unknown) => (typeof v === 'string' ? Number(v.slice(1)) : v), from: (v: unknown) => (v == null ? v : `c${String(v)}`) },
  })
  code!: string;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

/** Keys are stored in lower case: `Hello` finds `hello`. */
@Entity()
class KLower {
  @PrimaryColumn({ type: 'varchar', length: 50, transformer: { to: (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v), from: (v: unknown) => v } })
  name!: string;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

const U1 = '6f1c2a4e-8b3d-4c5e-9f70-0a1b2c3d4e5f';
const U2 = '0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a';
const D1 = new Date('2024-01-02T03:04:05.000Z');
const BIG = '9007199254740993';

function keysApp(ds: DataSource) {
  const one = async <T extends ObjectLiteral>(target: EntityTarget<T>, where: ObjectLiteral) => {
    const row = (await ds.getRepository(target).findOneBy(where as never)) as { title?: string } | null;
    return row === null ? 'none' : String(row.title);
  };
  const comments = (rows: KComment[]) => rows.map((c) => c.body).sort().join(',');
  const pages: Record<string, () => Promise<string>> = {
    '/int/01': () => one(KPost, { id: '01' }),
    '/int/+1': () => one(KPost, { id: '+1' }),
    '/int/space': () => one(KPost, { id: ' 1 ' }),
    '/int/in': async () => (await ds.getRepository(KPost).findBy({ id: In(['01', '002']) as never })).map((p) => p.title).sort().join(','),
    '/int/07': () => one(KPost, { id: '07' }),
    '/int/01/comments': async () => {
      const p = await ds.getRepository(KPost).findOne({ where: { id: '01' as never }, relations: { comments: true } });
      return p === null ? 'none' : `${p.title}: ${comments(p.comments)}`;
    },
    '/fk/01': async () => comments(await ds.getRepository(KComment).find({ where: { post: { id: '01' as never } } })),
    '/fk/+7': async () => comments(await ds.getRepository(KComment).find({ where: { post: { id: '+7' as never } } })),
    '/uuid/upper': () => one(KDoc, { id: U1.toUpperCase() }),
    '/uuid/missing': () => one(KDoc, { id: U2.toUpperCase() }),
    '/slug/case': () => one(KSlug, { slug: 'Hello' }),
    '/slug/space': () => one(KSlug, { slug: 'hello ' }),
    '/slug/missing': () => one(KSlug, { slug: 'NEW' }),
    '/big/05': () => one(KBig, { id: '05' }),
    '/big/5': () => one(KBig, { id: 5 }),
    '/big/large': () => one(KBig, { id: BIG }),
    '/day': () => one(KDay, { at: new Date(D1.getTime()) }),
    '/code/c01': () => one(KCoded, { code: 'c01' }),
    '/code/c1': () => one(KCoded, { code: 'c1' }),
    '/lower/Hello': () => one(KLower, { name: 'Hello' }),
    '/lower/missing': () => one(KLower, { name: 'NEW' }),
  };
  return { pages, paths: Object.keys(pages), render: (path: string) => pages[path]!() };
}

async function seedKeys(ds: DataSource) {
  await ds.getRepository(KPost).save([
    { id: 1, title: 'one' },
    { id: 2, title: 'two' },
  ]);
  await ds.getRepository(KComment).save([{ id: 1, body: 'first', post: { id: 1 } }]);
  await ds.getRepository(KDoc).save({ id: U1, title: 'doc' });
  await ds.getRepository(KSlug).save({ slug: 'hello', title: 'slug' });
  await ds.getRepository(KBig).save([
    { id: '5', title: 'five' },
    { id: BIG, title: 'large' },
  ]);
  await ds.getRepository(KDay).save({ at: D1, title: 'day' });
  await ds.getRepository(KCoded).save({ code: 'c1', title: 'coded' });
  await ds.getRepository(KLower).save({ name: 'hello', title: 'lower' });
}

// ---------------------------------------------------------------- ON DELETE several levels deep

/** Referenced only from the other side: no relation of its own. */
@Entity()
class CThread {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) title!: string;
}

@Entity()
class CReply {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) body!: string;
  @ManyToOne(() => CThread, { nullable: false, onDelete: 'CASCADE' }) thread!: CThread;
  @ManyToOne(() => CReply, { nullable: true, onDelete: 'CASCADE' }) parent!: CReply | null;
}

@Entity()
class CUser {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
}

@Entity()
class CReaction {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) kind!: string;
  @ManyToOne(() => CReply, { nullable: false, onDelete: 'CASCADE' }) reply!: CReply;
  @ManyToOne(() => CUser, { nullable: false }) user!: CUser;
  @ManyToMany(() => CLabel, (l) => l.reactions) @JoinTable() labels!: CLabel[];
}

@Entity()
class CLabel {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @ManyToMany(() => CReaction, (r) => r.labels) reactions!: CReaction[];
}

@Entity()
class CNote {
  @PrimaryColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 100 }) text!: string;
  @ManyToOne(() => CThread, { nullable: true, onDelete: 'SET NULL' }) thread!: CThread | null;
}

function cascadeApp(ds: DataSource) {
  const ids = (rows: { id: number }[]) => rows.map((r) => r.id).sort((a, b) => a - b).join(',');
  const pages: Record<string, () => Promise<string>> = {
    '/thread/2/replies': async () => ids(await ds.getRepository(CReply).find({ where: { thread: { id: 2 } } })),
    '/reply/10/reactions': async () => ids(await ds.getRepository(CReaction).find({ where: { reply: { id: 10 } } })),
    '/reaction/101': async () => (await ds.getRepository(CReaction).findOneBy({ id: 101 }))?.kind ?? 'none',
    '/reaction/200': async () => (await ds.getRepository(CReaction).findOneBy({ id: 200 }))?.kind ?? 'none',
    '/user/1/reactions': async () => ids(await ds.getRepository(CReaction).find({ where: { user: { id: 1 } } })),
    '/user/2/reactions': async () => ids(await ds.getRepository(CReaction).find({ where: { user: { id: 2 } } })),
    '/label/1': async () => {
      const l = await ds.getRepository(CLabel).findOne({ where: { id: 1 }, relations: { reactions: true } });
      return l === null ? 'none' : `${l.name}: ${ids(l.reactions)}`;
    },
    '/label/1/reaction-ids': async () => {
      const l = await ds.getRepository(CLabel).findOne({ where: { id: 1 }, loadRelationIds: { relations: ['reactions'] } });
      return l === null ? 'none' : [...(l.reactions as unknown as number[])].sort().join(',');
    },
    '/label/2': async () => {
      const l = await ds.getRepository(CLabel).findOne({ where: { id: 2 }, relations: { reactions: true } });
      return l === null ? 'none' : `${l.name}: ${ids(l.reactions)}`;
    },
    '/thread/1/notes': async () => ids(await ds.getRepository(CNote).find({ where: { thread: { id: 1 } } })),
    '/thread/2/notes': async () => ids(await ds.getRepository(CNote).find({ where: { thread: { id: 2 } } })),
    '/notes/unthreaded': async () => ids(await ds.getRepository(CNote).find({ where: { thread: IsNull() } })),
    '/users': async () => (await ds.getRepository(CUser).find({ order: { id: 'ASC' } })).map((u) => u.name).join(','),
  };
  return { pages, paths: Object.keys(pages), render: (path: string) => pages[path]!() };
}

/**
 * Threads 1 and 2; replies 10 and 11 on thread 1, 12 on thread 2 answering 11, 20 on thread 2;
 * reactions 100 (reply 10, user 1, label 1), 101 (reply 12, user 2, label 1), 200 (reply 20,
 * user 1, label 2); notes 1 (thread 1) and 2 (thread 2). Deleting thread 1 deletes replies 10,
 * 11 and 12, reactions 100 and 101 and their links, and unthreads note 1.
 */
async function seedCascade(ds: DataSource) {
  await ds.getRepository(CThread).save([
    { id: 1, title: 'one' },
    { id: 2, title: 'two' },
  ]);
  await ds.getRepository(CUser).save([
    { id: 1, name: 'ann' },
    { id: 2, name: 'ben' },
  ]);
  await ds.getRepository(CLabel).save([
    { id: 1, name: 'hot' },
    { id: 2, name: 'cold' },
  ]);
  await ds.getRepository(CReply).save([
    { id: 10, body: 'a', thread: { id: 1 } },
    { id: 11, body: 'b', thread: { id: 1 } },
  ]);
  await ds.getRepository(CReply).save([
    { id: 12, body: 'c', thread: { id: 2 }, parent: { id: 11 } },
    { id: 20, body: 'd', thread: { id: 2 } },
  ]);
  await ds.getRepository(CReaction).save([
    { id: 100, kind: 'up', reply: { id: 10 }, user: { id: 1 }, labels: [{ id: 1 }] },
    { id: 101, kind: 'down', reply: { id: 12 }, user: { id: 2 }, labels: [{ id: 1 }] },
    { id: 200, kind: 'up', reply: { id: 20 }, user: { id: 1 }, labels: [{ id: 2 }] },
  ] as CReaction[]);
  await ds.getRepository(CNote).save([
    { id: 1, text: 'x', thread: { id: 1 } },
    { id: 2, text: 'y', thread: { id: 2 } },
  ]);
}

// ---------------------------------------------------------------- suites

const targets = await databases();

describe.each(targets)('TypeORM trackReads keys and cascades on $name', (target) => {
  let db: Database;
  let dumper: Dumper;
  let handle: TypeormDumper;
  let site: Site;
  let tags: string[];
  const apps = { keys: undefined as unknown as ReturnType<typeof keysApp>, cascade: undefined as unknown as ReturnType<typeof cascadeApp> };
  const render = (path: string) => (path in apps.keys.pages ? apps.keys.render(path) : apps.cascade.render(path));
  const all = () => [...apps.keys.paths, ...apps.cascade.paths];

  beforeAll(async () => {
    db = await target.open([KPost, KComment, KDoc, KSlug, KBig, KDay, KCoded, KLower, CThread, CReply, CUser, CReaction, CLabel, CNote]);
    apps.keys = keysApp(db.dataSource);
    apps.cascade = cascadeApp(db.dataSource);
  });
  afterAll(async () => {
    await db?.close();
  });

  async function install(options: TypeormDumperOptions = {}) {
    await site?.close();
    handle?.close();
    await dumper?.close();
    dumper = createDumper();
    tags = [];
    const tag = dumper.tag.bind(dumper);
    dumper.tag = (...t: string[]) => {
      tags.push(...t);
      tag(...t);
    };
    handle = typeormDumper(dumper, db.dataSource, { trackReads: true, ...options });
    site = await Site.start(dumper, db.logger, async (path) => ({ status: 200, body: await render(path) }));
    for (const path of all()) await site.warm(path);
  }

  beforeEach(async () => {
    // Reactions first: they reference users without ON DELETE CASCADE.
    await db.dataSource.createQueryBuilder().delete().from(CReaction).execute();
    await db.clear();
    await seedKeys(db.dataSource);
    await seedCascade(db.dataSource);
    await install();
  });
  afterEach(async () => {
    await site.close();
    handle.close();
    await dumper.close();
  });

  const t = (entity: EntityTarget<ObjectLiteral>) => db.dataSource.getMetadata(entity).tablePath;

  /** After a write: no page stale, these rendered again, those still stored. */
  async function expectAfterWrite(miss: readonly string[], hit: readonly string[]) {
    const missed = await expectNoStale((p) => site.get(p), { render }, all());
    for (const p of miss) expect(missed, `${p} should have been rendered again`).toContain(p);
    for (const p of hit) expect(missed, `${p} should still be stored`).not.toContain(p);
  }

  test('an integer key asked as text with leading zeros, a sign or spaces: an update of the row', async () => {
    await db.dataSource.getRepository(KPost).update(1, { title: 'uno' });
    await expectAfterWrite(['/int/01', '/int/in', '/int/01/comments'], ['/uuid/upper', '/reaction/200']);
  });

  test('an integer key asked as text: the row inserted later, and a child inserted by foreign key', async () => {
    await db.dataSource.getRepository(KPost).insert({ id: 7, title: 'seven' });
    await db.dataSource.getRepository(KComment).insert({ id: 2, body: 'second', post: { id: 1 } });
    await db.dataSource.getRepository(KComment).insert({ id: 3, body: 'third', post: { id: 7 } });
    await expectAfterWrite(['/int/07', '/fk/01', '/fk/+7', '/int/01/comments'], ['/uuid/upper', '/reaction/200']);
  });

  test('a uuid asked in upper case: an update of the row and an insert of the one not found', async () => {
    await db.dataSource.getRepository(KDoc).update(U1, { title: 'docs' });
    await db.dataSource.getRepository(KDoc).insert({ id: U2, title: 'other' });
    await expectAfterWrite([], ['/int/01', '/reaction/200']);
  });

  test('a string key in another case or with trailing spaces: an update and an insert', async () => {
    await db.dataSource.getRepository(KSlug).update('hello', { title: 'slugs' });
    await db.dataSource.getRepository(KSlug).insert({ slug: 'new', title: 'new' });
    await expectAfterWrite([], ['/int/01', '/reaction/200']);
  });

  test('bigint, Date and transformed keys: updates of their rows, an insert of a transformed key', async () => {
    await db.dataSource.getRepository(KBig).update('5', { title: 'cinq' });
    await db.dataSource.getRepository(KBig).update(BIG, { title: 'larger' });
    await db.dataSource.getRepository(KDay).update({ at: D1 }, { title: 'days' });
    const coded = await db.dataSource.getRepository(KCoded).findOneByOrFail({ code: 'c1' });
    coded.title = 'recoded';
    await db.dataSource.getRepository(KCoded).save(coded);
    await db.dataSource.getRepository(KLower).update('hello', { title: 'lowered' });
    await db.dataSource.getRepository(KLower).insert({ name: 'new', title: 'new' });
    await expectAfterWrite(['/big/05', '/big/5', '/day', '/code/c01', '/code/c1', '/lower/Hello', '/lower/missing'], ['/int/01', '/reaction/200']);
  });

  test('a link saved with the key of its other side spelled as text', async () => {
    await db.dataSource.getRepository(CReaction).save({ id: 300, kind: 'meh', reply: { id: 20 }, user: { id: 2 }, labels: [{ id: '01' }] } as never);
    await expectAfterWrite(['/label/1', '/label/1/reaction-ids'], ['/label/2', '/int/01']);
  });

  test('the fine tags are kept where the spelling is known, the list where it is not', async () => {
    // Tags are only put on a page being rendered: render through the site.
    const probe = async (path: string) => {
      tags.length = 0;
      await dumper.invalidateAll();
      await site.get(path);
      return [...tags];
    };
    const post = t(KPost);
    for (const path of ['/int/01', '/int/+1']) {
      const got = await probe(path);
      expect(got, path).toContain(rowTag(post, { id: 1 }));
      expect(got, path).not.toContain(listTag(post));
    }
    expect(await probe('/fk/01')).not.toContain(listTag(t(KComment)));
    expect(await probe('/code/c01')).toContain(listTag(t(KCoded)));
    expect(await probe('/lower/Hello')).toContain(listTag(t(KLower)));
    const docs = await probe('/uuid/upper');
    const slugs = await probe('/slug/case');
    if (target.name === 'SQLite') {
      // Compared as text, byte for byte: the spelling asked for is the row's.
      expect(docs).toContain(rowTag(t(KDoc), { id: U1.toUpperCase() }));
      expect(slugs).toContain(rowTag(t(KSlug), { slug: 'Hello' }));
    } else {
      expect(docs).toContain(rowTag(t(KDoc), { id: U1 }));
      expect(docs).not.toContain(listTag(t(KDoc)));
      if (target.name === 'PostgreSQL') expect(slugs).toContain(rowTag(t(KSlug), { slug: 'Hello' }));
      else expect(slugs).toContain(listTag(t(KSlug)));
    }
  });

  test('delete() of a row whose ON DELETE CASCADE reaches three levels, a self reference, links and a SET NULL', async () => {
    await db.dataSource.getRepository(CThread).delete(1);
    await expectAfterWrite(
      ['/thread/2/replies', '/reply/10/reactions', '/reaction/101', '/user/1/reactions', '/user/2/reactions', '/label/1', '/label/1/reaction-ids', '/thread/1/notes', '/notes/unthreaded'],
      ['/reaction/200', '/label/2', '/thread/2/notes', '/users', '/int/01'],
    );
  });

  test('remove() of the same row: the same pages', async () => {
    await db.dataSource.getRepository(CThread).remove(await db.dataSource.getRepository(CThread).findOneByOrFail({ id: 1 }));
    await expectAfterWrite(
      ['/thread/2/replies', '/reply/10/reactions', '/reaction/101', '/user/1/reactions', '/user/2/reactions', '/label/1', '/label/1/reaction-ids', '/thread/1/notes', '/notes/unthreaded'],
      ['/reaction/200', '/label/2', '/thread/2/notes', '/users', '/int/01'],
    );
  });

  test('with maxRows: Infinity, the cascade is followed without a limit', async () => {
    await install({ maxRows: Infinity });
    await db.dataSource.getRepository(CThread).delete(1);
    await expectAfterWrite(['/thread/2/replies', '/reaction/101', '/user/2/reactions', '/label/1', '/thread/1/notes'], ['/reaction/200', '/label/2', '/users']);
  });

  test('past maxRows in all, the tables the cascade may reach', async () => {
    await install({ maxRows: 3 });
    await db.dataSource.getRepository(CThread).delete(1);
    await expectAfterWrite(['/reaction/101', '/label/1/reaction-ids', '/notes/unthreaded'], ['/users', '/int/01']);
  });
});
