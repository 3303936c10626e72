/**
 * The demo site (examples/ice-cream, on TypeORM) works end to end: the shared ice-cream suite
 * (test/support/ice-cream-suite.ts), with the writes outside the admin made through TypeORM. Its
 * last check runs `node examples/ice-cream/server.js`, the command behind `npm start`.
 */
import type { DemoApp } from '../examples/ice-cream/server.js';
import { iceCreamSiteSuite } from './support/ice-cream-suite.js';

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo',
  example: 'ice-cream',
  banner: 'page-dumper demo',
  orm: 'TypeORM',
  start: async (options) => (await import('../examples/ice-cream/server.js')).createApp(options),
  writes: {
    // From a bare { id }: page-dumper/typeorm loads the row (slug, sizes) before the delete.
    deleteFlavour: async ({ dataSource }, id) => {
      const repo = dataSource.getRepository<{ id: number }>('IceCream');
      await repo.remove(repo.create({ id }));
    },
    // By criteria: no entity loaded.
    renameFlavour: async ({ dataSource }, slug, name) => {
      await dataSource.getRepository<{ slug: string; name: string }>('IceCream').update({ slug }, { name });
    },
    // Through RelationQueryBuilder, in a transaction.
    removeSize: ({ dataSource }, iceCreamId, sizeId) =>
      dataSource.transaction((manager) => manager.createQueryBuilder().relation('IceCream', 'sizes').of(iceCreamId).remove(sizeId)),
    addSize: ({ dataSource }, iceCreamId, sizeId) => dataSource.createQueryBuilder().relation('IceCream', 'sizes').of(iceCreamId).add(sizeId),
  },
});
