/**
 * Preprocessing on several cores (issue 21): a batch's images are split into contiguous chunks, each
 * chunk made into pixel values by one worker (pool_worker.ts, the same code as the in-thread path),
 * and the chunks are joined in order, so the bytes are identical to `pixelValuesFor`.
 *
 * Workers pay a structured-clone copy of each image in (the pixels come back transferred). Measured on
 * 2 cores (`deno run -A services/reward/preprocess/bench.ts`, pool_bench.ts): a batch of 8 640x480
 * images takes 11.7 ms in-thread, 28.6 / 17.0 / 16.2 ms on 1 / 2 / 4 workers: the copies cost more
 * than the second core gives. So the pool is opt-in (`--preprocess-workers`, default 0); sharing the
 * decoded images with the workers without a copy (SharedArrayBuffer) is what would make it pay.
 */
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";
import type { PoolReply, PoolRequest } from "./pool_worker.ts";

/** Contiguous [start, end) chunks of `n` items over at most `parts` parts, sizes differing by <= 1. */
export function chunkRanges(n: number, parts: number): [number, number][] {
  const k = Math.max(1, Math.min(parts, n));
  const out: [number, number][] = [];
  for (let i = 0, start = 0; i < k; i++) {
    const size = Math.floor(n / k) + (i < n % k ? 1 : 0);
    out.push([start, start + size]);
    start += size;
  }
  return out;
}

export class PreprocessPool {
  readonly #workers: Worker[];
  readonly #pending = new Map<number, { resolve: (r: PoolReply) => void }>();
  #nextId = 0;
  #closed = false;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size ${size}: a positive integer`);
    this.#workers = Array.from({ length: size }, () => {
      const w = new Worker(new URL("./pool_worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent<PoolReply>) => {
        const p = this.#pending.get(e.data.id);
        this.#pending.delete(e.data.id);
        p?.resolve(e.data);
      };
      w.onerror = (e) => {
        // A worker that died takes its requests with it: fail them, never hang a Score call.
        e.preventDefault();
        for (const [id, p] of this.#pending) {
          this.#pending.delete(id);
          p.resolve({ id, error: { message: `preprocessing worker failed: ${e.message}` } });
        }
      };
      return w;
    });
  }

  /** `pixelValuesFor(spec, images)`, the chunks on the workers; errors name the batch's image index. */
  async pixelValues(spec: PreprocessingSpec, images: RgbImage[]): Promise<Float32Array> {
    if (this.#closed) throw new Error("preprocessing pool is closed");
    const per = 3 * spec.size * spec.size;
    const out = new Float32Array(images.length * per);
    const ranges = chunkRanges(images.length, this.#workers.length);
    const replies = await Promise.all(ranges.map(([start, end], i) => {
      const id = this.#nextId++;
      const reply = new Promise<PoolReply>((resolve) => this.#pending.set(id, { resolve }));
      const request: PoolRequest = { id, spec, images: images.slice(start, end) };
      this.#workers[i].postMessage(request);
      return reply;
    }));
    replies.forEach((r, i) => {
      const start = ranges[i][0];
      if ("error" in r) {
        const m = r.error.field?.match(/^images\[(\d+)\]$/);
        if (m) {
          const field = `images[${Number(m[1]) + start}]`;
          throw new InvalidArgumentError(field, r.error.message.replace(/^images\[\d+\]: /, ""));
        }
        if (r.error.field !== undefined) throw new InvalidArgumentError(r.error.field, r.error.message);
        throw new Error(r.error.message);
      }
      out.set(r.pixels, start * per);
    });
    return out;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
  }
}

let shared: PreprocessPool | null = null;

/** Sets the service's pool size (0 = preprocess in the calling thread); replaces any previous pool. */
export function configurePreprocessPool(workers: number): void {
  shared?.close();
  shared = workers > 0 ? new PreprocessPool(workers) : null;
}

/**
 * Pixel values for a scorer: on the pool when one is configured and the batch has at least two
 * images (one image gains nothing from a worker and pays the copies), else in this thread.
 */
export function pooledPixelValues(
  spec: PreprocessingSpec,
  images: RgbImage[],
): Promise<Float32Array> | Float32Array {
  return shared && images.length >= 2 ? shared.pixelValues(spec, images) : pixelValuesFor(spec, images);
}
