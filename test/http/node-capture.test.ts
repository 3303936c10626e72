/** How the node adapter reads what an app writes, in the ways node apps write it. */
import express from 'express';
import { afterEach, expect, test } from 'vitest';
import { dumperMiddleware, withDumper } from '../../src/http/node/index.js';
import { createDumper, type DumperOptions } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import http from 'node:http';

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

async function front(listener: http.RequestListener, options: DumperOptions = {}) {
  const dumper = createDumper({ logger: false, ...options });
  const m: Mounted = await listen(withDumper(dumper, listener));
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  return async (path = '/p') => {
    const r = await fetch(m.url + path);
    return { status: r.status, headers: r.headers, body: await r.text() };
  };
}

/** `listener` behind a dumper on a loopback port, closed after the test: its address. */
async function serve(listener: http.RequestListener): Promise<Mounted> {
  const dumper = createDumper({ logger: false });
  const m: Mounted = await listen(withDumper(dumper, listener));
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  return m;
}

test.each([{ cacheStatusHeader: 'X-Cache' }, { cacheStatusHeader: false as const }])(
  'headers passed to writeHead() are stored (%o)',
  async (options) => {
    let n = 0;
    const get = await front((_req, res) => {
      n++;
      res.writeHead(200, 'Fine', { 'Content-Type': 'text/x-test', 'X-Custom': ['a', 'b'] });
      res.end('body');
    }, options);
    await get();
    const hit = await get();
    expect(n).toBe(1);
    expect(hit.headers.get('content-type')).toBe('text/x-test');
    expect(hit.headers.get('x-custom')).toBe('a, b');
    expect(hit.body).toBe('body');
  },
);

test('a flat raw header array in writeHead() is stored, and the hit replays what the miss sent', async () => {
  let n = 0;
  const get = await front((_req, res) => {
    n++;
    res.writeHead(200, ['content-type', 'text/plain', 'x-raw', 'yes', 'link', '</b>']);
    res.end('raw');
  });
  const miss = await get();
  const hit = await get();
  expect(n).toBe(1);
  expect(hit.headers.get('x-raw')).toBe('yes');
  expect(hit.headers.get('link')).toBe(miss.headers.get('link'));
});

test('writes with encodings and Uint8Arrays are stored byte for byte', async () => {
  const get = await front((_req, res) => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.write('Y2Fm', 'base64');
    res.write(new Uint8Array([0xc3, 0xa9]));
    res.end(' crème', 'utf8');
  });
  const miss = await get();
  const hit = await get();
  expect(miss.body).toBe('café crème');
  expect(hit.body).toBe('café crème');
  expect(hit.headers.get('x-cache')).toBe('HIT');
});

test('headers set by middleware before dumperMiddleware are not stored, so they stay per request', async () => {
  const dumper = createDumper({ logger: false });
  let id = 0;
  const app = express();
  app.use((_req, res, next) => {
    res.setHeader('x-request-id', String(++id));
    next();
  });
  app.use(dumperMiddleware(dumper));
  app.get('/p', (_req, res) => {
    res.setHeader('x-from-app', 'yes');
    res.send('page');
  });
  const m = await listen(app);
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  await (await fetch(m.url + '/p')).text();
  const hit = await fetch(m.url + '/p');
  expect(hit.headers.get('x-cache')).toBe('HIT');
  expect(hit.headers.get('x-request-id')).toBe('2');
  expect(hit.headers.get('x-from-app')).toBe('yes');
});

test('an empty 200 body is stored', async () => {
  let n = 0;
  const get = await front((_req, res) => {
    n++;
    res.end();
  });
  await get();
  const hit = await get();
  expect(hit.headers.get('x-cache')).toBe('HIT');
  expect(hit.body).toBe('');
  expect(n).toBe(1);
});

test('a response whose client went away before it finished is not stored', async () => {
  let n = 0;
  let finish!: () => void;
  const m = await serve((_req, res) => {
    n++;
    res.setHeader('content-type', 'text/plain');
    res.write('partial ');
    finish = () => res.end('rest');
  });
  await new Promise<void>((resolve) => {
    const req = http.get(m.url + '/p', (res) => {
      res.once('data', () => {
        req.destroy(); // the visitor leaves mid-page
        setTimeout(resolve, 50);
      });
    });
    req.on('error', () => {});
  });
  finish();
  const next = await fetch(m.url + '/p');
  expect(next.headers.get('x-cache')).toBe('MISS');
  finish();
  expect(await next.text()).toBe('partial rest');
  expect(n).toBe(2);
  expect((await fetch(m.url + '/p')).headers.get('x-cache')).toBe('HIT');
});

test('a response whose every declared byte was written is stored, though the client left before end() came', async () => {
  // As a file piped in ends the response at the stream's EOF, a read after its last data.
  let n = 0;
  let finish!: () => void;
  let closed!: Promise<void>;
  const m = await serve((_req, res) => {
    n++;
    closed = new Promise((resolve) => res.once('close', () => resolve()));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '10' });
    res.write('whole page');
    finish = () => res.end();
  });
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.get(m.url + '/p', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      // The whole body (its Content-Length) is in: the visitor leaves.
      res.on('end', () => {
        req.destroy();
        resolve(text);
      });
    });
    req.on('error', reject);
  });
  expect(body).toBe('whole page');
  await closed;
  finish();
  const hit = await fetch(m.url + '/p');
  expect(hit.headers.get('x-cache')).toBe('HIT');
  expect(await hit.text()).toBe('whole page');
  expect(n).toBe(1);
});

test('a response closed before all of its declared Content-Length was written is not stored', async () => {
  let n = 0;
  let closed!: Promise<void>;
  const m = await serve((_req, res) => {
    n++;
    closed = new Promise((resolve) => res.once('close', () => resolve()));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20' });
    res.write('half page.');
  });
  await new Promise<void>((resolve) => {
    const req = http.get(m.url + '/p', (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => {});
  });
  await closed;
  // Rendered again (its head comes at once; its body never ends).
  const next = await fetch(m.url + '/p');
  expect(next.headers.get('x-cache')).toBe('MISS');
  expect(n).toBe(2);
  await next.body?.cancel();
});

