/**
 * The MikroORM demo site (examples/ice-cream-mikro-orm) works end to end: the shared ice-cream
 * suite (test/support/ice-cream-suite.ts), with the writes outside the admin made through
 * MikroORM itself: `nativeDelete()` and `nativeUpdate()` by criteria (their rows found before
 * the write), a size removed from a loaded collection and one added to a collection that is not
 * loaded (flushes, whose join-table rows reach the flavour and the size). Its admin also edits
 * slugs: the old URL goes. Then two writes only MikroORM has: a QueryBuilder update, and a
 * flush inside `em.transactional()`.
 */
import type { EntityManager } from '@mikro-orm/core';
import { expect, test } from 'vitest';
import type { DemoApp } from '../../../examples/ice-cream-mikro-orm/server.js';
import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';

/** The example's entities, by name (its models.js is plain JavaScript). */
type Row = { id: number; slug: string; name: string; sizes: { add(x: object): void; remove(x: object): void } };

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo on MikroORM',
  example: 'ice-cream-mikro-orm',
  banner: 'page-dumper MikroORM demo',
  orm: 'MikroORM',
  adminEditsSlug: true,
  start: async (options) => (await import('../../../examples/ice-cream-mikro-orm/server.js')).createApp(options),
  writes: {
    deleteFlavour: async ({ orm }, id) => void (await orm.em.fork().nativeDelete('IceCream', { id })),
    renameFlavour: async ({ orm }, slug, name) => void (await orm.em.fork().nativeUpdate('IceCream', { slug }, { name })),
    removeSize: async ({ orm }, iceCreamId, sizeId) => {
      const em = orm.em.fork();
      const iceCream = (await em.findOneOrFail('IceCream', { id: iceCreamId }, { populate: ['sizes'] as never })) as Row;
      iceCream.sizes.remove(em.getReference('Size', sizeId));
      await em.flush();
    },
    addSize: async ({ orm }, iceCreamId, sizeId) => {
      const em = orm.em.fork();
      // Not loaded: the link is added without reading the flavour's sizes.
      ((await em.findOneOrFail('IceCream', { id: iceCreamId })) as Row).sizes.add(em.getReference('Size', sizeId));
      await em.flush();
    },
  },
  more: ({ demo, get, warm }) => {
    test('a QueryBuilder update of a size reaches every flavour page that lists it', async () => {
      await warm('/ice-cream/vanilla/');
      await warm('/sizes/tub/');
      await warm('/ice-cream/strawberry/');
      const em = demo().orm.em.fork() as EntityManager & { createQueryBuilder(entity: string): any };
      await em.createQueryBuilder('Size').update({ name: 'Party tub' }).where({ slug: 'tub' }).execute();
      for (const path of ['/ice-cream/vanilla/', '/sizes/tub/']) {
        const page = await get(path);
        expect(page.cache, path).toBe('MISS');
        expect(page.body, path).toContain('Party tub');
      }
      // Strawberry does not come in a tub.
      expect((await get('/ice-cream/strawberry/')).cache).toBe('HIT');
    });

    test('a flush inside em.transactional() invalidates the pages again once it commits', async () => {
      await warm('/ice-cream/strawberry/');
      await demo().orm.em.fork().transactional(async (em) => {
        ((await em.findOneOrFail('IceCream', { slug: 'strawberry' })) as Row).name = 'Wild strawberry';
        await em.flush();
      });
      const page = await get('/ice-cream/strawberry/');
      expect(page.cache).toBe('MISS');
      expect(page.body).toContain('Wild strawberry');
    });
  },
});
