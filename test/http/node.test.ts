import http from 'node:http';
import type { AddressInfo } from 'node:net';
import connect from 'connect';
import express from 'express';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { httpBehaviourSuite, type Mounted } from '../support/behaviour.js';
import { nodeRequest, writeNode, type Site } from '../support/site.js';

export function listen(listener: http.RequestListener): Promise<Mounted> {
  return new Promise((resolve) => {
    const server = http.createServer(listener);
    server.keepAliveTimeout = 100;
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

const plain = (site: Site): http.RequestListener => (req, res) => {
  site.handle(nodeRequest(req)).then((r) => writeNode(res, r));
};

function expressApp(site: Site) {
  const app = express();
  app.set('etag', 'strong');
  app.all('/{*rest}', (req, res) => {
    site.handle(nodeRequest(req, req.originalUrl)).then((r) => writeNode(res, r));
  });
  return app;
}

httpBehaviourSuite('withDumper(node:http listener)', (dumper, site) => listen(withDumper(dumper, plain(site))));

httpBehaviourSuite('withDumper(Express app)', (dumper, site) => listen(withDumper(dumper, expressApp(site))));

httpBehaviourSuite('dumperMiddleware in Express', (dumper, site) => {
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.all('/{*rest}', (req, res) => {
    site.handle(nodeRequest(req, req.originalUrl)).then((r) => writeNode(res, r));
  });
  return listen(app);
});

httpBehaviourSuite('dumperMiddleware in Connect', (dumper, site) => {
  const app = connect();
  app.use(dumperMiddleware(dumper));
  app.use(plain(site) as connect.SimpleHandleFunction);
  return listen(app);
});
