/**
 * What the dashboard remembers between page loads, all of it bounded: samples of
 * `dumper.stats()` on a timer, the most requested pages (from the hit and miss channels), and the
 * recent invalidations (from the invalidate channel).
 */
import diagnostics from 'node:diagnostics_channel';
import type { Dumper } from '../core/dumper.js';
import { CHANNELS, type HitMessage, type InvalidateMessage, type InvalidationKind, type MissMessage } from '../core/stats.js';
import { Ring, TopCounter } from './bounded.js';

/** One sample of the counters (cumulative since the dumper was created). */
export interface Sample {
  /** When it was taken (ms since the epoch). */
  readonly t: number;
  readonly hits: number;
  readonly misses: number;
  readonly bypasses: number;
  readonly stores: number;
  readonly refusals: number;
  readonly invalidations: number;
  readonly storeErrors: number;
}

/** An invalidation as the dashboard lists it. */
export interface InvalidationRecord {
  readonly at: number;
  readonly kind: InvalidationKind;
  readonly paths: readonly string[];
  readonly tags: readonly string[];
  readonly prefixes: readonly string[];
  readonly models: readonly string[];
  readonly integrations: readonly string[];
  readonly method: string | undefined;
  /** `dashboard` when it was asked for from the dashboard's purge controls. */
  readonly source: 'dashboard' | undefined;
}

/** At most this many paths, tags... are kept per invalidation, each cut at `MAX_NAME` characters. */
const MAX_LIST = 20;
const MAX_NAME = 300;

function capped(list: readonly string[]): string[] {
  const out = list.slice(0, MAX_LIST).map((s) => (s.length > MAX_NAME ? `${s.slice(0, MAX_NAME - 1)}…` : s));
  if (list.length > MAX_LIST) out.push(`… and ${list.length - MAX_LIST} more`);
  return out;
}

function sum(record: Readonly<Record<string, number>>): number {
  let n = 0;
  for (const k in record) n += record[k]!;
  return n;
}

export interface CollectorOptions {
  readonly sampleInterval: number;
  readonly samples: number;
  readonly trackedPages: number;
  readonly recentInvalidations: number;
}

export class Collector {
  readonly samples: Ring<Sample>;
  readonly pages: TopCounter;
  readonly invalidations: Ring<InvalidationRecord>;
  readonly #dumper: Dumper;
  readonly #timer: NodeJS.Timeout;
  /** Set while the dashboard's own purge runs, so its invalidation is recorded as the dashboard's. */
  #source: 'dashboard' | undefined;
  #closed = false;

  readonly #onHit = (message: unknown): void => {
    const m = message as HitMessage;
    if (m.dumper === this.#dumper) this.pages.add(m.path, true);
  };

  readonly #onMiss = (message: unknown): void => {
    const m = message as MissMessage;
    if (m.dumper === this.#dumper && m.path !== undefined) this.pages.add(m.path, false);
  };

  readonly #onInvalidate = (message: unknown): void => {
    const m = message as InvalidateMessage;
    if (m.dumper !== this.#dumper) return;
    this.invalidations.push({
      at: Date.now(),
      kind: m.kind,
      paths: capped(m.paths),
      tags: capped(m.tags),
      prefixes: capped(m.prefixes),
      models: capped(m.models),
      integrations: capped(m.integrations),
      method: m.method,
      source: this.#source,
    });
  };

  constructor(dumper: Dumper, options: CollectorOptions) {
    this.#dumper = dumper;
    this.samples = new Ring(options.samples);
    this.pages = new TopCounter(options.trackedPages);
    this.invalidations = new Ring(options.recentInvalidations);
    diagnostics.subscribe(CHANNELS.hit, this.#onHit);
    diagnostics.subscribe(CHANNELS.miss, this.#onMiss);
    diagnostics.subscribe(CHANNELS.invalidate, this.#onInvalidate);
    this.sample();
    // A dashboard never keeps a process alive.
    this.#timer = setInterval(() => this.sample(), options.sampleInterval).unref();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Records the counters now. */
  sample(): void {
    const s = this.#dumper.stats();
    this.samples.push({
      t: Date.now(),
      hits: s.hits,
      misses: s.misses,
      bypasses: sum(s.bypasses),
      stores: s.stores,
      refusals: sum(s.refusals),
      invalidations: sum(s.invalidations),
      storeErrors: s.storeErrors,
    });
  }

  /** Runs `invalidation` (a call of one of the dumper's invalidation methods) as the dashboard's. */
  asDashboard<T>(invalidation: () => Promise<T>): Promise<T> {
    // The dumper publishes an invalidation synchronously, before its first await: the flag is
    // set exactly while the message is published.
    this.#source = 'dashboard';
    try {
      return invalidation();
    } finally {
      this.#source = undefined;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    diagnostics.unsubscribe(CHANNELS.hit, this.#onHit);
    diagnostics.unsubscribe(CHANNELS.miss, this.#onMiss);
    diagnostics.unsubscribe(CHANNELS.invalidate, this.#onInvalidate);
  }
}
