/**
 * Every HTTP adapter sends the core's edge headers on a miss it renders for the store and on a hit:
 * node:http, Koa, Fastify, the fetch adapter and Hono. The values come from the core; each adapter
 * only writes them.
 */
import { createAdaptorServer } from '@hono/node-server';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { EDGE_ALL_TAG } from '../../src/core/purge.js';
import { varnishPurger } from '../../src/edge/index.js';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { honoDumper } from '../../src/http/hono/index.js';
import { koaDumper } from '../../src/http/koa/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';

type Mount = (dumper: Dumper) => Promise<Mounted>;

const page = (dumper: Dumper) => {
  dumper.tag('flavour:1');
  return 'a page';
};

const adapters: Array<[string, Mount]> = [
  ['node:http (withDumper)', (d) => listen(withDumper(d, (_req, res) => res.end(page(d))))],
  [
    'Koa (koaDumper)',
    (d) => {
      const app = new Koa();
      app.use(koaDumper(d));
      app.use((ctx) => {
        ctx.body = page(d);
      });
      return listen(app.callback());
    },
  ],
  [
    'Fastify (fastifyDumper)',
    async (d) => {
      const app = Fastify();
      await app.register(fastifyDumper, { dumper: d });
      app.get('/*', async () => page(d));
      await app.listen({ port: 0, host: '127.0.0.1' });
      const port = (app.server.address() as AddressInfo).port;
      return { url: `http://127.0.0.1:${port}`, port, close: () => app.close() };
    },
  ],
  ['fetch (dumperFetch)', (d) => serveFetch(dumperFetch(d, () => new Response(page(d), { headers: { 'content-type': 'text/plain' } })))],
  [
    'Hono (honoDumper)',
    (d) => {
      const app = new Hono();
      app.use(honoDumper(d));
      app.get('/*', (c) => c.text(page(d)));
      return serveFetch(app.fetch);
    },
  ],
];

function serveFetch(fetch: (request: Request) => Response | Promise<Response>): Promise<Mounted> {
  return listen(createAdaptorServer({ fetch }) as never);
}

let mounted: Mounted | undefined;
let dumper: Dumper | undefined;
afterEach(async () => {
  await mounted?.close();
  await dumper?.close();
  mounted = dumper = undefined;
});

describe.each(adapters)('%s', (_name, mount) => {
  test('a miss and a hit carry the tags and the edge lifetime', async () => {
    dumper = createDumper({ logger: false, trackRenders: true, purgers: [varnishPurger({ url: 'http://127.0.0.1:9' })], edge: { raceWindow: 600_000 } });
    mounted = await mount(dumper);
    const miss = await fetch(`${mounted.url}/shop/vanilla`);
    await miss.text();
    await dumper.flushCompression();
    const hit = await fetch(`${mounted.url}/shop/vanilla`);
    await hit.text();
    expect([miss.headers.get('x-cache'), hit.headers.get('x-cache')]).toEqual(['MISS', 'HIT']);
    for (const r of [miss, hit]) {
      expect(r.headers.get('xkey')).toBe(`${EDGE_ALL_TAG} /shop/vanilla flavour:1`);
      expect(r.headers.get('surrogate-control')).toBe('max-age=31536000');
      expect(r.headers.get('cache-control')).toBe('max-age=0, must-revalidate');
    }
  });
});
