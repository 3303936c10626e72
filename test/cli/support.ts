/**
 * What the CLI tests share: the command built from src with tsc (as the package's build makes
 * dist/cli/index.js), run as a child process; and a real site on a loopback port, serving through
 * a dumper on the store the command is pointed at.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { createDumper, type Dumper, type DumperOptions, type Store } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { nodeRequest, Site, writeNode } from '../support/site.js';

export const root = resolve(import.meta.dirname, '../..');
export const REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * Builds the CLI and the entry points a config module imports into a directory of its own under
 * .tmp (with package.json, so that its .js files are ES modules), and answers it.
 */
export function buildCli(): string {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  const build = mkdtempSync(join(root, '.tmp', 'cli-'));
  const entries = ['cli/index.ts', 'index.ts', 'edge/index.ts', 'stores/sqlite/index.ts', 'stores/redis/index.ts'];
  writeFileSync(
    join(build, 'tsconfig.json'),
    JSON.stringify({
      extends: join(root, 'tsconfig.build.json'),
      compilerOptions: { rootDir: join(root, 'src'), outDir: join(build, 'dist'), declaration: false },
      files: entries.map((e) => join(root, 'src', e)),
      include: [],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(build, 'tsconfig.json')], { encoding: 'utf8' });
  for (const e of entries) {
    const out = join(build, 'dist', e.replace(/\.ts$/, '.js'));
    if (!existsSync(out)) throw new Error(`the build did not write ${out}:\n${tsc.stdout}${tsc.stderr}`);
  }
  copyFileSync(join(root, 'package.json'), join(build, 'package.json'));
  return build;
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node <build>/dist/cli/index.js ...args` and answers its exit code and output. */
export function cli(build: string, args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(build, 'dist/cli/index.js'), ...args],
      { cwd: build, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** `cli()` with `--json`, its stdout parsed. */
export async function cliJson<T = any>(build: string, args: readonly string[], env: Record<string, string> = {}): Promise<Run & { json: T }> {
  const run = await cli(build, ['--json', ...args], env);
  let json: T;
  try {
    json = JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
  return { ...run, json };
}

/** A store the tests fill through a site and the command reads: the command's arguments and a store for this process. */
export interface StoreCase {
  readonly name: 'SqliteStore' | 'RedisStore';
  /** A fresh, empty store: the command's store options, and a store on it for this process. */
  fresh(): { args: string[]; env: Record<string, string>; open(): Store; cleanup(): Promise<void> };
}

export function storeCases(build: () => string, hasRedis: boolean): StoreCase[] {
  const cases: StoreCase[] = [
    {
      name: 'SqliteStore',
      fresh() {
        const dir = mkdtempSync(join(build(), 'sqlite-'));
        const file = join(dir, 'cache.sqlite');
        // The site creates the file, as it would in production.
        new SqliteStore({ path: file }).close();
        return {
          args: ['--sqlite', file],
          env: { STORE: 'sqlite', CACHE_DB: file },
          open: () => new SqliteStore({ path: file }),
          cleanup: async () => rmSync(dir, { recursive: true, force: true }),
        };
      },
    },
  ];
  if (hasRedis) {
    cases.push({
      name: 'RedisStore',
      fresh() {
        const prefix = `cli:${randomUUID().slice(0, 8)}:`;
        return {
          args: ['--redis', REDIS_URL, '--store-prefix', prefix],
          env: { STORE: 'redis', REDIS_URL, REDIS_PREFIX: prefix },
          open: () => new RedisStore({ url: REDIS_URL, prefix }),
          async cleanup() {
            const redis = new Redis(REDIS_URL);
            let cursor = '0';
            do {
              const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
              cursor = next;
              if (keys.length) await redis.del(...keys);
            } while (cursor !== '0');
            redis.disconnect();
          },
        };
      },
    });
  }
  return cases;
}

/** The test site (test/support/site.ts) served through a dumper on `store`. */
export async function serveSite(
  store: Store,
  options: DumperOptions = {},
  /** Files the site serves besides its pages (sitemaps), by path: content type and body. */
  files: Record<string, { type: string; body: string | Uint8Array }> = {},
): Promise<{ dumper: Dumper; site: Site; mounted: Mounted; get(path: string): Promise<{ status: number; cache: string | null; body: string }>; close(): Promise<void> }> {
  const dumper = createDumper({ store, logger: false, ...options });
  const site = new Site(dumper);
  const app: http.RequestListener = (req, res) => {
    const file = files[req.url ?? ''];
    if (file !== undefined) {
      res.writeHead(200, { 'content-type': file.type }).end(file.body);
      return;
    }
    void site.handle(nodeRequest(req)).then((r) => writeNode(res, r));
  };
  const mounted = await listen(withDumper(dumper, app));
  const get = async (path: string) => {
    const res = await fetch(`${mounted.url}${path}`);
    return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text() };
  };
  return {
    dumper,
    site,
    mounted,
    get,
    async close() {
      await mounted.close();
      await dumper.close();
    },
  };
}

/** Polls `check` until it holds, at most 5 s (an invalidation reaching a process is polled for, never slept for). */
export async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A visitor's GET of `path` on `url` (a loopback site) with the headers a proxy in front sends
 * (`host`, `x-forwarded-*`: fetch cannot send a Host of its own); answers the status and X-Cache.
 */
export function visit(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; cache: string | undefined }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cache: res.headers['x-cache'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}
