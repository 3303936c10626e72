/**
 * The site the ORM integrations' full-stack tests (the ports of django-dumper's tests) serve
 * through `withDumper`: a plain-text app of paths, the SQL statements each request ran (counted
 * by the ORM's logger), and the checks they make (`warm`, `expectMiss`, `expectHit`).
 */
import http from 'node:http';
import { expect } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import type { Dumper } from '../../src/index.js';
import type { Mounted } from './behaviour.js';
import { listen } from './listen.js';

export interface Page {
  status: number;
  cache: string | null;
  body: string;
  /** SQL statements the request ran. */
  queries: number;
}

/** What renders a path: its status and plain-text body. */
export type OrmApp = (path: string) => Promise<{ status: number; body: string }>;

/** A site served through `withDumper` (the front door: a hit never reaches the app). */
export class Site {
  readonly #mounted: Mounted;
  readonly #queries: () => number;

  private constructor(mounted: Mounted, queries: () => number) {
    this.#mounted = mounted;
    this.#queries = queries;
  }

  /** `queries`: the number of statements the app's ORM has sent so far (read before and after each request). */
  static async start(dumper: Dumper, queries: () => number, app: OrmApp): Promise<Site> {
    const listener: http.RequestListener = (req, res) => {
      app(new URL(req.url ?? '/', 'http://x').pathname).then(
        ({ status, body }) => {
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(body);
        },
        (error: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(error.stack);
        },
      );
    };
    return new Site(await listen(withDumper(dumper, listener)), queries);
  }

  async get(path: string): Promise<Page> {
    const before = this.#queries();
    const res = await fetch(this.#mounted.url + path);
    const body = await res.text();
    return { status: res.status, cache: res.headers.get('x-cache'), body, queries: this.#queries() - before };
  }

  /** Gets each page until it is stored: the second request must be a HIT. */
  async warm(...paths: string[]): Promise<void> {
    for (const path of paths) {
      const first = await this.get(path);
      expect(first.status, `${path}: ${first.body}`).toBe(200);
      const second = await this.get(path);
      expect(second.cache, path).toBe('HIT');
    }
  }

  /** Expects each page to be rendered again (its entry was invalidated). */
  async expectMiss(...paths: string[]): Promise<Page[]> {
    const pages: Page[] = [];
    for (const path of paths) {
      const page = await this.get(path);
      expect(page.cache, `${path} should have been invalidated`).toBe('MISS');
      pages.push(page);
    }
    return pages;
  }

  async expectHit(...paths: string[]): Promise<void> {
    for (const path of paths) expect((await this.get(path)).cache, `${path} should still be cached`).toBe('HIT');
  }

  close(): Promise<void> {
    return this.#mounted.close();
  }
}

/** A logger that records warn- and error-level messages (the model-wide fallback logs one). */
export function recordingLogger() {
  const warnings: string[] = [];
  const errors: string[] = [];
  return {
    warnings,
    errors,
    logger: {
      isLevelEnabled: (level: string) => level !== 'debug',
      debug() {},
      warn(message: string) {
        warnings.push(message);
      },
      error(message: string) {
        errors.push(message);
      },
    },
  };
}
