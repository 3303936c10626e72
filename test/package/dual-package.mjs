/**
 * Run by test/package.test.ts in a project that installed the packed tarball: one process loads
 * both builds of page-dumper, the ES modules through `import` and the CommonJS copy through
 * `require` (an ES module app using an integration that a CommonJS library requires), and what one
 * copy makes works with the other. Prints what it found as JSON.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import * as esm from 'page-dumper';
import { kyselyDumper as esmKyselyDumper } from 'page-dumper/kysely';
import { Kysely as EsmKysely, SqliteDialect as EsmSqliteDialect } from 'kysely';

const require = createRequire(import.meta.url);
const cjs = require('page-dumper');
const cjsNode = require('page-dumper/node');
const cjsKysely = require('page-dumper/kysely');
const cjsPurge = require('page-dumper/purge');
const { Kysely, SqliteDialect } = require('kysely');
const Database = require('better-sqlite3');

const out = {};
const check = (name, value) => { out[name] = value; };
check('two copies', esm.Dumper !== cjs.Dumper && require.resolve('page-dumper').includes('/dist/cjs/'));

// instanceof holds whichever copy made the object.
const cjsStore = new cjs.MemoryStore({ maxBytes: 1 << 20 });
check('MemoryStore', cjsStore instanceof esm.MemoryStore && new esm.MemoryStore({ maxBytes: 1 }) instanceof cjs.MemoryStore);
check('DumperError', new cjs.DumperError('DUMPER_STORE_FAILURE', 'x') instanceof esm.DumperError && new esm.DumperError('DUMPER_STORE_FAILURE', 'x') instanceof cjs.DumperError);
check('PurgeError', new cjs.PurgeError('x') instanceof esm.PurgeError && !(new Error('x') instanceof esm.PurgeError));

// A dumper of the ES modules with an in-memory store and a purger of the CommonJS copy.
const warnings = [];
const logger = { debug() {}, warn: (m) => warnings.push(String(m)), error: (m) => warnings.push(String(m)) };
const withPurger = esm.createDumper({ store: cjsStore, purgers: [cjsPurge.varnishPurger({ url: 'http://127.0.0.1:9/' })], logger });
await withPurger.close();
check('Dumper', withPurger instanceof cjs.Dumper);

// Render tracking is one per process: once a tag() of one copy switched it on, a render of a
// dumper of the other copy that tags its page is tracked, stored and invalidated by its tag.
const other = cjs.createDumper({ logger: false });
esm.createDumper({ logger: false }).tag('switch-on');
const tagged = http.createServer(cjsNode.withDumper(other, (req, res) => { other.tag('t:1'); res.end('tagged'); }));

// A dumper of the ES modules, the CommonJS node adapter, and the kysely integration of each copy
// (each on its own database) with trackReads: the page's reads are bounded as one page.
const dumper = esm.createDumper({ logger });
const sqlite = new Database(':memory:');
sqlite.exec("create table flavour (id integer primary key, name text); insert into flavour values (1, 'vanilla'), (2, 'chocolate');");
const db = cjsKysely.kyselyDumper(dumper, new Kysely({ dialect: new SqliteDialect({ database: sqlite }) }), { trackReads: true, maxTagsPerPage: 4 });
const sqlite2 = new Database(':memory:');
sqlite2.exec("create table topping (id integer primary key, name text); insert into topping values (1, 'nuts'), (2, 'sprinkles');");
const db2 = esmKyselyDumper(dumper, new EsmKysely({ dialect: new EsmSqliteDialect({ database: sqlite2 }) }), { trackReads: true, maxTagsPerPage: 4 });
dumper.register('flavour', { dependentPaths: () => [] });
const site = http.createServer(cjsNode.withDumper(dumper, async (req, res) => {
  const flavours = await db.selectFrom('flavour').selectAll().where('id', 'in', [1, 2]).execute();
  const toppings = await db2.selectFrom('topping').selectAll().where('id', 'in', [1, 2]).execute();
  res.end([...flavours, ...toppings].map((r) => r.name).join(','));
}));

const listen = (server) => new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${server.address().port}/`)));
const get = async (url) => { const r = await fetch(url); await r.text(); return r.headers.get('x-cache'); };
const taggedUrl = await listen(tagged);
const seen = [await get(taggedUrl), await get(taggedUrl)];
await other.invalidateTags(['t:1']);
seen.push(await get(taggedUrl));
check('other copy tags', seen.join(' '));

const url = await listen(site);
const pages = [await get(url), await get(url)];
await db.updateTable('flavour').set({ name: 'vanilla bean' }).where('id', '=', 1).execute();
// The invalidation may land just after the write returns: asked again (bounded) until it has.
let after = await get(url);
for (let i = 0; i < 50 && after === 'HIT'; i++) after = await new Promise((ok) => setTimeout(ok, 20)).then(() => get(url));
pages.push(after);
check('kysely of the other copy', pages.join(' '));
// Each of the two renders read 3 tags' worth from each database: past 4 in all, the second table
// read is tagged as a whole (one warning per render). Counted per copy, neither would be.
check('one bound per page', warnings.filter((w) => w.includes('maxTagsPerPage') && w.includes('topping')).length);
// An ORM object takes one integration in the process, whichever build installed it.
const { DataSource } = require('typeorm');
const { typeormDumper: esmTypeormDumper } = await import('page-dumper/typeorm');
const { typeormDumper: cjsTypeormDumper } = require('page-dumper/typeorm');
const dataSource = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
const first = esmTypeormDumper(dumper, dataSource);
let refused = 'installed twice';
try {
  cjsTypeormDumper(dumper, dataSource).close();
} catch (error) {
  refused = error instanceof TypeError && error.message;
}
first.close();
cjsTypeormDumper(dumper, dataSource).close();
check('one integration per DataSource', refused);
tagged.close(); site.close();
await Promise.all([dumper.close(), other.close()]);
console.log(JSON.stringify(out));
