/**
 * The two models of the seed README, as plain classes (TypeORM maps them with EntitySchema below,
 * no decorators). Each knows which pages show it: `dependentPaths()`, as in django-dumper.
 */
import { EntitySchema } from 'typeorm';

export class IceCream {
  /** @type {number} */ id;
  /** @type {string} */ slug;
  /** @type {string} */ name;
  /** @type {string} */ description;
  /** @type {Size[] | undefined} */ sizes;

  getAbsoluteUrl() {
    return `/ice-cream/${this.slug}/`;
  }

  /**
   * The pages that show this flavour: the list, its own page, and the page of every size it comes
   * in (a size page lists its flavours by name). `sizes` must be loaded for the last part:
   * page-dumper/typeorm loads a row's relations before it calls dependentPaths().
   */
  *dependentPaths() {
    yield '/ice-cream/';
    yield this.getAbsoluteUrl();
    for (const size of this.sizes ?? []) yield size.getAbsoluteUrl();
  }
}

export class Size {
  /** @type {number} */ id;
  /** @type {string} */ slug;
  /** @type {string} */ name;
  /** @type {IceCream[] | undefined} */ iceCreams;

  getAbsoluteUrl() {
    return `/sizes/${this.slug}/`;
  }

  /**
   * Like the Python example: every flavour that comes in this size, then the size itself. Plus the
   * two lists, which show size names.
   */
  *dependentPaths() {
    for (const iceCream of this.iceCreams ?? []) yield iceCream.getAbsoluteUrl();
    yield this.getAbsoluteUrl();
    yield '/sizes/';
    yield '/ice-cream/';
  }
}

export const IceCreamSchema = new EntitySchema({
  name: 'IceCream',
  tableName: 'ice_cream',
  target: IceCream,
  columns: {
    id: { type: Number, primary: true, generated: true },
    slug: { type: String, unique: true },
    name: { type: String },
    description: { type: String, default: '' },
  },
  relations: {
    sizes: {
      type: 'many-to-many',
      target: 'Size',
      inverseSide: 'iceCreams',
      joinTable: { name: 'ice_cream_sizes' },
    },
  },
});

export const SizeSchema = new EntitySchema({
  name: 'Size',
  tableName: 'size',
  target: Size,
  columns: {
    id: { type: Number, primary: true, generated: true },
    slug: { type: String, unique: true },
    name: { type: String },
  },
  relations: {
    iceCreams: {
      type: 'many-to-many',
      target: 'IceCream',
      inverseSide: 'sizes',
    },
  },
});
