/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize } from './models.js';

/** @param {import('kysely').Kysely<any>} db */
export function siteRoutes(db) {
  const router = Router();

  /** Each flavour with its sizes (one query for the flavours, one for their links). */
  const withSizes = async (iceCreams) => {
    if (iceCreams.length === 0) return [];
    const links = await db
      .selectFrom('ice_cream_size')
      .innerJoin('size', 'size.id', 'ice_cream_size.size_id')
      .select(['ice_cream_size.ice_cream_id', 'size.id', 'size.slug', 'size.name'])
      .where('ice_cream_size.ice_cream_id', 'in', iceCreams.map((i) => i.id))
      .orderBy('size.id')
      .execute();
    return iceCreams.map((i) => asIceCream({ ...i, sizes: links.filter((l) => l.ice_cream_id === i.id).map(({ ice_cream_id, ...s }) => s) }));
  };

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await db.selectFrom('ice_cream').selectAll().orderBy('name').execute();
    res.type('html').send(views.iceCreamList(await withSizes(list)));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const iceCream = await db.selectFrom('ice_cream').selectAll().where('slug', '=', req.params.slug).executeTakeFirst();
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!iceCream) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail((await withSizes([iceCream]))[0]));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList((await db.selectFrom('size').selectAll().orderBy('id').execute()).map(asSize)));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const size = await db.selectFrom('size').selectAll().where('slug', '=', req.params.slug).executeTakeFirst();
    if (!size) return void res.status(404).type('html').send(views.notFound('such size'));
    const iceCreams = await db
      .selectFrom('ice_cream')
      .innerJoin('ice_cream_size', 'ice_cream_size.ice_cream_id', 'ice_cream.id')
      .selectAll('ice_cream')
      .where('ice_cream_size.size_id', '=', size.id)
      .orderBy('ice_cream.name')
      .execute();
    res.type('html').send(views.sizeDetail(asSize({ ...size, iceCreams })));
  });

  return router;
}
