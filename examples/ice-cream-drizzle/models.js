/**
 * Which pages show a flavour, a size, or a link between them. Drizzle tables are registered by
 * their SQL name (`ice_cream`, not the schema's `iceCream`); `row` is the row as
 * `db.select().from(table)` returns it: the schema's field names (`iceCreamId`, not `ice_cream_id`).
 *
 * What the paths need besides the row's columns is read through the unwrapped Drizzle database,
 * synchronously (`.all()`, `.get()`): better-sqlite3 has one connection, and a write through the
 * wrapped database calls `dependentPaths` synchronously, on that connection: a delete's rows and
 * links are read before the DELETE runs, and a write in a transaction is seen by it.
 */
import { asc, eq } from 'drizzle-orm';
import { iceCream, iceCreamSize, size } from './schema.js';

export const iceCreamUrl = (row) => `/ice-cream/${row.slug}/`;
export const sizeUrl = (row) => `/sizes/${row.slug}/`;

/**
 * @param {import('page-dumper').Dumper} dumper
 * @param {import('drizzle-orm/better-sqlite3').BetterSQLite3Database<any>} lookup the database, not wrapped (reads only)
 */
export function registerModels(dumper, lookup) {
  const sizesOf = (iceCreamId) =>
    lookup.select({ slug: size.slug }).from(size).innerJoin(iceCreamSize, eq(iceCreamSize.sizeId, size.id)).where(eq(iceCreamSize.iceCreamId, iceCreamId)).all();
  const iceCreamsOf = (sizeId) =>
    lookup.select({ slug: iceCream.slug }).from(iceCream).innerJoin(iceCreamSize, eq(iceCreamSize.iceCreamId, iceCream.id)).where(eq(iceCreamSize.sizeId, sizeId)).all();

  dumper.register('ice_cream', {
    /**
     * The list, the flavour's page, and the page of every size it comes in (a size page lists
     * its flavours). An update passes the row before and after: a new slug invalidates the old
     * URL too. A delete passes the row before it goes, while its links (deleted with it by
     * ON DELETE CASCADE, which the wrapper does not see) still exist.
     */
    *dependentPaths(row) {
      yield '/ice-cream/';
      yield iceCreamUrl(row);
      for (const s of sizesOf(row.id)) yield sizeUrl(s);
    },
  });
  dumper.register('size', {
    /** Every flavour in this size, the size itself, and both lists (they show size names). */
    *dependentPaths(row) {
      for (const i of iceCreamsOf(row.id)) yield iceCreamUrl(i);
      yield sizeUrl(row);
      yield '/sizes/';
      yield '/ice-cream/';
    },
  });
  // The junction table: adding or removing a link changes the flavour's page, its size's page,
  // and the list (it shows each flavour's sizes).
  dumper.register('ice_cream_size', {
    *dependentPaths(link) {
      const i = lookup.select({ slug: iceCream.slug }).from(iceCream).where(eq(iceCream.id, link.iceCreamId)).get();
      const s = lookup.select({ slug: size.slug }).from(size).where(eq(size.id, link.sizeId)).get();
      if (i) yield iceCreamUrl(i);
      if (s) yield sizeUrl(s);
      yield '/ice-cream/';
    },
  });
}

/** The relational query of a flavour with its sizes, for `db.query.iceCream.findMany/findFirst`. */
export const withSizes = { links: { with: { size: true }, orderBy: [asc(iceCreamSize.sizeId)] } };

/**
 * The rows as the shared views (../ice-cream/views.js) want them: with `getAbsoluteUrl()`, and a
 * flavour's `sizes` (from its `links`, when the query read them).
 * @param {any} row
 */
export function asIceCream(row) {
  const { links, ...rest } = row;
  const sizes = row.sizes ?? links?.map((l) => l.size);
  return { ...rest, getAbsoluteUrl: () => iceCreamUrl(row), ...(sizes && { sizes: sizes.map(asSize) }) };
}

/** @param {any} row */
export function asSize(row) {
  const { links, ...rest } = row;
  const iceCreams = row.iceCreams ?? links?.map((l) => l.iceCream);
  return { ...rest, getAbsoluteUrl: () => sizeUrl(row), ...(iceCreams && { iceCreams: iceCreams.map(asIceCream) }) };
}
