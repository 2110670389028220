/**
 * Preprocessing on several cores (issue 21): a batch's images are split into contiguous chunks, each
 * chunk made into pixel values by one worker (pool_worker.ts, the same code as the in-thread path),
 * and the chunks are joined in order, so the bytes are identical to `pixelValuesFor`.
 *
 * No structured-clone copies: the batch's image bytes go into one SharedArrayBuffer (one memcpy in
 * this thread, into a reused buffer) that every worker reads, and each worker's pixel values come
 * back transferred. Measured on 2 cores (`deno run -A services/reward/preprocess/bench.ts`, second
 * table; numbers in PERFORMANCE.md): 2 workers are ~0.9x of in-thread at batch 8 and ~1.15x at 32
 * (before: 0.57x / 0.86x with cloned images). With 2 cores and the calling thread, the scorer and the
 * other services sharing them, that is no clear gain, so the pool stays opt-in
 * (`--preprocess-workers`, default 0); on a machine with idle cores set it to the cores to spare.
 */
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";
import type { PoolImage, PoolReply, PoolRequest } from "./pool_worker.ts";

/**
 * The batch's image bytes in one SharedArrayBuffer (one memcpy, in this thread), which every worker
 * reads without a copy. Data that is not a byte array travels as it is, so the worker's validation
 * reports it exactly as the in-thread path would. `copyFree: false` sends every image by structured
 * clone (the pool before issue 21's fix; the bench's "before" row).
 */
export function shareImages(
  images: RgbImage[],
  copyFree = true,
  reuse?: SharedArrayBuffer,
): { input: SharedArrayBuffer; placed: PoolImage[] } {
  if (!copyFree) return { input: new SharedArrayBuffer(0), placed: images.map((raw) => ({ raw })) };
  let bytes = 0;
  for (const im of images) if (im.data instanceof Uint8Array) bytes += im.data.length;
  const input = reuse && reuse.byteLength >= bytes ? reuse : new SharedArrayBuffer(bytes);
  const heap = new Uint8Array(input);
  let at = 0;
  const placed = images.map((im): PoolImage => {
    if (!(im.data instanceof Uint8Array)) return { raw: im };
    heap.set(im.data, at);
    const p = { width: im.width, height: im.height, offset: at, length: im.data.length };
    at += im.data.length;
    return p;
  });
  return { input, placed };
}

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
  /**
   * Input buffers of finished batches, reused: a fresh SharedArrayBuffer's first write page-faults
   * (2.65 ms to fill 7.4 MB fresh, measured). A batch takes one, so concurrent batches never share.
   */
  readonly #spare: SharedArrayBuffer[] = [];

  /** `cloneImages`: send images by structured clone instead of shared memory (the bench's baseline). */
  constructor(readonly size: number, readonly cloneImages = false) {
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
    const reuse = this.#spare.pop();
    const { input, placed } = shareImages(images, !this.cloneImages, reuse);
    if (reuse && input !== reuse) this.#spare.push(reuse);
    const ranges = chunkRanges(images.length, this.#workers.length);
    const replies = await Promise.all(ranges.map(([start, end], i) => {
      const id = this.#nextId++;
      const reply = new Promise<PoolReply>((resolve) => this.#pending.set(id, { resolve }));
      const request: PoolRequest = {
        id,
        spec,
        input,
        images: placed.slice(start, end),
      };
      this.#workers[i].postMessage(request);
      return reply;
    }));
    if (input.byteLength > 0 && this.#spare.length < 2) this.#spare.push(input);
    replies.forEach((r, i) => {
      if ("error" in r) {
        const start = ranges[i][0];
        const m = r.error.field?.match(/^images\[(\d+)\]$/);
        if (m) {
          const field = `images[${Number(m[1]) + start}]`;
          throw new InvalidArgumentError(field, r.error.message.replace(/^images\[\d+\]: /, ""));
        }
        if (r.error.field !== undefined) throw new InvalidArgumentError(r.error.field, r.error.message);
        throw new Error(r.error.message);
      }
    });
    const chunks = replies.map((r) => (r as { pixels: Float32Array }).pixels);
    if (chunks.length === 1) return chunks[0]; // transferred: no copy at all
    const out = new Float32Array(images.length * per);
    chunks.forEach((c, i) => out.set(c, ranges[i][0] * per));
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
