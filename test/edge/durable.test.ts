/**
 * Nothing lost: a process queues purges on a shared store (SQLite, Redis) while its edge does not
 * answer, is killed with SIGKILL, and a new process delivers every one of them to the edge once it
 * answers. The child runs the built JavaScript (test/edge/fixtures/queue-child.mjs).
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { varnishPurger } from '../../src/edge/index.js';
import { createDumper, type Store } from '../../src/index.js';
import { purgeTags } from '../../src/core/purge.js';
import { RedisStore } from '../../src/stores/redis/index.js';
import { SqliteStore } from '../../src/stores/sqlite/index.js';
import { needService } from '../support/services.js';
import { freePort } from './varnish-server.js';

const hasRedis = await needService('redis');
const REDIS_URL = 'redis://127.0.0.1:6379';
const root = resolve(import.meta.dirname, '../..');
const fixture = join(root, 'test/edge/fixtures/queue-child.mjs');
let build: string;

beforeAll(() => {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  build = mkdtempSync(join(root, '.tmp', 'edge-durable-'));
  const entries = ['index.ts', 'edge/index.ts', 'stores/sqlite/index.ts', 'stores/redis/index.ts'];
  writeFileSync(
    join(build, 'tsconfig.json'),
    JSON.stringify({
      extends: join(root, 'tsconfig.build.json'),
      compilerOptions: { rootDir: join(root, 'src'), outDir: join(build, 'dist'), declaration: false },
      files: entries.map((e) => join(root, 'src', e)),
      include: [],
    }),
  );
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(build, 'tsconfig.json')], { encoding: 'utf8' });
  for (const e of entries) {
    const out = join(build, 'dist', e.replace(/\.ts$/, '.js'));
    if (!existsSync(out)) throw new Error(`the build did not write ${out}:\n${tsc.stdout}${tsc.stderr}`);
  }
  copyFileSync(join(root, 'package.json'), join(build, 'package.json'));
}, 180_000);

afterAll(() => {
  if (build) rmSync(build, { recursive: true, force: true });
});

interface Case {
  readonly name: string;
  readonly skip: boolean;
  /** The child's environment for the store, and the same store for this process. */
  setup(): { env: Record<string, string>; open(): Store; cleanup(): Promise<void> };
}

const cases: Case[] = [
  {
    name: 'SqliteStore',
    skip: false,
    setup() {
      const dir = mkdtempSync(join(build, 'sqlite-'));
      const file = join(dir, 'cache.db');
      return { env: { STORE: 'sqlite', CACHE_DB: file }, open: () => new SqliteStore({ path: file }), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'RedisStore',
    skip: !hasRedis,
    setup() {
      const prefix = `edge-durable:${randomUUID().slice(0, 8)}:`;
      return {
        env: { STORE: 'redis', REDIS_URL, REDIS_PREFIX: prefix },
        open: () => new RedisStore({ url: REDIS_URL, prefix }),
        async cleanup() {
          const redis = new Redis(REDIS_URL);
          const keys = await redis.keys(`{${prefix}}*`);
          if (keys.length) await redis.del(...keys);
          redis.disconnect();
        },
      };
    },
  },
];

describe.each(cases.filter((c) => !c.skip))('purges queued on $name survive SIGKILL', (c) => {
  test('a killed process loses no queued purge: the next process delivers them', async () => {
    const { env, open, cleanup } = c.setup();
    // The edge's address, where nothing answers yet.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const tags = Array.from({ length: 30 }, (_, i) => `item:${i}`);
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, ...env, PAGE_DUMPER_DIST: join(build, 'dist'), PURGE_URL: url, TAGS: tags.join(',') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    try {
      for (let i = 0; i < 1000 && !out.includes('QUEUED') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('QUEUED');
      // Let it try (and fail) to deliver for a while, then kill it without a chance to clean up.
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');

      // The edge comes up; a new process, on the same store, with the same purger.
      const received: string[] = [];
      const edge = http.createServer((req, res) => {
        expect(req.method).toBe('PURGE');
        received.push(...String(req.headers['xkey-purge']).split(' '));
        res.end();
      });
      await new Promise<void>((r) => edge.listen(port, '127.0.0.1', () => r()));
      const dumper = createDumper({ store: open(), logger: false, purgers: [varnishPurger({ url })], edge: { raceWindow: 200, pollInterval: 100 } });
      try {
        await dumper.flushPurges();
        // Every tag the dead process queued (with its coarse bucket). Its first purge and the race's
        // second are both due by now: one request may carry both.
        const want = purgeTags({ name: 'xkey', separator: ' ', maxBytes: 6144, maxTagBytes: 256 }, tags);
        expect(new Set(received)).toEqual(new Set(want));
        expect(dumper.purgeStats.sent).toBeGreaterThan(0);
        // Nothing is left in the queue.
        await dumper.close();
        const store = open();
        const left = await store.queueStats!('dumper.cached_path.purge varnish ' + new URL(url).href);
        await store.close?.();
        expect(left.size).toBe(0);
      } finally {
        await dumper.close();
        edge.closeAllConnections();
        await new Promise<void>((r) => edge.close(() => r()));
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await cleanup();
    }
  }, 60_000);
});
