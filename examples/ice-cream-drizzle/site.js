/** The public pages. All of them are cached by the dumper until the data they show changes. */
import { asc, eq } from 'drizzle-orm';
import { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize, withSizes } from './models.js';
import { iceCream, size } from './schema.js';

/** @param {import('drizzle-orm/better-sqlite3').BetterSQLite3Database<typeof import('./schema.js')>} db */
export function siteRoutes(db) {
  const router = Router();

  router.get('/', (req, res) => res.redirect(302, '/ice-cream/'));

  router.get('/ice-cream/', async (req, res) => {
    const list = await db.query.iceCream.findMany({ with: withSizes, orderBy: [asc(iceCream.name)] });
    res.type('html').send(views.iceCreamList(list.map(asIceCream)));
  });

  router.get('/ice-cream/:slug/', async (req, res) => {
    const row = await db.query.iceCream.findFirst({ where: eq(iceCream.slug, req.params.slug), with: withSizes });
    // A 404 is never stored (only 200 is): the page may exist tomorrow.
    if (!row) return void res.status(404).type('html').send(views.notFound('such flavour'));
    res.type('html').send(views.iceCreamDetail(asIceCream(row)));
  });

  router.get('/sizes/', async (req, res) => {
    res.type('html').send(views.sizeList((await db.select().from(size).orderBy(asc(size.id))).map(asSize)));
  });

  router.get('/sizes/:slug/', async (req, res) => {
    const row = await db.query.size.findFirst({ where: eq(size.slug, req.params.slug), with: { links: { with: { iceCream: true } } } });
    if (!row) return void res.status(404).type('html').send(views.notFound('such size'));
    row.links.sort((a, b) => (a.iceCream.name < b.iceCream.name ? -1 : a.iceCream.name > b.iceCream.name ? 1 : 0));
    res.type('html').send(views.sizeDetail(asSize(row)));
  });

  return router;
}
