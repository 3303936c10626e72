/**
 * An invalidation whose store write fails (a Redis timeout, SQLITE_BUSY) is replayed into the
 * store later; its purge went out at once, and meanwhile the edge fetched the old page again from
 * another process, which still had it in the store. The replay purges the edge again.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { varnishPurger } from '../../src/edge/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper } from '../../src/index.js';
import type { SetOptions, Store, StoredEntry } from '../../src/core/store.js';
import { MemoryStore } from '../../src/stores/memory/index.js';
import { listen } from '../support/listen.js';
import type { Mounted } from '../support/behaviour.js';
import { definedIf, needVarnish } from '../support/services.js';
import { startVarnish, type Varnish } from './varnish-server.js';

const varnishd = await needVarnish();

/** Process A's view of the shared store: its invalidations fail while `broken`. */
class Flaky implements Store {
  broken = true;
  invalidated = 0;
  constructor(readonly inner: MemoryStore) {}
  sequence() {
    return this.inner.sequence();
  }
  get(key: string) {
    return this.inner.get(key);
  }
  set(key: string, entry: StoredEntry, options: SetOptions) {
    return this.inner.set(key, entry, options);
  }
  invalidate(tags: readonly string[]) {
    if (this.broken) throw new Error('store timeout');
    this.invalidated++;
    return this.inner.invalidate(tags);
  }
  clear() {
    return this.inner.clear();
  }
}

definedIf(varnishd !== undefined, describe)('a store fault during an invalidation, behind Varnish', () => {
  let v: Varnish;
  let origin: Mounted;
  let a: Dumper;
  let b: Dumper;
  let version = 1;
  const shared = new MemoryStore();
  const flaky = new Flaky(shared);
  beforeAll(async () => {
    // Process B serves the site; process A runs the write (an admin, a worker) and shares the store.
    origin = await listen((q, r) => serve(q, r));
    v = await startVarnish(varnishd!, origin.port);
    b = createDumper({ logger: false, store: shared, purgers: [varnishPurger({ url: v.url })], version: false });
    a = createDumper({ logger: false, store: flaky, purgers: [varnishPurger({ url: v.url })], version: false, edge: { raceWindow: 400 }, storeCooldown: 100 });
  });
  let serve: http.RequestListener = (_q, r) => r.end();
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await v?.stop();
    await origin?.close();
  });

  test('the edge is purged again once the store takes an invalidation it failed', async () => {
    serve = withDumper(b, (_q, r) => r.end(`price v${version}`));
    const path = `/product-${Date.now()}`;
    expect(await (await fetch(v.url + path)).text()).toBe('price v1');
    expect((await fetch(v.url + path)).headers.get('x-edge-cache')).toBe('HIT');

    version = 2;
    await a.invalidate(path); // resolves; the store write failed and will be replayed
    await a.flushPurges(); // both purges (and the race's second) acknowledged by Varnish
    // Meanwhile a visitor: Varnish refetches, process B still has the old entry in the store.
    expect(await (await fetch(v.url + path)).text()).toBe('price v1');

    // The store is back: A replays its invalidation.
    flaky.broken = false;
    for (let i = 0; i < 200 && flaky.invalidated === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(flaky.invalidated).toBeGreaterThan(0);
    const direct = await fetch(origin.url + path, { headers: { host: new URL(v.url).host } });
    expect(await direct.text()).toBe('price v2'); // the origin is fresh again
    await a.flushPurges();
    await b.flushPurges();
    // And so is the edge: purged again once the store took the invalidation.
    expect(await (await fetch(v.url + path)).text()).toBe('price v2');
  });
});
