/**
 * The admin: forms that write through the extended Prisma Client. It lives under /admin/, which
 * the dumper ignores by default (X-Cache: BYPASS). Nothing here calls the dumper: the extension
 * sees every write, nested relation writes included, and invalidates the pages of the rows it
 * changed.
 */
import express, { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize } from './models.js';

/** @param {import('./generated/client.js').PrismaClient} prisma the client extended with prismaDumper() */
export function adminRoutes(prisma) {
  const router = Router();
  router.use(express.urlencoded({ extended: false }));

  const back = (res, anchor = '') => res.redirect(303, `/admin/${anchor}`);
  const field = (req, name) => {
    const v = req.body?.[name];
    return typeof v === 'string' ? v.trim() : '';
  };
  /** The checked sizes: `size=1&size=3`, as `[{ id: 1 }, { id: 3 }]`. */
  const sizeIds = (req) => {
    const v = req.body?.size;
    return (Array.isArray(v) ? v : v === undefined ? [] : [v])
      .map(Number)
      .filter(Number.isInteger)
      .map((id) => ({ id }));
  };
  const idParam = (req) => {
    const id = Number(req.params.id);
    return Number.isInteger(id) ? id : -1;
  };
  const badRequest = (res, message) => res.status(400).type('text').send(message);
  const notFound = (res) => res.status(404).type('text').send('No such row');

  router.get('/', async (req, res) => {
    const [iceCreams, sizes] = await Promise.all([
      prisma.iceCream.findMany({ include: { sizes: true }, orderBy: { name: 'asc' } }),
      prisma.size.findMany({ orderBy: { id: 'asc' } }),
    ]);
    res.type('html').send(views.admin({ iceCreams: iceCreams.map(asIceCream), sizes: sizes.map(asSize) }));
  });

  // Create a flavour, connected to its sizes (a nested write: the sizes' pages are invalidated too).
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const base = slugify(field(req, 'slug') || name);
    if (!base) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    let slug = base;
    for (let n = 2; await prisma.iceCream.findUnique({ where: { slug } }); n++) slug = `${base}-${n}`;
    const iceCream = await prisma.iceCream.create({
      data: { slug, name, description: field(req, 'description'), sizes: { connect: sizeIds(req) } },
    });
    back(res, `#ice-cream-${iceCream.id}`);
  });

  // Edit a flavour's name and description.
  router.post('/ice-cream/:id', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const { count } = await prisma.iceCream.updateMany({ where: { id: idParam(req) }, data: { name, description: field(req, 'description') } });
    if (count === 0) return void notFound(res);
    back(res, `#ice-cream-${idParam(req)}`);
  });

  // Choose a flavour's sizes: `set` replaces the relation. The sizes removed and the sizes added
  // are invalidated, as is the flavour.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    if (!(await prisma.iceCream.findUnique({ where: { id: idParam(req) } }))) return void notFound(res);
    await prisma.iceCream.update({ where: { id: idParam(req) }, data: { sizes: { set: sizeIds(req) } } });
    back(res, `#ice-cream-${idParam(req)}`);
  });

  // Delete a flavour: its pages and its sizes' pages are computed before the delete (the rows
  // still exist) and invalidated after it.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const { count } = await prisma.iceCream.deleteMany({ where: { id: idParam(req) } });
    if (count === 0) return void notFound(res);
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too.
  router.post('/sizes/:id', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    if (!(await prisma.size.findUnique({ where: { id: idParam(req) } }))) return void notFound(res);
    await prisma.size.update({ where: { id: idParam(req) }, data: { name } });
    back(res, `#size-${idParam(req)}`);
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
