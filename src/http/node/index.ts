/**
 * page-dumper for node:http, Connect and Express.
 *
 * `withDumper(dumper, listener)` is the front door: hits are answered before the app is called.
 * `dumperMiddleware(dumper)` is the same engine as Connect/Express middleware; mount it first.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { handle } from './engine.js';
import { assertDumper, type Dumper } from '../../core/dumper.js';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;
type Next = (err?: unknown) => void;

/** A Connect/Express middleware: `(req, res, next) => void`. */
export type DumperMiddleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/**
 * Wraps any node request listener (an Express or Connect app, `koaApp.callback()`, a plain
 * handler) so cached pages are served without calling it:
 * `http.createServer(withDumper(dumper, app))`.
 */
export function withDumper(dumper: Dumper, listener: Listener): Listener {
  if (typeof listener !== 'function') {
    throw new TypeError('page-dumper: withDumper(dumper, listener) needs a request listener function');
  }
  assertDumper(dumper, 'withDumper');
  return function dumperFrontDoor(req, res) {
    handle({ dumper, req, res, target: req.url ?? '/', app: () => listener(req, res) });
  };
}

/**
 * Connect/Express middleware: `app.use(dumperMiddleware(dumper))`, as the first middleware, so a
 * hit skips everything after it. Middleware mounted before it runs on every request, and the
 * headers it sets are not stored (they are set afresh each time).
 */
export function dumperMiddleware(dumper: Dumper): DumperMiddleware {
  assertDumper(dumper, 'dumperMiddleware');
  return function dumper_(req, res, next) {
    const original = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    handle({ dumper, req, res, target: original, app: next, merge: true });
  };
}
