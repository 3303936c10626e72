/**
 * page-dumper with Fastify 5: a small ice cream site whose pages are cached forever and
 * invalidated the moment the admin changes what they show.
 *
 *   npm run build:if-needed && node examples/fastify/server.js    # http://localhost:3000/ice-cream
 *   PORT=0 node examples/fastify/server.js                        # any free port
 *
 *   curl -si localhost:3000/ice-cream | grep -i x-cache          # MISS, then HIT
 *   curl -si -X POST localhost:3000/admin/ice-cream/vanilla -H 'content-type: application/json' -d '{"name":"Vanilla bean"}'
 *   curl -si -X POST localhost:3000/admin/specials -H 'content-type: application/json' -d '{"slugs":["chocolate"]}'
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { createDumper } from 'page-dumper';
import { fastifyDumper } from 'page-dumper/fastify';

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

export async function createApp() {
  // trackRenders: this site calls dumper.tag(), so track every render from the start.
  const dumper = createDumper({ trackRenders: true });
  dumper.register(IceCream);

  const flavours = new Map(
    [new IceCream('vanilla', 'Vanilla', 3), new IceCream('chocolate', 'Chocolate', 3.5), new IceCream('pistachio', 'Pistachio', 4)].map((f) => [f.slug, f]),
  );
  let specials = ['vanilla'];

  const app = Fastify();
  // Before the routes: hits are answered in onRequest, before body parsing, validation and handlers.
  await app.register(fastifyDumper, { dumper });
  app.addHook('onClose', () => dumper.close());

  app.get('/ice-cream', async (request, reply) => {
    const items = [...flavours.values()].map((f) => `<li><a href="/ice-cream/${f.slug}">${escape(f.name)}</a></li>`);
    return reply.type('text/html; charset=utf-8').send(page('Flavours', `<ul>${items.join('')}</ul>`));
  });

  app.get('/ice-cream/:slug', async (request, reply) => {
    const flavour = flavours.get(request.params.slug);
    if (!flavour) return reply.code(404).type('text/html; charset=utf-8').send(page('Not found', 'No such flavour.')); // never stored
    return reply.type('text/html; charset=utf-8').send(page(flavour.name, `<p>${escape(flavour.name)}: €${flavour.price}</p>`));
  });

  app.get('/specials', async (request, reply) => {
    // No path names this page's data, so it tags itself: invalidateTags(['specials']) reaches it,
    // and so does changed(flavour) for a flavour it shows (IceCream's dependentTags).
    dumper.tag('specials', ...specials.map((slug) => `flavour:${slug}`));
    const items = specials.map((slug) => flavours.get(slug)).filter(Boolean).map((f) => `<li>${escape(f.name)}</li>`);
    return reply.type('text/html; charset=utf-8').send(page("This week's specials", `<ul>${items.join('')}</ul>`));
  });

  // /admin is never cached (the default `ignore`), and POSTs always go to the app.
  app.post('/admin/ice-cream/:slug', async (request, reply) => {
    const flavour = flavours.get(request.params.slug);
    if (!flavour) return reply.code(404).send({ error: 'no such flavour' });
    const { name, price } = request.body ?? {};
    if (name !== undefined) flavour.name = String(name);
    if (price !== undefined) flavour.price = Number(price);
    await dumper.changed(flavour); // what an ORM integration does on every save
    return flavour;
  });

  app.post('/admin/specials', async (request) => {
    specials = (request.body?.slugs ?? []).map(String).filter((slug) => flavours.has(slug));
    await dumper.invalidateTags(['specials']);
    return { specials };
  });

  return { app, dumper, flavours };
}

/** Starts the site: `const { url, close } = await start({ port: 0 })`. */
export async function start({ port = 3000, host } = {}) {
  const { app, dumper } = await createApp();
  await app.listen({ port, host });
  const { port: actual } = app.server.address();
  return { url: `http://${host ?? 'localhost'}:${actual}/ice-cream`, app, dumper, close: () => app.close() };
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
  const { url, close } = await start({ port, host: process.env.HOST }).catch((error) => {
    // One line for the usual mistake (another server on the port); anything else as it is.
    if (error.code !== 'EADDRINUSE') throw error;
    console.error(`page-dumper fastify example: port ${port} is already in use; start it on another one with PORT=<port>`);
    process.exit(1);
  });
  console.log(`page-dumper fastify example: ${url}`);
  const stop = () => close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
