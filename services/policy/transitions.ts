/** Transitions (x_t, x_{t-1}, step indices) of a LogRatios or TrainStep request: checks, mu_ref, shared parents. */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { stepMean } from "../../lib/rdpo/sampler_step.ts";
import {
  requireStochasticStep,
  type StepCoefficients,
  stepCoefficientsAt,
} from "../../lib/rdpo/step_coefficients.ts";
import type { StepOptions, TransitionsInput } from "./core_types.ts";
import type { Denoiser } from "./denoiser.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { checkStepIndex } from "./request_limits.ts";
import { checkFloatTensor } from "./tensor_checks.ts";

export function checkTransitions(
  parts: Pick<PolicyParts, "pipeline" | "limits">,
  t: TransitionsInput,
  field: string,
  step: StepOptions,
  needNext: boolean,
): {
  batch: number;
  shape: [number, number, number, number];
  coeffs: StepCoefficients[];
} {
  const shape = parts.limits.checkLatents(t.latents, `${field}.latents`);
  const batch = shape[0];
  if (needNext) {
    if (!t.nextLatents) throw new InvalidArgumentError(`${field}.next_latents`, "is required");
    checkFloatTensor(t.nextLatents, `${field}.next_latents`, 4);
    if (t.nextLatents.shape.join() !== t.latents.shape.join()) {
      throw new InvalidArgumentError(
        `${field}.next_latents.shape`,
        `must equal latents.shape ${JSON.stringify(shape)}`,
      );
    }
  }
  if (t.stepIndices.length !== batch && t.stepIndices.length !== 1) {
    throw new InvalidArgumentError(
      `${field}.step_indices`,
      `expected ${batch} values or 1, got ${t.stepIndices.length}`,
    );
  }
  const idx = t.stepIndices.length === batch ? t.stepIndices : new Array(batch).fill(t.stepIndices[0]);
  idx.forEach((i, j) => checkStepIndex(i, step, `${field}.step_indices[${j}]`));
  const cfg = parts.limits.samplerConfig(step, true);
  const coeffs = idx.map((i) => stepCoefficientsAt(parts.pipeline.schedule, cfg, i));
  coeffs.forEach((c) => requireStochasticStep(c, "step.eta"));
  if (t.referenceNoisePred) {
    checkFloatTensor(t.referenceNoisePred, `${field}.reference_noise_pred`, 4);
    if (t.referenceNoisePred.shape.join() !== t.latents.shape.join()) {
      throw new InvalidArgumentError(`${field}.reference_noise_pred.shape`, `must equal latents.shape`);
    }
  }
  return { batch, shape, coeffs };
}

/** Reference means mu_ref of transitions (no gradient). */
export function referenceMean(
  denoiser: Denoiser,
  t: TransitionsInput,
  x: tf.Tensor4D,
  coeffs: StepCoefficients[],
  w: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    let eps: tf.Tensor4D;
    if (t.referenceNoisePred) eps = tf.tensor4d(t.referenceNoisePred.data, x.shape);
    else {
      const cond = denoiser.conditioning(t.conditioning, x.shape[0], w);
      try {
        eps = denoiser.noise(x, coeffs.map((c) => c.timestep), cond, w, false);
      } finally {
        cond.dispose();
      }
    }
    return stepMean(x, eps, coeffs).mean as tf.Tensor4D;
  });
}

/** Whether winners and losers share their parents x_t (shared_parent pairs): same bytes, same steps. */
export function sameTransitionsParent(a: TransitionsInput, b: TransitionsInput): boolean {
  if (a.latents.data.length !== b.latents.data.length) return false;
  if (a.stepIndices.join() !== b.stepIndices.join()) return false;
  if (a.conditioning.prompts.join("\u0000") !== b.conditioning.prompts.join("\u0000")) return false;
  if (a.conditioning.promptEmbeds || b.conditioning.promptEmbeds) return false;
  if (!!a.referenceNoisePred !== !!b.referenceNoisePred) return false;
  const x = a.latents.data, y = b.latents.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
