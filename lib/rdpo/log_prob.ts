/**
 * Step log-probabilities and the log-ratio h (RDPO_SPEC.md section 2).
 *
 *   log pi(x_prev | x_t) = reduce over D = C*H*W of log N(x_prev; mu, sigma_t^2)
 *   h = log pi_theta - log pi_ref = (||x_prev - mu_ref||^2 - ||x_prev - mu_theta||^2) / (2 sigma_t^2 D)
 *
 * The reduction is `mean` by default (the convention beta and lambda are calibrated for; `sum` gives
 * ratios like 1.01^16384). For `sum`, h is the same expression without the division by D.
 *
 * h is computed from the difference of squared norms factored as
 *   ||x - mu_ref||^2 - ||x - mu_theta||^2 = sum((mu_theta - mu_ref) * (2 x - mu_theta - mu_ref)),
 * an exact algebraic identity of the spec's form whose rounding error scales with mu_theta - mu_ref
 * instead of with ||x - mu||^2 ~ sigma_t^2 D: it is exactly 0 when the policy equals the reference and
 * never the difference of two large log-densities. x_prev is detached (gradients flow only through
 * mu_theta, RDPO_SPEC.md section 2), and so is mu_ref (the reference is frozen).
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import { requireStochasticStep, type StepCoefficients } from "./step_coefficients.ts";
import {
  broadcastPerItem,
  expandPerItem,
  type PerItem,
  requireBatched,
  requireSameShape,
} from "./per_item.ts";
import { stopGradient } from "./stop_gradient.ts";

export type Reduction = "mean" | "sum";
export const REDUCTIONS: readonly Reduction[] = ["mean", "sum"];

/** Throws unless `r` is a known reduction. */
export function validateReduction(r: string, field = "reduction"): asserts r is Reduction {
  if (!(REDUCTIONS as readonly string[]).includes(r)) {
    throw new InvalidArgumentError(field, `unknown reduction ${JSON.stringify(r)} (supported: mean, sum)`);
  }
}

const HALF_LOG_TWO_PI = 0.5 * Math.log(2 * Math.PI);

/** D = product of the non-batch dims. */
function featureSize(t: tf.Tensor): number {
  return t.shape.slice(1).reduce((a, b) => a * b, 1);
}

function featureAxes(t: tf.Tensor): number[] {
  return Array.from({ length: t.rank - 1 }, (_, i) => i + 1);
}

function sigmas(step: PerItem<StepCoefficients>, batch: number): number[] {
  const cs = expandPerItem(step, batch, "step_coefficients");
  for (const c of cs) requireStochasticStep(c);
  return cs.map((c) => c.sigma);
}

/**
 * log pi(x_prev | x_t) per batch item, [B]: reduce(-(x_prev - mu)^2 / (2 sigma^2) - log sigma - log sqrt(2 pi)).
 * Throws (naming eta) when the step has sigma_t = 0.
 */
export function stepLogProb(
  prevSample: tf.Tensor,
  mean: tf.Tensor,
  step: PerItem<StepCoefficients>,
  reduction: Reduction = "mean",
): tf.Tensor1D {
  requireBatched(prevSample, "next_latents");
  requireSameShape(mean, prevSample, "mean", "next_latents");
  validateReduction(reduction);
  const sigma = sigmas(step, prevSample.shape[0]);
  const d = featureSize(prevSample);
  return tf.tidy(() => {
    const x = stopGradient(prevSample);
    const sq = tf.sum(tf.square(tf.sub(x, mean)), featureAxes(prevSample));
    const inv2Var = tf.tensor1d(sigma.map((s) => 1 / (2 * s * s)));
    const logNorm = tf.tensor1d(sigma.map((s) => Math.log(s) + HALF_LOG_TWO_PI));
    const perDim = tf.sub(tf.neg(tf.div(tf.mul(sq, inv2Var), d)), logNorm);
    return (reduction === "mean" ? perDim : tf.mul(perDim, d)) as tf.Tensor1D;
  });
}

/**
 * h = log pi_theta(x_prev | x_t) - log pi_ref(x_prev | x_t) per batch item, [B], in the stable form
 * above. Policy and reference share sigma_t (same step), so only the means differ.
 */
export function logRatio(
  prevSample: tf.Tensor,
  policyMean: tf.Tensor,
  referenceMean: tf.Tensor,
  step: PerItem<StepCoefficients>,
  reduction: Reduction = "mean",
): tf.Tensor1D {
  requireBatched(prevSample, "next_latents");
  requireSameShape(policyMean, prevSample, "policy_mean", "next_latents");
  requireSameShape(referenceMean, prevSample, "reference_mean", "next_latents");
  validateReduction(reduction);
  const sigma = sigmas(step, prevSample.shape[0]);
  const d = reduction === "mean" ? featureSize(prevSample) : 1;
  return tf.tidy(() => {
    const x = stopGradient(prevSample);
    const ref = stopGradient(referenceMean);
    const diff = tf.sub(policyMean, ref);
    const sumTerm = tf.sub(tf.sub(tf.mul(x, 2), policyMean), ref);
    const numerator = tf.sum(tf.mul(diff, sumTerm), featureAxes(prevSample));
    const denominator = broadcastPerItem(sigma.map((s) => 2 * s * s * d), 1);
    return tf.div(numerator, denominator) as tf.Tensor1D;
  });
}
