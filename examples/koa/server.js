/**
 * page-dumper with Koa 3 (and @koa/router): a small ice cream site whose pages are cached forever
 * and invalidated the moment the admin changes what they show.
 *
 *   npm run build:if-needed && node examples/koa/server.js    # http://localhost:3000/ice-cream
 *   PORT=0 node examples/koa/server.js                        # any free port
 *
 *   curl -si localhost:3000/ice-cream | grep -i x-cache      # MISS, then HIT
 *   curl -si -X POST localhost:3000/admin/ice-cream/vanilla -H 'content-type: application/json' -d '{"name":"Vanilla bean"}'
 *   curl -si -X POST localhost:3000/admin/specials -H 'content-type: application/json' -d '{"slugs":["chocolate"]}'
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import { Router } from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import { createDumper } from 'page-dumper';
import { koaDumper } from 'page-dumper/koa';

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

export function createApp() {
  // trackRenders: this site calls dumper.tag(), so track every render from the start.
  const dumper = createDumper({ trackRenders: true });
  dumper.register(IceCream);

  const flavours = new Map(
    [new IceCream('vanilla', 'Vanilla', 3), new IceCream('chocolate', 'Chocolate', 3.5), new IceCream('pistachio', 'Pistachio', 4)].map((f) => [f.slug, f]),
  );
  let specials = ['vanilla'];

  const router = new Router();

  router.get('/ice-cream', (ctx) => {
    const items = [...flavours.values()].map((f) => `<li><a href="/ice-cream/${f.slug}">${escape(f.name)}</a></li>`);
    ctx.type = 'html';
    ctx.body = page('Flavours', `<ul>${items.join('')}</ul>`);
  });

  router.get('/ice-cream/:slug', (ctx) => {
    const flavour = flavours.get(ctx.params.slug);
    ctx.type = 'html';
    if (!flavour) {
      ctx.status = 404; // never stored
      ctx.body = page('Not found', 'No such flavour.');
      return;
    }
    ctx.body = page(flavour.name, `<p>${escape(flavour.name)}: €${flavour.price}</p>`);
  });

  router.get('/specials', (ctx) => {
    // No path names this page's data, so it tags itself: invalidateTags(['specials']) reaches it,
    // and so does changed(flavour) for a flavour it shows (IceCream's dependentTags).
    dumper.tag('specials', ...specials.map((slug) => `flavour:${slug}`));
    const items = specials.map((slug) => flavours.get(slug)).filter(Boolean).map((f) => `<li>${escape(f.name)}</li>`);
    ctx.type = 'html';
    ctx.body = page("This week's specials", `<ul>${items.join('')}</ul>`);
  });

  // /admin is never cached (the default `ignore`), and POSTs always go to the app.
  router.post('/admin/ice-cream/:slug', async (ctx) => {
    const flavour = flavours.get(ctx.params.slug);
    if (!flavour) {
      ctx.status = 404;
      ctx.body = { error: 'no such flavour' };
      return;
    }
    const { name, price } = ctx.request.body ?? {};
    if (name !== undefined) flavour.name = String(name);
    if (price !== undefined) flavour.price = Number(price);
    await dumper.changed(flavour); // what an ORM integration does on every save
    ctx.body = flavour;
  });

  router.post('/admin/specials', async (ctx) => {
    specials = (ctx.request.body?.slugs ?? []).map(String).filter((slug) => flavours.has(slug));
    await dumper.invalidateTags(['specials']);
    ctx.body = { specials };
  });

  const app = new Koa();
  // First: a hit is written straight to the response and nothing after this runs for it.
  app.use(koaDumper(dumper));
  app.use(bodyParser());
  app.use(router.routes());
  app.use(router.allowedMethods());

  return { app, dumper, flavours };
}

/** Starts the site: `const { url, close } = await start({ port: 0 })`. */
export async function start({ port = 3000, host } = {}) {
  const { app, dumper } = createApp();
  // Alternatively, instead of app.use(koaDumper(dumper)), the front door answers hits before Koa
  // runs at all: http.createServer(withDumper(dumper, app.callback())), from 'page-dumper/node'.
  const server = http.createServer(app.callback());
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await dumper.close();
  };
  return { url: `http://${host ?? 'localhost'}:${server.address().port}/ice-cream`, app, dumper, close };
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
    console.error(`page-dumper koa example: port ${port} is already in use; start it on another one with PORT=<port>`);
    process.exit(1);
  });
  console.log(`page-dumper koa example: ${url}`);
  const stop = () => close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
