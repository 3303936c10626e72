#!/usr/bin/env node
// Write overhead of page-dumper/drizzle on PostgreSQL (node-postgres, 127.0.0.1:5432, db `test`):
//   1. an update of one row by primary key, through the wrapped db and through the plain db
//   2. an update of 1,000 rows by a predicate (maxRows 1000: every row resolved one by one)
// Both dbs share one pg.Pool; rounds alternate plain and wrapped; the median of the rounds' time
// per write is printed with the statements each write sends (counted by Drizzle's logger).
//
//   node bench/orm-drizzle.mjs                  9 rounds of 300 single-row and 5 bulk writes
//   node bench/orm-drizzle.mjs --rounds=3       shorter
//
// It builds dist/ if needed (scripts/build-if-needed.mjs), creates a schema dz_bench_<random>
// and drops it at the end. Prints a Markdown table; writes nothing else.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([a-z-]+)(?:=(.*))?$/.exec(a)?.slice(1) ?? [a, '']));
const ROUNDS = Number(args.rounds ?? 9);
const SINGLE = Number(args.single ?? 300);
const BULK = Number(args.bulk ?? 5);

execFileSync(process.execPath, [join(ROOT, 'scripts/build-if-needed.mjs')], { cwd: ROOT, stdio: 'inherit' });
const { createDumper } = await import(join(ROOT, 'dist/index.js'));
const { drizzleDumper } = await import(join(ROOT, 'dist/orm/drizzle/index.js'));
const { eq, sql } = await import('drizzle-orm');
const { drizzle } = await import('drizzle-orm/node-postgres');
const { integer, pgTable, serial, text } = await import('drizzle-orm/pg-core');
const { default: pg } = await import('pg');

const schemaName = `dz_bench_${randomBytes(4).toString('hex')}`;
const url = 'postgresql://postgres@127.0.0.1:5432/test';
const admin = new pg.Client({ connectionString: url });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schemaName}`);
await admin.query(`CREATE TABLE ${schemaName}.dz_bench (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, grp INTEGER NOT NULL)`);
await admin.query(`INSERT INTO ${schemaName}.dz_bench (slug, name, grp) SELECT 's' || i, 'n', CASE WHEN i <= 1000 THEN 1 ELSE 2 END FROM generate_series(1, 2000) i`);

const item = pgTable('dz_bench', { id: serial('id').primaryKey(), slug: text('slug').notNull().unique(), name: text('name').notNull(), grp: integer('grp').notNull() });
const pool = new pg.Pool({ connectionString: url, max: 4, options: `-c search_path=${schemaName}` });
let statements = 0;
const plain = drizzle(pool, { schema: { item }, logger: { logQuery: () => void statements++ } });
const dumper = createDumper({ logger: false });
dumper.register('dz_bench', { dependentPaths: (row) => ['/items/', `/items/${row.slug}/`] });
const wrapped = drizzleDumper(dumper, plain, { maxRows: 1000 });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { single: { plain: [], wrapped: [] }, bulk: { plain: [], wrapped: [] } };
const perWrite = { single: {}, bulk: {} };
let n = 0;

async function measure(kind, label, db) {
  const count = kind === 'single' ? SINGLE : BULK;
  const before = statements;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    n++;
    if (kind === 'single') await db.update(item).set({ name: `n${n}` }).where(eq(item.id, 1 + (i % 1000)));
    else await db.update(item).set({ name: sql`${'b'} || ${String(n)}` }).where(eq(item.grp, 1));
  }
  const us = Number(process.hrtime.bigint() - start) / 1000 / count;
  results[kind][label].push(us);
  perWrite[kind][label] = (statements - before) / count;
}

// Warm-up: connections, prepared plans, JIT.
await measure('single', 'plain', plain);
await measure('single', 'wrapped', wrapped);
results.single.plain.length = results.single.wrapped.length = 0;
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['plain', 'wrapped'] : ['wrapped', 'plain'];
  for (const label of order) await measure('single', label, label === 'plain' ? plain : wrapped);
  for (const label of order) await measure('bulk', label, label === 'plain' ? plain : wrapped);
}

const row = (name, kind) => {
  const p = median(results[kind].plain);
  const w = median(results[kind].wrapped);
  return `| ${name} | ${perWrite[kind].plain} | ${perWrite[kind].wrapped} | ${p.toFixed(0)} µs | ${w.toFixed(0)} µs | +${(w - p).toFixed(0)} µs (${(w / p).toFixed(2)} ×) |`;
};
console.log(`\nPostgreSQL ${(await admin.query('show server_version')).rows[0].server_version}, node ${process.version}, drizzle-orm ${JSON.parse(readFileSync(join(ROOT, 'node_modules/drizzle-orm/package.json'), 'utf8')).version}; ${ROUNDS} rounds (${SINGLE} single-row and ${BULK} bulk writes each), medians\n`);
console.log('| write | statements, plain | statements, wrapped | plain | wrapped | overhead |');
console.log('| --- | --- | --- | --- | --- | --- |');
console.log(row('update 1 row by primary key', 'single'));
console.log(row('update 1,000 rows by a predicate', 'bulk'));

await pool.end();
await admin.query(`DROP SCHEMA ${schemaName} CASCADE`);
await admin.end();
await dumper.close();
