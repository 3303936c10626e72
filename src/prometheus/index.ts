/**
 * page-dumper's counters (`dumper.stats()`) as Prometheus metrics, with `prom-client`:
 *
 * ```ts
 * import { register } from 'prom-client';
 * import { registerMetrics } from 'page-dumper/prometheus';
 * registerMetrics(dumper);                          // prom-client's default registry
 * app.get('/metrics', async (req, res) => res.type(register.contentType).send(await register.metrics()));
 * ```
 *
 * The metrics read `dumper.stats()` when they are collected (a scrape): nothing is counted twice
 * and a request costs nothing more. Several dumpers in one registry each need a `name`, which
 * every series carries as the label `dumper`.
 */
import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import { assertDumper, type Dumper } from '../core/dumper.js';
import { BYPASS_REASONS, INVALIDATION_KINDS, REFUSAL_REASONS, type DumperStats } from '../core/stats.js';

export interface MetricsOptions {
  /**
   * The registry the metrics are registered in.
   * @default prom-client's default registry (`register`)
   */
  registry?: Registry;
  /**
   * What every metric name starts with.
   * @default 'page_dumper_'
   */
  prefix?: string;
  /**
   * The value of the label `dumper` on every series of this dumper. Needed to register several
   * dumpers in one registry (two sites in one process, say); without it the series have no
   * `dumper` label and the registry takes one dumper only. Keep it to a few fixed values: a label
   * value per request or per tenant would make a series per value.
   * @default none
   */
  name?: string;
}

/** What `registerMetrics()` returns. */
export interface RegisteredMetrics {
  /** The registry the metrics are in. */
  readonly registry: Registry;
  /**
   * Stops reporting this dumper; the metrics leave the registry with the last dumper in it. Call
   * it before registering a dumper that replaces this one (a test, a reload).
   */
  unregister(): void;
}

/** The dumpers whose metrics one registry reports under one prefix, and those metrics. */
interface Group {
  /** `undefined` as a key: a dumper registered without a name (then it is the only one). */
  readonly dumpers: Map<string | undefined, Dumper>;
  readonly named: boolean;
  readonly metricNames: string[];
  /** The group's `requests_total`, as registered: gone from the registry after `registry.clear()`. */
  requests?: unknown;
}

const groups = new WeakMap<Registry, Map<string, Group>>();

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Registers page-dumper's metrics for `dumper` with prom-client (prefix `page_dumper_`):
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `page_dumper_requests_total` | counter | `result`: `hit`, `miss`, `bypass` |
 * | `page_dumper_not_modified_total` | counter | hits answered with 304 |
 * | `page_dumper_bypasses_total` | counter | `reason` (a `BypassReason`) |
 * | `page_dumper_coalesced_total` | counter | misses that waited for a concurrent render |
 * | `page_dumper_stores_total` | counter | renders stored |
 * | `page_dumper_refusals_total` | counter | `reason` (a `RefusalReason`): renders not stored |
 * | `page_dumper_invalidations_total` | counter | `kind` (an `InvalidationKind`) |
 * | `page_dumper_store_errors_total` | counter | failed store operations |
 * | `page_dumper_stored_bytes_total` | counter | body bytes stored |
 * | `page_dumper_served_bytes_total` | counter | body bytes sent by hits |
 * | `page_dumper_store_entries` | gauge | entries in the store (stores that count them in memory: `MemoryStore`) |
 * | `page_dumper_store_bytes` | gauge | bytes in the store (the same) |
 *
 * Every series also has `dumper="<name>"` when the option `name` is given. Throws a `TypeError`
 * for a bad option, and when the registry reports a dumper under this prefix already and either
 * has no name (two unnamed dumpers would report the same series) or both have the same one.
 */
export function registerMetrics(dumper: Dumper, options: MetricsOptions = {}): RegisteredMetrics {
  assertDumper(dumper, 'registerMetrics');
  if (options === null || typeof options !== 'object') throw new TypeError('page-dumper: registerMetrics() options must be an object');
  for (const k of Object.keys(options)) {
    if (k !== 'registry' && k !== 'prefix' && k !== 'name') throw new TypeError(`page-dumper: registerMetrics() has no option "${k}"`);
  }
  const registry = options.registry ?? defaultRegistry;
  if (registry === null || typeof registry !== 'object' || typeof registry.registerMetric !== 'function') {
    throw new TypeError('page-dumper: registerMetrics() option "registry" must be a prom-client Registry');
  }
  const prefix = options.prefix ?? 'page_dumper_';
  if (typeof prefix !== 'string' || (prefix !== '' && !NAME.test(prefix))) {
    throw new TypeError(`page-dumper: registerMetrics() option "prefix" must be a metric name prefix (letters, digits, _ and :), got ${JSON.stringify(prefix)}`);
  }
  const name = options.name;
  if (name !== undefined && (typeof name !== 'string' || name === '')) {
    throw new TypeError('page-dumper: registerMetrics() option "name" must be a non-empty string');
  }
  let byPrefix = groups.get(registry);
  if (byPrefix === undefined) groups.set(registry, (byPrefix = new Map()));
  let group = byPrefix.get(prefix);
  // prom-client's `registry.clear()` (a test's teardown, a hot reload) empties the registry
  // without telling us: a group whose metrics left it reports nothing, and is started again.
  if (group !== undefined && registry.getSingleMetric(`${prefix}requests_total`) !== group.requests) {
    byPrefix.delete(prefix);
    group = undefined;
  }
  if (group === undefined) {
    if (registry.getSingleMetric(`${prefix}requests_total`) !== undefined) {
      throw new TypeError(`page-dumper: registerMetrics(): the registry has a metric named ${prefix}requests_total already`);
    }
    group = { dumpers: new Map(), named: name !== undefined, metricNames: [] };
    byPrefix.set(prefix, group);
    define(registry, prefix, group);
  } else if (!group.named || name === undefined) {
    throw new TypeError(
      'page-dumper: registerMetrics(): this registry reports a dumper already; give each dumper its own option "name" (the label `dumper`), or use a registry per dumper',
    );
  } else if (group.dumpers.has(name)) {
    throw new TypeError(`page-dumper: registerMetrics(): this registry reports a dumper named "${name}" already`);
  }
  group.dumpers.set(name, dumper);
  const g = group;
  return {
    registry,
    unregister() {
      if (g.dumpers.get(name) !== dumper) return;
      g.dumpers.delete(name);
      // A group the registry dropped (`registry.clear()`) owns no metric there any more.
      if (g.dumpers.size !== 0 || byPrefix.get(prefix) !== g) return;
      for (const metric of g.metricNames) registry.removeSingleMetric(metric);
      byPrefix.delete(prefix);
    },
  };
}

type Labels = Record<string, string>;

/** Registers the metrics of a group; each reads the stats of the group's dumpers when collected. */
function define(registry: Registry, prefix: string, group: Group): void {
  const dumperLabel = group.named ? ['dumper'] : [];
  const labelsOf = (name: string | undefined, extra?: Labels): Labels => (name === undefined ? { ...extra } : { dumper: name, ...extra });

  const counter = (name: string, help: string, label: string | undefined, values: (s: DumperStats) => ReadonlyArray<readonly [string | undefined, number]>) => {
    group.metricNames.push(prefix + name);
    return new Counter({
      name: prefix + name,
      help,
      labelNames: label === undefined ? dumperLabel : [...dumperLabel, label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [dumperName, dumper] of group.dumpers) {
          for (const [value, n] of values(dumper.stats())) {
            this.inc(labelsOf(dumperName, label === undefined || value === undefined ? undefined : { [label]: value }), n);
          }
        }
      },
    });
  };
  const one = (pick: (s: DumperStats) => number) => (s: DumperStats) => [[undefined, pick(s)] as const];
  const each = <K extends string>(keys: readonly K[], pick: (s: DumperStats) => Readonly<Record<K, number>>) => (s: DumperStats) => {
    const record = pick(s);
    return keys.map((k) => [k, record[k]] as const);
  };

  group.requests = counter('requests_total', 'Requests served by page-dumper, by result: a hit from the store, a miss that went to the app, or a bypass of the cache.', 'result', (s) => [
    ['hit', s.hits],
    ['miss', s.misses],
    ['bypass', BYPASS_REASONS.reduce((sum, r) => sum + s.bypasses[r], 0)],
  ]);
  counter('not_modified_total', 'Hits answered with 304 Not Modified.', undefined, one((s) => s.notModified));
  counter('bypasses_total', 'Requests that neither read nor filled the cache, by reason.', 'reason', each(BYPASS_REASONS, (s) => s.bypasses));
  counter('coalesced_total', 'Misses that waited for a concurrent render of the same page instead of rendering it again.', undefined, one((s) => s.coalesced));
  counter('stores_total', 'Renders stored.', undefined, one((s) => s.stores));
  counter('refusals_total', 'Renders not stored, by reason.', 'reason', each(REFUSAL_REASONS, (s) => s.refusals));
  counter('invalidations_total', 'Invalidations asked for, by what asked (each call counts once).', 'kind', each(INVALIDATION_KINDS, (s) => s.invalidations));
  counter('store_errors_total', 'Store operations that failed.', undefined, one((s) => s.storeErrors));
  counter('stored_bytes_total', 'Body bytes of the renders stored (identity coding).', undefined, one((s) => s.bytesStored));
  counter('served_bytes_total', 'Body bytes sent by hits.', undefined, one((s) => s.bytesServed));

  const gauge = (name: string, help: string, field: 'size' | 'bytes') => {
    group.metricNames.push(prefix + name);
    new Gauge({
      name: prefix + name,
      help,
      labelNames: dumperLabel,
      registers: [registry],
      collect() {
        this.reset();
        for (const [dumperName, dumper] of group.dumpers) {
          // Only a store that counts in memory (MemoryStore's `size` and `bytes`): a scrape must not
          // wait on, or load, a shared store.
          const value = (dumper.store as unknown as Record<string, unknown>)[field];
          if (typeof value === 'number') this.set(labelsOf(dumperName), value);
        }
      },
    });
  };
  gauge('store_entries', 'Entries in the store (stores that count them in memory).', 'size');
  gauge('store_bytes', 'Bytes held by the store (stores that count them in memory).', 'bytes');
}
