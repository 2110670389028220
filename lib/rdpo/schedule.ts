/**
 * The training noise schedule (RDPO_SPEC.md section 1), read from a diffusers scheduler config
 * (`scheduler_config.json` of a Stable Diffusion checkpoint, or the `config` object of a golden
 * fixture's `config.json`).
 *
 * diffusers computes the schedule in float32 torch tensors:
 *   betas = torch.linspace(sqrt(beta_start), sqrt(beta_end), N, dtype=float32) ** 2
 *   alphas_cumprod = torch.cumprod(1 - betas, dim=0)   (float32 tensor; CPU accumulates in double)
 * We replay torch's CPU arithmetic for both (see linspaceFloat32 and buildNoiseSchedule), so
 * `alphasCumprod` holds the float32 values diffusers indexes with `alphas_cumprod[t]`; the golden
 * fixture (torch 1.13, CPU, 1000 steps) matches bit for bit. Schedules made on other CPUs (other
 * vector widths) differ by at most a few float32 ulps, far inside the 1e-5 tolerance.
 */
import { InvalidArgumentError } from "../errors.ts";

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

/** The subset of diffusers' DDIMScheduler/DDPMScheduler config this library implements. */
export interface ScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  /** Explicit betas (diffusers `trained_betas`); overrides betaStart/betaEnd/betaSchedule. */
  trainedBetas: readonly number[] | null;
  stepsOffset: number;
  /** DDIM: abar_prev of the last step is 1 (true) or abar[0] (false; Stable Diffusion). */
  setAlphaToOne: boolean;
  timestepSpacing: TimestepSpacing;
  /** Clamp x0hat to [-clipSampleRange, clipSampleRange] (off for Stable Diffusion). */
  clipSample: boolean;
  clipSampleRange: number;
}

/**
 * Stable Diffusion v1.x scheduler (RDPO_SPEC.md section 1): scaled_linear 0.00085..0.012, 1000 steps,
 * "leading" spacing, steps_offset 1, set_alpha_to_one false, no clipping.
 */
export const STABLE_DIFFUSION_SCHEDULE: Readonly<ScheduleConfig> = Object.freeze({
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  trainedBetas: null,
  stepsOffset: 1,
  setAlphaToOne: false,
  timestepSpacing: "leading",
  clipSample: false,
  clipSampleRange: 1.0,
});

/** diffusers' DDIMScheduler.__init__ defaults, used for keys a config leaves out. */
const DIFFUSERS_DDIM_DEFAULTS: Readonly<ScheduleConfig> = Object.freeze({
  numTrainTimesteps: 1000,
  betaStart: 0.0001,
  betaEnd: 0.02,
  betaSchedule: "linear",
  trainedBetas: null,
  stepsOffset: 0,
  setAlphaToOne: true,
  timestepSpacing: "leading",
  clipSample: true,
  clipSampleRange: 1.0,
});

function readNumber(obj: Record<string, unknown>, key: string, fallback: number, field: string): number {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new InvalidArgumentError(`${field}.${key}`, `expected a finite number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function readBool(obj: Record<string, unknown>, key: string, fallback: boolean, field: string): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") {
    throw new InvalidArgumentError(`${field}.${key}`, `expected true or false, got ${JSON.stringify(v)}`);
  }
  return v;
}

function readChoice<T extends string>(
  obj: Record<string, unknown>,
  key: string,
  allowed: readonly T[],
  fallback: T,
  field: string,
): T {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(
      `${field}.${key}`,
      `unsupported value ${JSON.stringify(v)} (supported: ${allowed.join(", ")})`,
    );
  }
  return v as T;
}

/**
 * diffusers scheduler classes whose `scheduler_config.json` holds the DDPM training schedule this
 * library builds (num_train_timesteps, beta_start/end/schedule, trained_betas); SD1.5 ships
 * PNDMScheduler's.
 */
export const SCHEDULERS_WITH_DDPM_BETAS = ["DDIMScheduler", "PNDMScheduler", "DDPMScheduler"] as const;

/**
 * Reads a diffusers scheduler config object (snake_case keys as in `scheduler_config.json`).
 * Missing keys take diffusers' DDIMScheduler defaults; keys of other schedulers are ignored.
 * Options that change the math in ways this library does not implement are rejected by name.
 */
export function parseScheduleConfig(json: unknown, field = "scheduler"): ScheduleConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InvalidArgumentError(field, "expected a diffusers scheduler config object");
  }
  const obj = json as Record<string, unknown>;
  const d = DIFFUSERS_DDIM_DEFAULTS;
  // The sampler is always DDIM (RDPO_SPEC.md section 1); a scheduler class is accepted only when
  // its config describes the same training noise schedule (betas, alphas_cumprod) DDIM reads.
  const className = obj["_class_name"];
  if (className !== undefined && !(SCHEDULERS_WITH_DDPM_BETAS as readonly unknown[]).includes(className)) {
    throw new InvalidArgumentError(
      `${field}._class_name`,
      `scheduler type ${JSON.stringify(className)} is not supported (supported: ${
        SCHEDULERS_WITH_DDPM_BETAS.join(", ")
      })`,
    );
  }
  const prediction = obj["prediction_type"];
  if (prediction !== undefined && prediction !== null && prediction !== "epsilon") {
    throw new InvalidArgumentError(
      `${field}.prediction_type`,
      `only "epsilon" is supported (RDPO_SPEC.md section 1 works with eps), got ${
        JSON.stringify(prediction)
      }`,
    );
  }
  if (readBool(obj, "thresholding", false, field)) {
    throw new InvalidArgumentError(`${field}.thresholding`, "dynamic thresholding is not supported");
  }
  if (readBool(obj, "rescale_betas_zero_snr", false, field)) {
    throw new InvalidArgumentError(`${field}.rescale_betas_zero_snr`, "zero-SNR rescaling is not supported");
  }
  const numTrainTimesteps = readNumber(obj, "num_train_timesteps", d.numTrainTimesteps, field);
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 2) {
    throw new InvalidArgumentError(
      `${field}.num_train_timesteps`,
      `expected an integer >= 2, got ${numTrainTimesteps}`,
    );
  }
  const stepsOffset = readNumber(obj, "steps_offset", d.stepsOffset, field);
  if (!Number.isInteger(stepsOffset) || stepsOffset < 0) {
    throw new InvalidArgumentError(`${field}.steps_offset`, `expected an integer >= 0, got ${stepsOffset}`);
  }
  let trainedBetas: number[] | null = null;
  const tb = obj["trained_betas"];
  if (tb !== undefined && tb !== null) {
    if (!Array.isArray(tb) || tb.length !== numTrainTimesteps) {
      throw new InvalidArgumentError(
        `${field}.trained_betas`,
        `expected an array of num_train_timesteps (${numTrainTimesteps}) numbers`,
      );
    }
    trainedBetas = tb.map((b, i) => {
      if (typeof b !== "number" || !(b > 0 && b < 1)) {
        throw new InvalidArgumentError(
          `${field}.trained_betas[${i}]`,
          `expected a number in (0, 1), got ${b}`,
        );
      }
      return b;
    });
  }
  const config: ScheduleConfig = {
    numTrainTimesteps,
    betaStart: readNumber(obj, "beta_start", d.betaStart, field),
    betaEnd: readNumber(obj, "beta_end", d.betaEnd, field),
    betaSchedule: readChoice(
      obj,
      "beta_schedule",
      ["linear", "scaled_linear", "squaredcos_cap_v2"] as const,
      d.betaSchedule,
      field,
    ),
    trainedBetas,
    stepsOffset,
    setAlphaToOne: readBool(obj, "set_alpha_to_one", d.setAlphaToOne, field),
    timestepSpacing: readChoice(
      obj,
      "timestep_spacing",
      ["leading", "trailing", "linspace"] as const,
      d.timestepSpacing,
      field,
    ),
    clipSample: readBool(obj, "clip_sample", d.clipSample, field),
    clipSampleRange: readNumber(obj, "clip_sample_range", d.clipSampleRange, field),
  };
  if (!(config.betaStart > 0 && config.betaEnd > 0 && config.betaStart < 1 && config.betaEnd < 1)) {
    throw new InvalidArgumentError(
      `${field}.beta_start`,
      `beta_start and beta_end must lie in (0, 1), got ${config.betaStart} and ${config.betaEnd}`,
    );
  }
  if (config.clipSample && !(config.clipSampleRange > 0)) {
    throw new InvalidArgumentError(
      `${field}.clip_sample_range`,
      `must be > 0, got ${config.clipSampleRange}`,
    );
  }
  return config;
}

/** The schedule's per-timestep values, float32 as diffusers holds them. */
export interface NoiseSchedule {
  readonly config: Readonly<ScheduleConfig>;
  /** beta_t, t = 0..N-1. */
  readonly betas: Float32Array;
  /** abar_t = prod_{i<=t} (1 - beta_i), t = 0..N-1. */
  readonly alphasCumprod: Float32Array;
  /** DDIM's abar for t_prev < 0: 1 when set_alpha_to_one, else abar[0] (RDPO_SPEC.md section 1). */
  readonly finalAlphaCumprod: number;
}

const f32 = Math.fround;

/** Lanes of torch's CPU `Vectorized<float>` (AVX2), the producer of the reference schedules. */
const TORCH_FLOAT_LANES = 8;

/**
 * torch.linspace(start, end, steps, dtype=float32) as torch's vectorised CPU kernel computes it
 * (aten RangeFactoriesKernel, AVX2): the step is computed in float32; each 8-lane vector starts at
 * `start + step * idx` (first half) or `end - step * (steps - idx - 1)` (second half) and holds
 * `base + i * step`, each a fused multiply-add rounded once to float32. This reproduces the golden
 * fixture's alphas_cumprod bit for bit (a plain per-element formula differs by up to 1 ulp).
 */
export function linspaceFloat32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // float32 * small integer is exact in float64, so `a + b * c` then fround is one rounding (an FMA).
  for (let idx = 0; idx < steps; idx += TORCH_FLOAT_LANES) {
    const base = idx < halfway ? f32(s + step * idx) : f32(e - step * (steps - idx - 1));
    for (let i = 0; i < TORCH_FLOAT_LANES && idx + i < steps; i++) out[idx + i] = f32(base + i * step);
  }
  return out;
}

/** diffusers' betas_for_alpha_bar (cosine schedule, max_beta 0.999), computed in float64 then cast. */
function cosineBetas(n: number): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999);
  }
  return out;
}

function betasFor(config: ScheduleConfig): Float32Array {
  const n = config.numTrainTimesteps;
  if (config.trainedBetas) return Float32Array.from(config.trainedBetas);
  switch (config.betaSchedule) {
    case "linear":
      return linspaceFloat32(config.betaStart, config.betaEnd, n);
    case "scaled_linear": {
      // RDPO_SPEC.md section 1: beta_i = linspace(sqrt(beta_start), sqrt(beta_end), N)^2.
      const roots = linspaceFloat32(Math.sqrt(config.betaStart), Math.sqrt(config.betaEnd), n);
      return roots.map((r) => f32(r * r));
    }
    case "squaredcos_cap_v2":
      return cosineBetas(n);
  }
}

/**
 * Builds the schedule. torch.cumprod on CPU accumulates a float32 tensor in double (acc_type) and
 * rounds each output to float32; so do we.
 */
export function buildNoiseSchedule(config: ScheduleConfig): NoiseSchedule {
  const betas = betasFor(config);
  const alphasCumprod = new Float32Array(betas.length);
  let acc = 1;
  for (let i = 0; i < betas.length; i++) {
    acc *= f32(1 - betas[i]);
    alphasCumprod[i] = acc;
  }
  return Object.freeze({
    config: Object.freeze({ ...config }),
    betas,
    alphasCumprod,
    finalAlphaCumprod: config.setAlphaToOne ? 1 : alphasCumprod[0],
  });
}

/** Convenience: `buildNoiseSchedule(parseScheduleConfig(json))`. */
export function noiseScheduleFromDiffusers(json: unknown, field = "scheduler"): NoiseSchedule {
  return buildNoiseSchedule(parseScheduleConfig(json, field));
}

/** abar_t for an integer timestep in [0, N); throws naming `field` otherwise. */
export function alphaCumprodAt(schedule: NoiseSchedule, t: number, field = "timestep"): number {
  if (!Number.isInteger(t) || t < 0 || t >= schedule.alphasCumprod.length) {
    throw new InvalidArgumentError(
      field,
      `timestep ${t} is outside the training schedule [0, ${schedule.alphasCumprod.length - 1}]`,
    );
  }
  return schedule.alphasCumprod[t];
}
