/**
 * Memory of full-size SD1.5 passes from their shapes (the shape backend): the largest tensor and
 * the peak of live tensor bytes of a forward, a guided forward and an RDPO LoRA train step.
 */
import type { ParamStore } from "../params.ts";

/** Gives every parameter a value (zeros) one at a time; on the shape backend nothing is kept. */
export function zeroParams(store: ParamStore): void {
  for (const p of store.params()) p.setFromTorch(new Float32Array(p.size));
}
