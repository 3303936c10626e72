/**
 * page-dumper with Hono 4 on Node (@hono/node-server): a small ice cream site whose pages are
 * cached forever and invalidated the moment the admin changes what they show.
 *
 *   npm run build:if-needed && node examples/hono/server.js    # http://localhost:3000/ice-cream
 *   PORT=0 node examples/hono/server.js                        # any free port
 *   FRONT_DOOR=1 node examples/hono/server.js                  # dumperFetch(dumper, app.fetch) instead of the middleware
 *
 *   curl -si localhost:3000/ice-cream | grep -i x-cache       # MISS, then HIT
 *   curl -si -X POST localhost:3000/admin/ice-cream/vanilla -H 'content-type: application/json' -d '{"name":"Vanilla bean"}'
 *   curl -si -X POST localhost:3000/admin/specials -H 'content-type: application/json' -d '{"slugs":["chocolate"]}'
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createDumper } from 'page-dumper';
import { dumperFetch } from 'page-dumper/fetch';
import { honoDumper } from 'page-dumper/hono';

class IceCream {
  constructor(slug, name, price) {
    this.slug = slug;
    this.name = name;
    this.price = price;
  }
  // The pages that show this flavour: `await dumper.changed(flavour)` invalidates them.
  dependentPaths() {
    return ['/ice-cream', `/ice-cream/${this.slug}`];
  }
  // ... and the pages that tagged themselves with it (the specials page, below).
  dependentTags() {
    return [`flavour:${this.slug}`];
  }
}

/**
 * `frontDoor: false` (the default): `app.use(honoDumper(dumper))`, and `fetch` is `app.fetch`.
 * `frontDoor: true`: no middleware, and `fetch` is `dumperFetch(dumper, app.fetch)`, which answers
 * hits before Hono routes at all; the same handler works on Bun, Deno and Workers.
 */
export function createApp({ frontDoor = false } = {}) {
  // trackRenders: this site calls dumper.tag(), so track every render from the start.
  const dumper = createDumper({ trackRenders: true });
  dumper.register(IceCream);

  const flavours = new Map(
    [new IceCream('vanilla', 'Vanilla', 3), new IceCream('chocolate', 'Chocolate', 3.5), new IceCream('pistachio', 'Pistachio', 4)].map((f) => [f.slug, f]),
  );
  let specials = ['vanilla'];

  const app = new Hono();
  // First: a hit is answered before any other middleware or route runs.
  if (!frontDoor) app.use(honoDumper(dumper));

  app.get('/ice-cream', (c) => {
    const items = [...flavours.values()].map((f) => `<li><a href="/ice-cream/${f.slug}">${escape(f.name)}</a></li>`);
    return c.html(page('Flavours', `<ul>${items.join('')}</ul>`));
  });

  app.get('/ice-cream/:slug', (c) => {
    const flavour = flavours.get(c.req.param('slug'));
    if (!flavour) return c.html(page('Not found', 'No such flavour.'), 404); // never stored
    return c.html(page(flavour.name, `<p>${escape(flavour.name)}: €${flavour.price}</p>`));
  });

  app.get('/specials', (c) => {
    // No path names this page's data, so it tags itself: invalidateTags(['specials']) reaches it,
    // and so does changed(flavour) for a flavour it shows (IceCream's dependentTags).
    dumper.tag('specials', ...specials.map((slug) => `flavour:${slug}`));
    const items = specials.map((slug) => flavours.get(slug)).filter(Boolean).map((f) => `<li>${escape(f.name)}</li>`);
    return c.html(page("This week's specials", `<ul>${items.join('')}</ul>`));
  });

  // /admin is never cached (the default `ignore`), and POSTs always go to the app.
  app.post('/admin/ice-cream/:slug', async (c) => {
    const flavour = flavours.get(c.req.param('slug'));
    if (!flavour) return c.json({ error: 'no such flavour' }, 404);
    const { name, price } = await c.req.json();
    if (name !== undefined) flavour.name = String(name);
    if (price !== undefined) flavour.price = Number(price);
    await dumper.changed(flavour); // what an ORM integration does on every save
    return c.json(flavour);
  });

  app.post('/admin/specials', async (c) => {
    const { slugs = [] } = await c.req.json();
    specials = slugs.map(String).filter((slug) => flavours.has(slug));
    await dumper.invalidateTags(['specials']);
    return c.json({ specials });
  });

  const fetch = frontDoor ? dumperFetch(dumper, app.fetch) : app.fetch;
  return { app, fetch, dumper, flavours };
}

/** Starts the site: `const { url, close } = await start({ port: 0 })`. */
export async function start({ port = 3000, host, frontDoor } = {}) {
  const { app, fetch, dumper } = createApp({ frontDoor });
  let server;
  const info = await new Promise((resolve, reject) => {
    server = serve({ fetch, port, hostname: host }, resolve);
    server.once('error', reject);
  });
  const close = async () => {
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
    await dumper.close();
  };
  return { url: `http://${host ?? 'localhost'}:${info.port}/ice-cream`, app, dumper, close };
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><title>${escape(title)}</title><h1>${escape(title)}</h1>${body}<footer>rendered at <time>${new Date().toISOString()}</time></footer>`;
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const port = Number(process.env.PORT ?? 3000);
  const { url, close } = await start({ port, host: process.env.HOST, frontDoor: process.env.FRONT_DOOR === '1' }).catch((error) => {
    // One line for the usual mistake (another server on the port); anything else as it is.
    if (error.code !== 'EADDRINUSE') throw error;
    console.error(`page-dumper hono example: port ${port} is already in use; start it on another one with PORT=<port>`);
    process.exit(1);
  });
  console.log(`page-dumper hono example: ${url}`);
  const stop = () => close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
