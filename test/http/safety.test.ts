/**
 * Ways a page meant for one visitor, or a wrong page, could reach others: each one closed.
 */
import http from 'node:http';
import connect from 'connect';
import cookieSession from 'cookie-session';
import express from 'express';
import { afterEach, expect, test } from 'vitest';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type SetOptions, type StoredEntry } from '../../src/index.js';
import { rawRequest } from '../support/http.js';
import { listen } from '../support/listen.js';

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

async function serve(listener: http.RequestListener, dumper = createDumper({ logger: false })) {
  const m = await listen(listener);
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  return m;
}

test('a Host with a path in it neither reads nor fills (it would share a key with another path)', async () => {
  const dumper = createDumper({ logger: false });
  const m = await serve(withDumper(dumper, (req, res) => res.end(`page ${req.url}`)), dumper);
  const forged = await rawRequest(m.port, 'GET /bar HTTP/1.1\r\nHost: a.example/foo\r\n\r\n');
  expect(forged.headers['x-cache']).toBe('BYPASS');
  const real = await rawRequest(m.port, 'GET /foo/bar HTTP/1.1\r\nHost: a.example\r\n\r\n');
  expect(real.headers['x-cache']).toBe('MISS');
  expect(real.body).toBe('page /foo/bar');
  const fwd = await rawRequest(m.port, 'GET /bar HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-Host: x.example/foo\r\n\r\n');
  expect(fwd.headers['x-cache']).toBe('BYPASS');
});

test('an absolute-form target naming another host than Host neither reads nor fills', async () => {
  const dumper = createDumper({ logger: false });
  const m = await serve(withDumper(dumper, (req, res) => res.end(`tenant ${req.headers.host}`)), dumper);
  const r = await rawRequest(m.port, 'GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n');
  expect(r.headers['x-cache']).toBe('BYPASS');
  const a = await rawRequest(m.port, 'GET / HTTP/1.1\r\nHost: a.example\r\n\r\n');
  expect(a.body).toBe('tenant a.example');
});

test('a cookie or Cache-Control: private set by middleware before the dumper still stops storage', async () => {
  const dumper = createDumper({ logger: false });
  const app = express();
  app.use((req, res, next) => {
    if (req.headers.cookie === 'user=alice') {
      res.setHeader('set-cookie', 'sid=alice');
      res.setHeader('cache-control', 'private');
    }
    next();
  });
  app.use(dumperMiddleware(dumper));
  app.get('/me', (req, res) => res.send(`hello ${req.headers.cookie === 'user=alice' ? 'alice' : 'stranger'}`));
  const m = await serve(app, dumper);
  await (await fetch(m.url + '/me', { headers: { cookie: 'user=alice' } })).text();
  const anon = await fetch(m.url + '/me');
  expect(anon.headers.get('x-cache')).toBe('MISS');
  expect(await anon.text()).toBe('hello stranger');
});

test('a session cookie set in a writeHead hook (cookie-session) stops storage', async () => {
  const dumper = createDumper({ logger: false });
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.use(cookieSession({ name: 'session', keys: ['k'] }));
  app.get('/count', (req, res) => {
    // (Typed loosely: express-session's types, used by another test, claim req.session too.)
    const session = req.session as unknown as { views?: number };
    session.views = (session.views ?? 0) + 1;
    res.send(`seen ${session.views} times`);
  });
  const m = await serve(app, dumper);
  const first = await fetch(m.url + '/count');
  expect(first.headers.get('set-cookie')).toContain('session=');
  await first.text();
  const second = await fetch(m.url + '/count');
  expect(second.headers.get('x-cache')).toBe('MISS');
  expect(await second.text()).toBe('seen 1 times');
});

test('Range, If-Range, If-Match and If-Unmodified-Since go to the app untouched', async () => {
  const dumper = createDumper({ logger: false });
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.get('/file', (_req, res) => res.sendFile(new URL(import.meta.url).pathname));
  const m = await serve(app, dumper);
  await (await fetch(m.url + '/file')).text();
  const ranged = await fetch(m.url + '/file', { headers: { range: 'bytes=0-9' } });
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get('x-cache')).toBe('BYPASS');
  expect(await ranged.text()).toHaveLength(10);
  const stale = await fetch(m.url + '/file', { headers: { range: 'bytes=0-9', 'if-range': '"stale"' } });
  expect(stale.status).toBe(200); // RFC 9110 §13.1.5: a failed If-Range gets the whole representation
  await stale.text();
  const ifMatch = await fetch(m.url + '/file', { headers: { 'if-match': '"nope"' } });
  expect(ifMatch.status).toBe(412);
  await ifMatch.text();
});

test('a POST whose client left before the response ended still invalidates', async () => {
  const dumper = createDumper({ logger: false });
  let value = 'old';
  let finish!: () => void;
  const m = await serve(
    withDumper(dumper, (req, res) => {
      if (req.method === 'POST') {
        value = 'new';
        res.writeHead(200);
        res.write('saving');
        finish = () => res.end();
        return;
      }
      res.end(value);
    }),
    dumper,
  );
  await (await fetch(m.url + '/p')).text();
  await new Promise<void>((resolve) => {
    const req = http.request(m.url + '/p', { method: 'POST' }, (res) => {
      res.once('data', () => {
        req.destroy();
        setTimeout(resolve, 50);
      });
    });
    req.on('error', () => {});
    req.end();
  });
  finish();
  const after = await fetch(m.url + '/p');
  expect(await after.text()).toBe('new');
});

/** A store that answers after a delay, like a remote one. */
class SlowStore extends MemoryStore {
  override get(key: string): StoredEntry | undefined {
    return new Promise((r) => setTimeout(() => r(super.get(key)), 30)) as unknown as StoredEntry | undefined;
  }
  override set(key: string, entry: StoredEntry, options: SetOptions): boolean {
    return super.set(key, entry, options);
  }
}

test('a client leaving while the store is read leaves no render for others to wait on', async () => {
  const dumper = createDumper({ logger: false, store: new SlowStore(), coalesceTimeout: 60_000 });
  const m = await serve(withDumper(dumper, (_req, res) => res.end('page')), dumper);
  await new Promise<void>((resolve) => {
    const req = http.get(m.url + '/p');
    req.on('error', () => {});
    setTimeout(() => {
      req.destroy(); // gone while get() is pending
      setTimeout(resolve, 60);
    }, 5);
  });
  const r = await fetch(m.url + '/p', { signal: AbortSignal.timeout(5000) });
  expect(await r.text()).toBe('page');
  expect((await fetch(m.url + '/p')).headers.get('x-cache')).toBe('HIT');
});

test('a waiting request whose response was answered meanwhile does not crash the process', async () => {
  const dumper = createDumper({ logger: false });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const app = express();
  app.use((req, res, next) => {
    if (req.headers['x-busy']) setTimeout(() => res.status(503).end('busy'), 20);
    next();
  });
  app.use(dumperMiddleware(dumper));
  app.get('/slow', async (_req, res) => {
    await held;
    res.send('slow page');
  });
  const m = await serve(app, dumper);
  const leader = fetch(m.url + '/slow');
  await new Promise((r) => setTimeout(r, 10));
  const follower = await fetch(m.url + '/slow', { headers: { 'x-busy': '1' } });
  expect(follower.status).toBe(503);
  await follower.text();
  release();
  expect(await (await leader).text()).toBe('slow page');
  await new Promise((r) => setTimeout(r, 20));
});

test('a tag from a render that already ended (batched loading) keeps the renders in flight out of the store', async () => {
  const dumper = createDumper({ logger: false, trackRenders: true });
  const batch: Array<() => void> = [];
  let values = new Map([
    ['1', 'a'],
    ['2', 'b'],
  ]);
  // A DataLoader-like batch: the first request schedules it, and it runs in that request's context.
  const load = (id: string) =>
    new Promise<string>((resolve) => {
      batch.push(() => {
        dumper.tag(`item:${id}`);
        resolve(values.get(id)!);
      });
      if (batch.length === 1) setTimeout(() => batch.splice(0).forEach((f) => f()), 30);
    });
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.get('/item/:id', async (req, res) => {
    if (req.params.id === '1') return void res.send('one, not waiting'); // ends before the batch runs
    res.send(`item = ${await load(req.params.id)}`);
  });
  const m = await serve(app, dumper);
  // Request 1 schedules nothing; make it the batch's owner by loading through it first.
  app.get('/owner', async (_req, res) => {
    void load('1');
    res.send('owner done');
  });
  await (await fetch(m.url + '/owner')).text();
  const two = await (await fetch(m.url + '/item/2')).text();
  expect(two).toBe('item = b');
  values = new Map([['2', 'B']]);
  await dumper.invalidateTags('item:2');
  expect(await (await fetch(m.url + '/item/2')).text()).toBe('item = B');
});

test('nothing written after end() is stored', async () => {
  const dumper = createDumper({ logger: false });
  const m = await serve(
    withDumper(dumper, (_req, res) => {
      res.on('error', () => {});
      res.end('sent');
      res.end(' extra');
    }),
    dumper,
  );
  await (await fetch(m.url + '/p')).text();
  const hit = await fetch(m.url + '/p');
  expect(hit.headers.get('x-cache')).toBe('HIT');
  expect(await hit.text()).toBe('sent');
});


test('Express 4: the app sees no ignored parameter in req.query (parsed before any middleware ran)', async () => {
  const { default: express4 } = await import('express4');
  const dumper = createDumper({ logger: false });
  const app = express4();
  app.use(dumperMiddleware(dumper));
  app.get('/search', (req, res) => res.send(`query ${JSON.stringify(req.query)} url ${req.url}`));
  const m = await serve(app, dumper);
  const r = await fetch(m.url + '/search?utm_source=news&q=ice&fbclid=x');
  expect(await r.text()).toBe('query {"q":"ice"} url /search?q=ice');
  const hit = await fetch(m.url + '/search?q=ice');
  expect(hit.headers.get('x-cache')).toBe('HIT');
  await hit.text();
});

test('mounted at a path, the middleware gives the app the normalized URL below the mount', async () => {
  const dumper = createDumper({ logger: false });
  const app = express();
  const blog = express.Router();
  blog.get('/{*rest}', (req, res) => res.send(`url ${req.url} original ${req.originalUrl} q ${JSON.stringify(req.query)}`));
  app.use('/blog', dumperMiddleware(dumper), blog);
  const m = await serve(app, dumper);
  const r = await rawRequest(m.port, `GET /blog/%61b?b=2&utm_medium=x&a=1#frag HTTP/1.1\r\nHost: a.example\r\n\r\n`);
  expect(r.body).toBe('url /ab?a=1&b=2 original /blog/ab?a=1&b=2 q {"a":"1","b":"2"}');
  const hit = await rawRequest(m.port, `GET /blog/ab?a=1&b=2 HTTP/1.1\r\nHost: a.example\r\n\r\n`);
  expect(hit.headers['x-cache']).toBe('HIT');
});

test('mounted at a path, a request for the mount path itself with a query string is stored too', async () => {
  for (const mountAt of ['express', 'connect'] as const) {
    const dumper = createDumper({ logger: false });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => res.end(`url ${req.url}`);
    let listener: http.RequestListener;
    if (mountAt === 'express') {
      const app = express();
      app.use('/blog', dumperMiddleware(dumper), handler);
      listener = app;
    } else {
      const app = connect();
      app.use('/blog', dumperMiddleware(dumper));
      app.use('/blog', handler);
      listener = app;
    }
    const m = await serve(listener, dumper);
    const first = await fetch(m.url + '/blog?b=1&a=1&utm_source=x');
    expect(await first.text()).toBe('url /?a=1&b=1');
    const again = await fetch(m.url + '/blog?a=1&b=1');
    expect(again.headers.get('x-cache')).toBe('HIT');
    await again.text();
  }
});

test('Koa: ctx.href, ctx.originalUrl and ctx.URL are those of the key, so an echoed URL carries nothing the key leaves out', async () => {
  const { default: Koa } = await import('koa');
  const { koaDumper } = await import('../../src/http/koa/index.js');
  const dumper = createDumper({ logger: false });
  const app = new Koa();
  app.use(koaDumper(dumper));
  app.use((ctx) => {
    ctx.body = `<link rel=canonical href="${ctx.href}"> ${ctx.originalUrl} ${ctx.URL.search}`;
  });
  const m = await serve(app.callback(), dumper);
  const attack = await rawRequest(m.port, `GET /page?utm_source=%22%3E%3Cscript%3E#%3Cscript%3E HTTP/1.1\r\nHost: a.example\r\n\r\n`);
  expect(attack.body).not.toContain('script');
  const victim = await rawRequest(m.port, `GET /page HTTP/1.1\r\nHost: a.example\r\n\r\n`);
  expect(victim.headers['x-cache']).toBe('HIT');
  expect(victim.body).toBe('<link rel=canonical href="http://a.example/page"> /page ');
});

test('Fastify: request.query is parsed again from the URL of the key; a custom parser that parses otherwise is never stored', async () => {
  const { default: Fastify } = await import('fastify');
  const { fastifyDumper } = await import('../../src/http/fastify/index.js');
  const qs = await import('node:querystring');
  for (const custom of [false, true]) {
    const dumper = createDumper({ logger: false });
    // A parser that reads `filter[color]` as nested, as `qs` does.
    const nested = (s: string) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(qs.parse(s))) {
        const m = /^(\w+)\[(\w+)\]$/.exec(k);
        if (m) ((out[m[1]!] ??= {}) as Record<string, unknown>)[m[2]!] = v;
        else out[k] = v;
      }
      return out;
    };
    const app = Fastify(custom ? { routerOptions: { querystringParser: nested } } : {});
    await app.register(fastifyDumper, { dumper });
    app.get('/search', async (request) => `results for ${JSON.stringify(request.query)}`);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as import('node:net').AddressInfo).port;
    open.push(() => app.close());
    const attack = await rawRequest(port, `GET /search?q=shoes&filter[color]=blue#%3Cscript%3E HTTP/1.1\r\nHost: a.example\r\n\r\n`);
    // With the default parser the app sees the key's query; with a custom one, the attacker's
    // own page may echo what it sent, but it is not stored.
    if (!custom) expect(attack.body).not.toContain('script');
    const victim = await rawRequest(port, `GET /search?filter[color]=blue&q=shoes HTTP/1.1\r\nHost: a.example\r\n\r\n`);
    expect(victim.body).not.toContain('script');
    expect(victim.body).toBe(custom ? 'results for {"filter":{"color":"blue"},"q":"shoes"}' : 'results for {"filter[color]":"blue","q":"shoes"}');
  }
});

test('HTTP/2: a body written through end() is stored once', async () => {
  const http2 = await import('node:http2');
  const dumper = createDumper({ logger: false });
  const server = http2.createServer(withDumper(dumper, (_req, res) => res.end('one page')) as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  const get = () =>
    new Promise<{ body: string; cache: string }>((resolve, reject) => {
      const s = client.request({ ':path': '/p' });
      let body = '';
      let cache = '';
      s.on('response', (h) => (cache = String(h['x-cache'])));
      s.setEncoding('utf8');
      s.on('data', (d: string) => (body += d));
      s.on('end', () => resolve({ body, cache }));
      s.on('error', reject);
    });
  try {
    expect(await get()).toEqual({ body: 'one page', cache: 'MISS' });
    expect(await get()).toEqual({ body: 'one page', cache: 'HIT' });
  } finally {
    client.close();
    await new Promise((r) => server.close(r));
    await dumper.close();
  }
});
