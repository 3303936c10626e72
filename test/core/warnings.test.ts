import { afterEach, describe, expect, test, vi } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type DumperOptions, type Store } from '../../src/index.js';
import { DEFAULT_WARNED_REFUSALS, WARNINGS_PER_REASON } from '../../src/core/warnings.js';
import { listen } from '../support/listen.js';

/** Answers by path: `/cookie/...` sets a cookie, `/private/...` says private, `/missing` is a 404. */
function app(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '/';
  res.setHeader('content-type', 'text/plain');
  if (path.startsWith('/cookie')) res.setHeader('set-cookie', 'sid=1; HttpOnly');
  if (path.startsWith('/private')) res.setHeader('cache-control', 'private');
  if (path.startsWith('/vary')) res.setHeader('vary', 'User-Agent');
  if (path === '/missing') res.statusCode = 404;
  res.end('page ' + path);
}

interface Logged {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

async function setup(options: DumperOptions = {}) {
  const logged: Logged[] = [];
  const at = (level: string) => (message: string, fields: Record<string, unknown>) => logged.push({ level, message, fields });
  const dumper = createDumper({ logger: { debug: at('debug'), warn: at('warn'), error: at('error') }, ...options });
  const server = await listen(withDumper(dumper, app));
  return {
    dumper,
    logged,
    warnings: () => logged.filter((l) => l.level === 'warn').map((l) => l.message),
    get: async (path: string) => {
      const r = await fetch(server.url + path);
      await r.text();
      return r.headers.get('x-cache');
    },
    close: async () => {
      await server.close();
      await dumper.close();
    },
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a render that is not stored is warned about once per path and reason', () => {
  test('a page that sets a cookie: one warning naming the path, the reason and what to do', async () => {
    const t = await setup();
    for (let i = 0; i < 3; i++) expect(await t.get('/cookie/a')).toBe('MISS');
    expect(t.warnings()).toEqual([
      'dumper: not storing GET /cookie/a: response sets a cookie. A page that sets a cookie is personal: if a session middleware sets one on every response, have it set the cookie only when there is something to keep (express-session: saveUninitialized: false). Said once per path and reason.',
    ]);
    const warning = t.logged.find((l) => l.level === 'warn')!;
    expect(warning.fields).toEqual({ method: 'GET', path: '/cookie/a', reason: 'set-cookie' });
    // Every refusal is counted, warned or not.
    expect(t.dumper.stats().refusals['set-cookie']).toBe(3);
    await t.close();
  });

  test('another path, or another reason on the same path, is warned about again; spellings of one path are one', async () => {
    const t = await setup({ warnings: ['set-cookie', 'vary'] });
    await t.get('/cookie/a');
    await t.get('/COOKIE/a/');
    await t.get('/cookie/b');
    await t.get('/private/a');
    await t.get('/vary/a');
    expect(t.warnings().map((m) => m.split('.')[0])).toEqual([
      'dumper: not storing GET /cookie/a: response sets a cookie',
      'dumper: not storing GET /cookie/b: response sets a cookie',
      'dumper: not storing GET /vary/a: Vary: user-agent',
    ]);
    await t.close();
  });

  test('expected refusals (a 404, a page marked private or no-store) are not warned about by default, and can be asked for', async () => {
    const quiet = await setup();
    expect(await quiet.get('/missing')).toBe('MISS');
    expect(await quiet.get('/private/reset-password/q8zt3vyk1mp0axr7')).toBe('MISS');
    expect(quiet.warnings()).toEqual([]);
    expect(quiet.dumper.stats().refusals.status).toBe(1);
    expect(quiet.dumper.stats().refusals['cache-control']).toBe(1);
    await quiet.close();

    const asked = await setup({ warnings: ['status', 'cache-control'] });
    await asked.get('/missing');
    await asked.get('/cookie/a');
    await asked.get('/private/a');
    expect(asked.warnings()).toEqual([
      'dumper: not storing GET /missing: status 404. Said once per path and reason.',
      'dumper: not storing GET /private/a: Cache-Control: private. If the page is the same for every visitor, it should not say private, no-store or no-cache. Said once per path and reason.',
    ]);
    await asked.close();
  });

  test('the path is shown as requested (never its query string), and one warning covers its spellings', async () => {
    const t = await setup();
    await t.get('/cookie/My-Post?token=s3cret');
    await t.get('/cookie/my-post/');
    expect(t.warnings()).toHaveLength(1);
    expect(t.warnings()[0]).toMatch(/^dumper: not storing GET \/cookie\/My-Post: response sets a cookie\./);
    expect(t.logged.find((l) => l.level === 'warn')!.fields).toEqual({ method: 'GET', path: '/cookie/My-Post', reason: 'set-cookie' });
    expect(JSON.stringify(t.logged.filter((l) => l.level !== 'debug'))).not.toContain('s3cret');
    await t.close();
  });

  test('warnings: false says nothing at warn level; the decision is still logged at debug level', async () => {
    const t = await setup({ warnings: false });
    await t.get('/cookie/a');
    expect(t.warnings()).toEqual([]);
    expect(t.logged.filter((l) => l.level === 'debug').map((l) => l.message)).toContain('dumper: not saving');
    await t.close();
  });

  test(`after ${WARNINGS_PER_REASON} paths of one reason, one line says the rest of that reason are only counted; other reasons are still warned about`, async () => {
    const t = await setup();
    for (let i = 0; i < WARNINGS_PER_REASON + 5; i++) await t.get(`/cookie/${i}`);
    await t.get('/vary/late');
    const warnings = t.warnings();
    expect(warnings).toHaveLength(WARNINGS_PER_REASON + 2);
    expect(warnings[WARNINGS_PER_REASON - 1]).toContain(`/cookie/${WARNINGS_PER_REASON - 1}:`);
    expect(warnings[WARNINGS_PER_REASON]).toBe(
      'dumper: not storing pages on more paths for the same reason (set-cookie) than the 10 warned about: dumper.stats().refusals counts them, and DEBUG=dumper (or a logger at debug level) shows each',
    );
    expect(warnings.at(-1)).toMatch(/^dumper: not storing GET \/vary\/late: Vary: user-agent\./);
    expect(t.dumper.stats().refusals['set-cookie']).toBe(WARNINGS_PER_REASON + 5);
    await t.close();
  });

  test('the default list', () => {
    expect(DEFAULT_WARNED_REFUSALS).toEqual(['set-cookie', 'vary', 'content-encoding', 'too large', 'unsupported']);
  });

  test('a bad warnings option is a TypeError naming the reasons', () => {
    expect(() => createDumper({ warnings: ['vary', 'set-cookies'] as never })).toThrow(
      new TypeError(
        'page-dumper: option "warnings" names "set-cookies", which is not a refusal reason ("status", "set-cookie", "cache-control", "vary", "content-encoding", "event stream", "static file", "too large", "cookies read", "untraceable", "incomplete", "pipelined", "unsupported", "store refused", "store unavailable", "store error", "other")',
      ),
    );
    expect(() => createDumper({ warnings: 'yes' as never })).toThrow(/option "warnings" must be true, false or a list/);
  });
});

describe('logger: console', () => {
  test('decisions go to console.debug only; a page not stored is one console.warn; nothing else is printed', async () => {
    const spies = Object.fromEntries(
      (['debug', 'log', 'info', 'warn', 'error'] as const).map((level) => [level, vi.spyOn(console, level).mockImplementation(() => {})]),
    );
    const dumper = createDumper({ logger: console });
    const server = await listen(withDumper(dumper, app));
    for (const path of ['/a', '/a', '/cookie/a', '/cookie/a', '/missing']) await (await fetch(server.url + path)).text();
    await server.close();
    await dumper.close();

    const debug = spies.debug!.mock.calls.map((c) => c[0]);
    expect(debug).toEqual(expect.arrayContaining(['dumper: cached', 'dumper: found', 'dumper: not saving']));
    expect(spies.warn!.mock.calls.map((c) => c[0])).toEqual([expect.stringMatching(/^dumper: not storing GET \/cookie\/a: response sets a cookie/)]);
    expect(spies.log).not.toHaveBeenCalled();
    expect(spies.info).not.toHaveBeenCalled();
    expect(spies.error).not.toHaveBeenCalled();
  });

  test('without a logger, the warning reaches stderr without DEBUG, as one line', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const dumper = createDumper();
    const server = await listen(withDumper(dumper, app));
    await (await fetch(server.url + '/vary/x')).text();
    await server.close();
    await dumper.close();
    expect(warn.mock.calls).toEqual([
      ['dumper: not storing GET /vary/x: Vary: user-agent. One page is served to every visitor, so only a Vary on Accept-Encoding is stored. Said once per path and reason. reason=vary'],
    ]);
  });
});

describe('a path with control characters', () => {
  test('is logged escaped, so that a request cannot print lines of its own', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const logged: string[] = [];
    const dumper = createDumper();
    const other = createDumper({ logger: { debug() {}, warn: (m: string) => logged.push(m) } });
    for (const d of [dumper, other]) {
      const server = await listen(withDumper(d, app));
      await (await fetch(server.url + '/cookie/x%0Adumper:%20store%20get%20failed%0D%E2%80%A8')).text();
      await server.close();
      await d.close();
    }
    const lines = [...warn.mock.calls.map((c) => String(c[0])), ...logged];
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      // As requested: percent-encoded, so the line cannot break.
      expect(line).toMatch(/^dumper: not storing GET \/cookie\/x%0Adumper:%20store%20get%20failed%0D%E2%80%A8: response sets a cookie\./);
      expect(line).not.toMatch(/[\n\r\u2028]/);
    }
  });
});

describe('a store failure names the store', () => {
  class LabelledStore extends MemoryStore implements Store {
    override readonly label = 'TestStore tcp://10.0.0.9:7000/3';
    override get(): never {
      throw new Error('connect ETIMEDOUT');
    }
  }

  test('by its label, in the message and the error', async () => {
    const errors: Array<[string, Record<string, unknown>]> = [];
    const dumper = createDumper({ store: new LabelledStore(), logger: { debug() {}, warn() {}, error: (m: string, f: Record<string, unknown>) => errors.push([m, f]) } });
    expect(dumper.storeLabel).toBe('TestStore tcp://10.0.0.9:7000/3');
    const server = await listen(withDumper(dumper, app));
    await (await fetch(server.url + '/a')).text();
    await server.close();
    await dumper.close();
    expect(errors).toHaveLength(1);
    const [message, fields] = errors[0]!;
    expect(message).toBe('dumper: store get failed: TestStore tcp://10.0.0.9:7000/3: connect ETIMEDOUT; requests go to the app for 1000 ms');
    expect(fields.store).toBe('TestStore tcp://10.0.0.9:7000/3');
    expect(fields.code).toBe('DUMPER_STORE_FAILURE');
    expect((fields.error as Error).message).toBe('store get failed: TestStore tcp://10.0.0.9:7000/3: connect ETIMEDOUT');
    expect(((fields.error as Error).cause as Error).message).toBe('connect ETIMEDOUT');
  });

  test('a store without a label is named by its class; a plain object as "the store"', () => {
    const inner = new MemoryStore();
    class PlainStore implements Store {
      sequence = () => inner.sequence();
      get = (k: string) => inner.get(k);
      set: Store['set'] = (k, e, o) => inner.set(k, e, o);
      invalidate = (t: readonly string[]) => inner.invalidate(t);
      clear = () => inner.clear();
    }
    expect(createDumper({ store: new PlainStore(), logger: false }).storeLabel).toBe('PlainStore');
    const object: Store = {
      sequence: () => inner.sequence(),
      get: (k) => inner.get(k),
      set: (k, e, o) => inner.set(k, e, o),
      invalidate: (t) => inner.invalidate(t),
      clear: () => inner.clear(),
    };
    expect(createDumper({ store: object, logger: false }).storeLabel).toBe('the store');
  });
});
