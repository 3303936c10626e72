/** Server-rendered HTML: a small layout and one function per page. Everything shown is escaped. */

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and quoted attribute values. */
export function escape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/**
 * Tagged template: interpolated values are escaped, unless they are `raw()` (already HTML) or
 * arrays of those. `html\`<p>${name}</p>\`` is safe for any name.
 */
export function html(strings, ...values) {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return raw(out);
}

class Raw {
  constructor(value) {
    this.value = value;
  }
  toString() {
    return this.value;
  }
}

export function raw(value) {
  return new Raw(value);
}

function render(value) {
  if (value instanceof Raw) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escape(value);
}

const CSS = `
  :root { --ink: #3b2a2a; --cream: #fff8ee; --berry: #c2185b; --mint: #d9f2e6; --line: #ecd9c6; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--cream); }
  header { background: var(--berry); color: white; padding: .75rem 1.5rem; display: flex; gap: 1.5rem; align-items: baseline; flex-wrap: wrap; }
  header a { color: white; text-decoration: none; font-weight: 600; }
  header .brand { font-size: 1.25rem; }
  main { max-width: 52rem; margin: 0 auto; padding: 1.5rem; }
  a { color: var(--berry); }
  ul.cards { list-style: none; padding: 0; display: grid; gap: .75rem; }
  ul.cards li, section.box { background: white; border: 1px solid var(--line); border-radius: .5rem; padding: .75rem 1rem; }
  .chip { display: inline-block; background: var(--mint); border-radius: 1rem; padding: 0 .6rem; margin: .1rem .2rem .1rem 0; font-size: .85rem; }
  .muted { color: #8a7563; font-size: .9rem; }
  footer { max-width: 52rem; margin: 0 auto; padding: 0 1.5rem 2rem; }
  time { font-family: ui-monospace, monospace; }
  form { margin: .5rem 0; }
  form.inline { display: inline; }
  label { display: block; margin: .25rem 0; }
  label.check { display: inline-block; margin-right: 1rem; }
  input[type=text], textarea { width: 100%; padding: .35rem; border: 1px solid var(--line); border-radius: .3rem; font: inherit; }
  button { font: inherit; padding: .25rem .8rem; border-radius: .3rem; border: 1px solid var(--berry); background: white; color: var(--berry); cursor: pointer; }
  button.danger { border-color: #b00020; color: #b00020; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .4rem; border-bottom: 1px solid var(--line); vertical-align: top; }
`;

/**
 * The shared layout. Every page says when it was rendered: reload a public page and the time
 * stays the same while it is served from the cache (X-Cache: HIT).
 */
export function layout({ title, body, admin = false }) {
  const renderedAt = new Date().toISOString();
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Ice cream parlour</title>
<style>${raw(CSS)}</style>
</head>
<body>
<header>
  <a class="brand" href="/ice-cream/">🍨 Ice cream parlour</a>
  <a href="/ice-cream/">Flavours</a>
  <a href="/sizes/">Sizes</a>
  <a href="/admin/">Admin</a>
</header>
<main>
${body}
</main>
<footer class="muted">
  ${admin ? 'Admin pages are never cached (X-Cache: BYPASS).' : 'Public pages are cached until the data they show changes.'}
  Rendered at <time class="rendered-at" datetime="${renderedAt}">${renderedAt}</time>.
</footer>
</body>
</html>
`.toString();
}

const chips = (sizes) =>
  sizes.length === 0 ? html`<span class="muted">no sizes</span>` : sizes.map((s) => html`<a class="chip" href="${s.getAbsoluteUrl()}">${s.name}</a>`);

const byName = (a, b) => a.name.localeCompare(b.name);

export function iceCreamList(iceCreams) {
  return layout({
    title: 'Flavours',
    body: html`<h1>Flavours</h1>
<ul class="cards">
${iceCreams.map(
  (ic) => html`  <li><a href="${ic.getAbsoluteUrl()}"><strong>${ic.name}</strong></a> ${chips([...ic.sizes].sort(byName))}</li>
`,
)}</ul>`,
  });
}

export function iceCreamDetail(iceCream) {
  return layout({
    title: iceCream.name,
    body: html`<h1>${iceCream.name}</h1>
<p>${iceCream.description}</p>
<section class="box"><h2>Sizes</h2><p>${chips([...iceCream.sizes].sort(byName))}</p></section>
<p><a href="/ice-cream/">← all flavours</a></p>`,
  });
}

export function sizeList(sizes) {
  return layout({
    title: 'Sizes',
    body: html`<h1>Sizes</h1>
<ul class="cards">
${sizes.map((s) => html`  <li><a href="${s.getAbsoluteUrl()}"><strong>${s.name}</strong></a></li>
`)}</ul>`,
  });
}

export function sizeDetail(size) {
  const iceCreams = [...size.iceCreams].sort(byName);
  return layout({
    title: size.name,
    body: html`<h1>${size.name}</h1>
<section class="box"><h2>Flavours in this size</h2>
${
  iceCreams.length === 0
    ? html`<p class="muted">No flavour comes in this size yet.</p>`
    : html`<ul>${iceCreams.map((ic) => html`<li><a href="${ic.getAbsoluteUrl()}">${ic.name}</a></li>`)}</ul>`
}
</section>
<p><a href="/sizes/">← all sizes</a></p>`,
  });
}

export function notFound(what) {
  return layout({
    title: 'Not found',
    body: html`<h1>Not found</h1><p>There is no ${what} here. <a href="/ice-cream/">See all flavours</a>.</p>`,
  });
}

export function admin({ iceCreams, sizes }) {
  const flavourRow = (ic) => {
    const has = new Set(ic.sizes.map((s) => s.id));
    return html`<tr id="ice-cream-${ic.id}">
  <td>
    <form method="post" action="/admin/ice-cream/${ic.id}">
      <label>Name <input type="text" name="name" value="${ic.name}" required></label>
      <label>Description <textarea name="description" rows="2">${ic.description}</textarea></label>
      <button>Save</button> <a class="muted" href="${ic.getAbsoluteUrl()}">${ic.getAbsoluteUrl()}</a>
    </form>
  </td>
  <td>
    <form method="post" action="/admin/ice-cream/${ic.id}/sizes">
      ${sizes.map(
        (s) => html`<label class="check"><input type="checkbox" name="size" value="${s.id}"${has.has(s.id) ? raw(' checked') : ''}> ${s.name}</label>`,
      )}
      <button>Save sizes</button>
    </form>
    <form method="post" action="/admin/ice-cream/${ic.id}/delete" class="inline">
      <button class="danger">Delete</button>
    </form>
  </td>
</tr>
`;
  };
  return layout({
    admin: true,
    title: 'Admin',
    body: html`<h1>Admin</h1>
<p class="muted">Change something here, then look at the public pages: the ones that show it are
rendered again (X-Cache: MISS, a new "rendered at" time); the others are still served from the cache.</p>
<h2>Flavours</h2>
<table>
<tr><th>Flavour</th><th>Sizes</th></tr>
${iceCreams.map(flavourRow)}</table>
<section class="box">
<h3>New flavour</h3>
<form method="post" action="/admin/ice-cream/">
  <label>Name <input type="text" name="name" required></label>
  <label>Slug (optional) <input type="text" name="slug" pattern="[a-z0-9-]+"></label>
  <label>Description <textarea name="description" rows="2"></textarea></label>
  ${sizes.map((s) => html`<label class="check"><input type="checkbox" name="size" value="${s.id}"> ${s.name}</label>`)}
  <button>Create</button>
</form>
</section>
<h2>Sizes</h2>
<table>
${sizes.map(
  (s) => html`<tr id="size-${s.id}"><td>
  <form method="post" action="/admin/sizes/${s.id}">
    <label>Name <input type="text" name="name" value="${s.name}" required></label>
    <button>Save</button> <a class="muted" href="${s.getAbsoluteUrl()}">${s.getAbsoluteUrl()}</a>
  </form>
</td></tr>
`,
)}</table>`,
  });
}
