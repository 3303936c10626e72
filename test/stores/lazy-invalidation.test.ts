// Invalidating a tag carried by many entries (a `layout` tag on every page) makes them invalid at
// once and frees them afterwards, in bounded slices: what each store frees, and that it frees
// nothing stored since. The shared conformance suite checks that none of them is served.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStore } from '../../src/stores/redis/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import Database from 'better-sqlite3';
import { definedIf, needService } from '../support/services.js';
import { pageEntry, storeLimits } from '../support/entries.js';

const hasRedis = await needService('redis');

const limits = storeLimits;
const entry = pageEntry;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs `check` once per turn of the event loop until it holds, at most `turns` times. */
async function until(check: () => boolean | Promise<boolean>, turns = 3000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (await check()) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
  throw new Error('the condition never held');
}

describe('MemoryStore: a tag on many entries', () => {
  test('is invalid at once, freed in slices of at most 2,000 entries per turn, down to the bytes of what is left', async () => {
    const s = new MemoryStore();
    for (let i = 0; i < 10; i++) s.set(`k:/plain${i}`, entry(`/plain${i}`, 0, [`/plain${i}`]), limits);
    const left = s.bytes;
    for (let i = 0; i < 7000; i++) s.set(`k:/p${i}`, entry(`/p${i}`, 0), limits);
    const full = s.bytes;
    s.invalidate(['layout']);
    // Nothing freed yet (the store did not stall to do it), nothing served.
    expect(s.size).toBe(7010);
    expect(s.get('k:/p6999')).toBeUndefined();
    // The entry read was freed by the read.
    expect(s.size).toBe(7009);
    let before = s.size;
    const slices: number[] = [];
    while (s.size > 10) {
      await turn();
      slices.push(before - s.size);
      before = s.size;
      expect(slices.length).toBeLessThan(100);
    }
    expect(Math.max(...slices)).toBeLessThanOrEqual(2000);
    expect(slices.filter((n) => n > 0).length).toBeGreaterThanOrEqual(4);
    expect(s.bytes).toBe(left);
    expect(full).toBeGreaterThan(left);
    for (let i = 0; i < 10; i++) expect(s.get(`k:/plain${i}`)).toBeDefined();
  });

  test('an entry stored again during the freeing is kept, and a second invalidation frees it', async () => {
    const s = new MemoryStore();
    for (let i = 0; i < 5000; i++) s.set(`k:/p${i}`, entry(`/p${i}`, 0), limits);
    const seq = s.invalidate(['layout']);
    expect(s.set('k:/p4999', entry('/p4999', seq), limits)).toBe(true);
    expect(s.set('k:/p0', entry('/p0', seq), limits)).toBe(true);
    await until(() => s.size === 2);
    expect(s.get('k:/p4999')).toBeDefined();
    expect(s.get('k:/p0')).toBeDefined();
    expect(s.entries({ tag: 'layout' }).entries.map((e) => e.key).sort()).toEqual(['k:/p0', 'k:/p4999']);
    // Once the freeing is over (it forgets its mark in a slice that may come a turn after the last
    // entry it freed: `info()` finishes it), the second invalidation frees them at once.
    expect(s.info().entries).toBe(2);
    s.invalidate(['layout']);
    expect(s.size).toBe(0);
  });

  test('info() finishes the freeing; clear() ends it', async () => {
    const s = new MemoryStore();
    for (let i = 0; i < 5000; i++) s.set(`k:/p${i}`, entry(`/p${i}`, 0), limits);
    s.set('k:/plain', entry('/plain', 0, ['/plain']), limits);
    s.invalidate(['layout']);
    expect(s.info()).toMatchObject({ entries: 1 });
    expect(s.size).toBe(1);
    for (let i = 0; i < 5000; i++) s.set(`k:/q${i}`, entry(`/q${i}`, s.sequence()), limits);
    s.invalidate(['layout']);
    s.clear();
    const seq = s.sequence();
    for (let i = 0; i < 3; i++) s.set(`k:/q${i}`, entry(`/q${i}`, seq), limits);
    await turn();
    await turn();
    expect(s.size).toBe(3);
    for (let i = 0; i < 3; i++) expect(s.get(`k:/q${i}`)).toBeDefined();
  });
});

definedIf(hasRedis, describe)('RedisStore: a tag on many entries', () => {
  test('they are freed after the invalidation, all but those stored again since, and the sets queued go', async () => {
    const p = `pdtest:lazy:${randomUUID().slice(0, 8)}:`;
    const store = new RedisStore({ url: 'redis://127.0.0.1:6379', prefix: p, commandTimeout: 5000 });
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      const seq0 = await store.sequence();
      for (let from = 0; from < 3000; from += 250) {
        await Promise.all(Array.from({ length: 250 }, (_, i) => store.set(`k:/p${from + i}`, entry(`/p${from + i}`, seq0), limits)));
      }
      await store.set('k:/plain', entry('/plain', seq0, ['/plain']), limits);
      const seq = await store.invalidate(['layout']);
      // Stored again at once, while the freeing runs: valid, and kept.
      expect(await store.set('k:/p7', entry('/p7', seq), limits)).toBe(true);
      expect(await store.set('k:/p2999', entry('/p2999', seq), limits)).toBe(true);
      const left = async () => (await redis.keys(`{${p}}e:*`)).sort();
      await until(async () => (await left()).length === 3);
      expect(await left()).toEqual([`{${p}}e:k:/p2999`, `{${p}}e:k:/p7`, `{${p}}e:k:/plain`]);
      await until(async () => (await redis.llen(`{${p}}rq`)) === 0);
      expect(await redis.keys(`{${p}}r:*`)).toEqual([]);
      expect(await store.get('k:/p7')).toBeDefined();
      // The index set of the tag lists what was stored since: a second invalidation frees those.
      expect((await redis.smembers(`{${p}}t:layout`)).sort()).toEqual([`{${p}}e:k:/p2999`, `{${p}}e:k:/p7`]);
      await store.invalidate(['layout']);
      expect(await left()).toEqual([`{${p}}e:k:/plain`]);
    } finally {
      redis.disconnect();
      await store.close();
    }
  }, 60_000);
});

describe('SqliteStore: a tag on many entries, and clear()', () => {
  const file = () => join(mkdtempSync(join(tmpdir(), 'pd-lazy-')), 'pages.sqlite');
  /**
   * A store on a database opened here (WAL), as an app injects it: its background deletes run
   * from a timer of this thread, so none runs before the test's next turn of the event loop (a
   * store that opened its file deletes on its own thread, at any moment).
   */
  const injected = (path: string, options: Database.Options = {}) => {
    const db = new Database(path, options);
    db.pragma('journal_mode = WAL');
    return { db, s: new SqliteStore({ database: db }) };
  };
  const fill = (s: SqliteStore, n: number, seq: number) => {
    for (let i = 0; i < n; i++) s.set(`k:/p${i}`, entry(`/p${i}`, seq), limits);
    s.set('k:/plain', entry('/plain', seq, ['/plain']), limits);
  };

  test('the invalidation deletes none of them in its transaction; they are deleted afterwards, all but those stored again since', async () => {
    const path = file();
    const { db, s } = injected(path);
    try {
      fill(s, 3000, s.sequence());
      const plain = s.entries({ pathPrefix: '/plain' }).entries[0]!.bytes;
      const seq = await s.invalidate(['layout']);
      // Still in the file, invalid: counted by size, not by info(), never read.
      expect(s.size).toBe(3001);
      expect(s.info()).toMatchObject({ entries: 1, bytes: plain });
      expect(s.get('k:/p5')).toBeUndefined();
      // (A promise while the background thread holds the write lock.)
      expect(await s.set('k:/p7', entry('/p7', seq), limits)).toBe(true);
      // Done once the tag's mark is dropped.
      await until(() => s.database.prepare('SELECT count(*) FROM page_dumper_stale').pluck().get() === 0);
      expect(s.size).toBe(2);
      expect(s.info()).toMatchObject({ entries: 2 });
      expect(s.bytes).toBe(s.info().bytes);
      expect(s.get('k:/p7')).toBeDefined();
      // Its index lists what was stored since; invalidated again, that goes (eagerly: one entry).
      s.invalidate(['layout']);
      expect(s.size).toBe(1);
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('1,000 paths in one invalidation (an entry each): marked, none served, the others kept, deleted afterwards', async () => {
    const path = file();
    const { db, s } = injected(path);
    try {
      fill(s, 2000, s.sequence());
      expect(typeof s.invalidate(Array.from({ length: 1000 }, (_, i) => `/p${i * 2}`))).toBe('number');
      expect(s.size).toBe(2001);
      expect(s.info().entries).toBe(1001);
      for (let i = 0; i < 2000; i++) expect(s.get(`k:/p${i}`) === undefined, `k:/p${i}`).toBe(i % 2 === 0);
      await until(() => s.database.prepare('SELECT count(*) FROM page_dumper_stale').pluck().get() === 0);
      expect(s.size).toBe(1001);
      expect(s.get('k:/plain')).toBeDefined();
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('an invalidation that marks nothing starts no background transaction; one made while marks are left resumes their deletion', async () => {
    const path = file();
    const statements: string[] = [];
    const { db, s } = injected(path, { verbose: (sql) => statements.push(String(sql)) });
    try {
      fill(s, 10, s.sequence());
      statements.length = 0;
      s.invalidate(['/p1']);
      await new Promise((r) => setTimeout(r, 20));
      // The invalidation's own transaction, and no other.
      expect(statements.filter((sql) => sql === 'BEGIN IMMEDIATE')).toHaveLength(1);
      expect(s.size).toBe(10);
      // Another process marks a tag on 1,500 entries and stops before deleting them (a store on
      // an injected database deletes on its own event loop, from a timer that has not run yet).
      const { db: otherDb, s: other } = injected(path);
      fill(other, 1500, other.sequence());
      other.invalidate(['layout']);
      other.close();
      otherDb.close();
      expect(s.size).toBe(1501);
      s.invalidate(['/plain']);
      await until(() => s.size === 0);
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test("the background deletes search each marked tag's range of the tag index, once, not the whole index", async () => {
    const path = file();
    const statements: string[] = [];
    const { db, s } = injected(path, { verbose: (sql) => statements.push(String(sql)) });
    try {
      fill(s, 1500, s.sequence());
      // 500 paths, an entry each: marked together (more than 16 entries).
      s.invalidate(Array.from({ length: 500 }, (_, i) => `/p${i * 3}`));
      await until(() => s.size === 1001);
      const deletes = statements.filter((sql) => sql.startsWith("DELETE FROM page_dumper_entries WHERE id IN (SELECT entry FROM page_dumper_entry_tags WHERE tag = '"));
      expect(deletes.length).toBeGreaterThan(0);
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${deletes[0]}`).all() as Array<{ detail: string }>;
      const steps = plan.map((row) => row.detail);
      // A search of the tag index's primary key (tag, entry), one marked tag at a time.
      expect(steps).toContainEqual(expect.stringMatching(/^SEARCH page_dumper_entry_tags USING PRIMARY KEY \(tag=\? AND entry<\?\)$/));
      expect(steps.filter((step) => step.startsWith('SCAN'))).toEqual([]);
      // A tag whose range is empty is unmarked at once: each marked tag is searched in at most two
      // transactions, however many tags were marked together.
      const searched = new Map<string, number>();
      for (const sql of deletes) {
        const tag = /tag = '([^']*)'/.exec(sql)![1]!;
        searched.set(tag, (searched.get(tag) ?? 0) + 1);
      }
      expect(Math.max(...searched.values())).toBeLessThanOrEqual(2);
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('an invalidation reaching 16 entries deletes them in its transaction; one reaching 17 marks them', () => {
    const path = file();
    const { db, s } = injected(path);
    try {
      const seq = s.sequence();
      for (let i = 0; i < 33; i++) s.set(`k:/p${i}`, entry(`/p${i}`, seq, [`/p${i}`, i < 16 ? 'sixteen' : 'seventeen']), limits);
      s.invalidate(['sixteen']);
      expect(s.size).toBe(17);
      expect(db.prepare('SELECT count(*) FROM page_dumper_stale').pluck().get()).toBe(0);
      s.invalidate(['seventeen']);
      // Still in the file until the deletes run (no turn of the event loop yet), none served.
      expect(s.size).toBe(17);
      expect(db.prepare('SELECT tag FROM page_dumper_stale').pluck().all()).toEqual(['seventeen']);
      expect(s.info().entries).toBe(0);
      for (let i = 16; i < 33; i++) expect(s.get(`k:/p${i}`)).toBeUndefined();
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('an invalidation small enough to delete at once, of a tag still marked, reaches the entries stored since the mark', () => {
    const path = file();
    const { db, s } = injected(path);
    try {
      let seq = s.sequence();
      s.set('k:/menu-page', entry('/menu-page', seq, ['/menu-page', 'menu']), limits);
      for (let i = 0; i < 100; i++) s.set(`k:/p${i}`, entry(`/p${i}`, seq, [`/p${i}`, 'layout']), limits);
      // Marked (101 entries), nothing deleted yet: no turn of the event loop.
      seq = s.invalidate(['layout', 'menu']) as number;
      expect(s.set('k:/menu-page', entry('/menu-page', seq, ['/menu-page', 'menu']), limits)).toBe(true);
      expect(s.get('k:/menu-page')).toBeDefined();
      // Small (two rows of 'menu' in the tag index), but 'menu' is marked: its mark moves up.
      s.invalidate(['menu']);
      expect(s.get('k:/menu-page')).toBeUndefined();
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('each reclamation starts with small transactions, whatever the one before grew them to', async () => {
    const path = file();
    let log: string[] | undefined;
    const { db, s } = injected(path, { verbose: (sql) => log?.push(String(sql)) });
    try {
      // A clear() of entries stored together: deleted in transactions grown large.
      let seq = s.sequence();
      db.transaction(() => {
        for (let i = 0; i < 20_000; i++) s.set(`k:/c${i}`, entry(`/c${i}`, seq, [`/c${i}`]), limits);
      })();
      s.clear();
      await until(() => s.size === 0, 20_000);
      seq = s.sequence();
      db.transaction(() => {
        for (let i = 0; i < 4000; i++) s.set(`k:/p${i}`, entry(`/p${i}`, seq, [`/p${i}`]), limits);
      })();
      log = [];
      s.invalidate(Array.from({ length: 1000 }, (_, i) => `/p${i * 4}`));
      await until(() => s.size === 3000);
      // The range deletes of the first background transaction: at most the first slice's 16.
      const first = log.slice(log.indexOf('BEGIN IMMEDIATE', log.indexOf('COMMIT') + 1));
      const deletes = first.slice(0, first.indexOf('COMMIT')).filter((sql) => sql.startsWith('DELETE FROM page_dumper_entries WHERE id IN (SELECT entry'));
      expect(deletes.length).toBeGreaterThan(0);
      expect(deletes.length).toBeLessThanOrEqual(16);
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('a store that opened its file deletes them on its background thread, while this event loop is held', () => {
    const path = file();
    const s = new SqliteStore({ path });
    try {
      fill(s, 1500, s.sequence());
      expect(typeof s.invalidate(['layout'])).toBe('number');
      // No timer of this thread runs from here on: only another thread can delete them.
      const nap = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 20_000 && s.size !== 1; i++) Atomics.wait(nap, 0, 0, 1);
      expect(s.size).toBe(1);
      expect(s.get('k:/plain')).toBeDefined();
    } finally {
      s.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('a process that stops in the middle leaves the rest to the next one that opens the file', async () => {
    const path = file();
    try {
      // A store on an injected database, whose deletes would run from a timer: it closes first.
      const { db, s: a } = injected(path);
      fill(a, 3000, a.sequence());
      a.invalidate(['layout']);
      a.close();
      db.close();
      const b = new SqliteStore({ path });
      expect(b.size).toBe(3001);
      expect(b.get('k:/p1')).toBeUndefined();
      await until(() => b.size === 1);
      b.close();
    } finally {
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });

  test('clear() deletes nothing in its transaction; the entries from before are deleted afterwards, those stored since stay', async () => {
    const path = file();
    const { db, s } = injected(path);
    try {
      fill(s, 3000, s.sequence());
      s.clear();
      expect(s.size).toBe(3001);
      expect(s.info()).toMatchObject({ entries: 0, bytes: 0 });
      expect(s.get('k:/plain')).toBeUndefined();
      expect(s.entries({ limit: 10 }).entries).toEqual([]);
      // (A promise while the background thread holds the write lock.)
      expect(await s.set('k:/p3', entry('/p3', s.sequence()), limits)).toBe(true);
      await until(() => s.size === 1);
      expect(s.get('k:/p3')).toBeDefined();
      expect(s.info()).toMatchObject({ entries: 1, bytes: s.bytes });
    } finally {
      s.close();
      db.close();
      rmSync(join(path, '..'), { recursive: true, force: true });
    }
  });
});
