/**
 * Which pages show a flavour or a size. Prisma rows are plain objects, so the models are
 * registered by name, each with its `dependentPaths(row)`, as in django-dumper; `include` says
 * which relations the rows handed to them carry.
 */

/** The relations `dependentPaths` needs, loaded with every row page-dumper reads for it. */
export const include = {
  IceCream: { sizes: true },
  Size: { iceCreams: true },
};

export const iceCreamUrl = (iceCream) => `/ice-cream/${iceCream.slug}/`;
export const sizeUrl = (size) => `/sizes/${size.slug}/`;

/** @param {import('page-dumper').Dumper} dumper */
export function registerModels(dumper) {
  dumper.register('IceCream', {
    /** The list, the flavour's page, and the page of every size it comes in (a size page lists its flavours). */
    *dependentPaths(iceCream) {
      yield '/ice-cream/';
      yield iceCreamUrl(iceCream);
      for (const size of iceCream.sizes) yield sizeUrl(size);
    },
  });
  dumper.register('Size', {
    /** Like the Python example: every flavour in this size, the size itself, and both lists (they show size names). */
    *dependentPaths(size) {
      for (const iceCream of size.iceCreams) yield iceCreamUrl(iceCream);
      yield sizeUrl(size);
      yield '/sizes/';
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
