import { Readable } from 'node:stream';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
/**
 * A framework-neutral test site. Every HTTP adapter mounts it in its own framework's way, then the
 * shared behaviour suite runs against it. It counts renders per path so tests can tell a hit from
 * a re-render, and keeps a tiny in-memory "database" with gates to hold a render mid-flight.
 */
import type { Dumper } from '../../src/index.js';

export interface SiteRequest {
  method: string;
  /** Path without query. */
  path: string;
  query: URLSearchParams;
  /** The full request target the app was given (path and query as the framework saw them). */
  url: string;
  /** Reads one request header (lower-case name), as apps do: only the headers asked for are read. */
  header(name: string): string | undefined;
}

export interface SiteResponse {
  status: number;
  headers: Record<string, string | string[]>;
  /** The body, as chunks written one after another (with a pause between them when `pauseMs`). */
  chunks: Array<string | Uint8Array>;
  pauseMs?: number;
  /**
   * The app aborts the response after its first chunk: a node app destroys the response, then
   * still calls `end()` (at once, in a microtask, on the next tick, or on the next turn); a
   * framework body stream or a fetch body fails.
   */
  abort?: 'sync' | 'microtask' | 'nextTick' | 'immediate';
}

/**
 * An article of about 12 KB of HTML: large and repetitive enough to compress well, as pages do.
 * The render number is in it, so a new render has other bytes.
 */
export function article(id: string, n: number): string {
  let html = `<!doctype html><html><head><title>Article ${id}</title></head><body><h1>Article ${id}</h1><p>render ${n}</p><ul>`;
  for (let i = 0; html.length < 12_000; i++) html += `<li class="flavour"><a href="/flavour/${i}/">Flavour ${i} of article ${id}</a> creamy, fresh, churned daily</li>\n`;
  return html + '</ul></body></html>\n';
}

/** One output buffer that the app reuses for every `/reuse/...` page, as some template engines do. */
const reused = new Uint8Array(4096);

export class Site {
  readonly renders = new Map<string, number>();
  readonly db = new Map<string, string>([
    ['1', 'vanilla'],
    ['2', 'chocolate'],
  ]);
  readonly seen: SiteRequest[] = [];
  readonly #gates = new Map<string, { promise: Promise<void>; release: () => void; reached: () => void; wasReached: Promise<void> }>();

  constructor(readonly dumper: Dumper) {}

  count(path: string): number {
    return this.renders.get(path) ?? 0;
  }

  /** Creates a gate: a render of `/slow/<id>?gate=<name>` reads the data, then waits at it. */
  gate(name: string): { release(): void; reached: Promise<void> } {
    let release!: () => void;
    let reached!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    const wasReached = new Promise<void>((r) => (reached = r));
    this.#gates.set(name, { promise, release, reached, wasReached });
    return { release, reached: wasReached };
  }

  async handle(req: SiteRequest): Promise<SiteResponse> {
    this.seen.push(req);
    const key = `${req.method} ${req.path}`;
    const n = (this.renders.get(req.path) ?? 0) + 1;
    this.renders.set(req.path, n);
    void key;
    const html = (s: string, extra: Record<string, string | string[]> = {}): SiteResponse => ({
      status: 200,
      headers: { 'content-type': 'text/html; charset=utf-8', ...extra },
      chunks: [s],
    });
    const p = req.path.toLowerCase().replace(/\/+$/, '') || '/';
    const parts = p.split('/').filter(Boolean);
    if (req.method === 'POST' && parts[0] === 'page') {
      const to = req.query.get('to');
      return to === null ? html(`posted ${req.path}`) : { status: 303, headers: { location: to }, chunks: [''] };
    }
    if (req.method === 'POST' && parts[0] === 'move') {
      const to = req.query.get('to') ?? '/page/moved';
      return { status: 303, headers: { location: to === 'absolute' ? `http://${req.header('host') ?? ''}/page/moved` : to }, chunks: [''] };
    }
    switch (parts[0]) {
      case undefined:
        return html(`<h1>home</h1> render ${n}`);
      case 'page':
      case 'admin':
        return html(`<h1>${req.path}</h1> render ${n} q=${req.query.toString()}`, { 'x-app': 'yes', link: ['</a.css>; rel=preload', '</b.js>; rel=preload'] });
      case 'data': {
        const id = parts[1] ?? '';
        this.dumper.tag(`item:${id}`);
        return html(`item ${id} = ${this.db.get(id) ?? 'none'} render ${n}`);
      }
      case 'slow': {
        const id = parts[1] ?? '';
        const value = this.db.get(id) ?? 'none';
        this.dumper.tag(`item:${id}`);
        const gate = req.query.get('gate');
        const g = gate ? this.#gates.get(gate) : undefined;
        if (g) {
          g.reached();
          await g.promise;
        } else {
          await new Promise((r) => setTimeout(r, Number(req.query.get('ms') ?? 50)));
        }
        const cookie = req.query.get('cookie');
        return html(`slow ${id} = ${value} render ${n}`, cookie ? { 'set-cookie': `sid=${cookie}-${n}` } : {});
      }
      case 'cookie':
        return html(`cookie render ${n}`, { 'set-cookie': `sid=${n}; HttpOnly` });
      case 'private':
        return html(`private render ${n}`, { 'cache-control': 'private, max-age=60' });
      case 'nostore':
        return html(`nostore render ${n}`, { 'cache-control': 'no-store' });
      case 'nocache':
        return html(`nocache render ${n}`, { 'cache-control': 'no-cache' });
      case 'events':
        return { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${n}\n\n`] };
      case 'public':
        return html(`public render ${n}`, { 'cache-control': 'public, max-age=60' });
      case 'vary-cookie':
        return html(`vary render ${n}`, { vary: 'Cookie' });
      case 'vary-star':
        return html(`vary star render ${n}`, { vary: '*' });
      case 'vary-ae':
        return html(`vary ae render ${n}`, { vary: 'Accept-Encoding' });
      case 'article':
        return html(article(parts[1] ?? '', n), parts[2] === 'weak' ? { etag: `W/"article-${n}"` } : parts[2] === 'strong' ? { etag: `"article-${n}"` } : {});
      case 'app-gzip':
      case 'app-br':
      case 'app-deflate': {
        // A page the app compressed itself (a compression middleware behind the dumper).
        const page = Buffer.from(article(parts[1] ?? '', n));
        const coding = parts[0].slice(4);
        const body = coding === 'gzip' ? gzipSync(page) : coding === 'br' ? brotliCompressSync(page) : deflateSync(page);
        return {
          status: 200,
          headers: { 'content-type': 'text/html; charset=utf-8', 'content-encoding': coding, vary: 'Accept-Encoding', etag: `"app-${coding}-${n}"` },
          chunks: [new Uint8Array(body)],
        };
      }
      case 'app-compress':
        // A coding nothing here decodes (LZW, RFC 9110 §8.4.1.1).
        return { status: 200, headers: { 'content-type': 'text/plain', 'content-encoding': 'compress' }, chunks: [new Uint8Array([0x1f, 0x9d, 0x90, 0x61, 0])] };
      case 'picture':
        return { status: 200, headers: { 'content-type': 'image/png' }, chunks: [new Uint8Array(8192).fill(7)] };
      case 'etag':
        return html(`etag render ${n}`, { etag: 'W/"app-etag"' });
      case 'modified':
        return html(`modified render ${n}`, { 'last-modified': 'Wed, 01 Jan 2025 00:00:00 GMT' });
      case 'stream':
        return { status: 200, headers: { 'content-type': 'text/plain' }, chunks: ['one,', 'two,', new TextEncoder().encode('three'), `,render ${n}`], pauseMs: 5 };
      case 'big':
        return { status: 200, headers: { 'content-type': 'application/octet-stream' }, chunks: Array.from({ length: 40 }, () => new Uint8Array(64 * 1024).fill(n)) };
      case 'huge':
        // More than loopback's socket buffers hold: a client that does not read leaves it ended, unsent.
        return { status: 200, headers: { 'content-type': 'application/octet-stream' }, chunks: [new Uint8Array(32 * 2 ** 20).fill(n)] };
      case 'binary':
        return { status: 200, headers: { 'content-type': 'application/octet-stream' }, chunks: [Uint8Array.from({ length: 512 }, (_, i) => i % 256)] };
      case 'redirect':
        return { status: 301, headers: { location: '/page/a' }, chunks: [''] };
      case 'error':
        return { status: 500, headers: { 'content-type': 'text/plain' }, chunks: [`error render ${n}`] };
      case 'created':
        return { status: 201, headers: { 'content-type': 'text/plain' }, chunks: [`created render ${n}`] };
      case 'echo':
        return html(`echo ${req.query.toString()} render ${n}`);
      case 'headers':
        return html(`host=${req.header('host') ?? ''} xfh=${req.header('x-forwarded-host') ?? ''} xfp=${req.header('x-forwarded-proto') ?? ''} inm=${req.header('if-none-match') ?? ''} render ${n}`);
      case 'who': {
        // A page that greets the visitor by their session cookie, as a session middleware would.
        const user = /(?:^|;\s*)user=([^;]*)/.exec(req.header('cookie') ?? '')?.[1];
        const ms = Number(req.query.get('ms') ?? 0);
        if (ms > 0) await new Promise((r) => setTimeout(r, ms));
        // `?gate=<name>&for=<user>`: that user's render waits at the gate.
        const g = user !== undefined && user === req.query.get('for') ? this.#gates.get(req.query.get('gate') ?? '') : undefined;
        if (g) {
          g.reached();
          await g.promise;
        }
        return html(`hello ${user ?? 'stranger'} render ${n}`);
      }
      case 'canonical':
        // A page that echoes its own URL (a canonical link): whatever reaches the app is stored.
        return html(`<link rel="canonical" href="http://${req.header('host') ?? ''}${req.url}"> render ${n}`);
      case 'reuse': {
        // The page's bytes are written into the shared buffer, and the app hands out that buffer.
        const text = new TextEncoder().encode(`reused ${parts[1] ?? ''} render ${n}`.padEnd(64));
        reused.set(text);
        return { status: 200, headers: { 'content-type': 'text/plain' }, chunks: [reused.subarray(0, text.byteLength)] };
      }
      case 'abort':
        return { status: 200, headers: { 'content-type': 'text/plain' }, chunks: ['partial,', `rest render ${n}`], abort: (req.query.get('how') ?? 'sync') as SiteResponse['abort'] };
      case 'short':
        // Declares more bytes than it sends.
        return { status: 200, headers: { 'content-type': 'text/plain', 'content-length': '100' }, chunks: [`short render ${n}`] };
      case 'hang': {
        const g = this.#gates.get(req.query.get('gate') ?? '');
        g?.reached();
        await g?.promise;
        return html(`hang render ${n}`);
      }
      case 'dated':
        return html(`dated render ${n}`, { date: 'Wed, 01 Jan 2025 00:00:00 GMT', age: '100' });
      default:
        return { status: 404, headers: { 'content-type': 'text/plain' }, chunks: [`not found render ${n}`] };
    }
  }
}

/** Writes a site response to a node `ServerResponse` the way apps do: setHeader, write, end. */
export async function writeNode(res: import('node:http').ServerResponse, r: SiteResponse): Promise<void> {
  res.statusCode = r.status;
  for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  if (r.abort !== undefined) {
    res.write(r.chunks[0]!);
    res.destroy();
    const end = () => res.end(r.chunks[1]);
    if (r.abort === 'sync') end();
    else if (r.abort === 'microtask') queueMicrotask(end);
    else if (r.abort === 'nextTick') process.nextTick(end);
    else setImmediate(end);
    return;
  }
  for (let i = 0; i < r.chunks.length; i++) {
    const c = r.chunks[i]!;
    if (i === r.chunks.length - 1) {
      res.end(c);
    } else {
      res.write(c);
      if (r.pauseMs) await new Promise((x) => setTimeout(x, r.pauseMs));
    }
  }
  if (r.chunks.length === 0) res.end();
}

/**
 * A site response as frameworks that take a body value want it (Koa's ctx.body, Fastify's
 * reply.send): a string or Buffer for one chunk, a stream (with the pauses) for several.
 */
export function bodyValue(r: SiteResponse): string | Buffer | Readable {
  if (r.chunks.length === 1 && r.abort === undefined) {
    const c = r.chunks[0]!;
    // The app's own memory, not a copy: a framework that keeps it would see the app reuse it.
    return typeof c === 'string' ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
  return Readable.from(
    (async function* () {
      for (const c of r.chunks) {
        yield Buffer.from(c);
        if (r.abort !== undefined) throw new Error('the app aborted the response');
        if (r.pauseMs) await new Promise((x) => setTimeout(x, r.pauseMs));
      }
    })(),
  );
}

/** The node-flavoured site request from an `IncomingMessage`. */
export function nodeRequest(req: import('node:http').IncomingMessage, url = req.url ?? '/'): SiteRequest {
  const u = new URL(url, 'http://x');
  const header = (name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
  return { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, url, header };
}
