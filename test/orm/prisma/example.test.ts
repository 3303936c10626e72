/**
 * The Prisma demo site (examples/ice-cream-prisma) works end to end: the shared ice-cream suite
 * (test/support/ice-cream-suite.ts), with the writes outside the admin made through the Prisma
 * Client extended with prismaDumper() (nested `connect` and `disconnect` for the sizes).
 */
import type { DemoApp } from '../../../examples/ice-cream-prisma/server.js';
import { iceCreamSiteSuite } from '../../support/ice-cream-suite.js';
import { generateClients } from './support.js';

iceCreamSiteSuite<DemoApp>({
  name: 'the ice cream demo on Prisma',
  example: 'ice-cream-prisma',
  banner: 'page-dumper Prisma demo',
  orm: 'the Prisma Client',
  // The example imports its generated client.
  prepare: generateClients,
  start: async (options) => (await import('../../../examples/ice-cream-prisma/server.js')).createApp(options),
  writes: {
    deleteFlavour: async ({ prisma }, id) => void (await prisma.iceCream.delete({ where: { id } })),
    renameFlavour: async ({ prisma }, slug, name) => void (await prisma.iceCream.update({ where: { slug }, data: { name } })),
    removeSize: async ({ prisma }, id, sizeId) => void (await prisma.iceCream.update({ where: { id }, data: { sizes: { disconnect: { id: sizeId } } } })),
    addSize: async ({ prisma }, id, sizeId) => void (await prisma.iceCream.update({ where: { id }, data: { sizes: { connect: { id: sizeId } } } })),
  },
});
