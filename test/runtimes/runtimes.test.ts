/**
 * `page-dumper/fetch` on Bun and Deno (and on this Node, as the baseline): runs
 * test/runtimes/fetch-smoke.mjs, which serves a `dumperFetch` handler with the runtime's own
 * server and checks MISS, HIT, ETag/304 and an invalidation over HTTP.
 *
 * The binaries are the ones `node scripts/runtimes.mjs` installs into .tmp/runtimes/ (from the
 * npm registry), else `bun`/`deno` on the PATH. Under CI=true a missing one fails its test;
 * elsewhere its test is not defined, and a notice says how to get it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, test } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(root, 'test', 'runtimes', 'fetch-smoke.mjs');
const run = promisify(execFile);

/** The runtime's binary: the installed one, else one on the PATH, else undefined. */
async function find(installed: string, name: string): Promise<string | undefined> {
  const path = join(root, '.tmp', 'runtimes', 'npm', 'node_modules', installed);
  if (existsSync(path)) return path;
  try {
    await run(name, ['--version']);
    return name;
  } catch {
    return undefined;
  }
}

const runtimes = [
  { name: 'node', binary: process.execPath as string | undefined, args: [] as string[] },
  { name: 'bun', binary: await find('@oven/bun-linux-x64/bin/bun', 'bun'), args: [] },
  // Deno asks for what it may touch: the loopback server, the files it imports, and the
  // environment, which the `debug` package reads.
  { name: 'deno', binary: await find('@deno/linux-x64-glibc/deno', 'deno'), args: ['run', '--allow-net=127.0.0.1', '--allow-read', '--allow-env'] },
];

for (const { name, binary } of runtimes) {
  if (binary !== undefined) continue;
  const message = `${name} is not installed (node scripts/runtimes.mjs installs it into .tmp/runtimes/)`;
  if (process.env.CI) throw new Error(`${message}; CI needs it, so this file fails instead of leaving ${name} out.`);
  process.stderr.write(`test/runtimes: ${message}; its smoke test is not defined.\n`);
}

describe('page-dumper/fetch on other runtimes', () => {
  beforeAll(async () => {
    await run(process.execPath, [join(root, 'scripts', 'build-if-needed.mjs')], { cwd: root, timeout: 180_000 });
  }, 200_000);

  for (const { name, binary, args } of runtimes) {
    if (binary === undefined) continue;
    test(`${name}: MISS, HIT, 304 and an invalidation through dumperFetch`, async () => {
      const { stdout } = await run(binary, [...args, script], { cwd: root, timeout: 60_000 }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`${name} ${script} failed:\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
      });
      expect(stdout).toMatch(new RegExp(`^ok ${name} \\d+\\.\\d+`));
    });
  }
});
