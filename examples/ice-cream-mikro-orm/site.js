/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { IceCream, Size } from './models.js';

/**
 * The routes read through `orm.em`: inside a request, MikroORM resolves it to the request's own
 * fork (server.js wraps every request in a RequestContext).
 * @param {import('@mikro-orm/core').MikroORM} orm
 */
export function siteRoutes(orm) {
  const router = Router();

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await orm.em.find(IceCream, {}, { populate: ['sizes'], orderBy: { name: 'asc' } });
    res.type('html').send(views.iceCreamList(list));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const iceCream = await orm.em.findOne(IceCream, { slug: req.params.slug }, { populate: ['sizes'] });
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!iceCream) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail(iceCream));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList(await orm.em.find(Size, {}, { orderBy: { id: 'asc' } })));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const size = await orm.em.findOne(Size, { slug: req.params.slug }, { populate: ['iceCreams'] });
    if (!size) return void res.status(404).type('html').send(views.notFound('such size'));
    res.type('html').send(views.sizeDetail(size));
  });

  return router;
}
