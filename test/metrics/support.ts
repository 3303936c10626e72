/** A small site behind the node front door, for the metrics tests: routes whose outcome is known. */
import type http from 'node:http';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, type Dumper, type DumperOptions } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';

export interface Gate {
  /** Resolves when a render reached the gate. */
  readonly reached: Promise<void>;
  release(): void;
}

export interface MetricsSite {
  readonly dumper: Dumper;
  readonly m: Mounted;
  /** GET (or `init.method`) a path; resolves with the response read to its end. */
  get(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: string }>;
  /** The next render of `/slow` waits for `release()`. */
  gate(): Gate;
  close(): Promise<void>;
}

/**
 * Routes: `/page/*` a 200 HTML page; `/private` with `Cache-Control: private`; `/missing` a 404;
 * `/big` 4 KiB; `/slow` a page that waits at the gate; `/tagged/<t>` a page tagged `<t>`.
 */
export async function metricsSite(options: DumperOptions = {}): Promise<MetricsSite> {
  const dumper = createDumper({ logger: false, trackRenders: true, ...options });
  let gate: { reached: () => void; wait: Promise<void> } | undefined;
  const app: http.RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      res.end(body);
    };
    if (path.startsWith('/page/')) return send(200, `<p>${path}</p>`);
    if (path === '/private') return send(200, 'private', { 'cache-control': 'private' });
    if (path === '/missing') return send(404, 'not found');
    if (path === '/big') return send(200, 'x'.repeat(4096));
    if (path.startsWith('/tagged/')) {
      dumper.tag(path.slice('/tagged/'.length));
      return send(200, `<p>${path}</p>`);
    }
    if (path === '/slow') {
      const g = gate;
      gate = undefined;
      if (g === undefined) return send(200, 'slow');
      g.reached();
      void g.wait.then(() => send(200, 'slow'));
      return;
    }
    if (req.method === 'POST') return send(204, '');
    return send(404, 'no route');
  };
  const m = await listen(withDumper(dumper, app));
  return {
    dumper,
    m,
    async get(path, init = {}) {
      const r = await fetch(m.url + path, { redirect: 'manual', ...init });
      return { status: r.status, headers: r.headers, body: await r.text() };
    },
    gate() {
      let reached!: () => void;
      let release!: () => void;
      const reachedP = new Promise<void>((r) => (reached = r));
      const wait = new Promise<void>((r) => (release = r));
      gate = { reached, wait };
      return { reached: reachedP, release };
    },
    async close() {
      await m.close();
      await dumper.close();
    },
  };
}

/** Polls `check` (every 10 ms, at most 2 s) until it is true; returns its last answer. */
export async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}
