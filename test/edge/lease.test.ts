/**
 * A batch that takes longer to send than its lease (several requests, each slow) is still sent
 * once: the lease of the parts not yet sent is renewed, so a second process sharing the queue
 * does not claim them and send them again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { Purger } from '../../src/core/purge.js';
import { createDumper } from '../../src/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';

test('a batch of several slow requests outlasting the lease is sent once, not again by another process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'page-dumper-lease-'));
  const path = join(dir, 'store.db');
  const sent: string[] = [];
  // One purger, the same edge in both processes: 4 tags (16 bytes each) per request, each request 120 ms.
  const purger = (): Purger => ({
    id: 'slow-edge',
    tagHeader: { name: 'cache-tag', separator: ',', maxBytes: 16_000, maxTagBytes: 1024 },
    freshnessHeader: 'cdn-cache-control',
    maxBatch: 100,
    maxBatchBytes: 64,
    async purge(tags) {
      await new Promise((r) => setTimeout(r, 120));
      sent.push(...tags);
    },
  });
  const edge = { lease: 200, pollInterval: 20, retryDelay: 20, raceWindow: 3_600_000 };
  const a = createDumper({ logger: false, store: new SqliteStore({ path }), purgers: [purger()], edge });
  const b = createDumper({ logger: false, store: new SqliteStore({ path }), purgers: [purger()], edge });
  const reader = new SqliteStore({ path });
  try {
    const tags = Array.from({ length: 24 }, (_, i) => `tag:lease:${String(i).padStart(5, '0')}`);
    await a.invalidateTags(tags);
    // Every tag reaches the edge (6 requests of 4: about 720 ms, more than three leases)...
    for (let i = 0; i < 500 && !tags.every((t) => sent.includes(t)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(tags.filter((t) => !sent.includes(t))).toEqual([]);
    // ...and once the queue holds only the race's second purges (due in an hour), each was sent once.
    const firsts = () => (reader.database.prepare("SELECT count(*) AS n FROM page_dumper_queue WHERE payload LIKE 'tag:%'").get() as { n: number }).n;
    for (let i = 0; i < 500 && firsts() !== 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(firsts()).toBe(0);
    const twice = tags.filter((t) => sent.filter((s) => s === t).length !== 1);
    expect(twice).toEqual([]);
  } finally {
    await Promise.all([a.close(), b.close()]);
    reader.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
