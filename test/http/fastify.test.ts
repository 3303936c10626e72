import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { expect, expectTypeOf, test } from 'vitest';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
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
