/**
 * Nothing from the last deploy: static files are not stored by default (a file changes with a
 * deploy, never with a write), and entries are kept per build (`version`), so a new build never
 * serves the old build's pages while the old build's processes keep theirs.
 */
import fastifyStatic from '@fastify/static';
import connect from 'connect';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import koaStatic from 'koa-static';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import serveStatic from 'serve-static';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { fastifyDumper } from '../../src/http/fastify/index.js';
import { koaDumper } from '../../src/http/koa/index.js';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { defaultVersion } from '../../src/core/options.js';
import { createDumper, MemoryStore, type Dumper } from '../../src/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import { listen } from '../support/listen.js';

const dir = mkdtempSync(join(tmpdir(), 'page-dumper-static-'));
writeFileSync(join(dir, 'site.css'), 'body { color: red }');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const open: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

async function serve(listener: http.RequestListener): Promise<string> {
  const m = await listen(listener);
  open.push(m.close);
  return m.url;
}

type Mount = (dumper: Dumper) => Promise<string>;

const statics: Array<[string, Mount]> = [
  [
    'express.static',
    (dumper) => {
      const app = express();
      app.use(dumperMiddleware(dumper));
      app.use(express.static(dir));
      return serve(app);
    },
  ],
  [
    'serve-static (Connect)',
    (dumper) => {
      const app = connect();
      app.use(dumperMiddleware(dumper));
      app.use(serveStatic(dir) as connect.NextHandleFunction);
      return serve(app);
    },
  ],
  [
    '@fastify/static',
    async (dumper) => {
      const app = Fastify();
      await app.register(fastifyDumper, { dumper });
      await app.register(fastifyStatic, { root: dir });
      await app.listen({ port: 0, host: '127.0.0.1' });
      open.push(() => app.close());
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    },
  ],
  [
    "a handler's own file stream (node:http)",
    (dumper) =>
      serve(
        withDumper(dumper, (req, res) => {
          res.setHeader('content-type', 'text/css');
          createReadStream(join(dir, 'site.css')).pipe(res);
        }),
      ),
  ],
  [
    "a file stream sent by a Fastify route",
    async (dumper) => {
      const app = Fastify();
      await app.register(fastifyDumper, { dumper });
      app.get('/site.css', (_request, reply) => reply.type('text/css').send(createReadStream(join(dir, 'site.css'))));
      await app.listen({ port: 0, host: '127.0.0.1' });
      open.push(() => app.close());
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    },
  ],
  [
    'koa-static',
    (dumper) => {
      const app = new Koa();
      app.use(koaDumper(dumper));
      app.use(koaStatic(dir));
      return serve(app.callback());
    },
  ],
];

describe.each(statics)('static files: %s', (_, mount) => {
  async function css(url: string) {
    const r = await fetch(url + '/site.css');
    return { body: await r.text(), cache: r.headers.get('x-cache') };
  }

  test('are not stored by default: an edited file is served at once', async () => {
    const dumper = createDumper({ logger: false });
    open.push(() => dumper.close());
    const url = await mount(dumper);
    expect(await css(url)).toEqual({ body: 'body { color: red }', cache: 'MISS' });
    expect((await css(url)).cache).toBe('MISS');
    writeFileSync(join(dir, 'site.css'), 'body { color: blue }');
    try {
      expect((await css(url)).body).toBe('body { color: blue }');
    } finally {
      writeFileSync(join(dir, 'site.css'), 'body { color: red }');
    }
  });

  test('are stored with staticFiles: true', async () => {
    const reasons: string[] = [];
    const logger = { debug: (m: string, f?: { reason?: string }) => reasons.push(`${m} ${f?.reason ?? ''}`), info() {}, warn() {}, error() {} };
    const dumper = createDumper({ logger, staticFiles: true });
    open.push(() => dumper.close());
    const url = await mount(dumper);
    await css(url);
    expect({ ...(await css(url)), reasons }).toEqual({ body: 'body { color: red }', cache: 'HIT', reasons: expect.any(Array) });
  });
});

describe('version: entries are kept per build', () => {
  /** One build of the site: its template says which build rendered the page. */
  function build(version: string, store: MemoryStore | SqliteStore) {
    const dumper = createDumper({ logger: false, store, version });
    open.push(() => dumper.close());
    return serve(withDumper(dumper, (_req, res) => res.end(`rendered by ${version}`))).then((url) => ({ dumper, url }));
  }

  async function get(url: string, host = 'shop.example') {
    // One Host for every build, as behind one load balancer.
    const r = await fetch(url + '/page', { headers: { 'x-forwarded-host': host } });
    return { body: await r.text(), cache: r.headers.get('x-cache') };
  }

  test('a new build never serves the old build’s pages, the old build keeps its own, and invalidations reach both', async () => {
    const path = join(dir, 'deploy.sqlite');
    const store1 = new SqliteStore({ path });
    const store2 = new SqliteStore({ path });
    const v1 = await build('v1', store1);
    expect(await get(v1.url)).toEqual({ body: 'rendered by v1', cache: 'MISS' });
    expect(await get(v1.url)).toEqual({ body: 'rendered by v1', cache: 'HIT' });
    // The new build starts on the same store while v1 is still serving.
    const v2 = await build('v2', store2);
    expect(await get(v2.url)).toEqual({ body: 'rendered by v2', cache: 'MISS' });
    expect(await get(v2.url)).toEqual({ body: 'rendered by v2', cache: 'HIT' });
    expect(await get(v1.url)).toEqual({ body: 'rendered by v1', cache: 'HIT' });
    // A write handled by the new build invalidates the page for the old build's processes too.
    await v2.dumper.invalidate('/page');
    expect((await get(v1.url)).cache).toBe('MISS');
    expect((await get(v2.url)).cache).toBe('MISS');
  });

  test('the default comes from the environment a host sets for the build; false turns it off', () => {
    expect(defaultVersion({})).toBeUndefined();
    expect(defaultVersion({ RENDER_GIT_COMMIT: 'abc123', GIT_COMMIT: 'zzz' })).toBe('abc123');
    expect(defaultVersion({ PAGE_DUMPER_VERSION: ' 2026.12.06 ', SOURCE_VERSION: 'x' })).toBe('2026.12.06');
    // A value that cannot be part of a key is hashed, not dropped.
    expect(defaultVersion({ K_REVISION: 'a build with spaces' })).toMatch(/^[\w-]{22}$/);
    const previous = process.env.PAGE_DUMPER_VERSION;
    process.env.PAGE_DUMPER_VERSION = 'build-7';
    try {
      expect(createDumper({ logger: false }).version).toBe('build-7');
      expect(createDumper({ logger: false, version: false }).version).toBeUndefined();
      expect(createDumper({ logger: false, version: 'mine' }).version).toBe('mine');
    } finally {
      if (previous === undefined) delete process.env.PAGE_DUMPER_VERSION;
      else process.env.PAGE_DUMPER_VERSION = previous;
    }
    expect(() => createDumper({ version: 'has space' })).toThrow(
      'page-dumper: option "version" must be a string of up to 100 letters, digits and ._:+/@- (a build id, a commit), or false, got string has space',
    );
  });
});
