// Filling a store with many pages for the benches that measure how costs grow with its size
// (bench/scale-server.mjs, bench/hits-by-size-server.mjs): every entry is the one the dumper
// stored for /p/0, with the path, tags, body and Content-Length of /p/<i>, written through the
// store API (faster than rendering each through HTTP, and the same bytes).

const LIMITS = { maxVariantsPerPath: 16, variant: false };

/** The entry of /p/`i` stored at `seq`, made from `template` ({ key, entry } of /p/0); `page(i)` is its body. */
export function entryFor(template, page, i, seq) {
  const e = template.entry;
  const swap = (s) => s.replaceAll('/p/0', `/p/${i}`);
  const body = Buffer.from(page(i));
  const headers = e.headers.map((h, j) => (e.headers[j - 1] === 'content-length' ? String(body.byteLength) : swap(h)));
  return { key: swap(template.key), entry: { ...e, body, seq, path: swap(e.path), tags: e.tags.map(swap), headers, encodings: undefined } };
}

/**
 * Stores the pages from..to-1 under one sequence number: batches of 1,000 (SqliteStore: one
 * IMMEDIATE transaction each, each set a savepoint in it), RedisStore 500 sets in flight; the event loop
 * turns between batches (the reclamation of earlier invalidations, timers). `progress(done)` is
 * called at each 100,000. Resolves with the milliseconds it took.
 */
export async function fillStore({ store, kind, template, page, from, to, progress }) {
  const t0 = performance.now();
  const seq = await store.sequence();
  const batch = kind === 'redis' ? 500 : 1000;
  for (let i = from; i < to; i += batch) {
    const sets = [];
    const one = () => {
      for (let j = i; j < Math.min(to, i + batch); j++) {
        const { key, entry } = entryFor(template, page, j, seq);
        sets.push(store.set(key, entry, LIMITS));
      }
    };
    // IMMEDIATE: the store's thread (deleting what an invalidation marked) writes to the file too,
    // and a deferred transaction that read before it wrote would be refused its first write.
    if (kind === 'sqlite') store.database.transaction(one).immediate();
    else one();
    const ok = await Promise.all(sets);
    if (!ok.every(Boolean)) throw new Error(`a fill was refused at ${i}`);
    const done = Math.min(to, i + batch);
    if (progress !== undefined && Math.floor(done / 100_000) > Math.floor(i / 100_000)) progress(done);
    await new Promise((r) => setImmediate(r));
  }
  return performance.now() - t0;
}
