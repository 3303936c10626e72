/**
 * `page-dumper/adapter`: what an HTTP adapter is written with — the protocol between the engine
 * and a framework, not something an application calls. Apps use `page-dumper` and an adapter
 * (`page-dumper/node`, `/fastify`, `/koa`, `/hono`, `/fetch`).
 *
 * It follows semver with the package, as every entry point does, but it is lower level than
 * `page-dumper`: it names the engine's steps, so a new major version (a new minor one while the
 * package is 0.x) is more likely to change it than the application API.
 *
 * An adapter translates a request in and writes out what it is handed; the decisions and the bytes
 * come from the engine:
 *
 * ```ts
 * import { isBypass } from 'page-dumper/adapter';
 *
 * const key = dumper.keyFor(method, target, headers);     // counts a bypass
 * if (isBypass(key)) ...                                  // run the app; for an unsafe method, then dumper.afterUnsafe()
 * const entry = await dumper.get(key, headers);
 * if (entry) send(dumper.reply(entry, method, headers));  // status, headers, `Age`, body: 304s and encodings done
 * const plan = await dumper.beginFill(key, method, headers);
 * // plan.kind === 'entry': send(dumper.reply(plan.entry, method, headers, true))
 * // plan.kind === 'pass':  run the app, store nothing
 * // plan.kind === 'fill':  give the app the request plan.fill.view describes, run it inside
 * //   plan.fill.run(), report plan.fill.head(status, headers) and plan.fill.complete(status,
 * //   headers, body), or plan.fill.abandon(reason)
 * // the app's response goes out with dumper.cacheStatusHeader (MISS or BYPASS) and, with the
 * // option cacheStatus, a Cache-Status made by appendCacheStatus() from dumper.cacheStatus;
 * // a GET or HEAD passed through without storing (a bypass, a pass) also gets, when
 * // dumper.edgePurging, the headers of dumper.passThroughHeaders(method, getResponseHeader)
 * // decisions are logged with dumper.logDecision('found' | "didn't find" | ..., { method, path, key })
 * ```
 *
 * `dumper.get()` and `dumper.beginFill()` answer without a promise when the store is synchronous
 * (`MemoryStore`): awaiting only what is a promise answers such a hit in the same tick. Response
 * headers are flat `[name, value, ...]` lists with lower-case names; request headers are a
 * `HeaderSource` (Node's `IncomingHttpHeaders` or a Fetch `Headers`).
 */
export { appendCacheStatus, isBypass } from '../core/dumper.js';
// A type only: fills are made by `dumper.beginFill()`, never by an adapter (the published types
// would otherwise offer a constructor without arguments, the real one being internal).
export type { AppView, Bypass, BypassReason, CacheStatusValues, Fill, MissPlan, Reply, UnsafeResponse } from '../core/dumper.js';
export type { Representation } from '../core/encoding.js';
export type { HeaderSource } from '../core/http.js';
export { ageOf, notModified, notModifiedHeaders, readHeader } from '../core/http.js';
export type { Log, LogFields } from '../core/log.js';
export type { StoredEntry } from '../core/store.js';
