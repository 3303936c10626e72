/**
 * The two models of the seed README as Sequelize model classes, each knowing which pages show it:
 * `dependentPaths()`, as in django-dumper, registered with `dumper.register(IceCream)`. Their
 * many-to-many relation goes through Sequelize's own junction model `ice_cream_size`, which is not
 * registered: page-dumper/sequelize turns a link added or removed into the pages of the flavour
 * and of the size it links (django-dumper's m2m_changed, on both sides).
 */
import { DataTypes, Model } from 'sequelize';

export class IceCream extends Model {
  getAbsoluteUrl() {
    return `/ice-cream/${this.slug}/`;
  }

  /**
   * The list, its own page, and the page of every size it comes in (a size page lists its
   * flavours by name). page-dumper calls it on the row as it was before a write and on the
   * instance after it: a changed slug invalidates the old URL too. Before a destroy it runs while
   * the row and its links (which the database deletes with it) still exist.
   */
  async *dependentPaths() {
    yield '/ice-cream/';
    yield this.getAbsoluteUrl();
    for (const size of await this.getSizes({ joinTableAttributes: [] })) yield size.getAbsoluteUrl();
  }
}

export class Size extends Model {
  getAbsoluteUrl() {
    return `/sizes/${this.slug}/`;
  }

  /**
   * Like the Python example: every flavour that comes in this size, then the size itself. Plus the
   * two lists, which show size names.
   */
  async *dependentPaths() {
    for (const iceCream of await this.getIceCreams({ joinTableAttributes: [] })) yield iceCream.getAbsoluteUrl();
    yield this.getAbsoluteUrl();
    yield '/sizes/';
    yield '/ice-cream/';
  }
}

/**
 * Binds the classes to a Sequelize instance (one per process: `init()` binds a class to one).
 * Returns the junction model too, for writes of links outside the mixins.
 * @param {import('sequelize').Sequelize} sequelize
 */
export function defineModels(sequelize) {
  const slug = { type: DataTypes.STRING, allowNull: false, unique: true };
  IceCream.init(
    { slug, name: { type: DataTypes.STRING, allowNull: false }, description: { type: DataTypes.TEXT, allowNull: false, defaultValue: '' } },
    { sequelize, modelName: 'IceCream', tableName: 'ice_cream', underscored: true },
  );
  Size.init({ slug, name: { type: DataTypes.STRING, allowNull: false } }, { sequelize, modelName: 'Size', tableName: 'size', underscored: true });
  // Links cascade in the database when a flavour or a size is deleted (Sequelize's default for a
  // belongsToMany junction).
  IceCream.belongsToMany(Size, { through: 'ice_cream_size', timestamps: false, as: 'sizes', foreignKey: 'iceCreamId', otherKey: 'sizeId' });
  Size.belongsToMany(IceCream, { through: 'ice_cream_size', timestamps: false, as: 'iceCreams', foreignKey: 'sizeId', otherKey: 'iceCreamId' });
  return { IceCream, Size, IceCreamSize: sequelize.models.ice_cream_size };
}
