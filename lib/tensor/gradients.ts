/**
 * Gradient functions for tfjs kernels. `@tensorflow/tfjs-core`'s Node bundle registers none (its
 * `dist/register_all_gradients.js` is ESM with extension-less imports, which Deno cannot load),
 * so `tf.grad` / `tf.variableGrads` fail with "gradient function not found" until the union
 * package `@tensorflow/tfjs` (whose bundle registers them all in tfjs' global registry) is
 * imported. That import takes about 1 s, so inference-only code does not pay for it: call
 * `enableGradients()` before the first gradient computation.
 */
let loading: Promise<void> | null = null;

/** Registers every tfjs gradient (idempotent). */
export function enableGradients(): Promise<void> {
  loading ??= import("@tensorflow/tfjs").then(() => {});
  return loading;
}
