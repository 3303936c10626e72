import Fastify, { type FastifyInstance } from 'fastify';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { describe, expect, expectTypeOf, test } from 'vitest';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { createDumper, MemoryStore, type Dumper, type DumperOptions, type Store } from '../../src/index.js';
import type { FastifyDumperOptions } from '../../src/http/fastify/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { bodyValue, nodeRequest } from '../support/site.js';

httpBehaviourSuite('fastifyDumper plugin in Fastify', async (dumper, site) => {
  const app = Fastify({ routerOptions: { maxParamLength: 10_000 } });
  await app.register(fastifyDumper, { dumper });
  app.all('/*', async (request, reply) => {
    const r = await site.handle(nodeRequest(request.raw, request.url));
    reply.code(r.status);
    for (const [k, v] of Object.entries(r.headers)) reply.header(k, v);
    return reply.send(bodyValue(r));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, close: () => app.close() };
});

test('the plugin decorates the instance and rejects a missing dumper', async () => {
  const dumper = createDumper({ logger: false });
  const app = Fastify();
  await app.register(fastifyDumper, { dumper });
  expect(app.dumper).toBe(dumper);
  await app.close();
  const bad = Fastify();
  await expect(bad.register(fastifyDumper, {} as never)).rejects.toThrow('page-dumper: fastifyDumper() needs a dumper made by createDumper()');
});

test('types: the decorator is typed, and the options require a dumper', () => {
  const app = Fastify();
  expectTypeOf(app.dumper).toEqualTypeOf<Dumper>();
  expectTypeOf<FastifyDumperOptions>().toHaveProperty('dumper').toEqualTypeOf<Dumper>();
  const typeOnly = (f: () => unknown) => expectTypeOf(f).toBeFunction();
  // @ts-expect-error the dumper option is required
  typeOnly(() => app.register(fastifyDumper, {}));
  void app.close();
});

/** A Fastify app with the plugin and a counting route, for the Fastify-only cases below. */
async function plain(setup: (app: FastifyInstance, renders: Map<string, number>) => void, options: DumperOptions = { logger: false }) {
  const dumper = createDumper(options);
  const app = Fastify();
  await app.register(fastifyDumper, { dumper });
  const renders = new Map<string, number>();
  setup(app, renders);
  return { app, dumper, renders, close: async () => (await app.close(), await dumper.close()) };
}

/** A logger that keeps the reason of every "not saving" decision. */
function reasonsLogger() {
  const reasons: unknown[] = [];
  const logger = { debug: (m: string, f: { reason?: string }) => void (m.includes('not saving') && reasons.push(f.reason)), info() {}, warn() {}, error() {} };
  return { logger, reasons };
}

/** A MemoryStore whose `sequence()` answers only once `release()` has been called. */
function gatedStore() {
  const inner = new MemoryStore();
  let release!: () => void;
  let asked!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  /** Resolves when `sequence()` is first asked. */
  const sequenceAsked = new Promise<void>((r) => (asked = r));
  const store: Store = {
    async sequence() {
      asked();
      await gate;
      return inner.sequence();
    },
    get: (key) => inner.get(key),
    set: (key, entry, options) => inner.set(key, entry, options),
    invalidate: (tags) => inner.invalidate(tags),
    clear: () => inner.clear(),
  };
  return { store, sequenceAsked, release };
}

const bump = (renders: Map<string, number>, path: string): number => {
  const n = (renders.get(path) ?? 0) + 1;
  renders.set(path, n);
  return n;
};

test('app.inject(): a miss is stored when light-my-request finishes the response, and the next inject is a hit', async () => {
  const { app, renders, close } = await plain((app, renders) => {
    app.get('/p', async () => `render ${bump(renders, '/p')}`);
  });
  const first = await app.inject('/p');
  expect(first.headers['x-cache']).toBe('MISS');
  const second = await app.inject('/p');
  expect(second.headers['x-cache']).toBe('HIT');
  expect(second.body).toBe('render 1');
  expect(renders.get('/p')).toBe(1);
  await close();
});

test('an onSend hook registered after the plugin that sets a cookie stops storage (headers are checked as sent)', async () => {
  const { app, close } = await plain((app, renders) => {
    app.addHook('onSend', async (request, reply, payload) => {
      if (request.url === '/session') reply.header('set-cookie', 'sid=1');
      return payload;
    });
    app.get('/session', async () => `render ${bump(renders, '/session')}`);
    app.get('/public', async () => `render ${bump(renders, '/public')}`);
  });
  await app.inject('/session');
  const again = await app.inject('/session');
  expect(again.headers['x-cache']).toBe('MISS');
  expect(again.body).toBe('render 2');
  await app.inject('/public');
  expect((await app.inject('/public')).headers['x-cache']).toBe('HIT');
  await close();
});

test('a hijacked reply is not stored, and requests waiting on its render are released', async () => {
  const { logger, reasons: notSaving } = reasonsLogger();
  // Were the fill left open, the second request would wait out this timeout, past the test's.
  const { app, renders, close } = await plain(
    (app, renders) => {
      app.get('/raw', async (request, reply) => {
        const n = bump(renders, '/raw');
        await new Promise((r) => setTimeout(r, 30));
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/plain' });
        reply.raw.end(`raw ${n}`);
      });
    },
    { logger, coalesceTimeout: 120_000 },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}/raw`;
  // The second request waits for the first's render (coalescing), then renders itself.
  const bodies = await Promise.all([fetch(url).then((r) => r.text()), fetch(url).then((r) => r.text())]);
  expect(bodies.sort()).toEqual(['raw 1', 'raw 2']);
  expect(notSaving).toContain('no response was sent through onSend');
  const third = await fetch(url);
  expect(third.headers.get('x-cache')).toBeNull();
  expect(await third.text()).toBe('raw 3');
  await close();
});

test('a successful POST answered through app.inject() invalidates its target and its Location', async () => {
  const { app, close } = await plain((app, renders) => {
    app.get('/page/:id', async (request) => `render ${bump(renders, request.url)}`);
    app.post('/page/:id', async (request, reply) => reply.code(303).header('location', '/page/moved').send());
  });
  await app.inject('/page/a');
  await app.inject('/page/moved');
  expect((await app.inject('/page/a')).headers['x-cache']).toBe('HIT');
  expect((await app.inject({ method: 'POST', url: '/page/a' })).statusCode).toBe(303);
  await new Promise((r) => setTimeout(r, 20));
  expect((await app.inject('/page/a')).headers['x-cache']).toBe('MISS');
  expect((await app.inject('/page/moved')).headers['x-cache']).toBe('MISS');
  await close();
});

describe('a response that Fastify\'s error path replaced after onSend is not stored', () => {
  // A custom error handler gets no status from Fastify: the one here answers 200, like the page.
  test.each([
    ['the default error handler (500)', false, 500],
    ['a custom error handler answering 200', true, 200],
  ])('%s', async (_name, custom, status) => {
    let fail = true;
    const { app, close } = await plain((app, renders) => {
      if (custom) app.setErrorHandler((error, request, reply) => reply.type('text/plain').send('fallback'));
      app.addHook('onSend', async (request, reply, payload) => {
        if (fail && payload !== 'fallback' && reply.statusCode === 200) throw new Error('late failure');
        return payload;
      });
      app.get('/p', async () => `render ${bump(renders, '/p')}`);
    });
    const first = await app.inject('/p');
    expect(first.statusCode).toBe(status);
    expect(first.body).not.toBe('render 1');
    fail = false;
    const second = await app.inject('/p');
    expect(second.headers['x-cache']).toBe('MISS');
    expect(second.body).toBe('render 2');
    expect((await app.inject('/p')).headers['x-cache']).toBe('HIT');
    await close();
  });
});

test('a client that leaves while the store is asked for a sequence number does not hold up the next request', async () => {
  const { logger, reasons: notSaving } = reasonsLogger();
  const { store, sequenceAsked, release } = gatedStore();
  // Were the abandoned fill left open, the next request would wait out this timeout, past the test's.
  const { app, close } = await plain((app, renders) => void app.get('/p', async () => `render ${bump(renders, '/p')}`), { logger, store, coalesceTimeout: 120_000 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const serverSide = new Promise<net.Socket>((r) => app.server.once('connection', r));
  const socket = net.connect(port, '127.0.0.1');
  // The same Host as fetch() sends below: the same key, so the next request would follow this fill.
  socket.write(`GET /p HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  await sequenceAsked;
  // Node's own 'close' listener, added when the connection came, has run when this one runs.
  const peer = await serverSide;
  const closed = new Promise((r) => peer.once('close', r));
  socket.destroy();
  await closed;
  release();
  const next = await fetch(`http://127.0.0.1:${port}/p`);
  expect(await next.text()).toMatch(/^render \d$/);
  expect(notSaving).toContain('response closed before the app ran');
  await close();
});

describe('Fastify over HTTP/2 (`http2: true`)', () => {
  /** One request over an HTTP/2 session: what a browser sends, `:authority` and no Host. */
  function get(client: http2.ClientHttp2Session, path: string, method = 'GET') {
    return new Promise<{ status: number; cache: string | undefined; body: string }>((resolve, reject) => {
      const stream = client.request({ ':path': path, ':method': method });
      let body = '';
      let head: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => (head = h));
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => resolve({ status: Number(head[':status']), cache: head['x-cache'] as string | undefined, body }));
      stream.on('error', reject);
    });
  }

  async function h2app(options: DumperOptions) {
    const dumper = createDumper(options);
    const app = Fastify({ http2: true });
    await app.register(fastifyDumper, { dumper });
    const renders = new Map<string, number>();
    app.get('/p', async () => `render ${bump(renders, '/p')}`);
    app.get('/moved', async () => `moved ${bump(renders, '/moved')}`);
    app.post('/p', async (request, reply) => reply.code(303).header('location', '/moved').send());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    return { app, client, close: async () => (client.close(), await app.close(), await dumper.close()) };
  }

  test('a page is stored and hit, keyed by :authority', async () => {
    const { client, close } = await h2app({ logger: false });
    expect(await get(client, '/p')).toEqual({ status: 200, cache: 'MISS', body: 'render 1' });
    expect(await get(client, '/p')).toEqual({ status: 200, cache: 'HIT', body: 'render 1' });
    await close();
  });

  test('a successful POST invalidates its target and its Location', async () => {
    const { client, close } = await h2app({ logger: false });
    await get(client, '/p');
    await get(client, '/moved');
    expect((await get(client, '/p')).cache).toBe('HIT');
    expect((await get(client, '/p', 'POST')).status).toBe(303);
    await new Promise((r) => setTimeout(r, 20));
    expect(await get(client, '/p')).toEqual({ status: 200, cache: 'MISS', body: 'render 2' });
    expect(await get(client, '/moved')).toEqual({ status: 200, cache: 'MISS', body: 'moved 2' });
    await close();
  });

  test('a stream cancelled while the store is asked for a sequence number does not hold up the next request', async () => {
    const { logger, reasons: notSaving } = reasonsLogger();
    const { store, sequenceAsked, release } = gatedStore();
    // Were the abandoned fill left open, the next request would wait out this timeout, past the test's.
    const { app, client, close } = await h2app({ logger, store, coalesceTimeout: 120_000 });
    const serverClosed = new Promise((r) => app.server.once('stream', (s: http2.ServerHttp2Stream) => s.once('close', r)));
    const stream = client.request({ ':path': '/p' });
    stream.on('error', () => undefined);
    await sequenceAsked;
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await serverClosed;
    release();
    expect((await get(client, '/p')).body).toMatch(/^render \d$/);
    expect(notSaving).toContain('response closed before the app ran');
    await close();
  });
});
