/**
 * The Kysely demo site (examples/ice-cream-kysely) works end to end: the shared ice-cream suite
 * (test/support/ice-cream-suite.ts), with the writes outside the admin made through the Kysely
 * wrapped by kyselyDumper() (the sizes are rows of the junction table ice_cream_size, whose links
 * the database deletes with their flavour).
 */
import type { DemoApp } from '../../../examples/ice-cream-kysely/server.js';
import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo on Kysely',
  example: 'ice-cream-kysely',
  banner: 'page-dumper Kysely demo',
  orm: 'the wrapped Kysely',
  linkWritesSpareOtherSizes: true,
  start: async (options) => (await import('../../../examples/ice-cream-kysely/server.js')).createApp(options),
  writes: {
    deleteFlavour: async ({ db }, id) => void (await db.deleteFrom('ice_cream').where('id', '=', id).execute()),
    renameFlavour: async ({ db }, slug, name) => void (await db.updateTable('ice_cream').set({ name }).where('slug', '=', slug).execute()),
    removeSize: async ({ db }, iceCreamId, sizeId) =>
      void (await db.deleteFrom('ice_cream_size').where('ice_cream_id', '=', iceCreamId).where('size_id', '=', sizeId).execute()),
    addSize: async ({ db }, iceCreamId, sizeId) => void (await db.insertInto('ice_cream_size').values({ ice_cream_id: iceCreamId, size_id: sizeId }).execute()),
  },
});
