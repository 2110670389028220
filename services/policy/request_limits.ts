/** Per-request limits and shape checks of the policy core (sizes, steps, sampler settings). */
import { InvalidArgumentError, ResourceExhaustedError } from "../../lib/errors.ts";
import { validateGuidanceScale } from "../../lib/rdpo/guidance.ts";
import { validateReduction } from "../../lib/rdpo/log_prob.ts";
import { type SamplerConfig, validateSamplerConfig } from "../../lib/rdpo/step_coefficients.ts";
import { DEFAULT_MAX_INFERENCE_STEPS, type PolicyCoreOptions, type StepOptions } from "./core_types.ts";
import type { HostTensor } from "./denoiser.ts";
import type { PolicyPipeline } from "./pipeline.ts";
import { checkFloatTensor } from "./tensor_checks.ts";

export class RequestLimits {
  constructor(readonly pipeline: PolicyPipeline, readonly options: PolicyCoreOptions) {}

  samplerConfig(step: StepOptions, forLogProbs: boolean): SamplerConfig {
    const maxSteps = this.options.maxInferenceSteps ?? DEFAULT_MAX_INFERENCE_STEPS;
    if (step.numInferenceSteps > maxSteps) {
      throw new ResourceExhaustedError(
        `step.num_inference_steps: ${step.numInferenceSteps} exceeds the limit of ${maxSteps} ` +
          "(--max-inference-steps)",
      );
    }
    const cfg: SamplerConfig = {
      sampler: step.sampler,
      numInferenceSteps: step.numInferenceSteps,
      eta: step.eta,
    };
    validateSamplerConfig(cfg, this.pipeline.schedule, { forLogProbs, field: "step" });
    validateGuidanceScale(step.guidanceScale, "step.guidance_scale");
    validateReduction(step.reduction, "step.reduction");
    return cfg;
  }

  checkLatents(t: HostTensor, field: string): [number, number, number, number] {
    checkFloatTensor(t, field, 4);
    const [b, c, h, w] = t.shape;
    const [lc, nativeSide] = this.pipeline.latentShape;
    const maxSide = this.options.maxLatentSide || 2 * nativeSide;
    if (h > maxSide || w > maxSide) {
      throw new ResourceExhaustedError(
        `${field}.shape: ${h}x${w} latents exceed the limit of ${maxSide} per side (--max-latent-side)`,
      );
    }
    const levels = this.pipeline.unet.config.blockOutChannels.length - 1;
    const mult = 2 ** levels;
    if (c !== lc || h % mult !== 0 || w % mult !== 0) {
      throw new InvalidArgumentError(
        `${field}.shape`,
        `expected [B, ${lc}, H, W] with H and W multiples of ${mult}, got ${JSON.stringify(t.shape)}`,
      );
    }
    return [b, c, h, w];
  }

  checkBatch(n: number, field: string): void {
    if (n > this.options.maxBatch) {
      throw new ResourceExhaustedError(
        `${field}: ${n} samples exceed the limit of ${this.options.maxBatch} per request`,
      );
    }
  }
}

export function checkStepIndex(i: number, step: StepOptions, field: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= step.numInferenceSteps) {
    throw new InvalidArgumentError(
      field,
      `step index ${i} is not in the schedule [0, ${step.numInferenceSteps - 1}]`,
    );
  }
}
