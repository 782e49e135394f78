/**
 * Coalesces calls made in the same tick: items queued under one key before the event loop
 * moves on are handed to `flush` together, so many concurrent `tell`s to one recipient cost
 * one script call instead of one each. A lone call waits only for the current microtasks.
 * Every promise `add` returns settles with its group's call, whether that call resolves, rejects
 * or throws; the caller must attach its handlers at once (a send can fail at any moment).
 */

interface Pending<T, R> {
  items: T[];
  waiters: { resolve: (done: { result: R; index: number }) => void; reject: (err: unknown) => void }[];
}

/** Groups items by key within a tick and flushes each group with one call. */
export class Batcher<T, R> {
  private readonly pending = new Map<string, Pending<T, R>>();
  private scheduled = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<R>,
    /** A group is flushed at once when it reaches this size. */
    private readonly maxItems: number,
  ) {}

  /** Queues `item` under `key`; resolves with the result of the call that carried it and its position there. */
  add(key: string, item: T): Promise<{ result: R; index: number }> {
    let group = this.pending.get(key);
    if (!group) {
      group = { items: [], waiters: [] };
      this.pending.set(key, group);
    }
    group.items.push(item);
    const done = new Promise<{ result: R; index: number }>((resolve, reject) =>
      group.waiters.push({ resolve, reject }),
    );
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

  private run(group: Pending<T, R>): void {
    let call: Promise<R>;
    try {
      call = this.flush(group.items);
    } catch (err) {
      // A flush that throws instead of rejecting must still reach every caller.
      call = Promise.reject(err);
    }
    call.then(
      (result) => {
        for (const [index, w] of group.waiters.entries()) w.resolve({ result, index });
      },
      (err: unknown) => {
        for (const w of group.waiters) w.reject(err);
      },
    );
  }
}
