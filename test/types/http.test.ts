/**
 * The public types of the HTTP adapters: `page-dumper/node`, `/fetch`, `/hono`, `/koa` and
 * `/fastify`. Each takes a dumper and fits where its framework expects a handler or middleware.
 * Checked by `npm run typecheck`; each `@ts-expect-error` marks a mistake that must stay a type
 * error. The mistakes sit in functions that are never called (each would throw).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { Hono, type MiddlewareHandler } from 'hono';
import Koa, { type Middleware } from 'koa';
import { describe, expectTypeOf, test } from 'vitest';
import { createDumper, type Dumper } from '../../src/index.js';
import { dumperMiddleware, withDumper, type DumperMiddleware } from '../../src/http/node/index.js';
import { dumperFetch, type FetchHandler } from '../../src/http/fetch/index.js';
import honoDefault, { honoDumper } from '../../src/http/hono/index.js';
import koaDefault, { koaDumper } from '../../src/http/koa/index.js';
import fastifyDefault, { fastifyDumper, type FastifyDumperOptions } from '../../src/http/fastify/index.js';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

describe('HTTP adapter types', () => {
  test('page-dumper/node: a request listener and Connect/Express middleware', async () => {
    const dumper = createDumper({ logger: false });
    expectTypeOf(withDumper).parameters.toEqualTypeOf<[dumper: Dumper, listener: Listener]>();
    expectTypeOf(withDumper).returns.toEqualTypeOf<Listener>();
    expectTypeOf(dumperMiddleware).parameters.toEqualTypeOf<[dumper: Dumper]>();
    expectTypeOf(dumperMiddleware).returns.toEqualTypeOf<DumperMiddleware>();
    const app = express();
    app.use(dumperMiddleware(dumper));
    const server = createServer(withDumper(dumper, app));
    expectTypeOf(server.listen).toBeFunction();
    const mistakes = () => {
      // @ts-expect-error the dumper comes first
      withDumper(app, dumper);
      // @ts-expect-error a listener, not a path
      withDumper(dumper, '/');
      // @ts-expect-error dumperMiddleware takes the dumper, not options
      dumperMiddleware({ dumper });
    };
    expectTypeOf(mistakes).toBeFunction();
    await dumper.close();
  });

  test('page-dumper/fetch: wraps a fetch handler, keeping its extra arguments', async () => {
    const dumper = createDumper({ logger: false });
    const plain = dumperFetch(dumper, (request) => new Response(request.url));
    expectTypeOf(plain).toEqualTypeOf<FetchHandler<[]>>();
    expectTypeOf(plain).parameters.toEqualTypeOf<[request: Request]>();
    expectTypeOf(plain).returns.toEqualTypeOf<Response | Promise<Response>>();
    // Cloudflare-style (request, env, ctx) keeps its arguments' types.
    const worker = dumperFetch(dumper, async (request: Request, env: { DB: string }, ctx: { waitUntil(p: Promise<unknown>): void }) => {
      ctx.waitUntil(Promise.resolve());
      return new Response(env.DB);
    });
    expectTypeOf(worker).parameters.toEqualTypeOf<[request: Request, env: { DB: string }, ctx: { waitUntil(p: Promise<unknown>): void }]>();
    // Hono's app.fetch fits as it is.
    const hono = new Hono();
    expectTypeOf(dumperFetch(dumper, hono.fetch)).toBeFunction();
    const mistakes = () => {
      // @ts-expect-error a handler returns a Response
      dumperFetch(dumper, () => 'hello');
      // @ts-expect-error the dumper comes first
      dumperFetch(hono.fetch, dumper);
      // @ts-expect-error the extra arguments keep their types
      void worker(new Request('http://x/'), { DB: 1 }, { waitUntil() {} });
    };
    expectTypeOf(mistakes).toBeFunction();
    await dumper.close();
  });

  test('page-dumper/hono and page-dumper/koa: framework middleware', async () => {
    const dumper = createDumper({ logger: false });
    expectTypeOf(honoDumper).parameters.toEqualTypeOf<[dumper: Dumper]>();
    expectTypeOf(honoDumper).returns.toEqualTypeOf<MiddlewareHandler>();
    expectTypeOf(honoDefault).toEqualTypeOf(honoDumper);
    new Hono().use(honoDumper(dumper));
    expectTypeOf(koaDumper).parameters.toEqualTypeOf<[dumper: Dumper]>();
    expectTypeOf(koaDumper).returns.toEqualTypeOf<Middleware>();
    expectTypeOf(koaDefault).toEqualTypeOf(koaDumper);
    new Koa().use(koaDumper(dumper));
    const mistakes = () => {
      // @ts-expect-error honoDumper takes the dumper, not options
      honoDumper({ dumper });
      // @ts-expect-error koaDumper takes the dumper, not the app
      koaDumper(new Koa());
    };
    expectTypeOf(mistakes).toBeFunction();
    await dumper.close();
  });

  test('page-dumper/fastify: a plugin with a typed option and decorator', async () => {
    const dumper = createDumper({ logger: false });
    expectTypeOf(fastifyDefault).toEqualTypeOf(fastifyDumper);
    expectTypeOf<FastifyDumperOptions>().toEqualTypeOf<{ dumper: Dumper }>();
    const app = Fastify();
    await app.register(fastifyDumper, { dumper });
    expectTypeOf(app.dumper).toEqualTypeOf<Dumper>();
    const mistakes = async () => {
      // @ts-expect-error the dumper option is required
      await app.register(fastifyDumper, {});
      // @ts-expect-error the option is named dumper
      await app.register(fastifyDumper, { cache: dumper });
    };
    expectTypeOf(mistakes).toBeFunction();
    await app.close();
    await dumper.close();
  });
});
