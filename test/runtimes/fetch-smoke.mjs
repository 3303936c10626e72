/**
 * `page-dumper/fetch` on the runtime that runs this file: Node, Bun or Deno. It imports the built
 * package (dist/), serves a fetch handler wrapped by `dumperFetch` with the runtime's own server
 * (`Bun.serve`, `Deno.serve`, or node:http on Node), and checks over real HTTP that a page is a
 * MISS and then a HIT without calling the app, that its ETag answers a conditional GET with 304,
 * and that `changed()` of a registered model invalidates it. Prints `ok <runtime> <version>` and
 * exits 0, or prints what differed and exits 1. test/runtimes/runtimes.test.ts runs it.
 */
import { createServer } from 'node:http';
import { createDumper, MemoryStore } from '../../dist/index.js';
import { dumperFetch } from '../../dist/http/fetch/index.js';

const runtime = typeof Bun !== 'undefined' ? 'bun' : typeof Deno !== 'undefined' ? 'deno' : 'node';
const version = runtime === 'bun' ? Bun.version : runtime === 'deno' ? Deno.version.deno : process.versions.node;

const flavors = new Map([['vanilla', 'Vanilla']]);
let renders = 0;

async function app(request) {
  const slug = new URL(request.url).pathname.split('/')[2] ?? '';
  const name = flavors.get(slug);
  if (name === undefined) return new Response('not found', { status: 404 });
  renders += 1;
  return new Response(`<h1>${name}</h1>`, { headers: { 'content-type': 'text/html; charset=utf-8' } });
}

const dumper = createDumper({ store: new MemoryStore(), logger: false });
dumper.register('Flavor', { dependentPaths: (row) => [`/flavors/${row.slug}/`] });
const handler = dumperFetch(dumper, app);

/** Serves `handler` on a loopback port with this runtime's server; resolves its origin and a stop function. */
async function serve() {
  if (runtime === 'bun') {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: handler });
    return { origin: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
  }
  if (runtime === 'deno') {
    const { promise, resolve } = Promise.withResolvers();
    const server = Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: resolve }, handler);
    const { port } = await promise;
    return { origin: `http://127.0.0.1:${port}`, stop: () => server.shutdown() };
  }
  // Node has no fetch server of its own: a node:http server that hands the handler a Request.
  const server = createServer(async (req, res) => {
    const response = await handler(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers: req.headers }));
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((resolve) => server.close(resolve)) };
}

const failures = [];
function check(what, actual, expected) {
  if (actual !== expected) failures.push(`${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
}

/**
 * GETs `path` until its cache status is `status`, at most `tries` times: a miss is stored once its
 * body has been sent, which may be just after the client has read it.
 */
async function getUntil(origin, path, status, tries = 50) {
  for (let i = 1; ; i++) {
    const response = await fetch(origin + path);
    const text = await response.text();
    if (response.headers.get('x-cache') === status || i === tries) return { headers: response.headers, text };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const { origin, stop } = await serve();
try {
  const miss = await fetch(`${origin}/flavors/vanilla/`);
  check('first GET status', miss.status, 200);
  check('first GET X-Cache', miss.headers.get('x-cache'), 'MISS');
  check('first GET body', await miss.text(), '<h1>Vanilla</h1>');
  check('renders after the miss', renders, 1);

  const hit = await getUntil(origin, '/flavors/vanilla/', 'HIT');
  check('second GET X-Cache', hit.headers.get('x-cache'), 'HIT');
  check('second GET body', hit.text, '<h1>Vanilla</h1>');
  check('renders after the hit', renders, 1);
  const etag = hit.headers.get('etag');
  check('the hit has an ETag', typeof etag === 'string' && etag.length > 2, true);

  const conditional = await fetch(`${origin}/flavors/vanilla/`, { headers: { 'if-none-match': etag ?? '' } });
  check('conditional GET status', conditional.status, 304);
  check('conditional GET body', await conditional.text(), '');
  check('renders after the 304', renders, 1);

  flavors.set('vanilla', 'Vanilla Bean');
  await dumper.changed('Flavor', { slug: 'vanilla' });
  const after = await fetch(`${origin}/flavors/vanilla/`);
  check('GET after changed() X-Cache', after.headers.get('x-cache'), 'MISS');
  check('GET after changed() body', await after.text(), '<h1>Vanilla Bean</h1>');
  check('renders after changed()', renders, 2);
  const again = await getUntil(origin, '/flavors/vanilla/', 'HIT');
  check('the new page is stored', again.headers.get('x-cache'), 'HIT');
  check('the stored page is the new one', again.text, '<h1>Vanilla Bean</h1>');
} finally {
  await stop();
  await dumper.close();
}

if (failures.length > 0) {
  console.log(`failed ${runtime} ${version}\n${failures.join('\n')}`);
  (globalThis.process ?? Deno).exit(1);
} else {
  console.log(`ok ${runtime} ${version}`);
}
