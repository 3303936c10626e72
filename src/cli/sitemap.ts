/**
 * Reading sitemaps for `page-dumper warm`: from a file or a URL, gzip'd or not, a urlset or an
 * index of urlsets.
 */
import type http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { getOnBase, parseSitemap, visitorHeaders, type Forwarded } from '../core/warm.js';

/** The protocol's bound for one sitemap file, uncompressed (sitemaps.org); also what is read of one, compressed. */
export const MAX_SITEMAP_BYTES = 50 * 2 ** 20;

/** A sitemap that could not be read: a missing file, an HTTP error, a document that is no sitemap. */
export class SitemapError extends Error {
  override readonly name = 'SitemapError';
}

export interface SitemapSource {
  /**
   * Where the sitemaps an index lists are fetched from: on this origin, with the headers a
   * visitor of their public URL sends through the site's proxy (see `forwarded`).
   */
  readonly base: URL;
  /** Headers sent with every request (a `host` among them replaces the public one). */
  readonly headers: Record<string, string>;
  readonly timeout: number;
  /** Which forwarded headers the site's proxy adds (`WarmOptions.forwarded`). */
  readonly forwarded?: Forwarded | undefined;
}

/** `loc` as an absolute URL (resolved against `base` if relative), without its fragment. */
export function absolute(loc: string, base: URL): string {
  const u = new URL(loc, base);
  u.hash = '';
  return u.href;
}

/**
 * The body of `res`, at most `limit` bytes: past it the response is destroyed (nothing more is
 * downloaded) and the promise rejects.
 */
function readLimited(res: http.IncomingMessage, limit: number, where: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        res.destroy();
        reject(new SitemapError(`the sitemap ${where} is larger than 50 MiB`));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}

/** Decodes `bytes` with `decode`, refusing more than 50 MiB out (a gzip bomb stops there). */
function decoded(bytes: Buffer, decode: (b: Buffer, o: { maxOutputLength: number }) => Buffer, what: string, where: string): Buffer {
  try {
    return decode(bytes, { maxOutputLength: MAX_SITEMAP_BYTES });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new SitemapError(`the sitemap ${where} is larger than 50 MiB`);
    throw new SitemapError(`could not ${what} the sitemap ${where}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function fetchSitemap(where: string, onBase: boolean, source: SitemapSource): Promise<Buffer> {
  const url = new URL(where);
  const base = onBase ? source.base : url;
  const headers = { ...(onBase ? visitorHeaders(url, base, source.forwarded) : {}), ...source.headers };
  const timer = AbortSignal.timeout(source.timeout);
  try {
    const res = await getOnBase(base, url, headers, timer);
    if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) > 299) {
      res.resume();
      throw new SitemapError(`could not fetch the sitemap ${where}: HTTP ${res.statusCode}`);
    }
    let bytes = await readLimited(res, MAX_SITEMAP_BYTES, where);
    const coding = String(res.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (coding === 'gzip' || coding === 'x-gzip') bytes = decoded(bytes, gunzipSync, 'gunzip', where);
    else if (coding === 'deflate') bytes = decoded(bytes, inflateSync, 'inflate', where);
    else if (coding === 'br') bytes = decoded(bytes, brotliDecompressSync, 'decode', where);
    return bytes;
  } catch (error) {
    if (error instanceof SitemapError) throw error;
    const message = timer.aborted ? `no answer within ${source.timeout} ms` : error instanceof Error ? error.message : String(error);
    throw new SitemapError(`could not fetch the sitemap ${where}: ${message}`);
  }
}

async function read(where: string, onBase: boolean, source: SitemapSource): Promise<string> {
  let bytes: Buffer;
  if (/^https?:\/\//i.test(where)) bytes = await fetchSitemap(where, onBase, source);
  else {
    try {
      if ((await stat(where)).size > MAX_SITEMAP_BYTES) throw new SitemapError(`the sitemap ${where} is larger than 50 MiB`);
      bytes = await readFile(where);
    } catch (error) {
      if (error instanceof SitemapError) throw error;
      throw new SitemapError(`could not read the sitemap ${where}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(error)}`);
    }
  }
  // A .xml.gz served as application/gzip (no Content-Encoding), or read from disk.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = decoded(bytes, gunzipSync, 'gunzip', where);
  if (bytes.length > MAX_SITEMAP_BYTES) throw new SitemapError(`the sitemap ${where} is larger than 50 MiB`);
  return bytes.toString('utf8');
}

/**
 * The page URLs of the sitemap at `where` (a file path or an http(s) URL), as the sitemap names
 * them (relative ones resolved against `source.base`), without duplicates, in order. `where` is
 * read as given; an index's sitemaps are read in turn from `source.base`, as visitors of their
 * URLs would reach them; an index listed by an index is refused, as the protocol has it.
 */
export async function sitemapPages(where: string, source: SitemapSource): Promise<{ pages: string[]; sitemaps: string[] }> {
  const parse = (xml: string, from: string) => {
    try {
      return parseSitemap(xml);
    } catch (error) {
      throw new SitemapError(`${from}: ${error instanceof Error ? error.message.replace(/^page-dumper: /, '') : String(error)}`);
    }
  };
  const top = parse(await read(where, false, source), where);
  const sitemaps = [where];
  const pages = new Set<string>();
  const resolved = (loc: string, from: string) => {
    let url: string;
    try {
      url = absolute(loc, source.base);
    } catch {
      throw new SitemapError(`${from}: not a URL: ${JSON.stringify(loc)}`);
    }
    if (!/^https?:/i.test(url)) throw new SitemapError(`${from}: not an http(s) URL: ${JSON.stringify(loc)}`);
    return url;
  };
  if (top.kind === 'urlset') {
    for (const loc of top.locs) pages.add(resolved(loc, where));
  } else {
    for (const loc of top.locs) {
      const child = resolved(loc, where);
      const map = parse(await read(child, true, source), child);
      if (map.kind !== 'urlset') throw new SitemapError(`${child}: a sitemap index lists another index; only urlsets may be listed`);
      sitemaps.push(child);
      for (const page of map.locs) pages.add(resolved(page, child));
    }
  }
  return { pages: [...pages], sitemaps };
}
