import { LRUCache } from 'lru-cache';

/** A key's count in its current window. */
interface Window {
  startedAt: number;
  count: number;
}

/**
 * At most `limit` events per key in each window of `windowMs`, a window starting at the key's first
 * event after the last one ended. Kept in memory, in this process: with several instances a key
 * may reach `limit` on each. At most `maxKeys` keys are counted at once; past that the key used
 * least recently is forgotten and starts again from zero (a bound on memory, not on the count of
 * any key still held).
 */
export class WindowCap {
  private readonly windows: LRUCache<string, Window>;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    maxKeys: number,
  ) {
    this.windows = new LRUCache({ max: maxKeys });
  }

  /**
   * Counts one event of `key` at `now` if its window has room: 0 when counted, otherwise the
   * milliseconds until the window ends (and nothing is counted).
   */
  take(key: string, now: number): number {
    const window = this.windows.get(key);
    if (!window || now - window.startedAt >= this.windowMs) {
      this.windows.set(key, { startedAt: now, count: 1 });
      return 0;
    }
    if (window.count >= this.limit) return window.startedAt + this.windowMs - now;
    window.count++;
    return 0;
  }

  /** Uncounts an event `take` counted, when what it was for did not happen after all. */
  giveBack(key: string, now: number): void {
    const window = this.windows.peek(key);
    if (window && now - window.startedAt < this.windowMs && window.count > 0) window.count--;
  }
}
