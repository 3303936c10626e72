/**
 * The Sequelize demo site (examples/ice-cream-sequelize) works end to end: the shared ice-cream
 * suite (test/support/ice-cream-suite.ts), with the writes outside the admin made through the
 * Sequelize models: a destroy and an update by where (whose rows are found before the write), and
 * the belongsToMany mixins removeSize() and addSize(), whose junction rows reach the flavour and
 * the size. Its admin also edits slugs: the old URL goes.
 */
import type { DemoApp } from '../../../examples/ice-cream-sequelize/server.js';
import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo on Sequelize',
  example: 'ice-cream-sequelize',
  banner: 'page-dumper Sequelize demo',
  orm: 'the Sequelize models',
  adminEditsSlug: true,
  start: async (options) => (await import('../../../examples/ice-cream-sequelize/server.js')).createApp(options),
  writes: {
    deleteFlavour: async ({ models: { IceCream } }, id) => void (await IceCream.destroy({ where: { id } })),
    renameFlavour: async ({ models: { IceCream } }, slug, name) => void (await IceCream.update({ name }, { where: { slug } })),
    removeSize: async ({ models: { IceCream } }, iceCreamId, sizeId) => {
      await (await IceCream.findByPk(iceCreamId, { rejectOnEmpty: true })).removeSize(sizeId);
    },
    addSize: async ({ models: { IceCream } }, iceCreamId, sizeId) => {
      await (await IceCream.findByPk(iceCreamId, { rejectOnEmpty: true })).addSize(sizeId);
    },
  },
});
