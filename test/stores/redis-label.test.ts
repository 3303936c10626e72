// RedisStore's label (`Store.label`): how logs and errors name it. Where it connects, read from the
// client's options; never a username or a password.
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, test } from 'vitest';
import { RedisStore } from '../../src/stores/redis/index.js';

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
