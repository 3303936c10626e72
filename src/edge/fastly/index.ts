import type { Purger } from '../../core/purge.js';
import { PurgeError } from '../../core/purge.js';
import { checkKnown, checkString, checkTimeout, checkUrl, send, type PurgeRequestOptions } from '../http.js';

export interface FastlyPurgerOptions extends PurgeRequestOptions {
  /** The Fastly service whose cache is purged. */
  readonly serviceId: string;
  /** An API token with the `purge_select` scope, sent as `Fastly-Key`. */
  readonly token: string;
  /**
   * Soft purges (`Fastly-Soft-Purge: 1`): Fastly marks the pages stale instead of removing them,
   * and may serve them stale (`stale-while-revalidate`, `stale-if-error`) while it fetches them
   * again. Off by default: a stale page is what purging is for.
   * @default false
   */
  readonly soft?: boolean;
  /** The API's base URL (a test server, a proxy). @default 'https://api.fastly.com' */
  readonly endpoint?: string;
}

/**
 * Purges Fastly by surrogate key. Pages carry their tags in `Surrogate-Key` (space-separated; the
 * header may be 16,384 bytes, a key 1,024 bytes), and a purge is `POST /service/{id}/purge` with
 * up to 256 keys in a JSON body `{"surrogate_keys": [...]}`, authenticated with `Fastly-Key`
 * (Fastly's API reference, "Purging": "Purge multiple surrogate keys").
 */
export function fastlyPurger(options: FastlyPurgerOptions): Purger {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: fastlyPurger() needs options: { serviceId, token }');
  checkKnown('fastlyPurger', options, ['serviceId', 'token', 'soft', 'endpoint', 'timeout']);
  const serviceId = checkString('fastlyPurger', 'serviceId', options.serviceId);
  if (typeof options.token !== 'string' || options.token === '') throw new TypeError('page-dumper: fastlyPurger() option "token" must be a non-empty string');
  if (options.soft !== undefined && typeof options.soft !== 'boolean') throw new TypeError('page-dumper: fastlyPurger() option "soft" must be a boolean');
  const base = checkUrl('fastlyPurger', 'endpoint', options.endpoint ?? 'https://api.fastly.com').href.replace(/\/$/, '');
  const timeout = checkTimeout('fastlyPurger', options.timeout);
  const token = options.token;
  const soft = options.soft === true;
  const url = `${base}/service/${encodeURIComponent(serviceId)}/purge`;
  return Object.freeze({
    id: `fastly ${serviceId}`,
    tagHeader: Object.freeze({ name: 'surrogate-key', separator: ' ', maxBytes: 16_384, maxTagBytes: 1024 }),
    freshnessHeader: 'surrogate-control',
    maxBatch: 256,
    async purge(tags: readonly string[]): Promise<void> {
      const headers: Record<string, string> = { 'fastly-key': token, 'content-type': 'application/json', accept: 'application/json' };
      if (soft) headers['fastly-soft-purge'] = '1';
      const body = await send(url, { method: 'POST', headers, body: JSON.stringify({ surrogate_keys: tags }) }, timeout, 'Fastly purge');
      // The answer maps each key to a purge id; a key missing from it was not purged.
      let answer: unknown;
      try {
        answer = JSON.parse(body);
      } catch {
        throw new PurgeError('Fastly purge: the answer is not JSON');
      }
      if (answer === null || typeof answer !== 'object') throw new PurgeError('Fastly purge: unexpected answer');
      const missing = tags.filter((t) => !Object.hasOwn(answer as object, t));
      if (missing.length !== 0) throw new PurgeError(`Fastly purge: ${missing.length} keys not acknowledged`);
    },
  });
}
