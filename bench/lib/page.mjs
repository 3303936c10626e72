// The one page every variant serves: ~14 KB of deterministic HTML (a seeded PRNG, no clock, no
// randomness), so every server process builds exactly the same bytes.
import { createHash } from 'node:crypto';

export const PAGE_BYTES = 14 * 1024;

/** A small deterministic generator (mulberry32): numbers in [0, 1), the same for every run. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLAVOURS = ['vanilla', 'chocolate', 'strawberry', 'pistachio', 'stracciatella', 'mango', 'hazelnut', 'lemon', 'coffee', 'caramel'];
const WORDS = ['creamy', 'fresh', 'churned', 'daily', 'organic', 'milk', 'sorbet', 'cone', 'scoop', 'waffle', 'swirl', 'sprinkles', 'local', 'seasonal'];

/** Builds the page: a product listing padded to exactly PAGE_BYTES bytes. */
export function buildPage() {
  const rnd = mulberry32(0x1ce_c4ea);
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  let html =
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Ice cream — page-dumper bench</title>' +
    '<link rel="stylesheet" href="/static/site.css"></head>\n<body><header><h1>Our ice creams</h1>' +
    '<nav><a href="/">Home</a> <a href="/ice-cream/">Ice cream</a> <a href="/about/">About</a></nav></header>\n<main><ul class="products">\n';
  const tail = '</ul></main>\n<footer>Rendered by the page-dumper benchmark origin.</footer></body></html>\n';
  for (let i = 1; ; i++) {
    const name = `${pick(FLAVOURS)} ${pick(FLAVOURS)}`;
    const text = Array.from({ length: 8 + Math.floor(rnd() * 10) }, () => pick(WORDS)).join(' ');
    const price = (1 + rnd() * 6).toFixed(2);
    const item =
      `<li class="product" id="p${i}"><a href="/ice-cream/${i}/">${name}</a>` +
      `<p>${text}</p><span class="price">€${price}</span></li>\n`;
    if (Buffer.byteLength(html + item + tail) > PAGE_BYTES) break;
    html += item;
  }
  const pad = PAGE_BYTES - Buffer.byteLength(html + tail);
  const buf = Buffer.from(html + `<!--${'.'.repeat(Math.max(0, pad - 7))}-->` + tail);
  if (buf.length !== PAGE_BYTES) throw new Error(`page is ${buf.length} bytes, expected ${PAGE_BYTES}`);
  return buf;
}

export const PAGE = buildPage();
/** A strong validator, as an origin that sets its own ETag would send it. */
export const ETAG = `"${createHash('sha1').update(PAGE).digest('base64url')}"`;
export const PAGE_SHA1 = createHash('sha1').update(PAGE).digest('hex');
export const CONTENT_TYPE = 'text/html; charset=utf-8';

/** A string with the same characters that shares nothing with `s`: flat, on the heap, not interned. */
export const fresh = (s) => Buffer.from(s, 'latin1').toString('latin1');
