#!/usr/bin/env node
// Write overhead of page-dumper/kysely on PostgreSQL, against the plain Kysely in the same run:
//   1. an update of one row by primary key
//   2. an update of 1,000 rows by a predicate (`where grp = ?`), at the default maxRows (1000):
//      every row is read before the update and comes back with RETURNING, and dependentPaths
//      runs for the 1,000 old and 1,000 new rows.
// Each Kysely has its own pg pool of one connection to 127.0.0.1:5432/test (a schema of its
// own, dropped at the end). Rounds alternate which db goes first; each round times a batch of
// sequential writes; the table gives the median of the rounds' per-write times and the SQL
// statements each write sent (counted with Kysely's log).
//
//   node bench/orm-kysely.mjs                        10 rounds, 300 single-row and 10 bulk writes per round
//   node bench/orm-kysely.mjs --rounds=4 --single=100 --bulk=4
//
// It builds dist/ if needed (scripts/build-if-needed.mjs) and imports page-dumper from there.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([a-z-]+)(?:=(.*))?$/.exec(a)?.slice(1) ?? [a, '']));
const ROUNDS = Number(args.rounds ?? 10);
const SINGLE = Number(args.single ?? 300);
const BULK = Number(args.bulk ?? 10);
const URL_ = 'postgresql://postgres@127.0.0.1:5432/test';

execFileSync(process.execPath, [join(ROOT, 'scripts/build-if-needed.mjs')], { cwd: ROOT, stdio: 'inherit' });
const { createDumper } = await import(pathToFileURL(join(ROOT, 'dist/index.js')).href);
const { kyselyDumper } = await import(pathToFileURL(join(ROOT, 'dist/orm/kysely/index.js')).href);

const schema = `ky_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: URL_ });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
await admin.query(`CREATE TABLE ${schema}.ky_bench_item (id SERIAL PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, grp INTEGER NOT NULL)`);
await admin.query(`CREATE INDEX ON ${schema}.ky_bench_item (grp)`);
// 10 groups of 1,000 rows: plain and wrapped update different groups, so neither waits on the other's rows.
await admin.query(`INSERT INTO ${schema}.ky_bench_item (slug, name, grp) SELECT 'item-' || i, 'Item ' || i, i % 10 FROM generate_series(1, 10000) i`);
await admin.query(`ANALYZE ${schema}.ky_bench_item`);

function counted() {
  const log = { n: 0 };
  const db = new Kysely({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: URL_, max: 1, options: `-c search_path=${schema}` }) }),
    log: (e) => {
      if (e.level === 'query') log.n++;
    },
  });
  return { db, log };
}

const dumper = createDumper({ logger: false });
dumper.register('ky_bench_item', { dependentPaths: (row) => ['/items/', `/items/${row.slug}/`] });
const plain = counted();
const inner = counted();
const wrapped = { db: kyselyDumper(dumper, inner.db), log: inner.log };
const subjects = { plain: { ...plain, id: 1, grp: 1 }, wrapped: { ...wrapped, id: 2, grp: 2 } };

async function single(s, n) {
  const q0 = s.log.n;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await s.db.updateTable('ky_bench_item').set({ name: `n${i}` }).where('id', '=', s.id).execute();
  return { us: Number(process.hrtime.bigint() - t0) / 1e3 / n, queries: (s.log.n - q0) / n };
}

async function bulk(s, n) {
  const q0 = s.log.n;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await s.db.updateTable('ky_bench_item').set({ name: `b${i}` }).where('grp', '=', s.grp).execute();
  return { us: Number(process.hrtime.bigint() - t0) / 1e3 / n, queries: (s.log.n - q0) / n };
}

// Warm-up: connections, plans, JIT.
for (const s of Object.values(subjects)) {
  await single(s, 50);
  await bulk(s, 2);
}

const results = { single: { plain: [], wrapped: [] }, bulk: { plain: [], wrapped: [] } };
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['plain', 'wrapped'] : ['wrapped', 'plain'];
  for (const name of order) results.single[name].push(await single(subjects[name], SINGLE));
  for (const name of order) results.bulk[name].push(await bulk(subjects[name], BULK));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (us) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`);

console.log(`\nPostgreSQL ${(await admin.query('show server_version')).rows[0].server_version}, kysely 0.28, Node ${process.version}; ${ROUNDS} rounds (${SINGLE} single-row, ${BULK} bulk updates per round and db), medians of the rounds\n`);
console.log('| write | plain Kysely | kyselyDumper | extra per write | SQL statements per write (plain → wrapped) |');
console.log('| --- | ---: | ---: | ---: | --- |');
for (const [kind, label] of [
  ['single', 'update 1 row by primary key'],
  ['bulk', 'update 1,000 rows by predicate'],
]) {
  const p = median(results[kind].plain.map((x) => x.us));
  const w = median(results[kind].wrapped.map((x) => x.us));
  const qp = results[kind].plain[0].queries;
  const qw = results[kind].wrapped[0].queries;
  console.log(`| ${label} | ${fmt(p)} | ${fmt(w)} | +${fmt(w - p)} (${(w / p).toFixed(2)} ×) | ${qp} → ${qw} |`);
}
const range = (kind, name) => {
  const xs = results[kind][name].map((x) => x.us);
  return `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
};
console.log(`\nper-round ranges: single plain ${range('single', 'plain')}, wrapped ${range('single', 'wrapped')}; bulk plain ${range('bulk', 'plain')}, wrapped ${range('bulk', 'wrapped')}`);

await plain.db.destroy();
await inner.db.destroy();
await dumper.close();
await admin.query(`DROP SCHEMA ${schema} CASCADE`);
await admin.end();
