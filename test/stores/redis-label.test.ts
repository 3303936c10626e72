// RedisStore's label (`Store.label`): how logs and errors name it. Where it connects, read from the
// client's options; never a username or a password. And a database the server does not have:
// every call fails, naming the store, instead of using database 0.
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { createDumper, type StoredEntry } from '../../src/index.js';
import { dumperFetch } from '../../src/http/fetch/index.js';
import { RedisStore, RedisStoreError } from '../../src/stores/redis/index.js';
import { definedIf, needService } from '../support/services.js';

const hasRedis = await needService('redis');
const REDIS = 'redis://127.0.0.1:6379';

const prefix = () => `pdtest:label:${randomUUID().slice(0, 8)}:`;

/** The label of a store made with `options`, closed at once (its client may never connect). */
async function labelOf(options: ConstructorParameters<typeof RedisStore>[0]): Promise<string> {
  const store = new RedisStore({ prefix: prefix(), ...options });
  try {
    return store.label;
  } finally {
    await store.close();
  }
}

describe('RedisStore label', () => {
  test('its own client: redis://host:port/db, from the URL, without the credentials in it', async () => {
    expect(await labelOf({})).toBe('RedisStore redis://127.0.0.1:6379/0');
    const label = await labelOf({ url: 'redis://pd-user:s3cret-pw@127.0.0.1:6379/2' });
    expect(label).toBe('RedisStore redis://127.0.0.1:6379/2');
    expect(await labelOf({ url: 'redis://:only-a-password@localhost/3' })).toBe('RedisStore redis://localhost:6379/3');
    expect(await labelOf({ url: 'rediss://:pw@cache.internal:6380/1' })).toBe('RedisStore rediss://cache.internal:6380/1');
    expect(await labelOf({ url: 'redis://[::1]:6379/4' })).toBe('RedisStore redis://[::1]:6379/4');
  });

  test('a Unix socket: its path and the database', async () => {
    expect(await labelOf({ url: '/tmp/pd-no-such-redis.sock' })).toBe('RedisStore /tmp/pd-no-such-redis.sock db 0');
  });

  test('an injected client: said so, with where its options point, never its username or password', async () => {
    const client = new Redis({ host: '127.0.0.1', port: 6379, db: 5, username: 'pd-admin', password: 'hunter2-secret', lazyConnect: true });
    try {
      const label = await labelOf({ client });
      expect(label).toBe('RedisStore (injected client) redis://127.0.0.1:6379/5');
      expect(label).not.toMatch(/pd-admin|hunter2/);
    } finally {
      client.disconnect();
    }
    const socket = new Redis({ path: '/run/pd-redis.sock', lazyConnect: true });
    try {
      expect(await labelOf({ client: socket })).toBe('RedisStore (injected client) /run/pd-redis.sock db 0');
    } finally {
      socket.disconnect();
    }
  });

  test('an injected Cluster client: its first startup nodes, host and port only', async () => {
    const cluster = new Cluster(['redis://:node-secret@10.0.0.1:7000', { host: 'node-b', port: 7001 }, 7002, 'node-d:7003'], {
      lazyConnect: true,
      scaleReads: 'master',
    });
    try {
      const label = await labelOf({ client: cluster });
      expect(label).toBe('RedisStore (injected Cluster client) 10.0.0.1:7000,node-b:7001,localhost:7002,...');
      expect(label).not.toContain('node-secret');
    } finally {
      cluster.disconnect();
    }
  });
});

definedIf(hasRedis, describe)('RedisStore on a database the server does not have', () => {
  /** The first database number the local Redis does not have (16 by default: 16). */
  async function missingDatabase(): Promise<number> {
    const redis = new Redis(REDIS);
    try {
      return Number(((await redis.config('GET', 'databases')) as string[])[1]);
    } finally {
      redis.disconnect();
    }
  }

  /** The keys of `p` in database `db`. */
  async function keysIn(db: number, p: string): Promise<string[]> {
    const redis = new Redis(`${REDIS}/${db}`);
    try {
      return await redis.keys(`{${p}}*`);
    } finally {
      redis.disconnect();
    }
  }

  const outcome = (p: unknown) =>
    Promise.resolve(p).then(
      () => 'answered',
      (error: unknown) => (error instanceof RedisStoreError ? `${error.code}: ${error.message}` : `other: ${String(error)}`),
    );

  test('every call fails with DUMPER_REDIS_NO_DATABASE, naming the store and the database; nothing is written to database 0', async () => {
    const db = await missingDatabase();
    const p = prefix();
    const store = new RedisStore({ url: `${REDIS}/${db}`, prefix: p, commandTimeout: 2000 });
    try {
      expect(store.label).toBe(`RedisStore ${REDIS}/${db}`);
      const failed = await outcome(store.sequence());
      expect(failed).toMatch(new RegExp(`^DUMPER_REDIS_NO_DATABASE: page-dumper: RedisStore ${REDIS}/${db}: Redis has no database ${db} `));
      expect(failed).toContain('does not fall back to database 0');
      const entry: StoredEntry = { status: 200, headers: [], body: new Uint8Array(1), etag: '"e"', storedAt: 0, seq: 1, path: '/a', tags: ['/a'] };
      for (const call of [
        () => store.get('k:/a'),
        () => store.set('k:/a', entry, { maxVariantsPerPath: 10, variant: false }),
        () => store.invalidate(['/a']),
        () => store.clear(),
        () => store.entries(),
        () => store.info(),
        () => store.queuePush('q', ['x'], 0),
      ]) {
        expect(await outcome(call())).toMatch(/^DUMPER_REDIS_NO_DATABASE: /);
      }
      expect(await keysIn(0, p)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  test('an injected client on a missing database fails the same way, and the dumper logs it and sends the request to the app', async () => {
    const db = await missingDatabase();
    const p = prefix();
    const client = new Redis(`${REDIS}/${db}`);
    client.on('error', () => {});
    const store = new RedisStore({ client, prefix: p, commandTimeout: 2000 });
    const errors: string[] = [];
    const logger = { debug() {}, warn() {}, error: (message: string) => errors.push(message) };
    const dumper = createDumper({ store, logger });
    let renders = 0;
    const handler = dumperFetch(dumper, () => {
      renders++;
      return new Response('page', { headers: { 'content-type': 'text/html' } });
    });
    try {
      const response = await handler(new Request('http://site.test/a'));
      expect(await response.text()).toBe('page');
      expect(renders).toBe(1);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(errors[0]).toContain(`RedisStore (injected client) ${REDIS}/${db}: Redis has no database ${db}`);
      expect(await keysIn(0, p)).toEqual([]);
    } finally {
      await dumper.close();
      client.disconnect();
    }
  });

  test('a database the server has (not 0): the store works there, and only there', async () => {
    const p = prefix();
    const store = new RedisStore({ url: `${REDIS}/3`, prefix: p, commandTimeout: 2000 });
    try {
      const seq = await store.sequence();
      const entry: StoredEntry = { status: 200, headers: [], body: new Uint8Array(1), etag: '"e"', storedAt: 0, seq, path: '/a', tags: ['/a'] };
      expect(await store.set('k:/a', entry, { maxVariantsPerPath: 10, variant: false })).toBe(true);
      expect(await store.get('k:/a')).toBeDefined();
      expect((await keysIn(3, p)).length).toBeGreaterThan(0);
      expect(await keysIn(0, p)).toEqual([]);
      await store.clear();
    } finally {
      await store.close();
    }
  });
});
