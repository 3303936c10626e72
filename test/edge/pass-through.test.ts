/**
 * With purgers, a GET/HEAD page the dumper passes through without storing (store unavailable, a
 * request it bypasses, a response it refuses) carries no tags, so no purge would reach it: it is
 * sent `no-store` for the edge in each purger's freshness header, unless the app set that header.
 */
import Fastify from 'fastify';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, test } from 'vitest';
import { cloudflarePurger, fastlyPurger } from '../../src/edge/index.js';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper } from '../../src/index.js';
import { listen } from '../support/listen.js';

class FlakyStore extends MemoryStore {
  down = false;
  override get(key: string) {
    if (this.down) throw new Error('store down');
    return super.get(key);
  }
  override sequence() {
    if (this.down) throw new Error('store down');
    return super.sequence();
  }
}

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

function makeDumper(store = new FlakyStore()): Dumper {
  const dumper = createDumper({
    logger: false,
    store,
    purgers: [fastlyPurger({ serviceId: 's', token: 't', endpoint: 'http://127.0.0.1:9' }), cloudflarePurger({ zoneId: 'z', token: 't', endpoint: 'http://127.0.0.1:9' })],
  });
  closers.push(() => dumper.close());
  return dumper;
}

type Headers_ = Record<string, string>;
const app = (req: { url?: string }): Headers_ => (req.url?.startsWith('/own') ? { 'surrogate-control': 'max-age=5' } : req.url?.startsWith('/cookie') ? { 'set-cookie': 'a=1' } : {});

async function check(base: string, store: FlakyStore) {
  const get = async (path: string, init?: RequestInit) => {
    const r = await fetch(base + path, init);
    await r.text();
    return r.headers;
  };
  // Stored normally: tags and the edge lifetime.
  const normal = await get('/normal');
  expect(normal.get('surrogate-key')).toContain('/normal');
  expect(normal.get('surrogate-control')).toMatch(/^max-age=/);
  // Bypassed (Authorization), refused (Set-Cookie), store down: no-store for the edge.
  for (const h of [await get('/auth', { headers: { authorization: 'Basic eDp5' } }), await get('/cookie')]) {
    expect(h.get('surrogate-key')).toBeNull();
    expect(h.get('surrogate-control')).toBe('no-store');
    expect(h.get('cdn-cache-control')).toBe('no-store');
  }
  store.down = true;
  const down = await get('/down');
  expect(down.get('surrogate-control')).toBe('no-store');
  expect(down.get('cdn-cache-control')).toBe('no-store');
  // The app's own freshness header stands.
  const own = await get('/own');
  expect(own.get('surrogate-control')).toBe('max-age=5');
  expect(own.get('cdn-cache-control')).toBe('no-store');
  // Not GET/HEAD: nothing from the dumper.
  const post = await get('/post', { method: 'POST' });
  expect(post.get('surrogate-control')).toBeNull();
  store.down = false;
}

test('node', async () => {
  const store = new FlakyStore();
  const dumper = makeDumper(store);
  const mounted = await listen(
    withDumper(dumper, (req: http.IncomingMessage, res: http.ServerResponse) => {
      for (const [k, v] of Object.entries(app(req))) res.setHeader(k, v);
      res.end('page');
    }),
  );
  closers.push(() => mounted.close());
  await check(mounted.url, store);
});

test('fastify', async () => {
  const store = new FlakyStore();
  const dumper = makeDumper(store);
  const f = Fastify();
  await f.register(fastifyDumper, { dumper });
  f.route({
    method: ['GET', 'POST'],
    url: '/*',
    handler: async (req, reply) => {
      reply.headers(app(req));
      return 'page';
    },
  });
  await f.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => f.close());
  await check(`http://127.0.0.1:${(f.server.address() as AddressInfo).port}`, store);
});

test('fetch', async () => {
  const store = new FlakyStore();
  const dumper = makeDumper(store);
  const handler = dumperFetch(dumper, (request: Request) => new Response('page', { headers: app({ url: new URL(request.url).pathname }) }));
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const request = new Request(`http://${req.headers.host}${req.url}`, {
      method: req.method,
      headers: req.headers as Record<string, string>,
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(chunks),
    });
    const response = await handler(request);
    res.writeHead(response.status, [...response.headers].flat());
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  await check(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, store);
});
