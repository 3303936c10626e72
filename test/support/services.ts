/**
 * The real services some suites need: Redis, PostgreSQL and MariaDB on their standard loopback
 * ports. A suite asks once, at the top of its file:
 *
 * ```ts
 * const hasRedis = await needService('redis');
 * describe.skipIf(!hasRedis)('RedisStore', () => { ... });
 * ```
 *
 * Under `CI=true` a missing service throws, so the file fails instead of skipping. Elsewhere (a
 * laptop without the service) the suite is skipped and a notice says why, on stderr.
 */
import net from 'node:net';

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
