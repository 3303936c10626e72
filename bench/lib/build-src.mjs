// Compiles src/ (the working tree's, or a git ref's) for a benchmark that compares builds: only
// the entry points it imports, into a directory of its own under .tmp/ (JavaScript is emitted even
// when another part of src/ has type errors).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `entries`: paths under src/ (`'stores/redis/index.ts'`); `ref`: a git ref, or `undefined` for the
 * working tree. Returns the build's directory and its `dist`; throws when an entry was not written.
 */
export function buildSrc({ name, ref, entries }) {
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, '.tmp', `bench-${name}-`));
  let src = join(ROOT, 'src');
  if (ref !== undefined) {
    const tar = execFileSync('git', ['-C', ROOT, 'archive', ref, 'src'], { maxBuffer: 1 << 28 });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    src = join(dir, 'src');
  }
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(ROOT, 'tsconfig.build.json'),
      compilerOptions: { rootDir: src, outDir: join(dir, 'dist'), declaration: false },
      files: entries.map((e) => join(src, e)),
      include: [],
    }),
  );
  spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { encoding: 'utf8' });
  for (const e of entries) {
    const out = join(dir, 'dist', e.replace(/\.ts$/, '.js'));
    if (!existsSync(out)) throw new Error(`the build of ${ref ?? 'the working tree'} did not write ${out}`);
  }
  return { dir, dist: join(dir, 'dist') };
}
