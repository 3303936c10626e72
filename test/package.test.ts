/**
 * `npm pack` makes a package that installs and works: every subpath export resolves from a
 * project outside this repository, at runtime and for TypeScript.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '..');
let dir: string;
let stage: string;

beforeAll(() => {
  // Build and pack from a staging copy, so the repository's own dist/ (used by the demo's
  // tests running alongside) is never touched.
  dir = mkdtempSync(join(tmpdir(), 'page-dumper-pack-'));
  stage = join(dir, 'stage');
  mkdirSync(stage);
  for (const f of ['package.json', 'README.md', 'LICENSE', 'varnish']) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true });
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(stage, 'dist')], { stdio: 'pipe' });
  execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], { cwd: stage, stdio: 'pipe' });
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The optional peers of the adapters, stores and ORM integrations, as their users have them
  // installed (none needs an install script for what is checked here).
  const version = (p: string) => JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')).version as string;
  const peers = ['koa', 'hono', 'fastify', 'ioredis', 'typeorm', '@prisma/client', 'drizzle-orm', 'kysely', 'sequelize', '@mikro-orm/core', '@types/better-sqlite3'].map((p) => `${p}@${version(p)}`);
  execFileSync('npm', ['install', '--silent', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', `./${tgz}`, ...peers], { cwd: dir, stdio: 'pipe', timeout: 180_000 });
  // better-sqlite3 is a native addon: linked from this repository's install rather than compiled again.
  symlinkSync(join(root, 'node_modules/better-sqlite3'), join(dir, 'node_modules/better-sqlite3'), 'dir');
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('the packed tarball holds the build and no sources or tests', () => {
  const list = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: stage, encoding: 'utf8' });
  const files: string[] = JSON.parse(list)[0].files.map((f: { path: string }) => f.path);
  expect(files).toContain('dist/index.js');
  expect(files).toContain('dist/index.d.ts');
  expect(files).toContain('dist/http/node/index.js');
  expect(files).toContain('README.md');
  // The VCL that varnishPurger's requests are made for, to `include` from the user's VCL.
  expect(files).toContain('varnish/page-dumper.vcl');
  expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map'))).toBe(false);
});

test('an installed copy serves MISS then HIT through every entry point', () => {
  writeFileSync(
    join(dir, 'check.mjs'),
    `
import http from 'node:http';
import { createDumper, MemoryStore } from 'page-dumper';
import { withDumper, dumperMiddleware } from 'page-dumper/node';
import { runStoreConformance } from 'page-dumper/testing';
import { dumperFetch } from 'page-dumper/fetch';
import { koaDumper } from 'page-dumper/koa';
import { honoDumper } from 'page-dumper/hono';
import { fastifyDumper } from 'page-dumper/fastify';
import { RedisStore } from 'page-dumper/redis';
import { SqliteStore } from 'page-dumper/sqlite';
import { typeormDumper } from 'page-dumper/typeorm';
import { prismaDumper } from 'page-dumper/prisma';
import { drizzleDumper } from 'page-dumper/drizzle';
import { kyselyDumper } from 'page-dumper/kysely';
import { sequelizeDumper } from 'page-dumper/sequelize';
import { mikroOrmDumper } from 'page-dumper/mikro-orm';
import { varnishPurger, fastlyPurger, cloudflarePurger } from 'page-dumper/purge';
for (const f of [dumperMiddleware, runStoreConformance, dumperFetch, koaDumper, honoDumper, fastifyDumper, RedisStore, SqliteStore, typeormDumper, prismaDumper, drizzleDumper, kyselyDumper, sequelizeDumper, mikroOrmDumper, varnishPurger, fastlyPurger, cloudflarePurger]) {
  if (typeof f !== 'function') throw new Error('missing export');
}
const sqlite = new SqliteStore({ path: 'pages.sqlite' });
if (typeof (await sqlite.sequence()) !== 'number') throw new Error('SqliteStore did not answer');
await sqlite.close();
const dumper = createDumper({ store: new MemoryStore({ maxBytes: 1 << 20 }), logger: false });
const server = http.createServer(withDumper(dumper, (req, res) => res.end('hello'))).listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  const a = await fetch(url); await a.text();
  const b = await fetch(url); await b.text();
  console.log(a.headers.get('x-cache'), b.headers.get('x-cache'));
  server.close(); await dumper.close();
});
`,
  );
  expect(execFileSync('node', ['check.mjs'], { cwd: dir, encoding: 'utf8' }).trim()).toBe('MISS HIT');
});

test('the types resolve under NodeNext for a TypeScript consumer', () => {
  writeFileSync(
    join(dir, 'check.ts'),
    `
import { createDumper, type Store, type DumperOptions } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';
import { runStoreConformance } from 'page-dumper/testing';
import Fastify from 'fastify';
import fastifyDumper from 'page-dumper/fastify';
import { RedisStore, type RedisStoreOptions } from 'page-dumper/redis';
import { SqliteStore } from 'page-dumper/sqlite';
import { typeormDumper } from 'page-dumper/typeorm';
import { prismaDumper } from 'page-dumper/prisma';
const redisOptions: RedisStoreOptions = { url: 'redis://127.0.0.1:6379', prefix: 'site:', localTier: { maxBytes: 1 << 20 } };
// @ts-expect-error ttl is a number of milliseconds
const badRedis: RedisStoreOptions = { ttl: '1h' };
void RedisStore; void SqliteStore; void typeormDumper; void prismaDumper; void redisOptions; void badRedis;
const app = Fastify();
void app.register(fastifyDumper, { dumper: createDumper() });
const typed: import('page-dumper').Dumper = app.dumper;
void typed;
const options: DumperOptions = { keyPrefix: 'site.', ignore: /^\\/admin\\// };
const dumper = createDumper(options);
const store: Store = dumper.store;
const mw: (req: any, res: any, next: () => void) => void = dumperMiddleware(dumper);
// @ts-expect-error keyPrefix must be a string
createDumper({ keyPrefix: 3 });
void store; void mw; void runStoreConformance;
`,
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false, typeRoots: [join(root, 'node_modules/@types')], types: ['node'] },
      files: ['check.ts'],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: dir, encoding: 'utf8' });
  expect(tsc.stdout + tsc.stderr).toBe('');
  expect(tsc.status).toBe(0);
}, 120_000);
