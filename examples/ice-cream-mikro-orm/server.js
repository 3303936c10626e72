/**
 * page-dumper demo on MikroORM: the ice cream parlour of examples/ice-cream (Express 5, SQLite),
 * with MikroORM 6 (@mikro-orm/better-sqlite) instead of TypeORM. Every public page is cached
 * forever and invalidated the moment the admin changes what it shows: mikroOrmDumper() watches
 * every flush (and native write) of the ORM.
 *
 *   npm run build:if-needed                             # dist/
 *   node examples/ice-cream-mikro-orm/server.js
 *   PORT=4000 DATABASE=/tmp/x.sqlite DEBUG=dumper node examples/ice-cream-mikro-orm/server.js
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RequestContext } from '@mikro-orm/core';
import express from 'express';
import { createDumper } from 'page-dumper';
import { mikroOrmDumper } from 'page-dumper/mikro-orm';
import { dumperMiddleware } from 'page-dumper/node';
import { adminRoutes } from './admin.js';
import { DEFAULT_DATABASE, openDatabase } from './db.js';
import { IceCream, Size } from './models.js';
import { siteRoutes } from './site.js';

/**
 * Builds the app. For tests: `const { app, close } = await createApp({ database: ':memory:' })`.
 * @param {{ database?: string, logger?: import('page-dumper').DumperLogger | false }} [options]
 */
export async function createApp({ database, logger } = {}) {
  // Defaults: a MemoryStore in this process, /admin/ ignored, X-Cache: HIT | MISS | BYPASS.
  const dumper = createDumper(logger === undefined ? {} : { logger });
  dumper.register(IceCream);
  dumper.register(Size);

  const orm = await openDatabase(database ?? process.env.DATABASE ?? DEFAULT_DATABASE);
  // Every write MikroORM makes to a registered entity (flushes: creates, updates, deletes,
  // many-to-many changes; nativeUpdate(), nativeDelete(), QueryBuilder writes...) now
  // invalidates the pages that show the row.
  const invalidation = mikroOrmDumper(dumper, orm);

  const app = express();
  app.disable('x-powered-by');
  // First, so a hit skips everything after it (no entity manager is even forked for it).
  app.use(dumperMiddleware(dumper));
  // A fresh identity map per request: `orm.em` is this request's fork inside it.
  app.use((req, res, next) => RequestContext.create(orm.em, next));
  app.use('/admin', adminRoutes(orm));
  app.use(siteRoutes(orm));
  app.use((req, res) => {
    res.status(404).type('text').send('Not found');
  });
  app.use((error, req, res, next) => {
    console.error(error);
    if (res.headersSent) return next(error);
    res.status(500).type('text').send('Internal server error');
  });

  let closing;
  const close = () =>
    (closing ??= (async () => {
      invalidation.close();
      await dumper.close();
      await orm.close(true);
    })());

  return { app, dumper, orm, close };
}

async function main() {
  const { app, close } = await createApp();
  const server = http.createServer(app);
  const port = Number(process.env.PORT ?? 3000);
  server.on('error', (error) => {
    // One line for the usual mistake (another server on the port), the message for the rest.
    console.error(
      /** @type {NodeJS.ErrnoException} */ (error).code === 'EADDRINUSE'
        ? `page-dumper MikroORM demo: port ${port} is already in use; start it on another one with PORT=<port>`
        : `page-dumper MikroORM demo: ${error.message}`,
    );
    void close().finally(() => process.exit(1));
  });
  server.listen(port, () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    console.log(`page-dumper MikroORM demo: http://localhost:${port}/ice-cream/`);
  });

  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1); // a second Ctrl-C: do not wait
    stopping = true;
    server.close();
    server.closeAllConnections();
    close().then(
      () => process.exit(0),
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) await main();
