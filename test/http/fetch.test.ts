import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import http from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { createDumper } from '../../src/index.js';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { honoDumper } from '../../src/http/hono/index.js';
import { httpBehaviourSuite, type Mounted } from '../support/behaviour.js';
import { rawRequest } from '../support/http.js';
import { listen } from '../support/listen.js';
import { Site, type SiteResponse } from '../support/site.js';

/** The site as a Web-standard handler: Request in, Response out (streamed when it has chunks). */
async function handle(site: Site, request: Request): Promise<Response> {
  const u = new URL(request.url);
  const header = (name: string) => request.headers.get(name) ?? undefined;
  const r = await site.handle({ method: request.method, path: u.pathname, query: u.searchParams, url: u.pathname + u.search, header });
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
      if (r.abort !== undefined && i === 1) return controller.error(new Error('the app aborted the response'));
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

/**
 * A minimal Web-standard server on node:http, as Deno, Bun or a serverless runtime would be: each
 * request becomes a plain `new Request(...)`, so the handler reads `request.headers` like any
 * Request (no @hono/node-server behind it).
 */
function servePlain(fetch: (request: Request) => Response | Promise<Response>): Promise<Mounted> {
  return listen(async (req, res) => {
    // A runtime must choose the URL of a request without Host (HTTP/1.0); this one refuses it,
    // as Node does for HTTP/1.1 (RFC 9112, section 3.2).
    if (req.headers.host === undefined) return void res.writeHead(400).end();
    try {
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const method = req.method ?? 'GET';
      const init: RequestInit & { duplex?: 'half' } = { method, headers };
      if (method !== 'GET' && method !== 'HEAD') {
        init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
        init.duplex = 'half';
      }
      const target = req.url ?? '/';
      // An absolute-form target (RFC 9112, section 3.2.2) is the URL itself.
      const url = target.startsWith('/') ? `http://${req.headers.host}${target}` : target;
      const response = await fetch(new Request(url, init));
      const out: Record<string, string | string[]> = {};
      response.headers.forEach((v, k) => {
        if (k !== 'set-cookie') out[k] = v;
      });
      const cookies = response.headers.getSetCookie();
      if (cookies.length > 0) out['set-cookie'] = cookies;
      res.writeHead(response.status, out);
      if (response.body === null || method === 'HEAD') {
        await response.body?.cancel();
        res.end();
        return;
      }
      const reader = response.body.getReader();
      res.on('close', () => void reader.cancel().catch(() => {}));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
      res.end();
    } catch {
      res.destroy();
    }
  });
}

httpBehaviourSuite('dumperFetch on a plain Request (no @hono/node-server)', (dumper, site) =>
  servePlain(dumperFetch(dumper, (request) => handle(site, request))),
);

describe('dumperFetch: headers a wrapper or a client changed are the ones that count', () => {
  const open: Mounted[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((m) => m.close()));
  });

  test('an Authorization header set by a wrapping handler makes the request bypass, even for a cached page', async () => {
    const dumper = createDumper({ logger: false });
    const site = new Site(dumper);
    const cached = dumperFetch(dumper, (request) => handle(site, request));
    // The same dumper behind two servers: one passes requests on as they come, the other adds
    // credentials first, as an auth gateway in front of the app would.
    const plain = await serve(cached);
    const signed = await serve((request) => {
      request.headers.set('authorization', 'Bearer gateway');
      return cached(request);
    });
    open.push(plain, signed);
    expect((await fetch(`${plain.url}/page/a`)).headers.get('x-cache')).toBe('MISS');
    expect((await fetch(`${plain.url}/page/a`)).headers.get('x-cache')).toBe('HIT');
    const r = await fetch(`${signed.url}/page/a`);
    expect(r.headers.get('x-cache')).toBe('BYPASS');
    expect(await r.text()).toContain('/page/a');
  });

  test('two Host headers: neither cached page is served, and nothing is stored', async () => {
    const dumper = createDumper({ logger: false });
    const site = new Site(dumper);
    const m = await serve(dumperFetch(dumper, (request) => handle(site, request)));
    open.push(m);
    const get = (hosts: string[]) => rawRequest(m.port, `GET /page/h HTTP/1.1\r\n${hosts.map((h) => `Host: ${h}\r\n`).join('')}\r\n`);
    expect((await get(['a.example'])).headers['x-cache']).toBe('MISS');
    expect((await get(['a.example'])).headers['x-cache']).toBe('HIT');
    // Node passes both on (it keeps the first in `headers.host`, the app's Request joins them):
    // the dumper must not pick one of the two.
    const twice = await get(['a.example', 'b.example']);
    expect(twice.status).toBe(200);
    expect(twice.headers['x-cache']).toBe('BYPASS');
    expect((await get(['b.example'])).headers['x-cache']).toBe('MISS');
  });
});

describe('dumperFetch called in code', () => {
  test("a Request without a Host header (built in code, as Hono's app.request() does) is keyed by its URL's host", async () => {
    const dumper = createDumper({ logger: false });
    const site = new Site(dumper);
    const handler = dumperFetch(dumper, (request) => handle(site, request));
    const status = async (url: string) => {
      const r = await handler(new Request(url));
      await r.text();
      return r.headers.get('x-cache');
    };
    expect(await status('http://shop.example/page/a')).toBe('MISS');
    expect(await status('http://shop.example/page/a')).toBe('HIT');
    expect(await status('http://other.example/page/a')).toBe('MISS');
    expect(site.count('/page/a')).toBe(2);
    await dumper.invalidate(['/page/a']);
    expect(await status('http://shop.example/page/a')).toBe('MISS');
    await dumper.close();
  });
});

describe('honoDumper: what the dumper sets on the response is what the client gets', () => {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  test("Hono's c.res does not put the app's headers back over the dumper's: Cache-Status, the edge tags and freshness", async () => {
    const { fastlyPurger } = await import('../../src/edge/index.js');
    const dumper = createDumper({ logger: false, cacheStatus: true, purgers: [fastlyPurger({ serviceId: 's', token: 't', endpoint: 'http://127.0.0.1:9' })] });
    const app = new Hono();
    app.use(honoDumper(dumper));
    // The app's own tag and its own Cache-Status member (a cache behind it).
    app.get('*', (c) => c.html(`<p>${c.req.path}</p>`, 200, { 'cache-status': 'upstream; hit', 'surrogate-key': 'app-tag' }));
    const m = await serve(app.fetch);
    closers.push(() => dumper.close(), () => m.close());
    const miss = await fetch(`${m.url}/tagged`);
    await miss.text();
    expect(miss.headers.get('cache-status')).toBe('upstream; hit, page-dumper; fwd=uri-miss; stored');
    // The tags purges use: the app's, and the page's own path, which a purge of the path names.
    const tags = miss.headers.get('surrogate-key')!.split(' ');
    expect(tags).toContain('app-tag');
    expect(tags.length).toBeGreaterThan(1);
    expect(miss.headers.get('surrogate-control')).toMatch(/^max-age=/);
    const hit = await fetch(`${m.url}/tagged`);
    await hit.text();
    expect(hit.headers.get('cache-status')).toBe('upstream; hit, page-dumper; hit');
    expect(hit.headers.get('surrogate-key')).toBe(miss.headers.get('surrogate-key'));
  });
});
