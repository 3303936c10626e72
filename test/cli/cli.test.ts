/**
 * The `page-dumper` command against real stores (a SQLite file, Redis), run as a child process
 * from the built JavaScript: each command's human and --json output after known traffic through
 * a real site, purges reaching the store (the page is a MISS afterwards) and an edge purger, and
 * every error's message and exit code.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isEnumerable, listEntries, type Store } from '../../src/core/store.js';
import { listen } from '../support/listen.js';
import { createDumper } from '../../src/index.js';
import { varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { definedIf, needService, needVarnish } from '../support/services.js';
import { nodeRequest, Site, writeNode } from '../support/site.js';
import { startVarnish } from '../edge/varnish-server.js';
import { buildCli, cli, cliJson, serveSite, storeCases, until, visit } from './support.js';

const hasRedis = await needService('redis');
let build: string;
beforeAll(() => {
  build = buildCli();
}, 180_000);
afterAll(() => {
  if (build) rmSync(build, { recursive: true, force: true });
});

/** The pages the known traffic stores: six entries, two of them tagged. */
const PAGES = ['/', '/page/a', '/page/b', '/page/a?x=1', '/data/1', '/data/2'];

/** Requests every page until it is a HIT (stored), then waits for the compressed copies. */
async function traffic(site: Awaited<ReturnType<typeof serveSite>>): Promise<void> {
  for (const p of PAGES) {
    await until(async () => (await site.get(p)).cache === 'HIT', `${p} stored`);
  }
  await site.dumper.flushCompression();
}

/** What this process's store lists, for comparison with the command's output. */
async function listed(store: Store) {
  if (!isEnumerable(store)) throw new Error('not enumerable');
  const out = [];
  for await (const e of listEntries(store)) out.push(e);
  return out;
}

describe.each(storeCases(() => build, hasRedis))('page-dumper on $name', (c) => {
  test('stats, ls and show: human and --json output after known traffic', async () => {
    const { args, open, cleanup } = c.fresh();
    const site = await serveSite(open());
    try {
      const empty = await cliJson(build, ['stats', ...args]);
      expect(empty.code).toBe(0);
      expect(empty.json).toMatchObject({ entries: 0, bytes: 0, tags: 0 });

      await traffic(site);
      const host = new URL(site.mounted.url).host;
      const store = site.dumper.store;

      // stats
      const stats = await cliJson(build, ['stats', ...args]);
      expect(stats.code).toBe(0);
      const info = await (store as Store & { info(): Promise<{ bytes: number; tags: number }> }).info();
      expect(stats.json).toEqual({ store: expect.any(String), entries: 6, bytes: info.bytes, tags: info.tags, sequence: await store.sequence() });
      expect(stats.json.bytes).toBeGreaterThan(0);
      const human = await cli(build, ['stats', ...args]);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(/^entries\s+6$/m);
      expect(human.stdout).toMatch(new RegExp(`^sequence\\s+${await store.sequence()}$`, 'm'));
      expect(human.stdout).toMatch(/^tags\s+\d+$/m);

      // ls
      const ls = await cliJson(build, ['ls', ...args]);
      expect(ls.code).toBe(0);
      expect(ls.json.more).toBe(false);
      expect(ls.json.entries.map((e: { target: string }) => e.target).sort()).toEqual([...PAGES].sort());
      const data1 = ls.json.entries.find((e: { target: string }) => e.target === '/data/1');
      expect(data1).toMatchObject({ host, path: '/data/1', status: 200, tags: ['/data/1', 'item:1'], anonymousOnly: false });
      expect(ls.json.entries.find((e: { target: string }) => e.target === '/page/a?x=1')).toMatchObject({ path: '/page/a', tags: ['/page/a'] });
      const lsHuman = await cli(build, ['ls', ...args]);
      expect(lsHuman.code).toBe(0);
      expect(lsHuman.stdout.split('\n')[0]).toMatch(/^AGE\s+STATUS\s+SIZE\s+ENCODINGS\s+PAGE\s+TAGS$/);
      expect(lsHuman.stdout).toMatch(new RegExp(`200 .* ${host.replace('.', '\\.')}/data/1\\s+item:1$`, 'm'));
      expect(lsHuman.stdout).toMatch(/^6 pages$/m);

      const byPrefix = await cliJson(build, ['ls', '--path-prefix', '/page/', ...args]);
      expect(byPrefix.json.entries.map((e: { target: string }) => e.target).sort()).toEqual(['/page/a', '/page/a?x=1', '/page/b']);
      const byTag = await cliJson(build, ['ls', '--tag', 'item:2', ...args]);
      expect(byTag.json.entries.map((e: { target: string }) => e.target)).toEqual(['/data/2']);
      const limited = await cliJson(build, ['ls', '--limit', '2', ...args]);
      expect(limited.json.entries).toHaveLength(2);
      expect(limited.json.more).toBe(true);
      const limitedHuman = await cli(build, ['ls', '--limit', '2', ...args]);
      expect(limitedHuman.stdout).toMatch(/^2 pages shown; more are stored \(--limit 2; --limit 0 for all\)$/m);
      expect((await cliJson(build, ['ls', '--limit', '0', ...args])).json.entries).toHaveLength(6);
      expect((await cli(build, ['ls', '--tag', 'nothing', ...args])).stdout).toBe('no pages stored\n');

      // show: the same metadata as the store holds, encodings by coding and size.
      const ours = (await listed(store)).find((e) => e.key.endsWith('/page/b'))!;
      const show = await cliJson(build, ['show', `${site.mounted.url}/page/b`, ...args]);
      expect(show.code).toBe(0);
      expect(show.json.cached).toBe(true);
      expect(show.json.entries).toHaveLength(1);
      const entry = show.json.entries[0];
      expect(entry).toMatchObject({ host, target: '/page/b', status: 200, bodyBytes: ours.bodyBytes, encodings: ours.encodings, tags: ['/page/b'], seq: ours.seq, etag: ours.etag });
      expect(entry.storedAt).toBe(new Date(ours.storedAt).toISOString());
      expect(entry.headers).toContainEqual(['content-type', 'text/html; charset=utf-8']);
      expect(entry.headers).toContainEqual(['x-app', 'yes']);
      const showHuman = await cli(build, ['show', `${site.mounted.url}/page/b`, ...args]);
      expect(showHuman.code).toBe(0);
      expect(showHuman.stdout).toMatch(new RegExp(`^page\\s+${host.replace('.', '\\.')}/page/b$`, 'm'));
      expect(showHuman.stdout).toMatch(/^status\s+200$/m);
      expect(showHuman.stdout).toMatch(/^stored\s+\d{4}-\d\d-\d\dT.*Z \(age \d+s\)$/m);
      expect(showHuman.stdout).toMatch(new RegExp(`^size\\s+.* \\(${ours.bodyBytes} bytes\\)$`, 'm'));
      expect(showHuman.stdout).toMatch(new RegExp(`^encodings\\s+identity [^,]+${ours.encodings.map((e) => `, ${e.coding} [^,]+`).join('')}$`, 'm'));
      expect(showHuman.stdout).toMatch(/^tags\s+\/page\/b$/m);
      expect(showHuman.stdout).toContain('  x-app: yes\n');
      // A path alone matches every host; the query string is normalized as the dumper does.
      expect((await cliJson(build, ['show', '/page/a?x=1', ...args])).json.entries.map((e: { target: string }) => e.target)).toEqual(['/page/a?x=1']);
      expect((await cliJson(build, ['show', '/data/1', ...args])).json.entries[0].tags).toEqual(['/data/1', 'item:1']);
      // Not cached: another host, an unknown page, a path the dumper ignores.
      expect((await cliJson(build, ['show', 'http://other.example/page/b', ...args])).json).toMatchObject({ cached: false, entries: [] });
      const missing = await cli(build, ['show', '/page/zzz', ...args]);
      expect(missing).toMatchObject({ code: 0, stdout: '/page/zzz: not cached\n' });
      expect((await cli(build, ['show', '/admin/x', ...args])).stdout).toBe('/admin/x: not cached: the dumper bypasses it (ignored path)\n');
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);

  test('purge --path, --tag, --prefix and --all reach the store: the pages are a MISS afterwards', async () => {
    const { args, open, cleanup } = c.fresh();
    const site = await serveSite(open());
    const isHit = async (p: string) => (await site.get(p)).cache === 'HIT';
    try {
      await traffic(site);
      const byPath = await cli(build, ['purge', '--path', '/PAGE/A/', ...args]);
      expect(byPath).toMatchObject({ code: 0, stderr: '' });
      expect(byPath.stdout).toBe('purged path /PAGE/A/\nedge caches were not purged: give --config with the site\'s purgers for that\n');
      // Every spelling and query-string variant of the page; nothing else.
      await until(async () => !(await isHit('/page/a')), '/page/a purged');
      expect((await site.get('/page/a?x=1')).cache).toBe('MISS');
      expect((await site.get('/page/b')).cache).toBe('HIT');

      const byTag = await cliJson(build, ['purge', '--tag', 'item:1', ...args]);
      expect(byTag.code).toBe(0);
      expect(byTag.json).toEqual({ purged: { tags: ['item:1'] }, edge: null });
      expect((await site.get('/data/1')).cache).toBe('MISS');
      expect((await site.get('/data/2')).cache).toBe('HIT');

      // Pages below a prefix, stored without prefix tags (the site does not use prefixInvalidation).
      await traffic(site);
      const byPrefix = await cli(build, ['purge', '--prefix', '/page', ...args]);
      expect(byPrefix.code).toBe(0);
      expect(byPrefix.stdout).toMatch(/^purged prefix \/page \(3 pages stored below\)$/m);
      for (const p of ['/page/a', '/page/b', '/page/a?x=1']) expect((await site.get(p)).cache, p).toBe('MISS');
      expect((await site.get('/data/2')).cache).toBe('HIT');
      expect((await site.get('/')).cache).toBe('HIT');

      await traffic(site);
      const all = await cliJson(build, ['purge', '--all', ...args]);
      expect(all.json).toEqual({ purged: { all: true }, edge: null });
      for (const p of PAGES) expect((await site.get(p)).cache, p).toBe('MISS');
      expect((await cliJson(build, ['stats', ...args])).json.entries).toBeLessThanOrEqual(PAGES.length);
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);

  test('purge with --prefix reaches pages stored with prefix tags too (prefixInvalidation)', async () => {
    const { args, open, cleanup } = c.fresh();
    const site = await serveSite(open(), { prefixInvalidation: true });
    try {
      await traffic(site);
      const run = await cliJson(build, ['purge', '--prefix', '/page/', ...args]);
      expect(run.code).toBe(0);
      expect(run.json.purged).toEqual({ prefixes: ['/page/'], pagesBelow: 3 });
      for (const p of ['/page/a', '/page/b', '/page/a?x=1']) expect((await site.get(p)).cache, p).toBe('MISS');
      expect((await site.get('/data/1')).cache).toBe('HIT');
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);

  test('--config: the site\'s dumper options (store, keyPrefix, purgers): purge reaches the edge, and waits for it', async () => {
    const { env, open, cleanup } = c.fresh();
    // A Varnish-like edge on loopback: answers PURGE with 200, records the xkey-purge tags.
    const purged: string[] = [];
    let answer = 200;
    const edge = await listen((req, res) => {
      if (req.method === 'PURGE') purged.push(...String(req.headers['xkey-purge']).split(' '));
      res.statusCode = answer;
      res.end();
    });
    const dir = mkdtempSync(join(build, 'config-'));
    const config = join(dir, 'dumper.config.mjs');
    writeFileSync(
      config,
      `import { varnishPurger } from '../dist/edge/index.js';
import { SqliteStore } from '../dist/stores/sqlite/index.js';
import { RedisStore } from '../dist/stores/redis/index.js';
export default () => ({
  store: process.env.STORE === 'sqlite' ? new SqliteStore({ path: process.env.CACHE_DB }) : new RedisStore({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX }),
  keyPrefix: 'site-one:',
  purgers: [varnishPurger({ url: process.env.EDGE_URL })],
  edge: { raceWindow: 100, retryDelay: 50, maxRetryDelay: 100 },
  logger: false,
});
`,
    );
    const site = await serveSite(open(), { keyPrefix: 'site-one:' });
    try {
      await traffic(site);
      const withEdge = { ...env, EDGE_URL: edge.url };
      // The config's key prefix applies: its pages are listed.
      const ls = await cliJson(build, ['ls', '--config', config], withEdge);
      expect(ls.code).toBe(0);
      expect(ls.json.entries).toHaveLength(PAGES.length);
      expect(ls.json.entries[0].key.startsWith('site-one:')).toBe(true);

      const run = await cli(build, ['purge', '--tag', 'item:2', '--config', config], withEdge);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^purged tag item:2\nedge purgers acknowledged \(\d+ requests? sent\)\n$/);
      // The store and the edge both had it by the time the command exited.
      expect(purged).toContain('item:2');
      expect((await site.get('/data/2')).cache).toBe('MISS');
      expect((await site.get('/data/1')).cache).toBe('HIT');

      // An edge that refuses: the command waits --timeout, then fails, the purge left queued in the store.
      answer = 500;
      purged.length = 0;
      const late = await cliJson(build, ['purge', '--path', '/page/b', '--timeout', '500', '--config', config], withEdge);
      expect(late.code).toBe(1);
      expect(late.json.error).toBe("the edge purgers did not acknowledge the purges within 500 ms; they stay queued in the store, and the site's processes deliver them");
      expect(late.stderr).toBe(`page-dumper: ${late.json.error}\n`);
      expect((await site.get('/page/b')).cache).toBe('MISS');
      const store = open();
      try {
        const queue = `site-one:purge varnish ${new URL(edge.url).href}`;
        expect((await store.queueStats!(queue)).size).toBeGreaterThan(0);
      } finally {
        await store.close?.();
      }
    } finally {
      await site.close();
      await edge.close();
      await cleanup();
    }
  }, 120_000);

  test('a --config module that exports a Dumper is used as it is; one with a MemoryStore is refused', async () => {
    const { env, open, cleanup } = c.fresh();
    const dir = mkdtempSync(join(build, 'config-'));
    const dumperConfig = join(dir, 'dumper.mjs');
    writeFileSync(
      dumperConfig,
      `import { createDumper } from '../dist/index.js';
import { SqliteStore } from '../dist/stores/sqlite/index.js';
import { RedisStore } from '../dist/stores/redis/index.js';
const store = process.env.STORE === 'sqlite' ? new SqliteStore({ path: process.env.CACHE_DB }) : new RedisStore({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX });
export default createDumper({ store, keyPrefix: 'two:', logger: false });
`,
    );
    const memory = join(dir, 'memory.mjs');
    writeFileSync(memory, `export default { keyPrefix: 'x:' };\n`);
    const site = await serveSite(open(), { keyPrefix: 'two:' });
    try {
      await traffic(site);
      const stats = await cliJson(build, ['stats', '--config', dumperConfig], env);
      expect(stats.json.entries).toBe(PAGES.length);
      const show = await cliJson(build, ['show', '/page/a', '--config', dumperConfig], env);
      expect(show.json.entries.map((e: { key: string }) => e.key)).toEqual([`two:${new URL(site.mounted.url).host}/page/a`]);
      const refused = await cli(build, ['stats', '--config', memory], env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe(
        `page-dumper: --config ${memory}: its store is a MemoryStore, private to one process; the command needs the site's shared store (SqliteStore, RedisStore)\nRun 'page-dumper --help' for usage.\n`,
      );
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);
});

describe('errors: message and exit code', () => {
  const cases: Array<[string, string[], number, string]> = [
    ['no command', [], 2, 'no command given (stats, ls, show, purge, warm)'],
    ['an unknown command', ['frobnicate'], 2, 'unknown command "frobnicate" (stats, ls, show, purge, warm)'],
    ['an unknown option', ['stats', '--frob'], 2, "Unknown option '--frob'"],
    ['an option of another command', ['stats', '--tag', 'x', '--sqlite', 'x.db'], 2, 'option --tag does not apply to "stats"'],
    ['no store', ['stats'], 2, 'no store given: --redis URL, --sqlite PATH or --config FILE'],
    ['two stores', ['stats', '--sqlite', 'a.db', '--redis', 'redis://127.0.0.1'], 2, 'give one store, not --redis and --sqlite'],
    ['a bad Redis URL', ['stats', '--redis', 'localhost:6379'], 2, '--redis must be a redis:// or rediss:// URL with a host, got "localhost:6379"'],
    ['a bad Redis prefix', ['stats', '--redis', 'redis://127.0.0.1', '--store-prefix', 'a{b}'], 2, 'RedisStore option "prefix" must be a non-empty string without braces, got "a{b}"'],
    ['a missing SQLite file', ['stats', '--sqlite', 'nope/cache.sqlite'], 1, "--sqlite nope/cache.sqlite: no such file (the site's SqliteStore creates it)"],
    ['a file that is no database', ['stats', '--sqlite', 'package.json'], 1, 'SqliteStore <build>/package.json: could not use the database: file is not a database'],
    ['a missing value', ['ls', '--tag'], 2, "Option '--tag <value>' argument missing"],
    ['a bad limit', ['ls', '--limit', 'ten', '--sqlite', 'x'], 2, '--limit must be an integer of at least 0, got "ten"'],
    ['two tags for ls', ['ls', '--tag', 'a', '--tag', 'b', '--sqlite', 'x'], 2, 'ls takes one --tag'],
    ['show without a URL', ['show', '--sqlite', 'x'], 2, 'show needs a URL or a path: page-dumper show http://example.com/page'],
    ['show with a bad URL', ['show', 'ftp://x/y', '--sqlite', 'x'], 2, 'show: not an http(s) URL: "ftp://x/y"'],
    ['purge without a target', ['purge', '--sqlite', 'x'], 2, 'purge needs --path, --tag, --prefix or --all'],
    ['purge --all with more', ['purge', '--all', '--tag', 't', '--sqlite', 'x'], 2, '--all goes alone: it purges everything'],
    ['purge of a non-path', ['purge', '--path', 'page/a', '--sqlite', 'x'], 2, 'not a path or an http(s) URL: "page/a" (paths start with "/")'],
    ['a negative timeout', ['purge', '--all', '--timeout', '-1', '--sqlite', 'x'], 2, "Option '--timeout' argument is ambiguous"],
    ['a bad timeout', ['purge', '--all', '--timeout', '1s', '--sqlite', 'x'], 2, '--timeout must be an integer of at least 1, got "1s"'],
    ['a stray argument', ['stats', 'extra', '--sqlite', 'x'], 2, '"stats" takes no argument, got "extra"'],
    ['a missing config', ['stats', '--config', 'nope.mjs'], 2, '--config nope.mjs: no such file'],
    ['--key-prefix with --config', ['stats', '--config', 'package.json', '--key-prefix', 'x'], 2, "--key-prefix does not go with --config: the config's store and keyPrefix apply"],
    ['a config that exports nothing usable', ['stats', '--config', 'empty.mjs'], 2, '--config empty.mjs: its default export must be a Dumper (createDumper(...)), createDumper() options, or a function returning either'],
    ['a config with a bad option', ['stats', '--config', 'bad-option.mjs'], 2, '--config bad-option.mjs: unknown option "stor"'],
    ['warm without --sitemap', ['warm', '--base', 'http://127.0.0.1:1'], 2, 'warm needs --sitemap URL|FILE'],
    ['warm without --base', ['warm', '--sitemap', 'sitemap.xml'], 2, 'warm needs --base URL (where the site runs: http://127.0.0.1:3000)'],
    ['warm with a bad --base', ['warm', '--sitemap', 's.xml', '--base', 'example.com'], 2, '--base must be an http(s) URL, got "example.com"'],
    ['warm with a bad --concurrency', ['warm', '--sitemap', 's.xml', '--base', 'http://a', '--concurrency', '0'], 2, '--concurrency must be an integer of at least 1, got "0"'],
    ['warm with a bad --forwarded', ['warm', '--sitemap', 's.xml', '--base', 'http://a', '--forwarded', 'yes'], 2, '--forwarded must be none, proto or all, got "yes"'],
    ['warm with a bad --header', ['warm', '--sitemap', 's.xml', '--base', 'http://a', '--header', 'nocolon'], 2, '--header must be "Name: value", got "nocolon"'],
    ['warm with a store', ['warm', '--sitemap', 's.xml', '--base', 'http://a', '--sqlite', 'x'], 2, 'option --sqlite does not apply to "warm"'],
    ['warm with a missing sitemap file', ['warm', '--sitemap', 'nope.xml', '--base', 'http://127.0.0.1:1'], 1, 'could not read the sitemap nope.xml: no such file'],
    ['warm with a file that is no sitemap', ['warm', '--sitemap', 'package.json', '--base', 'http://127.0.0.1:1'], 1, 'package.json: not a sitemap: no <urlset> or <sitemapindex> element'],
  ];
  beforeAll(() => {
    writeFileSync(join(build, 'empty.mjs'), 'export default 42;\n');
    writeFileSync(join(build, 'bad-option.mjs'), 'export default { stor: 1 };\n');
  });

  test.each(cases)('%s', async (_name, args, code, expected) => {
    // <build>: the directory the CLI runs in (a SqliteStore names its file by its absolute path).
    const message = expected.replace('<build>', build);
    const run = await cli(build, args);
    expect(run.code).toBe(code);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`page-dumper: ${message}\n${code === 2 ? "Run 'page-dumper --help' for usage.\n" : ''}`);
    const json = await cliJson(build, args);
    expect(json.code).toBe(code);
    expect(json.json).toEqual({ error: message, exitCode: code });
  }, 30_000);

  test('an unreachable Redis: exit 1, said so', async () => {
    // A loopback port where nothing listens.
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    await new Promise((r) => server.close(r));
    const run = await cli(build, ['stats', '--redis', `redis://127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`page-dumper: cannot reach the store redis://127.0.0.1:${port} (prefix page-dumper:): connect ECONNREFUSED 127.0.0.1:${port}\n`);
  }, 30_000);

  (hasRedis ? test : () => undefined)('cli: a Redis URL naming a database the server does not have (redis://...:6379/99) is a clear error, not a silent run against database 0', async () => {
    // A prefix of its own: were the check missing, `purge --all` would clear it in database 0.
    const prefix = `cli-db99-${randomUUID().slice(0, 8)}:`;
    const message = `the store redis://127.0.0.1:6379/99 (prefix ${prefix}): Redis has no database 99 (it answered "ERR DB index is out of range"; the number of databases is its \`databases\` setting, 16 by default). The store does not fall back to database 0: every call fails until the URL or the server is changed and the store reconnects`;
    for (const command of [['stats'], ['purge', '--all']]) {
      const run = await cli(build, [...command, '--redis', 'redis://127.0.0.1:6379/99', '--store-prefix', prefix]);
      expect(run.code, command[0]).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(`page-dumper: ${message}\n`);
    }
    const json = await cliJson(build, ['stats', '--redis', 'redis://127.0.0.1:6379/99', '--store-prefix', prefix]);
    expect(json.json).toEqual({ error: message, exitCode: 1 });
    // A database the server has.
    const one = await cliJson(build, ['stats', '--redis', 'redis://127.0.0.1:6379/1', '--store-prefix', 'cli-db-check:']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.json).toMatchObject({ store: 'redis://127.0.0.1:6379/1 (prefix cli-db-check:)' });
  }, 60_000);

  test('a port that does not speak Redis: exit 1, said so', async () => {
    // Accepts connections and closes them at once.
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    try {
      const run = await cli(build, ['ls', '--redis', `redis://127.0.0.1:${port}`]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(new RegExp(`^page-dumper: cannot reach the store redis://127\\.0\\.0\\.1:${port} \\(prefix page-dumper:\\): \\S.*\\n$`));
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 30_000);

  test('--help for the tool and each command; help <command>', async () => {
    const tool = await cli(build, ['--help']);
    expect(tool.code).toBe(0);
    expect(tool.stderr).toBe('');
    expect(tool.stdout).toMatch(/^page-dumper: look into a page-dumper store, purge pages, warm them\.\n\nUsage: page-dumper <command> \[options\]/);
    for (const command of ['stats', 'ls', 'show', 'purge', 'warm']) {
      expect(tool.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
      for (const args of [[command, '--help'], ['help', command], [command, '-h']]) {
        const run = await cli(build, args);
        expect(run.code, args.join(' ')).toBe(0);
        expect(run.stdout).toMatch(new RegExp(`^page-dumper ${command}: .+\\n\\nUsage: page-dumper ${command} `));
      }
    }
    expect((await cli(build, ['purge', '--help'])).stdout).toContain('--prefix P           a path and every page below it (repeatable)');
    expect((await cli(build, ['help', 'nope'])).code).toBe(2);
  }, 60_000);
});

describe.each(storeCases(() => build, hasRedis))('page-dumper warm on $name', (c) => {
  const urlset = (origin: string, paths: string[]) =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n${paths.map((p) => `  <url><loc>${origin}${p.replace(/&/g, '&amp;')}</loc></url>`).join('\n')}\n</urlset>\n`;

  test('a sitemap file: every page rendered and stored through the site (MISS), then HIT', async () => {
    const { args, open, cleanup } = c.fresh();
    const site = await serveSite(open());
    const dir = mkdtempSync(join(build, 'sitemap-'));
    // The sitemap names the public origin: the pages are fetched from --base, as visitors of it
    // reach the site through a proxy that terminates TLS (Host and X-Forwarded-Proto).
    const proxied = { host: 'www.example.com', 'x-forwarded-proto': 'https' };
    const file = join(dir, 'sitemap.xml');
    writeFileSync(file, urlset('https://www.example.com', ['/page/one', '/page/two', '/echo?b=2&a=1']));
    try {
      const first = await cli(build, ['warm', '--sitemap', file, '--base', site.mounted.url]);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toBe(
        `warmed 3 pages of 1 sitemap on ${site.mounted.url} (concurrency 4)\n` +
          'MISS    3  rendered now (stored unless the dumper refused them)\n' +
          'HIT     0  stored already\n' +
          'BYPASS  0  not cached by the dumper\n' +
          'other   0  no cache header (not served through the dumper?)\n' +
          'errors  0  -\n',
      );
      expect(site.site.count('/page/one')).toBe(1);
      // Stored by the site's dumper, as for a visitor: the next visitor gets a hit, and the store lists them.
      await site.dumper.flushCompression();
      expect((await visit(site.mounted.url, '/page/two', proxied)).cache).toBe('HIT');
      expect(site.site.count('/page/two')).toBe(1);
      await site.dumper.flushCompression();
      const ls = await cliJson(build, ['ls', ...args]);
      expect(ls.json.entries.map((e: { target: string }) => e.target).sort()).toEqual(['/echo?a=1&b=2', '/page/one', '/page/two']);
      const second = await cliJson(build, ['warm', '--sitemap', file, '--base', site.mounted.url, '--concurrency', '2']);
      expect(second.code).toBe(0);
      expect(second.json).toMatchObject({ base: site.mounted.url, total: 3, hit: 3, miss: 0, bypass: 0, other: 0, errors: 0, sitemaps: [file] });
      expect(second.json.results).toEqual([
        { url: 'https://www.example.com/page/one', status: 200, cache: 'HIT' },
        { url: 'https://www.example.com/page/two', status: 200, cache: 'HIT' },
        { url: 'https://www.example.com/echo?b=2&a=1', status: 200, cache: 'HIT' },
      ]);
      expect(site.site.count('/page/one')).toBe(1);
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);

  test('a sitemap URL: a gzip\'d index of two urlsets (one gzip\'d), fetched from --base; a page that fails is an error and exit 1', async () => {
    const { open, cleanup } = c.fresh();
    const origin = 'https://www.example.com';
    const files = {
      '/sitemap-index.xml.gz': {
        type: 'application/gzip',
        body: gzipSync(
          `<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>${origin}/pages-1.xml</loc></sitemap><!-- <sitemap><loc>${origin}/old.xml</loc></sitemap> --><sitemap><loc><![CDATA[${origin}/pages-2.xml.gz]]></loc></sitemap></sitemapindex>`,
        ),
      },
      '/pages-1.xml': { type: 'application/xml', body: urlset(origin, ['/page/x', '/data/7']) },
      '/pages-2.xml.gz': { type: 'application/gzip', body: gzipSync(urlset(origin, ['/page/y', '/nope', '/page/x'])) },
    };
    const site = await serveSite(open(), {}, files);
    try {
      const run = await cliJson(build, ['warm', '--sitemap', `${site.mounted.url}/sitemap-index.xml.gz`, '--base', site.mounted.url]);
      expect(run.code).toBe(1);
      expect(run.json).toMatchObject({
        sitemaps: [`${site.mounted.url}/sitemap-index.xml.gz`, `${origin}/pages-1.xml`, `${origin}/pages-2.xml.gz`],
        total: 4,
        miss: 3,
        hit: 0,
        errors: 1,
      });
      expect(run.json.results.find((r: { url: string }) => r.url.endsWith('/nope'))).toEqual({ url: `${origin}/nope`, status: 404, cache: 'MISS', error: 'HTTP 404' });
      const proxied = { host: 'www.example.com', 'x-forwarded-proto': 'https' };
      await site.dumper.flushCompression();
      for (const p of ['/page/x', '/page/y']) expect((await visit(site.mounted.url, p, proxied)).cache, p).toBe('HIT');
      await until(async () => (await visit(site.mounted.url, '/data/7', proxied)).cache === 'HIT', '/data/7 stored');
      const human = await cli(build, ['warm', '--sitemap', `${site.mounted.url}/sitemap-index.xml.gz`, '--base', site.mounted.url]);
      expect(human.code).toBe(1);
      expect(human.stdout).toMatch(/^HIT\s+3\s/m);
      expect(human.stdout).toMatch(/^errors\s+1\s+listed below\n {2}https:\/\/www\.example\.com\/nope: HTTP 404\n$/m);
      // A sitemap URL that is not there.
      const missing = await cli(build, ['warm', '--sitemap', `${site.mounted.url}/missing.xml`, '--base', site.mounted.url]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe(`page-dumper: could not fetch the sitemap ${site.mounted.url}/missing.xml: HTTP 404\n`);
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);
});

describe.each(storeCases(() => build, hasRedis))('page-dumper show and ls of pages stored behind a proxy, on $name', (c) => {
  test('cli: show https://shop.example/page finds the page a proxy (X-Forwarded-Host/-Proto) had stored for shop.example; ls shows it readably', async () => {
    const { args, open, cleanup } = c.fresh();
    const site = await serveSite(open());
    const local = new URL(site.mounted.url).host;
    try {
      // What every request looks like behind nginx / a load balancer: two proxies' ways.
      const viaUpstream = { host: local, 'x-forwarded-host': 'shop.example', 'x-forwarded-proto': 'https' };
      const viaHost = { host: 'shop.example', 'x-forwarded-proto': 'https' };
      for (const [path, headers] of [['/page/a', viaUpstream], ['/page/b', viaHost]] as const) {
        expect((await visit(site.mounted.url, path, headers)).cache).toBe('MISS');
        await site.dumper.flushCompression();
        expect((await visit(site.mounted.url, path, headers)).cache).toBe('HIT');
      }
      for (const [url, key] of [
        ['https://shop.example/page/a', `dumper.cached_path.${local}|https|shop.example/page/a`],
        ['https://SHOP.example/page/b', 'dumper.cached_path.shop.example|https|/page/b'],
        ['/page/a', `dumper.cached_path.${local}|https|shop.example/page/a`],
      ] as const) {
        const show = await cliJson(build, ['show', ...args, url]);
        expect(show.code, show.stderr).toBe(0);
        expect(show.json.cached, url).toBe(true);
        expect(show.json.entries.map((e: { key: string }) => e.key)).toEqual([key]);
      }
      // Another scheme than the proxy forwarded, another host: another page.
      expect((await cliJson(build, ['show', ...args, 'http://shop.example/page/a'])).json.cached).toBe(false);
      expect((await cliJson(build, ['show', ...args, `http://${local}/page/a`])).json.cached).toBe(false);
      const human = await cli(build, ['show', ...args, 'https://shop.example/page/a']);
      expect(human.stdout).toMatch(new RegExp(`^page +${local.replace(/\./g, '\\.')}/page/a \\(https, forwarded shop\\.example\\)\n`));
      const ls = await cli(build, ['ls', ...args]);
      expect(ls.stdout).toContain(` ${local}/page/a (https, forwarded shop.example) `);
      expect(ls.stdout).toContain(' shop.example/page/b (https) ');
      const lsJson = await cliJson(build, ['ls', ...args]);
      expect(lsJson.json.entries.map((e: { host: string; forwardedProto?: string; forwardedHost?: string; target: string }) => [e.host, e.forwardedProto, e.forwardedHost, e.target]).sort()).toEqual(
        [
          [local, 'https', 'shop.example', '/page/a'],
          ['shop.example', 'https', undefined, '/page/b'],
        ].sort(),
      );
    } finally {
      await site.close();
      await cleanup();
    }
  }, 120_000);
});

describe('page-dumper warm: the keys visitors behind the site\'s proxy get', () => {
  test('warm --sitemap https://shop.example/sitemap.xml --base http://127.0.0.1:PORT (the documented use) warms the pages shop.example visitors ask for', async () => {
    let renders = 0;
    const dumper = createDumper({ logger: false });
    const m = await listen(
      withDumper(dumper, (_req: http.IncomingMessage, res: http.ServerResponse) => {
        renders++;
        res.setHeader('content-type', 'text/html');
        res.end('<p>page</p>');
      }),
    );
    const dir = mkdtempSync(join(build, 'sitemap-'));
    try {
      const file = join(dir, 'sitemap.xml');
      const page = (p: string) => `<url><loc>https://shop.example${p}</loc></url>`;
      writeFileSync(file, `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${['/a/', '/b/', '/c/'].map(page).join('')}</urlset>`);
      // Three proxies in front of the site, each passing on what it passes on: the public Host and
      // X-Forwarded-Proto (nginx's usual setup, load balancers; the default for https pages on an
      // http --base); the public Host alone; its upstream's address as Host, with both forwarded headers.
      const proxies: Array<[string, string[], Record<string, string>]> = [
        ['/a/', [], { host: 'shop.example', 'x-forwarded-proto': 'https' }],
        ['/b/', ['--forwarded', 'none'], { host: 'shop.example' }],
        ['/c/', ['--forwarded', 'all', '--header', `Host: 127.0.0.1:${m.port}`], { host: `127.0.0.1:${m.port}`, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' }],
      ];
      for (const [path, args, visitor] of proxies) {
        const run = await cliJson(build, ['warm', '--sitemap', file, '--base', m.url, ...args]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.json.results.map((r: { url: string }) => r.url)).toEqual(['https://shop.example/a/', 'https://shop.example/b/', 'https://shop.example/c/']);
        await dumper.flushCompression();
        const before = renders;
        // A visitor of the public site, through that proxy: served what warm stored.
        expect((await visit(m.url, path, visitor)).cache, path).toBe('HIT');
        expect(renders).toBe(before);
      }
    } finally {
      await m.close();
      await dumper.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

const varnishd = await needVarnish();
definedIf(varnishd, describe)('page-dumper purge --config with a real Varnish in front of the site', () => {
  test('the purged page is a Varnish miss when the command has exited; the others stay Varnish hits', async () => {
    const { env, open, cleanup } = storeCases(() => build, false)[0]!.fresh();
    // The origin's port first (Varnish's backend), then Varnish, then the site's dumper with its purger.
    let current: http.RequestListener = (_req, res) => void res.end();
    const origin = await listen((req, res) => current(req, res));
    const varnish = await startVarnish(varnishd!, origin.port);
    const dumper = createDumper({ store: open(), logger: false, trackRenders: true, purgers: [varnishPurger({ url: varnish.url })], edge: { raceWindow: 100 } });
    const site = new Site(dumper);
    current = withDumper(dumper, (req, res) => void site.handle(nodeRequest(req)).then((r) => writeNode(res, r)));
    const config = join(mkdtempSync(join(build, 'config-')), 'dumper.config.mjs');
    writeFileSync(
      config,
      `import { varnishPurger } from '../dist/edge/index.js';
import { SqliteStore } from '../dist/stores/sqlite/index.js';
export default () => ({ store: new SqliteStore({ path: process.env.CACHE_DB }), purgers: [varnishPurger({ url: process.env.VARNISH_URL })], edge: { raceWindow: 100 }, logger: false });
`,
    );
    const edge = async (p: string) => {
      const r = await fetch(`${varnish.url}${p}`);
      return { body: await r.text(), edge: r.headers.get('x-edge-cache') };
    };
    try {
      for (const p of ['/data/1', '/data/2']) {
        await edge(p);
        await until(async () => (await edge(p)).edge === 'HIT', `${p} a Varnish hit`);
      }
      site.db.set('1', 'strawberry');
      const run = await cli(build, ['purge', '--tag', 'item:1', '--config', config], { ...env, VARNISH_URL: varnish.url });
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^edge purgers acknowledged/m);
      // No waiting: the command returned once Varnish had acknowledged.
      const purged = await edge('/data/1');
      expect(purged.edge).toBe('MISS');
      expect(purged.body).toContain('item 1 = strawberry');
      expect((await edge('/data/2')).edge).toBe('HIT');
    } finally {
      await varnish.stop();
      await origin.close();
      await dumper.close();
      await cleanup();
    }
  }, 120_000);
});
