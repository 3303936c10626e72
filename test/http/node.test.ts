import type http from 'node:http';
import connect from 'connect';
import express from 'express';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { nodeRequest, writeNode, type Site } from '../support/site.js';

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
