/**
 * Per-version request statistics shown by ListScorers: counts over the version's whole life, mean
 * latency over all requests, p99 over a sliding window of the most recent requests (a window keeps
 * memory bounded and lets p99 follow the current load).
 */

export const LATENCY_WINDOW = 2048;

export interface StatsSnapshot {
  requestCount: number;
  imageCount: number;
  errorCount: number;
  meanLatencyMs: number;
  p99LatencyMs: number;
}

export class ScorerStats {
  #requests = 0;
  #images = 0;
  #errors = 0;
  #latencySum = 0;
  readonly #window: Float64Array;
  #next = 0;
  #filled = 0;

  constructor(windowSize = LATENCY_WINDOW) {
    this.#window = new Float64Array(windowSize);
  }

  /** One finished request: `images` scored (0 on failure), its latency, and whether it failed. */
  record(images: number, latencyMs: number, failed: boolean): void {
    this.#requests++;
    if (failed) this.#errors++;
    else this.#images += images;
    this.#latencySum += latencyMs;
    this.#window[this.#next] = latencyMs;
    this.#next = (this.#next + 1) % this.#window.length;
    this.#filled = Math.min(this.#filled + 1, this.#window.length);
  }

  snapshot(): StatsSnapshot {
    return {
      requestCount: this.#requests,
      imageCount: this.#images,
      errorCount: this.#errors,
      meanLatencyMs: this.#requests === 0 ? 0 : this.#latencySum / this.#requests,
      p99LatencyMs: percentile(this.#window.subarray(0, this.#filled), 0.99),
    };
  }
}

/** Nearest-rank percentile (`q` in [0, 1]) of `values`; 0 for none. */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return 0;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}
