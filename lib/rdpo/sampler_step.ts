/**
 * One DDIM/DDPM step on tfjs tensors (RDPO_SPEC.md section 1): x0hat, the Gaussian mean mu and
 * x_prev = mu + sigma_t z. Gradients flow from eps into x0hat and mu, which is what the log-ratio
 * (log_prob.ts) needs. The arithmetic follows diffusers' order of operations so the golden fixture
 * (diffusers DDIMScheduler outputs) matches to float32 rounding.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import type { StepCoefficients } from "./step_coefficients.ts";
import {
  broadcastPerItem,
  expandPerItem,
  type PerItem,
  requireBatched,
  requireSameShape,
} from "./per_item.ts";

export interface StepMean {
  /** mu, the mean of x_prev given x_t. */
  mean: tf.Tensor;
  /** x0hat(x_t) (clipped when the schedule says clip_sample). */
  predOriginalSample: tf.Tensor;
}

export interface StepResult extends StepMean {
  /** x_prev = mu + sigma_t z (mu itself when no noise is given or sigma_t = 0). */
  prevSample: tf.Tensor;
}

/**
 * x0hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), RDPO_SPEC.md section 1 (no clipping unless
 * the schedule config has clip_sample). `coefficients` is one step for the batch or one per item.
 */
export function predictOriginalSample(
  sample: tf.Tensor,
  noisePred: tf.Tensor,
  coefficients: PerItem<StepCoefficients>,
): tf.Tensor {
  requireBatched(sample, "latents");
  requireSameShape(noisePred, sample, "noise_pred", "latents");
  const cs = expandPerItem(coefficients, sample.shape[0], "step_coefficients");
  return tf.tidy(() => {
    const sqrtBetaProd = broadcastPerItem(cs.map((c) => Math.sqrt(1 - c.alphaProdT)), sample.rank);
    const sqrtAlphaProd = broadcastPerItem(cs.map((c) => Math.sqrt(c.alphaProdT)), sample.rank);
    const x0 = tf.div(tf.sub(sample, tf.mul(sqrtBetaProd, noisePred)), sqrtAlphaProd);
    const ranges = cs.map((c) => c.clipSampleRange);
    if (ranges.every((r) => r === null)) return x0;
    if (ranges.some((r) => r !== ranges[0])) {
      // Per-item clip ranges would mean per-item schedules; one schedule serves a batch.
      throw new InvalidArgumentError(
        "step_coefficients",
        "items of one batch must share the clip_sample range",
      );
    }
    return tf.clipByValue(x0, -(ranges[0] as number), ranges[0] as number);
  });
}

/** mu = meanX0 * x0hat + meanEps * eps (+ meanSample * x_t for DDPM); see step_coefficients.ts. */
export function stepMean(
  sample: tf.Tensor,
  noisePred: tf.Tensor,
  coefficients: PerItem<StepCoefficients>,
): StepMean {
  const predOriginalSample = predictOriginalSample(sample, noisePred, coefficients);
  const cs = expandPerItem(coefficients, sample.shape[0], "step_coefficients");
  const mean = tf.tidy(() => {
    const rank = sample.rank;
    let mu = tf.mul(broadcastPerItem(cs.map((c) => c.meanX0), rank), predOriginalSample);
    if (cs.some((c) => c.meanEps !== 0)) {
      mu = tf.add(mu, tf.mul(broadcastPerItem(cs.map((c) => c.meanEps), rank), noisePred));
    }
    if (cs.some((c) => c.meanSample !== 0)) {
      mu = tf.add(mu, tf.mul(broadcastPerItem(cs.map((c) => c.meanSample), rank), sample));
    }
    return mu;
  });
  return { mean, predOriginalSample };
}

/**
 * The full step: x_prev = mu + sigma_t * z with z ~ N(0, I) given as `noise` (from rng.ts). Without
 * noise, or where sigma_t = 0, x_prev = mu (diffusers adds no noise when eta = 0).
 */
export function schedulerStep(
  sample: tf.Tensor,
  noisePred: tf.Tensor,
  coefficients: PerItem<StepCoefficients>,
  noise?: tf.Tensor,
): StepResult {
  const { mean, predOriginalSample } = stepMean(sample, noisePred, coefficients);
  const cs = expandPerItem(coefficients, sample.shape[0], "step_coefficients");
  if (!noise || cs.every((c) => c.sigma === 0)) {
    return { mean, predOriginalSample, prevSample: mean.clone() };
  }
  requireSameShape(noise, sample, "noise", "latents");
  const prevSample = tf.tidy(() =>
    tf.add(mean, tf.mul(broadcastPerItem(cs.map((c) => c.sigma), sample.rank), noise))
  );
  return { mean, predOriginalSample, prevSample };
}
