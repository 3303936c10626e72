/**
 * The public types of page-dumper/sequelize: what `sequelizeDumper()` takes and returns, and that
 * a Sequelize model class with a `dependentPaths()` method registers as it is.
 */
import { DataTypes, Model, Sequelize } from 'sequelize';
import { describe, expectTypeOf, test } from 'vitest';
import { createDumper, type Dumper } from '../../../src/index.js';
import type { ReadTracker } from '../../../src/orm/reads.js';
import defaultExport, { HOOK_NAME, sequelizeDumper, type SequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';

describe('sequelizeDumper types', () => {
  test('arguments, options and the handle', async () => {
    expectTypeOf(sequelizeDumper).parameters.toEqualTypeOf<[Dumper, Sequelize, SequelizeDumperOptions?]>();
    expectTypeOf(sequelizeDumper).returns.toEqualTypeOf<SequelizeDumper>();
    expectTypeOf(defaultExport).toEqualTypeOf(sequelizeDumper);
    expectTypeOf<SequelizeDumperOptions>().toEqualTypeOf<{ maxRows?: number; invalidateOnRollback?: boolean; trackReads?: boolean; maxTagsPerPage?: number }>();
    expectTypeOf<SequelizeDumper>().toEqualTypeOf<{ readonly sequelize: Sequelize; readonly reads: ReadTracker | undefined; close(): void }>();
    expectTypeOf<typeof HOOK_NAME>().toEqualTypeOf<'page-dumper'>();

    const sequelize = new Sequelize({ dialect: 'sqlite', storage: ':memory:', logging: false });
    const dumper = createDumper({ logger: false });
    const handle = sequelizeDumper(dumper, sequelize, { maxRows: 10 });
    expectTypeOf(handle.sequelize).toEqualTypeOf<Sequelize>();
    // Type errors only (never called: each would throw).
    const mistakes = () => {
      // @ts-expect-error an option that does not exist
      sequelizeDumper(dumper, sequelize, { maxrows: 10 });
      // @ts-expect-error not a Sequelize instance
      sequelizeDumper(dumper, {});
      // @ts-expect-error maxRows is a number
      sequelizeDumper(dumper, sequelize, { maxRows: '10' });
    };
    expectTypeOf(mistakes).toBeFunction();
    handle.close();
    await sequelize.close();
    await dumper.close();
  });

  test('a model class with dependentPaths() registers as it is; one without, or a model name, with options', async () => {
    class IceCream extends Model {
      declare slug: string;
      dependentPaths() {
        return ['/ice-cream/', `/ice-cream/${this.slug}/`];
      }
    }
    class Size extends Model {
      declare slug: string;
    }
    const sequelize = new Sequelize({ dialect: 'sqlite', storage: ':memory:', logging: false });
    IceCream.init({ slug: DataTypes.STRING }, { sequelize });
    Size.init({ slug: DataTypes.STRING }, { sequelize });
    const dumper = createDumper({ logger: false });
    expectTypeOf(dumper.register(IceCream)).toEqualTypeOf<Dumper>();
    expectTypeOf(dumper.register(Size, { dependentPaths: (size: Size) => [`/sizes/${size.slug}/`] })).toEqualTypeOf<Dumper>();
    expectTypeOf(dumper.register('Topping', { dependentPaths: (row: { slug: string }) => [`/toppings/${row.slug}/`] })).toEqualTypeOf<Dumper>();
    await dumper.close();
    await sequelize.close();
  });
});
