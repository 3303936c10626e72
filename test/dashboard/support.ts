/**
 * A small site with the dashboard mounted, for the dashboard's tests: Express, the dashboard at
 * `/_cache` before `dumperMiddleware` (so the dashboard's own requests are not counted), and pages
 * at `/page/<id>` whose outcome is known.
 */
import { existsSync } from 'node:fs';
import express from 'express';
import { dashboardHandler, type DashboardHandler, type DashboardOptions } from '../../src/dashboard/index.js';
import { dumperMiddleware } from '../../src/http/node/index.js';
import { createDumper, type Dumper, type DumperOptions } from '../../src/index.js';
import type { Mounted } from '../support/behaviour.js';
import { listen } from '../support/listen.js';

export const TOKEN = 'correct horse battery staple';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether Debian's Chromium is installed. Under `CI=true` a missing one throws (the suite fails);
 * elsewhere the browser suite is left out with a notice. Nothing ever downloads a browser.
 */
export function needChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `${CHROMIUM} is not installed (install it with: apt-get install -y chromium)`;
  if (process.env.CI) throw new Error(`${message}; CI needs it, so the suite fails instead of skipping.`);
  process.stderr.write(`\n  NOTICE: skipping the dashboard's browser suite: ${message}\n\n`);
  return false;
}

export interface DashboardSite {
  readonly dumper: Dumper;
  readonly dashboard: DashboardHandler;
  readonly m: Mounted;
  /** Renders per page id. */
  readonly renders: Map<string, number>;
  /** GET a path of the site; resolves with the response read to its end. */
  get(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: string }>;
  close(): Promise<void>;
}

export async function dashboardSite(options: { dumper?: DumperOptions; dashboard?: Partial<DashboardOptions> } = {}): Promise<DashboardSite> {
  const dumper = createDumper({ logger: false, trackRenders: true, ...options.dumper });
  const dashboard = dashboardHandler(dumper, { token: TOKEN, ...options.dashboard });
  const renders = new Map<string, number>();
  const app = express();
  app.use('/_cache', dashboard);
  app.use(dumperMiddleware(dumper));
  app.get('/page/:id', (req, res) => {
    const id = req.params.id;
    renders.set(id, (renders.get(id) ?? 0) + 1);
    dumper.tag(`page:${id}`);
    res.type('html').send(`<h1>page ${id}</h1><p>render ${renders.get(id)}</p>`);
  });
  const m = await listen(app);
  return {
    dumper,
    dashboard,
    m,
    renders,
    async get(path, init = {}) {
      const r = await fetch(m.url + path, { redirect: 'manual', ...init });
      return { status: r.status, headers: r.headers, body: await r.text() };
    },
    async close() {
      dashboard.close();
      await m.close();
      await dumper.close();
    },
  };
}

/** Polls `check` (every 10 ms, at most 5 s) until it is true; returns its last answer. */
export async function eventually(check: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}

/**
 * Known traffic: three pages rendered (3 misses, each stored), then five hits: `/page/a` three
 * times, `/page/b` twice.
 */
export async function knownTraffic(site: DashboardSite): Promise<void> {
  for (const id of ['a', 'b', 'c']) {
    const r = await site.get(`/page/${id}`);
    if (r.headers.get('x-cache') !== 'MISS') throw new Error(`/page/${id} was not a miss`);
  }
  // A page is stored once its response ended, just after the client has it.
  if (!(await eventually(() => site.dumper.stats().stores === 3))) throw new Error(`the three pages were not stored: ${JSON.stringify(site.dumper.stats())}`);
  for (const id of ['a', 'a', 'a', 'b', 'b']) {
    const r = await site.get(`/page/${id}`);
    if (r.headers.get('x-cache') !== 'HIT') throw new Error(`/page/${id} was not a hit`);
  }
}

/** A session cookie, by logging in with the token through the form, as a browser would. */
export async function login(site: DashboardSite, token = TOKEN): Promise<{ status: number; cookie: string | undefined; setCookie: string | null; body: string }> {
  const r = await fetch(`${site.m.url}/_cache/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: site.m.url, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ token }).toString(),
  });
  const setCookie = r.headers.get('set-cookie');
  return { status: r.status, setCookie, cookie: setCookie?.split(';')[0], body: await r.text() };
}
