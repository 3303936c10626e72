/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { Router } from 'express';
import { IceCream, Size } from './models.js';
import * as views from './views.js';

/** @param {import('typeorm').DataSource} dataSource */
export function siteRoutes(dataSource) {
  const iceCreams = dataSource.getRepository(IceCream);
  const sizes = dataSource.getRepository(Size);
  const router = Router();

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await iceCreams.find({ relations: { sizes: true }, order: { name: 'ASC' } });
    res.type('html').send(views.iceCreamList(list));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const iceCream = await iceCreams.findOne({ where: { slug: req.params.slug }, relations: { sizes: true } });
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!iceCream) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail(iceCream));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList(await sizes.find({ order: { id: 'ASC' } })));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const size = await sizes.findOne({ where: { slug: req.params.slug }, relations: { iceCreams: true } });
    if (!size) return void res.status(404).type('html').send(views.notFound('such size'));
    res.type('html').send(views.sizeDetail(size));
  });

  return router;
}
