/**
 * A purge queued while the lane's worker is finishing (awaiting the queue's stats after an empty
 * claim) is sent when due, not at the next poll: the worker goes round once more.
 * Fake timers: the waits are the dumper's, not the test's.
 */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import type { Purger } from '../../src/core/purge.js';
import { createDumper, MemoryStore } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A shared store's stats: a round trip (100 ms here). */
class SlowStatsStore extends MemoryStore {
  statsPending = 0;
  override queueStats(queue: string) {
    const stats = super.queueStats(queue);
    this.statsPending++;
    return new Promise<typeof stats>((r) =>
      setTimeout(() => {
        this.statsPending--;
        r(stats);
      }, 100),
    ) as never;
  }
}

test('a purge queued while the worker awaits the queue stats is sent well before the next poll', async () => {
  const sent: string[][] = [];
  const purger: Purger = {
    id: 'fake',
    tagHeader: { name: 'xkey', separator: ' ', maxBytes: 6144, maxTagBytes: 256 },
    freshnessHeader: 'surrogate-control',
    maxBatch: 100,
    async purge(tags) {
      sent.push([...tags]);
    },
  };
  const store = new SlowStatsStore();
  const dumper = createDumper({ logger: false, store, purgers: [purger], edge: { raceWindow: 3_600_000, pollInterval: 5000 } });
  await dumper.invalidate('/a');
  // Until /a is sent and the worker, finding nothing more, awaits the stats.
  for (let i = 0; i < 1000 && (sent.length === 0 || store.statsPending === 0); i++) await vi.advanceTimersByTimeAsync(1);
  expect(sent.length).toBe(1);
  expect(store.statsPending).toBe(1);
  await dumper.invalidate('/b');
  await vi.advanceTimersByTimeAsync(1000);
  expect(sent.some((tags) => tags.includes('/b'))).toBe(true);
  await dumper.close();
});
