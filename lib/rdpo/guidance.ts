/**
 * Classifier-free guidance (RDPO_SPEC.md section 1): eps = eps_u + w (eps_c - eps_u). The guided eps is
 * used both for sampling and for the log-probabilities used in training.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import { requireSameShape } from "./per_item.ts";

/** RDPO's default guidance weight (paper section 5.1). */
export const DEFAULT_GUIDANCE_SCALE = 5.0;

/** Throws unless w is a finite number. */
export function validateGuidanceScale(w: number, field = "guidance_scale"): void {
  if (!Number.isFinite(w)) throw new InvalidArgumentError(field, `expected a finite number, got ${w}`);
}

/** Whether the unconditional pass is needed: w = 1 gives eps_c exactly (proto StepConfig). */
export function needsUnconditional(w: number): boolean {
  return w !== 1;
}

/** eps = eps_u + w (eps_c - eps_u), computed in diffusers' order; w = 1 returns eps_c itself. */
export function guidedNoise(noiseUncond: tf.Tensor, noiseCond: tf.Tensor, w: number): tf.Tensor {
  validateGuidanceScale(w);
  requireSameShape(noiseUncond, noiseCond, "noise_uncond", "noise_cond");
  if (!needsUnconditional(w)) return noiseCond.clone();
  return tf.tidy(() => tf.add(noiseUncond, tf.mul(tf.scalar(w), tf.sub(noiseCond, noiseUncond))));
}
