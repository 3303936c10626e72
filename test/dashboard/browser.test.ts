/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core. Login, the
 * numbers after known traffic, a purge from the page reaching the store, an invalidation listed
 * with its cause, and not one Content-Security-Policy violation on the way.
 */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { definedIf } from '../support/services.js';
import { CHROMIUM, dashboardSite, eventually, knownTraffic, needChromium, TOKEN, type DashboardSite } from './support.js';

const hasChromium = needChromium();

definedIf(hasChromium, describe)('the dashboard in Chromium', () => {
  let browser: Browser;
  let site: DashboardSite;
  let context: BrowserContext;
  let page: Page;
  /** What the browser reported: console errors, page errors and CSP violations. */
  let problems: string[];

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  beforeEach(async () => {
    site = await dashboardSite();
    context = await browser.newContext();
    // Violations of the document open at the end of a test (each navigation starts a new list);
    // the console listener below sees those of every document. Playwright's own script runs
    // outside the page's CSP; it only listens.
    await context.addInitScript({
      content: "window.__violations = []; document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));",
    });
    page = await context.newPage();
    problems = [];
    page.on('console', (message) => {
      const text = message.text();
      // The browser logs every 4xx as a failed resource: the 401 of the login page and of a wrong
      // token, the 400 of a purge refused, are expected.
      if (message.type() === 'error' && !/status of 40[01] /.test(text)) problems.push(`console: ${text}`);
      if (/Content Security Policy/i.test(text)) problems.push(`csp: ${text}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  });

  afterEach(async () => {
    const violations = await page.evaluate<string[]>('window.__violations ?? []').catch(() => []);
    await context.close();
    await site.close();
    expect([...problems, ...violations.map((v) => `violation: ${v}`)]).toEqual([]);
  });

  async function logIn(token = TOKEN): Promise<void> {
    const first = await page.goto(`${site.m.url}/_cache`);
    expect(first?.status()).toBe(401);
    await page.fill('#token', token);
    await page.click('#login');
  }

  async function loggedIn(): Promise<void> {
    await logIn();
    await page.waitForSelector('#purge-form');
    await expect.poll(() => page.textContent('#updated')).toMatch(/^updated /);
  }

  test('login: the page asks for the token, a wrong one is refused with a message, the right one opens it', async () => {
    await logIn('not the token at all, no');
    expect(await page.textContent('#login-message')).toBe('Wrong token.');
    expect(await page.$('#hit-ratio')).toBeNull();
    expect((await context.cookies()).length).toBe(0);

    await page.fill('#token', TOKEN);
    await page.click('#login');
    await page.waitForSelector('#hit-ratio');
    expect(new URL(page.url()).pathname).toBe('/_cache/');
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'page-dumper-dashboard', path: '/_cache', httpOnly: true, sameSite: 'Strict', secure: false });
    // The cookie holds an HMAC, not the token; the page does not hold it either.
    expect(cookie!.value).not.toContain(TOKEN);
    expect(await page.content()).not.toContain(TOKEN);

    await page.click('#logout');
    await page.waitForSelector('#token');
    expect(await context.cookies()).toEqual([]);
  });

  test('the page and its script are served with the CSP and no-store', async () => {
    const responses: Array<{ url: string; headers: Record<string, string> }> = [];
    page.on('response', (r) => responses.push({ url: r.url(), headers: r.headers() }));
    await loggedIn();
    const seen = responses.filter((r) => /\/_cache\/(app\.js|api\/stats)?$/.test(r.url));
    expect(seen.map((r) => new URL(r.url).pathname)).toEqual(expect.arrayContaining(['/_cache/', '/_cache/app.js', '/_cache/api/stats']));
    for (const r of seen) {
      expect(r.headers['cache-control']).toBe('no-store');
      expect(r.headers['content-security-policy']).toMatch(/^default-src 'none'; script-src 'self'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'$/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
    }
  });

  test('after 3 misses and 5 hits the page shows a hit ratio of 5/8 and the pages requested most', async () => {
    await knownTraffic(site);
    await loggedIn();
    expect(await page.textContent('#hit-ratio')).toBe('62.5 %');
    expect(await page.textContent('#hit-ratio-detail')).toBe('5 of 8');
    expect(await page.textContent('#hits')).toBe('5');
    expect(await page.textContent('#misses')).toBe('3');
    expect(await page.textContent('#stores')).toMatch(/^3 \(/);
    // The store's count: three entries.
    expect(await page.textContent('#entries')).toBe('3');
    const rows = await page.$$eval('#top-pages tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows).toEqual([
      ['/page/a', '4', '3', '1', '75 %'],
      ['/page/b', '3', '2', '1', '66.7 %'],
      ['/page/c', '1', '0', '1', '0 %'],
    ]);
    expect(await page.textContent('#store-state')).toBe('ok');
  });

  test('a purge from the page reaches the store: the page is a miss afterwards, and the purge is listed', async () => {
    await knownTraffic(site);
    await loggedIn();
    await page.fill('#purge-value', '/page/a');
    await page.click('#purge-button');
    await expect.poll(() => page.textContent('#purge-result')).toBe('Purged 1 path.');

    const after = await site.get('/page/a');
    expect(after.headers.get('x-cache')).toBe('MISS');
    expect(after.body).toContain('render 2');
    // Another page was left alone.
    expect((await site.get('/page/b')).headers.get('x-cache')).toBe('HIT');

    const rows = await page.$$eval('#recent tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1).map((td) => td.textContent)));
    expect(rows).toEqual([['paths', 'paths: /page/a', 'purged from the dashboard']]);
  });

  test('a purge by tag from the page', async () => {
    await knownTraffic(site);
    await loggedIn();
    await page.selectOption('#purge-kind', 'tag');
    await page.fill('#purge-value', 'page:b');
    await page.click('#purge-button');
    await expect.poll(() => page.textContent('#purge-result')).toBe('Purged 1 tag.');
    expect((await site.get('/page/b')).headers.get('x-cache')).toBe('MISS');
    expect((await site.get('/page/a')).headers.get('x-cache')).toBe('HIT');
  });

  test('purging everything needs the box ticked', async () => {
    await knownTraffic(site);
    await loggedIn();
    await page.selectOption('#purge-kind', 'all');
    expect(await page.isVisible('#purge-value')).toBe(false);
    await page.click('#purge-button');
    expect(await page.textContent('#purge-result')).toBe('Tick the box to drop every stored page.');
    expect((await site.get('/page/c')).headers.get('x-cache')).toBe('HIT');
    await page.check('#purge-all-confirm');
    await page.click('#purge-button');
    await expect.poll(() => page.textContent('#purge-result')).toBe('Purged every page.');
    // The page counted the store again after its purge.
    await expect.poll(() => page.textContent('#entries')).toBe('0');
    expect((await site.get('/page/c')).headers.get('x-cache')).toBe('MISS');
  });

  test('a purge the dumper refuses says why', async () => {
    await loggedIn();
    await page.selectOption('#purge-kind', 'prefix');
    await page.fill('#purge-value', '/page');
    await page.click('#purge-button');
    await expect.poll(() => page.textContent('#purge-result')).toBe('Not purged: invalidatePrefix() needs the option prefixInvalidation: true');
  });

  test("an ORM write's invalidation is listed with its model and integration", async () => {
    await knownTraffic(site);
    await site.dumper.invalidateDependents({ model: 'Flavour', paths: ['/page/b'], tags: ['flavour:2'], integration: 'prisma' });
    await loggedIn();
    const rows = await page.$$eval('#recent tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1).map((td) => td.textContent)));
    expect(rows).toEqual([['dependents', 'paths: /page/b; tags: flavour:2', 'model Flavour, via prisma']]);
  });

  test('the page refreshes its numbers on its own', async () => {
    await site.close();
    site = await dashboardSite({ dashboard: { refreshInterval: 500, sampleInterval: 100 } });
    await loggedIn();
    expect(await page.textContent('#hits')).toBe('0');
    await knownTraffic(site);
    await expect.poll(() => page.textContent('#hits'), { timeout: 10_000 }).toBe('5');
    await expect.poll(() => page.textContent('#window-ratio'), { timeout: 10_000 }).toBe('62.5 % (5 of 8)');
  });

  test('opened with the bearer header, without a session, the page shows the numbers but no purge controls', async () => {
    await knownTraffic(site);
    await context.setExtraHTTPHeaders({ authorization: `Bearer ${TOKEN}` });
    const r = await page.goto(`${site.m.url}/_cache/`);
    expect(r?.status()).toBe(200);
    await expect.poll(() => page.textContent('#hit-ratio')).toBe('62.5 %');
    expect(await page.isVisible('#purge-button')).toBe(false);
    expect(await page.textContent('#purge-result')).toBe('Log in through the form to purge.');
  });

  test('a path shown on the page is text, never markup', async () => {
    await site.get('/page/%3Cimg%20src=x%20onerror=alert(1)%3E');
    await loggedIn();
    // The canonical path, decoded: what invalidate() would be given.
    const cell = await page.textContent('#top-pages tr td');
    expect(cell).toBe('/page/<img src=x onerror=alert(1)>');
    expect(await page.$('#top-pages img')).toBeNull();
  });
});
