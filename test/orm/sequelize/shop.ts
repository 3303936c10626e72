/**
 * A small shop for the Sequelize write and transaction suites: flavours (paranoid, with a unique
 * slug and a stock counter) in sizes (belongsToMany through Sequelize's own junction model
 * `sq_flavour_size`, not registered), with toppings (belongsToMany through a junction model of
 * its own, `FlavourTopping`, registered), with reviews (hasMany), and an unregistered `Note`. Its pages show exactly what
 * the models' `dependentPaths()` name, and `/about/` shows nothing from the database: it stays
 * cached unless every page is invalidated.
 */
import {
  DataTypes,
  Model,
  type BelongsToManyAddAssociationMixin,
  type BelongsToManyAddAssociationsMixin,
  type BelongsToManyCreateAssociationMixin,
  type BelongsToManyGetAssociationsMixin,
  type BelongsToManyRemoveAssociationMixin,
  type BelongsToManySetAssociationsMixin,
  type BelongsToSetAssociationMixin,
  type HasManyAddAssociationMixin,
  type HasManyCountAssociationsMixin,
  type Sequelize,
} from 'sequelize';
import { createDumper, type Dumper } from '../../../src/index.js';
import { sequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';
import { recordingLogger, Site, type Database, type Target } from './support.js';

export function defineShop(sequelize: Sequelize) {
  class Flavour extends Model {
    declare id: number;
    declare slug: string;
    declare name: string;
    declare stock: number;
    declare deletedAt: Date | null;
    declare getSizes: BelongsToManyGetAssociationsMixin<Size>;
    declare addSize: BelongsToManyAddAssociationMixin<Size, number>;
    declare addSizes: BelongsToManyAddAssociationsMixin<Size, number>;
    declare removeSize: BelongsToManyRemoveAssociationMixin<Size, number>;
    declare setSizes: BelongsToManySetAssociationsMixin<Size, number>;
    declare createSize: BelongsToManyCreateAssociationMixin<Size>;
    declare addTopping: BelongsToManyAddAssociationMixin<Topping, number>;
    declare removeTopping: BelongsToManyRemoveAssociationMixin<Topping, number>;
    declare addReview: HasManyAddAssociationMixin<Review, number>;
    declare countReviews: HasManyCountAssociationsMixin;

    /** The list and its own page. Its sizes' pages are reached through the links' other side. */
    dependentPaths() {
      return ['/flavours/', `/flavours/${this.slug}/`];
    }
  }
  class Size extends Model {
    declare id: number;
    declare slug: string;
    declare name: string;
    declare getFlavours: BelongsToManyGetAssociationsMixin<Flavour>;
    declare addFlavour: BelongsToManyAddAssociationMixin<Flavour, number>;

    dependentPaths() {
      return [`/sizes/${this.slug}/`];
    }
  }
  class Topping extends Model {
    declare id: number;
    declare slug: string;
    declare name: string;
    dependentPaths() {
      return [`/toppings/${this.slug}/`];
    }
  }
  /** A junction model of its own, registered: its dependentPaths name what a link shows on. */
  class FlavourTopping extends Model {
    declare flavourId: number;
    declare toppingId: number;
    async dependentPaths() {
      const [flavour, topping] = await Promise.all([Flavour.findByPk(this.flavourId, { paranoid: false }), Topping.findByPk(this.toppingId)]);
      return [`/flavours/${flavour?.slug}/toppings/`, `/toppings/${topping?.slug}/`];
    }
  }
  /** The many side of a hasMany: a review shows on its flavour's page. */
  class Review extends Model {
    declare id: number;
    declare flavourId: number | null;
    declare text: string;
    declare setFlavour: BelongsToSetAssociationMixin<Flavour, number>;
    async dependentPaths() {
      const flavour = this.flavourId === null ? null : await Flavour.findByPk(this.flavourId, { paranoid: false });
      return flavour ? [`/flavours/${flavour.slug}/`] : [];
    }
  }
  class Note extends Model {
    declare id: number;
    declare text: string;
  }
  const slug = { type: DataTypes.STRING(50), allowNull: false, unique: true };
  const name = { type: DataTypes.STRING(50), allowNull: false };
  Flavour.init({ slug, name, stock: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 } }, { sequelize, tableName: 'sq_flavour', paranoid: true });
  Size.init({ slug, name }, { sequelize, tableName: 'sq_size' });
  Topping.init({ slug, name }, { sequelize, tableName: 'sq_topping' });
  FlavourTopping.init({}, { sequelize, tableName: 'sq_flavour_topping', timestamps: false });
  Note.init({ text: DataTypes.STRING(50) }, { sequelize, tableName: 'sq_note' });
  Review.init({ text: DataTypes.STRING(50) }, { sequelize, tableName: 'sq_review' });
  Flavour.hasMany(Review, { as: 'reviews', foreignKey: 'flavourId' });
  Review.belongsTo(Flavour, { as: 'flavour', foreignKey: 'flavourId' });
  Flavour.belongsToMany(Size, { through: 'sq_flavour_size', as: 'sizes', foreignKey: 'flavourId', otherKey: 'sizeId' });
  Size.belongsToMany(Flavour, { through: 'sq_flavour_size', as: 'flavours', foreignKey: 'sizeId', otherKey: 'flavourId' });
  Flavour.belongsToMany(Topping, { through: FlavourTopping, as: 'toppings', foreignKey: 'flavourId', otherKey: 'toppingId' });
  Topping.belongsToMany(Flavour, { through: FlavourTopping, as: 'flavours', foreignKey: 'toppingId', otherKey: 'flavourId' });
  const FlavourSize = sequelize.models.sq_flavour_size!;
  return { Flavour, Size, Topping, FlavourTopping, FlavourSize, Review, Note, all: [FlavourSize, FlavourTopping, Review, Note, Topping, Size, Flavour] };
}

export type Shop = ReturnType<typeof defineShop>;

export function registerShop(dumper: Dumper, shop: Shop): void {
  dumper.register(shop.Flavour).register(shop.Size).register(shop.Topping).register(shop.FlavourTopping).register(shop.Review);
}

/** Mint (sizes: small), chocolate (sizes: small, large; a review), vanilla (none); sizes small, large; toppings sprinkles (on mint) and fudge. */
export async function seedShop(shop: Shop) {
  const [mint, chocolate, vanilla] = await shop.Flavour.bulkCreate(
    [
      { slug: 'mint', name: 'Mint', stock: 5 },
      { slug: 'chocolate', name: 'Chocolate', stock: 5 },
      { slug: 'vanilla', name: 'Vanilla', stock: 5 },
    ],
    { hooks: false },
  );
  const [small, large] = await shop.Size.bulkCreate(
    [
      { slug: 'small', name: 'Small' },
      { slug: 'large', name: 'Large' },
    ],
    { hooks: false },
  );
  const [sprinkles, fudge] = await shop.Topping.bulkCreate(
    [
      { slug: 'sprinkles', name: 'Sprinkles' },
      { slug: 'fudge', name: 'Fudge' },
    ],
    { hooks: false },
  );
  await shop.FlavourSize.bulkCreate(
    [
      { flavourId: mint!.id, sizeId: small!.id },
      { flavourId: chocolate!.id, sizeId: small!.id },
      { flavourId: chocolate!.id, sizeId: large!.id },
    ],
    { hooks: false },
  );
  await shop.FlavourTopping.bulkCreate([{ flavourId: mint!.id, toppingId: sprinkles!.id }], { hooks: false });
  const [review] = await shop.Review.bulkCreate([{ flavourId: chocolate!.id, text: 'Great' }], { hooks: false });
  return { mint: mint!, chocolate: chocolate!, vanilla: vanilla!, small: small!, large: large!, sprinkles: sprinkles!, fudge: fudge!, review: review! };
}

/** The shop's pages; every read goes through `shop` (the Sequelize instance the suite counts). */
export function shopApp(shop: Shop) {
  const names = (rows: ReadonlyArray<{ name: string }>) => rows.map((r) => r.name).sort().join(',');
  return async (path: string): Promise<{ status: number; body: string }> => {
    let m: RegExpExecArray | null;
    if (path === '/about/') return { status: 200, body: 'about us' };
    if (path === '/flavours/') return { status: 200, body: `flavours: ${names(await shop.Flavour.findAll())}` };
    if ((m = /^\/flavours\/([^/]+)\/toppings\/$/.exec(path))) {
      const f = await shop.Flavour.findOne({ where: { slug: m[1]! }, include: [{ model: shop.Topping, as: 'toppings' }] });
      return f ? { status: 200, body: `toppings: ${names((f as unknown as { toppings: Array<{ name: string }> }).toppings)}` } : { status: 404, body: 'none' };
    }
    if ((m = /^\/flavours\/([^/]+)\/$/.exec(path))) {
      const f = await shop.Flavour.findOne({ where: { slug: m[1]! } });
      if (!f) return { status: 404, body: 'no such flavour' };
      return { status: 200, body: `${f.name} | stock: ${f.stock} | sizes: ${names(await f.getSizes())} | reviews: ${await f.countReviews()} |` };
    }
    if ((m = /^\/sizes\/([^/]+)\/$/.exec(path))) {
      const s = await shop.Size.findOne({ where: { slug: m[1]! } });
      if (!s) return { status: 404, body: 'no such size' };
      return { status: 200, body: `${s.name} | flavours: ${names(await s.getFlavours())} |` };
    }
    if ((m = /^\/toppings\/([^/]+)\/$/.exec(path))) {
      const t = await shop.Topping.findOne({ where: { slug: m[1]! }, include: [{ model: shop.Flavour, as: 'flavours' }] });
      return t ? { status: 200, body: `${t.name} | flavours: ${names((t as unknown as { flavours: Array<{ name: string }> }).flavours)} |` } : { status: 404, body: 'none' };
    }
    return { status: 404, body: 'not found' };
  };
}

/** The shop's tables on a target, in a database (or schema) of their own. */
export async function openShop(target: Target): Promise<{ db: Database; shop: Shop }> {
  const db = await target.open();
  const shop = defineShop(db.sequelize);
  await db.sequelize.sync(); // a new schema or database: nothing to drop
  return { db, shop };
}

/** A dumper with the shop's models, sequelizeDumper() on the database, and the shop's site in front. */
export async function startShop(db: Database, shop: Shop, options: SequelizeDumperOptions = {}) {
  const log = recordingLogger();
  const dumper = createDumper({ logger: log.logger });
  registerShop(dumper, shop);
  const handle = sequelizeDumper(dumper, db.sequelize, options);
  const site = await Site.start(dumper, db.counter, shopApp(shop));
  return {
    log,
    dumper,
    handle,
    site,
    async close() {
      await site.close();
      handle.close();
      await dumper.close();
    },
  };
}
