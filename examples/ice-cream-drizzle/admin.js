/**
 * The admin: forms that write through the Drizzle database wrapped by drizzleDumper(). It lives
 * under /admin/, which the dumper ignores by default (X-Cache: BYPASS). Nothing here calls the
 * dumper: the wrapper sees every insert, update and delete, and invalidates the pages of the rows
 * it changed (a flavour's sizes are rows of the junction table ice_cream_size).
 *
 * better-sqlite3 is synchronous, and so are Drizzle's transactions on it: the writes inside one
 * run with `.run()`, `.get()`, `.all()`, and their invalidation finishes after `transaction()`
 * has returned. `await drizzleSettled(db)` waits for it before the redirect, so the page the
 * browser goes back to is fresh. Writes outside a transaction are awaited: they resolve once
 * their pages are invalidated.
 */
import { and, asc, eq, inArray, notInArray } from 'drizzle-orm';
import express, { Router } from 'express';
import { drizzleSettled } from 'page-dumper/drizzle';
import * as views from '../ice-cream/views.js';
import { asIceCream, asSize, withSizes } from './models.js';
import { iceCream, iceCreamSize, size } from './schema.js';

/** @param {import('drizzle-orm/better-sqlite3').BetterSQLite3Database<typeof import('./schema.js')>} db the database wrapped by drizzleDumper() */
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
    const [iceCreams, sizes] = await Promise.all([
      db.query.iceCream.findMany({ with: withSizes, orderBy: [asc(iceCream.name)] }),
      db.select().from(size).orderBy(asc(size.id)),
    ]);
    res.type('html').send(views.admin({ iceCreams: iceCreams.map(asIceCream), sizes: sizes.map(asSize) }));
  });

  // Create a flavour and its links to its sizes, in one transaction: each insert invalidates as
  // it runs, and again after the commit.
  router.post('/ice-cream/', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const base = slugify(field(req, 'slug') || name);
    if (!base) return void badRequest(res, 'A flavour needs a slug of letters, digits and dashes');
    const sizes = sizeIds(req);
    const id = db.transaction((tx) => {
      let slug = base;
      for (let n = 2; tx.select({ id: iceCream.id }).from(iceCream).where(eq(iceCream.slug, slug)).get(); n++) slug = `${base}-${n}`;
      const row = tx.insert(iceCream).values({ slug, name, description: field(req, 'description') }).returning({ id: iceCream.id }).get();
      const known = sizes.length === 0 ? [] : tx.select({ id: size.id }).from(size).where(inArray(size.id, sizes)).all();
      if (known.length > 0) tx.insert(iceCreamSize).values(known.map((s) => ({ iceCreamId: row.id, sizeId: s.id }))).run();
      return row.id;
    });
    await drizzleSettled(db);
    back(res, `#ice-cream-${id}`);
  });

  // Edit a flavour's name and description, and its slug if one is posted (the admin form has no
  // slug field; `curl -d slug=...` has): the update passes the row before and after to
  // dependentPaths, so the old URL is invalidated with the new one.
  router.post('/ice-cream/:id', async (req, res) => {
    const id = idParam(req);
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A flavour needs a name');
    const changes = { name, description: field(req, 'description') };
    if (field(req, 'slug')) {
      const slug = slugify(field(req, 'slug'));
      if (!slug) return void badRequest(res, 'A slug is made of letters, digits and dashes');
      const other = db.select({ id: iceCream.id }).from(iceCream).where(eq(iceCream.slug, slug)).get();
      if (other && other.id !== id) return void badRequest(res, `Another flavour has the slug ${slug}`);
      changes.slug = slug;
    }
    const updated = await db.update(iceCream).set(changes).where(eq(iceCream.id, id)).returning({ id: iceCream.id });
    if (updated.length === 0) return void notFound(res);
    back(res, `#ice-cream-${id}`);
  });

  // Choose a flavour's sizes: the links removed and the links added are rows of ice_cream_size,
  // each invalidating its flavour's page and its size's page.
  router.post('/ice-cream/:id/sizes', async (req, res) => {
    const id = idParam(req);
    if (!db.select({ id: iceCream.id }).from(iceCream).where(eq(iceCream.id, id)).get()) return void notFound(res);
    const wanted = sizeIds(req);
    db.transaction((tx) => {
      const known = wanted.length === 0 ? [] : tx.select({ id: size.id }).from(size).where(inArray(size.id, wanted)).all();
      const keep = known.map((s) => s.id);
      // The links no longer wanted: read (their pages computed) before they go.
      tx.delete(iceCreamSize)
        .where(keep.length > 0 ? and(eq(iceCreamSize.iceCreamId, id), notInArray(iceCreamSize.sizeId, keep)) : eq(iceCreamSize.iceCreamId, id))
        .run();
      if (keep.length > 0) {
        tx.insert(iceCreamSize)
          .values(keep.map((sizeId) => ({ iceCreamId: id, sizeId })))
          .onConflictDoNothing()
          .run();
      }
    });
    await drizzleSettled(db);
    back(res, `#ice-cream-${id}`);
  });

  // Delete a flavour: its pages and its sizes' pages are computed before the delete (its links,
  // which the database deletes with it, still exist) and invalidated after it.
  router.post('/ice-cream/:id/delete', async (req, res) => {
    const deleted = await db.delete(iceCream).where(eq(iceCream.id, idParam(req))).returning({ id: iceCream.id });
    if (deleted.length === 0) return void notFound(res);
    back(res);
  });

  // Rename a size: every flavour page that lists it changes too.
  router.post('/sizes/:id', async (req, res) => {
    const name = field(req, 'name');
    if (!name) return void badRequest(res, 'A size needs a name');
    const updated = await db.update(size).set({ name }).where(eq(size.id, idParam(req))).returning({ id: size.id });
    if (updated.length === 0) return void notFound(res);
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
