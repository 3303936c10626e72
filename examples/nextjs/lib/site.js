/**
 * The Next.js example: App Router route handlers wrapped with dumperFetch (see docs/frameworks.md).
 *
 *   npm run build:if-needed
 *   NEXT_TELEMETRY_DISABLED=1 npx next build examples/nextjs
 *   npx next start examples/nextjs           # http://localhost:3000/ice-cream (PORT=0: any free port)
 *
 * The site's data and its dumper, one of each per server process. A module is evaluated once per
 * process in a production build, but `next dev` re-evaluates modules as files change: keeping the
 * instances on globalThis makes every route handler (and every reload) share the same ones.
 */
import { createDumper } from 'page-dumper';

export class IceCream {
  constructor(slug, name, price) {
    this.slug = slug;
    this.name = name;
    this.price = price;
  }
  // The pages that show this flavour: `await dumper.changed(flavour)` invalidates them.
  dependentPaths() {
    return ['/ice-cream', `/ice-cream/${this.slug}`];
  }
  // ... and the pages that tagged themselves with it (the specials page).
  dependentTags() {
    return [`flavour:${this.slug}`];
  }
}

function createSite() {
  // trackRenders: this site calls dumper.tag(), so track every render from the start.
  const dumper = createDumper({ trackRenders: true });
  dumper.register(IceCream);
  const flavours = new Map(
    [new IceCream('vanilla', 'Vanilla', 3), new IceCream('chocolate', 'Chocolate', 3.5), new IceCream('pistachio', 'Pistachio', 4)].map((f) => [f.slug, f]),
  );
  return { dumper, flavours, specials: ['vanilla'] };
}

export const site = (globalThis.__pageDumperExample ??= createSite());
export const { dumper, flavours } = site;

export function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function html(title, body, status = 200) {
  const page = `<!doctype html><title>${escape(title)}</title><h1>${escape(title)}</h1>${body}<footer>rendered at <time>${new Date().toISOString()}</time></footer>`;
  return new Response(page, { status, headers: { 'content-type': 'text/html; charset=utf-8' } });
}
