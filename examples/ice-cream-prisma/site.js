/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize } from './models.js';

/** @param {import('./generated/client.js').PrismaClient} prisma */
export function siteRoutes(prisma) {
  const router = Router();

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await prisma.iceCream.findMany({ include: { sizes: true }, orderBy: { name: 'asc' } });
    res.type('html').send(views.iceCreamList(list.map(asIceCream)));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const iceCream = await prisma.iceCream.findUnique({ where: { slug: req.params.slug }, include: { sizes: true } });
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!iceCream) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail(asIceCream(iceCream)));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList((await prisma.size.findMany({ orderBy: { id: 'asc' } })).map(asSize)));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const size = await prisma.size.findUnique({ where: { slug: req.params.slug }, include: { iceCreams: true } });
    if (!size) return void res.status(404).type('html').send(views.notFound('such size'));
    res.type('html').send(views.sizeDetail(asSize(size)));
  });

  return router;
}
