/**
 * Deadlines of many short calls on one timer (issue 21). A Session stream's messages each have a
 * deadline; one setTimeout + clearTimeout per message costs ~0.03-0.05 ms on each side after model
 * work (measured: bench/session_hop_probe.ts, ~6 us warm, ~30 us with cold caches). Here a
 * deadline is an entry in a min-heap and the one timer is armed for the earliest; a call that
 * finishes only marks its entry, and the timer is re-armed when it fires. In the steady state
 * (every call's deadline is later than the armed one) adding and cancelling touch no timer.
 *
 * The timer is unref'd: a deadline never keeps the process alive by itself (the call it belongs
 * to does, through its stream), so an armed timer left for a call that already finished holds
 * nothing up. close() disarms it when the owner (a Session carrier or client) ends.
 */

interface Entry {
  /** Absolute deadline, ms since the epoch (Date.now()). */
  at: number;
  fire: (() => void) | undefined;
}

/** setTimeout's limit; later deadlines are not armed yet (the timer re-arms when it fires). */
const MAX_DELAY_MS = 2 ** 31 - 1;

export class DeadlineQueue {
  readonly #heap: Entry[] = [];
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  #armedAt = Infinity;
  #closed = false;

  /** Live (not cancelled, not fired) deadlines. */
  get size(): number {
    return this.#live;
  }

  /**
   * Calls `fire` once at (or just after) `at`, unless the returned cancel function runs first.
   * After close(), nothing fires.
   */
  add(at: number, fire: () => void): () => void {
    const entry: Entry = { at, fire };
    if (this.#closed) return () => {};
    this.#push(entry);
    this.#live++;
    if (at < this.#armedAt) this.#arm(at);
    return () => {
      if (entry.fire === undefined) return;
      entry.fire = undefined;
      this.#live--;
      // Cancelled entries wait in the heap until they reach the top; rebuild when they dominate.
      if (this.#heap.length > 64 && this.#heap.length > 4 * this.#live) this.#compact();
    };
  }

  /** Disarms the timer and drops every deadline (the owner ended). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Infinity;
    for (const e of this.#heap) e.fire = undefined;
    this.#heap.length = 0;
    this.#live = 0;
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = setTimeout(() => this.#onTimer(), Math.min(MAX_DELAY_MS, Math.max(0, at - Date.now())));
    Deno.unrefTimer(this.#timer);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = Date.now();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const e = this.#pop()!;
      const fire = e.fire;
      if (fire === undefined) continue;
      e.fire = undefined;
      this.#live--;
      fire();
    }
    this.#dropCancelledTop();
    if (!this.#closed && this.#heap.length > 0) this.#arm(this.#heap[0].at);
  }

  #dropCancelledTop(): void {
    while (this.#heap.length > 0 && this.#heap[0].fire === undefined) this.#pop();
  }

  #compact(): void {
    const live = this.#heap.filter((e) => e.fire !== undefined);
    this.#heap.length = 0;
    for (const e of live) this.#push(e);
  }

  #push(entry: Entry): void {
    const h = this.#heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent].at <= h[i].at) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  #pop(): Entry | undefined {
    const h = this.#heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l].at < h[m].at) m = l;
        if (r < h.length && h[r].at < h[m].at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
