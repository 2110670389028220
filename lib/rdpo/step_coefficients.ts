/**
 * The scalars of one sampling step x_t -> x_prev (RDPO_SPEC.md section 1): abar_t, abar_prev, sigma_t
 * and the coefficients of the Gaussian mean. Plain numbers (float64), shared by the tensor step
 * (sampler_step.ts), the log-probabilities (log_prob.ts) and the trainer.
 *
 * Both samplers have the form x_prev = mu + sigma_t z with
 *   mu = meanX0 * x0hat + meanEps * eps + meanSample * x_t,   x0hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).
 *
 * DDIM (diffusers DDIMScheduler.step):
 *   sigma_t = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev),
 *   mu = sqrt(abar_prev) x0hat + sqrt(1 - abar_prev - sigma_t^2) eps,
 *   abar_prev = abar[t_prev], or final_alpha_cumprod (abar[0] for SD: set_alpha_to_one false) when t_prev < 0.
 *
 * DDPM (diffusers DDPMScheduler.step, variance_type "fixed_small", for the jump t -> t_prev = t - N//T):
 *   beta = 1 - abar_t / abar_prev, sigma_t^2 = (1 - abar_prev) / (1 - abar_t) * beta,
 *   mu = sqrt(abar_prev) beta / (1 - abar_t) x0hat + sqrt(1 - beta) (1 - abar_prev) / (1 - abar_t) x_t,
 *   abar_prev = 1 when t_prev < 0 (DDPMScheduler's `self.one`, independent of set_alpha_to_one).
 * This is the true posterior q(x_prev | x_t, x0hat) of the jump. Algebraically it equals DDIM with
 * eta = 1 (same mean and variance); it differs only at the last step, where DDPM uses abar_prev = 1 and
 * so sigma_t = 0 (the step is deterministic: x_prev = x0hat). diffusers clamps that variance to 1e-20
 * and adds 1e-10 * z; we use 0, a difference below float32 resolution. eta is ignored by DDPM.
 */
import { InvalidArgumentError } from "../errors.ts";
import { alphaCumprodAt, type NoiseSchedule } from "./schedule.ts";
import { checkNumInferenceSteps, previousTimestep, timestepPair } from "./timesteps.ts";

export type SamplerKind = "ddim" | "ddpm";

/** How to step (mirrors proto StepConfig's sampler, num_inference_steps and eta). */
export interface SamplerConfig {
  sampler: SamplerKind;
  /** T, the number of inference steps. */
  numInferenceSteps: number;
  /** DDIM eta in [0, 1]; RDPO uses 1.0. Ignored by DDPM. */
  eta: number;
}

export interface StepCoefficients {
  sampler: SamplerKind;
  timestep: number;
  prevTimestep: number;
  /** abar_t */
  alphaProdT: number;
  /** abar_prev */
  alphaProdTPrev: number;
  eta: number;
  /** sigma_t^2 before eta (DDIM's _get_variance; DDPM's fixed_small variance). */
  variance: number;
  /** sigma_t, the standard deviation of x_prev given x_t. */
  sigma: number;
  /** mu = meanX0 * x0hat + meanEps * eps + meanSample * x_t. */
  meanX0: number;
  meanEps: number;
  meanSample: number;
  /** Clamp x0hat to [-r, r] (diffusers clip_sample); null = no clipping (SD). */
  clipSampleRange: number | null;
}

/** Validates a sampler config; `forLogProbs` adds the eta > 0 rule (RDPO_SPEC.md section 1). */
export function validateSamplerConfig(
  config: SamplerConfig,
  schedule: NoiseSchedule,
  options: { forLogProbs?: boolean; field?: string } = {},
): void {
  const prefix = options.field ? `${options.field}.` : "";
  if (config.sampler !== "ddim" && config.sampler !== "ddpm") {
    throw new InvalidArgumentError(
      `${prefix}sampler`,
      `unknown sampler ${JSON.stringify(config.sampler)} (supported: ddim, ddpm)`,
    );
  }
  checkNumInferenceSteps(schedule.config, config.numInferenceSteps, `${prefix}num_inference_steps`);
  if (config.sampler === "ddim") {
    if (!Number.isFinite(config.eta) || config.eta < 0 || config.eta > 1) {
      throw new InvalidArgumentError(`${prefix}eta`, `DDIM eta must lie in [0, 1], got ${config.eta}`);
    }
    if (options.forLogProbs && config.eta === 0) {
      throw new InvalidArgumentError(`${prefix}eta`, etaZeroProblem());
    }
  }
}

function etaZeroProblem(): string {
  return "eta = 0 makes sigma_t = 0 and the step log-probability undefined (RDPO_SPEC.md section 1); " +
    "training, log-probabilities and log-ratios need eta > 0 (RDPO uses eta = 1.0)";
}

/** Coefficients of the step that starts at timestep value `timestep`. */
export function stepCoefficients(
  schedule: NoiseSchedule,
  config: SamplerConfig,
  timestep: number,
  field = "timestep",
): StepCoefficients {
  validateSamplerConfig(config, schedule);
  const alphaProdT = alphaCumprodAt(schedule, timestep, field);
  const prevTimestep = previousTimestep(schedule.config, config.numInferenceSteps, timestep);
  const clipSampleRange = schedule.config.clipSample ? schedule.config.clipSampleRange : null;
  const betaProdT = 1 - alphaProdT;
  if (config.sampler === "ddim") {
    const alphaProdTPrev = prevTimestep >= 0
      ? schedule.alphasCumprod[prevTimestep]
      : schedule.finalAlphaCumprod;
    const variance = ((1 - alphaProdTPrev) / betaProdT) * (1 - alphaProdT / alphaProdTPrev);
    const sigma = config.eta * Math.sqrt(variance);
    return {
      sampler: "ddim",
      timestep,
      prevTimestep,
      alphaProdT,
      alphaProdTPrev,
      eta: config.eta,
      variance,
      sigma,
      meanX0: Math.sqrt(alphaProdTPrev),
      // max(0, .) only guards float rounding at eta = 1 (the exact value is >= 0 for eta <= 1).
      meanEps: Math.sqrt(Math.max(0, 1 - alphaProdTPrev - sigma * sigma)),
      meanSample: 0,
      clipSampleRange,
    };
  }
  const alphaProdTPrev = prevTimestep >= 0 ? schedule.alphasCumprod[prevTimestep] : 1;
  const currentAlpha = alphaProdT / alphaProdTPrev;
  const currentBeta = 1 - currentAlpha;
  const variance = ((1 - alphaProdTPrev) / betaProdT) * currentBeta;
  return {
    sampler: "ddpm",
    timestep,
    prevTimestep,
    alphaProdT,
    alphaProdTPrev,
    eta: config.eta,
    variance,
    sigma: Math.sqrt(variance),
    meanX0: (Math.sqrt(alphaProdTPrev) * currentBeta) / betaProdT,
    meanEps: 0,
    meanSample: (Math.sqrt(currentAlpha) * (1 - alphaProdTPrev)) / betaProdT,
    clipSampleRange,
  };
}

/** Coefficients of inference step `stepIndex` (0 = the first, noisiest step). */
export function stepCoefficientsAt(
  schedule: NoiseSchedule,
  config: SamplerConfig,
  stepIndex: number,
  field = "step_index",
): StepCoefficients {
  validateSamplerConfig(config, schedule);
  const { timestep } = timestepPair(schedule.config, config.numInferenceSteps, stepIndex, field);
  return stepCoefficients(schedule, config, timestep);
}

/**
 * Throws unless the step has a proper Gaussian (sigma_t > 0), which log-probabilities and log-ratios
 * need (RDPO_SPEC.md sections 1-2). The error names `eta` when eta = 0 caused it.
 */
export function requireStochasticStep(c: StepCoefficients, field = "eta"): void {
  if (c.sigma > 0 && Number.isFinite(c.sigma)) return;
  if (c.sampler === "ddim" && c.eta === 0) throw new InvalidArgumentError(field, etaZeroProblem());
  throw new InvalidArgumentError(
    "step_index",
    `the ${c.sampler} step t=${c.timestep} -> t_prev=${c.prevTimestep} is deterministic (sigma_t = ${c.sigma}), ` +
      "so its log-probability is undefined; do not train or score log-probabilities at this step",
  );
}
