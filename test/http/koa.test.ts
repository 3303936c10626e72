import Koa from 'koa';
import { koaDumper } from '../../src/http/koa/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { bodyValue, nodeRequest } from '../support/site.js';

httpBehaviourSuite('koaDumper in Koa', (dumper, site) => {
  const app = new Koa();
  app.use(koaDumper(dumper));
  app.use(async (ctx) => {
    const r = await site.handle(nodeRequest(ctx.req, ctx.url));
    ctx.status = r.status;
    for (const [k, v] of Object.entries(r.headers)) ctx.set(k, v);
    ctx.body = bodyValue(r);
  });
  return listen(app.callback());
});
