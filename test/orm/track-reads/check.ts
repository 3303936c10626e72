/**
 * What every `trackReads` suite checks after each write, whatever the ORM: the pages of the blog
 * (a list, a detail page with relations, a filtered page, a count, a relation page, a page that
 * reads nothing, a lookup of a row that does not exist) are each served through the dumper and
 * compared with a fresh render of the same page without it. A served page that differs is stale:
 * some write did not invalidate a tag the page's render read.
 */
import { expect } from 'vitest';

/** A page of the blog, by path, and how the app renders it now (without the cache). */
export interface BlogApp {
  render(path: string): Promise<string>;
}

/** The pages every suite warms and checks. Post 99 and author 99 do not exist at first. */
export const PAGES = [
  '/', // list: posts with their authors
  '/posts/1', // detail: a post by primary key, its author, tags and comments
  '/posts/2',
  '/posts/99', // a lookup by primary key that finds nothing
  '/authors/1/posts', // filtered: posts by foreign key
  '/authors/2/posts',
  '/titled/a', // filtered: posts whose title contains "a"
  '/count', // counts: every comment, and the comments of post 1
  '/tags/1', // relation page: a tag and its posts (many-to-many, inverse side)
  '/tags/2',
  '/about', // reads nothing
] as const;

export interface Served {
  readonly cache: string | null;
  readonly body: string;
}

/**
 * Checks that no page is stale: each is fetched through the site and compared with a fresh render.
 * Returns the pages that were rendered again (a MISS), in order.
 */
export async function expectNoStale(get: (path: string) => Promise<Served>, app: BlogApp, paths: readonly string[] = PAGES): Promise<string[]> {
  const missed: string[] = [];
  for (const path of paths) {
    const served = await get(path);
    const fresh = await app.render(path);
    expect(served.body, `${path} is stale (served ${served.cache})`).toBe(fresh);
    if (served.cache !== 'HIT') missed.push(path);
  }
  return missed;
}

/** Fetches every page until it is a HIT. */
export async function warmAll(get: (path: string) => Promise<Served>, paths: readonly string[] = PAGES): Promise<void> {
  for (const path of paths) {
    await get(path);
    expect((await get(path)).cache, `${path} is stored`).toBe('HIT');
  }
}
