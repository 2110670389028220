/** The pair losses of TrainStep, with their constants prepared outside the gradient scope. */
import * as tf from "@tensorflow/tfjs-core";
import { logRatio } from "../../lib/rdpo/log_prob.ts";
import { batchLoss, diffusionDpoLoss, preferenceLoss } from "../../lib/rdpo/losses.ts";
import { gaussian, pairStream } from "../../lib/rdpo/rng.ts";
import { stepMean } from "../../lib/rdpo/sampler_step.ts";
import type { StepCoefficients } from "../../lib/rdpo/step_coefficients.ts";
import type { TrainStepInput } from "./core_types.ts";
import type { Denoiser, HostTensor } from "./denoiser.ts";
import { referenceMean, sameTransitionsParent } from "./transitions.ts";

/** A loss over prepared constants; `loss` runs inside the gradient scope. */
export interface PreparedLoss {
  loss(metrics: { hW?: tf.Tensor; hL?: tf.Tensor; perPair?: tf.Tensor }): tf.Scalar;
  dispose(): void;
}

/** dpo / rdpo: h from the step's Gaussian (RDPO_SPEC.md section 2); shared parents computed once. */
export function preparePreference(
  denoiser: Denoiser,
  input: TrainStepInput,
  wi: { shape: [number, number, number, number]; coeffs: StepCoefficients[] },
  li: { coeffs: StepCoefficients[] },
): PreparedLoss {
  const { winners, losers, step } = input;
  const w = step.guidanceScale;
  const sharedParent = sameTransitionsParent(winners, losers);
  const owned: { dispose(): void }[] = [];
  try {
    const xW = tf.tensor4d(winners.latents.data, wi.shape);
    owned.push(xW);
    const xL = sharedParent ? xW : tf.tensor4d(losers.latents.data, wi.shape);
    if (xL !== xW) owned.push(xL);
    const nextW = tf.tensor4d(winners.nextLatents!.data, wi.shape);
    const nextL = tf.tensor4d(losers.nextLatents!.data, wi.shape);
    owned.push(nextW, nextL);
    const muRefW = referenceMean(denoiser, winners, xW, wi.coeffs, w);
    owned.push(muRefW);
    const muRefL = sharedParent ? muRefW : referenceMean(denoiser, losers, xL, li.coeffs, w);
    if (muRefL !== muRefW) owned.push(muRefL);
    const condW = denoiser.conditioning(winners.conditioning, wi.shape[0], w);
    owned.push(condW);
    const condL = sharedParent ? condW : denoiser.conditioning(losers.conditioning, wi.shape[0], w);
    if (condL !== condW) owned.push(condL);
    const tsW = wi.coeffs.map((c) => c.timestep);
    const tsL = li.coeffs.map((c) => c.timestep);
    return {
      loss: (metrics) => {
        const muW = stepMean(xW, denoiser.noise(xW, tsW, condW, w, true), wi.coeffs).mean;
        const muL = sharedParent
          ? muW
          : stepMean(xL, denoiser.noise(xL, tsL, condL, w, true), li.coeffs).mean;
        const hW = logRatio(nextW, muW, muRefW, wi.coeffs, step.reduction);
        const hL = logRatio(nextL, muL, muRefL, li.coeffs, step.reduction);
        const perPair = preferenceLoss(hW, hL, input.loss);
        metrics.hW = tf.keep(hW.clone());
        metrics.hL = tf.keep(hL.clone());
        metrics.perPair = tf.keep(perPair.clone());
        return batchLoss(perPair);
      },
      dispose: () => owned.forEach((o) => o.dispose()),
    };
  } catch (e) {
    owned.forEach((o) => o.dispose());
    throw e;
  }
}

/**
 * diffusion_dpo (RDPO_SPEC.md section 5, Wallace et al.): winners.latents / losers.latents are the
 * clean latents x0 of the two images; both are noised to the step's timestep t with the same eps
 * (stream noise.stream + pair, block 0); predictions are conditional (no guidance), as in
 * Diffusion-DPO's training.
 */
export function prepareDiffusionDpo(
  denoiser: Denoiser,
  input: TrainStepInput,
  shape: [number, number, number, number],
  coeffs: StepCoefficients[],
): PreparedLoss {
  const [p, c, h, w] = shape;
  const d = c * h * w;
  const eps = new Float32Array(p * d);
  for (let i = 0; i < p; i++) {
    eps.set(gaussian({ seed: input.noise.seed, stream: pairStream(input.noise.stream, i) }, d), i * d);
  }
  const owned: { dispose(): void }[] = [];
  try {
    const noise = tf.tensor4d(eps, shape);
    owned.push(noise);
    const [xW, xL] = tf.tidy(() => {
      const a = tf.tensor4d(coeffs.map((k) => Math.sqrt(k.alphaProdT)), [p, 1, 1, 1]);
      const s = tf.tensor4d(coeffs.map((k) => Math.sqrt(1 - k.alphaProdT)), [p, 1, 1, 1]);
      const noised = (x0: HostTensor) =>
        tf.add(tf.mul(tf.tensor4d(x0.data, shape), a), tf.mul(noise, s)) as tf.Tensor4D;
      return [noised(input.winners.latents), noised(input.losers.latents)];
    });
    owned.push(xW, xL);
    const ts = coeffs.map((k) => k.timestep);
    const condW = denoiser.conditioning(input.winners.conditioning, p, 1);
    owned.push(condW);
    const condL = denoiser.conditioning(input.losers.conditioning, p, 1);
    owned.push(condL);
    const refW = denoiser.noise(xW, ts, condW, 1, false);
    owned.push(refW);
    const refL = denoiser.noise(xL, ts, condL, 1, false);
    owned.push(refL);
    return {
      loss: (metrics) => {
        const r = diffusionDpoLoss({
          noise,
          policyWinner: denoiser.noise(xW, ts, condW, 1, true),
          referenceWinner: refW,
          policyLoser: denoiser.noise(xL, ts, condL, 1, true),
          referenceLoser: refL,
        }, input.loss.beta);
        metrics.hW = tf.keep(r.logRatioWinner.clone());
        metrics.hL = tf.keep(r.logRatioLoser.clone());
        metrics.perPair = tf.keep(r.loss.clone());
        return batchLoss(r.loss);
      },
      dispose: () => owned.forEach((o) => o.dispose()),
    };
  } catch (e) {
    owned.forEach((o) => o.dispose());
    throw e;
  }
}
