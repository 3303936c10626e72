/**
 * RedisStore's purge queue when Redis evicts its hash (payloads and the id counter), as it may
 * under an allkeys-* maxmemory policy: ids are never reused (a queued purge is not overwritten),
 * and an item whose payload is gone is dropped with a warning, never claimed as the empty tag.
 * The eviction is simulated with a DEL of that one key.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { expect, test, vi } from 'vitest';
import type { Purger } from '../../src/core/purge.js';
import { createDumper, MemoryStore } from '../../src/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { needService, definedIf } from '../support/services.js';

const hasRedis = await needService('redis');

definedIf(hasRedis, test)('after the queue hash is evicted: new ids above the queued ones, no empty payload claimed', async () => {
  const prefix = `pd-evict-${randomUUID()}`;
  const store = new RedisStore({ url: 'redis://127.0.0.1:6379', prefix });
  const raw = new Redis('redis://127.0.0.1:6379');
  const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
  try {
    const now = Date.now();
    const old = await store.queuePush('q', ['a', 'b'], now + 60_000); // not due yet
    await raw.del(`{${prefix}}qh:q`);
    const fresh = await store.queuePush('q', ['c'], now);
    expect(fresh[0]).toBeGreaterThan(Math.max(...old));
    const got = await store.queueClaim('q', { max: 10, now: now + 60_000, lease: 1000 });
    expect(got.map((i) => i.payload)).toEqual(['c']);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toContain('evicted');
    await store.queueAck('q', got.map((i) => i.id));
    expect((await store.queueStats('q')).size).toBe(0);
  } finally {
    warn.mockRestore();
    await raw.quit();
    await store.close();
  }
});

test('the dispatcher acknowledges an item without its payload and logs it, sending nothing for it', async () => {
  const sent: string[][] = [];
  const store = new MemoryStore();
  const purger: Purger = {
    id: 'p',
    tagHeader: { name: 'cache-tag', separator: ',', maxBytes: 16_000, maxTagBytes: 1024 },
    freshnessHeader: 'cdn-cache-control',
    maxBatch: 100,
    async purge(tags) {
      sent.push([...tags]);
    },
  };
  const errors: string[] = [];
  const log = (level: string) => (msg: string) => void (level === 'error' && errors.push(msg));
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  // A queue that lost the payload of what it holds.
  const queue = {
    items: [{ id: 1, payload: '', attempts: 1 }],
    acked: [] as number[],
  };
  const s = Object.assign(store, {
    async queuePush() {
      return [];
    },
    async queueClaim() {
      const out = queue.items;
      queue.items = [];
      return out;
    },
    async queueAck(_q: string, ids: readonly number[]) {
      queue.acked.push(...ids);
    },
    async queueRetry() {},
    async queueStats() {
      return { size: queue.items.length, firstId: undefined, lastId: undefined, nextDue: undefined };
    },
  });
  const dumper = createDumper({ logger, store: s, purgers: [purger] });
  await dumper.flushPurges();
  await dumper.close();
  expect(queue.acked).toEqual([1]);
  expect(sent).toEqual([]);
  expect(errors.some((m) => m.includes('purge lost'))).toBe(true);
});
