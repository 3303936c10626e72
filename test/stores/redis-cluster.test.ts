/**
 * RedisStore on a real Redis Cluster (three masters started by the test): what the README claims.
 * - Every key of one store hashes to one slot (the `{prefix}` hash tag), so each script runs on one
 *   node and is atomic there.
 * - Stores with different prefixes (sites) land in different slots: that is how the cache spreads
 *   over the cluster.
 * - The local tier's pub/sub (invalidations, sets) reaches processes connected to other nodes.
 */
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { StoredEntry } from '../../src/index.js';
import { withDumper } from '../../src/http/node/index.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { runStoreConformance } from '../../src/testing/index.js';
import { httpBehaviourSuite } from '../support/behaviour.js';
import { listen } from '../support/listen.js';
import { startCluster } from '../support/redis-server.js';
import { needService, definedIf } from '../support/services.js';
import { nodeRequest, writeNode } from '../support/site.js';

// The cluster's nodes are redis-server processes, which come with the Redis service.
const hasRedis = await needService('redis');

const limits = { maxVariantsPerPath: 256, variant: false };
const entry = (seq: number, path: string, tags = [path]): StoredEntry => ({
  status: 200,
  headers: ['content-type', 'text/html'],
  body: new TextEncoder().encode(path),
  etag: '"e"',
  storedAt: 1,
  seq,
  path,
  tags,
});

definedIf(hasRedis, describe)('RedisStore on Redis Cluster', () => {
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  const clients: Cluster[] = [];
  const client = () => {
    const c = new Cluster([{ host: '127.0.0.1', port: cluster!.nodes[0]!.port }], { redisOptions: { commandTimeout: 1000 } });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    cluster = await startCluster(3);
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await cluster?.destroy();
  });

  runStoreConformance({
    test,
    create: () => new RedisStore({ client: client(), prefix: `c:${randomUUID().slice(0, 8)}:` }),
    prefix: 'RedisStore on Cluster conformance: ',
  });

  test('every key of a store is in the slot of its {prefix}, and prefixes spread over the nodes', async () => {
    const c = client();
    const owners = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const prefix = `site${i}:`;
      const store = new RedisStore({ client: c, prefix });
      const seq = await store.sequence();
      await store.set(`k:/a?${i}`, entry(seq, '/a', ['/a', 'flavour:1']), limits);
      await store.set(`k:/b`, entry(seq, '/b'), limits);
      await store.invalidate(['flavour:1']);
      const slot = Number(await c.cluster('KEYSLOT', `{${prefix}}`));
      const keys: string[] = [];
      for (const node of c.nodes('master')) keys.push(...(await node.keys(`{${prefix}}*`)));
      expect(keys.length).toBeGreaterThanOrEqual(4); // meta, order, entry, index set
      for (const key of keys) expect(Number(await c.cluster('KEYSLOT', key))).toBe(slot);
      // The node that holds them: one per prefix.
      const holders = [];
      for (const node of c.nodes('master')) if ((await node.keys(`{${prefix}}*`)).length > 0) holders.push(`${node.options.port}`);
      expect(holders).toHaveLength(1);
      owners.add(holders[0]!);
      await store.clear();
      // Freed after clear() answered, by a scan in the background.
      for (let i = 0; ; i++) {
        const left = [];
        for (const node of c.nodes('master')) left.push(...(await node.keys(`{${prefix}}e:*`)));
        if (left.length === 0) break;
        expect(i).toBeLessThan(500);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    expect(owners.size).toBeGreaterThan(1);
  });

  test('local tiers connected through different nodes drop what another process invalidates or stores again', async () => {
    const prefix = `c:${randomUUID().slice(0, 8)}:`;
    const a = new RedisStore({ client: client(), prefix, localTier: true });
    const b = new RedisStore({ client: client(), prefix, localTier: true });
    await a.set('k:/a', entry(await a.sequence(), '/a'), limits);
    const held = async (s: RedisStore) => {
      await s.get('k:/a');
      const v = s.get('k:/a');
      return !(v instanceof Promise) && v !== undefined;
    };
    const until = async (check: () => Promise<boolean>, what: string) => {
      const end = Date.now() + 5000;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await until(() => held(a), 'a to hold /a');
    await until(() => held(b), 'b to hold /a');
    await b.invalidate(['/a']);
    await until(async () => (await a.get('k:/a')) === undefined, 'a to drop /a');
    // Another process's set of a key reaches the tiers the same way.
    const seq = await a.sequence();
    await a.set('k:/a', entry(seq, '/a'), limits);
    await until(() => held(a), 'a to hold /a again');
    const encodings = [{ coding: 'br' as const, body: new Uint8Array([1, 2, 3]) }];
    expect(await b.set('k:/a', { ...entry(seq, '/a'), encodings }, limits)).toBe(true);
    await until(async () => (await a.get('k:/a'))?.encodings?.length === 1, "a to answer b's entry");
    await Promise.all([a.close(), b.close()]);
  });

  httpBehaviourSuite(
    'withDumper + RedisStore on Cluster',
    (dumper, site) => listen(withDumper(dumper, (req, res) => void site.handle(nodeRequest(req)).then((r) => writeNode(res, r)))),
    { store: () => new RedisStore({ client: client(), prefix: `c:${randomUUID().slice(0, 8)}:` }) },
  );
});
