import type { Purger } from '../../core/purge.js';
import { PurgeError } from '../../core/purge.js';
import { checkKnown, checkString, checkTimeout, checkUrl, send, type PurgeRequestOptions } from '../http.js';

export interface CloudflarePurgerOptions extends PurgeRequestOptions {
  /** The zone whose cache is purged. */
  readonly zoneId: string;
  /** An API token with the "Cache Purge" permission for the zone, sent as `Authorization: Bearer`. */
  readonly token: string;
  /**
   * Tags per purge request: Cloudflare takes 100 per call on every plan, 500 on Enterprise.
   * @default 100
   */
  readonly maxBatch?: number;
  /** The API's base URL (a test server, a proxy). @default 'https://api.cloudflare.com/client/v4' */
  readonly endpoint?: string;
}

/**
 * Purges Cloudflare by cache tag. Pages carry their tags in `Cache-Tag` (comma-separated, at most
 * 16 KB in all; Cloudflare removes it before the response reaches visitors), and a purge is `POST
 * /zones/{zone}/purge_cache` with `{"tags": [...]}`, authenticated with a bearer token
 * (developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/ and the API reference,
 * "Purge Cached Content"). Cloudflare compares tags case-insensitively: two tags that differ only
 * in case purge each other's pages, which is harmless.
 */
export function cloudflarePurger(options: CloudflarePurgerOptions): Purger {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: cloudflarePurger() needs options: { zoneId, token }');
  checkKnown('cloudflarePurger', options, ['zoneId', 'token', 'maxBatch', 'endpoint', 'timeout']);
  const zoneId = checkString('cloudflarePurger', 'zoneId', options.zoneId);
  if (typeof options.token !== 'string' || options.token === '') throw new TypeError('page-dumper: cloudflarePurger() option "token" must be a non-empty string');
  const maxBatch = options.maxBatch ?? 100;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 500) {
    throw new TypeError(`page-dumper: cloudflarePurger() option "maxBatch" must be an integer from 1 to 500, got ${String(options.maxBatch)}`);
  }
  const base = checkUrl('cloudflarePurger', 'endpoint', options.endpoint ?? 'https://api.cloudflare.com/client/v4').href.replace(/\/$/, '');
  const timeout = checkTimeout('cloudflarePurger', options.timeout);
  const token = options.token;
  const url = `${base}/zones/${encodeURIComponent(zoneId)}/purge_cache`;
  return Object.freeze({
    id: `cloudflare ${zoneId}`,
    tagHeader: Object.freeze({ name: 'cache-tag', separator: ',', maxBytes: 16_000, maxTagBytes: 1024 }),
    freshnessHeader: 'cdn-cache-control',
    maxBatch,
    async purge(tags: readonly string[]): Promise<void> {
      const body = await send(
        url,
        { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ tags }) },
        timeout,
        'Cloudflare purge',
      );
      let answer: { success?: unknown; errors?: unknown } | undefined;
      try {
        answer = JSON.parse(body) as typeof answer;
      } catch {
        throw new PurgeError('Cloudflare purge: the answer is not JSON');
      }
      if (answer?.success !== true) throw new PurgeError(`Cloudflare purge: not successful ${JSON.stringify(answer?.errors ?? [])}`);
    },
  });
}
