#!/usr/bin/env node
// Generates the code that tests and examples import but the repository does not keep
// (Prisma clients). Runs before the type check in `npm test`.
//
// - test/orm/prisma/schema.prisma is generated once per database provider the tests run on, into
//   .tmp/prisma/<provider>/ (the provider line is the only difference).
// - examples/ice-cream-prisma/schema.prisma is generated into examples/ice-cream-prisma/generated/,
//   and, as the example is plain JavaScript, compiled to .js files beside the .ts ones.
//
// Works offline: `prisma generate` does not need the schema engine, but checks that its binary
// exists, so PRISMA_SCHEMA_ENGINE_BINARY points at an existing file unless it is set. A client is
// generated again only when its schema, the Prisma version or this script changed (a stamp file
// in the output folder records them), so a second run takes a few milliseconds.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'node_modules', 'prisma', 'build', 'index.js');
const STAMP = '.page-dumper-stamp';

const testSchema = join(root, 'test', 'orm', 'prisma', 'schema.prisma');
const targets = [
  ...['sqlite', 'postgresql', 'mysql'].map((provider) => ({
    name: `test client (${provider})`,
    schema: testSchema,
    out: join(root, '.tmp', 'prisma', provider),
    provider,
    javascript: false,
  })),
  {
    name: 'ice-cream-prisma example client',
    schema: join(root, 'examples', 'ice-cream-prisma', 'schema.prisma'),
    out: join(root, 'examples', 'ice-cream-prisma', 'generated'),
    provider: undefined,
    javascript: true,
  },
];

const versions = ['prisma', '@prisma/client']
  .map((name) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version)
  .join(' ');
const self = readFileSync(fileURLToPath(import.meta.url), 'utf8');

/** The schema to generate from: the file itself, with the provider and output this target needs. */
function schemaText(target, out) {
  let text = readFileSync(target.schema, 'utf8');
  if (target.provider !== undefined) {
    text = text.replace(/(datasource\s+\w+\s*\{[^}]*?provider\s*=\s*)"[^"]*"/, `$1"${target.provider}"`);
  }
  const output = relative(dirname(target.schema), out).split('\\').join('/');
  return text.replace(/(generator\s+\w+\s*\{[^}]*?output\s*=\s*)"[^"]*"/, `$1"${output}"`);
}

function stampOf(target) {
  return createHash('sha256').update(versions).update(self).update(schemaText(target, target.out)).digest('hex');
}

function upToDate(target) {
  try {
    return readFileSync(join(target.out, STAMP), 'utf8') === stampOf(target);
  } catch {
    return false;
  }
}

function run(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`prisma ${args.slice(1).join(' ')} exited with ${code}:\n${output}`))));
  });
}

/** Compiles the generated TypeScript to JavaScript beside it (types dropped, imports kept). */
async function toJavaScript(dir) {
  const ts = (await import('typescript')).default;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await toJavaScript(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const { outputText } = ts.transpileModule(readFileSync(path, 'utf8'), {
        fileName: path,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
      });
      writeFileSync(path.slice(0, -3) + '.js', outputText);
    }
  }
}

/** Generates into a fresh folder, then swaps it in, so a reader never sees half a client. */
async function generate(target, env) {
  const fresh = `${target.out}.${process.pid}.tmp`;
  rmSync(fresh, { recursive: true, force: true });
  mkdirSync(fresh, { recursive: true });
  // Prisma resolves the generator's output relative to the schema file: a copy in the fresh
  // folder generates into fresh/client.
  const schema = join(fresh, 'schema.prisma');
  writeFileSync(schema, schemaText(target, fresh).replace(/(output\s*=\s*)"[^"]*"/, `$1"./client"`));
  await run([cli, 'generate', '--schema', schema], env);
  const client = join(fresh, 'client');
  if (target.javascript) await toJavaScript(client);
  writeFileSync(join(client, STAMP), stampOf(target));
  rmSync(target.out, { recursive: true, force: true });
  renameSync(client, target.out);
  rmSync(fresh, { recursive: true, force: true });
}

/** One generator at a time across processes (parallel test workers may all ask). */
async function withLock(fn) {
  const lock = join(root, '.tmp', 'prisma-generate.lock');
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      // A lock left by a process that died long ago is taken over.
      if (Date.now() > deadline || Date.now() - statSync(lock, { throwIfNoEntry: false })?.mtimeMs > 120_000) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (targets.some((t) => !upToDate(t))) {
  await withLock(async () => {
    const stale = targets.filter((t) => !upToDate(t));
    if (stale.length === 0) return;
    const env = { ...process.env, CHECKPOINT_DISABLE: '1', PRISMA_HIDE_UPDATE_MESSAGE: '1' };
    if (!env.PRISMA_SCHEMA_ENGINE_BINARY || !existsSync(env.PRISMA_SCHEMA_ENGINE_BINARY)) env.PRISMA_SCHEMA_ENGINE_BINARY = process.execPath;
    const started = Date.now();
    await Promise.all(stale.map((t) => generate(t, env)));
    process.stderr.write(`page-dumper: generated ${stale.map((t) => t.name).join(', ')} in ${Date.now() - started} ms\n`);
  }).catch((error) => {
    process.stderr.write(`page-dumper: ${error.message}\n`);
    process.exit(1);
  });
}
