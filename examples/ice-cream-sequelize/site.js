/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { IceCream, Size } from './models.js';

export function siteRoutes() {
  const router = Router();
  const sizes = { model: Size, as: 'sizes', through: { attributes: [] } };
  const iceCreams = { model: IceCream, as: 'iceCreams', through: { attributes: [] } };

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await IceCream.findAll({ include: [sizes], order: [['name', 'ASC']] });
    res.type('html').send(views.iceCreamList(list));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const iceCream = await IceCream.findOne({ where: { slug: req.params.slug }, include: [sizes] });
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!iceCream) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail(iceCream));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList(await Size.findAll({ order: [['id', 'ASC']] })));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const size = await Size.findOne({ where: { slug: req.params.slug }, include: [iceCreams] });
    if (!size) return void res.status(404).type('html').send(views.notFound('such size'));
    res.type('html').send(views.sizeDetail(size));
  });

  return router;
}
