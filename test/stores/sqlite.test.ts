/**
 * SqliteStore: the store conformance suite and the whole HTTP behaviour suite run against it,
 * then what is its own: the file survives a reopen, several store instances on one file see each
 * other's writes at once, the bounds (bytes, entries, tag points), and loud failures at
 * construction. Every store works on a file of its own under os.tmpdir().
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { createDumper, DumperError, type EncodedBody, type SetOptions, type StoredEntry } from '../../src/index.js';
import type { EntryListOptions } from '../../src/core/store.js';
import { withDumper } from '../../src/http/node/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import { runStoreConformance } from '../../src/testing/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { nodeRequest, writeNode, type Site } from '../support/site.js';

const dir = mkdtempSync(join(tmpdir(), 'page-dumper-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const freshPath = () => join(dir, `store-${++files}.sqlite`);

runStoreConformance({ test, create: () => new SqliteStore({ path: freshPath() }), prefix: 'SqliteStore conformance: ' });

runStoreConformance({
  test,
  // An injected database (in memory, 64-bit integers as BigInt by default) holding two stores,
  // every read from the database.
  create: () => {
    const db = new Database(':memory:');
    db.defaultSafeIntegers(true);
    new SqliteStore({ database: db, tablePrefix: 'other_' }).invalidate(['/a']);
    const store = new SqliteStore({ database: db, tablePrefix: 'cache_', localBytes: 0 });
    return { ...bind(store), close: () => void db.close() };
  },
  prefix: 'SqliteStore conformance (injected database, no local copies): ',
});

/** The store's methods bound to it, as a plain object. */
function bind(s: SqliteStore) {
  return {
    sequence: () => s.sequence(),
    get: (k: string) => s.get(k),
    set: (k: string, e: StoredEntry, o: SetOptions) => s.set(k, e, o),
    invalidate: (t: readonly string[]) => s.invalidate(t),
    clear: () => s.clear(),
    entries: (o?: EntryListOptions) => s.entries(o),
    info: () => s.info(),
  };
}

const plain = (site: Site): http.RequestListener => (req, res) => {
  site.handle(nodeRequest(req)).then((r) => writeNode(res, r));
};

httpBehaviourSuite('withDumper + SqliteStore', (dumper, site) => listen(withDumper(dumper, plain(site))), {
  store: () => new SqliteStore({ path: freshPath() }),
});

const limits = { maxVariantsPerPath: 1000, variant: false };
const entry = (path: string, size: number, seq = 0, tags: string[] = [path]): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new Uint8Array(size),
  etag: '"x"',
  storedAt: 0,
  seq,
  path,
  tags,
});

/** Encoded bodies of the given sizes, each filled with its own byte. */
const encoded = (...sizes: number[]): EncodedBody[] =>
  sizes.map((size, i) => ({ coding: (['br', 'gzip', 'zstd'] as const)[i]!, body: new Uint8Array(size).fill(i + 1) }));
/** The encodings of an entry as plain data. */
const encodingsOf = (e: StoredEntry | undefined) => e?.encodings?.map((x) => [x.coding, [...x.body]]);

/** An entry with its body as a plain array: a fill's Uint8Array and a read's Buffer compare equal. */
const bytesOf = (e: StoredEntry | undefined) => e && { ...e, body: [...e.body] };

/** Rows of one of the store's tables, read through a connection of its own. */
function rows(path: string, table: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], number>(`SELECT count(*) FROM page_dumper_${table}`).pluck().get()!;
  } finally {
    db.close();
  }
}

/** The tables as a store of layout 1 (before variants and anonymousOnly were kept) created them. */
const LAYOUT_1 = `
  CREATE TABLE page_dumper_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, seq INTEGER NOT NULL,
    floor INTEGER NOT NULL, bytes INTEGER NOT NULL, entries INTEGER NOT NULL
  );
  INSERT INTO page_dumper_state (id, version, seq, floor, bytes, entries) VALUES (1, 1, 0, 0, 0, 0);
  CREATE TABLE page_dumper_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    seq INTEGER NOT NULL, status INTEGER NOT NULL, headers TEXT NOT NULL, tags TEXT NOT NULL,
    etag TEXT NOT NULL, stored_at INTEGER NOT NULL, size INTEGER NOT NULL, body BLOB NOT NULL
  );
  CREATE INDEX page_dumper_entries_path ON page_dumper_entries (path);
  CREATE TABLE page_dumper_entry_tags (tag TEXT NOT NULL, entry INTEGER NOT NULL, PRIMARY KEY (tag, entry)) WITHOUT ROWID;
  CREATE INDEX page_dumper_entry_tags_entry ON page_dumper_entry_tags (entry);
  CREATE TABLE page_dumper_tag_points (tag TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TRIGGER page_dumper_entry_added AFTER INSERT ON page_dumper_entries BEGIN
    UPDATE page_dumper_state SET bytes = bytes + new.size, entries = entries + 1 WHERE id = 1;
  END;
  CREATE TRIGGER page_dumper_entry_removed AFTER DELETE ON page_dumper_entries BEGIN
    DELETE FROM page_dumper_entry_tags WHERE entry = old.id;
    UPDATE page_dumper_state SET bytes = bytes - old.size, entries = entries - 1 WHERE id = 1;
  END;
`;

describe('SqliteStore', () => {
  test('entries, invalidation points and the sequence number survive a reopen', async () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const before = a.sequence();
    a.set('k:/a', entry('/a', 10, before), limits);
    const seq = await a.invalidate(['/b']);
    a.close();

    const b = new SqliteStore({ path });
    expect(b.sequence()).toBe(seq);
    expect(b.get('k:/a')?.body.byteLength).toBe(10);
    // The point of /b was kept: a render that started before it may still not be stored.
    expect(b.set('k:/b', entry('/b', 10, before), limits)).toBe(false);
    expect(b.set('k:/b', entry('/b', 10, seq), limits)).toBe(true);
    b.close();
  });

  test('the sequence number never goes back: through invalidations, clears, folds and reopens', async () => {
    const path = freshPath();
    let last = -1;
    for (let round = 0; round < 3; round++) {
      const s = new SqliteStore({ path, maxTrackedTags: 3 });
      // A reopen reads the number where the last writer left it.
      expect(s.sequence()).toBe(round === 0 ? 0 : last);
      for (let i = 0; i < 5; i++) {
        const n = await s.invalidate([`/r${round}-${i}`]);
        expect(n).toBeGreaterThan(last);
        last = n;
      }
      s.clear();
      expect(s.sequence()).toBeGreaterThan(last);
      last = s.sequence();
      s.close();
    }
  });

  test('two stores on one file see each other\'s fills and invalidations at once', async () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const b = new SqliteStore({ path });
    const seq = a.sequence();
    a.set('k:/x', entry('/x', 5, seq, ['/x', 'flavour:1']), limits);
    expect(b.get('k:/x')?.body.byteLength).toBe(5);
    const n = await b.invalidate(['flavour:1']);
    expect(a.sequence()).toBe(n);
    expect(a.get('k:/x')).toBeUndefined();
    // A render that began in A before B's invalidation is refused by A.
    expect(a.set('k:/x', entry('/x', 5, seq, ['/x', 'flavour:1']), limits)).toBe(false);
    a.set('k:/y', entry('/y', 5, n), limits);
    b.clear();
    expect(a.get('k:/y')).toBeUndefined();
    expect(a.set('k:/y', entry('/y', 5, n), limits)).toBe(false);
    a.close();
    b.close();
  });

  test('a hit never writes to the file; a fill does', () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    s.set('k:/a', entry('/a', 100, s.sequence()), limits);
    const watcher = new Database(path);
    // data_version changes when another connection commits to the file.
    const version = () => watcher.pragma('data_version', { simple: true });
    const v0 = version();
    for (let i = 0; i < 50; i++) expect(s.get('k:/a')).toBeDefined();
    expect(version()).toBe(v0);
    s.set('k:/b', entry('/b', 100, s.sequence()), limits);
    expect(version()).not.toBe(v0);
    watcher.close();
    s.close();
  });

  test('a copy kept in this process is served only while its row is still the key\'s row', () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const b = new SqliteStore({ path });
    const body = (n: number) => new Uint8Array([n]);
    a.set('k', { ...entry('/k', 1, a.sequence()), body: body(1) }, limits);
    const first = a.get('k');
    expect(a.get('k')).toBe(first); // the decoded copy, not a new read
    // B deletes the row and stores the key again: the only row, so a reused id would be the same.
    b.invalidate(['/k']);
    expect(a.get('k')).toBeUndefined();
    a.set('k', { ...entry('/k', 1, a.sequence()), body: body(2) }, limits);
    expect([...a.get('k')!.body]).toEqual([2]);
    b.invalidate(['/k']);
    b.set('k', { ...entry('/k', 1, b.sequence()), body: body(3) }, limits);
    expect([...a.get('k')!.body]).toEqual([3]);
    // Replaced without an invalidation (a later fill of the same key): the new row is served.
    b.set('k', { ...entry('/k', 1, b.sequence()), body: body(4) }, limits);
    expect([...a.get('k')!.body]).toEqual([4]);
    b.clear();
    expect(a.get('k')).toBeUndefined();
    a.close();
    b.close();
  });

  test('a key read from the file is kept as a copy at its second read only, so reads spread over many keys leave the copies alone', () => {
    const path = freshPath();
    // Remembers 64 keys read once (one per 2 KiB of localBytes).
    const a = new SqliteStore({ path, localBytes: 64 * 2048 });
    const b = new SqliteStore({ path, localBytes: 0 });
    for (let i = 0; i < 200; i++) b.set(`k${i}`, entry(`/p/${i}`, 100, b.sequence()), limits);
    const first = a.get('k0');
    const second = a.get('k0');
    expect(second).not.toBe(first);
    expect(a.get('k0')).toBe(second); // the copy
    // 199 other keys read once each: none is kept, and k0's copy stays.
    for (let i = 1; i < 200; i++) expect(a.get(`k${i}`)).toBeDefined();
    expect(a.get('k0')).toBe(second);
    // A key read once among the last 64 is kept at its next read; one read before them is not.
    const recent = a.get('k199');
    expect(recent).toBe(a.get('k199'));
    const old = a.get('k1');
    expect(old).not.toBe(a.get('k1'));
    // Copies are still checked against the file: another process's invalidation and new fill.
    b.invalidate(['/p/0']);
    expect(a.get('k0')).toBeUndefined();
    b.set('k199', { ...entry('/p/199', 100, b.sequence()), body: new Uint8Array([9]) }, limits);
    expect([...a.get('k199')!.body]).toEqual([9]);
    a.close();
    b.close();
  });

  test('a hit is one statement: the row with its id when there is no copy, the id alone when there is', () => {
    const statements: string[] = [];
    const path = freshPath();
    const db = new Database(path, { verbose: (sql) => statements.push(String(sql)) });
    db.pragma('journal_mode = WAL');
    const s = new SqliteStore({ database: db });
    const other = new SqliteStore({ path, localBytes: 0 });
    other.set('k', entry('/k', 100, other.sequence()), limits);
    const during = (fn: () => unknown) => {
      statements.length = 0;
      expect(fn()).toBeDefined();
      return statements.map((sql) => (/^SELECT id FROM /.test(sql) ? 'id' : /^SELECT id, anonymous_only/.test(sql) ? 'row' : sql));
    };
    expect(during(() => s.get('k'))).toEqual(['row']); // first read: not kept
    expect(during(() => s.get('k'))).toEqual(['row']); // second: kept
    expect(during(() => s.get('k'))).toEqual(['id']); // the copy, checked
    // Replaced by another process: the id differs, the new row is read and kept at once.
    other.set('k', entry('/k', 100, other.sequence()), limits);
    expect(during(() => s.get('k'))).toEqual(['id', 'row']);
    expect(during(() => s.get('k'))).toEqual(['id']);
    other.close();
    db.close();
  });

  test('local copies are bounded by localBytes, and off with 0', () => {
    const path = freshPath();
    // Room for one copy of a 2,000-byte page with its overhead, not for two.
    const one = new SqliteStore({ path, localBytes: 4000 });
    one.set('a', entry('/a', 2000), limits);
    one.set('b', entry('/b', 2000), limits);
    const b = one.get('b');
    expect(one.get('b')).toBe(b);
    const once = one.get('a'); // read from the file, its first read: no copy is kept
    const a = one.get('a'); // its second: kept, and its copy pushes out b's
    expect(a).not.toBe(once);
    expect(one.get('a')).toBe(a);
    expect(one.get('b')).not.toBe(b);
    expect(bytesOf(one.get('b'))).toEqual(bytesOf(b));
    const off = new SqliteStore({ path, localBytes: 0 });
    expect(off.get('a')).not.toBe(off.get('a'));
    expect(bytesOf(off.get('a'))).toEqual(bytesOf(a));
    one.close();
    off.close();
  });

  test('invalidations and clear() commit synced to disk; fills and hits do not wait for it', () => {
    const statements: string[] = [];
    const db = new Database(freshPath(), { verbose: (sql) => statements.push(String(sql)) });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // The level in effect after each PRAGMA synchronous the store runs, however it runs it: SQLite
    // applies a pragma when it compiles it, so a prepared one does nothing at its first run.
    const levels: unknown[] = [];
    const level = (sql: string) => sql.startsWith('PRAGMA synchronous =') && levels.push(db.pragma('synchronous', { simple: true }));
    const exec = db.exec.bind(db);
    db.exec = (sql: string) => {
      const out = exec(sql);
      level(sql);
      return out;
    };
    const statementProto = Object.getPrototypeOf(db.prepare('SELECT 1')) as { run: (...args: unknown[]) => unknown };
    const run = statementProto.run;
    statementProto.run = function (this: { source: string }, ...args: unknown[]) {
      const out = run.apply(this, args);
      level(this.source);
      return out;
    };
    onTestFinished(() => {
      statementProto.run = run;
    });
    const s = new SqliteStore({ database: db });
    const during = (fn: () => unknown) => {
      statements.length = 0;
      fn();
      // (Around each write, the busy timeout is set to 0 and back: see the write-lock tests.)
      return statements.filter((sql) => sql.startsWith('PRAGMA synchronous =') || sql === 'BEGIN IMMEDIATE' || sql === 'COMMIT');
    };
    const durable = ['PRAGMA synchronous = 2', 'BEGIN IMMEDIATE', 'COMMIT', 'PRAGMA synchronous = 1'];
    expect(during(() => s.invalidate(['/a']))).toEqual(durable);
    expect(during(() => s.clear())).toEqual(durable);
    // FULL while the transaction ran, the first time too; NORMAL again after.
    expect(levels).toEqual([2, 1, 2, 1]);
    expect(during(() => s.set('k', entry('/a', 1, s.sequence()), limits))).toEqual(['BEGIN IMMEDIATE', 'COMMIT']);
    expect(during(() => s.get('k'))).toEqual([]);
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    db.close();
  });

  test("an injected database: the app's write and the invalidation commit together, or not at all", () => {
    const db = new Database(freshPath());
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE flavour (id INTEGER PRIMARY KEY, name TEXT)');
    db.exec("INSERT INTO flavour VALUES (1, 'vanilla')");
    const s = new SqliteStore({ database: db });
    s.set('k:/f/1', entry('/f/1', s.sequence()), limits);
    const rename = db.transaction((name: string, fail: boolean) => {
      db.prepare('UPDATE flavour SET name = ? WHERE id = 1').run(name);
      s.invalidate(['/f/1']);
      if (fail) throw new Error('rolled back');
    });
    expect(() => rename('mint', true)).toThrow('rolled back');
    expect(s.get('k:/f/1')).toBeDefined();
    rename('mint', false);
    expect(s.get('k:/f/1')).toBeUndefined();
    expect(db.prepare('SELECT name FROM flavour').pluck().get()).toBe('mint');
    db.close();
  });

  test('an entry stored in a transaction that rolls back is never served from a local copy', () => {
    const path = freshPath();
    const db = new Database(path);
    const a = new SqliteStore({ database: db });
    const b = new SqliteStore({ path });
    const fill = db.transaction(() => {
      a.set('k', { ...entry('/k', 1, a.sequence()), body: new Uint8Array([1]) }, limits);
      throw new Error('rolled back');
    });
    expect(fill).toThrow('rolled back');
    // The rolled-back row's id is given again to the next row.
    b.set('k', { ...entry('/k', 1, b.sequence()), body: new Uint8Array([2]) }, limits);
    expect([...a.get('k')!.body]).toEqual([2]);
    b.close();
    db.close();
  });

  test('is bounded by bytes and evicts the entry stored first (a hit does not keep it)', () => {
    const s = new SqliteStore({ path: freshPath(), maxBytes: 11_000 });
    s.set('a', entry('/a', 3000), limits);
    s.set('b', entry('/b', 3000), limits);
    s.set('c', entry('/c', 3000), limits);
    expect(s.size).toBe(3);
    s.get('a');
    s.set('d', entry('/d', 3000), limits);
    expect(s.get('a')).toBeUndefined();
    expect(s.get('b')).toBeDefined();
    expect(s.get('d')).toBeDefined();
    expect(s.size).toBe(3);
    expect(s.bytes).toBeLessThanOrEqual(11_000);
    // Storing a key again makes it the newest.
    s.set('b', entry('/b', 3000), limits);
    s.set('e', entry('/e', 3000), limits);
    expect(s.get('c')).toBeUndefined();
    expect(s.get('b')).toBeDefined();
    s.close();
  });

  test('one variant more evicts the variant stored first: a hit does not keep it', () => {
    const s = new SqliteStore({ path: freshPath() });
    const two: SetOptions = { maxVariantsPerPath: 2, variant: true };
    s.set('k:/v?1', entry('/v', 10), two);
    s.set('k:/v?2', entry('/v', 10), two);
    expect(s.get('k:/v?1')).toBeDefined();
    expect(s.set('k:/v?3', entry('/v', 10), two)).toBe(true);
    expect(s.get('k:/v?1')).toBeUndefined();
    expect(s.get('k:/v?2')).toBeDefined();
    // Storing a variant again makes it the newest.
    s.set('k:/v?2', entry('/v', 10), two);
    s.set('k:/v?4', entry('/v', 10), two);
    expect(s.get('k:/v?3')).toBeUndefined();
    expect(s.get('k:/v?2')).toBeDefined();
    // A smaller bound than before evicts down to it at once.
    for (let i = 5; i < 10; i++) s.set(`k:/v?${i}`, entry('/v', 10), { maxVariantsPerPath: 5, variant: true });
    expect(s.set('k:/v?10', entry('/v', 10), two)).toBe(true);
    expect(['k:/v?8', 'k:/v?9', 'k:/v?10'].map((k) => s.get(k) !== undefined)).toEqual([false, true, true]);
    expect(s.size).toBe(2);
    s.close();
  });

  test('two stores on one file share the bound of the variants of a path', () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const b = new SqliteStore({ path });
    const three: SetOptions = { maxVariantsPerPath: 3, variant: true };
    a.set('k:/v', entry('/v', 10), limits);
    for (let i = 0; i < 10; i++) (i % 2 === 0 ? a : b).set(`k:/v?${i}`, entry('/v', 10), three);
    expect(rows(path, 'entries')).toBe(4);
    expect(b.get('k:/v')).toBeDefined();
    expect([7, 8, 9].every((i) => a.get(`k:/v?${i}`) !== undefined)).toBe(true);
    a.close();
    b.close();
  });

  test('encodings are kept in the file: another store, with no copy of its own, reads them', () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    a.set('k:/enc', { ...entry('/enc', 3), encodings: encoded(700, 20, 1) }, limits);
    a.close();
    const b = new SqliteStore({ path, localBytes: 0 });
    expect(encodingsOf(b.get('k:/enc'))).toEqual(encodingsOf({ ...entry('/enc', 3), encodings: encoded(700, 20, 1) }));
    b.close();
  });

  test("a copy without encodings in one process: another's set of the entry with them is served", () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const b = new SqliteStore({ path });
    const e = entry('/k', 100, a.sequence());
    a.set('k', e, limits);
    const copy = a.get('k');
    expect(a.get('k')).toBe(copy); // served from the copy
    expect(copy?.encodings).toBeUndefined();
    expect(b.set('k', { ...e, encodings: encoded(50, 60) }, limits)).toBe(true);
    const fresh = a.get('k');
    expect(encodingsOf(fresh)).toEqual(encodingsOf({ ...e, encodings: encoded(50, 60) }));
    expect(a.get('k')).toBe(fresh); // and kept as the new copy
    a.close();
    b.close();
  });

  test('encodings count toward maxBytes and localBytes; the same entry set again with them is counted once', () => {
    const path = freshPath();
    const s = new SqliteStore({ path, maxBytes: 16_000, localBytes: 8000 });
    const e = entry('/a', 3000);
    s.set('a', e, limits);
    const plain = s.bytes;
    s.set('a', { ...e, encodings: encoded(2000, 1000) }, limits);
    // Their bytes, and the few bytes that name them.
    expect(s.bytes - plain).toBeGreaterThanOrEqual(3000);
    expect(s.bytes - plain).toBeLessThan(3100);
    const withThem = s.bytes;
    s.set('a', { ...e, encodings: encoded(2000, 1000) }, limits);
    expect(s.bytes).toBe(withThem);
    expect(s.size).toBe(1);
    // Three entries of 3,000 bytes fit in 16,000, three with 3,000 bytes of encodings more do not:
    // the one stored first goes.
    s.set('b', { ...entry('/b', 3000), encodings: encoded(2000, 1000) }, limits);
    s.set('c', { ...entry('/c', 3000), encodings: encoded(2000, 1000) }, limits);
    expect(s.get('a')).toBeUndefined();
    expect(s.size).toBe(2);
    expect(s.bytes).toBe(2 * withThem);
    // The copy of an entry with encodings (6,000 bytes of bodies) is kept within localBytes...
    s.get('b'); // (its first read: no copy yet, see localBytes)
    expect(s.get('b')).toBe(s.get('b'));
    // ... and one with 9,000 is not: every read decodes the row again.
    s.set('d', { ...entry('/d', 3000), encodings: encoded(5000, 1000) }, limits);
    expect(s.get('d')).not.toBe(s.get('d'));
    expect(encodingsOf(s.get('d'))).toEqual(encodingsOf({ ...entry('/d', 3000), encodings: encoded(5000, 1000) }));
    // Invalidated: the rows go with their encodings.
    s.invalidate(['/b', '/c', '/d']);
    expect(s.size).toBe(0);
    expect(s.bytes).toBe(0);
    s.close();
  });

  test('anonymousOnly is kept in the file: another store, with no copy of its own, reads it', () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    a.set('k:/anon', { ...entry('/anon', 3), anonymousOnly: true }, limits);
    a.set('k:/all', entry('/all', 3), limits);
    a.close();
    const b = new SqliteStore({ path, localBytes: 0 });
    expect(b.get('k:/anon')?.anonymousOnly).toBe(true);
    expect(b.get('k:/all')).toBeDefined();
    expect(b.get('k:/all')?.anonymousOnly).toBeUndefined();
    b.close();
  });

  test('is bounded by the number of entries', () => {
    const path = freshPath();
    const s = new SqliteStore({ path, maxEntries: 5 });
    for (let i = 0; i < 20; i++) s.set(`k${i}`, entry(`/p${i}`, 10, 0, [`/p${i}`, 'all']), limits);
    expect(s.size).toBe(5);
    expect(s.get('k14')).toBeUndefined();
    expect(s.get('k15')).toBeDefined();
    // The evicted entries' tag rows went with them.
    expect(rows(path, 'entry_tags')).toBe(10);
    s.close();
  });

  test('refuses an entry larger than the whole store', () => {
    const s = new SqliteStore({ path: freshPath(), maxBytes: 1000 });
    expect(s.set('a', entry('/a', 5000), limits)).toBe(false);
    expect(s.size).toBe(0);
    s.close();
  });

  test('frees invalidated entries and their tag rows at once (16 of them at most)', () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    for (let i = 0; i < 16; i++) s.set(`k${i}`, entry('/p', 10, 0, ['/p', `t${i}`]), limits);
    s.set('other', entry('/q', 10), limits);
    expect(s.size).toBe(17);
    s.invalidate(['/p']);
    expect(s.size).toBe(1);
    expect(rows(path, 'entries')).toBe(1);
    expect(rows(path, 'entry_tags')).toBe(1);
    s.invalidate(['/q']);
    expect(s.bytes).toBe(0);
    s.close();
  });

  test('more than 1,000 tags are invalidated 1,000 per transaction, one per turn, each with a sequence number of its own', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path, maxTrackedTags: 100_000 });
    try {
      const before = s.sequence();
      for (let i = 0; i < 2500; i += 100) s.set(`k:/p${i}`, entry(`/p${i}`, 10, before), limits);
      const tags = Array.from({ length: 2500 }, (_, i) => `/p${i}`);
      let turns = 0;
      const counting = setInterval(() => turns++, 0);
      const done = s.invalidate(tags);
      expect(done).toBeInstanceOf(Promise);
      const seq = await done;
      clearInterval(counting);
      expect(seq).toBe(before + 3);
      expect(s.sequence()).toBe(seq);
      // The event loop turned between the transactions.
      expect(turns).toBeGreaterThan(0);
      for (let i = 0; i < 2500; i += 100) expect(s.get(`k:/p${i}`)).toBeUndefined();
      // A render that began before the call is refused for a tag of any chunk, the last included.
      expect(s.set('k:/p2499', entry('/p2499', 10, before), limits)).toBe(false);
      expect(s.set('k:/p10', entry('/p10', 10, before), limits)).toBe(false);
      // One that began after the first chunk committed is not, for that chunk's tags.
      expect(s.set('k:/p10', entry('/p10', 10, before + 1), limits)).toBe(true);
      expect(s.set('k:/p2499', entry('/p2499', 10, seq), limits)).toBe(true);
    } finally {
      s.close();
    }
  });

  test('close() right after an invalidation of more than 1,000 tags makes all of them', async () => {
    const path = freshPath();
    const a = new SqliteStore({ path });
    const seq = a.sequence();
    for (let i = 0; i < 2500; i++) a.set(`k:/p${i}`, entry(`/p${i}`, 10, seq), limits);
    const tags = Array.from({ length: 2500 }, (_, i) => `/p${i}`);
    const done = a.invalidate(tags);
    // A shutdown while it is in flight (the dumper's close() closes the store).
    a.close();
    expect(await done).toBeGreaterThan(seq);
    const b = new SqliteStore({ path });
    try {
      expect(tags.filter((t) => b.get(`k:${t}`) !== undefined)).toEqual([]);
    } finally {
      b.close();
    }
  });

  test('folds old invalidation points into a floor: a bounded table, still no stale fill', () => {
    const path = freshPath();
    const s = new SqliteStore({ path, maxTrackedTags: 10 });
    const before = s.sequence();
    for (let i = 0; i < 50; i++) s.invalidate([`/t${i}`]);
    expect(rows(path, 'tag_points')).toBeLessThanOrEqual(10);
    // The record of /t0's invalidation is gone, but a fill that started before it is still refused.
    expect(s.set('k', entry('/t0', 10, before), limits)).toBe(false);
    expect(s.set('k', entry('/t0', 10, s.sequence()), limits)).toBe(true);
    // One invalidation of more tags than the bound folds at once.
    const during = s.sequence();
    s.invalidate(Array.from({ length: 25 }, (_, i) => `/u${i}`));
    expect(rows(path, 'tag_points')).toBe(0);
    expect(s.set('k2', entry('/u3', 10, during), limits)).toBe(false);
    s.close();
  });

  test('tables under another prefix in the same file are another store', () => {
    const path = freshPath();
    const a = new SqliteStore({ path, tablePrefix: 'site_a_' });
    const b = new SqliteStore({ path, tablePrefix: 'site_b_' });
    a.set('k', entry('/x', 1), limits);
    b.set('k', entry('/x', 2), limits);
    a.invalidate(['/x']);
    expect(a.get('k')).toBeUndefined();
    expect(b.get('k')?.body.byteLength).toBe(2);
    a.close();
    b.close();
  });

  test('label: "SqliteStore" and the absolute path of the file, ":memory:", or the name an injected database was opened with', () => {
    const path = freshPath();
    const own = new SqliteStore({ path: relative(process.cwd(), path) });
    expect(own.label).toBe(`SqliteStore ${path}`);
    own.close();
    const memory = new SqliteStore({ path: ':memory:' });
    expect(memory.label).toBe('SqliteStore :memory:');
    memory.close();
    const db = new Database(path);
    expect(new SqliteStore({ database: db }).label).toBe(`SqliteStore ${path}`);
    db.close();
    const inMemory = new Database(':memory:');
    expect(new SqliteStore({ database: inMemory }).label).toBe('SqliteStore :memory:');
    inMemory.close();
  });

  test('close() closes a database it opened, and only that one', () => {
    const ownPath = freshPath();
    const own = new SqliteStore({ path: ownPath });
    own.close();
    expect(own.database.open).toBe(false);
    expect(() => own.get('k')).toThrow(`page-dumper: SqliteStore ${ownPath} is closed`);
    const db = new Database(freshPath());
    const injected = new SqliteStore({ database: db });
    injected.set('k', entry('/x', 1), limits);
    injected.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT count(*) FROM page_dumper_entries').pluck().get()).toBe(1);
    db.close();
  });

  test('while another connection holds the write lock, hits are served and a fill fails open after busyTimeout', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path, busyTimeout: 50 });
    const dumper = createDumper({ store, logger: false });
    let renders = 0;
    const site = await listen(withDumper(dumper, (_req, res) => res.end(`render ${++renders}`)));
    const get = async (p: string) => {
      const r = await fetch(site.url + p);
      return { status: r.status, cache: r.headers.get('x-cache'), body: await r.text() };
    };
    try {
      await get('/cached');
      expect((await get('/cached')).cache).toBe('HIT');
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      try {
        expect(await get('/cached')).toMatchObject({ status: 200, cache: 'HIT', body: 'render 1' });
        // The fill cannot take the lock: the page is still answered by the app.
        expect(await get('/new')).toMatchObject({ status: 200, body: 'render 2' });
        // Tried again from a timer, the event loop free meanwhile, until busyTimeout has passed.
        const fill = store.set('k', entry('/k', 1, store.sequence()), limits);
        expect(fill).toBeInstanceOf(Promise);
        await expect(fill).rejects.toThrow(/locked|busy/i);
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
    } finally {
      await site.close();
      await dumper.close();
    }
  });

  test('a store failure the dumper logs names the file', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path, busyTimeout: 0 });
    const errors: string[] = [];
    const dumper = createDumper({ store, logger: { debug() {}, warn() {}, error: (m: string) => void errors.push(m) } });
    const site = await listen(withDumper(dumper, (_req, res) => res.end('page')));
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      expect(await (await fetch(`${site.url}/new`)).text()).toBe('page');
    } finally {
      other.exec('ROLLBACK');
      other.close();
      await site.close();
      await dumper.close();
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`SqliteStore ${path}: database is locked`);
  });

  describe('a write that finds the write lock taken by another process', () => {
    /** Another connection to the file, holding its write lock until `release()`. */
    const holdLock = (path: string) => {
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      return {
        release() {
          other.exec('ROLLBACK');
          other.close();
        },
      };
    };
    /** Resolves after a few turns of the event loop: what a blocked loop could not do. */
    const turns = async (n = 5) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 1));
    };

    test('answers with a promise and leaves the event loop free; it is written once the lock is free, in the order asked', async () => {
      const path = freshPath();
      const store = new SqliteStore({ path });
      try {
        const seq = store.sequence();
        expect(store.set('k:/kept', entry('/kept', 3, seq, ['/kept', 'menu']), limits)).toBe(true);
        const lock = holdLock(path);
        let fill: boolean | Promise<boolean>;
        let invalidation: number | Promise<number>;
        let late: boolean | Promise<boolean>;
        try {
          fill = store.set('k:/new', entry('/new', 4, seq, ['/new', 'menu']), limits);
          invalidation = store.invalidate(['menu']);
          // Asked after the invalidation, from a render that began before it: refused when written.
          late = store.set('k:/late', entry('/late', 5, seq, ['/late', 'menu']), limits);
          expect(fill).toBeInstanceOf(Promise);
          expect(invalidation).toBeInstanceOf(Promise);
          expect(late).toBeInstanceOf(Promise);
          // Timers run and hits are answered meanwhile: nothing waits in this thread.
          await turns();
          expect(store.get('k:/kept')?.body.byteLength).toBe(3);
          expect(store.get('k:/new')).toBeUndefined();
        } finally {
          lock.release();
        }
        expect(await fill).toBe(true);
        expect(await invalidation).toBeGreaterThan(seq);
        expect(await late).toBe(false);
        // The fill was written, then the invalidation removed it with the page stored before.
        expect(store.get('k:/new')).toBeUndefined();
        expect(store.get('k:/kept')).toBeUndefined();
        expect(store.size).toBe(0);
        // With the lock free again, the next write answers at once.
        expect(store.set('k:/after', entry('/after', 1, store.sequence()), limits)).toBe(true);
      } finally {
        store.close();
      }
    });

    test('fails with SQLITE_BUSY after busyTimeout, at once with busyTimeout 0; a later write still goes through', async () => {
      const path = freshPath();
      const waiting = new SqliteStore({ path, busyTimeout: 30 });
      const failing = new SqliteStore({ path, busyTimeout: 0 });
      try {
        const lock = holdLock(path);
        try {
          expect(() => failing.set('k:/a', entry('/a', 1, failing.sequence()), limits)).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
          const invalidation = waiting.invalidate(['/a']);
          await expect(invalidation).rejects.toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
        } finally {
          lock.release();
        }
        expect(typeof waiting.invalidate(['/a'])).toBe('number');
      } finally {
        waiting.close();
        failing.close();
      }
    });

    test('fills wait up to a bound, then are refused at once; invalidations always wait', async () => {
      const path = freshPath();
      const store = new SqliteStore({ path });
      try {
        const seq = store.sequence();
        const lock = holdLock(path);
        const fills: Array<boolean | Promise<boolean>> = [];
        let invalidation: number | Promise<number>;
        try {
          for (let i = 0; i < 300; i++) fills.push(store.set(`k:/p${i}`, entry(`/p${i}`, 1, seq), limits));
          invalidation = store.invalidate(['/p0']);
        } finally {
          lock.release();
        }
        expect(fills.slice(0, 256).every((f) => f instanceof Promise)).toBe(true);
        expect(fills.slice(256)).toEqual(Array(44).fill(false));
        expect(await Promise.all(fills.slice(0, 256))).toEqual(Array(256).fill(true));
        expect(await invalidation).toBeGreaterThan(seq);
        expect(store.size).toBe(255);
      } finally {
        store.close();
      }
    });

    test('the background deletes of a lazy invalidation wait for the lock without giving up', async () => {
      // On an injected database they run on this event loop (a store that opened its file runs
      // them on its background thread, whose connection never waits for the lock either).
      const path = freshPath();
      const db = new Database(path, { timeout: 20 });
      db.pragma('journal_mode = WAL');
      const store = new SqliteStore({ database: db, localBytes: 0 });
      try {
        const seq = store.sequence();
        for (let i = 0; i < 1500; i++) store.set(`k:/p${i}`, entry(`/p${i}`, 1, seq, [`/p${i}`, 'layout']), limits);
        // Made lazy (more than 16 entries): the deletes run afterwards, from a timer, and find
        // the lock taken (in this same turn) for far longer than the timeout.
        expect(typeof store.invalidate(['layout'])).toBe('number');
        const lock = holdLock(path);
        try {
          expect(store.size).toBe(1500);
          await new Promise((r) => setTimeout(r, 100));
          expect(store.size).toBe(1500);
        } finally {
          lock.release();
        }
        for (let i = 0; i < 3000 && store.size !== 0; i++) await new Promise((r) => setTimeout(r, 1));
        expect(store.size).toBe(0);
      } finally {
        store.close();
        db.close();
      }
    });
  });

  describe('the write lock: an injected database, close(), another journal mode', () => {
    /** A process that takes the file's write lock, answers once it holds it, and releases it after `ms`. */
    const lockFor = async (path: string, ms: number) => {
      const child = spawn(
        process.execPath,
        [
          '-e',
          `const D = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))}); const db = new D(${JSON.stringify(path)}); db.exec('BEGIN IMMEDIATE'); process.stdout.write('locked'); setTimeout(() => { db.exec('ROLLBACK'); db.close(); }, ${ms});`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await new Promise((resolve) => child.stdout!.once('data', resolve));
      return { exited };
    };

    test("an injected database keeps its own busy timeout, and a write waits as long as it says", async () => {
      const path = freshPath();
      const db = new Database(path, { timeout: 4321 });
      db.pragma('journal_mode = WAL');
      db.defaultSafeIntegers(true);
      const s = new SqliteStore({ database: db });
      try {
        expect(db.pragma('busy_timeout', { simple: true })).toBe(4321n);
        s.set('k:/a', entry('/a', 1, s.sequence()), limits);
        expect(db.pragma('busy_timeout', { simple: true })).toBe(4321n);
        const other = new Database(path);
        other.exec('BEGIN IMMEDIATE');
        let fill: boolean | Promise<boolean>;
        try {
          fill = s.set('k:/b', entry('/b', 1, s.sequence()), limits);
          expect(fill).toBeInstanceOf(Promise);
          await new Promise((r) => setTimeout(r, 20));
        } finally {
          other.exec('ROLLBACK');
          other.close();
        }
        expect(await fill).toBe(true);
        expect(db.pragma('busy_timeout', { simple: true })).toBe(4321n);
      } finally {
        s.close();
        db.close();
      }
    });

    test('close() writes the invalidations still waiting, waiting for the lock in its thread; the fills are dropped', async () => {
      const path = freshPath();
      const s = new SqliteStore({ path });
      s.set('k:/page', entry('/page', 10, s.sequence(), ['/page', 'menu']), limits);
      const { exited } = await lockFor(path, 150);
      const invalidation = s.invalidate(['menu']);
      const fill = s.set('k:/other', entry('/other', 10, s.sequence()), limits);
      expect(invalidation).toBeInstanceOf(Promise);
      s.close();
      expect(await invalidation).toBeGreaterThan(0);
      expect(await fill).toBe(false);
      await exited;
      const after = new SqliteStore({ path });
      expect(after.get('k:/page')).toBeUndefined();
      expect(after.size).toBe(0);
      after.close();
    });

    test('close() after the app closed its injected database fails the writes still waiting', async () => {
      const path = freshPath();
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      const s = new SqliteStore({ database: db });
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      try {
        const invalidation = s.invalidate(['/a']);
        const fill = s.set('k:/b', entry('/b', 1, s.sequence()), limits);
        const failed = expect(invalidation).rejects.toThrow(`page-dumper: SqliteStore ${db.name} was closed before the write lock was free`);
        db.close();
        s.close();
        await failed;
        expect(await fill).toBe(false);
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
    });

    test("a write waiting while the app's own transaction stays open fails once its time is up", async () => {
      const path = freshPath();
      const db = new Database(path, { timeout: 30 });
      db.pragma('journal_mode = WAL');
      const s = new SqliteStore({ database: db });
      try {
        const other = new Database(path);
        other.exec('BEGIN IMMEDIATE');
        const invalidation = s.invalidate(['/a']);
        expect(invalidation).toBeInstanceOf(Promise);
        // The app opens a transaction on the same connection, and keeps it open across awaits.
        db.exec('BEGIN');
        other.exec('ROLLBACK');
        other.close();
        await expect(invalidation).rejects.toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
        db.exec('ROLLBACK');
        expect(typeof s.invalidate(['/a'])).toBe('number');
      } finally {
        s.close();
        db.close();
      }
    });

    test("a file not in WAL mode keeps SQLite's own wait: the write waits in the thread, and answers at once", async () => {
      const path = freshPath();
      const db = new Database(path, { timeout: 5000 });
      db.pragma('journal_mode = DELETE');
      const s = new SqliteStore({ database: db });
      try {
        const { exited } = await lockFor(path, 100);
        // (In rollback-journal mode a commit that found a reader must keep the lock it holds to
        // get through, which giving up and trying again from a timer would lose.)
        expect(s.set('k:/a', entry('/a', 1, s.sequence()), limits)).toBe(true);
        await exited;
      } finally {
        s.close();
        db.close();
      }
    });
  });

  test('checkpoints run on a thread of their own, and the WAL a burst of writes grew is reused, not cut in a commit', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    try {
      expect(store.database.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      store.set('first', entry('/first', 10), limits);
      // SQLite's own checkpoint, in a commit, is left as a backstop past 64 MiB of WAL.
      expect(store.database.pragma('wal_autocheckpoint', { simple: true })).toBe(16384);
      // 32 MiB of bodies, a transaction each: about 46 MiB of WAL, faster than the checkpointer.
      for (let i = 0; i < 512; i++) store.set(`k${i}`, entry(`/k${i}`, 65536), limits);
      store.set('last', entry('/last', 10), limits);
      const walPath = `${path}-wal`;
      const grown = statSync(walPath).size;
      expect(grown).toBeGreaterThan(32 * 2 ** 20);
      // The WAL starts over (new salts in its header) in the first commit after the checkpointer
      // has copied all of it into the file.
      const salts = () => {
        const fd = openSync(walPath, 'r');
        try {
          const header = Buffer.alloc(8);
          readSync(fd, header, 0, 8, 16);
          return header.toString('hex');
        } finally {
          closeSync(fd);
        }
      };
      const before = salts();
      for (let waited = 0; salts() === before; waited += 20) {
        if (waited > 30_000) throw new Error('the WAL never started over');
        await new Promise((r) => setTimeout(r, 20));
        store.set('last', entry('/last', 10), limits);
      }
      // Not cut in that commit (a cut waits for the file system, on the event loop): reused from
      // its start, so the next burst fits in the same file.
      const kept = statSync(walPath).size;
      expect(kept).toBeGreaterThanOrEqual(grown);
      for (let i = 0; i < 256; i++) store.set(`j${i}`, entry(`/j${i}`, 65536), limits);
      expect(statSync(walPath).size).toBe(kept);
      expect(store.get('k511')?.body.byteLength).toBe(65536);
      expect(store.get('j255')?.body.byteLength).toBe(65536);
      expect(store.size).toBe(770);
    } finally {
      store.close();
    }
  });

  test('a WAL that grew past 128 MiB is cut back when it starts over', async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    const walPath = `${path}-wal`;
    // A reader in the middle of a transaction keeps the WAL from starting over, and from being
    // copied past its snapshot: 96 MiB of bodies then take about 140 MiB of WAL.
    const reader = new Database(path, { readonly: true });
    try {
      store.set('first', entry('/first', 10), limits);
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM page_dumper_entries').get();
      for (let i = 0; i < 1536; i++) store.set(`k${i}`, entry(`/k${i}`, 65536), limits);
      expect(statSync(walPath).size).toBeGreaterThan(128 * 2 ** 20);
      reader.exec('COMMIT');
      for (let waited = 0; statSync(walPath).size > 128 * 2 ** 20; waited += 20) {
        if (waited > 60_000) throw new Error(`the WAL is still ${statSync(walPath).size} bytes`);
        await new Promise((r) => setTimeout(r, 20));
        store.set('last', entry('/last', 10), limits);
      }
      // Cut to the limit, not below it.
      expect(statSync(walPath).size).toBe(128 * 2 ** 20);
      expect(store.get('k1535')?.body.byteLength).toBe(65536);
    } finally {
      reader.close();
      store.close();
    }
  });

  test('validates its options', () => {
    const path = freshPath();
    const bad = (options: unknown) => () => new SqliteStore(options as never);
    expect(bad(undefined)).toThrow(new TypeError('page-dumper: SqliteStore options must be an object with a "path" or a "database"'));
    expect(bad({})).toThrow(
      new TypeError('page-dumper: SqliteStore needs a "path" (a database file, created if missing) or a "database" (an open better-sqlite3 Database)'),
    );
    expect(bad({ path: '' })).toThrow(new TypeError('page-dumper: SqliteStore option "path" must be a non-empty string, got an empty string'));
    expect(bad({ path: 3 })).toThrow(new TypeError('page-dumper: SqliteStore option "path" must be a non-empty string, got number'));
    const db = new Database(':memory:');
    expect(bad({ path, database: db })).toThrow(new TypeError('page-dumper: SqliteStore takes a "path" or a "database", not both'));
    expect(bad({ database: {} })).toThrow(new TypeError('page-dumper: SqliteStore option "database" must be an open better-sqlite3 Database'));
    expect(bad({ database: db, busyTimeout: 10 })).toThrow(
      new TypeError('page-dumper: SqliteStore option "busyTimeout" applies to a "path" only; open the injected database with its own timeout'),
    );
    db.close();
    expect(bad({ database: db })).toThrow(new TypeError('page-dumper: SqliteStore option "database" must be an open better-sqlite3 Database'));
    expect(bad({ path, tablePrefix: 'x; DROP TABLE y' })).toThrow(
      new TypeError('page-dumper: SqliteStore option "tablePrefix" must be letters, digits and "_", not starting with a digit, got "x; DROP TABLE y"'),
    );
    expect(bad({ path, tablePrefix: '1x' })).toThrow(TypeError);
    expect(bad({ path, maxBytes: 0 })).toThrow(new TypeError('page-dumper: SqliteStore option "maxBytes" must be a positive integer, got 0'));
    expect(bad({ path, maxBytes: 1.5 })).toThrow(TypeError);
    expect(bad({ path, maxEntries: -1 })).toThrow(new TypeError('page-dumper: SqliteStore option "maxEntries" must be a positive integer, got -1'));
    expect(bad({ path, maxTrackedTags: '10' })).toThrow(
      new TypeError('page-dumper: SqliteStore option "maxTrackedTags" must be a positive integer, got 10'),
    );
    expect(bad({ path, localBytes: -1 })).toThrow(new TypeError('page-dumper: SqliteStore option "localBytes" must be a non-negative integer, got -1'));
    expect(bad({ path, busyTimeout: -5 })).toThrow(
      new TypeError('page-dumper: SqliteStore option "busyTimeout" must be a non-negative integer (milliseconds), got -5'),
    );
  });

  describe('fails loudly at construction', () => {
    const fails = (make: () => unknown, message: RegExp) => {
      let error: unknown;
      try {
        make();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DumperError);
      expect((error as DumperError).code).toBe('DUMPER_STORE_FAILURE');
      expect((error as DumperError).message).toMatch(/^page-dumper: SqliteStore .+: could not use the database: /);
      expect((error as DumperError).message).toMatch(message);
      expect((error as DumperError).cause).toBeInstanceOf(Error);
    };

    test('on a file that is not a database', () => {
      const path = freshPath();
      writeFileSync(path, 'this is not a database, '.repeat(200));
      fails(() => new SqliteStore({ path }), /file is not a database/);
      // Named by the label: the absolute path of the file.
      fails(() => new SqliteStore({ path: relative(process.cwd(), path) }), new RegExp(`^page-dumper: SqliteStore ${path}: could not use the database: file is not a database$`));
    });

    test('in a directory that does not exist, or on a directory', () => {
      fails(() => new SqliteStore({ path: join(dir, 'missing', 'pages.sqlite') }), /directory does not exist/);
      const sub = join(dir, `a-directory-${++files}`);
      mkdirSync(sub);
      fails(() => new SqliteStore({ path: sub }), /unable to open|directory/i);
    });

    test('on a database opened read-only', () => {
      const path = freshPath();
      new SqliteStore({ path }).close();
      const db = new Database(path, { readonly: true });
      fails(() => new SqliteStore({ database: db }), /readonly/);
      db.close();
    });

    test('on tables of layout 1: upgraded in place, keeping entries, points and the sequence number', () => {
      const path = freshPath();
      const db = new Database(path);
      db.exec(LAYOUT_1);
      // What a store of layout 1 left: sequence 7, /gone invalidated at 6, two entries.
      db.exec(`UPDATE page_dumper_state SET seq = 7 WHERE id = 1;
        INSERT INTO page_dumper_tag_points VALUES ('/gone', 6);
        INSERT INTO page_dumper_entries (key, path, seq, status, headers, tags, etag, stored_at, size, body)
          VALUES ('k:/old', '/old', 5, 200, '["content-type","text/html","etag","\\"o\\""]', '["/old"]', '"o"', 1, 100, x'6f6c64'),
                 ('k:/old?q=1', '/old', 5, 200, '[]', '["/old"]', '"q"', 1, 100, x'71');
        INSERT INTO page_dumper_entry_tags VALUES ('/old', 1), ('/old', 2);`);
      db.close();

      const s = new SqliteStore({ path });
      expect(s.sequence()).toBe(7);
      expect(s.size).toBe(2);
      const old = s.get('k:/old');
      expect(old && { ...old, body: [...old.body] }).toEqual({
        status: 200,
        headers: ['content-type', 'text/html', 'etag', '"o"'],
        body: [...Buffer.from('old')],
        etag: '"o"',
        storedAt: 1,
        seq: 5,
        path: '/old',
        tags: ['/old'],
      });
      // The invalidation point of /gone was kept: a render that started before it is refused.
      expect(s.set('k:/gone', entry('/gone', 1, 5), limits)).toBe(false);
      // The old rows are plain entries: variants of their path do not evict them.
      const one: SetOptions = { maxVariantsPerPath: 1, variant: true };
      for (let i = 0; i < 3; i++) expect(s.set(`k:/old?n=${i}`, entry('/old', 1, 7), one)).toBe(true);
      expect(s.get('k:/old')).toBeDefined();
      expect(s.get('k:/old?q=1')).toBeDefined();
      expect(s.get('k:/old?n=2')).toBeDefined();
      expect(s.size).toBe(3);
      s.set('k:/anon', { ...entry('/anon', 1, 7), anonymousOnly: true }, limits);
      s.close();

      // Opened again: layout 4, nothing to upgrade, the flag read back.
      const again = new SqliteStore({ path, localBytes: 0 });
      expect(again.get('k:/anon')?.anonymousOnly).toBe(true);
      again.close();
      const check = new Database(path, { readonly: true });
      expect(check.prepare('SELECT version FROM page_dumper_state').pluck().get()).toBe(4);
      const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'page_dumper_entries' AND sql IS NOT NULL").pluck().all();
      expect(indexes).toEqual(['page_dumper_entries_variants']);
      check.close();
    });

    test('on tables of layout 2: upgraded in place, its entries read back without encodings', () => {
      const path = freshPath();
      const db = new Database(path);
      db.exec(LAYOUT_1);
      // What layout 2 added to layout 1 (see #upgrade), and what a store of layout 2 left.
      db.exec(`ALTER TABLE page_dumper_entries ADD COLUMN variant INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE page_dumper_entries ADD COLUMN anonymous_only INTEGER NOT NULL DEFAULT 0;
        DROP INDEX page_dumper_entries_path;
        CREATE INDEX page_dumper_entries_variants ON page_dumper_entries (path) WHERE variant = 1;
        UPDATE page_dumper_state SET version = 2, seq = 7 WHERE id = 1;
        INSERT INTO page_dumper_entries (key, path, variant, anonymous_only, seq, status, headers, tags, etag, stored_at, size, body)
          VALUES ('k:/old', '/old', 0, 1, 5, 200, '["etag","\\"o\\""]', '["/old"]', '"o"', 1, 100, x'6f6c64');
        INSERT INTO page_dumper_entry_tags VALUES ('/old', 1);`);
      db.close();

      const s = new SqliteStore({ path });
      expect(s.sequence()).toBe(7);
      const old = s.get('k:/old');
      expect(old && { ...old, body: [...old.body] }).toEqual({
        status: 200,
        headers: ['etag', '"o"'],
        body: [...Buffer.from('old')],
        etag: '"o"',
        storedAt: 1,
        seq: 5,
        path: '/old',
        tags: ['/old'],
        anonymousOnly: true,
      });
      expect(old).not.toHaveProperty('encodings');
      // The same entry set again with its encodings.
      expect(s.set('k:/old', { ...old!, encodings: encoded(10) }, limits)).toBe(true);
      s.close();
      const again = new SqliteStore({ path, localBytes: 0 });
      expect(encodingsOf(again.get('k:/old'))).toEqual([['br', Array(10).fill(1)]]);
      expect(again.get('k:/old')?.anonymousOnly).toBe(true);
      again.close();
      const check = new Database(path, { readonly: true });
      expect(check.prepare('SELECT version FROM page_dumper_state').pluck().get()).toBe(4);
      check.close();
    });

    test('on tables of another layout', () => {
      const path = freshPath();
      const db = new Database(path);
      db.exec('CREATE TABLE page_dumper_state (id INTEGER PRIMARY KEY, version INTEGER, seq INTEGER, floor INTEGER, bytes INTEGER, entries INTEGER)');
      db.exec('INSERT INTO page_dumper_state VALUES (1, 99, 0, 0, 0, 0)');
      db.close();
      fails(() => new SqliteStore({ path }), /layout version 99/);
    });
  });
});

describe('SqliteStore and the process', () => {
  test('a process that wrote through a store and never closed it still exits when its work is done (the checkpoint thread does not hold it)', async () => {
    // The built package, as an app imports it.
    const root = join(import.meta.dirname, '../..');
    execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'pipe', timeout: 180_000 });
    const file = join(dir, 'no-close.sqlite');
    const script = `
      import { SqliteStore } from 'page-dumper/sqlite';
      const store = new SqliteStore({ path: ${JSON.stringify(file)} });
      const seq = store.sequence();
      store.set('k:/a', { status: 200, headers: [], body: new Uint8Array(10), etag: '"a"', storedAt: 0, seq, path: '/a', tags: ['/a'] }, { maxVariantsPerPath: 10, variant: false });
      store.invalidate(['/a']);
      console.log('wrote');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    // Far longer than the script needs; only a process held open reaches it.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
    clearTimeout(guard);
    expect(out).toBe('wrote\n');
    expect([code, signal]).toEqual([0, null]);
  }, 240_000);
});
