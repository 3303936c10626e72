import { gunzipSync } from 'node:zlib';
import compression from 'compression';
import express from 'express';
import { afterEach, expect, test } from 'vitest';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { createDumper } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import http from 'node:http';

const page = '<p>' + 'ice cream '.repeat(500) + '</p>';
const open: Mounted[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) await m.close();
});

/** fetch() always decodes; read the raw bytes and headers instead. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

test('compression() mounted before dumperMiddleware compresses hits; identity is stored', async () => {
  const dumper = createDumper({ logger: false });
  let renders = 0;
  const app = express();
  app.use(compression({ threshold: 0 }));
  app.use(dumperMiddleware(dumper));
  app.get('/p', (_req, res) => {
    renders++;
    res.type('html').send(page);
  });
  const m = await listen(app);
  open.push(m);
  const miss = await rawGet(m.url + '/p', { 'accept-encoding': 'gzip' });
  expect(miss.headers['x-cache']).toBe('MISS');
  expect(gunzipSync(miss.body).toString()).toBe(page);
  const hit = await rawGet(m.url + '/p', { 'accept-encoding': 'gzip' });
  expect(hit.headers['x-cache']).toBe('HIT');
  expect(hit.headers['content-encoding']).toBe('gzip');
  expect(gunzipSync(hit.body).toString()).toBe(page);
  const plain = await rawGet(m.url + '/p', {});
  expect(plain.headers['x-cache']).toBe('HIT');
  expect(plain.headers['content-encoding']).toBeUndefined();
  expect(plain.body.toString()).toBe(page);
  expect(renders).toBe(1);
  await dumper.close();
});

test('a response the app compressed behind the front door is not stored', async () => {
  const dumper = createDumper({ logger: false });
  const app = express();
  app.use(compression({ threshold: 0 }));
  app.get('/p', (_req, res) => res.type('html').send(page));
  const m = await listen(withDumper(dumper, app));
  open.push(m);
  await rawGet(m.url + '/p', { 'accept-encoding': 'gzip' });
  const again = await rawGet(m.url + '/p', {});
  expect(again.headers['x-cache']).toBe('MISS');
  expect(again.body.toString()).toBe(page);
  await dumper.close();
});
