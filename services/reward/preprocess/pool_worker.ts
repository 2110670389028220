/**
 * A preprocessing worker (pool.ts): turns a chunk of a batch's images into pixel values with the
 * same code as the in-thread path (scorers/inputs.ts pixelValuesFor), so both give identical bytes.
 */
/// <reference lib="deno.worker" />
import type { RgbImage } from "../../../lib/image/png.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";

export interface PoolRequest {
  id: number;
  spec: PreprocessingSpec;
  images: RgbImage[];
}

export type PoolReply =
  | { id: number; pixels: Float32Array }
  | { id: number; error: { field?: string; message: string } };

self.onmessage = (e: MessageEvent<PoolRequest>) => {
  const { id, spec, images } = e.data;
  try {
    const pixels = pixelValuesFor(spec, images);
    self.postMessage({ id, pixels } satisfies PoolReply, [pixels.buffer as ArrayBuffer]);
  } catch (err) {
    const field = err instanceof InvalidArgumentError ? err.field : undefined;
    self.postMessage({ id, error: { field, message: (err as Error).message } } satisfies PoolReply);
  }
};
