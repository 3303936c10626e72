/**
 * The admin: forms that write through Sequelize models. It lives under /admin/, which the dumper
 * ignores by default (X-Cache: BYPASS). Nothing here calls the dumper: page-dumper/sequelize
 * (installed in server.js) sees every write, from the hooks of the Sequelize instance, and
 * invalidates the public pages that show the rows.
 */
import express, { Router } from 'express';
import { Op } from 'sequelize';
import * as views from '../ice-cream/views.js';
import { IceCream, Size } from './models.js';

/** @param {import('sequelize').Sequelize} sequelize */
export function adminRoutes(sequelize) {
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
  const chosenSizes = (req) => Size.findAll({ where: { id: { [Op.in]: sizeIds(req) } } });

  router.get('/', async (req, res) => {
    const [iceCreams, sizes] = await Promise.all([
      IceCream.findAll({ include: [{ model: Size, as: 'sizes' }], order: [['name', 'ASC']] }),
      Size.findAll({ order: [['id', 'ASC']] }),
    ]);
    res.type('html').send(views.admin({ iceCreams, sizes }));
  });

  // Create a flavour and its links to its sizes, in one transaction: each write invalidates its
  // pages as it runs (the links: the flavour's and each size's), and again after the commit.
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const base = slugify(field(req, 'slug') || name);
    if (!base) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    const sizes = await chosenSizes(req);
    const iceCream = await sequelize.transaction(async (transaction) => {
      let slug = base;
      for (let n = 2; await IceCream.findOne({ where: { slug }, transaction }); n++) slug = `${base}-${n}`;
      const created = await IceCream.create({ slug, name, description: field(req, 'description') }, { transaction });
      await created.setSizes(sizes, { transaction });
      return created;
    });
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Edit a flavour's name and description, and its slug if one is posted (the admin form has no
  // slug field; `curl -d slug=...` has): dependentPaths runs on the row before and after the
  // update, so the old URL is invalidated with the new one.
  router.post('/ice-cream/:id', async (req, res) => {
    const iceCream = await IceCream.findByPk(idParam(req));
    if (!iceCream) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const changes = { name, description: field(req, 'description') };
    if (field(req, 'slug')) {
      const slug = slugify(field(req, 'slug'));
      if (!slug) return void badRequest(res, 'A slug is made of letters, digits and dashes');
      const other = await IceCream.findOne({ where: { slug } });
      if (other && other.id !== iceCream.id) return void badRequest(res, `Another flavour has the slug ${slug}`);
      changes.slug = slug;
    }
    await iceCream.update(changes);
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Choose a flavour's sizes: setSizes() deletes the links no longer wanted and inserts the new
  // ones (rows of the junction model), each invalidating its flavour's and its size's pages.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    const iceCream = await IceCream.findByPk(idParam(req));
    if (!iceCream) return void notFound(res);
    await iceCream.setSizes(await chosenSizes(req));
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Delete a flavour: its pages (and its sizes' pages) are found before the delete, while its
  // links still exist, and invalidated after it.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const iceCream = await IceCream.findByPk(idParam(req));
    if (!iceCream) return void notFound(res);
    await iceCream.destroy();
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too.
  router.post('/sizes/:id', async (req, res) => {
    const size = await Size.findByPk(idParam(req));
    if (!size) return void notFound(res);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    await size.update({ name });
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
