#!/usr/bin/env node
// Precision and cost of trackReads on a small blog (TypeORM + SQLite): authors, posts (one
// author each, many-to-many with tags), tags and comments; 32 pages (the home page listing every
// post with its author, a page per post with its author, tags and comments, a page per author
// with their posts, a page per tag with its posts, and an about page that reads nothing).
//
// 1. Precision: the site runs twice on the same data, once with hand-written dependentPaths
//    (dumper.register) and once with typeormDumper(..., { trackReads: true }) and nothing
//    registered. The same scripted sequence of 14 writes is applied to each; after every write,
//    every page is fetched through the dumper and compared with a fresh render of the page without
//    it (a page that differs is stale), and the pages rendered again (a MISS) are counted.
// 2. Cost: the time of a miss (every page rendered and stored on an empty cache, through HTTP) and
//    of a hit, with trackReads off (hand-written paths), off but with render contexts tracked
//    (`trackRenders: true`: the AsyncLocalStorage that trackReads switches on for the whole
//    process), and on; each in a child process of its own, the order rotated each round, for
//    --rounds rounds; ratios are the median of the per-round ratios.
//
//   node bench/track-reads.mjs               precision, then 7 rounds of the cost
//   node bench/track-reads.mjs --rounds=3    shorter
//
// Builds dist/ if needed (scripts/build-if-needed.mjs). SQLite files go to a temporary folder
// that is removed at the end. Prints Markdown; writes nothing else.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([a-z-]+)(?:=(.*))?$/.exec(a)?.slice(1) ?? [a, '']));
const ROUNDS = Number(args.rounds ?? 7);
/** Passes over the 32 pages per measurement in a child. */
const PASSES = Number(args.passes ?? 20);

if (args.child === undefined) execFileSync(process.execPath, [join(ROOT, 'scripts/build-if-needed.mjs')], { cwd: ROOT, stdio: 'inherit' });
const { createDumper } = await import(join(ROOT, 'dist/index.js'));
const { typeormDumper } = await import(join(ROOT, 'dist/orm/typeorm/index.js'));
const { withDumper } = await import(join(ROOT, 'dist/http/node/index.js'));
const { DataSource, EntitySchema } = await import('typeorm');

const AUTHORS = 5;
const POSTS = 20;
const TAGS = 5;

const Author = new EntitySchema({
  name: 'Author',
  columns: { id: { type: Number, primary: true }, name: { type: String } },
  relations: { posts: { type: 'one-to-many', target: 'Post', inverseSide: 'author' } },
});
const Post = new EntitySchema({
  name: 'Post',
  columns: { id: { type: Number, primary: true }, title: { type: String } },
  relations: {
    author: { type: 'many-to-one', target: 'Author', inverseSide: 'posts', nullable: false, onDelete: 'CASCADE' },
    tags: { type: 'many-to-many', target: 'Tag', inverseSide: 'posts', joinTable: true },
    comments: { type: 'one-to-many', target: 'Comment', inverseSide: 'post' },
  },
});
const Tag = new EntitySchema({
  name: 'Tag',
  columns: { id: { type: Number, primary: true }, name: { type: String } },
  relations: { posts: { type: 'many-to-many', target: 'Post', inverseSide: 'tags' } },
});
const Comment = new EntitySchema({
  name: 'Comment',
  columns: { id: { type: Number, primary: true, generated: true }, body: { type: String } },
  relations: { post: { type: 'many-to-one', target: 'Post', inverseSide: 'comments', nullable: false, onDelete: 'CASCADE' } },
});
const entities = [Author, Post, Tag, Comment];

const PAGES = [
  '/',
  ...Array.from({ length: POSTS }, (_, i) => `/posts/${i + 1}`),
  ...Array.from({ length: AUTHORS }, (_, i) => `/authors/${i + 1}`),
  ...Array.from({ length: TAGS }, (_, i) => `/tags/${i + 1}`),
  '/about',
];

const sorted = (rows) => [...rows].sort((a, b) => a.id - b.id);

/** The pages: each renders exactly what it read. */
function render(ds, path) {
  const posts = ds.getRepository('Post');
  let m;
  if (path === '/') {
    return posts.find({ relations: { author: true }, order: { id: 'DESC' } }).then((all) => all.map((p) => `<li>${p.title} by ${p.author.name}</li>`).join(''));
  }
  if ((m = /^\/posts\/(\d+)$/.exec(path))) {
    return posts.findOne({ where: { id: Number(m[1]) }, relations: { author: true, tags: true, comments: true } }).then((p) =>
      p === null
        ? 'gone'
        : `<h1>${p.title}</h1><p>by ${p.author.name}</p><p>${sorted(p.tags).map((t) => t.name).join(', ')}</p>${sorted(p.comments).map((c) => `<blockquote>${c.body}</blockquote>`).join('')}`,
    );
  }
  if ((m = /^\/authors\/(\d+)$/.exec(path))) {
    return ds
      .getRepository('Author')
      .findOne({ where: { id: Number(m[1]) }, relations: { posts: true } })
      .then((a) => (a === null ? 'gone' : `<h1>${a.name}</h1>${sorted(a.posts).map((p) => `<li>${p.title}</li>`).join('')}`));
  }
  if ((m = /^\/tags\/(\d+)$/.exec(path))) {
    return ds
      .getRepository('Tag')
      .findOne({ where: { id: Number(m[1]) }, relations: { posts: true } })
      .then((t) => (t === null ? 'gone' : `<h1>${t.name}</h1>${sorted(t.posts).map((p) => `<li>${p.title}</li>`).join('')}`));
  }
  if (path === '/about') return Promise.resolve('<p>about</p>');
  return Promise.reject(new Error(`no page ${path}`));
}

/** What a developer would write by hand: every page that shows each model. */
function registerByHand(dumper) {
  dumper.register('Post', {
    dependentPaths: (p) => ['/', `/posts/${p.id}`, `/authors/${p.author?.id}`, ...(p.tags ?? []).map((t) => `/tags/${t.id}`)],
  });
  dumper.register('Author', { dependentPaths: (a) => ['/', `/authors/${a.id}`, ...(a.posts ?? []).map((p) => `/posts/${p.id}`)] });
  dumper.register('Tag', { dependentPaths: (t) => [`/tags/${t.id}`, ...(t.posts ?? []).map((p) => `/posts/${p.id}`)] });
  dumper.register('Comment', { dependentPaths: (c) => [`/posts/${c.post?.id}`] });
}

async function seed(ds) {
  await ds.getRepository('Author').save(Array.from({ length: AUTHORS }, (_, i) => ({ id: i + 1, name: `Author ${i + 1}` })));
  await ds.getRepository('Tag').save(Array.from({ length: TAGS }, (_, i) => ({ id: i + 1, name: `tag${i + 1}` })));
  await ds.getRepository('Post').save(
    Array.from({ length: POSTS }, (_, i) => ({
      id: i + 1,
      title: `Post ${i + 1}`,
      author: { id: (i % AUTHORS) + 1 },
      tags: [{ id: (i % TAGS) + 1 }, { id: ((i + 2) % TAGS) + 1 }],
    })),
  );
  const comments = [];
  for (let p = 1; p <= POSTS; p++) for (let c = 1; c <= 3; c++) comments.push({ body: `comment ${c} on ${p}`, post: { id: p } });
  await ds.getRepository('Comment').save(comments);
}

/** The scripted writes: what an editor and the readers of a blog do in a morning. */
const WRITES = [
  ['edit a post title', (ds) => ds.getRepository('Post').update(3, { title: 'Post 3 (edited)' })],
  ['add a comment', (ds) => ds.getRepository('Comment').save({ body: 'first!', post: { id: 7 } })],
  ['add another comment', (ds) => ds.getRepository('Comment').save({ body: 'me too', post: { id: 12 } })],
  ['edit a comment', async (ds) => ds.getRepository('Comment').update((await ds.getRepository('Comment').findOneByOrFail({ body: 'first!' })).id, { body: 'first! (edited)' })],
  ['delete a comment', async (ds) => ds.getRepository('Comment').remove(await ds.getRepository('Comment').findOneByOrFail({ body: 'comment 2 on 5' }))],
  ['rename an author', (ds) => ds.getRepository('Author').update(2, { name: 'Author 2 (renamed)' })],
  ['rename a tag', (ds) => ds.getRepository('Tag').update(4, { name: 'tag4 (renamed)' })],
  ['tag a post', async (ds) => ds.createQueryBuilder().relation('Post', 'tags').of(9).add(5)],
  ['untag a post', async (ds) => ds.createQueryBuilder().relation('Post', 'tags').of(10).remove(2)],
  ['publish a new post', (ds) => ds.getRepository('Post').save({ id: 21, title: 'Post 21', author: { id: 1 }, tags: [{ id: 2 }] })],
  ['comment on the new post', (ds) => ds.getRepository('Comment').save({ body: 'welcome', post: { id: 21 } })],
  ['add an author (no posts yet)', (ds) => ds.getRepository('Author').save({ id: 6, name: 'Author 6' })],
  ['delete a post', async (ds) => ds.getRepository('Post').remove(await ds.getRepository('Post').findOneByOrFail({ id: 15 }))],
  ['move a post to another author', (ds) => ds.getRepository('Post').update(4, { author: { id: 5 } })],
];

async function open(file) {
  const ds = new DataSource({ type: 'better-sqlite3', database: file, entities, synchronize: true });
  await ds.initialize();
  return ds;
}

async function serve(dumper, ds) {
  const server = http.createServer(
    withDumper(dumper, (req, res) => {
      render(ds, new URL(req.url, 'http://x').pathname).then(
        (body) => {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          res.end(body);
        },
        (error) => {
          res.writeHead(500);
          res.end(String(error));
        },
      );
    }),
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const agent = new http.Agent({ keepAlive: true });
  const base = `http://127.0.0.1:${server.address().port}`;
  const get = (path) =>
    new Promise((resolve, reject) => {
      http
        .get(base + path, { agent }, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ cache: res.headers['x-cache'], body: Buffer.concat(chunks).toString() }));
        })
        .on('error', reject);
    });
  return {
    get,
    close: () => {
      agent.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs the writes on a fresh copy of the blog; returns the renders and stale pages after each. */
async function precision(mode, dir) {
  const ds = await open(join(dir, `${mode}.sqlite`));
  await seed(ds);
  const dumper = createDumper({ logger: false });
  let handle;
  if (mode === 'hand') {
    registerByHand(dumper);
    handle = typeormDumper(dumper, ds, { relations: { Author: ['posts'] } });
  } else {
    handle = typeormDumper(dumper, ds, { trackReads: true });
  }
  const site = await serve(dumper, ds);
  for (const p of PAGES) await site.get(p);
  const steps = [];
  for (const [name, write] of WRITES) {
    await write(ds);
    let renders = 0;
    let stale = 0;
    for (const p of PAGES) {
      const served = await site.get(p);
      if (served.cache !== 'HIT') renders++;
      if (served.body !== (await render(ds, p))) stale++;
    }
    steps.push({ name, renders, stale });
  }
  await site.close();
  handle.close();
  await dumper.close();
  await ds.destroy();
  return steps;
}

/** In a child process: the time of a miss and of a hit over every page, one mode. */
async function measure(mode, file) {
  const ds = await open(file);
  // `tracked`: trackReads off, but render contexts tracked (AsyncLocalStorage), as trackReads needs.
  const dumper = createDumper({ logger: false, trackRenders: mode === 'tracked' });
  let handle;
  if (mode === 'off' || mode === 'tracked') {
    registerByHand(dumper);
    handle = typeormDumper(dumper, ds, { relations: { Author: ['posts'] } });
  } else {
    handle = typeormDumper(dumper, ds, { trackReads: true });
  }
  const site = await serve(dumper, ds);
  const pass = async () => {
    for (const p of PAGES) await site.get(p);
  };
  // Warm-up: JIT and the data source's metadata caches.
  for (let i = 0; i < 5; i++) {
    await dumper.invalidateAll();
    await pass();
  }
  let miss = 0;
  let hit = 0;
  for (let i = 0; i < PASSES; i++) {
    await dumper.invalidateAll();
    let t = process.hrtime.bigint();
    await pass();
    miss += Number(process.hrtime.bigint() - t);
    t = process.hrtime.bigint();
    await pass();
    hit += Number(process.hrtime.bigint() - t);
  }
  const perPage = (ns) => ns / 1e3 / (PASSES * PAGES.length);
  process.stdout.write(JSON.stringify({ miss: perPage(miss), hit: perPage(hit) }));
  await site.close();
  handle.close();
  await dumper.close();
  await ds.destroy();
}

if (args.child !== undefined) {
  await measure(args.child, args.file);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'page-dumper-track-reads-'));
try {
  const hand = await precision('hand', dir);
  const track = await precision('track', dir);

  const costFile = join(dir, 'cost.sqlite');
  const seeded = await open(costFile);
  await seed(seeded);
  await seeded.destroy();
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round = {};
    const modes = ['off', 'tracked', 'on'];
    for (const mode of [...modes.slice(r % 3), ...modes.slice(0, r % 3)]) {
      const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), `--child=${mode}`, `--file=${costFile}`, `--passes=${PASSES}`], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      if (out.status !== 0) throw new Error(`child ${mode} failed: ${out.stderr}`);
      round[mode] = JSON.parse(out.stdout);
    }
    rounds.push(round);
  }

  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const f = (x, d = 0) => x.toFixed(d);
  const lines = [];
  lines.push(`Command: \`node bench/track-reads.mjs --rounds=${ROUNDS}\``, '');
  lines.push(`- Date: ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; Node ${process.version}; ${PAGES.length} pages, ${WRITES.length} writes; TypeORM + better-sqlite3, MemoryStore`);
  lines.push('', '### Precision: pages rendered again after each write', '');
  lines.push('| write | hand-written `dependentPaths` | `trackReads` | stale (hand / track) |', '|---|--:|--:|--:|');
  let th = 0;
  let tt = 0;
  let sh = 0;
  let st = 0;
  WRITES.forEach(([name], i) => {
    const h = hand[i];
    const t = track[i];
    th += h.renders;
    tt += t.renders;
    sh += h.stale;
    st += t.stale;
    lines.push(`| ${name} | ${h.renders} | ${t.renders} | ${h.stale} / ${t.stale} |`);
  });
  lines.push(`| **total** | **${th}** | **${tt}** (${f(tt / th, 2)} ×) | **${sh} / ${st}** |`);
  lines.push('', `### Cost: time per page, median of ${ROUNDS} rounds (${PASSES} passes over the ${PAGES.length} pages per round and mode)`, '');
  lines.push(
    '| | off µs | off + `trackRenders` µs | on µs | on / off | on / (off + `trackRenders`) |',
    '|---|--:|--:|--:|--:|--:|',
  );
  for (const k of ['miss', 'hit']) {
    const m = (mode) => f(median(rounds.map((r) => r[mode][k])));
    const ratio = (a, b) => f(median(rounds.map((r) => r[a][k] / r[b][k])), 2);
    lines.push(`| ${k} | ${m('off')} | ${m('tracked')} | ${m('on')} | ${ratio('on', 'off')} | ${ratio('on', 'tracked')} |`);
  }
  lines.push('', 'Per-round ratios on / off (miss): ' + rounds.map((r) => f(r.on.miss / r.off.miss, 2)).join(', '));
  lines.push('Per-round ratios on / off (hit): ' + rounds.map((r) => f(r.on.hit / r.off.hit, 2)).join(', '));
  console.log(lines.join('\n'));
  if (st > 0 || sh > 0) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
