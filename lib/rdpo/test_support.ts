/**
 * Helpers for lib/rdpo's tests only (not exported by mod.ts): backend selection, float64 reference
 * arithmetic and array comparison.
 */
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, initBackend, parseBackendName } from "../tensor/backend.ts";

/**
 * Backends the key tests run on: `RDPO_TEST_BACKENDS` (comma-separated) or cpu and wasm. Other tests
 * use the first one.
 */
export function testBackends(): BackendName[] {
  const env = Deno.env.get("RDPO_TEST_BACKENDS");
  if (!env) return ["cpu", "wasm"];
  return env.split(",").map((s) => parseBackendName(s.trim()));
}

/** Selects the backend, with tfjs' gradient functions registered (lib/tensor/gradients.ts). */
export async function useBackend(name: BackendName = testBackends()[0]): Promise<void> {
  await initBackend(name, { gradients: true });
}

/** Largest |a[i] - b[i]|; throws when the lengths differ. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Reads a tensor's values as float64 numbers and disposes it. */
export async function take(t: tf.Tensor): Promise<Float64Array> {
  const v = Float64Array.from(await t.data());
  t.dispose();
  return v;
}

/**
 * Deterministic pseudo-random float32 test inputs in [-scale, scale) (a tiny LCG; not the project RNG
 * under test). float32 so tensors hold exactly these values and float64 references use the same inputs.
 */
export function testValues(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
