/**
 * The admin: forms that write through TypeORM. It lives under /admin/, which the dumper ignores
 * by default (X-Cache: BYPASS). Nothing here calls the dumper: page-dumper/typeorm (installed in
 * server.js) sees every write and invalidates the public pages that show the rows.
 */
import express, { Router } from 'express';
import { In } from 'typeorm';
import { IceCream, Size } from './models.js';
import * as views from './views.js';

/** @param {import('typeorm').DataSource} dataSource */
export function adminRoutes(dataSource) {
  const iceCreams = dataSource.getRepository(IceCream);
  const sizes = dataSource.getRepository(Size);
  const router = Router();
  router.use(express.urlencoded({ extended: false }));

  const back = (res, anchor = '') => res.redirect(303, `/admin/${anchor}`);
  const field = (req, name) => {
    const v = req.body?.[name];
    return typeof v === 'string' ? v.trim() : '';
  };
  /** The checked size ids: `size=1&size=3`. */
  const sizeIds = (req) => {
    const v = req.body?.size;
    return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(Number).filter(Number.isInteger);
  };
  const idParam = (req) => {
    const id = Number(req.params.id);
    return Number.isInteger(id) ? id : -1;
  };
  const badRequest = (res, message) => res.status(400).type('text').send(message);
  const notFound = (res) => res.status(404).type('text').send('No such row');

  router.get('/', async (req, res) => {
    const [allIceCreams, allSizes] = await Promise.all([
      iceCreams.find({ relations: { sizes: true }, order: { name: 'ASC' } }),
      sizes.find({ order: { id: 'ASC' } }),
    ]);
    res.type('html').send(views.admin({ iceCreams: allIceCreams, sizes: allSizes }));
  });

  // Create a flavour (and its sizes: junction rows, which invalidate the pages of both sides).
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    let slug = slugify(field(req, 'slug') || name);
    if (!slug) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    for (let n = 2; await iceCreams.existsBy({ slug }); n++) slug = `${slugify(field(req, 'slug') || name)}-${n}`;
    const iceCream = iceCreams.create({
      slug,
      name,
      description: field(req, 'description'),
      sizes: await sizes.findBy({ id: In(sizeIds(req)) }),
    });
    await iceCreams.save(iceCream);
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Edit a flavour's name and description: its pages as they were and as they are now are invalidated.
  router.post('/ice-cream/:id', async (req, res) => {
    const iceCream = await iceCreams.findOneBy({ id: idParam(req) });
    if (!iceCream) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    iceCream.name = name;
    iceCream.description = field(req, 'description');
    await iceCreams.save(iceCream);
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Choose a flavour's sizes. TypeORM diffs the relation against the database and inserts or
  // deletes junction rows; page-dumper/typeorm invalidates both sides of each row it touches.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    const iceCream = await iceCreams.findOneBy({ id: idParam(req) });
    if (!iceCream) return void notFound(res);
    iceCream.sizes = await sizes.findBy({ id: In(sizeIds(req)) });
    await iceCreams.save(iceCream);
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Delete a flavour: its pages (and its sizes' pages) are found before the delete and
  // invalidated after it.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const iceCream = await iceCreams.findOneBy({ id: idParam(req) });
    if (!iceCream) return void notFound(res);
    await iceCreams.remove(iceCream);
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too.
  router.post('/sizes/:id', async (req, res) => {
    const size = await sizes.findOneBy({ id: idParam(req) });
    if (!size) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    size.name = name;
    await sizes.save(size);
    back(res, `#size-${size.id}`);
  });

  return router;
}

/** "Mint & Chip!" -> "mint-chip" */
export function slugify(text) {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 80);
}
