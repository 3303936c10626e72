/**
 * page-dumper demo on Sequelize: the ice cream parlour of examples/ice-cream (Express 5, SQLite),
 * with Sequelize 6 instead of TypeORM. Every public page is cached forever and invalidated the
 * moment the admin changes what it shows: sequelizeDumper() adds hooks to the Sequelize instance,
 * which see every write of its models.
 *
 *   npm run build:if-needed                           # dist/
 *   node examples/ice-cream-sequelize/server.js
 *   PORT=4000 DATABASE=/tmp/x.sqlite DEBUG=dumper node examples/ice-cream-sequelize/server.js
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { createDumper } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';
import { sequelizeDumper } from 'page-dumper/sequelize';
import { adminRoutes } from './admin.js';
import { DEFAULT_DATABASE, openDatabase } from './db.js';
import { siteRoutes } from './site.js';

/**
 * Builds the app. For tests: `const { app, close } = await createApp({ database: ':memory:' })`.
 * @param {{ database?: string, logger?: import('page-dumper').DumperLogger | false }} [options]
 */
export async function createApp({ database, logger } = {}) {
  // Defaults: a MemoryStore in this process, /admin/ ignored, X-Cache: HIT | MISS | BYPASS.
  const dumper = createDumper(logger === undefined ? {} : { logger });
  const { sequelize, models } = await openDatabase(database ?? process.env.DATABASE ?? DEFAULT_DATABASE);
  // As in django-dumper: each model class knows its pages (dependentPaths, in models.js).
  dumper.register(models.IceCream);
  dumper.register(models.Size);
  // Every write of a registered model (or of a link between two) invalidates its pages.
  const integration = sequelizeDumper(dumper, sequelize);

  const app = express();
  app.disable('x-powered-by');
  // First, so a hit skips everything after it.
  app.use(dumperMiddleware(dumper));
  app.use('/admin', adminRoutes(sequelize));
  app.use(siteRoutes());
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
      integration.close();
      await dumper.close();
      await sequelize.close();
    })());

  return { app, dumper, sequelize, models, close };
}

async function main() {
  const { app, close } = await createApp();
  const server = http.createServer(app);
  const port = Number(process.env.PORT ?? 3000);
  server.on('error', (error) => {
    // One line for the usual mistake (another server on the port), the message for the rest.
    console.error(
      /** @type {NodeJS.ErrnoException} */ (error).code === 'EADDRINUSE'
        ? `page-dumper Sequelize demo: port ${port} is already in use; start it on another one with PORT=<port>`
        : `page-dumper Sequelize demo: ${error.message}`,
    );
    void close().finally(() => process.exit(1));
  });
  server.listen(port, () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
    console.log(`page-dumper Sequelize demo: http://localhost:${port}/ice-cream/`);
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
