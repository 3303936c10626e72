import { Registry } from 'prom-client';
import { afterEach, expect, test } from 'vitest';
import { registerMetrics } from '../../src/prometheus/index.js';
import { createDumper } from '../../src/index.js';
import { eventually, metricsSite, type MetricsSite } from './support.js';

const open: MetricsSite[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** The samples of a text exposition (`registry.metrics()`): `name{labels}` → value, and each metric's TYPE. */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string>; helps: Set<string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    const help = /^# HELP (\S+) .+$/.exec(line);
    if (help) {
      helps.add(help[1]!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    samples.set(sample[1]!, Number(sample[2]));
  }
  return { samples, types, helps };
}

test('the exposition text after known traffic: requests by result, reasons, kinds, bytes, store gauges', async () => {
  const s = await metricsSite();
  open.push(s);
  const registry = new Registry();
  registerMetrics(s.dumper, { registry });
  const page = await s.get('/page/a');
  const hit = await s.get('/page/a');
  await s.get('/page/a', { headers: { 'if-none-match': hit.headers.get('etag')! } });
  await s.get('/private');
  await s.get('/missing');
  await s.get('/page/a', { headers: { authorization: 'Basic eDp5' } });
  await s.get('/page/a', { method: 'POST' });
  await s.dumper.invalidateTags('t');
  expect(await eventually(() => s.dumper.stats().invalidations.unsafe === 1)).toBe(true);
  const { samples, types, helps } = parse(await registry.metrics());
  const size = Buffer.byteLength(page.body);
  expect(samples.get('page_dumper_requests_total{result="hit"}')).toBe(2);
  expect(samples.get('page_dumper_requests_total{result="miss"}')).toBe(3);
  expect(samples.get('page_dumper_requests_total{result="bypass"}')).toBe(2);
  expect(samples.get('page_dumper_not_modified_total')).toBe(1);
  expect(samples.get('page_dumper_bypasses_total{reason="authorization"}')).toBe(1);
  expect(samples.get('page_dumper_bypasses_total{reason="method"}')).toBe(1);
  expect(samples.get('page_dumper_bypasses_total{reason="ignored path"}')).toBe(0);
  expect(samples.get('page_dumper_stores_total')).toBe(1);
  expect(samples.get('page_dumper_refusals_total{reason="cache-control"}')).toBe(1);
  expect(samples.get('page_dumper_refusals_total{reason="status"}')).toBe(1);
  expect(samples.get('page_dumper_refusals_total{reason="store refused"}')).toBe(0);
  expect(samples.get('page_dumper_invalidations_total{kind="tags"}')).toBe(1);
  expect(samples.get('page_dumper_invalidations_total{kind="unsafe"}')).toBe(1);
  expect(samples.get('page_dumper_invalidations_total{kind="paths"}')).toBe(0);
  expect(samples.get('page_dumper_coalesced_total')).toBe(0);
  expect(samples.get('page_dumper_store_errors_total')).toBe(0);
  expect(samples.get('page_dumper_stored_bytes_total')).toBe(size);
  expect(samples.get('page_dumper_served_bytes_total')).toBe(size);
  // The POST invalidated /page/a: the MemoryStore dropped it.
  expect(samples.get('page_dumper_store_entries')).toBe(0);
  expect(samples.get('page_dumper_store_bytes')).toBe(0);
  for (const [name, type] of types) {
    expect(helps.has(name), name).toBe(true);
    // Prometheus conventions: counters end in _total; a gauge does not.
    expect(name.endsWith('_total'), name).toBe(type === 'counter');
  }
  expect([...types.keys()].sort()).toEqual(
    [
      'bypasses_total',
      'coalesced_total',
      'invalidations_total',
      'not_modified_total',
      'refusals_total',
      'requests_total',
      'served_bytes_total',
      'store_bytes',
      'store_entries',
      'store_errors_total',
      'stored_bytes_total',
      'stores_total',
    ].map((n) => `page_dumper_${n}`),
  );
  // Each scrape reads the counters afresh.
  await s.get('/page/b');
  await s.get('/page/b');
  const again = parse(await registry.metrics()).samples;
  expect(again.get('page_dumper_requests_total{result="hit"}')).toBe(3);
  expect(again.get('page_dumper_store_entries')).toBe(1);
});

test('several dumpers in one registry: each named, every series labelled with its dumper', async () => {
  const a = await metricsSite();
  const b = await metricsSite();
  open.push(a, b);
  const registry = new Registry();
  const ra = registerMetrics(a.dumper, { registry, name: 'shop' });
  registerMetrics(b.dumper, { registry, name: 'blog' });
  await a.get('/page/1');
  await a.get('/page/1');
  await b.get('/page/1');
  const { samples } = parse(await registry.metrics());
  expect(samples.get('page_dumper_requests_total{dumper="shop",result="hit"}')).toBe(1);
  expect(samples.get('page_dumper_requests_total{dumper="blog",result="hit"}')).toBe(0);
  expect(samples.get('page_dumper_requests_total{dumper="blog",result="miss"}')).toBe(1);
  expect(samples.get('page_dumper_stores_total{dumper="shop"}')).toBe(1);
  expect(() => registerMetrics(createDumper({ logger: false }), { registry, name: 'shop' })).toThrow(
    new TypeError('page-dumper: registerMetrics(): this registry reports a dumper named "shop" already'),
  );
  expect(() => registerMetrics(createDumper({ logger: false }), { registry })).toThrow(/give each dumper its own option "name"/);
  ra.unregister();
  const after = parse(await registry.metrics()).samples;
  expect(after.has('page_dumper_stores_total{dumper="shop"}')).toBe(false);
  expect(after.get('page_dumper_stores_total{dumper="blog"}')).toBe(1);
});

test('one unnamed dumper per registry; unregister() frees the registry; a prefix of its own', async () => {
  const registry = new Registry();
  const d = createDumper({ logger: false });
  const r = registerMetrics(d, { registry });
  expect(r.registry).toBe(registry);
  expect(() => registerMetrics(createDumper({ logger: false }), { registry, name: 'x' })).toThrow(
    new TypeError(
      'page-dumper: registerMetrics(): this registry reports a dumper already; give each dumper its own option "name" (the label `dumper`), or use a registry per dumper',
    ),
  );
  r.unregister();
  expect(await registry.metrics()).toBe('\n');
  registerMetrics(createDumper({ logger: false }), { registry });
  registerMetrics(d, { registry, prefix: 'site_cache_' });
  const { types } = parse(await registry.metrics());
  expect(types.get('site_cache_requests_total')).toBe('counter');
  expect(types.get('page_dumper_requests_total')).toBe('counter');
  await d.close();
});

test('prometheus: after registry.clear() (a test teardown, a hot reload) a new dumper can be registered and is reported', async () => {
  const registry = new Registry();
  const first = createDumper({ logger: false });
  const before = registerMetrics(first, { registry });
  registry.clear(); // prom-client's documented way to empty a registry
  expect((await registry.metrics()).trim()).toBe('');
  const second = createDumper({ logger: false });
  const after = registerMetrics(second, { registry });
  expect(parse(await registry.metrics()).types.get('page_dumper_requests_total')).toBe('counter');
  // The first registration's unregister() leaves the second's metrics alone.
  before.unregister();
  expect(parse(await registry.metrics()).types.get('page_dumper_requests_total')).toBe('counter');
  after.unregister();
  expect(await registry.metrics()).toBe('\n');
  await first.close();
  await second.close();
});

test.each<[string, unknown, string]>([
  ['an unknown option', { labels: {} }, 'page-dumper: registerMetrics() has no option "labels"'],
  ['a bad prefix', { prefix: 'page-dumper' }, 'page-dumper: registerMetrics() option "prefix" must be a metric name prefix (letters, digits, _ and :), got "page-dumper"'],
  ['an empty name', { name: '' }, 'page-dumper: registerMetrics() option "name" must be a non-empty string'],
  ['a registry that is not one', { registry: {} }, 'page-dumper: registerMetrics() option "registry" must be a prom-client Registry'],
])('registerMetrics() refuses %s', (_, options, message) => {
  expect(() => registerMetrics(createDumper({ logger: false }), options as never)).toThrow(new TypeError(message));
});

test('registerMetrics() needs a dumper', () => {
  expect(() => registerMetrics({} as never)).toThrow(new TypeError('page-dumper: registerMetrics() needs a dumper made by createDumper()'));
});
