/**
 * page-dumper with NestJS 11, on either platform:
 *
 *   npm run build:if-needed && npx tsc -p examples/nestjs/tsconfig.json
 *   node examples/nestjs/dist/main.js                               # Express: app.use(dumperMiddleware(dumper))
 *   PLATFORM=express-front-door node examples/nestjs/dist/main.js   # Express behind withDumper()
 *   PLATFORM=fastify node examples/nestjs/dist/main.js              # Fastify: app.register(fastifyDumper, { dumper })
 *   PORT=0 node examples/nestjs/dist/main.js                        # any free port
 *
 *   curl -si localhost:3000/ice-cream | grep -i x-cache            # MISS, then HIT
 *   curl -si -X POST localhost:3000/admin/ice-cream/vanilla -H 'content-type: application/json' -d '{"name":"Vanilla bean"}'
 *   curl -si -X POST localhost:3000/admin/specials -H 'content-type: application/json' -d '{"slugs":["chocolate"]}'
 */
import 'reflect-metadata';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import express from 'express';
import { Dumper } from 'page-dumper';
import { fastifyDumper } from 'page-dumper/fastify';
import { dumperMiddleware, withDumper } from 'page-dumper/node';
import { AppModule } from './app.module.js';

export type Platform = 'express' | 'express-front-door' | 'fastify';

const logger: LogLevel[] = ['error', 'warn'];

/** Nest on Express, with the dumper as the first Express middleware. */
export async function createExpressApp(): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger });
  const dumper = app.get(Dumper);
  // Before listen() (or init()): Nest mounts its body parsers and routes then, after this.
  app.use(dumperMiddleware(dumper));
  return app;
}

/** Nest on Fastify, with the dumper registered as a Fastify plugin. */
export async function createFastifyApp(): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(AppModule, new FastifyAdapter(), { logger });
  const dumper = app.get(Dumper);
  // Before listen() (or init()), so its hooks apply to every route Nest adds then.
  await app.register(fastifyDumper, { dumper });
  return app;
}

/**
 * Nest on Express behind the front door: hits are answered before Express and Nest run at all.
 * Nest does not listen itself: `app.init()`, then a node server around the Express instance.
 */
export async function createExpressFrontDoor(): Promise<{ app: NestExpressApplication; server: http.Server }> {
  const instance = express();
  const app = await NestFactory.create<NestExpressApplication>(AppModule, new ExpressAdapter(instance), { logger });
  await app.init();
  const dumper = app.get(Dumper);
  const server = http.createServer(withDumper(dumper, instance));
  return { app, server };
}

/** Starts the site: `const { url, close } = await start({ platform: 'fastify', port: 0 })`. */
export async function start({ platform = 'express', port = 3000, host }: { platform?: Platform; port?: number; host?: string } = {}) {
  let app: INestApplication;
  let address: AddressInfo;
  let close: () => Promise<void>;
  if (platform === 'express-front-door') {
    const made = await createExpressFrontDoor();
    app = made.app;
    const { server } = made;
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
    address = server.address() as AddressInfo;
    close = async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await app.close(); // closes the dumper too (DumperModule.onApplicationShutdown)
    };
  } else {
    app = platform === 'fastify' ? await createFastifyApp() : await createExpressApp();
    await app.listen(port, host ?? 'localhost');
    address = app.getHttpServer().address() as AddressInfo;
    close = () => app.close();
  }
  return { url: `http://${host ?? 'localhost'}:${address.port}/ice-cream`, app, close };
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const platform = (process.env.PLATFORM ?? 'express') as Platform;
  const port = Number(process.env.PORT ?? 3000);
  const { url, close } = await start({ platform, port, host: process.env.HOST }).catch((error: NodeJS.ErrnoException) => {
    // One line for the usual mistake (another server on the port); anything else as it is.
    if (error.code !== 'EADDRINUSE') throw error;
    console.error(`page-dumper nestjs example: port ${port} is already in use; start it on another one with PORT=<port>`);
    process.exit(1);
  });
  console.log(`page-dumper nestjs example (${platform}): ${url}`);
  const stop = () => void close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
