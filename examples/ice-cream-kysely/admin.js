/**
 * The admin: forms that write through the Kysely wrapped by kyselyDumper(). It lives under
 * /admin/, which the dumper ignores by default (X-Cache: BYPASS). Nothing here calls the dumper:
 * the wrapper sees every insert, update and delete, and invalidates the pages of the rows it
 * changed (a flavour's sizes are rows of the junction table ice_cream_size).
 */
import express, { Router } from 'express';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize } from './models.js';

/** @param {import('kysely').Kysely<any>} db the Kysely wrapped by kyselyDumper() */
export function adminRoutes(db) {
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

  router.get('/', async (req, res) => {
    const [iceCreams, sizes, links] = await Promise.all([
      db.selectFrom('ice_cream').selectAll().orderBy('name').execute(),
      db.selectFrom('size').selectAll().orderBy('id').execute(),
      db.selectFrom('ice_cream_size').selectAll().execute(),
    ]);
    const withSizes = iceCreams.map((i) => asIceCream({ ...i, sizes: sizes.filter((s) => links.some((l) => l.ice_cream_id === i.id && l.size_id === s.id)) }));
    res.type('html').send(views.admin({ iceCreams: withSizes, sizes: sizes.map(asSize) }));
  });

  // Create a flavour and its links to its sizes, in one transaction.
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const base = slugify(field(req, 'slug') || name);
    if (!base) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    const id = await db.transaction().execute(async (trx) => {
      let slug = base;
      for (let n = 2; await trx.selectFrom('ice_cream').select('id').where('slug', '=', slug).executeTakeFirst(); n++) slug = `${base}-${n}`;
      const row = await trx.insertInto('ice_cream').values({ slug, name, description: field(req, 'description') }).returning('id').executeTakeFirstOrThrow();
      const sizes = sizeIds(req);
      if (sizes.length > 0) await trx.insertInto('ice_cream_size').values(sizes.map((size_id) => ({ ice_cream_id: row.id, size_id }))).execute();
      return row.id;
    });
    back(res, `#ice-cream-${id}`);
  });

  // Edit a flavour's name and description.
  router.post('/ice-cream/:id', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const result = await db.updateTable('ice_cream').set({ name, description: field(req, 'description') }).where('id', '=', idParam(req)).executeTakeFirst();
    if (result.numUpdatedRows === 0n) return void notFound(res);
    back(res, `#ice-cream-${idParam(req)}`);
  });

  // Choose a flavour's sizes: the links removed and the links added are rows of ice_cream_size,
  // each invalidating its flavour's page and its size's page.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    const id = idParam(req);
    if (!(await db.selectFrom('ice_cream').select('id').where('id', '=', id).executeTakeFirst())) return void notFound(res);
    const wanted = sizeIds(req);
    await db.transaction().execute(async (trx) => {
      let removed = trx.deleteFrom('ice_cream_size').where('ice_cream_id', '=', id);
      if (wanted.length > 0) removed = removed.where('size_id', 'not in', wanted);
      await removed.execute();
      if (wanted.length > 0) {
        await trx
          .insertInto('ice_cream_size')
          .values(wanted.map((size_id) => ({ ice_cream_id: id, size_id })))
          .onConflict((oc) => oc.columns(['ice_cream_id', 'size_id']).doNothing())
          .execute();
      }
    });
    back(res, `#ice-cream-${id}`);
  });

  // Delete a flavour: its pages and its sizes' pages are computed before the delete (its links,
  // which the database deletes with it, still exist) and invalidated after it.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const result = await db.deleteFrom('ice_cream').where('id', '=', idParam(req)).executeTakeFirst();
    if (result.numDeletedRows === 0n) return void notFound(res);
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too.
  router.post('/sizes/:id', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    const result = await db.updateTable('size').set({ name }).where('id', '=', idParam(req)).executeTakeFirst();
    if (result.numUpdatedRows === 0n) return void notFound(res);
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
