import * as tf from "@tensorflow/tfjs-core";
import { FailedPreconditionError } from "../../lib/errors.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import type { HostTensor } from "./denoiser.ts";

/**
 * Tensors computed in a synchronous tfjs scope, read back to the host afterwards with the async
 * `data()`: WebGPU under Deno cannot `dataSync()`. `float`/`images` keep a tensor past its scope and
 * start its read; `done()` waits for every read and frees the kept tensors.
 */
export class Readback {
  readonly #kept: tf.Tensor[] = [];
  readonly #reads: Promise<unknown>[] = [];

  #read<T>(t: tf.Tensor, convert: (data: tf.TypedArray, shape: number[]) => T): Promise<T> {
    const kept = tf.keep(t);
    this.#kept.push(kept);
    const read = kept.data().then((d) => convert(d, [...kept.shape]));
    this.#reads.push(read.catch(() => {}));
    return read;
  }

  float(t: tf.Tensor): Promise<HostTensor> {
    return this.#read(t, (data, shape) => ({ shape, data: data as Float32Array }));
  }

  /** float [0, 1] NCHW -> uint8 RGB images, quantised as DDPO does: round(x * 255) clamped. */
  images(unit: tf.Tensor4D): Promise<RgbImage[]> {
    const [b, c, h, w] = unit.shape;
    if (c !== 3) {
      throw new FailedPreconditionError(`decoded images have ${c} channels; only RGB (3) is supported`);
    }
    const bytes = tf.cast(
      tf.clipByValue(tf.round(tf.mul(tf.transpose(unit, [0, 2, 3, 1]), 255)), 0, 255),
      "int32",
    );
    return this.#read(bytes, (data) => {
      const n = h * w * 3;
      return Array.from({ length: b }, (_, i) => ({
        width: w,
        height: h,
        data: Uint8Array.from((data as Int32Array).subarray(i * n, (i + 1) * n)),
      }));
    });
  }

  async done(): Promise<void> {
    await Promise.all(this.#reads);
    for (const t of this.#kept) t.dispose();
  }
}

/** Runs `compute` (synchronous tfjs work that starts reads on `rb`), awaits its reads, frees it all. */
export async function withReadback<T>(compute: (rb: Readback) => Promise<T>): Promise<T> {
  const rb = new Readback();
  try {
    return await compute(rb);
  } finally {
    await rb.done();
  }
}
