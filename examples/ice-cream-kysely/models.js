/**
 * Which pages show a flavour, a size, or a link between them. Kysely models are tables,
 * registered by their SQL name; `row` is the row as `selectAll()` returns it (column names).
 * What the paths need besides the row's columns is read with `lookup`, the better-sqlite3 handle
 * (synchronously, on the connection the write runs on: it sees the write's transaction).
 */

export const iceCreamUrl = (iceCream) => `/ice-cream/${iceCream.slug}/`;
export const sizeUrl = (size) => `/sizes/${size.slug}/`;

/**
 * @param {import('page-dumper').Dumper} dumper
 * @param {import('better-sqlite3').Database} lookup
 */
export function registerModels(dumper, lookup) {
  const sizesOf = lookup.prepare('SELECT size.slug FROM size JOIN ice_cream_size ON size_id = size.id WHERE ice_cream_id = ?');
  const iceCreamsOf = lookup.prepare('SELECT ice_cream.slug FROM ice_cream JOIN ice_cream_size ON ice_cream_id = ice_cream.id WHERE size_id = ?');
  const iceCream = lookup.prepare('SELECT slug FROM ice_cream WHERE id = ?');
  const size = lookup.prepare('SELECT slug FROM size WHERE id = ?');

  dumper.register('ice_cream', {
    /**
     * The list, the flavour's page, and the page of every size it comes in (a size page lists
     * its flavours). Read before a delete, while its links, which go with it, still exist.
     */
    *dependentPaths(row) {
      yield '/ice-cream/';
      yield iceCreamUrl(row);
      for (const s of sizesOf.all(row.id)) yield sizeUrl(s);
    },
  });
  dumper.register('size', {
    /** Like the Python example: every flavour in this size, the size itself, and both lists (they show size names). */
    *dependentPaths(row) {
      for (const i of iceCreamsOf.all(row.id)) yield iceCreamUrl(i);
      yield sizeUrl(row);
      yield '/sizes/';
      yield '/ice-cream/';
    },
  });
  // The junction table: adding or removing a link changes the flavour's page, its size's page,
  // and the list (it shows each flavour's sizes).
  dumper.register('ice_cream_size', {
    *dependentPaths(link) {
      const i = iceCream.get(link.ice_cream_id);
      const s = size.get(link.size_id);
      if (i) yield iceCreamUrl(i);
      if (s) yield sizeUrl(s);
      yield '/ice-cream/';
    },
  });
}

/**
 * The rows as the shared views (../ice-cream/views.js) want them: with `getAbsoluteUrl()`.
 * @param {any} row
 */
export function asIceCream(row) {
  return { ...row, getAbsoluteUrl: () => iceCreamUrl(row), ...(row.sizes && { sizes: row.sizes.map(asSize) }) };
}

/** @param {any} row */
export function asSize(row) {
  return { ...row, getAbsoluteUrl: () => sizeUrl(row), ...(row.iceCreams && { iceCreams: row.iceCreams.map(asIceCream) }) };
}
