/** One sampling step with K candidates per item (proto SampleCandidates). */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { stepLogProb } from "../../lib/rdpo/log_prob.ts";
import { candidateNoise } from "../../lib/rdpo/rng.ts";
import { predictOriginalSample, stepMean } from "../../lib/rdpo/sampler_step.ts";
import { stepCoefficients, stepCoefficientsAt } from "../../lib/rdpo/step_coefficients.ts";
import { traceDecode, traceUnet } from "../../lib/telemetry/policy.ts";
import type { SampleCandidatesInput, SampleCandidatesOutput } from "./core_types.ts";
import type { HostTensor } from "./denoiser.ts";
import { decodeToUnit } from "./pipeline.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { withReadback } from "./readback.ts";
import { checkStepIndex } from "./request_limits.ts";
import { checkFloatTensor } from "./tensor_checks.ts";

/** Repeats each item of a [B, ...] tensor K times in place: [b0, b0, ..., b1, b1, ...]. */
function repeatItems<T extends tf.Tensor>(x: T, k: number): T {
  if (k === 1) return x.clone();
  return tf.tidy(() => {
    const idx = new Int32Array(x.shape[0] * k);
    for (let i = 0; i < idx.length; i++) idx[i] = Math.floor(i / k);
    return tf.gather(x, tf.tensor1d(idx, "int32")) as T;
  });
}

/** One sampling step with K candidates per item (proto SampleCandidates). */
export async function sampleCandidates(
  parts: PolicyParts,
  input: SampleCandidatesInput,
): Promise<SampleCandidatesOutput> {
  const [b, c, h, w] = parts.limits.checkLatents(input.latents, "latents");
  const k = input.numCandidates;
  if (!Number.isInteger(k) || k < 1) {
    throw new InvalidArgumentError("num_candidates", `must be >= 1, got ${k}`);
  }
  parts.limits.checkBatch(b * k, "latents x num_candidates");
  const cfg = parts.limits.samplerConfig(input.step, false);
  checkStepIndex(input.stepIndex, input.step, "step_index");
  const lora = parts.adapters.useLora(input.role);
  if (input.parentNoisePred) {
    checkFloatTensor(input.parentNoisePred, "parent_noise_pred", 4);
    if (input.parentNoisePred.shape.join() !== input.latents.shape.join()) {
      throw new InvalidArgumentError(
        "parent_noise_pred.shape",
        `must equal latents.shape ${JSON.stringify(input.latents.shape)}`,
      );
    }
  }
  const coeff = stepCoefficientsAt(parts.pipeline.schedule, cfg, input.stepIndex);
  const last = coeff.prevTimestep < 0;
  const w_ = input.step.guidanceScale;
  const cond = parts.denoiser.conditioning(input.conditioning, b, w_);
  try {
    return await withReadback(async (rb) => {
      let reads!: {
        candidates: Promise<HostTensor>;
        logProbs: Promise<HostTensor> | null;
        candidateNoisePred: Promise<HostTensor> | null;
        candidateImages: Promise<RgbImage[]> | null;
        parentImages: Promise<RgbImage[]> | null;
        parentNoisePred: Promise<HostTensor>;
      };
      tf.tidy(() => {
        const x = tf.tensor4d(input.latents.data, [b, c, h, w]);
        const epsParent = input.parentNoisePred
          ? tf.tensor4d(input.parentNoisePred.data, [b, c, h, w])
          : traceUnet(b, coeff.timestep, () =>
            parts.denoiser.noise(x, new Array(b).fill(coeff.timestep), cond, w_, lora));
        const { mean, predOriginalSample } = stepMean(x, epsParent, coeff);
        const meanRep = repeatItems(mean, k);
        const z = tf.tensor4d(candidateNoise(input.noise, b, k, c * h * w, input.stepIndex), [
          b * k,
          c,
          h,
          w,
        ]);
        const cands = (coeff.sigma > 0 ? tf.add(meanRep, tf.mul(z, coeff.sigma)) : meanRep) as tf.Tensor4D;
        const logProbs = coeff.sigma > 0 ? stepLogProb(cands, meanRep, coeff, input.step.reduction) : null;
        let epsCand: tf.Tensor4D | null = null;
        let x0Cand: tf.Tensor4D | null = null;
        if (input.decodeCandidates || input.predictCandidateNoise) {
          if (last) {
            x0Cand = cands; // x_prev is x_0 at the last step
          } else {
            const condRep = {
              cond: repeatItems(cond.cond, k),
              uncond: cond.uncond ? repeatItems(cond.uncond, k) : null,
              dispose() {},
            };
            epsCand = traceUnet(b * k, coeff.prevTimestep, () =>
              parts.denoiser.noise(
                cands,
                new Array(b * k).fill(coeff.prevTimestep),
                condRep,
                w_,
                lora,
              ));
            const prevCoeff = stepCoefficients(parts.pipeline.schedule, cfg, coeff.prevTimestep);
            x0Cand = predictOriginalSample(cands, epsCand, prevCoeff) as tf.Tensor4D;
          }
        }
        const shape5 = [b, k, c, h, w];
        reads = {
          candidates: rb.float(tf.reshape(cands, shape5)),
          logProbs: logProbs ? rb.float(tf.reshape(logProbs, [b, k])) : null,
          candidateNoisePred: epsCand && input.predictCandidateNoise
            ? rb.float(tf.reshape(epsCand, shape5))
            : null,
          candidateImages: input.decodeCandidates && x0Cand
            ? traceDecode(b * k, () => rb.images(decodeToUnit(parts.pipeline, x0Cand!)))
            : null,
          parentImages: input.decodeParent
            ? traceDecode(
              b,
              () => rb.images(decodeToUnit(parts.pipeline, predOriginalSample as tf.Tensor4D)),
            )
            : null,
          parentNoisePred: rb.float(epsParent),
        };
      });
      return {
        candidates: await reads.candidates,
        logProbs: reads.logProbs ? await reads.logProbs : null,
        candidateNoisePred: reads.candidateNoisePred ? await reads.candidateNoisePred : null,
        candidateImages: reads.candidateImages ? await reads.candidateImages : [],
        parentImages: reads.parentImages ? await reads.parentImages : [],
        parentNoisePred: await reads.parentNoisePred,
        timestep: coeff.timestep,
        prevTimestep: coeff.prevTimestep,
        sigma: coeff.sigma,
      };
    });
  } finally {
    cond.dispose();
  }
}
