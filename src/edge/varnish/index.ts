import type { Purger } from '../../core/purge.js';
import { checkKnown, checkTimeout, checkUrl, send, type PurgeRequestOptions } from '../http.js';

export interface VarnishPurgerOptions extends PurgeRequestOptions {
  /**
   * Where Varnish listens, one URL or one per instance (`http://127.0.0.1:6081`). Each instance
   * has a purge queue of its own, named after its URL (in any order, the same queues): a purge is
   * sent to each until it answered with a 2xx. The VCL shipped as `page-dumper/varnish/page-dumper.vcl`
   * answers the `PURGE` requests it sends (from the addresses its `page_dumper_purgers` ACL allows).
   */
  readonly url: string | readonly string[];
  /**
   * `xkey.softpurge` instead of `xkey.purge`: the pages stay in grace and may be served stale
   * while Varnish fetches them again. Off by default: a stale page is what purging is for.
   * @default false
   */
  readonly soft?: boolean;
}

/**
 * Purges Varnish by tag through xkey (Debian's `varnish-modules`): pages carry their tags in the
 * `xkey` header, and a purge is `PURGE /` with the tags in `xkey-purge`. Limits: Varnish reads
 * header lines of up to `http_req_hdr_len` and `http_resp_hdr_len` bytes (8 KiB by default), so a
 * page's tags and a purge's tags stay within 6 KiB.
 */
export function varnishPurger(options: VarnishPurgerOptions): Purger {
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: varnishPurger() needs options: { url }');
  checkKnown('varnishPurger', options, ['url', 'soft', 'timeout']);
  const list = typeof options.url === 'string' ? [options.url] : options.url;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError('page-dumper: varnishPurger() option "url" must be a URL or a non-empty array of URLs');
  }
  const urls = list.map((u) => checkUrl('varnishPurger', 'url', u).href);
  if (options.soft !== undefined && typeof options.soft !== 'boolean') throw new TypeError('page-dumper: varnishPurger() option "soft" must be a boolean');
  const timeout = checkTimeout('varnishPurger', options.timeout);
  const soft = options.soft === true;
  // One queue per instance, named after its URL: a deploy that adds, drops or reorders instances
  // still delivers what the previous one queued for each instance it keeps.
  const distinct = [...new Set(urls)].sort();
  const instance = (list: readonly string[]): Purger =>
    Object.freeze({
      id: `varnish ${list.join(' ')}`,
      tagHeader: Object.freeze({ name: 'xkey', separator: ' ', maxBytes: 6144, maxTagBytes: 256 }),
      freshnessHeader: 'surrogate-control',
      maxBatch: 1000,
      maxBatchBytes: 6144,
      async purge(tags: readonly string[]): Promise<void> {
        const headers: Record<string, string> = { 'xkey-purge': tags.join(' ') };
        if (soft) headers['xkey-softpurge'] = '1';
        await Promise.all(list.map((url) => send(url, { method: 'PURGE', headers }, timeout, 'Varnish purge')));
      },
    });
  if (distinct.length === 1) return instance(distinct);
  return Object.freeze({ ...instance(distinct), instances: Object.freeze(distinct.map((u) => instance([u]))) });
}
