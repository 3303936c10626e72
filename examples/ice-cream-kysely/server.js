/**
 * page-dumper demo on Kysely: the ice cream parlour of examples/ice-cream (Express 5, SQLite),
 * with Kysely and better-sqlite3 instead of TypeORM. Every public page is
 * cached forever and invalidated the moment the admin changes what it shows: the Kysely instance
 * is wrapped by kyselyDumper(), which sees every write.
 *
 *   npm run build:if-needed                           # dist/
 *   node examples/ice-cream-kysely/server.js
 *   PORT=4000 DATABASE=/tmp/x.sqlite DEBUG=dumper node examples/ice-cream-kysely/server.js
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { createDumper } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';
import { kyselyDumper } from 'page-dumper/kysely';
import { adminRoutes } from './admin.js';
import { DEFAULT_DATABASE, openDatabase } from './db.js';
import { registerModels } from './models.js';
import { siteRoutes } from './site.js';

/**
 * Builds the app. For tests: `const { app, close } = await createApp({ database: ':memory:' })`.
 * @param {{ database?: string, logger?: import('page-dumper').DumperLogger | false }} [options]
 */
export async function createApp({ database, logger } = {}) {
  // Defaults: a MemoryStore in this process, /admin/ ignored, X-Cache: HIT | MISS | BYPASS.
  const dumper = createDumper(logger === undefined ? {} : { logger });
  const { db: plain, sqlite } = await openDatabase(database ?? process.env.DATABASE ?? DEFAULT_DATABASE);
  registerModels(dumper, sqlite);
  // Every write through `db` invalidates the pages of the rows it changes.
  const db = kyselyDumper(dumper, plain);

  const app = express();
  app.disable('x-powered-by');
  // First, so a hit skips everything after it.
  app.use(dumperMiddleware(dumper));
  app.use('/admin', adminRoutes(db));
  app.use(siteRoutes(db));
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
      await dumper.close();
      await db.destroy();
    })());

  return { app, dumper, db, close };
}

async function main() {
  const { app, close } = await createApp();
  const server = http.createServer(app);
  const port = Number(process.env.PORT ?? 3000);
  server.on('error', (error) => {
    // One line for the usual mistake (another server on the port), the message for the rest.
    console.error(
      /** @type {NodeJS.ErrnoException} */ (error).code === 'EADDRINUSE'
        ? `page-dumper Kysely demo: port ${port} is already in use; start it on another one with PORT=<port>`
        : `page-dumper Kysely demo: ${error.message}`,
    );
    void close().finally(() => process.exit(1));
  });
  server.listen(port, () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    console.log(`page-dumper Kysely demo: http://localhost:${port}/ice-cream/`);
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
