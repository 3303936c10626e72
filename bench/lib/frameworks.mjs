// The Fastify, Koa and Hono variants of bench/frameworks.mjs, run by bench/lib/server.mjs like the
// node and Express ones (`node bench/lib/server.mjs fastify-dumper` runs one by hand).
//
// For each framework: `<fw>-bare` serves the page from a bare route (the ceiling of that framework
// on this machine) and `<fw>-dumper` puts page-dumper's adapter in front of an origin route that
// renders the same bytes after `DATA_MS` of simulated data access; the benchmark measures the
// dumper variants on hits only (the origin must render 0 times while they are measured).
// Every variant sends the same three headers: content-type, content-length, etag.
//
// The `-ceiling` variants are diagnostic: each answers from the same place in the framework as
// page-dumper's adapter does (a Fastify onRequest hook, a first Hono middleware, an async fetch
// handler), so the gap between bare and dumper splits into what any adapter there pays and what
// page-dumper adds.
//
// The frameworks are imported lazily, so the node and Express variants do not load them.
import http from 'node:http';
import { CONTENT_TYPE, ETAG, PAGE } from './page.mjs';

/** The three page headers, as an object (Fastify's reply.headers(), Koa's ctx.set(), Hono's c.body()). */
const HEADERS = { 'content-type': CONTENT_TYPE, 'content-length': String(PAGE.length), etag: ETAG };
const ROUTE = '/page/:id';
const PAGE_PREFIX = '/page/';

/**
 * @param {{ made: (options?: object) => import('page-dumper').Dumper, rendered: () => void, dataMs: number }} ctx
 *   made: creates the variant's dumper (its store size is reported with the stats);
 *   rendered: counts one render of the origin.
 * @returns {Record<string, () => Promise<http.Server>>} factories of servers, not yet listening
 */
export function frameworkVariants({ made, rendered, dataMs }) {
  const dataAccess = () => new Promise((resolve) => setTimeout(resolve, dataMs));

  // ---------------------------------------------------------------------------------- Fastify
  /** mode: 'bare' | 'hook' (an onRequest hook sends the bytes) | 'dumper'. */
  async function fastifyApp(mode) {
    const { default: Fastify } = await import('fastify');
    const app = Fastify({ logger: false });
    if (mode === 'hook') {
      app.addHook('onRequest', (req, reply, done) => {
        reply.headers(HEADERS).send(PAGE);
      });
      app.get(ROUTE, (req, reply) => reply.headers(HEADERS).send(PAGE)); // never reached
    } else if (mode === 'dumper') {
      const { fastifyDumper } = await import('page-dumper/fastify');
      await app.register(fastifyDumper, { dumper: made() });
      // The origin: 5 ms of data access, then the page.
      app.get(ROUTE, async (req, reply) => {
        await dataAccess();
        rendered();
        return reply.headers(HEADERS).send(PAGE);
      });
    } else {
      app.get(ROUTE, (req, reply) => reply.headers(HEADERS).send(PAGE));
    }
    await app.ready();
    return app.server;
  }

  // ---------------------------------------------------------------------------------- Koa
  async function koaApp(withDumper) {
    const { default: Koa } = await import('koa');
    const app = new Koa();
    if (withDumper) {
      const { koaDumper } = await import('page-dumper/koa');
      app.use(koaDumper(made()));
      // The origin: Koa has no router of its own; a middleware answering /page/* stands for the route.
      app.use(async (ctx, next) => {
        if (ctx.method !== 'GET' || !ctx.path.startsWith(PAGE_PREFIX)) return next();
        await dataAccess();
        rendered();
        ctx.set(HEADERS);
        ctx.body = PAGE;
      });
    } else {
      app.use((ctx, next) => {
        if (ctx.method !== 'GET' || !ctx.path.startsWith(PAGE_PREFIX)) return next();
        ctx.set(HEADERS);
        ctx.body = PAGE;
      });
    }
    return http.createServer(app.callback());
  }

  // ---------------------------------------------------------------------------------- Hono
  /**
   * mode: 'bare' | 'middleware' (app.use(honoDumper)) | 'front-door' (dumperFetch around app.fetch)
   * | 'middleware-ceiling' (a first middleware sends the bytes) | 'fetch-ceiling' (an async fetch
   * handler returns them without calling Hono).
   */
  async function honoApp(mode) {
    const { Hono } = await import('hono');
    const { createAdaptorServer } = await import('@hono/node-server');
    const app = new Hono();
    if (mode === 'bare') {
      app.get(ROUTE, (c) => c.body(PAGE, 200, HEADERS));
      return createAdaptorServer({ fetch: app.fetch });
    }
    if (mode === 'middleware-ceiling') {
      app.use((c) => c.body(PAGE, 200, HEADERS));
      app.get(ROUTE, (c) => c.body(PAGE, 200, HEADERS)); // never reached
      return createAdaptorServer({ fetch: app.fetch });
    }
    if (mode === 'fetch-ceiling') {
      app.get(ROUTE, (c) => c.body(PAGE, 200, HEADERS)); // never reached
      // Response is @hono/node-server's (it replaces the global one, as in every variant here).
      return createAdaptorServer({ fetch: async () => new Response(PAGE, { status: 200, headers: HEADERS }) });
    }
    let fetch = app.fetch;
    if (mode === 'middleware') {
      const { honoDumper } = await import('page-dumper/hono');
      app.use(honoDumper(made()));
    } else {
      const { dumperFetch } = await import('page-dumper/fetch');
      fetch = dumperFetch(made(), app.fetch);
    }
    app.get(ROUTE, async (c) => {
      await dataAccess();
      rendered();
      return c.body(PAGE, 200, HEADERS);
    });
    return createAdaptorServer({ fetch });
  }

  return {
    /** Fastify route sending the bytes: the ceiling of any Fastify plugin. */
    'fastify-bare': () => fastifyApp('bare'),
    /** Diagnostic: an onRequest hook sends the bytes, where the plugin answers hits. */
    'fastify-hook-ceiling': () => fastifyApp('hook'),
    /** `await app.register(fastifyDumper, { dumper })`, origin route behind it; measured on hits. */
    'fastify-dumper': () => fastifyApp('dumper'),
    /** Koa middleware setting ctx.body: the ceiling of any Koa middleware. */
    'koa-bare': () => koaApp(false),
    /** `app.use(koaDumper(dumper))` first, origin middleware behind it; measured on hits. */
    'koa-dumper': () => koaApp(true),
    /** Hono route `c.body(PAGE, 200, headers)` on @hono/node-server: the ceiling of any Hono middleware. */
    'hono-bare': () => honoApp('bare'),
    /** Diagnostic: a first middleware sends the bytes, where honoDumper answers hits. */
    'hono-middleware-ceiling': () => honoApp('middleware-ceiling'),
    /** Diagnostic: an async fetch handler returns the bytes, where dumperFetch answers hits. */
    'hono-fetch-ceiling': () => honoApp('fetch-ceiling'),
    /** `app.use(honoDumper(dumper))` first, origin route behind it; measured on hits. */
    'hono-dumper': () => honoApp('middleware'),
    /** `dumperFetch(dumper, app.fetch)` served by @hono/node-server: hits never reach Hono. */
    'hono-front-door': () => honoApp('front-door'),
  };
}
