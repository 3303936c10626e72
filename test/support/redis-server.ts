/**
 * A private `redis-server` on its own loopback port, for tests that stop, pause and restart Redis
 * (faults) or count what reaches it. It keeps nothing on disk unless asked to.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reachable } from './services.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'page-dumper-redis-'));
  #child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly persist: boolean,
    readonly cluster: boolean,
  ) {}

  /**
   * Starts a server on a free port. `persist` keeps data across restarts (an RDB file in a temp
   * dir); `cluster` starts it with cluster mode on (see `startCluster`).
   */
  static async start(options: { persist?: boolean; cluster?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.persist ?? false, options.cluster ?? false);
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  async restart(): Promise<void> {
    if (this.#child) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'no', '--save', ''];
    if (this.persist) args.push('--dbfilename', 'dump.rdb');
    if (this.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, 'nodes.conf'));
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.#child = child;
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    await until(() => reachable(this.port), `redis-server on port ${this.port}`);
  }

  /** Stops the server (saving first when it persists) and waits until the port is closed. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    if (this.persist) {
      // SHUTDOWN SAVE writes the RDB file even though automatic saves are off.
      await new Promise<void>((resolve) => {
        const socket = net.connect(this.port, '127.0.0.1', () => socket.end('SHUTDOWN SAVE\r\n'));
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
    } else {
      child.kill('SIGTERM');
    }
    await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    this.#child = undefined;
    await until(async () => !(await reachable(this.port, '127.0.0.1', 200)), `port ${this.port} to close`);
  }

  /**
   * Kills the server at once (SIGKILL), saving nothing: a persisting server comes back with what its
   * last `save()` wrote (writes since then are lost, as after a crash), any other comes back empty.
   */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.resume();
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    this.#child = undefined;
    await until(async () => !(await reachable(this.port, '127.0.0.1', 200)), `port ${this.port} to close`);
  }

  /** SAVE: writes the RDB file that a persisting server restarts from. */
  async save(): Promise<void> {
    if (!this.persist) throw new Error('save() needs a server started with persist: true');
    const reply = await new Promise<string>((resolve, reject) => {
      let data = '';
      const socket = net.connect(this.port, '127.0.0.1', () => socket.write('SAVE\r\n'));
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        data += d;
        if (data.includes('\r\n')) socket.end();
      });
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    if (!reply.startsWith('+OK')) throw new Error(`SAVE answered ${JSON.stringify(reply)}`);
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a slow Redis. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  async destroy(): Promise<void> {
    this.resume();
    const child = this.#child;
    if (child) {
      child.kill('SIGKILL');
      await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    }
    this.#child = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis Cluster of `size` masters (no replicas) on free ports, slots spread over them. */
export async function startCluster(size = 3): Promise<{ nodes: RedisServer[]; destroy(): Promise<void> }> {
  const nodes = await Promise.all(Array.from({ length: size }, () => RedisServer.start({ cluster: true })));
  const create = spawn('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    stdio: 'ignore',
  });
  const code = await new Promise<number | null>((resolve) => create.once('exit', resolve));
  const destroy = async () => {
    await Promise.all(nodes.map((n) => n.destroy()));
  };
  if (code !== 0) {
    await destroy();
    throw new Error(`redis-cli --cluster create exited with ${code}`);
  }
  // The cluster is usable once every node agrees that all slots are served.
  const { Redis } = await import('ioredis');
  const probe = new Redis(nodes[0]!.port, '127.0.0.1', { lazyConnect: true });
  await probe.connect();
  await until(async () => /cluster_state:ok/.test(String(await probe.cluster('INFO'))), 'the cluster to be ready');
  probe.disconnect();
  return { nodes, destroy };
}

/**
 * A loopback TCP proxy to `targetPort` whose connections can be partitioned: `partition()` holds
 * the bytes in both directions without closing anything (as a network partition that TCP rides
 * out), `heal()` delivers them.
 */
export async function partitionProxy(targetPort: number): Promise<{
  port: number;
  url: string;
  partition(): void;
  /** Partitions from the first bytes sent to Redis that contain `text` (those bytes are held too). */
  partitionOn(text: string): void;
  heal(): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  const held: Array<() => void> = [];
  let partitioned = false;
  let trigger: string | undefined;
  const server = net.createServer((c) => {
    const u = net.connect(targetPort, '127.0.0.1');
    for (const s of [c, u]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    c.on('data', (d: Buffer) => {
      if (trigger !== undefined && d.includes(trigger)) {
        trigger = undefined;
        partitioned = true;
      }
      if (partitioned) held.push(() => u.write(d));
      else u.write(d);
    });
    u.on('data', (d) => (partitioned ? held.push(() => c.write(d)) : c.write(d)));
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    partition() {
      partitioned = true;
    },
    partitionOn(text: string) {
      trigger = text;
    },
    heal() {
      trigger = undefined;
      partitioned = false;
      for (const write of held.splice(0)) write();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
