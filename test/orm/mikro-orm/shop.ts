/**
 * An ice cream shop for the write and transaction suites: flavours and sizes (many-to-many,
 * flavours own the join table `mo_flavour_sizes`), reviews (many-to-one to a flavour), toppings
 * (many-to-many through an explicit pivot entity, `FlavourTopping`), and notes, which no model is
 * registered for by default (a note may belong to a flavour: a one-to-many from the flavour). Each `shop()` call makes fresh entity classes, since MikroORM
 * keeps per-ORM state on a class (the writer and the site's reader each get theirs). Every
 * `dependentPaths()` call is recorded in `calls`, so a test can tell which rows reached it.
 */
import { Collection, EntitySchema, type EntityManager } from '@mikro-orm/core';
import type { Dumper } from '../../../src/index.js';
import type { App, Counted } from './support.js';

export function shop() {
  /** `Model:slug` of every row dependentPaths was called for, in order. */
  const calls: string[] = [];

  class Flavour {
    id!: number;
    slug!: string;
    name!: string;
    sizes = new Collection<Size>(this);
    reviews = new Collection<Review>(this);
    toppings = new Collection<Topping>(this);
    notes = new Collection<Note>(this);

    *dependentPaths() {
      calls.push(`Flavour:${this.slug}`);
      yield '/flavours/';
      yield `/flavours/${this.slug}/`;
      for (const size of this.sizes) yield `/sizes/${size.slug}/`;
    }
  }

  class Size {
    id!: number;
    slug!: string;
    name!: string;
    flavours = new Collection<Flavour>(this);

    *dependentPaths() {
      calls.push(`Size:${this.slug}`);
      yield `/sizes/${this.slug}/`;
      for (const flavour of this.flavours) yield `/flavours/${flavour.slug}/`;
    }
  }

  class Review {
    id!: number;
    body!: string;
    flavour!: Flavour;

    dependentPaths() {
      calls.push(`Review:${this.body}`);
      return [`/flavours/${this.flavour.slug}/`];
    }
  }

  /** No model is registered for it by default. */
  class Note {
    id!: number;
    body!: string;
    flavour?: Flavour | null;
  }

  class Topping {
    id!: number;
    name!: string;
  }

  /** A row of the join table between flavours and toppings, an entity of its own. */
  class FlavourTopping {
    flavour!: Flavour;
    topping!: Topping;
  }

  const schemas = [
    new EntitySchema<Flavour>({
      class: Flavour,
      tableName: 'mo_flavour',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        slug: { type: 'string', length: 50, unique: true },
        name: { type: 'string', length: 50 },
        sizes: { kind: 'm:n', entity: () => Size, inversedBy: 'flavours', pivotTable: 'mo_flavour_sizes' },
        reviews: { kind: '1:m', entity: () => Review, mappedBy: 'flavour' },
        toppings: { kind: 'm:n', entity: () => Topping, pivotEntity: () => FlavourTopping },
        notes: { kind: '1:m', entity: () => Note, mappedBy: 'flavour' },
      },
    }),
    new EntitySchema<Size>({
      class: Size,
      tableName: 'mo_size',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        slug: { type: 'string', length: 50, unique: true },
        name: { type: 'string', length: 50 },
        flavours: { kind: 'm:n', entity: () => Flavour, mappedBy: 'sizes' },
      },
    }),
    new EntitySchema<Review>({
      class: Review,
      tableName: 'mo_review',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        body: { type: 'string', length: 100 },
        flavour: { kind: 'm:1', entity: () => Flavour, deleteRule: 'cascade' },
      },
    }),
    new EntitySchema<Note>({
      class: Note,
      tableName: 'mo_note',
      properties: {
        id: { type: 'number', primary: true, autoincrement: true },
        body: { type: 'string', length: 100 },
        flavour: { kind: 'm:1', entity: () => Flavour, nullable: true },
      },
    }),
    new EntitySchema<Topping>({
      class: Topping,
      tableName: 'mo_topping',
      properties: { id: { type: 'number', primary: true, autoincrement: true }, name: { type: 'string', length: 50 } },
    }),
    new EntitySchema<FlavourTopping>({
      class: FlavourTopping,
      tableName: 'mo_flavour_topping',
      properties: {
        flavour: { kind: 'm:1', entity: () => Flavour, primary: true, deleteRule: 'cascade' },
        topping: { kind: 'm:1', entity: () => Topping, primary: true, deleteRule: 'cascade' },
      },
    }),
  ];
  return { Flavour, Size, Review, Note, Topping, FlavourTopping, schemas, calls };
}

export type Shop = ReturnType<typeof shop>;

export function register(dumper: Dumper, s: Shop): void {
  dumper.register(s.Flavour).register(s.Size).register(s.Review);
}

/**
 * Fills the shop: sizes small, large, tub; vanilla (small, large), chocolate (small), mint
 * (large); a review of vanilla. Written through a plain entity manager: call it before
 * `mikroOrmDumper()` is installed, or after `db.clear()` with nothing cached.
 */
export async function seed(em: EntityManager, s: Shop) {
  const small = em.create(s.Size, { slug: 'small', name: 'Small' });
  const large = em.create(s.Size, { slug: 'large', name: 'Large' });
  const tub = em.create(s.Size, { slug: 'tub', name: 'Tub' });
  const vanilla = em.create(s.Flavour, { slug: 'vanilla', name: 'Vanilla', sizes: [small, large] });
  const chocolate = em.create(s.Flavour, { slug: 'chocolate', name: 'Chocolate', sizes: [small] });
  const mint = em.create(s.Flavour, { slug: 'mint', name: 'Mint', sizes: [large] });
  em.create(s.Review, { body: 'creamy', flavour: vanilla });
  await em.flush();
  s.calls.length = 0;
  return { small, large, tub, vanilla, chocolate, mint };
}

/** The shop's pages, read through `reader` (an ORM of its own, with its own shop classes). */
export function shopApp(reader: Counted, s: Shop): App {
  return async (path) => {
    const em = reader.orm.em.fork();
    let m: RegExpExecArray | null;
    if (path === '/about/') return { status: 200, body: 'about the shop' };
    if (path === '/flavours/') {
      const all = await em.find(s.Flavour, {}, { orderBy: { slug: 'asc' } });
      return { status: 200, body: all.map((f) => f.name).join(',') };
    }
    if ((m = /^\/flavours\/([^/]+)\/$/.exec(path))) {
      const f = await em.findOne(s.Flavour, { slug: m[1]! }, { populate: ['sizes', 'reviews'] });
      if (!f) return { status: 404, body: 'no such flavour' };
      const sizes = f.sizes.map((x) => x.name).sort();
      const reviews = f.reviews.map((r) => r.body).sort();
      return { status: 200, body: `${f.name} | sizes: ${sizes.join(',')} | reviews: ${reviews.join(',')}` };
    }
    if ((m = /^\/sizes\/([^/]+)\/$/.exec(path))) {
      const size = await em.findOne(s.Size, { slug: m[1]! }, { populate: ['flavours'] });
      if (!size) return { status: 404, body: 'no such size' };
      return { status: 200, body: `${size.name} | flavours: ${size.flavours.map((f) => f.name).sort().join(',')}` };
    }
    return { status: 404, body: 'not found' };
  };
}
