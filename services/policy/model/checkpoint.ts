/**
 * Gradient checkpointing (diffusers' `enable_gradient_checkpointing`, torch.utils.checkpoint): a
 * block's forward runs without keeping its intermediates on the gradient tape, and the backward
 * recomputes them from the saved inputs. Memory of a train step falls from every activation of
 * every block to the block inputs plus one block's activations, for one extra forward.
 */
import * as tf from "@tensorflow/tfjs-core";
import { Linear } from "./nn.ts";

function recording(): boolean {
  return (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
}

/**
 * `fn(...inputs)`, checkpointed when a gradient tape is recording. `variables` are the trainable
 * variables `fn` reads (the LoRA factors of its layers): their gradients flow through the
 * recomputation; a frozen weight needs none.
 */
export function checkpointed<T extends tf.Tensor>(
  fn: (...xs: tf.Tensor[]) => T,
  inputs: tf.Tensor[],
  variables: tf.Variable[],
): T {
  if (!recording()) return fn(...inputs);
  const n = inputs.length;
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as tf.Tensor[];
    const value = tf.tidy(() => fn(...xs));
    save(xs);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const wrt = [...saved, ...variables];
        // The recomputation records on a tape of its own; tfjs keeps one active tape (and clears it
        // when a top-level gradients() ends), so the outer pass's tape is put back afterwards.
        const state = tf.engine().state as unknown as { activeTape: unknown[] | null };
        const outerTape = state.activeTape;
        try {
          const { value: y, grads } = tf.engine().gradients(() => fn(...saved), wrt, dy as tf.Tensor, true);
          y.dispose();
          return wrt.map((t, i) => grads[i] ?? tf.zerosLike(t));
        } finally {
          state.activeTape = outerTape;
        }
      },
    };
  }) as unknown as (...xs: tf.Tensor[]) => T;
  return op(...inputs, ...variables);
}

/** The trainable LoRA variables of every Linear reachable from `module`'s fields. */
export function loraVariablesOf(module: object): tf.Variable[] {
  const out: tf.Variable[] = [];
  const seen = new Set<object>();
  const visit = (o: unknown, depth: number) => {
    if (!o || typeof o !== "object" || seen.has(o) || depth > 8 || o instanceof tf.Tensor) return;
    seen.add(o);
    if (o instanceof Linear) {
      if (o.lora?.a.trainable) out.push(o.lora.a);
      if (o.lora?.b.trainable) out.push(o.lora.b);
      return;
    }
    for (const v of Array.isArray(o) ? o : Object.values(o)) visit(v, depth + 1);
  };
  visit(module, 0);
  return out;
}
