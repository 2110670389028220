/**
 * tfjs has no stop_gradient op; this identity with a zero gradient makes "x_prev is a constant
 * (detached)" (RDPO_SPEC.md section 2) hold even when a caller computes x_prev inside the same
 * gradient tape as the policy's eps.
 */
import * as tf from "@tensorflow/tfjs-core";

const detach = tf.customGrad((x) => ({
  value: (x as tf.Tensor).clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

/** The same values as `x`, with no gradient flowing back into `x`. */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return detach(x) as T;
}
