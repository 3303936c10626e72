/**
 * Personal responses never reach the edge as cacheable: a Fastify onSend hook registered after
 * the dumper's that makes the response `private` gets `no-store` for the edge, and the shipped
 * VCL does not keep a response whose Cache-Control says private/no-store/no-cache or that sets a
 * cookie, whatever its Surrogate-Control says.
 */
import Fastify from 'fastify';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, expect, test } from 'vitest';
import { varnishPurger } from '../../src/edge/index.js';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
import { listen } from '../support/listen.js';
import { needVarnish, definedIf } from '../support/services.js';
import { startVarnish } from './varnish-server.js';

const varnishd = await needVarnish();
const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

const purger = () => varnishPurger({ url: 'http://127.0.0.1:9' });

test('Fastify: an onSend hook after the dumper makes the response private: no-store for the edge, not stored', async () => {
  const dumper: Dumper = createDumper({ logger: false, purgers: [purger()] });
  const app = Fastify();
  await app.register(fastifyDumper, { dumper });
  let n = 0;
  app.get('/account', async () => `account #${++n}`);
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('cache-control', 'private');
    return payload;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close(), () => dumper.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/account`;
  for (let i = 1; i <= 2; i++) {
    const r = await fetch(url);
    expect(await r.text()).toBe(`account #${i}`);
    expect(r.headers.get('cache-control')).toBe('private');
    expect(r.headers.get('surrogate-control')).toBe('no-store');
    expect(r.headers.get('xkey')).toBeNull();
  }
});

test('Fastify: a public response still gets its tags and edge lifetime', async () => {
  const dumper: Dumper = createDumper({ logger: false, purgers: [purger()] });
  const app = Fastify();
  await app.register(fastifyDumper, { dumper });
  app.get('/public', async () => 'public');
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close(), () => dumper.close());
  const r = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/public`);
  await r.text();
  expect(r.headers.get('surrogate-control')).toMatch(/^max-age=\d+$/);
  expect(r.headers.get('xkey')).toContain('/public');
});

definedIf(varnishd !== undefined, test)('the shipped VCL keeps no personal response, whatever Surrogate-Control says', async () => {
  const personal: Record<string, Record<string, string>> = {
    '/private': { 'cache-control': 'private' },
    '/no-store': { 'cache-control': 'no-store' },
    '/no-cache': { 'cache-control': 'no-cache' },
    '/cookie': { 'set-cookie': 'session=1' },
    '/sc-private': { 'surrogate-control': 'private' },
    '/public': {},
  };
  let n = 0;
  const backend = await listen((req: http.IncomingMessage, res: http.ServerResponse) => {
    res.setHeader('surrogate-control', 'max-age=3600');
    res.setHeader('xkey', 'pd.all');
    for (const [k, v] of Object.entries(personal[req.url ?? ''] ?? {})) res.setHeader(k, v);
    res.end(`#${++n}`);
  });
  const varnish = await startVarnish(varnishd!, backend.port);
  closers.push(() => backend.close(), () => varnish.stop());
  for (const path of Object.keys(personal)) {
    await (await fetch(varnish.url + path)).text();
    const second = await fetch(varnish.url + path);
    await second.text();
    expect(`${path} ${second.headers.get('x-edge-cache')}`).toBe(`${path} ${path === '/public' ? 'HIT' : 'MISS'}`);
  }
});
