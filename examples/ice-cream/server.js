/**
 * page-dumper demo: an ice cream parlour (the example of django-dumper's README) on Express 5,
 * TypeORM and SQLite. Every public page is cached forever and invalidated the moment the admin
 * changes what it shows.
 *
 *   npm start                      # builds dist/ if needed, then runs this file
 *   PORT=4000 DATABASE=/tmp/x.sqlite node examples/ice-cream/server.js
 *   DEBUG=dumper npm start         # log every cache decision and invalidation
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { createDumper } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';
import { typeormDumper } from 'page-dumper/typeorm';
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

  const dataSource = await openDatabase(database ?? process.env.DATABASE ?? DEFAULT_DATABASE);
  // Every write TypeORM makes to a registered model (saves, removes, many-to-many changes,
  // update() and delete() by criteria) now invalidates the pages that show the row.
  const invalidation = typeormDumper(dumper, dataSource);

  const app = express();
  app.disable('x-powered-by');
  // First, so a hit skips everything after it. The alternative is the front door, which answers
  // hits before Express runs at all:  http.createServer(withDumper(dumper, app))  (page-dumper/node).
  app.use(dumperMiddleware(dumper));
  app.use('/admin', adminRoutes(dataSource));
  app.use(siteRoutes(dataSource));
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
      if (dataSource.isInitialized) await dataSource.destroy();
    })());

  return { app, dumper, dataSource, close };
}

async function main() {
  const { app, close } = await createApp();
  const server = http.createServer(app);
  const port = Number(process.env.PORT ?? 3000);
  server.on('error', (error) => {
    // One line for the usual mistake (another server on the port), the message for the rest.
    console.error(
      /** @type {NodeJS.ErrnoException} */ (error).code === 'EADDRINUSE'
        ? `page-dumper demo: port ${port} is already in use; start it on another one with PORT=<port>`
        : `page-dumper demo: ${error.message}`,
    );
    void close().finally(() => process.exit(1));
  });
  server.listen(port, () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    console.log(`page-dumper demo: http://localhost:${port}/ice-cream/`);
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
