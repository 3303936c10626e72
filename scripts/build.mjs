#!/usr/bin/env node
/**
 * Builds the package into `dist/` (or the directory given as the first argument): the ES modules
 * and their types from `tsconfig.build.json`, then the CommonJS copy in `<out>/cjs/` from
 * `tsconfig.cjs.json`. The CommonJS files get the same `.d.ts` files beside them, which TypeScript
 * reads as CommonJS declarations because `<out>/cjs/package.json` says `"type": "commonjs"`: one
 * set of types per format, so a `require` and an `import` each see the format they load.
 *
 * `--noEmitOnError` keeps a broken build from writing anything (with `--keep`, the previous build
 * stays as it was). The CommonJS pass is not checked
 * again (`noCheck`): the first pass checked the same sources.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
/** `--keep`: build over the existing output instead of removing it first (`build-if-needed.mjs`). */
const keep = args.includes('--keep');
const out = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, 'dist'));
const cjs = join(out, 'cjs');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function run(config, outDir) {
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, config), '--outDir', outDir, '--noEmitOnError'], { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Copies every `.d.ts` under `from` to the same place under `to`, skipping `skip` (the CommonJS output itself). */
function copyTypes(from, to, skip) {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const path = join(from, entry.name);
    if (path === skip) continue;
    if (entry.isDirectory()) copyTypes(path, join(to, entry.name), skip);
    else if (entry.name.endsWith('.d.ts')) {
      mkdirSync(to, { recursive: true });
      copyFileSync(path, join(to, entry.name));
    }
  }
}

if (!keep) rmSync(out, { recursive: true, force: true });
run('tsconfig.build.json', out);
run('tsconfig.cjs.json', cjs);
writeFileSync(join(cjs, 'package.json'), '{\n  "type": "commonjs"\n}\n');
// The CLI is an ES module only (its bin is dist/cli/index.js): no CommonJS types for it.
copyTypes(out, cjs, cjs);
rmSync(join(cjs, 'cli'), { recursive: true, force: true });
