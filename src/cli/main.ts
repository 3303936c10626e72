/**
 * The `page-dumper` command: look into a shared store (SQLite, Redis), purge by hand through the
 * library's invalidation, warm pages from a sitemap. `main()` takes the arguments and where to
 * write, and resolves to the exit code; `index.ts` runs it.
 *
 * Exit codes: 0 done, 1 a runtime failure (a store that cannot be reached, a purge not
 * acknowledged in time, a page that failed to warm), 2 a usage error (an unknown command or
 * option, a missing or bad value, a config module that exports no dumper).
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createDumper, type Dumper } from '../core/dumper.js';
import { canonicalPath } from '../core/keys.js';
import type { DumperOptions } from '../core/options.js';
import { hasQueue, isEnumerable, listEntries, type EntryInfo, type EnumerableStore, type Store } from '../core/store.js';
import { warm, type Forwarded, type WarmResult } from '../core/warm.js';
import { MemoryStore } from '../stores/memory/index.js';
import { SitemapError, sitemapPages } from './sitemap.js';

/** Where the command writes. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** A failure with its exit code and the message shown (`page-dumper: <message>`). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

const usage = (message: string) => new CliError(message, 2);
const failure = (message: string) => new CliError(message, 1);

const DEFAULT_KEY_PREFIX = 'dumper.cached_path.';
/** How long one store command may wait, in the CLI (the library's default is for hits: 250 ms). */
const STORE_TIMEOUT = 5000;

const OPTIONS = {
  redis: { type: 'string' },
  sqlite: { type: 'string' },
  config: { type: 'string' },
  'key-prefix': { type: 'string' },
  'store-prefix': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'path-prefix': { type: 'string' },
  tag: { type: 'string', multiple: true },
  limit: { type: 'string' },
  path: { type: 'string', multiple: true },
  prefix: { type: 'string', multiple: true },
  all: { type: 'boolean' },
  timeout: { type: 'string' },
  sitemap: { type: 'string' },
  base: { type: 'string' },
  concurrency: { type: 'string' },
  header: { type: 'string', multiple: true },
  forwarded: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type OptionName = keyof typeof OPTIONS;
type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>['values'];

const STORE_OPTIONS: readonly OptionName[] = ['redis', 'sqlite', 'config', 'key-prefix', 'store-prefix'];
const GENERAL: readonly OptionName[] = ['json', 'help'];

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly help: string;
  readonly options: readonly OptionName[];
  readonly run: (ctx: Context) => Promise<number>;
}

const STORE_HELP = `Store (one of):
  --redis URL          a RedisStore: redis://host:6379/0, rediss://...
  --sqlite PATH        a SqliteStore: the site's database file (it must exist)
  --config FILE        a module whose default export is a Dumper, createDumper() options,
                       or a function returning either: the site's store, key prefix and
                       purgers (see docs/cli.md)
  --store-prefix P     the RedisStore "prefix" / SqliteStore "tablePrefix" the site uses
                       (default: page-dumper: / page_dumper_)
  --key-prefix P       the dumper's keyPrefix (default: ${DEFAULT_KEY_PREFIX})`;

const COMMANDS: Record<string, Command> = {
  stats: {
    summary: 'entries, bytes, tags and sequence number of the store',
    usage: 'page-dumper stats (--redis URL | --sqlite PATH | --config FILE) [--json]',
    help: 'Counts what the whole store holds (every key prefix that shares it), and reads its\nsequence number (it grows by one per invalidation).',
    options: [...STORE_OPTIONS],
    run: stats,
  },
  ls: {
    summary: 'list stored pages',
    usage: 'page-dumper ls [--path-prefix P] [--tag T] [--limit N] (store options) [--json]',
    help: `Lists the pages stored under the key prefix, oldest stored first.
  --path-prefix P      only pages whose path starts with P (compared as the dumper's
                       path tags: case-folded, trailing slash dropped); ending in "/",
                       P itself and the pages below it (/blog/: /blog and /blog/..., not /blogroll)
  --tag T              only pages carrying the tag T (as given to dumper.tag())
  --limit N            at most N pages (default 100; 0: all of them)`,
    options: [...STORE_OPTIONS, 'path-prefix', 'tag', 'limit'],
    run: ls,
  },
  show: {
    summary: 'show one stored page: status, headers, size, age, tags, encodings',
    usage: 'page-dumper show URL (store options) [--json]',
    help: 'URL is a full URL (http://example.com/page?x=1) or a path (/page?x=1: every host).\nThe query string is normalized as the dumper does (sorted, ignored parameters dropped).',
    options: [...STORE_OPTIONS],
    run: show,
  },
  purge: {
    summary: 'invalidate pages by path, tag or prefix, or everything',
    usage: 'page-dumper purge (--path P | --tag T | --prefix P)... | --all (store options) [--timeout MS] [--json]',
    help: `Invalidates through the library, as the site's own writes do: the store drops the pages,
renders in flight are not stored, and with --config the site's edge purgers are purged too
(the command waits until they acknowledged, at most --timeout).
  --path P             a page, every query-string variant and spelling of it (repeatable)
  --tag T              every page carrying the tag (repeatable)
  --prefix P           a path and every page below it (repeatable)
  --all                every page of the store, of every key prefix sharing it
  --timeout MS         how long to wait for edge purgers (default 30000)`,
    options: [...STORE_OPTIONS, 'path', 'tag', 'prefix', 'all', 'timeout'],
    run: purge,
  },
  warm: {
    summary: "request a sitemap's pages so that the site renders and stores them",
    usage: 'page-dumper warm --sitemap URL|FILE --base URL [--forwarded none|proto|all] [--concurrency N] [--header "Name: value"]... [--timeout MS] [--json]',
    help: `Fetches every page of the sitemap from the running site, as a visitor would: the site's
dumper stores each page through its fill protocol. Reports how many were HIT (stored already),
MISS (rendered now) and errors; exits 1 when a page failed.
  --sitemap URL|FILE   a sitemap (urlset or sitemapindex, gzip'd or not), by URL or path
  --base URL           where the site runs: every URL of the sitemap is fetched on this
                       origin (http://127.0.0.1:3000), the sitemaps an index lists too,
                       with the Host of its public URL, so that it is stored for visitors
  --forwarded MODE     the forwarded headers the site's proxy adds (part of the page keys):
                       none, proto (X-Forwarded-Proto), all (and X-Forwarded-Host);
                       default: proto for https pages on an http --base, none otherwise
  --concurrency N      requests at once (default 4)
  --header "N: v"      a header sent with every request (repeatable); "Host: h" replaces
                       the public host (a proxy that sends its upstream's address)
  --timeout MS         how long one page may take (default 30000)`,
    options: ['sitemap', 'base', 'forwarded', 'concurrency', 'header', 'timeout'],
    run: warmCommand,
  },
};

function toolHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `page-dumper: look into a page-dumper store, purge pages, warm them.

Usage: page-dumper <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  .join('\n')}

${STORE_HELP}

General:
  --json               machine-readable output on stdout
  -h, --help           this help; "page-dumper <command> --help" for a command's

Exit codes: 0 done, 1 failed (store unreachable, purge not acknowledged, page not warmed),
2 usage error.
`;
}

function commandHelp(name: string, c: Command): string {
  const store = c.options.includes('redis') ? `\n\n${STORE_HELP}` : '';
  return `page-dumper ${name}: ${c.summary}

Usage: ${c.usage}

${c.help}${store}

  --json               machine-readable output on stdout
`;
}

interface Context {
  readonly io: Io;
  readonly values: Values;
  readonly positionals: readonly string[];
  readonly json: boolean;
  /** Closes what the command opened (the store, the dumper); set by `open()`. */
  cleanup: (() => Promise<void>) | undefined;
}

/** Runs the command line `args` (without `node` and the script); resolves to the exit code. */
export async function main(args: readonly string[], io: Io): Promise<number> {
  const ctx: Context = { io, values: {} as Values, positionals: [], json: args.includes('--json'), cleanup: undefined };
  try {
    let parsed: { values: Values; positionals: string[] };
    try {
      parsed = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
    } catch (error) {
      // Node's first sentence says it; the rest is advice for another kind of program.
      throw usage(error instanceof Error ? error.message.split(/\.\s|\n/)[0]! : String(error));
    }
    const { values, positionals } = parsed;
    Object.assign(ctx, { values, positionals: positionals.slice(1), json: values.json === true });
    let name = positionals[0];
    if (name === 'help') {
      name = positionals[1];
      if (name === undefined) return write(io, toolHelp());
      const c = COMMANDS[name];
      if (c === undefined) throw usage(`unknown command "${name}"`);
      return write(io, commandHelp(name, c));
    }
    if (name === undefined) {
      if (values.help === true) return write(io, toolHelp());
      throw usage('no command given (stats, ls, show, purge, warm)');
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) throw usage(`unknown command "${name}" (stats, ls, show, purge, warm)`);
    if (values.help === true) return write(io, commandHelp(name, command));
    for (const given of Object.keys(values) as OptionName[]) {
      if (!GENERAL.includes(given) && !command.options.includes(given)) throw usage(`option --${given} does not apply to "${name}"`);
    }
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof CliError) {
      if (ctx.json) io.out(`${JSON.stringify({ error: error.message, exitCode: error.exitCode })}\n`);
      io.err(`page-dumper: ${error.message}\n${error.exitCode === 2 ? "Run 'page-dumper --help' for usage.\n" : ''}`);
      return error.exitCode;
    }
    const message = error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error);
    if (ctx.json) io.out(`${JSON.stringify({ error: message, exitCode: 1 })}\n`);
    io.err(`page-dumper: ${message}\n`);
    return 1;
  } finally {
    await ctx.cleanup?.();
  }
}

function write(io: Io, text: string): number {
  io.out(text);
  return 0;
}

// ------------------------------------------------------------------ options

function integer(ctx: Context, name: OptionName, fallback: number, min: number): number {
  const raw = ctx.values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) {
    throw usage(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function noPositionals(ctx: Context, command: string): void {
  if (ctx.positionals.length > 0) throw usage(`"${command}" takes no argument, got ${JSON.stringify(ctx.positionals[0])}`);
}

// ------------------------------------------------------------------ the store

/** What a command works on: the store, the key prefix, and a dumper for invalidations. */
interface Opened {
  readonly store: Store & EnumerableStore;
  readonly keyPrefix: string;
  /** The dumper over the store: the config's, or one made for purging. */
  readonly dumper: () => Dumper;
  /** Says which store, for people: `redis://127.0.0.1:6379 (prefix page-dumper:)`. */
  readonly label: string;
  /** The dumper came from `--config` (its purgers, prefixInvalidation, version apply). */
  readonly fromConfig: boolean;
}

function isDumper(value: unknown): value is Dumper {
  const d = value as Partial<Dumper> | null;
  return typeof d === 'object' && d !== null && typeof d.keyFor === 'function' && typeof d.invalidateTags === 'function' && typeof d.store === 'object';
}

async function loadConfig(file: string): Promise<Dumper> {
  const path = resolve(file);
  if (!existsSync(path)) throw usage(`--config ${file}: no such file`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (error) {
    throw usage(`--config ${file}: could not load it: ${error instanceof Error ? error.message : String(error)}`);
  }
  let value = mod.default;
  if (typeof value === 'function') value = await (value as () => unknown)();
  if (isDumper(value)) return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw usage(`--config ${file}: its default export must be a Dumper (createDumper(...)), createDumper() options, or a function returning either`);
  }
  try {
    return createDumper(value as DumperOptions);
  } catch (error) {
    throw usage(`--config ${file}: ${error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error)}`);
  }
}

async function open(ctx: Context): Promise<Opened> {
  const { values } = ctx;
  const given = (['redis', 'sqlite', 'config'] as const).filter((o) => values[o] !== undefined);
  if (given.length === 0) throw usage('no store given: --redis URL, --sqlite PATH or --config FILE');
  if (given.length > 1) throw usage(`give one store, not ${given.map((o) => `--${o}`).join(' and ')}`);
  const storePrefix = values['store-prefix'];
  let keyPrefix = values['key-prefix'];
  if (keyPrefix === '') throw usage('--key-prefix must not be empty');

  if (values.config !== undefined) {
    if (keyPrefix !== undefined || storePrefix !== undefined) {
      throw usage(`--${keyPrefix !== undefined ? 'key-prefix' : 'store-prefix'} does not go with --config: the config's store and keyPrefix apply`);
    }
    const dumper = await loadConfig(values.config);
    ctx.cleanup = () => dumper.close();
    const store = dumper.store;
    if (store instanceof MemoryStore || store.constructor?.name === 'MemoryStore') {
      throw usage(`--config ${values.config}: its store is a MemoryStore, private to one process; the command needs the site's shared store (SqliteStore, RedisStore)`);
    }
    if (!isEnumerable(store)) throw usage(`--config ${values.config}: its store cannot list its entries (no entries() and info())`);
    await reach(store, `the store of --config ${values.config}`);
    return { store, keyPrefix: dumper.keyPrefix, dumper: () => dumper, label: `${store.constructor?.name ?? 'store'} of ${values.config}`, fromConfig: true };
  }

  keyPrefix ??= DEFAULT_KEY_PREFIX;
  let store: Store & EnumerableStore;
  let label: string;
  if (values.redis !== undefined) {
    const url = values.redis;
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      // Below.
    }
    if (parsed === undefined || (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
      throw usage(`--redis must be a redis:// or rediss:// URL with a host, got ${JSON.stringify(url)}`);
    }
    const { RedisStore } = await import('../stores/redis/index.js');
    try {
      store = new RedisStore({ url, commandTimeout: STORE_TIMEOUT, localBytes: 0, ...(storePrefix !== undefined && { prefix: storePrefix }) });
    } catch (error) {
      throw usage(error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error));
    }
    const safe = new URL(url);
    if (safe.password !== '') safe.password = '***';
    label = `${safe.href} (prefix ${storePrefix ?? 'page-dumper:'})`;
    // ioredis retries a refused connection quietly; a plain connection says what is wrong.
    const refused = await connectError(parsed.hostname.replace(/^\[|\]$/g, ''), Number(parsed.port || 6379));
    if (refused !== undefined) {
      await store.close?.();
      throw failure(`cannot reach the store ${label}: ${refused}`);
    }
  } else {
    const path = values.sqlite!;
    if (path === '') throw usage('--sqlite must be a file path');
    // Never create a new, empty cache file by a typo: the site's file must exist.
    if (!existsSync(path)) throw failure(`--sqlite ${path}: no such file (the site's SqliteStore creates it)`);
    const { SqliteStore } = await import('../stores/sqlite/index.js');
    try {
      store = new SqliteStore({ path, localBytes: 0, ...(storePrefix !== undefined && { tablePrefix: storePrefix }) });
    } catch (error) {
      if (error instanceof TypeError) throw usage(error.message.replace(/^page-dumper: /, ''));
      throw failure(error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error));
    }
    label = `${path} (tables ${storePrefix ?? 'page_dumper_'}*)`;
  }
  let dumper: Dumper | undefined;
  ctx.cleanup = async () => {
    if (dumper !== undefined) await dumper.close();
    else await store.close?.();
  };
  await reach(store, label);
  const made = () =>
    (dumper ??= createDumper({
      store,
      keyPrefix: keyPrefix!,
      logger: false,
      version: false,
      compress: false,
      // Its invalidatePrefix() reaches pages stored with prefix tags; `purge --prefix` also
      // invalidates, by path, the pages it lists below the prefix (stored without them).
      prefixInvalidation: true,
    }));
  return { store, keyPrefix, dumper: made, label, fromConfig: false };
}

/** Why a TCP connection to `host:port` fails, or `undefined` when it opens. */
function connectError(host: string, port: number): Promise<string | undefined> {
  return new Promise((done) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(STORE_TIMEOUT, () => {
      socket.destroy();
      done(`no connection within ${STORE_TIMEOUT} ms`);
    });
    socket.once('connect', () => {
      socket.destroy();
      done(undefined);
    });
    socket.once('error', (error) => done(error.message));
  });
}

/** Fails (exit 1) when the store does not answer. */
async function reach(store: Store, label: string): Promise<void> {
  try {
    await store.sequence();
  } catch (error) {
    let detail = error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error);
    if (store.label !== undefined && detail.startsWith(`${store.label}: `)) detail = detail.slice(store.label.length + 2);
    // A Redis URL naming a database the server does not have: RedisStore refuses every call
    // rather than use database 0, where `stats` would count, and `purge --all` clear, another
    // site's pages.
    if ((error as { code?: unknown }).code === 'DUMPER_REDIS_NO_DATABASE') throw failure(`the store ${label}: ${detail}`);
    throw failure(`cannot reach the store ${label}: ${detail}`);
  }
}

// ------------------------------------------------------------------ formatting

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? ` ${m % 60}m` : ''}`;
  return `${Math.floor(h / 24)}d${h % 24 ? ` ${h % 24}h` : ''}`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/**
 * The parts of a stored key: build version (if any), host, path and query, and the forwarded
 * scheme and host a proxy sent (the dumper keys `host|proto|forwarded host` when a request has
 * X-Forwarded-Proto or X-Forwarded-Host).
 */
interface KeyParts {
  readonly version: string | undefined;
  /** The request's Host. */
  readonly host: string;
  readonly forwardedProto: string | undefined;
  readonly forwardedHost: string | undefined;
  readonly target: string;
}

/** The host part for people: `shop.example`, `127.0.0.1:3000 (https, forwarded shop.example)`. */
function hostLabel(parts: KeyParts): string {
  const forwarded = [parts.forwardedProto, parts.forwardedHost === undefined ? undefined : `forwarded ${parts.forwardedHost}`].filter((x) => x !== undefined);
  return forwarded.length === 0 ? parts.host : `${parts.host} (${forwarded.join(', ')})`;
}

/** The page for people: the host part, then the request target. */
function pageLabel(parts: KeyParts): string {
  const label = hostLabel(parts);
  return label === parts.host ? `${parts.host}${parts.target}` : `${parts.host}${parts.target} (${label.slice(parts.host.length + 2, -1)})`;
}

function keyParts(key: string, keyPrefix: string): KeyParts {
  let rest = key.startsWith(keyPrefix) ? key.slice(keyPrefix.length) : key;
  const slash = rest.indexOf('/');
  const space = rest.indexOf(' ');
  let version: string | undefined;
  if (space !== -1 && (slash === -1 || space < slash)) {
    version = rest.slice(0, space);
    rest = rest.slice(space + 1);
  }
  const at = rest.indexOf('/');
  const hostPart = at === -1 ? rest : rest.slice(0, at);
  const target = at === -1 ? '/' : rest.slice(at);
  const [host = '', proto, forwarded] = hostPart.split('|');
  return { version, host, forwardedProto: proto || undefined, forwardedHost: forwarded || undefined, target };
}

/** What --json prints for an entry: tags without the key prefix. */
function entryJson(e: EntryInfo, keyPrefix: string, now: number) {
  const parts = keyParts(e.key, keyPrefix);
  const unprefixed = (t: string) => (t.startsWith(keyPrefix) ? t.slice(keyPrefix.length) : t);
  return {
    key: e.key,
    host: parts.host,
    ...(parts.forwardedProto !== undefined && { forwardedProto: parts.forwardedProto }),
    ...(parts.forwardedHost !== undefined && { forwardedHost: parts.forwardedHost }),
    target: parts.target,
    ...(parts.version !== undefined && { version: parts.version }),
    path: unprefixed(e.path),
    status: e.status,
    storedAt: new Date(e.storedAt).toISOString(),
    age: Math.max(0, Math.floor((now - e.storedAt) / 1000)),
    bodyBytes: e.bodyBytes,
    bytes: e.bytes,
    encodings: e.encodings,
    tags: e.tags.map(unprefixed),
    anonymousOnly: e.anonymousOnly,
    seq: e.seq,
    etag: e.etag,
    headers: pairs(e.headers),
  };
}

function pairs(flat: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

// ------------------------------------------------------------------ commands

async function stats(ctx: Context): Promise<number> {
  noPositionals(ctx, 'stats');
  const o = await open(ctx);
  const info = await o.store.info();
  if (ctx.json) {
    ctx.io.out(`${JSON.stringify({ store: o.label, entries: info.entries, bytes: info.bytes, tags: info.tags, sequence: info.sequence })}\n`);
    return 0;
  }
  ctx.io.out(
    table([
      ['store', o.label],
      ['entries', String(info.entries)],
      ['bytes', `${formatBytes(info.bytes)} (${info.bytes})`],
      ['tags', String(info.tags)],
      ['sequence', String(info.sequence)],
    ]),
  );
  return 0;
}

/**
 * The store filter and the exact check for `--path-prefix P`: a string prefix of the path tag,
 * or, for P ending in "/", P's page and those below it.
 */
function pathFilter(raw: string | undefined, keyPrefix: string): { pathPrefix: string; keep: (path: string) => boolean } {
  if (raw === undefined || raw === '') return { pathPrefix: `${keyPrefix}/`, keep: () => true };
  const canon = canonicalPath(raw.startsWith('/') ? raw : `/${raw}`);
  if (canon === undefined) throw usage(`--path-prefix: not a path: ${JSON.stringify(raw)}`);
  const tag = keyPrefix + canon;
  if (!raw.endsWith('/') || canon === '/') return { pathPrefix: tag, keep: () => true };
  return { pathPrefix: tag, keep: (path) => path === tag || path.startsWith(`${tag}/`) };
}

async function ls(ctx: Context): Promise<number> {
  noPositionals(ctx, 'ls');
  const tags = ctx.values.tag ?? [];
  if (tags.length > 1) throw usage('ls takes one --tag');
  const limit = integer(ctx, 'limit', 100, 0);
  const o = await open(ctx);
  const { pathPrefix, keep } = pathFilter(ctx.values['path-prefix'], o.keyPrefix);
  const list: EntryInfo[] = [];
  let more = false;
  const options = { pathPrefix, ...(tags[0] !== undefined && { tag: o.keyPrefix + tags[0] }), limit: limit === 0 ? 500 : Math.min(limit + 1, 500) };
  for await (const e of listEntries(o.store, options)) {
    if (!keep(e.path)) continue;
    if (limit !== 0 && list.length === limit) {
      more = true;
      break;
    }
    list.push(e);
  }
  const now = Date.now();
  if (ctx.json) {
    ctx.io.out(`${JSON.stringify({ entries: list.map((e) => entryJson(e, o.keyPrefix, now)), more })}\n`);
    return 0;
  }
  if (list.length === 0) {
    ctx.io.out('no pages stored\n');
    return 0;
  }
  const rows = [['AGE', 'STATUS', 'SIZE', 'ENCODINGS', 'PAGE', 'TAGS']];
  for (const e of list) {
    const j = entryJson(e, o.keyPrefix, now);
    rows.push([
      formatAge(now - e.storedAt),
      String(e.status),
      formatBytes(e.bodyBytes),
      e.encodings.map((x) => x.coding).join(',') || '-',
      `${j.version !== undefined ? `[${j.version}] ` : ''}${pageLabel(keyParts(e.key, o.keyPrefix))}`,
      j.tags.slice(1).join(' ') || '-',
    ]);
  }
  ctx.io.out(table(rows));
  ctx.io.out(`${list.length} page${list.length === 1 ? '' : 's'}${more ? ` shown; more are stored (--limit ${limit}; --limit 0 for all)` : ''}\n`);
  return 0;
}

async function show(ctx: Context): Promise<number> {
  if (ctx.positionals.length === 0) throw usage('show needs a URL or a path: page-dumper show http://example.com/page');
  if (ctx.positionals.length > 1) throw usage(`show takes one URL, got ${ctx.positionals.length}`);
  const raw = ctx.positionals[0]!;
  let host: string | undefined;
  let scheme: string | undefined;
  let target: string;
  if (raw.startsWith('/')) target = raw;
  else {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw usage(`show: not a URL or a path: ${JSON.stringify(raw)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw usage(`show: not an http(s) URL: ${JSON.stringify(raw)}`);
    host = u.host.toLowerCase();
    scheme = u.protocol.slice(0, -1);
    target = u.pathname + u.search;
  }
  const o = await open(ctx);
  const dumper = o.dumper();
  // The key the site's dumper makes for this request, on some host: its path and query as stored.
  const key = dumper.keyFor('GET', target, { host: host ?? 'host.invalid' });
  if (typeof key !== 'string') {
    const why = key.bypass;
    if (ctx.json) ctx.io.out(`${JSON.stringify({ url: raw, cached: false, bypass: why, entries: [] })}\n`);
    else ctx.io.out(`${raw}: not cached: the dumper bypasses it (${why})\n`);
    return 0;
  }
  const wanted = keyParts(key, dumper.keyPrefix);
  const canon = canonicalPath(target.split('?')[0]!)!;
  const found: EntryInfo[] = [];
  for await (const e of listEntries(o.store, { tag: o.keyPrefix + canon, limit: 500 })) {
    const parts = keyParts(e.key, o.keyPrefix);
    if (parts.target !== wanted.target) continue;
    // Behind a proxy the page's public host is the forwarded one, and its scheme the forwarded
    // one when the proxy sent it (then http and https are two pages); the Host is the proxy's.
    if (host !== undefined && (parts.forwardedHost ?? parts.host) !== host) continue;
    if (scheme !== undefined && parts.forwardedProto !== undefined && parts.forwardedProto !== scheme) continue;
    found.push(e);
  }
  const now = Date.now();
  if (ctx.json) {
    ctx.io.out(`${JSON.stringify({ url: raw, cached: found.length > 0, entries: found.map((e) => entryJson(e, o.keyPrefix, now)) })}\n`);
    return 0;
  }
  if (found.length === 0) {
    ctx.io.out(`${raw}: not cached\n`);
    return 0;
  }
  for (const [i, e] of found.entries()) {
    const j = entryJson(e, o.keyPrefix, now);
    if (i > 0) ctx.io.out('\n');
    const encodings = [`identity ${formatBytes(e.bodyBytes)}`, ...e.encodings.map((x) => `${x.coding} ${formatBytes(x.bytes)}`)].join(', ');
    ctx.io.out(
      table([
        ['page', pageLabel(keyParts(e.key, o.keyPrefix))],
        ...(j.version !== undefined ? [['version', j.version]] : []),
        ['key', e.key],
        ['status', String(e.status)],
        ['stored', `${j.storedAt} (age ${formatAge(now - e.storedAt)})`],
        ['size', `${formatBytes(e.bodyBytes)} (${e.bodyBytes} bytes)`],
        ['encodings', encodings],
        ['tags', j.tags.join(' ')],
        ...(e.anonymousOnly ? [['cookies', 'served only to requests without cookies (the render read them)']] : []),
        ['sequence', String(e.seq)],
      ]),
    );
    ctx.io.out('headers:\n');
    for (const [name, value] of j.headers) ctx.io.out(`  ${name}: ${value}\n`);
  }
  return 0;
}

async function purge(ctx: Context): Promise<number> {
  noPositionals(ctx, 'purge');
  const paths = ctx.values.path ?? [];
  const tags = ctx.values.tag ?? [];
  const prefixes = ctx.values.prefix ?? [];
  const all = ctx.values.all === true;
  if (!all && paths.length + tags.length + prefixes.length === 0) throw usage('purge needs --path, --tag, --prefix or --all');
  if (all && paths.length + tags.length + prefixes.length > 0) throw usage('--all goes alone: it purges everything');
  for (const [name, list] of [['path', paths], ['tag', tags], ['prefix', prefixes]] as const) {
    if (list.some((v) => v === '')) throw usage(`--${name} must not be empty`);
  }
  for (const p of [...paths, ...prefixes]) {
    if (!p.startsWith('/') && !/^https?:\/\//i.test(p)) throw usage(`not a path or an http(s) URL: ${JSON.stringify(p)} (paths start with "/")`);
  }
  const timeout = integer(ctx, 'timeout', 30_000, 1);
  const o = await open(ctx);
  const dumper = o.dumper();
  const errorsBefore = dumper.stats().storeErrors;
  const done: Record<string, unknown> = {};
  if (all) {
    await dumper.invalidateAll();
    done.all = true;
  }
  if (paths.length > 0) {
    await dumper.invalidate(paths);
    done.paths = paths;
  }
  if (tags.length > 0) {
    await dumper.invalidateTags(tags);
    done.tags = tags;
  }
  if (prefixes.length > 0) {
    // The pages listed below each prefix are invalidated by path (those stored without prefix
    // tags: the site may not use prefixInvalidation), then the prefix's tags (pages stored with
    // them meanwhile, and the edge's copies).
    let below = 0;
    for (const prefix of prefixes) {
      const path = /^https?:\/\//i.test(prefix) ? new URL(prefix).pathname : prefix;
      const { pathPrefix, keep } = pathFilter(path.endsWith('/') ? path : `${path}/`, o.keyPrefix);
      const batch = new Set<string>();
      for await (const e of listEntries(o.store, { pathPrefix, limit: 500 })) {
        if (!keep(e.path)) continue;
        batch.add(e.path.slice(o.keyPrefix.length));
        below++;
        if (batch.size >= 500) {
          await dumper.invalidate([...batch]);
          batch.clear();
        }
      }
      if (batch.size > 0) await dumper.invalidate([...batch]);
    }
    try {
      await dumper.invalidatePrefix(prefixes);
    } catch (error) {
      // A config's dumper without prefixInvalidation: its pages carry no prefix tags, and those
      // listed were invalidated by path above.
      if (!(error instanceof TypeError)) throw error;
    }
    done.prefixes = prefixes;
    done.pagesBelow = below;
  }
  const storeErrors = dumper.stats().storeErrors - errorsBefore;
  if (storeErrors > 0) throw failure(`the store did not take ${storeErrors} invalidation(s): nothing is certain to be purged; run the command again`);
  const purgers = dumper.edgePurging;
  if (purgers) {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeout)));
    const flushed = await Promise.race([dumper.flushPurges().then(() => 'flushed' as const), expired]);
    clearTimeout(timer);
    if (flushed === 'timeout') {
      const stays = hasQueue(o.store)
        ? "they stay queued in the store, and the site's processes deliver them"
        : 'the store has no queue: they are lost when this command exits';
      throw failure(`the edge purgers did not acknowledge the purges within ${timeout} ms; ${stays}`);
    }
  }
  const edge = { ...dumper.purgeStats };
  if (ctx.json) {
    ctx.io.out(`${JSON.stringify({ purged: done, edge: purgers ? edge : null })}\n`);
    return 0;
  }
  const lines: string[] = [];
  if (all) lines.push('purged every page of the store');
  if (paths.length > 0) lines.push(`purged path${paths.length === 1 ? '' : 's'} ${paths.join(' ')}`);
  if (tags.length > 0) lines.push(`purged tag${tags.length === 1 ? '' : 's'} ${tags.join(' ')}`);
  if (prefixes.length > 0) lines.push(`purged prefix${prefixes.length === 1 ? '' : 'es'} ${prefixes.join(' ')} (${String(done.pagesBelow)} page${done.pagesBelow === 1 ? '' : 's'} stored below)`);
  if (purgers) lines.push(`edge purgers acknowledged (${edge.sent} request${edge.sent === 1 ? '' : 's'} sent)`);
  else if (!o.fromConfig) lines.push('edge caches were not purged: give --config with the site\'s purgers for that');
  ctx.io.out(`${lines.join('\n')}\n`);
  return 0;
}

async function warmCommand(ctx: Context): Promise<number> {
  noPositionals(ctx, 'warm');
  const { sitemap, base: rawBase } = ctx.values;
  if (sitemap === undefined || sitemap === '') throw usage('warm needs --sitemap URL|FILE');
  if (rawBase === undefined) throw usage('warm needs --base URL (where the site runs: http://127.0.0.1:3000)');
  let base: URL;
  try {
    base = new URL(rawBase);
  } catch {
    throw usage(`--base must be an http(s) URL, got ${JSON.stringify(rawBase)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw usage(`--base must be an http(s) URL, got ${JSON.stringify(rawBase)}`);
  const forwarded = ctx.values.forwarded;
  if (forwarded !== undefined && forwarded !== 'none' && forwarded !== 'proto' && forwarded !== 'all') {
    throw usage(`--forwarded must be none, proto or all, got ${JSON.stringify(forwarded)}`);
  }
  const concurrency = integer(ctx, 'concurrency', 4, 1);
  const timeout = integer(ctx, 'timeout', 30_000, 1);
  const headers: Record<string, string> = {};
  for (const h of ctx.values.header ?? []) {
    const colon = h.indexOf(':');
    const name = colon === -1 ? '' : h.slice(0, colon).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw usage(`--header must be "Name: value", got ${JSON.stringify(h)}`);
    headers[name.toLowerCase()] = h.slice(colon + 1).trim();
  }
  let pages: string[];
  let sitemaps: string[];
  try {
    ({ pages, sitemaps } = await sitemapPages(sitemap, { base, headers, timeout, forwarded: forwarded as Forwarded | undefined }));
  } catch (error) {
    if (error instanceof SitemapError) throw failure(error.message);
    throw error;
  }
  // Each page on --base, as a visitor of its public URL reaches the site through its proxy.
  const report = await warm(pages, { base, concurrency, headers, timeout, ...(forwarded !== undefined && { forwarded: forwarded as Forwarded }) });
  const failed = report.results.filter((r): r is WarmResult & { error: string } => r.error !== undefined);
  if (ctx.json) {
    const { results, ...counts } = report;
    ctx.io.out(`${JSON.stringify({ sitemaps, base: base.origin, ...counts, results })}\n`);
  } else {
    ctx.io.out(
      `warmed ${report.total} page${report.total === 1 ? '' : 's'} of ${sitemaps.length} sitemap${sitemaps.length === 1 ? '' : 's'} on ${base.origin} (concurrency ${concurrency})\n` +
        table([
          ['MISS', String(report.miss), 'rendered now (stored unless the dumper refused them)'],
          ['HIT', String(report.hit), 'stored already'],
          ['BYPASS', String(report.bypass), 'not cached by the dumper'],
          ['other', String(report.other), 'no cache header (not served through the dumper?)'],
          ['errors', String(report.errors), failed.length === 0 ? '-' : 'listed below'],
        ]),
    );
    for (const r of failed) ctx.io.out(`  ${r.url}: ${r.error}\n`);
  }
  return failed.length > 0 ? 1 : 0;
}
