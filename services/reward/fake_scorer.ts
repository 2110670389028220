/**
 * A deterministic Scorer for tests and benchmarks of the serving layer (registry, batcher, core,
 * gRPC): its score is a plain function of the image bytes, the prompt and a per-instance offset,
 * so every caller can check its own result after batching; delays, gates and failures are
 * controllable so in-flight behaviour is tested without timing assumptions.
 */
import type { RgbImage, Scorer } from "./scorer.ts";

export interface FakeScorerOptions {
  kind?: string;
  needsPrompts?: boolean;
  /** Added to every score, e.g. to tell versions apart. */
  offset?: number;
  /** Sleep per scorer call (ms), simulating inference. */
  delayMs?: number;
  /** Extra sleep per image (ms). */
  perImageDelayMs?: number;
  /** Fail any batch that contains an image whose first byte equals this value. */
  poisonByte?: number;
  /** Fail every call (e.g. a broken model: makes the registry's warm-up fail). */
  failAll?: string;
}

/** The score the fake assigns: mean byte value / 255 + offset + prompt length / 1000. */
export function fakeScore(image: RgbImage, prompt: string | undefined, offset = 0): number {
  let sum = 0;
  for (const b of image.data) sum += b;
  return sum / Math.max(1, image.data.length) / 255 + offset + (prompt?.length ?? 0) / 1000;
}

export class FakeScorer implements Scorer {
  readonly kind: string;
  readonly needsPrompts: boolean;
  readonly offset: number;
  /** Size of every batch the scorer was called with, in call order. */
  readonly batchSizes: number[] = [];
  closed = false;
  /** Calls running right now. */
  running = 0;
  #options: FakeScorerOptions;
  #gate: Promise<void> | undefined;
  #openGate: (() => void) | undefined;

  constructor(options: FakeScorerOptions = {}) {
    this.kind = options.kind ?? "fake";
    this.needsPrompts = options.needsPrompts ?? false;
    this.offset = options.offset ?? 0;
    this.#options = options;
  }

  /** From now on every call waits until `release()`. */
  hold(): void {
    if (this.#gate) return;
    this.#gate = new Promise((resolve) => (this.#openGate = resolve));
  }

  /** Lets held calls (and later ones) through. */
  release(): void {
    this.#openGate?.();
    this.#gate = undefined;
    this.#openGate = undefined;
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    if (this.closed) throw new Error(`${this.kind}: score() after close()`);
    this.running++;
    try {
      this.batchSizes.push(images.length);
      if (this.#gate) await this.#gate;
      const delay = (this.#options.delayMs ?? 0) + (this.#options.perImageDelayMs ?? 0) * images.length;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (this.#options.failAll) throw new Error(this.#options.failAll);
      if (
        this.#options.poisonByte !== undefined && images.some((im) => im.data[0] === this.#options.poisonByte)
      ) {
        throw new Error(`poisoned image (first byte ${this.#options.poisonByte})`);
      }
      if (this.needsPrompts && prompts.length !== images.length) {
        throw new Error(`expected ${images.length} prompts, got ${prompts.length}`);
      }
      return Float64Array.from(images, (im, i) => fakeScore(im, prompts[i], this.offset));
    } finally {
      this.running--;
    }
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** A w x h RGB image filled with `value` (first byte `first` if given). */
export function solidImage(width: number, height: number, value: number, first?: number): RgbImage {
  const data = new Uint8Array(width * height * 3).fill(value);
  if (first !== undefined) data[0] = first;
  return { width, height, data };
}
