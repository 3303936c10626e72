/**
 * The real services some suites need: Redis, PostgreSQL and MariaDB on their standard loopback
 * ports. A suite asks once, at the top of its file:
 *
 * ```ts
 * const hasRedis = await needService('redis');
 * definedIf(hasRedis, describe)('RedisStore', () => { ... });
 * ```
 *
 * Under `CI=true` a missing service throws, so the file fails instead of skipping. Elsewhere (a
 * laptop without the service) the suite is not defined and a notice says why, on stderr.
 */
import net from 'node:net';
import type { describe, test } from 'vitest';

/**
 * `fn` (vitest's `describe` or `test`) when `available`, else a function that defines nothing: a
 * suite for a service this machine lacks is left out, not counted as skipped. Under `CI=true` the
 * `needService()` that answered `available` has already failed the file.
 */
export function definedIf<T extends typeof describe | typeof test>(available: unknown, fn: T): T {
  return available ? fn : ((() => undefined) as unknown as T);
}

export const SERVICES = {
  redis: { host: '127.0.0.1', port: 6379, start: 'redis-server --daemonize yes --port 6379 --save "" --appendonly no' },
  postgres: { host: '127.0.0.1', port: 5432, start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' },
  mariadb: { host: '127.0.0.1', port: 3306, start: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' },
} as const;

export type ServiceName = keyof typeof SERVICES;

/** True when something accepts TCP connections on the port within `timeoutMs`. */
export function reachable(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const answers = new Map<ServiceName, Promise<boolean>>();

/**
 * Resolves `true` when the service is up. When it is down: throws under `CI=true`, otherwise
 * prints a notice and resolves `false` so that the caller can skip.
 */
export function needService(name: ServiceName): Promise<boolean> {
  let answer = answers.get(name);
  if (!answer) {
    const { host, port, start } = SERVICES[name];
    answer = reachable(port, host).then((up) => {
      if (up) return true;
      const message = `${name} is not reachable on ${host}:${port} (start it with: ${start})`;
      if (process.env.CI) throw new Error(`${message}; CI needs it, so the suite fails instead of skipping.`);
      process.stderr.write(`\n  NOTICE: skipping the ${name} suites: ${message}\n\n`);
      return false;
    });
    answers.set(name, answer);
  }
  return answer;
}

/**
 * Varnish, for the edge suites: `varnishd` on the PATH (or in /usr/sbin) with the xkey vmod of
 * varnish-modules. The suites start their own varnishd on random loopback ports. Under `CI=true`
 * a missing one throws (the suite fails); elsewhere the suite is skipped with a notice.
 */
export const VARNISH = {
  install: 'apt-get install -y varnish varnish-modules',
} as const;

let varnishAnswer: Promise<string | undefined> | undefined;

/** The path of `varnishd` when it and the xkey vmod are installed; see `VARNISH`. */
export function needVarnish(): Promise<string | undefined> {
  varnishAnswer ??= (async () => {
    const { existsSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const candidates = [...(process.env.PATH ?? '').split(':').map((d) => `${d}/varnishd`), '/usr/sbin/varnishd'];
    const varnishd = candidates.find((p) => p !== '/varnishd' && existsSync(p));
    let vmod = false;
    if (varnishd !== undefined) {
      // Compiling a VCL that imports xkey is the one check that finds the vmod wherever it is.
      const { chmodSync, mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const dir = mkdtempSync(`${tmpdir()}/page-dumper-varnish-check-`);
      try {
        // Started as root, varnishd compiles as its own unprivileged user, who must read the file.
        chmodSync(dir, 0o755);
        writeFileSync(`${dir}/check.vcl`, 'vcl 4.1;\nimport xkey;\nbackend b { .host = "127.0.0.1"; .port = "9"; }\n');
        execFileSync(varnishd, ['-C', '-f', `${dir}/check.vcl`, '-n', `${dir}/n`], { stdio: 'ignore' });
        vmod = true;
      } catch {
        vmod = false;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    if (varnishd !== undefined && vmod) return varnishd;
    const message = varnishd === undefined ? 'varnishd is not installed' : 'the xkey vmod (varnish-modules) is not installed';
    if (process.env.CI) throw new Error(`${message} (install it with: ${VARNISH.install}); CI needs it, so the suite fails instead of skipping.`);
    process.stderr.write(`\n  NOTICE: skipping the Varnish suites: ${message} (install it with: ${VARNISH.install})\n\n`);
    return undefined;
  })();
  return varnishAnswer;
}
