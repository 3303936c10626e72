import { describe, expect, test } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore, type SetOptions, type Store, type StoredEntry } from '../../src/index.js';
import { listen } from '../support/listen.js';

/**
 * A store that can be switched off. A real outage of a shared store is tested against a real
 * redis-server with the Redis store; this double exercises the engine's side of the contract.
 */
class SwitchableStore implements Store {
  readonly inner = new MemoryStore();
  down = false;
  calls = 0;
  #check(): void {
    this.calls++;
    if (this.down) throw new Error('connection refused');
  }
  async sequence() {
    this.#check();
    return this.inner.sequence();
  }
  async get(key: string) {
    this.#check();
    return this.inner.get(key);
  }
  async set(key: string, entry: StoredEntry, options: SetOptions) {
    this.#check();
    return this.inner.set(key, entry, options);
  }
  async invalidate(tags: readonly string[]) {
    this.#check();
    return this.inner.invalidate(tags);
  }
  async clear() {
    this.#check();
    this.inner.clear();
  }
}

async function setup(storeCooldown = 50) {
  const store = new SwitchableStore();
  const errors: string[] = [];
  const dumper = createDumper({
    store,
    storeCooldown,
    logger: { debug() {}, warn() {}, error: (m: string) => errors.push(m) },
  });
  let value = 'old';
  let renders = 0;
  const m = await listen(
    withDumper(dumper, (_req, res) => {
      renders++;
      res.setHeader('content-type', 'text/plain');
      res.end(value);
    }),
  );
  const get = async (path = '/p') => {
    const r = await fetch(m.url + path);
    return { status: r.status, cache: r.headers.get('x-cache'), body: await r.text() };
  };
  return {
    store,
    dumper,
    errors,
    get,
    set: (v: string) => (value = v),
    renders: () => renders,
    close: async () => {
      await m.close();
      await dumper.close();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('store faults never fail a request', () => {
  test('with the store down, pages come from the app; the failure is logged once', async () => {
    const t = await setup();
    t.store.down = true;
    for (let i = 0; i < 5; i++) {
      const r = await t.get();
      expect(r.status).toBe(200);
      expect(r.body).toBe('old');
    }
    expect(t.renders()).toBe(5);
    expect(t.errors).toHaveLength(1);
    expect(t.errors[0]).toMatch(/^dumper: store (get|sequence) failed: SwitchableStore: connection refused; requests go to the app for 50 ms$/);
    await t.close();
  });

  test('an open circuit stops calling the store until the cooldown ends', async () => {
    const t = await setup(10_000);
    t.store.down = true;
    await t.get();
    const calls = t.store.calls;
    for (let i = 0; i < 10; i++) expect((await t.get()).cache).toBe('BYPASS');
    expect(t.store.calls).toBe(calls);
    await t.close();
  });

  test('a request whose store read failed does not ask the store again (a failing store costs it one wait)', async () => {
    const t = await setup(10_000);
    t.store.down = true;
    const before = t.store.calls;
    const r = await t.get('/fresh');
    expect(r.status).toBe(200);
    expect(r.cache).toBe('MISS');
    // get() failed; neither sequence() nor set() was tried for the same request.
    expect(t.store.calls - before).toBe(1);
    await t.close();
  });

  test('an invalidation lost to an outage is replayed before anything is served again', async () => {
    const t = await setup();
    await t.get();
    expect((await t.get()).cache).toBe('HIT');
    t.store.down = true;
    t.set('new');
    await t.dumper.invalidate('/p'); // resolves: the writer is never failed by the cache
    expect(t.errors).toEqual(['dumper: store invalidate failed: SwitchableStore: connection refused; requests go to the app for 50 ms']);
    t.store.down = false;
    // The stale entry is still in the store. Until the invalidation is replayed, nothing is read.
    for (let i = 0; i < 20; i++) {
      const r = await t.get();
      expect(r.body).toBe('new');
      await sleep(10);
    }
    expect((await t.get()).cache).toBe('HIT');
    expect(t.store.inner.size).toBe(1);
    await t.close();
  });

  test('a failed invalidation is retried on a timer, with no request needed, until the store takes it', async () => {
    const t = await setup(30);
    await t.get();
    expect(t.store.inner.size).toBe(1);
    t.store.down = true;
    await t.dumper.invalidate('/p');
    expect(t.store.inner.size).toBe(1);
    await sleep(150); // a few retries fail while the store is down
    t.store.down = false;
    const start = Date.now();
    while (t.store.inner.size !== 0 && Date.now() - start < 5000) await sleep(10);
    // Another process reading the same store would now find the page gone.
    expect(t.store.inner.size).toBe(0);
    await t.close();
  });
});
