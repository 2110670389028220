/** The policy core's request/response shapes, options and defaults (re-exported by core.ts). */
import { DEFAULT_GUIDANCE_SCALE } from "../../lib/rdpo/guidance.ts";
import type { Reduction } from "../../lib/rdpo/log_prob.ts";
import type { LossConfig } from "../../lib/rdpo/losses.ts";
import type { RngKey } from "../../lib/rdpo/rng.ts";
import type { SamplerKind } from "../../lib/rdpo/step_coefficients.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import type { AdamConfig } from "./adam.ts";
import type { ConditioningInput, HostTensor } from "./denoiser.ts";

export type Role = "policy" | "reference";

/** How to step (proto StepConfig with defaults applied). */
export interface StepOptions {
  sampler: SamplerKind;
  numInferenceSteps: number;
  eta: number;
  guidanceScale: number;
  reduction: Reduction;
}

/** Spec defaults (RDPO_SPEC.md section 5): DDIM, T = 20, eta = 1, guidance 5, mean reduction. */
export const DEFAULT_STEP: Readonly<StepOptions> = Object.freeze({
  sampler: "ddim",
  numInferenceSteps: 20,
  eta: 1.0,
  guidanceScale: DEFAULT_GUIDANCE_SCALE,
  reduction: "mean",
});

export interface LoraSettings {
  rank: number;
  alpha?: number;
  targetModules?: readonly string[];
  seed?: number;
}

export interface PolicyCoreOptions {
  role: Role;
  /** Adapter of the policy role (ignored for the reference role). */
  lora: LoraSettings;
  /** Folder that SaveAdapter/LoadAdapter paths resolve inside. */
  adapterRoot: string;
  /** Largest number of samples in one request (items x candidates, or transitions). */
  maxBatch: number;
  /**
   * Largest latent height or width a request may send (default: twice the model's own latent side).
   * UNet activations grow with batch x H x W, so without it one request of small latents-in-bytes
   * but odd shape could make the process hold gigabytes.
   */
  maxLatentSide?: number;
  /** Largest LoRA rank LoadAdapter accepts (default DEFAULT_MAX_LORA_RANK). */
  maxLoraRank?: number;
  /** Most inference steps a request may ask for (default DEFAULT_MAX_INFERENCE_STEPS). */
  maxInferenceSteps?: number;
  backend: string;
}

/** Default --max-inference-steps: Generate costs steps x UNet passes, so this bounds one call's CPU. */
export const DEFAULT_MAX_INFERENCE_STEPS = 200;
/** Default --max-lora-rank: far above the ranks LoRA fine-tuning uses (4-64). */
export const DEFAULT_MAX_LORA_RANK = 256;

export interface SampleCandidatesInput {
  conditioning: ConditioningInput;
  latents: HostTensor;
  stepIndex: number;
  step: StepOptions;
  numCandidates: number;
  noise: RngKey;
  parentNoisePred?: HostTensor;
  predictCandidateNoise: boolean;
  decodeCandidates: boolean;
  decodeParent: boolean;
  role: Role;
}

export interface SampleCandidatesOutput {
  /** [B, K, C, H, W] */
  candidates: HostTensor;
  /** [B, K], or null when the step is deterministic (sigma_t = 0). */
  logProbs: HostTensor | null;
  candidateNoisePred: HostTensor | null;
  candidateImages: RgbImage[];
  parentImages: RgbImage[];
  parentNoisePred: HostTensor;
  timestep: number;
  prevTimestep: number;
  sigma: number;
}

export interface TransitionsInput {
  conditioning: ConditioningInput;
  latents: HostTensor;
  nextLatents?: HostTensor;
  stepIndices: number[];
  referenceNoisePred?: HostTensor;
}

export interface TrainStepInput {
  winners: TransitionsInput;
  losers: TransitionsInput;
  step: StepOptions;
  loss: LossConfig;
  optimizer: AdamConfig;
  expectedOptimizerStep?: number;
  requestId: string;
  returnGradients: boolean;
  noise: RngKey;
}

export interface ApplyGradientsInput {
  /** PEFT names and layout. */
  gradients: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: AdamConfig;
  expectedOptimizerStep?: number;
  requestId: string;
}

export interface LoadAdapterInput {
  adapter?: {
    weights: Map<string, { shape: number[]; data: Float32Array }>;
    rank: number;
    alpha: number;
    targetModules: string[];
    optimizerState: Map<string, { shape: number[]; data: Float32Array }>;
    optimizerStep: number;
  };
  path?: string;
  reset?: boolean;
  seed?: number;
}

export interface PairResult {
  logRatioWinner: number;
  logRatioLoser: number;
  loss: number;
  correct: boolean;
}

export interface TrainStepOutput {
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  accuracy: number;
  gradNorm: number;
  optimizerStep: number;
  pairs: PairResult[];
  gradients: Map<string, TensorRecord> | null;
  adapterChecksum: string;
}

export interface AdapterData {
  weights: Map<string, TensorRecord>;
  rank: number;
  alpha: number;
  targetModules: string[];
  optimizerState: Map<string, TensorRecord> | null;
  optimizerStep: number;
  checksum: string;
}
