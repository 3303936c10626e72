#!/usr/bin/env node
/**
 * Builds dist/ from src/ only when it is missing or out of date: when dist/index.js does not
 * exist, or any file under src/ (or a tsconfig) is newer than it. Silent when there is nothing to
 * do, so `npm start` starts at once. `--noEmitOnError` keeps a broken build from refreshing
 * dist/index.js, so the next run tries again instead of believing dist/ is up to date.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'dist', 'index.js');

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
  for (const name of ['tsconfig.json', 'tsconfig.build.json']) {
    const path = join(root, name);
    if ((mtime(path) ?? 0) > since) return path;
  }
  return undefined;
}

const built = mtime(target);
const reason = built === undefined ? 'dist/index.js is missing' : newerInput(built)?.slice(root.length + 1);
if (reason === undefined) process.exit(0);

process.stderr.write(`page-dumper: building dist/ (${built === undefined ? reason : `${reason} changed`})\n`);
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--noEmitOnError'], {
  cwd: root,
  stdio: 'inherit',
});
if (result.error) {
  process.stderr.write(`page-dumper: could not run tsc: ${result.error.message}\n`);
  process.exit(1);
}
if (result.status !== 0) {
  process.stderr.write('page-dumper: the build failed (see above); dist/ was left as it was\n');
  process.exit(result.status ?? 1);
}
