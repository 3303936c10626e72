/**
 * The Drizzle demo site (examples/ice-cream-drizzle) works end to end: the shared ice-cream suite
 * (test/support/ice-cream-suite.ts), with the writes outside the admin made through the database
 * wrapped by drizzleDumper() (the sizes are rows of the junction table ice_cream_size, whose links
 * the database deletes with their flavour). Its admin also edits slugs: the old URL goes.
 */
import { and, eq } from 'drizzle-orm';
import type { DemoApp } from '../../../examples/ice-cream-drizzle/server.js';
import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo on Drizzle',
  example: 'ice-cream-drizzle',
  banner: 'page-dumper Drizzle demo',
  orm: 'the wrapped Drizzle database',
  adminEditsSlug: true,
  linkWritesSpareOtherSizes: true,
  start: async (options) => (await import('../../../examples/ice-cream-drizzle/server.js')).createApp(options),
  writes: {
    deleteFlavour: async ({ db, schema: { iceCream } }, id) => void (await db.delete(iceCream).where(eq(iceCream.id, id))),
    renameFlavour: async ({ db, schema: { iceCream } }, slug, name) => void (await db.update(iceCream).set({ name }).where(eq(iceCream.slug, slug))),
    removeSize: async ({ db, schema: { iceCreamSize: link } }, iceCreamId, sizeId) =>
      void (await db.delete(link).where(and(eq(link.iceCreamId, iceCreamId), eq(link.sizeId, sizeId)))),
    addSize: async ({ db, schema: { iceCreamSize } }, iceCreamId, sizeId) => void (await db.insert(iceCreamSize).values({ iceCreamId, sizeId })),
  },
});
