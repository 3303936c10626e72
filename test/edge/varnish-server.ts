/**
 * A real varnishd for the edge suites: started in front of a backend on loopback with a VCL that
 * includes the shipped `varnish/page-dumper.vcl` and calls its three subroutines, working
 * directory under os.tmpdir(), random ports, stopped (and its directory removed) by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { reachable } from '../support/services.js';

export const SHIPPED_VCL = resolve(import.meta.dirname, '../../varnish/page-dumper.vcl');

export interface Varnish {
  readonly url: string;
  readonly port: number;
  /** What varnishd wrote to stderr and stdout. */
  readonly output: () => string;
  stop(): Promise<void>;
}

/** A port nothing listens on now (the OS's choice, then released). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = net.createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => res(port));
    });
  });
}

export async function startVarnish(varnishd: string, backendPort: number): Promise<Varnish> {
  const dir = mkdtempSync(join(tmpdir(), 'page-dumper-varnish-'));
  // Started as root, varnishd compiles the VCL as its own unprivileged user, who must read it.
  chmodSync(dir, 0o755);
  const vcl = join(dir, 'site.vcl');
  writeFileSync(
    vcl,
    `vcl 4.1;
import std;
backend default { .host = "127.0.0.1"; .port = "${backendPort}"; }
include "${SHIPPED_VCL}";
sub vcl_recv { call page_dumper_recv; }
sub vcl_backend_response { call page_dumper_backend_response; }
sub vcl_deliver { call page_dumper_deliver; }
`,
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let out = '';
    const child: ChildProcess = spawn(
      varnishd,
      ['-F', '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', vcl, '-n', join(dir, 'n'), '-s', 'malloc,32m', '-p', 'default_grace=0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let up = false;
    for (let i = 0; i < 200 && child.exitCode === null; i++) {
      if (await reachable(port, '127.0.0.1', 200)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (up) {
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        output: () => out,
        async stop() {
          if (child.exitCode === null) child.kill('SIGKILL');
          await exited;
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    // Another program took the port between our look and varnishd's bind: try another one.
    if (attempt >= 2) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`varnishd did not start:\n${out}`);
    }
  }
}
