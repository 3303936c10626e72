/**
 * The dashboard's memory: fixed-size structures, so that what it keeps never grows with the
 * traffic, the number of distinct URLs or the time the process has been up.
 */

/** The last `capacity` items pushed, oldest first when read. */
export class Ring<T> {
  readonly #items: Array<T | undefined>;
  /** Where the next item goes. */
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new TypeError(`page-dumper: a ring needs a positive integer capacity, got ${String(capacity)}`);
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(item: T): void {
    this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = this.#size < this.capacity ? 0 : this.#next;
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(start + i) % this.capacity] as T);
    return out;
  }
}

/** A page's counts in `TopCounter`. */
export interface Counted {
  readonly key: string;
  /** Hits counted since the key was tracked. */
  readonly hits: number;
  /** Misses counted since the key was tracked. */
  readonly misses: number;
  /**
   * Requests the key may have had before it was tracked (0 when it was tracked from its first):
   * its true count is between `hits + misses` and `hits + misses + error`.
   */
  readonly error: number;
}

interface Slot {
  hits: number;
  misses: number;
  error: number;
}

/**
 * The most requested keys, in bounded memory: the "space-saving" algorithm (Metwally, Agrawal and
 * El Abbadi, 2005) with amortized pruning. At most `capacity` keys are tracked; when one more
 * comes, the less counted half is dropped at once (one sort per `capacity / 2` new keys, not a
 * scan per key), and a key tracked from then on starts at the largest count dropped so far (its
 * `error`), so that a key that was dropped and comes back is not ranked below keys it outnumbers.
 * A key requested more than `1 / (capacity / 2)` of the time is never lost; counts are upper bounds.
 * Keys longer than `maxKeyLength` are cut (with an ellipsis), which bounds the bytes too.
 */
export class TopCounter {
  readonly #slots = new Map<string, Slot>();
  /** The largest count dropped so far: where a newly tracked key starts. */
  #floor = 0;

  constructor(
    readonly capacity: number,
    readonly maxKeyLength = 512,
  ) {
    if (!Number.isSafeInteger(capacity) || capacity < 2) throw new TypeError(`page-dumper: a top counter needs an integer capacity of at least 2, got ${String(capacity)}`);
  }

  /** Keys tracked now (at most `capacity`). */
  get size(): number {
    return this.#slots.size;
  }

  add(rawKey: string, hit: boolean): void {
    const key = rawKey.length > this.maxKeyLength ? `${rawKey.slice(0, this.maxKeyLength - 1)}…` : rawKey;
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      if (this.#slots.size >= this.capacity) this.#prune();
      slot = { hits: 0, misses: 0, error: this.#floor };
      this.#slots.set(key, slot);
    }
    if (hit) slot.hits++;
    else slot.misses++;
  }

  /** The `n` keys counted most (by their upper bound), most first. */
  top(n: number): Counted[] {
    return this.#sorted()
      .slice(0, n)
      .map(([key, s]) => ({ key, hits: s.hits, misses: s.misses, error: s.error }));
  }

  #sorted(): Array<[string, Slot]> {
    return [...this.#slots].sort((a, b) => total(b[1]) - total(a[1]) || (a[0] < b[0] ? -1 : 1));
  }

  #prune(): void {
    const sorted = this.#sorted();
    const keep = Math.floor(this.capacity / 2);
    for (let i = keep; i < sorted.length; i++) {
      const [key, slot] = sorted[i]!;
      this.#floor = Math.max(this.#floor, total(slot));
      this.#slots.delete(key);
    }
  }
}

function total(s: Slot): number {
  return s.hits + s.misses + s.error;
}
