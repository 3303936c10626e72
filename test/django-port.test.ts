/**
 * django-dumper's own test cases, ported: a real SQLite database behind a small data layer that
 * counts the SQL statements each request runs, with save / delete / many-to-many hooks that call
 * `dumper.changed()` where Django sends post_save, pre_delete and m2m_changed.
 */
import Database from 'better-sqlite3';
import express from 'express';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { dumperMiddleware } from '../src/http/node/index.js';
import { createDumper, MemoryStore, type Dumper, type DumperOptions } from '../src/index.js';
import type { Mounted } from './support/behaviour.js';
import { listen } from './support/listen.js';

class Db {
  readonly sql = new Database(':memory:');
  queries = 0;
  constructor() {
    this.sql.exec(`
      CREATE TABLE simple (id INTEGER PRIMARY KEY, slug TEXT UNIQUE, name TEXT);
      CREATE TABLE related (id INTEGER PRIMARY KEY, slug TEXT UNIQUE, name TEXT);
      CREATE TABLE related_simple (related_id INTEGER, simple_id INTEGER, PRIMARY KEY (related_id, simple_id));
      CREATE TABLE comment (id INTEGER PRIMARY KEY, target_type TEXT, target_id INTEGER, body TEXT);
    `);
  }
  all<T>(query: string, ...params: unknown[]): T[] {
    this.queries++;
    return this.sql.prepare(query).all(...params) as T[];
  }
  get<T>(query: string, ...params: unknown[]): T | undefined {
    this.queries++;
    return this.sql.prepare(query).get(...params) as T | undefined;
  }
  run(query: string, ...params: unknown[]): void {
    this.queries++;
    this.sql.prepare(query).run(...params);
  }
}

class SimpleModel {
  constructor(public id: number, public slug: string, public name: string) {}
  dependentPaths() {
    return [`/simple/${this.slug}/`];
  }
}

class RelatedModel {
  constructor(public id: number, public slug: string, public name: string, private db: Db) {}
  *dependentPaths() {
    for (const s of this.db.all<{ slug: string }>('SELECT s.slug FROM simple s JOIN related_simple rs ON rs.simple_id = s.id WHERE rs.related_id = ?', this.id)) {
      yield `/simple/${s.slug}/`;
    }
    yield `/related/${this.slug}/`;
  }
}

class Comment {
  constructor(public id: number, public targetType: 'simple' | 'related', public targetId: number, public body: string, private db: Db) {}
  dependentPaths() {
    const row = this.db.get<{ slug: string }>(`SELECT slug FROM ${this.targetType} WHERE id = ?`, this.targetId);
    return row ? [`/${this.targetType}/${row.slug}/`] : [];
  }
}

/** The data layer: every write calls dumper.changed() as Django's signals do for django-dumper. */
class Repo {
  constructor(readonly db: Db, readonly dumper: Dumper) {}
  async saveSimple(s: SimpleModel) {
    this.db.run('INSERT INTO simple (id, slug, name) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET slug = excluded.slug, name = excluded.name', s.id, s.slug, s.name);
    await this.dumper.changed(s); // post_save
  }
  async saveRelated(r: RelatedModel) {
    this.db.run('INSERT INTO related (id, slug, name) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET slug = excluded.slug, name = excluded.name', r.id, r.slug, r.name);
    await this.dumper.changed(r);
  }
  async deleteRelated(r: RelatedModel) {
    await this.dumper.changed(r); // pre_delete: the relations still exist
    this.db.run('DELETE FROM related_simple WHERE related_id = ?', r.id);
    this.db.run('DELETE FROM related WHERE id = ?', r.id);
  }
  async addSimple(r: RelatedModel, s: SimpleModel) {
    this.db.run('INSERT OR IGNORE INTO related_simple VALUES (?, ?)', r.id, s.id);
    await this.dumper.changed(r); // m2m_changed, post_add
  }
  async removeSimple(r: RelatedModel, s: SimpleModel) {
    await this.dumper.changed(r); // m2m_changed, pre_remove
    this.db.run('DELETE FROM related_simple WHERE related_id = ? AND simple_id = ?', r.id, s.id);
    await this.dumper.changed(r); // post_remove
  }
  async saveComment(c: Comment) {
    this.db.run('INSERT INTO comment (id, target_type, target_id, body) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body', c.id, c.targetType, c.targetId, c.body);
    await this.dumper.changed(c);
  }
}

function app(db: Db, dumper: Dumper) {
  const a = express();
  a.use(dumperMiddleware(dumper));
  a.get('/simple/:slug/', (req, res) => {
    const s = db.get<{ id: number; name: string }>('SELECT id, name FROM simple WHERE slug = ?', req.params.slug);
    if (!s) return void res.status(404).send('no such thing');
    const related = db.all<{ name: string }>('SELECT r.name FROM related r JOIN related_simple rs ON rs.related_id = r.id WHERE rs.simple_id = ? ORDER BY r.name', s.id);
    const comments = db.all<{ body: string }>("SELECT body FROM comment WHERE target_type = 'simple' AND target_id = ? ORDER BY id", s.id);
    res.send(`${s.name} | related: ${related.map((r) => r.name).join(',')} | comments: ${comments.map((c) => c.body).join(',')}`);
  });
  a.get('/related/:slug/', (req, res) => {
    const r = db.get<{ name: string }>('SELECT name FROM related WHERE slug = ?', req.params.slug);
    if (!r) return void res.status(404).send('no such thing');
    res.send(r.name);
  });
  a.get('/admin/simple/:slug/', (req, res) => {
    const s = db.get<{ name: string }>('SELECT name FROM simple WHERE slug = ?', req.params.slug);
    res.send(`admin ${s?.name}`);
  });
  return a;
}

describe('django-dumper test cases', () => {
  let db: Db;
  let dumper: Dumper;
  let repo: Repo;
  let m: Mounted;
  const open: Array<() => Promise<void>> = [];

  async function start(options: DumperOptions = {}) {
    const d = createDumper({ logger: false, ...options });
    d.register(SimpleModel).register(RelatedModel).register(Comment);
    const mounted = await listen(app(db, d));
    open.push(async () => {
      await mounted.close();
      await d.close();
    });
    return { d, mounted };
  }

  /** Fetches a page and returns how many SQL statements it cost. */
  async function queriesFor(path: string, on = m) {
    const before = db.queries;
    const r = await fetch(on.url + path);
    const body = await r.text();
    return { queries: db.queries - before, body, status: r.status, cache: r.headers.get('x-cache') };
  }

  beforeEach(async () => {
    db = new Db();
    ({ d: dumper, mounted: m } = await start());
    repo = new Repo(db, dumper);
    await repo.saveSimple(new SimpleModel(1, 'a', 'Alpha'));
    await repo.saveRelated(new RelatedModel(1, 'r', 'Rho', db));
  });
  afterEach(async () => {
    for (const close of open.splice(0)) await close();
  });

  test('a cached page runs no query', async () => {
    expect((await queriesFor('/simple/a/')).queries).toBe(3);
    const hit = await queriesFor('/simple/a/');
    expect(hit.queries).toBe(0);
    expect(hit.cache).toBe('HIT');
  });

  test('saving the model re-renders its page', async () => {
    await queriesFor('/simple/a/');
    await repo.saveSimple(new SimpleModel(1, 'a', 'Alpha 2'));
    const after = await queriesFor('/simple/a/');
    expect(after.queries).toBe(3);
    expect(after.body).toContain('Alpha 2');
    expect((await queriesFor('/simple/a/')).queries).toBe(0);
  });

  test('a 404 is not cached', async () => {
    expect((await queriesFor('/simple/nope/')).status).toBe(404);
    const again = await queriesFor('/simple/nope/');
    expect(again.status).toBe(404);
    expect(again.queries).toBe(1);
  });

  test('ignored paths are neither stored nor served', async () => {
    expect((await queriesFor('/admin/simple/a/')).queries).toBe(1);
    expect((await queriesFor('/admin/simple/a/')).queries).toBe(1);
  });

  test('an ignored path stored before the setting changed is not served', async () => {
    const store = new MemoryStore();
    const { mounted: everything } = await start({ store, ignore: null });
    await queriesFor('/admin/simple/a/', everything);
    expect((await queriesFor('/admin/simple/a/', everything)).queries).toBe(0);
    const { mounted: withAdminIgnored } = await start({ store });
    expect((await queriesFor('/admin/simple/a/', withAdminIgnored)).queries).toBe(1);
  });

  test('many-to-many add invalidates the related pages', async () => {
    await queriesFor('/simple/a/');
    await repo.addSimple(new RelatedModel(1, 'r', 'Rho', db), new SimpleModel(1, 'a', 'Alpha'));
    const after = await queriesFor('/simple/a/');
    expect(after.queries).toBe(3);
    expect(after.body).toContain('related: Rho');
  });

  test('many-to-many remove invalidates the related pages', async () => {
    const r = new RelatedModel(1, 'r', 'Rho', db);
    await repo.addSimple(r, new SimpleModel(1, 'a', 'Alpha'));
    expect((await queriesFor('/simple/a/')).body).toContain('related: Rho');
    await repo.removeSimple(r, new SimpleModel(1, 'a', 'Alpha'));
    const after = await queriesFor('/simple/a/');
    expect(after.queries).toBe(3);
    expect(after.body).toContain('related:  |');
  });

  test('deleting a related object invalidates the pages it was on', async () => {
    const r = new RelatedModel(1, 'r', 'Rho', db);
    await repo.addSimple(r, new SimpleModel(1, 'a', 'Alpha'));
    await queriesFor('/simple/a/');
    await queriesFor('/related/r/');
    await repo.deleteRelated(r);
    expect((await queriesFor('/simple/a/')).body).toContain('related:  |');
    expect((await queriesFor('/related/r/')).status).toBe(404);
  });

  test('updating a related object invalidates the pages it is on', async () => {
    const r = new RelatedModel(1, 'r', 'Rho', db);
    await repo.addSimple(r, new SimpleModel(1, 'a', 'Alpha'));
    await queriesFor('/simple/a/');
    r.name = 'Rhubarb';
    await repo.saveRelated(r);
    expect((await queriesFor('/simple/a/')).body).toContain('related: Rhubarb');
  });

  test("a generic relation (a comment on any model) invalidates its target's page", async () => {
    await queriesFor('/simple/a/');
    await repo.saveComment(new Comment(1, 'simple', 1, 'yum', db));
    const after = await queriesFor('/simple/a/');
    expect(after.queries).toBe(3);
    expect(after.body).toContain('comments: yum');
  });

  test('a model whose dependentPaths returns a string fails with a TypeError', async () => {
    class Broken {
      dependentPaths() {
        return '/simple/a/';
      }
    }
    dumper.register(Broken as never);
    await expect(dumper.changed(new Broken())).rejects.toBeInstanceOf(TypeError);
    await expect(dumper.changed(new Broken())).rejects.toThrow('Broken.dependentPaths() returned a string');
  });
});
