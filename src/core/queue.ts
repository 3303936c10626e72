import type { PurgeQueueStore, QueueClaimOptions, QueuedItem, QueueStats } from './store.js';

interface Item {
  readonly id: number;
  readonly payload: string;
  due: number;
  attempts: number;
}

/**
 * The queue methods of a store, in this process's memory: `MemoryStore`'s, and the dumper's own
 * for a store that has none. A crash loses what it holds; processes do not share it.
 *
 * Items live in a Map in id order (insertion order), so a claim walks from the oldest; a claimed
 * item keeps its place and is skipped while its lease runs. Bounded only by what is pushed: the
 * dumper pushes one item per tag and purger, and acknowledges them as the edge answers.
 */
export class MemoryQueue implements PurgeQueueStore {
  readonly #queues = new Map<string, Map<number, Item>>();
  #nextId = 1;

  #queue(name: string): Map<number, Item> {
    let q = this.#queues.get(name);
    if (q === undefined) this.#queues.set(name, (q = new Map()));
    return q;
  }

  queuePush(queue: string, payloads: readonly string[], notBefore: number): number[] {
    const q = this.#queue(queue);
    const ids: number[] = [];
    for (const payload of payloads) {
      const id = this.#nextId++;
      q.set(id, { id, payload, due: notBefore, attempts: 0 });
      ids.push(id);
    }
    return ids;
  }

  queueClaim(queue: string, options: QueueClaimOptions): QueuedItem[] {
    const q = this.#queues.get(queue);
    const out: QueuedItem[] = [];
    if (q === undefined) return out;
    for (const item of q.values()) {
      if (out.length >= options.max) break;
      if (item.due > options.now) continue;
      item.due = options.now + options.lease;
      item.attempts++;
      out.push({ id: item.id, payload: item.payload, attempts: item.attempts });
    }
    return out;
  }

  queueAck(queue: string, ids: readonly number[]): void {
    const q = this.#queues.get(queue);
    if (q === undefined) return;
    for (const id of ids) q.delete(id);
  }

  queueRetry(queue: string, ids: readonly number[], notBefore: number): void {
    const q = this.#queues.get(queue);
    if (q === undefined) return;
    for (const id of ids) {
      const item = q.get(id);
      if (item !== undefined) item.due = notBefore;
    }
  }

  queueStats(queue: string): QueueStats {
    const q = this.#queues.get(queue);
    if (q === undefined || q.size === 0) return { size: 0, firstId: undefined, lastId: undefined, nextDue: undefined };
    let nextDue = Infinity;
    let firstId = Infinity;
    let lastId = 0;
    for (const item of q.values()) {
      if (item.due < nextDue) nextDue = item.due;
      if (item.id < firstId) firstId = item.id;
      if (item.id > lastId) lastId = item.id;
    }
    return { size: q.size, firstId, lastId, nextDue };
  }
}
