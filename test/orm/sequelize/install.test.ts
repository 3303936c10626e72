/**
 * Setting up `sequelizeDumper()`: its arguments and options are checked once, with TypeErrors;
 * it covers models defined before and after it, found by class, model name or table name;
 * `close()` removes its hooks and query interface wrappers; another Sequelize instance is left
 * alone. On SQLite in memory (nothing here depends on the database).
 */
import { DataTypes, Model, Sequelize } from 'sequelize';
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper } from '../../../src/index.js';
import { HOOK_NAME, sequelizeDumper, type SequelizeDumperOptions } from '../../../src/orm/sequelize/index.js';
import { installedAnywhere, markInstalled, markUninstalled } from '../../../src/orm/installs.js';
import { Counter, invalidations } from './support.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

function sequelize() {
  const counter = new Counter();
  const s = new Sequelize({ dialect: 'sqlite', storage: ':memory:', logging: counter.log });
  cleanup.push(() => s.close());
  return { s, counter };
}

function dumper() {
  const d = createDumper({ logger: false });
  cleanup.push(() => d.close());
  return d;
}

describe('sequelizeDumper() arguments and options', () => {
  test('bad arguments and options are TypeErrors naming the mistake', () => {
    const { s } = sequelize();
    const d = dumper();
    expect(() => sequelizeDumper({} as never, s)).toThrow(new TypeError('page-dumper: sequelizeDumper() needs a dumper made by createDumper()'));
    expect(() => sequelizeDumper(d, {} as never)).toThrow(new TypeError('page-dumper: sequelizeDumper(dumper, sequelize) needs a Sequelize 6 instance (new Sequelize(...))'));
    const bad: Array<[unknown, string]> = [
      [null, 'page-dumper: sequelizeDumper() options must be an object'],
      [{ maxrows: 10 }, 'page-dumper: sequelizeDumper() got an unknown option "maxrows"'],
      [{ maxRows: 0 }, 'page-dumper: sequelizeDumper() option "maxRows" must be a positive integer or Infinity, got 0'],
      [{ maxRows: 1.5 }, 'page-dumper: sequelizeDumper() option "maxRows" must be a positive integer or Infinity, got 1.5'],
      [{ maxRows: '10' }, 'page-dumper: sequelizeDumper() option "maxRows" must be a positive integer or Infinity, got 10'],
      [{ invalidateOnRollback: 'yes' }, 'page-dumper: sequelizeDumper() option "invalidateOnRollback" must be a boolean, got string'],
    ];
    for (const [options, message] of bad) {
      expect(() => sequelizeDumper(d, s, options as SequelizeDumperOptions), JSON.stringify(options)).toThrow(new TypeError(message));
    }
    // Nothing was installed by the failed calls.
    const handle = sequelizeDumper(d, s, { maxRows: Infinity, invalidateOnRollback: false });
    expect(() => sequelizeDumper(d, s)).toThrow(new TypeError('page-dumper: sequelizeDumper() is already installed on this Sequelize instance'));
    handle.close();
    handle.close(); // idempotent
    sequelizeDumper(d, s).close();
  });

  test('an instance with the integration of another copy of page-dumper (the CommonJS build beside the ES modules) is refused too', () => {
    const { s } = sequelize();
    const d = dumper();
    // What the other copy records, in the registry every copy in the process shares.
    markInstalled(s);
    expect(() => sequelizeDumper(d, s)).toThrow(new TypeError('page-dumper: sequelizeDumper() is already installed on this Sequelize instance'));
    markUninstalled(s);
    const handle = sequelizeDumper(d, s);
    expect(installedAnywhere(s)).toBe(true);
    handle.close();
    expect(installedAnywhere(s)).toBe(false);
  });
});

describe('sequelizeDumper() on a Sequelize instance', () => {
  test('models defined after it are covered, found by class, by model name or by table name', async () => {
    const { s } = sequelize();
    const d = dumper();
    const calls = invalidations(d);
    cleanup.push(sequelizeDumper(d, s).close);
    class Flavour extends Model {
      declare slug: string;
      dependentPaths() {
        return [`/flavours/${this.slug}/`];
      }
    }
    Flavour.init({ slug: DataTypes.STRING }, { sequelize: s, tableName: 'flavour' });
    const Size = s.define('Size', { slug: DataTypes.STRING }, { tableName: 'size' });
    const Topping = s.define('Topping', { slug: DataTypes.STRING }, { tableName: 'topping' });
    d.register(Flavour);
    d.register('Size', { dependentPaths: (size: { slug: string }) => [`/sizes/${size.slug}/`] });
    d.register('topping', { dependentPaths: (t: { slug: string }) => [`/toppings/${t.slug}/`] });
    await s.sync();
    await Flavour.create({ slug: 'mint' });
    await Size.create({ slug: 'small' });
    await Topping.create({ slug: 'sprinkles' });
    // A scoped copy of a model is the model.
    Flavour.addScope('minty', { where: { slug: 'mint' } });
    await Flavour.scope('minty').update({ slug: 'mint-leaf' }, { where: {} });
    expect(calls).toEqual([['/flavours/mint/'], ['/sizes/small/'], ['/toppings/sprinkles/'], ['/flavours/mint/', '/flavours/mint-leaf/']]);
  });

  test('close() removes its hooks and its query interface wrappers; a new call installs them again', async () => {
    const { s, counter } = sequelize();
    const d = dumper();
    const calls = invalidations(d);
    class Flavour extends Model {
      declare slug: string;
      dependentPaths() {
        return [`/flavours/${this.slug}/`];
      }
    }
    Flavour.init({ slug: DataTypes.STRING, stock: DataTypes.INTEGER }, { sequelize: s, tableName: 'flavour' });
    d.register(Flavour);
    await s.sync();
    const qi = s.getQueryInterface() as unknown as Record<string, unknown>;
    const handle = sequelizeDumper(d, s);
    const hooks = (s as unknown as { options: { hooks: Record<string, Array<{ name?: string }>> } }).options.hooks;
    expect(hooks.afterCreate?.map((h) => h.name)).toEqual([HOOK_NAME]);
    expect(Object.hasOwn(qi, 'increment')).toBe(true);
    handle.close();
    expect(Object.values(hooks).flat().filter((h) => h.name === HOOK_NAME)).toEqual([]);
    for (const m of ['increment', 'decrement', 'bulkUpdate', 'bulkDelete']) expect(Object.hasOwn(qi, m), m).toBe(false);
    const before = counter.count;
    const f = await Flavour.create({ slug: 'mint', stock: 1 });
    await Flavour.increment('stock', { where: { slug: 'mint' } });
    await f.update({ slug: 'mint-2' });
    expect(calls).toEqual([]);
    expect(counter.count - before).toBe(3); // the writes alone
    cleanup.push(sequelizeDumper(d, s).close);
    await (await Flavour.findOne({ where: { slug: 'mint-2' }, rejectOnEmpty: true })).update({ slug: 'mint-3' });
    expect(calls).toEqual([['/flavours/mint-2/', '/flavours/mint-3/']]);
  });

  test('another Sequelize instance is left alone', async () => {
    const { s } = sequelize();
    const { s: other, counter } = sequelize();
    const d = dumper();
    const calls = invalidations(d);
    cleanup.push(sequelizeDumper(d, s).close);
    class Flavour extends Model {
      declare slug: string;
      dependentPaths() {
        return [`/flavours/${this.slug}/`];
      }
    }
    Flavour.init({ slug: DataTypes.STRING, stock: DataTypes.INTEGER }, { sequelize: other, tableName: 'flavour' });
    d.register(Flavour);
    await other.sync();
    const before = counter.count;
    await Flavour.create({ slug: 'mint', stock: 1 });
    await Flavour.increment('stock', { where: {} });
    await Flavour.update({ slug: 'x' }, { where: {} });
    expect(counter.count - before).toBe(3);
    expect(calls).toEqual([]);
  });
});
