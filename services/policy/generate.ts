import * as tf from "@tensorflow/tfjs-core";
import { DeadlineExceededError, InvalidArgumentError } from "../../lib/errors.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { initialLatentsNoise, type RngKey, stepNoise } from "../../lib/rdpo/rng.ts";
import { schedulerStep } from "../../lib/rdpo/sampler_step.ts";
import { stepCoefficientsAt } from "../../lib/rdpo/step_coefficients.ts";
import { inferenceTimesteps } from "../../lib/rdpo/timesteps.ts";
import type { Role, StepOptions } from "./core_types.ts";
import type { ConditioningInput, HostTensor } from "./denoiser.ts";
import { decodeToUnit } from "./pipeline.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { withReadback } from "./readback.ts";

/** Full trajectories from seeded x_T to images (proto Generate). */
export async function generate(parts: PolicyParts, input: {
  conditioning: ConditioningInput;
  step: StepOptions;
  noise: RngKey;
  initialLatents?: HostTensor;
  batch: number;
  role: Role;
  /**
   * Called before every denoising step; throws to stop (the call's deadline passed). The loop is
   * synchronous, so no timer or abort event can fire inside it: without this a client that gave
   * up would leave the process computing (and holding memory) for all the steps it asked for.
   */
  checkContinue?: () => void;
  /**
   * The call's deadline (epoch ms), checked before every step like checkContinue: a plain number
   * crosses the worker boundary (worker_core.ts), a function does not.
   */
  deadlineEpochMs?: number;
}): Promise<{ images: RgbImage[]; latents: HostTensor }> {
  const cfg = parts.limits.samplerConfig(input.step, false);
  const [c, h, w] = parts.pipeline.latentShape;
  let b = input.batch;
  if (input.initialLatents) b = parts.limits.checkLatents(input.initialLatents, "initial_latents")[0];
  if (!Number.isInteger(b) || b < 1) {
    throw new InvalidArgumentError("conditioning.prompts", "need at least one prompt");
  }
  parts.limits.checkBatch(b, "batch");
  const lora = parts.adapters.useLora(input.role);
  const wScale = input.step.guidanceScale;
  const cond = parts.denoiser.conditioning(input.conditioning, b, wScale);
  try {
    const timesteps = inferenceTimesteps(parts.pipeline.schedule.config, cfg.numInferenceSteps);
    let x = input.initialLatents
      ? tf.tensor4d(
        input.initialLatents.data,
        input.initialLatents.shape as [number, number, number, number],
      )
      : tf.tensor4d(initialLatentsNoise(input.noise, b, c * h * w), [b, c, h, w]);
    const [, , hh, ww] = x.shape;
    for (let i = 0; i < timesteps.length; i++) {
      try {
        if (input.deadlineEpochMs !== undefined && Date.now() >= input.deadlineEpochMs) {
          throw new DeadlineExceededError("the deadline passed before generation finished");
        }
        input.checkContinue?.();
      } catch (error) {
        x.dispose();
        throw error;
      }
      const next = tf.tidy(() => {
        const coeff = stepCoefficientsAt(parts.pipeline.schedule, cfg, i);
        const eps = parts.denoiser.noise(x, new Array(b).fill(coeff.timestep), cond, wScale, lora);
        const z = coeff.sigma > 0
          ? tf.tensor4d(stepNoise(input.noise, b, c * hh * ww, i), [b, c, hh, ww])
          : undefined;
        const r = schedulerStep(x, eps, coeff, z);
        return r.prevSample as tf.Tensor4D;
      });
      x.dispose();
      x = next;
    }
    try {
      return await withReadback(async (rb) => {
        const images = rb.images(tf.tidy(() => decodeToUnit(parts.pipeline, x)));
        return { images: await images, latents: await rb.float(x.clone()) };
      });
    } finally {
      x.dispose();
    }
  } finally {
    cond.dispose();
  }
}
