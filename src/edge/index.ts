/**
 * `page-dumper/purge`: edge caches in front of the site, kept fresh by tag. Pass them to
 * `createDumper({ purgers: [...] })`; see docs/edge.md.
 */
export { varnishPurger } from './varnish/index.js';
export type { VarnishPurgerOptions } from './varnish/index.js';
export { fastlyPurger } from './fastly/index.js';
export type { FastlyPurgerOptions } from './fastly/index.js';
export { cloudflarePurger } from './cloudflare/index.js';
export type { CloudflarePurgerOptions } from './cloudflare/index.js';
export { PurgeError, edgeTag, edgeBucket, edgeHeaderValue, EDGE_ALL_TAG, EDGE_BUCKETS } from '../core/purge.js';
export type { Purger, EdgeTagHeader, FlushOptions, PurgeStats, PurgeSettings } from '../core/purge.js';
export type { PurgeRequestOptions } from './http.js';
