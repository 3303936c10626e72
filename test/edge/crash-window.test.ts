/**
 * An invalidation's purge is in the durable queue before the store invalidates: a process killed
 * between the two leaves the purge to the others, not the edge stale. And it is sent once the
 * store has invalidated, so that an edge fetching the page again gets the new one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { Purger } from '../../src/core/purge.js';
import { varnishPurger } from '../../src/edge/index.js';
import { createDumper, MemoryStore } from '../../src/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';

/** Commits the invalidation, then never returns: a process killed at that moment. */
class DiesAfterInvalidate extends SqliteStore {
  override invalidate(tags: readonly string[]): number {
    void super.invalidate(tags);
    return new Promise<number>(() => {}) as unknown as number;
  }
}

test('a process killed right after the store invalidated has left the purge in the queue', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'page-dumper-crash-'));
  const path = join(dir, 'store.db');
  try {
    const invalidated = new Promise<void>((resolve) => {
      const store = new (class extends DiesAfterInvalidate {
        override invalidate(tags: readonly string[]): number {
          const r = super.invalidate(tags);
          resolve();
          return r;
        }
      })({ path });
      const a = createDumper({ logger: false, store, purgers: [varnishPurger({ url: 'http://127.0.0.1:9' })] });
      void a.invalidate('/flavours/vanilla/');
    });
    await invalidated;
    // Another process opens the same database: the purge is there to deliver.
    const b = new SqliteStore({ path });
    const rows = b.database.prepare('SELECT payload FROM page_dumper_queue').all() as Array<{ payload: string }>;
    b.close();
    expect(rows.map((r) => r.payload).join(' ')).toContain('/flavours/vanilla');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the purge is sent after the store invalidated', async () => {
  const seen: boolean[] = [];
  let invalidated = false;
  const store = new (class extends MemoryStore {
    override invalidate(tags: readonly string[]) {
      invalidated = true;
      return super.invalidate(tags);
    }
  })();
  const purger: Purger = {
    id: 'order',
    tagHeader: { name: 'cache-tag', separator: ',', maxBytes: 16_000, maxTagBytes: 1024 },
    freshnessHeader: 'cdn-cache-control',
    maxBatch: 100,
    async purge() {
      seen.push(invalidated);
    },
  };
  const dumper = createDumper({ logger: false, store, purgers: [purger], edge: { raceWindow: 10 } });
  await dumper.invalidate('/x');
  await dumper.flushPurges();
  await dumper.close();
  expect(seen.length).toBeGreaterThan(0);
  expect(seen.every(Boolean)).toBe(true);
});
