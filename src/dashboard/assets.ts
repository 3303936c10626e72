/**
 * The dashboard's page, its style and its script, as strings: no file is read at runtime, nothing
 * is fetched from elsewhere. The style is inline and allowed by its hash; the script is served as
 * a file of the dashboard (`app.js`), so the CSP forbids every inline script. The script writes
 * every value with `textContent`, never as HTML: a path or tag is shown, never interpreted.
 */
import { createHash } from 'node:crypto';

export const STYLE = `
:root { color-scheme: light dark; --fg: #1d232a; --bg: #fafaf7; --muted: #5f6b76; --line: #d9dde1; --hit: #2f8f46; --miss: #c8641b; --bad: #b3261e; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8ea; --bg: #16191c; --muted: #9aa5ae; --line: #353b41; --hit: #5cc477; --miss: #f0954d; --bad: #f2827a; } }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 1rem; padding: .8rem 1.2rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.15rem; margin: 0; }
header .grow { flex: 1; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1rem; padding: 1rem 1.2rem; }
section { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
.big { font-size: 1.6rem; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .25rem .5rem .25rem 0; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 500; }
.muted { color: var(--muted); }
.bad { color: var(--bad); }
.ok { color: var(--hit); }
svg { width: 100%; height: 140px; display: block; margin-top: .6rem; }
svg .hits { stroke: var(--hit); fill: none; stroke-width: 2; }
svg .misses { stroke: var(--miss); fill: none; stroke-width: 2; }
svg .axis { stroke: var(--line); }
.legend .h { color: var(--hit); } .legend .m { color: var(--miss); }
form.inline { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 0; }
input[type=text], input[type=password], select { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 4px; background: transparent; color: inherit; }
input[type=text], input[type=password] { flex: 1; min-width: 12rem; }
button { font: inherit; padding: .3rem .9rem; border-radius: 4px; border: 1px solid var(--line); background: var(--fg); color: var(--bg); cursor: pointer; }
.login { max-width: 26rem; margin: 4rem auto; }
.message { min-height: 1.4em; margin: .5rem 0 0; }
`;

/** The CSP source that allows `STYLE` inline (CSP Level 2 hash source). */
export const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE, 'utf8').digest('base64')}'`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function head(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>`;
}

/** The login form (answered with 401 to a request without a valid credential). */
export function loginPage(title: string, message: string | undefined): string {
  return `${head(title)}
</head>
<body>
<section class="login">
<h1>${escapeHtml(title)}</h1>
<form method="post" action="login" class="inline">
<label for="token">Token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<button type="submit" id="login">Log in</button>
</form>
<p class="message bad" id="login-message" role="alert">${message === undefined ? '' : escapeHtml(message)}</p>
</section>
</body>
</html>
`;
}

/** The dashboard. `csrf` is the session's CSRF token (not the token), sent back with each purge. */
export function dashboardPage(title: string, csrf: string, refresh: number): string {
  return `${head(title)}
<meta name="page-dumper-csrf" content="${escapeHtml(csrf)}">
<meta name="page-dumper-refresh" content="${refresh}">
<script src="app.js" defer></script>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<span class="grow muted" id="updated" role="status">loading…</span>
<form method="post" action="logout" class="inline"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button type="submit" id="logout">Log out</button></form>
</header>
<main>
<section id="requests">
<h2>Requests</h2>
<dl>
<dt>Hit ratio</dt><dd><span class="big" id="hit-ratio">–</span> <span class="muted" id="hit-ratio-detail"></span></dd>
<dt>Hits</dt><dd id="hits">–</dd>
<dt>Misses</dt><dd id="misses">–</dd>
<dt>Bypasses</dt><dd id="bypasses">–</dd>
<dt>Stored</dt><dd id="stores">–</dd>
<dt>Not stored</dt><dd id="refusals">–</dd>
<dt>Invalidations</dt><dd id="invalidation-count">–</dd>
<dt>Counting since</dt><dd id="since">–</dd>
</dl>
</section>
<section id="over-time">
<h2>Over time</h2>
<p class="legend muted"><span class="h">■</span> hits <span class="m">■</span> misses per <span id="interval">–</span>; hit ratio over the window: <span id="window-ratio">–</span></p>
<svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="Hits and misses over time"></svg>
</section>
<section id="store">
<h2>Store</h2>
<dl>
<dt>Entries</dt><dd id="entries">–</dd>
<dt>Bytes</dt><dd id="bytes">–</dd>
<dt>Tags</dt><dd id="tags">–</dd>
<dt>Sequence</dt><dd id="sequence">–</dd>
<dt>Counted</dt><dd id="store-at" class="muted">–</dd>
</dl>
</section>
<section id="health">
<h2>Store health</h2>
<dl>
<dt>State</dt><dd id="store-state">–</dd>
<dt>Store errors</dt><dd id="store-errors">–</dd>
<dt>In the last minute</dt><dd id="recent-errors">–</dd>
<dt>Waiting to replay</dt><dd id="pending">–</dd>
<dt>Edge purges</dt><dd id="edge-purges">–</dd>
</dl>
</section>
<section id="top" class="wide">
<h2>Most requested pages</h2>
<table><thead><tr><th>Path</th><th>Requests</th><th>Hits</th><th>Misses</th><th>Hit ratio</th></tr></thead><tbody id="top-pages"></tbody></table>
<p class="muted" id="top-note"></p>
</section>
<section id="invalidations" class="wide">
<h2>Recent invalidations</h2>
<table><thead><tr><th>When</th><th>Kind</th><th>What</th><th>Cause</th></tr></thead><tbody id="recent"></tbody></table>
</section>
<section id="purge" class="wide">
<h2>Purge</h2>
<form id="purge-form" class="inline">
<select id="purge-kind" name="kind" aria-label="What to purge">
<option value="path">Path</option>
<option value="tag">Tag</option>
<option value="prefix">Prefix</option>
<option value="all">Everything</option>
</select>
<input type="text" id="purge-value" name="value" placeholder="/blog/hello (several: one per line or comma-separated)" aria-label="Paths, tags or prefixes">
<label id="purge-all-label" hidden><input type="checkbox" id="purge-all-confirm"> drop every stored page</label>
<button type="submit" id="purge-button">Purge</button>
</form>
<p class="message" id="purge-result" role="status"></p>
</section>
</main>
</body>
</html>
`;
}

/** The dashboard's script, served as `app.js`. */
export const SCRIPT = `'use strict';
(function () {
  var meta = function (name) { var m = document.querySelector('meta[name="' + name + '"]'); return m ? m.getAttribute('content') : ''; };
  var csrf = meta('page-dumper-csrf');
  var refresh = Number(meta('page-dumper-refresh')) || 5000;
  var $ = function (id) { return document.getElementById(id); };
  var num = new Intl.NumberFormat('en');
  var set = function (id, value) { $(id).textContent = value; };
  var pct = function (part, whole) { return whole === 0 ? '–' : (Math.round((part / whole) * 1000) / 10) + ' %'; };
  var bytes = function (n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  };
  var time = function (t) { return new Date(t).toLocaleTimeString(); };
  var sum = function (o) { var n = 0; for (var k in o) n += o[k]; return n; };
  var cell = function (tr, value, className) {
    var td = document.createElement('td');
    td.textContent = value;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  };
  var svg = function (name, attrs) {
    var el = document.createElementNS('http://www.w3.org/2000/svg', name);
    for (var k in attrs) el.setAttribute(k, attrs[k]);
    return el;
  };

  function chart(samples) {
    var el = $('chart');
    while (el.firstChild) el.removeChild(el.firstChild);
    el.appendChild(svg('line', { x1: 0, y1: 139, x2: 600, y2: 139, 'class': 'axis' }));
    if (samples.length < 2) { set('window-ratio', '–'); return; }
    var hits = [], misses = [], max = 1, h = 0, m = 0;
    for (var i = 1; i < samples.length; i++) {
      var dh = Math.max(0, samples[i].hits - samples[i - 1].hits);
      var dm = Math.max(0, samples[i].misses - samples[i - 1].misses);
      hits.push(dh); misses.push(dm); h += dh; m += dm;
      max = Math.max(max, dh, dm);
    }
    var points = function (values) {
      var step = values.length > 1 ? 600 / (values.length - 1) : 600;
      return values.map(function (v, i) { return (i * step).toFixed(1) + ',' + (136 - (v / max) * 130).toFixed(1); }).join(' ');
    };
    el.appendChild(svg('polyline', { points: points(hits), 'class': 'hits' }));
    el.appendChild(svg('polyline', { points: points(misses), 'class': 'misses' }));
    set('window-ratio', pct(h, h + m) + ' (' + num.format(h) + ' of ' + num.format(h + m) + ')');
  }

  function invalidationWhat(r) {
    var parts = [];
    if (r.paths.length) parts.push('paths: ' + r.paths.join(', '));
    if (r.tags.length) parts.push('tags: ' + r.tags.join(', '));
    if (r.prefixes.length) parts.push('prefixes: ' + r.prefixes.join(', '));
    if (r.kind === 'all') parts.push('every page');
    return parts.join('; ');
  }

  function invalidationCause(r) {
    var parts = [];
    if (r.source === 'dashboard') parts.push('purged from the dashboard');
    if (r.models.length) parts.push('model ' + r.models.join(', '));
    if (r.integrations.length) parts.push('via ' + r.integrations.join(', '));
    if (r.method) parts.push(r.method + ' request');
    if (!parts.length) {
      var calls = { paths: 'dumper.invalidate()', tags: 'dumper.invalidateTags()', prefix: 'dumper.invalidatePrefix()', all: 'dumper.invalidateAll()', dependents: 'dumper.changed()', unsafe: 'a write request' };
      parts.push(calls[r.kind] || r.kind);
    }
    return parts.join(', ');
  }

  function render(d) {
    var t = d.totals;
    var bypasses = sum(t.bypasses);
    set('hit-ratio', pct(t.hits, t.hits + t.misses));
    set('hit-ratio-detail', num.format(t.hits) + ' of ' + num.format(t.hits + t.misses));
    set('hits', num.format(t.hits) + (t.notModified ? ' (' + num.format(t.notModified) + ' not modified)' : ''));
    set('misses', num.format(t.misses) + (t.coalesced ? ' (' + num.format(t.coalesced) + ' coalesced)' : ''));
    set('bypasses', num.format(bypasses));
    set('stores', num.format(t.stores) + ' (' + bytes(t.bytesStored) + ')');
    set('refusals', num.format(sum(t.refusals)));
    set('invalidation-count', num.format(sum(t.invalidations)));
    set('since', new Date(t.since).toLocaleString());
    set('interval', (d.sampleInterval / 1000) + ' s');
    chart(d.samples);

    var s = d.store;
    if (s.info) {
      set('entries', num.format(s.info.entries));
      set('bytes', bytes(s.info.bytes));
      set('tags', num.format(s.info.tags));
      set('sequence', num.format(s.info.sequence));
      set('store-at', 'at ' + time(s.at) + (s.counting ? ', counting again…' : ''));
    } else {
      ['entries', 'bytes', 'tags', 'sequence'].forEach(function (id) { set(id, '–'); });
      set('store-at', s.enumerable ? (s.error ? 'could not count: ' + s.error : 'counting…') : 'this store cannot count its entries');
    }

    var health = d.health;
    var state = $('store-state');
    state.textContent = health.dumper.circuit === 'open' ? 'failing: requests go to the app until ' + time(health.dumper.openUntil) : health.failing ? 'failed in the last minute' : (s.error ? 'not answering' : s.counting ? 'ok, slow to count its entries' : 'ok');
    state.className = health.failing || s.error ? 'bad' : 'ok';
    set('store-errors', num.format(health.storeErrors));
    set('recent-errors', num.format(health.recentStoreErrors));
    set('pending', health.dumper.pendingClear ? 'every page, and ' + num.format(health.dumper.pendingInvalidations) + ' tags' : num.format(health.dumper.pendingInvalidations) + ' tags');
    var p = health.purges;
    set('edge-purges', num.format(p.sent) + ' sent, ' + num.format(p.failed) + ' failed, ' + num.format(p.queued) + ' queued');

    var top = $('top-pages');
    while (top.firstChild) top.removeChild(top.firstChild);
    var uncertain = false;
    d.top.forEach(function (r) {
      var tr = document.createElement('tr');
      cell(tr, r.path);
      var n = r.hits + r.misses;
      cell(tr, num.format(n) + (r.error ? ' (+ up to ' + num.format(r.error) + ')' : ''));
      cell(tr, num.format(r.hits), 'ok');
      cell(tr, num.format(r.misses));
      cell(tr, pct(r.hits, n));
      if (r.error) uncertain = true;
      top.appendChild(tr);
    });
    set('top-note', d.top.length === 0 ? 'No page requested yet.' : (uncertain ? 'A page tracked after others were dropped may have had up to the number in brackets more requests before.' : ''));

    var recent = $('recent');
    while (recent.firstChild) recent.removeChild(recent.firstChild);
    d.invalidations.forEach(function (r) {
      var tr = document.createElement('tr');
      cell(tr, time(r.at));
      cell(tr, r.kind);
      cell(tr, invalidationWhat(r));
      cell(tr, invalidationCause(r));
      recent.appendChild(tr);
    });
    set('updated', 'updated ' + time(d.now));
  }

  var loading = false;
  function load() {
    if (loading) return Promise.resolve();
    loading = true;
    return fetch('api/stats', { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (res.status === 401) { location.reload(); return; }
        if (!res.ok) throw new Error('status ' + res.status);
        return res.json().then(render);
      })
      .catch(function (e) { set('updated', 'could not update: ' + e.message); })
      .then(function () { loading = false; });
  }

  function kindChanged() {
    var all = $('purge-kind').value === 'all';
    $('purge-value').hidden = all;
    $('purge-all-label').hidden = !all;
  }

  function purge(event) {
    event.preventDefault();
    var kind = $('purge-kind').value;
    var result = $('purge-result');
    var values = $('purge-value').value.split(/[\\n,]/).map(function (v) { return v.trim(); }).filter(Boolean);
    if (kind === 'all' && !$('purge-all-confirm').checked) { result.textContent = 'Tick the box to drop every stored page.'; result.className = 'message bad'; return; }
    if (kind !== 'all' && values.length === 0) { result.textContent = 'Name at least one ' + kind + '.'; result.className = 'message bad'; return; }
    $('purge-button').disabled = true;
    fetch('api/purge', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, accept: 'application/json' },
      body: JSON.stringify({ kind: kind, values: values })
    })
      .then(function (res) { return res.json().then(function (body) { return { ok: res.ok, body: body }; }); })
      .then(function (r) {
        result.textContent = r.ok ? r.body.message : 'Not purged: ' + r.body.error;
        result.className = 'message ' + (r.ok ? 'ok' : 'bad');
        if (r.ok) { $('purge-value').value = ''; $('purge-all-confirm').checked = false; }
        return load();
      })
      .catch(function (e) { result.textContent = 'Not purged: ' + e.message; result.className = 'message bad'; })
      .then(function () { $('purge-button').disabled = false; });
  }

  if (!csrf) {
    // Opened with the bearer header, without a session: purges need the session's CSRF token.
    $('purge-form').hidden = true;
    set('purge-result', 'Log in through the form to purge.');
  }
  $('purge-kind').addEventListener('change', kindChanged);
  $('purge-form').addEventListener('submit', purge);
  kindChanged();
  load();
  setInterval(load, refresh);
})();
`;
