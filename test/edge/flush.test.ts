/**
 * `flushPurges()`: waits for what was queued before the call (and the race's second purges of
 * it), not for what a busy site queues meanwhile; rejects, never resolves, when it gives up
 * (`timeout`, `signal`) or the dumper is closed with purges not acknowledged. Fake timers: the
 * waits are the dumper's.
 */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { PurgeError, type Purger } from '../../src/core/purge.js';
import { createDumper, DumperError, MemoryStore } from '../../src/index.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

function recorder(fail = false): Purger & { sent: string[][] } {
  const sent: string[][] = [];
  return {
    sent,
    id: 'fake',
    tagHeader: { name: 'xkey', separator: ' ', maxBytes: 6144, maxTagBytes: 256 },
    freshnessHeader: 'surrogate-control',
    maxBatch: 100,
    async purge(tags) {
      sent.push([...tags]);
      if (fail) throw new PurgeError('edge says no', { status: 403 });
    },
  };
}

test('a flush ends once what was queued before it (and its second purge) is acknowledged, while writes keep coming', async () => {
  const purger = recorder();
  const dumper = createDumper({ logger: false, store: new MemoryStore(), purgers: [purger], edge: { raceWindow: 200 } });
  await dumper.invalidateTags('before');
  let flushed = false;
  const p = dumper.flushPurges().then(() => (flushed = true));
  // The site keeps writing: one invalidation every 50 ms for 5 s.
  for (let i = 0; i < 100 && !flushed; i++) {
    await dumper.invalidateTags(`write-${i}`);
    await vi.advanceTimersByTimeAsync(50);
  }
  expect(flushed).toBe(true);
  // It waited for the second purge of 'before' (raceWindow after the first).
  expect(purger.sent.filter((batch) => batch.includes('before'))).toHaveLength(2);
  await p;
  await dumper.close();
});

test('a flush waits for the second purges of what was queued before it', async () => {
  const purger = recorder();
  const dumper = createDumper({ logger: false, store: new MemoryStore(), purgers: [purger], edge: { raceWindow: 1000 } });
  await dumper.invalidateTags('x');
  let flushed = false;
  const p = dumper.flushPurges().then(() => (flushed = true));
  await vi.advanceTimersByTimeAsync(500);
  expect(purger.sent.filter((b) => b.includes('x'))).toHaveLength(1);
  expect(flushed).toBe(false);
  await vi.advanceTimersByTimeAsync(1000);
  expect(purger.sent.filter((b) => b.includes('x'))).toHaveLength(2);
  await p;
  expect(flushed).toBe(true);
  await dumper.close();
});

test('closing the dumper rejects a flush whose purges were not acknowledged', async () => {
  const purger = recorder(true);
  const dumper = createDumper({ logger: false, store: new MemoryStore(), purgers: [purger], edge: { raceWindow: 200 } });
  await dumper.invalidate('/page');
  const p = dumper.flushPurges().then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await vi.advanceTimersByTimeAsync(1000);
  expect(purger.sent.length).toBeGreaterThan(0);
  const closing = dumper.close();
  await vi.advanceTimersByTimeAsync(1000);
  await closing;
  const outcome = await p;
  expect(outcome).toBeInstanceOf(DumperError);
  expect((outcome as DumperError).code).toBe('DUMPER_PURGE_FAILURE');
  expect((outcome as DumperError).message).toMatch(/^flushPurges\(\): the dumper was closed with purges for fake not acknowledged \(a shared store keeps them queued for other processes\)$/);
});

test('timeout and signal: a flush against an edge that keeps refusing rejects instead of waiting forever', async () => {
  const purger = recorder(true);
  const dumper = createDumper({ logger: false, store: new MemoryStore(), purgers: [purger], edge: { raceWindow: 200 } });
  await dumper.invalidate('/page');
  const timed = dumper.flushPurges({ timeout: 3000 }).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  const controller = new AbortController();
  const aborted = dumper.flushPurges({ signal: controller.signal }).then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await vi.advanceTimersByTimeAsync(1000);
  controller.abort();
  await vi.advanceTimersByTimeAsync(100);
  expect(String(await aborted)).toMatch(/^DumperError: flushPurges\(\) aborted with purges for fake not acknowledged$/);
  await vi.advanceTimersByTimeAsync(3000);
  expect(String(await timed)).toMatch(/^DumperError: flushPurges\(\) timed out after 3000 ms with purges for fake not acknowledged/);
  await expect(dumper.flushPurges({ timeout: -1 })).rejects.toThrow(new TypeError('page-dumper: flushPurges() option "timeout" must be a number of milliseconds, got -1'));
  await dumper.close();
});
