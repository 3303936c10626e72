// nginx variants of bench/compressed.mjs: Debian's nginx (`apt-get install nginx
// libnginx-mod-http-brotli-static`) serving the bench page from a file, as a child process
// (`daemon off`, one worker process), with its own configuration, files and temp paths in a
// temporary directory, on a loopback port. The server object has what the harness's `measure()`
// uses (`variant`, `port`, `stats()`, `stop()`): `stats().cpu` is the CPU time of the master and
// worker processes, from /proc/<pid>/task/*/schedstat (µs), so it compares with the node
// servers' `process.cpuUsage()`.
//
//   nginx-gzip:   `gzip on; gzip_comp_level 6; gzip_vary on;` compresses the page on every request
//                 (text/html is always in gzip_types; listing it again only makes nginx warn).
//   nginx-static: `brotli_static on; gzip_static on; gzip_vary on;` sends page.html.br or
//                 page.html.gz made once beforehand (br as page-dumper stores it: quality 9,
//                 lgwin 16; gzip level 6): the ceiling of a compressed hit, no target.
//
// Both: `access_log off` (the node servers log nothing), `sendfile on` and `tcp_nopush on` (as in
// Debian's nginx.conf), `keepalive_requests` unlimited in practice (node closes no keep-alive
// connection after a number of requests; nginx's default 1000 would make wrk reconnect), no
// open_file_cache (Debian's default: each request opens and stats the file).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { PAGE } from './page.mjs';
import { brotliPage, gzipPage } from './compressed.mjs';

const NGINX = process.env.BENCH_NGINX ?? 'nginx';
const BROTLI_STATIC_MODULE = '/usr/lib/nginx/modules/ngx_http_brotli_static_module.so';

/** `nginx -v`'s version, or undefined when nginx is not installed. */
export function nginxVersion() {
  // `nginx -v` prints to stderr.
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return /nginx\/(\S+)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1];
}

/** Whether the brotli_static module is there (libnginx-mod-http-brotli-static). */
export const brotliStaticAvailable = () => existsSync(BROTLI_STATIC_MODULE);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function config(mode, dir, port) {
  const compression =
    mode === 'static'
      ? ['brotli_static on;', 'gzip_static on;', 'gzip_vary on;']
      : ['gzip on;', 'gzip_comp_level 6;', 'gzip_vary on;'];
  return [
    mode === 'static' ? `load_module ${BROTLI_STATIC_MODULE};` : '',
    'worker_processes 1;',
    'daemon off;',
    'master_process on;',
    `pid ${dir}/nginx.pid;`,
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    '  types { text/html html; }',
    '  default_type application/octet-stream;',
    '  charset utf-8;',
    '  access_log off;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  keepalive_timeout 65;',
    '  keepalive_requests 100000000;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp-${t};`),
    '  server {',
    `    listen 127.0.0.1:${port};`,
    `    root ${dir}/www;`,
    ...compression.map((l) => `    ${l}`),
    '    location /page/ { rewrite ^ /page.html break; }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** CPU time (µs, every thread) and RSS (bytes) of the processes `pids`, from /proc. */
function procCpu(pids) {
  let cpu = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      for (const t of readdirSync(`/proc/${pid}/task`)) cpu += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1000;
      rss += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
    } catch {
      // gone
    }
  }
  return { cpu, rss };
}

/** The children of `pid` (nginx's workers), from /proc. */
function childrenOf(pid) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Starts nginx for `variant` (`variant.nginx` is 'gzip' or 'static') and resolves once it accepts
 * connections and its worker is running.
 */
export async function startNginx(variant) {
  const mode = variant.nginx;
  const dir = mkdtempSync(join(os.tmpdir(), `page-dumper-bench-${variant.name}-`));
  // The worker runs as nobody when the master is root: it must read the files.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'www'), { mode: 0o755 });
  writeFileSync(join(dir, 'www/page.html'), PAGE, { mode: 0o644 });
  if (mode === 'static') {
    writeFileSync(join(dir, 'www/page.html.br'), brotliPage(), { mode: 0o644 });
    writeFileSync(join(dir, 'www/page.html.gz'), gzipPage(), { mode: 0o644 });
  }
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), config(mode, dir, port));
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = false;
  let stopped = false;
  child.on('exit', (code, signal) => {
    exited = true;
    if (!stopped) {
      console.error(`nginx (${variant.name}) exited with ${code ?? signal}`);
      process.exitCode = 1;
    }
  });
  // Ready: the port accepts connections and the master has its worker.
  const deadline = Date.now() + 10_000;
  let workers = [];
  for (;;) {
    if (exited) throw new Error(`${variant.name}: nginx exited at startup (see its messages above)`);
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    workers = childrenOf(child.pid);
    if (up && workers.length > 0) break;
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`${variant.name}: nginx did not start in 10 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pids = [child.pid, ...workers];
  return {
    variant,
    child,
    port,
    workers,
    dir,
    // threads.main: the worker's CPU (it answers every request, on one thread); all: master and worker.
    stats: async () => {
      const all = procCpu(pids);
      return { renders: 0, cpu: all.cpu, rss: all.rss, threads: { main: procCpu(workers).cpu, all: all.cpu } };
    },
    /** The server's `flush` command: nothing to flush. */
    call: async (msg, reply) => ({ type: reply }),
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (!exited) {
        child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
        child.kill('SIGTERM');
        setTimeout(() => !exited && child.kill('SIGKILL'), 2000).unref();
      } else rmSync(dir, { recursive: true, force: true });
    },
  };
}
