import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import type http from 'node:http';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { honoDumper } from '../../src/http/hono/index.js';
import { httpBehaviourSuite, type Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import type { Site, SiteResponse } from '../support/site.js';

/** The site as a Web-standard handler: Request in, Response out (streamed when it has chunks). */
async function handle(site: Site, request: Request): Promise<Response> {
  const u = new URL(request.url);
  const headers: Record<string, string> = {};
  request.headers.forEach((v, k) => (headers[k] = v));
  const r = await site.handle({ method: request.method, path: u.pathname, query: u.searchParams, headers });
  const out = new Headers();
  for (const [k, v] of Object.entries(r.headers)) for (const x of Array.isArray(v) ? v : [v]) out.append(k, x);
  return new Response(body(r), { status: r.status, headers: out });
}

function body(r: SiteResponse): ConstructorParameters<typeof Response>[0] {
  const enc = (c: string | Uint8Array) => (typeof c === 'string' ? new TextEncoder().encode(c) : c);
  if (r.chunks.length === 1) return enc(r.chunks[0]!) as Uint8Array<ArrayBuffer>;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i === r.chunks.length) return controller.close();
      if (i > 0 && r.pauseMs) await new Promise((x) => setTimeout(x, r.pauseMs));
      controller.enqueue(enc(r.chunks[i++]!));
    },
  });
}

function serve(fetch: (request: Request) => Response | Promise<Response>): Promise<Mounted> {
  return listen(createAdaptorServer({ fetch }) as http.Server);
}

httpBehaviourSuite('dumperFetch(fetch handler)', (dumper, site) => serve(dumperFetch(dumper, (request) => handle(site, request))));

httpBehaviourSuite('honoDumper in Hono', (dumper, site) => {
  const app = new Hono();
  app.use(honoDumper(dumper));
  app.all('*', (c) => handle(site, c.req.raw));
  return serve(app.fetch);
});

httpBehaviourSuite('dumperFetch(Hono app.fetch)', (dumper, site) => {
  const app = new Hono();
  app.all('*', (c) => handle(site, c.req.raw));
  return serve(dumperFetch(dumper, app.fetch));
});
