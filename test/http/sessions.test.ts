/**
 * Nothing personal under default options, with the session libraries people use. Each app greets
 * a logged-in visitor by name ("Hello alice, your basket") and everyone else as a guest; the
 * session cookie is set only at login, by a POST (which the cache never stores). In every case:
 * alice never gets the guest page from the cache, a guest never gets alice's page, the guest page
 * is still cached for guests, and a session that existed before this process (another instance,
 * a restart on a shared store) is covered too, because what decides is what the render read, not
 * which cookies this process has seen being set.
 */
import fastifyCookie from '@fastify/cookie';
import fastifySecureSession from '@fastify/secure-session';
import cookieSession from 'cookie-session';
import express from 'express';
import expressSession from 'express-session';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { createAdaptorServer } from '@hono/node-server';
import Koa from 'koa';
import koaSession from 'koa-session';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { honoDumper } from '../../src/http/hono/index.js';
import { koaDumper } from '../../src/http/koa/index.js';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper, type Store } from '../../src/index.js';
import { listen } from '../support/listen.js';

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

interface App {
  url: string;
  renders: { count: number };
}

/** Makes one instance of an app on a dumper with `store`; several instances may share a store. */
type Make = (dumper: Dumper, renders: { count: number }) => Promise<string>;

async function instance(make: Make, store: Store): Promise<App> {
  const dumper = createDumper({ logger: false, store });
  const renders = { count: 0 };
  const url = await make(dumper, renders);
  open.push(() => dumper.close());
  return { url, renders };
}

async function page(app: App, cookie?: string) {
  const r = await fetch(app.url + '/account', { headers: cookie === undefined ? {} : { cookie } });
  return { body: await r.text(), cache: r.headers.get('x-cache') };
}

/** Logs alice in and returns her cookies, as a browser would send them back. */
async function login(app: App): Promise<string> {
  const r = await fetch(app.url + '/login', { method: 'POST', redirect: 'manual' });
  await r.text();
  const cookies = r.headers.getSetCookie().map((c) => c.split(';')[0]!);
  expect(cookies.length).toBeGreaterThan(0);
  // The POST invalidates its Location once its response has gone out.
  await new Promise((resolve) => setTimeout(resolve, 20));
  return cookies.join('; ');
}

const GUEST = 'Hello guest';
const ALICE = 'Hello alice, your basket';

const apps: Array<[string, Make]> = [
  [
    'express-session (Express)',
    async (dumper, renders) => {
      const app = express();
      app.use(dumperMiddleware(dumper));
      app.use(expressSession({ secret: 's', resave: false, saveUninitialized: false, store: sharedExpressStore }));
      app.post('/login', (req, res) => {
        req.session.user = 'alice';
        res.redirect(303, '/account');
      });
      app.get('/account', (req, res) => {
        renders.count++;
        const user = req.session.user;
        res.send(user ? `Hello ${user}, your basket` : GUEST);
      });
      return (await serve(app)).url;
    },
  ],
  [
    'cookie-session (Express)',
    async (dumper, renders) => {
      const app = express();
      app.use(dumperMiddleware(dumper));
      app.use(cookieSession({ name: 'session', keys: ['k'] }));
      app.post('/login', (req, res) => {
        req.session!.user = 'alice';
        res.redirect(303, '/account');
      });
      app.get('/account', (req, res) => {
        renders.count++;
        const user = req.session?.user as string | undefined;
        res.send(user ? `Hello ${user}, your basket` : GUEST);
      });
      return (await serve(app)).url;
    },
  ],
  [
    'a handler reading the Cookie header itself (node:http behind Express)',
    async (dumper, renders) => {
      const app = express();
      app.use(dumperMiddleware(dumper));
      app.post('/login', (_req, res) => {
        res.setHeader('set-cookie', 'user=alice; Path=/');
        res.redirect(303, '/account');
      });
      app.get('/account', (req, res) => {
        renders.count++;
        const user = /(?:^|;\s*)user=([^;]*)/.exec(req.headers.cookie ?? '')?.[1];
        res.send(user ? `Hello ${user}, your basket` : GUEST);
      });
      return (await serve(app)).url;
    },
  ],
  [
    'koa-session (Koa)',
    async (dumper, renders) => {
      const app = new Koa();
      app.keys = ['k'];
      app.use(koaDumper(dumper));
      app.use(koaSession({ key: 'koa.sess', signed: true }, app));
      app.use(async (ctx) => {
        if (ctx.method === 'POST' && ctx.path === '/login') {
          ctx.session!.user = 'alice';
          ctx.status = 303;
          ctx.set('location', '/account');
          return;
        }
        if (ctx.path !== '/account') return;
        renders.count++;
        const user = ctx.session?.user as string | undefined;
        ctx.body = user ? `Hello ${user}, your basket` : GUEST;
      });
      return (await serve(app.callback())).url;
    },
  ],
  [
    '@fastify/secure-session, registered after the dumper (Fastify)',
    (dumper, renders) => fastifyApp(dumper, renders, 'after'),
  ],
  [
    '@fastify/secure-session, registered before the dumper (Fastify)',
    (dumper, renders) => fastifyApp(dumper, renders, 'before'),
  ],
  [
    "Hono's getCookie (fetch adapter)",
    async (dumper, renders) => {
      const app = new Hono();
      app.use(honoDumper(dumper));
      app.post('/login', (c) => {
        setCookie(c, 'user', 'alice', { path: '/' });
        return c.redirect('/account', 303);
      });
      app.get('/account', (c) => {
        renders.count++;
        const user = getCookie(c, 'user');
        return c.text(user ? `Hello ${user}, your basket` : GUEST);
      });
      return (await listen(createAdaptorServer({ fetch: app.fetch }) as http.Server).then((m) => (open.push(m.close), m))).url;
    },
  ],
];

/** express-session keeps sessions in this store, shared by every instance (a restart keeps them). */
const sharedExpressStore = new expressSession.MemoryStore();
const SECURE_KEY = Buffer.alloc(32, 7);

async function fastifyApp(dumper: Dumper, renders: { count: number }, order: 'before' | 'after'): Promise<string> {
  const app = Fastify();
  const session = async () => {
    await app.register(fastifyCookie);
    await app.register(fastifySecureSession, { key: SECURE_KEY, cookie: { path: '/' } });
  };
  if (order === 'before') await session();
  await app.register(fastifyDumper, { dumper });
  if (order === 'after') await session();
  app.post('/login', async (request, reply) => {
    request.session.set('user', 'alice');
    return reply.redirect('/account', 303);
  });
  app.get('/account', async (request) => {
    renders.count++;
    const user = request.session.get('user') as string | undefined;
    return user ? `Hello ${user}, your basket` : GUEST;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  open.push(() => app.close());
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function serve(listener: http.RequestListener) {
  const m = await listen(listener);
  open.push(m.close);
  return m;
}

declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

declare module '@fastify/secure-session' {
  interface SessionData {
    user: string;
  }
}

describe.each(apps)('nothing personal: %s', (_, make) => {
  test("a guest never gets alice's page, alice never gets the guest page, and guests still get hits", async () => {
    const app = await instance(make, new MemoryStore());
    const alice = await login(app);
    expect((await page(app, alice)).body).toBe(ALICE);
    const guest = await page(app);
    expect(guest.body).toBe(GUEST);
    expect(guest.cache).toBe('MISS');
    expect(await page(app)).toEqual({ body: GUEST, cache: 'HIT' });
    const again = await page(app, alice);
    expect(again.body).toBe(ALICE);
    expect(again.cache).toBe('MISS');
    // An analytics cookie alone still gets the cached guest page.
    expect(await page(app, '_ga=GA1.1.42')).toEqual({ body: GUEST, cache: 'HIT' });
    expect((await page(app, `${alice}; _ga=GA1.1.42`)).body).toBe(ALICE);
  });

  test('a session from before this process (another instance on the same store) is covered', async () => {
    const store = new MemoryStore();
    const first = await instance(make, store);
    const alice = await login(first);
    const second = await instance(make, store);
    expect(await page(second)).toEqual({ body: GUEST, cache: 'MISS' });
    expect(await page(second)).toEqual({ body: GUEST, cache: 'HIT' });
    // The second instance never saw alice log in, and still does not give her the guest page.
    expect((await page(second, alice)).body).toBe(ALICE);
    expect((await page(first, alice)).body).toBe(ALICE);
  });
});

/**
 * Ways an app can look at the cookies other than reading `cookie` from the headers: each is
 * noticed. First alice (with her cookie), then a guest: the guest must never get alice's page;
 * or first a guest, then alice: alice must never get the guest's page.
 */
describe('cookie reads that go around req.headers.cookie', () => {
  const hello = (cookie: string | undefined | null) => {
    const user = /(?:^|;\s*)user=([^;]*)/.exec(cookie ?? '')?.[1];
    return user ? `Hello ${user}` : 'Hello guest';
  };
  const cases: Array<[string, (dumper: Dumper) => Promise<string>]> = [
    [
      'Express: req.rawHeaders',
      async (dumper) => {
        const app = express();
        app.use(dumperMiddleware(dumper));
        app.get('/account', (req, res) => {
          const i = req.rawHeaders.findIndex((h) => h.toLowerCase() === 'cookie');
          res.send(hello(i === -1 ? undefined : req.rawHeaders[i + 1]));
        });
        return (await serve(app)).url;
      },
    ],
    [
      'Express: req.headersDistinct',
      async (dumper) => {
        const app = express();
        app.use(dumperMiddleware(dumper));
        app.get('/account', (req, res) => res.send(hello(req.headersDistinct.cookie?.[0])));
        return (await serve(app)).url;
      },
    ],
    [
      'Express: a copy of the headers',
      async (dumper) => {
        const app = express();
        app.use(dumperMiddleware(dumper));
        app.get('/account', (req, res) => {
          const copy: Record<string, unknown> = { ...req.headers };
          res.send(hello(copy.cookie as string | undefined));
        });
        return (await serve(app)).url;
      },
    ],
    [
      "withDumper in front of @hono/node-server's listener: c.req.header()",
      async (dumper) => {
        const { getRequestListener } = await import('@hono/node-server');
        const app = new Hono();
        app.get('/account', (c) => c.text(hello(c.req.header()['cookie'])));
        return (await serve(withDumper(dumper, getRequestListener(app.fetch)))).url;
      },
    ],
    [
      "honoDumper: the Node request (c.env.incoming)",
      async (dumper) => {
        const app = new Hono<{ Bindings: { incoming: http.IncomingMessage } }>();
        app.use(honoDumper(dumper));
        app.get('/account', (c) => c.text(hello(c.env.incoming.headers.cookie)));
        const m = await listen(createAdaptorServer({ fetch: app.fetch }) as http.Server);
        open.push(m.close);
        return m.url;
      },
    ],
    [
      'honoDumper: a clone of the request',
      async (dumper) => {
        const app = new Hono();
        app.use(honoDumper(dumper));
        app.get('/account', (c) => c.text(hello(c.req.raw.clone().headers.get('cookie'))));
        const m = await listen(createAdaptorServer({ fetch: app.fetch }) as http.Server);
        open.push(m.close);
        return m.url;
      },
    ],
  ];

  describe.each(cases)('%s', (_, make) => {
    async function get(url: string, cookie?: string) {
      const r = await fetch(url + '/account', { headers: cookie === undefined ? {} : { cookie } });
      return { body: await r.text(), cache: r.headers.get('x-cache') };
    }

    test("a guest after alice never gets alice's page", async () => {
      const dumper = createDumper({ logger: false });
      open.push(() => dumper.close());
      const url = await make(dumper);
      expect((await get(url, 'user=alice')).body).toBe('Hello alice');
      expect((await get(url)).body).toBe('Hello guest');
      expect((await get(url)).body).toBe('Hello guest');
      expect((await get(url, 'user=bob')).body).toBe('Hello bob');
    });

    test("alice after a guest never gets the guest's page", async () => {
      const dumper = createDumper({ logger: false });
      open.push(() => dumper.close());
      const url = await make(dumper);
      expect((await get(url)).body).toBe('Hello guest');
      expect((await get(url, 'user=alice')).body).toBe('Hello alice');
    });
  });
});
