/**
 * Compression middleware of each framework, mounted in front of the dumper or behind it: hits
 * are compressed once per page by the dumper, never twice, and pages the app compressed itself
 * are stored (decoded) and served to every client in what it accepts.
 */
import http from 'node:http';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import compress from '@fastify/compress';
import { serve } from '@hono/node-server';
import compression from 'compression';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { compress as honoCompress } from 'hono/compress';
import Koa from 'koa';
import koaCompress from 'koa-compress';
import { afterEach, describe, expect, test } from 'vitest';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { honoDumper } from '../../src/http/hono/index.js';
import { koaDumper } from '../../src/http/koa/index.js';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
import { rawGet, type RawBytes } from '../support/http.js';
import { listen } from '../support/listen.js';

const page = '<!doctype html><p>' + 'ice cream, creamy and fresh; '.repeat(400) + '</p>';
const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

function text(r: RawBytes): string {
  const coding = r.headers['content-encoding'];
  const body = coding === 'br' ? brotliDecompressSync(r.body) : coding === 'gzip' ? gunzipSync(r.body) : r.body;
  return body.toString();
}

interface Server {
  port: number;
  renders(): number;
}

/**
 * The shared checks: a miss, then hits for br, gzip and identity clients. Each hit carries one
 * Content-Encoding (never two), the whole page, and X-Cache: HIT; the page rendered once.
 */
async function checkHits(dumper: Dumper, s: Server, path = '/p'): Promise<void> {
  const miss = await rawGet(s.port, path, { 'accept-encoding': 'gzip, deflate, br' });
  expect(miss.headers['x-cache']).toBe('MISS');
  expect(text(miss)).toBe(page);
  await dumper.flushCompression();
  for (const [ae, coding] of [
    ['gzip, deflate, br', 'br'],
    ['gzip', 'gzip'],
    [undefined, undefined],
  ] as const) {
    const r = await rawGet(s.port, path, ae === undefined ? {} : { 'accept-encoding': ae });
    expect(r.status).toBe(200);
    expect(r.headers['x-cache']).toBe('HIT');
    expect(r.headers['content-encoding']).toBe(coding);
    expect(r.headers['vary']?.toLowerCase()).toContain('accept-encoding');
    expect(text(r)).toBe(page);
  }
  expect(s.renders()).toBe(1);
}

async function node(listener: http.RequestListener): Promise<number> {
  const m = await listen(listener);
  open.push(() => m.close());
  return m.port;
}

function dumperFor(): Dumper {
  const dumper = createDumper({ logger: false });
  open.push(() => dumper.close());
  return dumper;
}

describe('Express and Connect: compression()', () => {
  test('mounted before dumperMiddleware: hits are the stored variants, which compression() passes on as they are', async () => {
    const dumper = dumperFor();
    let renders = 0;
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.use(dumperMiddleware(dumper));
    app.get('/p', (_req, res) => {
      renders++;
      res.type('html').send(page);
    });
    await checkHits(dumper, { port: await node(app), renders: () => renders });
  });

  test('mounted after dumperMiddleware: the compressed page is stored decoded', async () => {
    const dumper = dumperFor();
    let renders = 0;
    const app = express();
    app.use(dumperMiddleware(dumper));
    app.use(compression({ threshold: 0 }));
    app.get('/p', (_req, res) => {
      renders++;
      res.type('html').send(page);
    });
    await checkHits(dumper, { port: await node(app), renders: () => renders });
  });

  test('inside an app behind the front door: the compressed page is stored decoded', async () => {
    const dumper = dumperFor();
    let renders = 0;
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.get('/p', (_req, res) => {
      renders++;
      res.type('html').send(page);
    });
    await checkHits(dumper, { port: await node(withDumper(dumper, app)), renders: () => renders });
  });

  test('a client that accepts no encoding never receives one, even when the miss it joined was compressed', async () => {
    const dumper = dumperFor();
    let renders = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const app = express();
    app.use(compression({ threshold: 0 }));
    app.get('/p', (_req, res) => {
      renders++;
      void gate.then(() => res.type('html').send(page));
    });
    const port = await node(withDumper(dumper, app));
    const leader = rawGet(port, '/p', { 'accept-encoding': 'gzip' });
    await new Promise((r) => setTimeout(r, 50));
    const follower = rawGet(port, '/p', {});
    await new Promise((r) => setTimeout(r, 50));
    release();
    const [a, b] = await Promise.all([leader, follower]);
    expect(a.headers['content-encoding']).toBe('gzip');
    expect(b.headers['content-encoding']).toBeUndefined();
    expect(b.body.toString()).toBe(page);
    expect(renders).toBe(1);
  });
});

test('Express: a Content-Encoding set by middleware mounted before dumperMiddleware keeps the page out of the store', async () => {
  const dumper = dumperFor();
  let renders = 0;
  const app = express();
  app.use((_req, res, next) => {
    res.setHeader('Content-Encoding', 'gzip');
    next();
  });
  app.use(dumperMiddleware(dumper));
  app.get('/p', (_req, res) => {
    renders++;
    res.type('html').end(gzipSync(page));
  });
  const port = await node(app);
  await rawGet(port, '/p', { 'accept-encoding': 'gzip' });
  const again = await rawGet(port, '/p', { 'accept-encoding': 'br' });
  expect(again.headers['x-cache']).toBe('MISS');
  expect(renders).toBe(2);
});

describe('Fastify: @fastify/compress', () => {
  test.each(['after', 'before'])('registered %s fastifyDumper', async (order) => {
    const dumper = dumperFor();
    let renders = 0;
    const app = Fastify();
    if (order === 'before') await app.register(compress, { threshold: 0 });
    await app.register(fastifyDumper, { dumper });
    if (order === 'after') await app.register(compress, { threshold: 0 });
    app.get('/p', async (_req, reply) => {
      renders++;
      return reply.type('text/html').send(page);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    open.push(() => app.close());
    const port = (app.server.address() as { port: number }).port;
    await checkHits(dumper, { port, renders: () => renders });
  });
});

describe('Koa: koa-compress', () => {
  test.each(['before', 'after'])('mounted %s koaDumper', async (order) => {
    const dumper = dumperFor();
    let renders = 0;
    const app = new Koa();
    if (order === 'before') app.use(koaCompress({ threshold: 0 }));
    app.use(koaDumper(dumper));
    if (order === 'after') app.use(koaCompress({ threshold: 0 }));
    app.use((ctx) => {
      renders++;
      ctx.type = 'html';
      ctx.body = page;
    });
    await checkHits(dumper, { port: await node(app.callback()), renders: () => renders });
  });
});

describe("Hono: compress()", () => {
  async function honoServer(app: { fetch: (r: Request) => Response | Promise<Response> }): Promise<number> {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((r) => server.once('listening', () => r()));
    open.push(() => new Promise<void>((r) => server.close(() => r())));
    return (server.address() as { port: number }).port;
  }

  test.each(['before', 'after'])('mounted %s honoDumper', async (order) => {
    const dumper = dumperFor();
    let renders = 0;
    const app = new Hono();
    if (order === 'before') app.use(honoCompress());
    app.use(honoDumper(dumper));
    if (order === 'after') app.use(honoCompress());
    app.get('/p', (c) => {
      renders++;
      return c.html(page);
    });
    await checkHits(dumper, { port: await honoServer(app), renders: () => renders });
  });

  test('inside an app behind dumperFetch', async () => {
    const dumper = dumperFor();
    let renders = 0;
    const app = new Hono();
    app.use(honoCompress());
    app.get('/p', (c) => {
      renders++;
      return c.html(page);
    });
    await checkHits(dumper, { port: await honoServer({ fetch: dumperFetch(dumper, app.fetch) }), renders: () => renders });
  });
});
