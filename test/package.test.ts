/**
 * `npm pack` makes a package that installs and works: every subpath export resolves from a
 * project outside this repository, through `import` (the ES modules) and `require` (the CommonJS
 * build), at runtime and for TypeScript under the module resolutions projects use (node10,
 * node16 from CommonJS and from ES modules, bundler), in a NestJS app compiled to CommonJS, and
 * with both builds loaded in one process.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown>; bin: Record<string, string> };
/** Every import specifier the package offers: `page-dumper`, `page-dumper/node`, … */
const specifiers = Object.keys(pkg.exports)
  .filter((s) => s !== './package.json')
  .map((s) => (s === '.' ? 'page-dumper' : `page-dumper/${s.slice(2)}`));
let dir: string;
let stage: string;

beforeAll(() => {
  // Build and pack from a staging copy, so the repository's own dist/ (used by the demo's
  // tests running alongside) is never touched.
  dir = mkdtempSync(join(tmpdir(), 'page-dumper-pack-'));
  stage = join(dir, 'stage');
  mkdirSync(stage);
  for (const f of ['package.json', 'README.md', 'LICENSE', 'varnish', 'docs']) if (existsSync(join(root, f))) cpSync(join(root, f), join(stage, f), { recursive: true });
  execFileSync(process.execPath, [join(root, 'scripts/build.mjs'), join(stage, 'dist')], { stdio: 'pipe' });
  execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir], { cwd: stage, stdio: 'pipe' });
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The optional peers of the adapters, stores and ORM integrations, as their users have them
  // installed (none needs an install script for what is checked here).
  const version = (p: string) => JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')).version as string;
  const peers = ['koa', 'hono', 'fastify', 'ioredis', 'typeorm', '@prisma/client', 'drizzle-orm', 'kysely', 'sequelize', '@mikro-orm/core', 'prom-client', '@types/better-sqlite3', '@types/koa'].map(
    (p) => `${p}@${version(p)}`,
  );
  execFileSync('npm', ['install', '--silent', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', `./${tgz}`, ...peers], { cwd: dir, stdio: 'pipe', timeout: 180_000 });
  // better-sqlite3 is a native addon: linked from this repository's install rather than compiled
  // again; so is NestJS, which only the NestJS app below uses (and what npm did not install already).
  for (const p of ['better-sqlite3', '@nestjs/common', '@nestjs/core', '@nestjs/platform-express', 'reflect-metadata', 'rxjs']) {
    if (existsSync(join(dir, 'node_modules', p))) continue;
    mkdirSync(join(dir, 'node_modules', p, '..'), { recursive: true });
    symlinkSync(join(root, 'node_modules', p), join(dir, 'node_modules', p), 'dir');
  }
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(file: string, cwd = dir): string {
  return execFileSync(process.execPath, [file], { cwd, encoding: 'utf8' }).trim();
}

/**
 * Type-checks `files` in `cwd` with these compiler options (several run at once: each takes a
 * while); resolves to tsc's messages, its exit code and the page-dumper declaration files the
 * program read.
 */
async function typecheck(cwd: string, files: string[], options: Record<string, unknown>): Promise<{ output: string; status: number; read: string[] }> {
  writeFileSync(
    join(cwd, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', typeRoots: [join(root, 'node_modules/@types')], types: ['node'], ...options },
      files,
    }),
  );
  const result = await new Promise<{ stdout: string; stderr: string; status: number }>((done) => {
    execFile(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
      done({ stdout, stderr, status: error === null ? 0 : typeof error.code === 'number' ? error.code : -1 }),
    );
  });
  // --listFiles prints one absolute path a line; the messages are the other lines.
  const lines = (result.stdout + result.stderr).split('\n');
  const marker = 'node_modules/page-dumper/';
  const read = lines.filter((l) => l.startsWith('/') && l.includes(marker)).map((l) => l.slice(l.indexOf(marker) + marker.length));
  const output = lines.filter((l) => l.trim() !== '' && !l.startsWith('/')).join('\n');
  return { output, status: result.status, read };
}

test('@arethetypeswrong/cli finds no problem in any entry point, under node10, node16 (from CommonJS and from ES modules) and bundler', () => {
  const tgz = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  const out = spawnSync(process.execPath, [join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js'), tgz, '--format', 'json'], { encoding: 'utf8', timeout: 180_000 });
  const report = JSON.parse(out.stdout) as { analysis: { entrypoints: Record<string, unknown>; problems: unknown[] } };
  const entrypoints = Object.keys(report.analysis.entrypoints);
  for (const subpath of Object.keys(pkg.exports)) if (subpath !== './package.json') expect(entrypoints).toContain(subpath);
  expect(report.analysis.problems).toEqual([]);
  expect(out.status, out.stderr).toBe(0);
});

test('the packed tarball holds both builds and no sources or tests', () => {
  const list = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: stage, encoding: 'utf8' });
  const files: string[] = JSON.parse(list)[0].files.map((f: { path: string }) => f.path);
  expect(files).toContain('dist/index.js');
  expect(files).toContain('dist/index.d.ts');
  expect(files).toContain('dist/http/node/index.js');
  expect(files).toContain('dist/cjs/index.js');
  expect(files).toContain('dist/cjs/index.d.ts');
  expect(files).toContain('dist/cjs/package.json');
  expect(files).toContain('README.md');
  // Every file the exports map, main, types, typesVersions and bin name is in the tarball.
  const named = JSON.stringify([pkg.exports, pkg.bin]).match(/\.\/dist\/[^"]+/g)!;
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string; types: string; typesVersions: Record<string, Record<string, string[]>> };
  named.push(manifest.main, manifest.types, ...Object.values(manifest.typesVersions['*']!).flat());
  for (const f of named) expect(files).toContain(f.slice(2));
  // The VCL that varnishPurger's requests are made for, to `include` from the user's VCL.
  expect(files).toContain('varnish/page-dumper.vcl');
  // The guides the README links to, beside it.
  for (const link of readFileSync(join(root, 'README.md'), 'utf8').matchAll(/\]\((docs\/[\w.-]+\.md)/g)) expect(files).toContain(link[1]);
  expect(files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map'))).toBe(false);
});

test('every subpath loads with require (the CommonJS build) and with import (the ES modules)', () => {
  writeFileSync(
    join(dir, 'load.cjs'),
    `
const out = {};
for (const s of ${JSON.stringify(specifiers)}) {
  const m = require(s);
  out[s] = [require.resolve(s).includes('/dist/cjs/'), Object.keys(m).filter((k) => k !== '__esModule').length > 0];
}
out.pkg = require('page-dumper/package.json').name;
console.log(JSON.stringify(out));
`,
  );
  writeFileSync(
    join(dir, 'load.mjs'),
    `
const out = {};
for (const s of ${JSON.stringify(specifiers)}) {
  const m = await import(s);
  out[s] = [import.meta.resolve(s).includes('/dist/cjs/'), Object.keys(m).length > 0];
}
console.log(JSON.stringify(out));
`,
  );
  const all = (cjs: boolean) => Object.fromEntries(specifiers.map((s) => [s, [cjs, true]]));
  expect(JSON.parse(run('load.cjs'))).toEqual({ ...all(true), pkg: 'page-dumper' });
  expect(JSON.parse(run('load.mjs'))).toEqual(all(false));
});

test('an installed copy serves MISS then HIT through every entry point, from CommonJS too', () => {
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
import { registerMetrics } from 'page-dumper/prometheus';
import { isBypass, readHeader } from 'page-dumper/adapter';
for (const f of [dumperMiddleware, runStoreConformance, dumperFetch, koaDumper, honoDumper, fastifyDumper, RedisStore, SqliteStore, typeormDumper, prismaDumper, drizzleDumper, kyselyDumper, sequelizeDumper, mikroOrmDumper, varnishPurger, fastlyPurger, cloudflarePurger, registerMetrics, isBypass, readHeader]) {
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
  writeFileSync(
    join(dir, 'check.cjs'),
    `
const http = require('node:http');
const { createDumper, MemoryStore } = require('page-dumper');
const { withDumper } = require('page-dumper/node');
const { SqliteStore } = require('page-dumper/sqlite');
const fastify = require('page-dumper/fastify');
if (typeof fastify.default !== 'function' || fastify.default !== fastify.fastifyDumper) throw new Error('page-dumper/fastify has no default export');
(async () => {
  const sqlite = new SqliteStore({ path: 'pages-cjs.sqlite' });
  if (typeof (await sqlite.sequence()) !== 'number') throw new Error('SqliteStore did not answer');
  await sqlite.close();
  const dumper = createDumper({ store: new MemoryStore({ maxBytes: 1 << 20 }), logger: false, trackRenders: true });
  const server = http.createServer(withDumper(dumper, (req, res) => { dumper.tag('home'); res.end('hello'); })).listen(0, '127.0.0.1', async () => {
    const url = 'http://127.0.0.1:' + server.address().port + '/';
    const seen = [];
    for (let i = 0; i < 2; i++) { const r = await fetch(url); await r.text(); seen.push(r.headers.get('x-cache')); }
    await dumper.invalidateTags(['home']);
    const r = await fetch(url); await r.text(); seen.push(r.headers.get('x-cache'));
    console.log(seen.join(' '));
    server.close(); await dumper.close();
  });
})();
`,
  );
  expect(run('check.mjs')).toBe('MISS HIT');
  expect(run('check.cjs')).toBe('MISS HIT MISS');
});

test('the page-dumper command runs from the installed bin', () => {
  const help = spawnSync(join(dir, 'node_modules/.bin/page-dumper'), ['--help'], { cwd: dir, encoding: 'utf8' });
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/^page-dumper: /);
});

/** A consumer of every subpath, with mistakes TypeScript must catch. */
function consumer(): string {
  const all = specifiers.map((s, i) => `import * as m${i} from '${s}';`).join('\n');
  return `
${all}
import { createDumper, Dumper, DumperError, type Store, type DumperOptions } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';
import { runStoreConformance } from 'page-dumper/testing';
import Fastify from 'fastify';
import fastifyDumper from 'page-dumper/fastify';
import { RedisStore, type RedisStoreOptions } from 'page-dumper/redis';
import { SqliteStore } from 'page-dumper/sqlite';
import { typeormDumper } from 'page-dumper/typeorm';
import { prismaDumper } from 'page-dumper/prisma';
import { kyselyDumper } from 'page-dumper/kysely';
import { registerMetrics } from 'page-dumper/prometheus';
import { isBypass, type MissPlan } from 'page-dumper/adapter';
// @ts-expect-error the adapter API is in page-dumper/adapter, not in the main entry
import { isBypass as notInMain } from 'page-dumper';
void [${specifiers.map((_, i) => `m${i}`).join(', ')}];
const redisOptions: RedisStoreOptions = { url: 'redis://127.0.0.1:6379', prefix: 'site:', localTier: { maxBytes: 1 << 20 } };
// @ts-expect-error ttl is a number of milliseconds
const badRedis: RedisStoreOptions = { ttl: '1h' };
void RedisStore; void SqliteStore; void typeormDumper; void prismaDumper; void kyselyDumper; void registerMetrics; void redisOptions; void badRedis;
const app = Fastify();
void app.register(fastifyDumper, { dumper: createDumper() });
const typed: Dumper = app.dumper;
void typed;
const options: DumperOptions = { keyPrefix: 'site.', ignore: /^\\/admin\\// };
const dumper = createDumper(options);
const store: Store = dumper.store;
const mw: (req: any, res: any, next: () => void) => void = dumperMiddleware(dumper);
// @ts-expect-error keyPrefix must be a string
createDumper({ keyPrefix: 3 });
// @ts-expect-error the code is one of DumperErrorCode
new DumperError('NO_SUCH_CODE', 'x');
void store; void mw; void runStoreConformance; void notInMain;
const key = dumper.keyFor('GET', '/', { host: 'site.example' });
const plan: MissPlan | Promise<MissPlan> | undefined = isBypass(key) ? undefined : dumper.beginFill(key, 'GET', {});
void plan;
`;
}

/** Type-checks the consumer in a directory of its own (`type` is its package.json's `"type"`). */
function checkConsumer(name: string, file: string, type: 'module' | 'commonjs', options: Record<string, unknown>) {
  const cwd = join(dir, name);
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(cwd, 'package.json'), JSON.stringify({ private: true, type }));
  writeFileSync(join(cwd, file), consumer());
  return typecheck(cwd, [file], options);
}

test.concurrent.each([
  // A CommonJS project on the old resolution (NestJS's default tsconfig): main, types and typesVersions.
  { name: 'node10', file: 'check.ts', type: 'commonjs', options: { module: 'CommonJS', moduleResolution: 'Node10', esModuleInterop: true }, cjs: true },
  { name: 'node16-cjs', file: 'check.cts', type: 'module', options: { module: 'Node16', moduleResolution: 'Node16' }, cjs: true },
  { name: 'node16-esm', file: 'check.mts', type: 'commonjs', options: { module: 'Node16', moduleResolution: 'Node16' }, cjs: false },
  // (NodeNext resolves as node16 does.) Bundler reads the declarations node16's ES modules read:
  // their own check is not repeated (skipLibCheck).
  { name: 'bundler', file: 'check.ts', type: 'module', options: { module: 'ESNext', moduleResolution: 'Bundler', skipLibCheck: true }, cjs: false },
] as const)('the types resolve under $name, to the build that runs', async ({ name, file, type, options, cjs }) => {
  const { output, status, read } = await checkConsumer(name, file, type, options);
  expect(output).toBe('');
  expect(status).toBe(0);
  // The declarations of the build the consumer's require or import loads, never of the other.
  expect(read).toContain(cjs ? 'dist/cjs/http/node/index.d.ts' : 'dist/http/node/index.d.ts');
  expect(read.filter((f) => f.startsWith('dist/cjs/') !== cjs)).toEqual([]);
}, 300_000);

test.concurrent('a NestJS app compiled to CommonJS imports page-dumper and page-dumper/node, and runs', async () => {
  const cwd = join(dir, 'nest');
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(cwd, 'package.json'), JSON.stringify({ private: true }));
  writeFileSync(
    join(cwd, 'main.ts'),
    `
import 'reflect-metadata';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createDumper, Dumper, MemoryStore } from 'page-dumper';
import { dumperMiddleware } from 'page-dumper/node';

@Controller('flavours')
class FlavourController {
  constructor(private readonly dumper: Dumper) {}
  @Get(':slug')
  show(@Param('slug') slug: string): string {
    this.dumper.tag(\`flavour:\${slug}\`);
    return \`<h1>\${slug}</h1>\`;
  }
}

@Module({
  controllers: [FlavourController],
  providers: [{ provide: Dumper, useValue: createDumper({ store: new MemoryStore({ maxBytes: 1 << 20 }), logger: false, trackRenders: true }) }],
})
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { logger: ['error', 'warn'] });
  const dumper = app.get(Dumper);
  app.use(dumperMiddleware(dumper));
  await app.listen(0, '127.0.0.1');
  const url = \`\${await app.getUrl()}/flavours/vanilla\`;
  const seen: (string | null)[] = [];
  const get = async () => {
    const r = await fetch(url);
    seen.push(\`\${r.headers.get('x-cache')}:\${await r.text()}\`);
  };
  await get();
  await get();
  await dumper.invalidateTags(['flavour:vanilla']);
  await get();
  console.log(seen.join(' '));
  await app.close();
  await dumper.close();
}
void main();
`,
  );
  const { output, status } = await typecheck(cwd, ['main.ts'], {
    module: 'CommonJS',
    moduleResolution: 'Node10',
    target: 'ES2021',
    esModuleInterop: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    skipLibCheck: true,
    noEmit: false,
    outDir: 'dist',
  });
  expect(output).toBe('');
  expect(status).toBe(0);
  expect(readFileSync(join(cwd, 'dist/main.js'), 'utf8')).toContain('require("page-dumper/node")');
  expect(run('dist/main.js', cwd)).toBe('MISS:<h1>vanilla</h1> HIT:<h1>vanilla</h1> MISS:<h1>vanilla</h1>');
}, 120_000);

test('with both builds in one process, what one copy makes works with the other', () => {
  cpSync(join(root, 'test/package/dual-package.mjs'), join(dir, 'dual-package.mjs'));
  expect(JSON.parse(run('dual-package.mjs'))).toEqual({
    'two copies': true,
    MemoryStore: true,
    DumperError: true,
    PurgeError: true,
    Dumper: true,
    'other copy tags': 'MISS HIT MISS',
    'kysely of the other copy': 'MISS HIT MISS',
    'one bound per page': 2,
    'one integration per DataSource': 'page-dumper: typeormDumper() is already installed on this DataSource',
  });
});
