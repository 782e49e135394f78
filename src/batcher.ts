/**
 * Coalesces calls made in the same tick: items queued under one key before the event loop
 * moves on are handed to `flush` together, so many concurrent `tell`s to one recipient cost
 * one script call instead of one each. A lone call waits only for the current microtasks.
 */

interface Pending<T> {
  items: T[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

/** Groups items by key within a tick and flushes each group with one call. */
export class Batcher<T> {
  private readonly pending = new Map<string, Pending<T>>();
  private scheduled = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<unknown>,
    /** A group is flushed at once when it reaches this size. */
    private readonly maxItems: number,
  ) {}

  /** Queues `item` under `key`; resolves once the call that carries it succeeded. */
  add(key: string, item: T): Promise<void> {
    let group = this.pending.get(key);
    if (!group) {
      group = { items: [], waiters: [] };
      this.pending.set(key, group);
    }
    group.items.push(item);
    const done = new Promise<void>((resolve, reject) => group.waiters.push({ resolve, reject }));
    if (group.items.length >= this.maxItems) {
      this.pending.delete(key);
      this.run(group);
    } else if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flushAll());
    }
    return done;
  }

  private flushAll(): void {
    this.scheduled = false;
    const groups = [...this.pending.values()];
    this.pending.clear();
    for (const group of groups) this.run(group);
  }

  private run(group: Pending<T>): void {
    this.flush(group.items).then(
      () => {
        for (const w of group.waiters) w.resolve();
      },
      (err: unknown) => {
        for (const w of group.waiters) w.reject(err);
      },
    );
  }
}
