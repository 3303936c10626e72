import { Writable } from 'node:stream';
import createDebug from 'debug';
import pino from 'pino';
import { makeLog } from '../../src/core/log.js';
import { afterEach, describe, expect, test } from 'vitest';
import { dumperMiddleware } from '../../src/http/node/index.js';
import { createDumper, type DumperLogger } from '../../src/index.js';
import express from 'express';
import { listen } from '../support/listen.js';

async function exercise(logger: DumperLogger | undefined) {
  const dumper = createDumper(logger === undefined ? {} : { logger });
  class IceCream {
    dependentPaths() {
      return ['/ice-cream/'];
    }
  }
  dumper.register(IceCream);
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.get('/ice-cream/', (_req, res) => res.send('list'));
  app.get('/admin/', (_req, res) => res.send('admin'));
  const m = await listen(app);
  for (const p of ['/ice-cream/', '/ice-cream/', '/admin/', '/missing']) await (await fetch(m.url + p)).text();
  await dumper.changed(new IceCream());
  await m.close();
  await dumper.close();
}

describe('logging: every decision django-dumper logs, under the "dumper" name', () => {
  afterEach(() => createDebug.disable());

  test('console-shaped loggers get the message first, then the fields', async () => {
    const lines: Array<[string, Record<string, unknown>]> = [];
    await exercise({ debug: (m: string, f: Record<string, unknown>) => lines.push([m, f]) });
    const messages = lines.map(([m]) => m);
    expect(messages).toEqual([
      'dumper: registered model',
      "dumper: didn't find",
      'dumper: cached',
      'dumper: found',
      'dumper: skipped getting',
      "dumper: didn't find",
      'dumper: not saving',
      'dumper: invalidating instance',
      'dumper: invalidated',
    ]);
    expect(lines[1]![1]).toMatchObject({ method: 'GET', path: '/ice-cream/', key: expect.stringMatching(/^dumper\.cached_path\.127\.0\.0\.1:\d+\/ice-cream\/$/) });
    expect(lines[4]![1]).toMatchObject({ path: '/admin/', reason: 'ignored path' });
    expect(lines[6]![1]).toMatchObject({ path: '/missing', reason: 'status 404' });
    expect(lines[8]![1]).toMatchObject({ paths: ['/ice-cream/'], tags: ['dumper.cached_path./ice-cream'] });
  });

  test('pino gets the fields first and is asked whether debug is enabled', async () => {
    const records: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        records.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    await exercise(pino({ level: 'debug' }, sink) as unknown as DumperLogger);
    expect(records.map((r) => r.msg)).toContain('found');
    expect(records.find((r) => r.msg === 'found')).toMatchObject({ name: 'dumper', method: 'GET', path: '/ice-cream/' });
    records.length = 0;
    await exercise(pino({ level: 'info' }, sink) as unknown as DumperLogger);
    expect(records).toEqual([]);
  });

  test('a named pino logger keeps its name (the dumper is its component), and an error goes under err, with its message, stack and cause', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = makeLog(pino({ name: 'shop' }, sink) as unknown as DumperLogger);
    const cause = new Error('connect ECONNREFUSED');
    log.error('store get failed', { code: 'DUMPER_STORE_FAILURE', error: new Error('store get failed', { cause }) });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.match(/"name":/g)).toHaveLength(1);
    const record = JSON.parse(lines[0]!) as Record<string, any>;
    expect(record).toMatchObject({ name: 'shop', component: 'dumper', msg: 'store get failed', code: 'DUMPER_STORE_FAILURE' });
    expect(record.err).toMatchObject({ type: 'Error', message: expect.stringContaining('store get failed'), stack: expect.stringContaining('Error: store get failed') });
    expect(record.error).toBeUndefined();
  });

  test('by default, DEBUG=dumper shows the decisions through the debug package', async () => {
    const out: string[] = [];
    const original = createDebug.log;
    createDebug.log = (...args: unknown[]) => void out.push(args.map(String).join(' '));
    createDebug.enable('dumper');
    try {
      await exercise(undefined);
    } finally {
      createDebug.log = original;
    }
    expect(out.some((l) => l.includes('dumper') && l.includes('found') && l.includes('path=/ice-cream/'))).toBe(true);
    expect(out.some((l) => l.includes('invalidated'))).toBe(true);
  });

  test('without DEBUG nothing is printed for decisions', async () => {
    const out: string[] = [];
    const original = createDebug.log;
    createDebug.log = (...args: unknown[]) => void out.push(args.map(String).join(' '));
    try {
      await exercise(undefined);
    } finally {
      createDebug.log = original;
    }
    expect(out).toEqual([]);
  });
});

test('an anonymous page not served to a request with cookies is logged with its key and why', async () => {
  const lines: Array<[string, Record<string, unknown>]> = [];
  const dumper = createDumper({ logger: { debug: (m: string, f: Record<string, unknown>) => lines.push([m, f]) } });
  const app = express();
  app.use(dumperMiddleware(dumper));
  app.get('/who', (req, res) => res.send(`hello ${req.headers.cookie ?? 'guest'}`));
  const m = await listen(app);
  await (await fetch(m.url + '/who')).text();
  await (await fetch(m.url + '/who', { headers: { cookie: 'user=alice' } })).text();
  await m.close();
  await dumper.close();
  const skipped = lines.find(([msg, f]) => msg === 'dumper: skipped getting' && f.reason !== undefined);
  expect(skipped?.[1]).toEqual({ path: '/who', key: expect.stringContaining('/who'), reason: 'the stored page is the anonymous one, and the request has cookies' });
  // No field is logged as undefined.
  for (const [, f] of lines) for (const v of Object.values(f)) expect(v).not.toBeUndefined();
});
