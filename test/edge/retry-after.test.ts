/**
 * A 429/503 with Retry-After pauses the whole lane, not only the failed batch: nothing more is
 * sent to that edge until then. Retry-After: 0 falls back to the backoff (no hot loop).
 * Fake timers: the waits are the dumper's, not the test's.
 */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { PurgeError, type Purger } from '../../src/core/purge.js';
import { createDumper } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

function purger(retryAfter: number, state: { failing: boolean; calls: number }): Purger {
  return {
    id: 'fake-429',
    tagHeader: { name: 'cache-tag', separator: ',', maxBytes: 16_000, maxTagBytes: 1024 },
    freshnessHeader: 'cdn-cache-control',
    maxBatch: 10,
    async purge() {
      state.calls++;
      if (state.failing) throw new PurgeError('429 Too Many Requests', { status: 429, retryAfter });
    },
  };
}

test('after a 429 with Retry-After, no purge at all goes to that edge until it is over; then all of them do', async () => {
  const state = { failing: true, calls: 0 };
  const dumper = createDumper({ logger: false, purgers: [purger(60_000, state)], edge: { raceWindow: 3_600_000 } });
  // 40 tags: 80 edge tags (each with its bucket), 8 full batches.
  await dumper.invalidateTags(Array.from({ length: 40 }, (_, i) => `t${i}`));
  await vi.advanceTimersByTimeAsync(59_000);
  expect(state.calls).toBe(1);
  state.failing = false;
  await vi.advanceTimersByTimeAsync(2_000);
  expect(state.calls).toBe(9);
  expect(dumper.purgeStats).toMatchObject({ failed: 1, sent: 8 });
  await dumper.close();
});

test('Retry-After: 0 is the backoff, not a loop', async () => {
  const state = { failing: true, calls: 0 };
  const dumper = createDumper({ logger: false, purgers: [purger(0, state)], edge: { retryDelay: 10_000, raceWindow: 3_600_000 } });
  await dumper.invalidateTags(['t']);
  await vi.advanceTimersByTimeAsync(9_000);
  expect(state.calls).toBe(1);
  state.failing = false;
  await vi.advanceTimersByTimeAsync(2_000);
  expect(state.calls).toBe(2);
  await dumper.close();
});
