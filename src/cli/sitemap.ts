/**
 * Reading sitemaps for `page-dumper warm`: from a file or a URL, gzip'd or not, a urlset or an
 * index of urlsets.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { parseSitemap } from '../core/warm.js';

/** The protocol's bound for one sitemap file, uncompressed (sitemaps.org). */
const MAX_SITEMAP_BYTES = 50 * 2 ** 20;

/** A sitemap that could not be read: a missing file, an HTTP error, a document that is no sitemap. */
export class SitemapError extends Error {
  override readonly name = 'SitemapError';
}

export interface SitemapSource {
  /** Where pages (and the sitemaps an index lists) are fetched from: their origin is replaced by this one's. */
  readonly base: URL;
  readonly headers: Record<string, string>;
  readonly timeout: number;
  readonly fetch: (input: string, init: RequestInit) => Promise<Response>;
}

/** `loc` on `base`'s origin: the path and query of `loc` (resolved against `base` if relative). */
export function rebase(loc: string, base: URL): string {
  const u = new URL(loc, base);
  return new URL(u.pathname + u.search, base.origin).href;
}

async function read(where: string, source: SitemapSource): Promise<string> {
  let bytes: Buffer;
  if (/^https?:\/\//i.test(where)) {
    let res: Response;
    try {
      res = await source.fetch(where, { headers: source.headers, signal: AbortSignal.timeout(source.timeout) });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      throw new SitemapError(`could not fetch the sitemap ${where}: ${error instanceof Error ? error.message : String(error)}${cause ? `: ${cause}` : ''}`);
    }
    if (!res.ok) throw new SitemapError(`could not fetch the sitemap ${where}: HTTP ${res.status}`);
    bytes = Buffer.from(await res.arrayBuffer());
  } else {
    try {
      bytes = await readFile(where);
    } catch (error) {
      throw new SitemapError(`could not read the sitemap ${where}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(error)}`);
    }
  }
  // A .xml.gz is served as application/gzip (fetch decodes only a Content-Encoding) or read from disk.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_SITEMAP_BYTES });
    } catch (error) {
      throw new SitemapError(`could not gunzip the sitemap ${where}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (bytes.length > MAX_SITEMAP_BYTES) throw new SitemapError(`the sitemap ${where} is larger than 50 MiB`);
  return bytes.toString('utf8');
}

/**
 * The page URLs of the sitemap at `where` (a file path or an http(s) URL), on `source.base`'s
 * origin, without duplicates, in order. An index's sitemaps are read in turn (from the base
 * too); an index listed by an index is refused, as the protocol has it.
 */
export async function sitemapPages(where: string, source: SitemapSource): Promise<{ pages: string[]; sitemaps: string[] }> {
  const parse = (xml: string, from: string) => {
    try {
      return parseSitemap(xml);
    } catch (error) {
      throw new SitemapError(`${from}: ${error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error)}`);
    }
  };
  const top = parse(await read(where, source), where);
  const sitemaps = [where];
  const pages = new Set<string>();
  const rebased = (loc: string, from: string) => {
    try {
      return rebase(loc, source.base);
    } catch {
      throw new SitemapError(`${from}: not a URL: ${JSON.stringify(loc)}`);
    }
  };
  if (top.kind === 'urlset') {
    for (const loc of top.locs) pages.add(rebased(loc, where));
  } else {
    for (const loc of top.locs) {
      const child = rebased(loc, where);
      const map = parse(await read(child, source), child);
      if (map.kind !== 'urlset') throw new SitemapError(`${child}: a sitemap index lists another index; only urlsets may be listed`);
      sitemaps.push(child);
      for (const page of map.locs) pages.add(rebased(page, child));
    }
  }
  return { pages: [...pages], sitemaps };
}
