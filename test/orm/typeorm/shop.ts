/**
 * A small ice cream shop on TypeORM for the write-path suites: decorated entity classes with
 * `dependentPaths()` (Flavour, Size, many-to-many), a model registered by name (Review, many-to-one
 * to Flavour), an `EntitySchema` without a class registered by name (Topping), an entity nobody
 * registered (AuditLog), and the pages that show them.
 */
import {
  Column,
  DeleteDateColumn,
  Entity,
  EntitySchema,
  JoinTable,
  ManyToMany,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
  type DataSource,
} from 'typeorm';
import type { Dumper } from '../../../src/index.js';

@Entity()
export class Flavour {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100, unique: true }) slug!: string;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @Column({ type: 'int', default: 0 }) likes!: number;
  @DeleteDateColumn({ nullable: true }) deletedAt!: Date | null;
  @ManyToMany(() => Size, (s) => s.flavours) @JoinTable() sizes!: Size[];
  @OneToMany(() => Review, (r) => r.flavour) reviews!: Review[];

  /** The list, its page, and the page of each size it comes in (a size page lists its flavours). */
  dependentPaths() {
    return ['/flavours/', `/flavours/${this.slug}/`, ...(this.sizes ?? []).map((s) => `/sizes/${s.slug}/`)];
  }
}

@Entity()
export class Size {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 100, unique: true }) slug!: string;
  @Column({ type: 'varchar', length: 100 }) name!: string;
  @ManyToMany(() => Flavour, (f) => f.sizes) flavours!: Flavour[];

  /**
   * Its page, the page of each flavour in it (a flavour page lists its sizes), and the page of
   * unused sizes while it has at most one flavour: it may just have left that page, or be about to.
   */
  *dependentPaths() {
    yield `/sizes/${this.slug}/`;
    for (const f of this.flavours ?? []) yield `/flavours/${f.slug}/`;
    if ((this.flavours ?? []).length <= 1) yield '/unused-sizes/';
  }
}

@Entity()
export class Review {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 200 }) body!: string;
  @Column({ type: 'varchar', length: 50, nullable: true, unique: true }) code!: string | null;
  @ManyToOne(() => Flavour, (f) => f.reviews, { nullable: true, onDelete: 'CASCADE' }) flavour!: Flavour | null;
}

export interface Topping {
  id: number;
  name: string;
}

export const ToppingSchema = new EntitySchema<Topping>({
  name: 'Topping',
  columns: {
    id: { type: Number, primary: true, generated: true },
    name: { type: String, length: 100 },
  },
});

@Entity()
export class AuditLog {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: 'varchar', length: 200 }) message!: string;
}

export const entities = [Flavour, Size, Review, ToppingSchema, AuditLog];

export function register(dumper: Dumper): void {
  dumper.register(Flavour).register(Size);
  dumper.register('Review', {
    dependentPaths: (r: Review) => (r.flavour ? [`/flavours/${r.flavour.slug}/`] : []),
  });
  dumper.register('Topping', { dependentPaths: () => ['/toppings/'] });
}

const names = (rows: Array<{ name: string }>) =>
  rows
    .map((r) => r.name)
    .sort()
    .join(',');

/** The pages: each shows exactly what its models' dependentPaths() say it shows. */
export function shopApp(ds: DataSource) {
  return async (path: string): Promise<{ status: number; body: string }> => {
    let m: RegExpExecArray | null;
    if (path === '/flavours/') {
      return { status: 200, body: `flavours: ${names(await ds.getRepository(Flavour).find())}` };
    }
    if ((m = /^\/flavours\/([^/]+)\/$/.exec(path))) {
      const f = await ds.getRepository(Flavour).findOne({ where: { slug: m[1]! }, relations: { sizes: true } });
      if (!f) return { status: 404, body: 'no such flavour' };
      const reviews = await ds.getRepository(Review).find({ where: { flavour: { id: f.id } }, order: { id: 'ASC' } });
      return { status: 200, body: `${f.name} | likes: ${f.likes} | sizes: ${names(f.sizes)} | reviews: ${reviews.map((r) => r.body).join(',')}` };
    }
    if ((m = /^\/sizes\/([^/]+)\/$/.exec(path))) {
      const s = await ds.getRepository(Size).findOne({ where: { slug: m[1]! }, relations: { flavours: true } });
      if (!s) return { status: 404, body: 'no such size' };
      return { status: 200, body: `${s.name} | flavours: ${names(s.flavours)}` };
    }
    if (path === '/archive/') {
      const all = await ds.getRepository(Flavour).find({ withDeleted: true });
      return { status: 200, body: `archive: ${names(all.filter((f) => f.deletedAt !== null))}` };
    }
    if (path === '/unused-sizes/') {
      const all = await ds.getRepository(Size).find({ relations: { flavours: true } });
      return { status: 200, body: `unused: ${names(all.filter((s) => s.flavours.length === 0))}` };
    }
    if (path === '/toppings/') return { status: 200, body: `toppings: ${names(await ds.getRepository<Topping>('Topping').find())}` };
    if (path === '/about/') return { status: 200, body: 'about us' };
    return { status: 404, body: 'not found' };
  };
}

/** Vanilla (small, large), Chocolate (small), Mint (no size); sizes small, large, tub. */
export async function seed(ds: DataSource) {
  const sizes = ds.getRepository(Size);
  const [small, large, tub] = await sizes.save([
    { slug: 'small', name: 'Small' },
    { slug: 'large', name: 'Large' },
    { slug: 'tub', name: 'Tub' },
  ]);
  const flavours = ds.getRepository(Flavour);
  const [vanilla, chocolate, mint] = await flavours.save([
    { slug: 'vanilla', name: 'Vanilla', sizes: [small!, large!] },
    { slug: 'chocolate', name: 'Chocolate', sizes: [small!] },
    { slug: 'mint', name: 'Mint', sizes: [] },
  ]);
  return { small: small!, large: large!, tub: tub!, vanilla: vanilla!, chocolate: chocolate!, mint: mint! };
}
