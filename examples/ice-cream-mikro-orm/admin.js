/**
 * The admin: forms that write through MikroORM's entity manager. It lives under /admin/, which
 * the dumper ignores by default (X-Cache: BYPASS). Nothing here calls the dumper:
 * page-dumper/mikro-orm (installed in server.js) sees every flush and invalidates the public
 * pages that show the rows it changes, as they were before it and as they are after it.
 */
import express, { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { IceCream, Size } from './models.js';

/**
 * @param {import('@mikro-orm/core').MikroORM} orm `orm.em` is the request's fork inside a request
 */
export function adminRoutes(orm) {
  const router = Router();
  router.use(express.urlencoded({ extended: false }));

  const back = (res, anchor = '') => res.redirect(303, `/admin/${anchor}`);
  const field = (req, name) => {
    const v = req.body?.[name];
    return typeof v === 'string' ? v.trim() : '';
  };
  /** The checked sizes: `size=1&size=3`, as `[1, 3]`. */
  const sizeIds = (req) => {
    const v = req.body?.size;
    return [...new Set((Array.isArray(v) ? v : v === undefined ? [] : [v]).map(Number).filter(Number.isInteger))];
  };
  const idParam = (req) => {
    const id = Number(req.params.id);
    return Number.isInteger(id) ? id : -1;
  };
  const badRequest = (res, message) => res.status(400).type('text').send(message);
  const notFound = (res) => res.status(404).type('text').send('No such row');
  const sizesById = (ids) => (ids.length === 0 ? [] : orm.em.find(Size, { id: { $in: ids } }));

  router.get('/', async (req, res) => {
    const [iceCreams, sizes] = await Promise.all([
      orm.em.find(IceCream, {}, { populate: ['sizes'], orderBy: { name: 'asc' } }),
      orm.em.find(Size, {}, { orderBy: { id: 'asc' } }),
    ]);
    res.type('html').send(views.admin({ iceCreams, sizes }));
  });

  // Create a flavour with its sizes: one flush, so one transaction; the new row's pages and the
  // pages of its sizes (the links added) are invalidated after the commit.
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const base = slugify(field(req, 'slug') || name);
    if (!base) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    let slug = base;
    for (let n = 2; (await orm.em.count(IceCream, { slug })) > 0; n++) slug = `${base}-${n}`;
    const iceCream = orm.em.create(IceCream, { slug, name, description: field(req, 'description'), sizes: await sizesById(sizeIds(req)) });
    await orm.em.flush();
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Edit a flavour's name and description, and its slug if one is posted (the admin form has no
  // slug field; `curl -d slug=...` has): the row is read before the flush and after it, so the
  // old URL is invalidated with the new one.
  router.post('/ice-cream/:id', async (req, res) => {
    const iceCream = await orm.em.findOne(IceCream, { id: idParam(req) });
    if (!iceCream) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    iceCream.name = name;
    iceCream.description = field(req, 'description');
    if (field(req, 'slug')) {
      const slug = slugify(field(req, 'slug'));
      if (!slug) return void badRequest(res, 'A slug is made of letters, digits and dashes');
      const other = await orm.em.findOne(IceCream, { slug });
      if (other && other !== iceCream) return void badRequest(res, `Another flavour has the slug ${slug}`);
      iceCream.slug = slug;
    }
    await orm.em.flush();
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Choose a flavour's sizes: the collection is replaced, and MikroORM writes the links removed
  // and added; page-dumper invalidates the flavour and every size on either side of a change.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    const iceCream = await orm.em.findOne(IceCream, { id: idParam(req) }, { populate: ['sizes'] });
    if (!iceCream) return void notFound(res);
    iceCream.sizes.set(await sizesById(sizeIds(req)));
    await orm.em.flush();
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Delete a flavour: its pages, with its sizes (its links, which the database deletes with it),
  // are read before the DELETE runs.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const iceCream = await orm.em.findOne(IceCream, { id: idParam(req) });
    if (!iceCream) return void notFound(res);
    orm.em.remove(iceCream);
    await orm.em.flush();
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too (Size.dependentPaths names them).
  router.post('/sizes/:id', async (req, res) => {
    const size = await orm.em.findOne(Size, { id: idParam(req) });
    if (!size) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    size.name = name;
    await orm.em.flush();
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
