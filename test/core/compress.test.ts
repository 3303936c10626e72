/**
 * When compressed copies are made and stored: after the page is stored (a miss never waits for
 * them), under the fill protocol (an invalidation during the compression wins), and for pages
 * found without them (stored by a process with `compress: false`).
 */
import { createRequire } from 'node:module';
import { gunzipSync } from 'node:zlib';
import { afterEach, expect, test, vi } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper, type SetOptions, type StoredEntry } from '../../src/index.js';
import { rawGet } from '../support/http.js';
import { listen } from '../support/listen.js';

const require = createRequire(import.meta.url);
const page = '<!doctype html>' + '<p>ice cream, creamy and fresh</p>\n'.repeat(300);
const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of open.splice(0)) await close();
});

/** A MemoryStore that records what it is asked to store, and what it answers. */
class RecordingStore extends MemoryStore {
  readonly sets: Array<{ key: string; encodings: string[]; stored: boolean }> = [];
  /** Called after each set. */
  afterSet: ((entry: StoredEntry) => void) | undefined;
  override set(key: string, entry: StoredEntry, options: SetOptions): boolean {
    const stored = super.set(key, entry, options);
    this.sets.push({ key, encodings: (entry.encodings ?? []).map((e) => e.coding), stored });
    this.afterSet?.(entry);
    return stored;
  }
}

async function site(dumper: Dumper): Promise<{ port: number; renders: () => number }> {
  let renders = 0;
  const m = await listen(
    withDumper(dumper, (_req, res) => {
      renders++;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
    }),
  );
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  return { port: m.port, renders: () => renders };
}

test('a miss is stored as the app sent it; the compressed copies are stored with it afterwards', async () => {
  const store = new RecordingStore();
  const dumper = createDumper({ store, logger: false, compress: { zstd: false } });
  const { port } = await site(dumper);
  const miss = await rawGet(port, '/p', { 'accept-encoding': 'gzip, br' });
  expect(miss.headers['x-cache']).toBe('MISS');
  expect(miss.headers['content-encoding']).toBeUndefined();
  expect(store.sets.map((s) => s.encodings)[0]).toEqual([]);
  await dumper.flushCompression();
  expect(store.sets.map((s) => s.encodings)).toEqual([[], ['br', 'gzip']]);
  const hit = await rawGet(port, '/p', { 'accept-encoding': 'gzip' });
  expect(gunzipSync(hit.body).toString()).toBe(page);
});

test('an invalidation while the copies are made wins: they are not stored, and the page is rendered again', async () => {
  const store = new RecordingStore();
  const dumper = createDumper({ store, logger: false });
  const { port, renders } = await site(dumper);
  // An idle event loop compresses at once (a busy one leaves it to the first hit). The loop is
  // reported idle, as a loaded test machine may not find it: this test is about the race.
  const measure = performance.eventLoopUtilization.bind(performance);
  vi.spyOn(performance, 'eventLoopUtilization').mockImplementation((a) =>
    a === undefined ? measure() : { idle: 1, active: 0, utilization: 0 },
  );
  await rawGet(port, '/warm', {});
  await new Promise((r) => setTimeout(r, 150));
  // A write lands just after the page is stored, while its compression is on the thread pool
  // (a microtask comes before any thread-pool callback).
  let written: Promise<void> | undefined;
  store.afterSet = () => {
    store.afterSet = undefined;
    queueMicrotask(() => (written = dumper.invalidate('/p')));
  };
  await rawGet(port, '/p', {});
  await written;
  await dumper.flushCompression();
  expect(store.sets.filter((s) => s.key.endsWith('/p')).map((s) => [s.encodings.length > 0, s.stored])).toEqual([
    [false, true],
    [true, false],
  ]);
  const next = await rawGet(port, '/p', { 'accept-encoding': 'br' });
  expect(next.headers['x-cache']).toBe('MISS');
  expect(renders()).toBe(3); // /warm, and /p twice
});

test('a page found without copies (stored by a process with compress: false) is compressed by one with them', async () => {
  const store = new MemoryStore();
  const plain = createDumper({ store, logger: false, compress: false });
  const { port: plainPort } = await site(plain);
  await rawGet(plainPort, '/p', {});
  expect((await rawGet(plainPort, '/p', { 'accept-encoding': 'br' })).headers['content-encoding']).toBeUndefined();
  const compressing = createDumper({ store, logger: false });
  const { port } = await site(compressing);
  // The page under the second server's key, stored more than a second ago, as a page another
  // process stored is found.
  const entry = (await store.get(`dumper.cached_path.127.0.0.1:${plainPort}/p`))!;
  expect(entry).toBeDefined();
  store.set(`dumper.cached_path.127.0.0.1:${port}/p`, { ...entry, storedAt: Date.now() - 5000 }, { maxVariantsPerPath: 10, variant: false });
  const first = await rawGet(port, '/p', { 'accept-encoding': 'br' });
  expect(first.headers['x-cache']).toBe('HIT');
  expect(first.headers['content-encoding']).toBeUndefined();
  await compressing.flushCompression();
  const second = await rawGet(port, '/p', { 'accept-encoding': 'br' });
  expect(second.headers['x-cache']).toBe('HIT');
  expect(second.headers['content-encoding']).toBe('br');
});

test('compress: false sends every hit uncompressed, also a page stored with copies by another process', async () => {
  const store = new MemoryStore();
  const compressing = createDumper({ store, logger: false });
  const { port } = await site(compressing);
  await rawGet(port, '/p', {});
  await compressing.flushCompression();
  const key = `dumper.cached_path.127.0.0.1:${port}/p`;
  expect((await store.get(key))!.encodings?.length).toBeGreaterThan(0);
  const plain = createDumper({ store, logger: false, compress: false });
  const entry = (await plain.get(key, {}))!;
  const reply = plain.reply(entry, 'GET', { 'accept-encoding': 'gzip, br' });
  expect(reply.representation.coding).toBe('identity');
  expect(reply.headers).not.toContain('vary');
});

test('a page stored with only the copy the app made gets the others at a later hit', async () => {
  const store = new MemoryStore();
  const dumper = createDumper({ store, logger: false });
  const { port } = await site(dumper);
  const key = `dumper.cached_path.127.0.0.1:${port}/p`;
  const seq = await store.sequence();
  const body = Buffer.from(page);
  const gz = (await import('node:zlib')).gzipSync(body);
  store.set(
    key,
    {
      status: 200,
      headers: ['content-type', 'text/html', 'etag', '"x"', 'content-length', String(body.length)],
      body,
      etag: '"x"',
      storedAt: Date.now() - 5000,
      seq,
      path: 'dumper.cached_path./p',
      tags: ['dumper.cached_path./p'],
      encodings: [{ coding: 'gzip', body: gz }],
    },
    { maxVariantsPerPath: 10, variant: false },
  );
  expect((await rawGet(port, '/p', { 'accept-encoding': 'gzip, br' })).headers['content-encoding']).toBe('gzip');
  await dumper.flushCompression();
  const after = await rawGet(port, '/p', { 'accept-encoding': 'gzip, br' });
  expect(after.headers['content-encoding']).toBe('br');
  expect((await store.get(key))!.encodings!.map((e) => e.coding)).toContain('gzip');
});

test('a compressed response that says Cache-Control: no-transform is not stored', async () => {
  const dumper = createDumper({ logger: false });
  let renders = 0;
  const m = await listen(
    withDumper(dumper, (_req, res) => {
      renders++;
      const gz = (require('node:zlib') as typeof import('node:zlib')).gzipSync(page);
      res.writeHead(200, { 'content-type': 'text/html', 'content-encoding': 'gzip', 'cache-control': 'public, no-transform', 'content-length': gz.length });
      res.end(gz);
    }),
  );
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  await rawGet(m.port, '/p', { 'accept-encoding': 'gzip' });
  const again = await rawGet(m.port, '/p', {});
  expect(again.headers['x-cache']).toBe('MISS');
  expect(again.headers['content-encoding']).toBe('gzip');
  expect(renders).toBe(2);
});

test('a stored non-2xx page does not answer If-None-Match with 304 (RFC 9110 §13.2.1)', async () => {
  const dumper = createDumper({ logger: false, statuses: [200, 404] });
  const m = await listen(
    withDumper(dumper, (_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain', etag: '"nf"' });
      res.end('not found');
    }),
  );
  open.push(async () => {
    await m.close();
    await dumper.close();
  });
  await rawGet(m.port, '/gone', {});
  const r = await rawGet(m.port, '/gone', { 'if-none-match': '"nf"' });
  expect(r.headers['x-cache']).toBe('HIT');
  expect(r.status).toBe(404);
  expect(r.body.toString()).toBe('not found');
});

test('a process whose event loop is busy leaves the compression to the first hit', async () => {
  const store = new RecordingStore();
  const dumper = createDumper({ store, logger: false, compress: { zstd: false } });
  const { port } = await site(dumper);
  await rawGet(port, '/warm', {});
  await dumper.flushCompression();
  // 300 ms of synchronous work: the loop was busy since the last look at it.
  const until = Date.now() + 300;
  while (Date.now() < until);
  await rawGet(port, '/p', {});
  // Nothing is compressed meanwhile (a compression of this page takes a few milliseconds).
  await new Promise((r) => setTimeout(r, 200));
  expect(store.sets.filter((s) => s.key.endsWith('/p')).map((s) => s.encodings)).toEqual([[]]);
  // The first hit sets it off, without waiting for the page to be a second old.
  const first = await rawGet(port, '/p', { 'accept-encoding': 'br' });
  expect(first.headers['content-encoding']).toBeUndefined();
  await dumper.flushCompression();
  expect(store.sets.filter((s) => s.key.endsWith('/p')).map((s) => s.encodings)).toEqual([[], ['br', 'gzip']]);
  expect((await rawGet(port, '/p', { 'accept-encoding': 'br' })).headers['content-encoding']).toBe('br');
});

test('flushCompression() compresses the pages a busy process left to their first hit; with deferred: false it only waits', async () => {
  const store = new RecordingStore();
  const dumper = createDumper({ store, logger: false, compress: { zstd: false } });
  const { port } = await site(dumper);
  await rawGet(port, '/warm', {});
  const until = Date.now() + 300;
  while (Date.now() < until);
  await rawGet(port, '/p', {});
  await dumper.flushCompression({ deferred: false });
  expect(store.sets.filter((s) => s.key.endsWith('/p')).map((s) => s.encodings)).toEqual([[]]);
  await dumper.flushCompression();
  expect(store.sets.filter((s) => s.key.endsWith('/p')).map((s) => s.encodings)).toEqual([[], ['br', 'gzip']]);
  expect((await rawGet(port, '/p', { 'accept-encoding': 'gzip' })).headers['content-encoding']).toBe('gzip');
});
