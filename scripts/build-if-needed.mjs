#!/usr/bin/env node
/**
 * Builds dist/ from src/ (`scripts/build.mjs`: the ES modules and the CommonJS copy in dist/cjs/)
 * only when it is missing or out of date: when dist/index.js or dist/cjs/index.js does not exist,
 * or any file under src/ (or a tsconfig, or the build script) is newer than the older of them.
 * Silent when there is nothing to do, so `npm start` starts at once. `--noEmitOnError` keeps a
 * broken build from refreshing dist/, so the next run tries again instead of believing dist/ is up
 * to date.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const targets = [join(root, 'dist', 'index.js'), join(root, 'dist', 'cjs', 'index.js')];

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The first input newer than `since`, or undefined. */
function newerInput(since) {
  const pending = [join(root, 'src')];
  while (pending.length > 0) {
    const dir = pending.pop();
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile() && statSync(path).mtimeMs > since) return path;
    }
  }
  for (const name of ['tsconfig.json', 'tsconfig.build.json', 'tsconfig.cjs.json', 'scripts/build.mjs']) {
    const path = join(root, name);
    if ((mtime(path) ?? 0) > since) return path;
  }
  return undefined;
}

const times = targets.map(mtime);
const missing = times.findIndex((t) => t === undefined);
const built = missing === -1 ? Math.min(...times) : undefined;
const reason = built === undefined ? `${targets[missing].slice(root.length + 1)} is missing` : newerInput(built)?.slice(root.length + 1);
if (reason === undefined) process.exit(0);

process.stderr.write(`page-dumper: building dist/ (${built === undefined ? reason : `${reason} changed`})\n`);
const result = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--keep'], {
  cwd: root,
  stdio: 'inherit',
});
if (result.error) {
  process.stderr.write(`page-dumper: could not run the build: ${result.error.message}\n`);
  process.exit(1);
}
if (result.status !== 0) {
  process.stderr.write('page-dumper: the build failed (see above); dist/ was left as it was\n');
  process.exit(result.status ?? 1);
}
