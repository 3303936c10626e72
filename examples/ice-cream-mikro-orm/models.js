/**
 * The two models of the seed README as plain classes, mapped by MikroORM with `EntitySchema`
 * (no decorators: the example is plain JavaScript). Each knows which pages show it:
 * `dependentPaths()`, as in django-dumper.
 */
import { Collection, EntitySchema } from '@mikro-orm/core';

export class IceCream {
  /** @type {number} */ id;
  /** @type {string} */ slug;
  /** @type {string} */ name;
  /** @type {string} */ description = '';
  /** @type {Collection<Size>} */ sizes = new Collection(this);

  getAbsoluteUrl() {
    return `/ice-cream/${this.slug}/`;
  }

  /**
   * The pages that show this flavour: the list, its own page, and the page of every size it comes
   * in (a size page lists its flavours by name). page-dumper/mikro-orm reads the row again with
   * its sizes before it calls this, before a write (the old slug, the old sizes) and after it.
   */
  *dependentPaths() {
    yield '/ice-cream/';
    yield this.getAbsoluteUrl();
    for (const size of this.sizes) yield size.getAbsoluteUrl();
  }
}

export class Size {
  /** @type {number} */ id;
  /** @type {string} */ slug;
  /** @type {string} */ name;
  /** @type {Collection<IceCream>} */ iceCreams = new Collection(this);

  getAbsoluteUrl() {
    return `/sizes/${this.slug}/`;
  }

  /**
   * Like the Python example: every flavour that comes in this size, then the size itself. Plus the
   * two lists, which show size names.
   */
  *dependentPaths() {
    for (const iceCream of this.iceCreams) yield iceCream.getAbsoluteUrl();
    yield this.getAbsoluteUrl();
    yield '/sizes/';
    yield '/ice-cream/';
  }
}

export const IceCreamSchema = new EntitySchema({
  class: IceCream,
  tableName: 'ice_cream',
  properties: {
    id: { type: 'number', primary: true, autoincrement: true },
    slug: { type: 'string', unique: true },
    name: { type: 'string' },
    description: { type: 'text', default: '' },
    // The owning side: its join table is ice_cream_sizes (links go when either row is deleted).
    sizes: { kind: 'm:n', entity: () => Size, inversedBy: 'iceCreams', pivotTable: 'ice_cream_sizes' },
  },
});

export const SizeSchema = new EntitySchema({
  class: Size,
  tableName: 'size',
  properties: {
    id: { type: 'number', primary: true, autoincrement: true },
    slug: { type: 'string', unique: true },
    name: { type: 'string' },
    iceCreams: { kind: 'm:n', entity: () => IceCream, mappedBy: 'sizes' },
  },
});
