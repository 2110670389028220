/**
 * The policy service's pure core (no gRPC): sampling with log-probabilities, noise prediction,
 * decoding, log-ratios and LoRA training on one Stable-Diffusion-compatible pipeline.
 *
 * policy = base + LoRA adapter, reference = the same base weights with the adapter disabled
 * (RDPO_SPEC.md section 2): one copy of the base serves both, so h = 0 exactly at initialisation.
 * Every tensor a call needs arrives with the call (no per-trajectory server state), so any replica
 * can serve any request.
 */
import * as tf from "@tensorflow/tfjs-core";
import { dirname } from "node:path";
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from "../../lib/errors.ts";
import { resolveInsideRoot } from "../../lib/fs/safe_path.ts";
import { DEFAULT_GUIDANCE_SCALE, validateGuidanceScale } from "../../lib/rdpo/guidance.ts";
import { logRatio, type Reduction, stepLogProb, validateReduction } from "../../lib/rdpo/log_prob.ts";
import {
  batchLoss,
  diffusionDpoLoss,
  type LossConfig,
  preferenceLoss,
  validateLossConfig,
} from "../../lib/rdpo/losses.ts";
import {
  candidateNoise,
  gaussian,
  initialLatentsNoise,
  pairStream,
  type RngKey,
  stepNoise,
} from "../../lib/rdpo/rng.ts";
import { predictOriginalSample, schedulerStep, stepMean } from "../../lib/rdpo/sampler_step.ts";
import {
  requireStochasticStep,
  type SamplerConfig,
  type SamplerKind,
  type StepCoefficients,
  stepCoefficients,
  stepCoefficientsAt,
  validateSamplerConfig,
} from "../../lib/rdpo/step_coefficients.ts";
import { inferenceTimesteps } from "../../lib/rdpo/timesteps.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { enableGradients } from "../../lib/tensor/gradients.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { readSafetensors } from "../../lib/tensor/safetensors.ts";
import { type AdamConfig, AdamOptimizer, type AdamState } from "./adam.ts";
import { type ConditioningInput, Denoiser, type HostTensor } from "./denoiser.ts";
import { DEFAULT_LORA_TARGETS, LoraAdapter, parseLoraMetadata } from "./model/lora.ts";
import { decodeToUnit, encodeFromUnit, type PolicyPipeline } from "./pipeline.ts";
import { traceDecode, traceUnet } from "../../lib/telemetry/policy.ts";

export type { ConditioningInput, HostTensor };
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

/**
 * Tensors computed in a synchronous tfjs scope, read back to the host afterwards with the async
 * `data()`: WebGPU under Deno cannot `dataSync()`. `float`/`images` keep a tensor past its scope and
 * start its read; `done()` waits for every read and frees the kept tensors.
 */
class Readback {
  readonly #kept: tf.Tensor[] = [];
  readonly #reads: Promise<unknown>[] = [];

  #read<T>(t: tf.Tensor, convert: (data: tf.TypedArray, shape: number[]) => T): Promise<T> {
    const kept = tf.keep(t);
    this.#kept.push(kept);
    const read = kept.data().then((d) => convert(d, [...kept.shape]));
    this.#reads.push(read.catch(() => {}));
    return read;
  }

  float(t: tf.Tensor): Promise<HostTensor> {
    return this.#read(t, (data, shape) => ({ shape, data: data as Float32Array }));
  }

  /** float [0, 1] NCHW -> uint8 RGB images, quantised as DDPO does: round(x * 255) clamped. */
  images(unit: tf.Tensor4D): Promise<RgbImage[]> {
    const [b, c, h, w] = unit.shape;
    if (c !== 3) {
      throw new FailedPreconditionError(`decoded images have ${c} channels; only RGB (3) is supported`);
    }
    const bytes = tf.cast(
      tf.clipByValue(tf.round(tf.mul(tf.transpose(unit, [0, 2, 3, 1]), 255)), 0, 255),
      "int32",
    );
    return this.#read(bytes, (data) => {
      const n = h * w * 3;
      return Array.from({ length: b }, (_, i) => ({
        width: w,
        height: h,
        data: Uint8Array.from((data as Int32Array).subarray(i * n, (i + 1) * n)),
      }));
    });
  }

  async done(): Promise<void> {
    await Promise.all(this.#reads);
    for (const t of this.#kept) t.dispose();
  }
}

/** Runs `compute` (synchronous tfjs work that starts reads on `rb`), awaits its reads, frees it all. */
async function withReadback<T>(compute: (rb: Readback) => Promise<T>): Promise<T> {
  const rb = new Readback();
  try {
    return await compute(rb);
  } finally {
    await rb.done();
  }
}

/** Transpose of a row-major [rows, cols] matrix, on the host. */
function transposeHost(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

function product(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Checks a float tensor's shape and finiteness (NaN latents are a client error, not a NaN loss). */
function checkFloatTensor(t: HostTensor, field: string, expectRank: number): void {
  if (!t || !(t.data instanceof Float32Array)) throw new InvalidArgumentError(field, "is required (float32)");
  if (t.shape.length !== expectRank) {
    throw new InvalidArgumentError(
      `${field}.shape`,
      `expected ${expectRank} dims, got ${JSON.stringify(t.shape)}`,
    );
  }
  if (t.shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
    throw new InvalidArgumentError(
      `${field}.shape`,
      `every dim must be a positive integer, got ${JSON.stringify(t.shape)}`,
    );
  }
  if (product(t.shape) !== t.data.length) {
    throw new InvalidArgumentError(
      field,
      `shape ${JSON.stringify(t.shape)} needs ${product(t.shape)} values, got ${t.data.length}`,
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i])) {
      throw new InvalidArgumentError(field, `value ${i} is ${t.data[i]}; NaN and Inf are not allowed`);
    }
  }
}

/** Repeats each item of a [B, ...] tensor K times in place: [b0, b0, ..., b1, b1, ...]. */
function repeatItems<T extends tf.Tensor>(x: T, k: number): T {
  if (k === 1) return x.clone();
  return tf.tidy(() => {
    const idx = new Int32Array(x.shape[0] * k);
    for (let i = 0; i < idx.length; i++) idx[i] = Math.floor(i / k);
    return tf.gather(x, tf.tensor1d(idx, "int32")) as T;
  });
}

/** Hex sha256 of the tensors in name order (names and raw bytes). */
export async function checksumTensors(tensors: ReadonlyMap<string, TensorRecord>): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const name of [...tensors.keys()].sort()) {
    const d = tensors.get(name)!.data;
    parts.push(enc.encode(name), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A loss over prepared constants; `loss` runs inside the gradient scope. */
interface PreparedLoss {
  loss(metrics: { hW?: tf.Tensor; hL?: tf.Tensor; perPair?: tf.Tensor }): tf.Scalar;
  dispose(): void;
}

/** A copy of the adapter taken before a load, put back if the load fails. */
interface AdapterBackup {
  settings: LoraSettings;
  weights: Map<string, TensorRecord>;
  state: AdamState;
}

interface AdapterSlot {
  lora: LoraAdapter;
  optimizer: AdamOptimizer;
  /** tfjs variable name -> PEFT key, and PEFT key -> variable. */
  peftByVar: Map<string, string>;
  varByPeft: Map<string, tf.Variable>;
}

export class PolicyCore {
  readonly denoiser: Denoiser;
  readonly instanceId = crypto.randomUUID();
  #adapter: AdapterSlot | null = null;
  #lastTrain: { requestId: string; stepBefore: number; result: TrainStepOutput } | null = null;
  /** Serialises adapter changes (train, apply, load): awaits inside them must not interleave. */
  #adapterLock: Promise<unknown> = Promise.resolve();

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#adapterLock.then(fn, fn);
    this.#adapterLock = run.catch(() => {});
    return run;
  }

  constructor(readonly pipeline: PolicyPipeline, readonly options: PolicyCoreOptions) {
    this.denoiser = new Denoiser(pipeline);
    if (options.role === "policy") this.#adapter = this.#attach(options.lora);
  }

  #attach(settings: LoraSettings): AdapterSlot {
    const lora = LoraAdapter.attach(this.pipeline.unet, {
      rank: settings.rank,
      alpha: settings.alpha,
      targetModules: settings.targetModules ?? DEFAULT_LORA_TARGETS,
      seed: settings.seed ?? 0,
    });
    const vars = lora.variables();
    const paths = lora.modulePaths();
    const peftByVar = new Map<string, string>();
    const varByPeft = new Map<string, tf.Variable>();
    paths.forEach((p, i) => {
      for (const [j, kind] of [[0, "lora_A"], [1, "lora_B"]] as const) {
        const key = `${lora.prefix}${p}.${kind}.weight`;
        peftByVar.set(vars[2 * i + j].name, key);
        varByPeft.set(key, vars[2 * i + j]);
      }
    });
    return { lora, optimizer: new AdamOptimizer(varByPeft), peftByVar, varByPeft };
  }

  #requireAdapter(what: string): AdapterSlot {
    if (!this.#adapter) {
      throw new FailedPreconditionError(
        `${what} needs the policy role (this process serves the frozen reference)`,
      );
    }
    return this.#adapter;
  }

  #useLora(role: Role): boolean {
    if (role === "policy" && !this.#adapter) {
      throw new FailedPreconditionError(
        "role POLICY requested, but this process serves the reference (no adapter)",
      );
    }
    return role === "policy";
  }

  #samplerConfig(step: StepOptions, forLogProbs: boolean): SamplerConfig {
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

  #checkLatents(t: HostTensor, field: string): [number, number, number, number] {
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

  #checkBatch(n: number, field: string): void {
    if (n > this.options.maxBatch) {
      throw new ResourceExhaustedError(
        `${field}: ${n} samples exceed the limit of ${this.options.maxBatch} per request`,
      );
    }
  }

  #stepIndex(i: number, step: StepOptions, field: string): void {
    if (!Number.isInteger(i) || i < 0 || i >= step.numInferenceSteps) {
      throw new InvalidArgumentError(
        field,
        `step index ${i} is not in the schedule [0, ${step.numInferenceSteps - 1}]`,
      );
    }
  }

  /** GetInfo's facts. */
  async info(): Promise<Record<string, unknown>> {
    // The checksum awaits the adapter's tensors: read them under the adapter lock (see getAdapter).
    const checksum = await this.#exclusive(async () =>
      this.#adapter ? await checksumTensors(await this.#adapter.lora.toPeftTensorsAsync()) : ""
    );
    const a = this.#adapter;
    const mem = tf.memory();
    return {
      modelName: this.pipeline.name,
      configs: this.pipeline.configs,
      latentShape: this.pipeline.latentShape,
      imageWidth: this.pipeline.imageWidth,
      imageHeight: this.pipeline.imageHeight,
      backend: this.options.backend,
      role: this.options.role,
      baseParameters: this.pipeline.unet.parameterCount() +
        (this.pipeline.textEncoder?.parameterCount() ?? 0) +
        (this.pipeline.vae?.parameterCount() ?? 0),
      adapterParameters: a?.lora.parameterCount() ?? 0,
      loraRank: a?.lora.rank ?? 0,
      loraAlpha: a?.lora.alpha ?? 0,
      loraTargetModules: a ? [...a.lora.targetModules] : [],
      optimizerStep: a?.optimizer.step ?? 0,
      adapterChecksum: checksum,
      memoryBytes: mem.numBytes,
      tensorCount: mem.numTensors,
      instanceId: this.instanceId,
      maxSequenceLength: this.pipeline.tokenizer?.maxLength ?? 0,
      numTrainTimesteps: this.pipeline.schedule.config.numTrainTimesteps,
    };
  }

  async encodePrompts(prompts: string[]): Promise<{ embeds: HostTensor; ids: Int32Array; length: number }> {
    const { embeds, ids, length } = this.denoiser.encodePrompts(prompts, "prompts");
    return await withReadback(async (rb) => ({ embeds: await rb.float(embeds), ids, length }));
  }

  /** One sampling step with K candidates per item (proto SampleCandidates). */
  async sampleCandidates(input: SampleCandidatesInput): Promise<SampleCandidatesOutput> {
    const [b, c, h, w] = this.#checkLatents(input.latents, "latents");
    const k = input.numCandidates;
    if (!Number.isInteger(k) || k < 1) {
      throw new InvalidArgumentError("num_candidates", `must be >= 1, got ${k}`);
    }
    this.#checkBatch(b * k, "latents x num_candidates");
    const cfg = this.#samplerConfig(input.step, false);
    this.#stepIndex(input.stepIndex, input.step, "step_index");
    const lora = this.#useLora(input.role);
    if (input.parentNoisePred) {
      checkFloatTensor(input.parentNoisePred, "parent_noise_pred", 4);
      if (input.parentNoisePred.shape.join() !== input.latents.shape.join()) {
        throw new InvalidArgumentError(
          "parent_noise_pred.shape",
          `must equal latents.shape ${JSON.stringify(input.latents.shape)}`,
        );
      }
    }
    const coeff = stepCoefficientsAt(this.pipeline.schedule, cfg, input.stepIndex);
    const last = coeff.prevTimestep < 0;
    const w_ = input.step.guidanceScale;
    const cond = this.denoiser.conditioning(input.conditioning, b, w_);
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
              this.denoiser.noise(x, new Array(b).fill(coeff.timestep), cond, w_, lora));
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
                this.denoiser.noise(
                  cands,
                  new Array(b * k).fill(coeff.prevTimestep),
                  condRep,
                  w_,
                  lora,
                ));
              const prevCoeff = stepCoefficients(this.pipeline.schedule, cfg, coeff.prevTimestep);
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
              ? traceDecode(b * k, () => rb.images(decodeToUnit(this.pipeline, x0Cand!)))
              : null,
            parentImages: input.decodeParent
              ? traceDecode(
                b,
                () => rb.images(decodeToUnit(this.pipeline, predOriginalSample as tf.Tensor4D)),
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

  /** Guided eps of the policy or the reference at given timestep values (proto PredictNoise). */
  async predictNoise(input: {
    conditioning: ConditioningInput;
    latents: HostTensor;
    timesteps: number[];
    guidanceScale: number;
    role: Role;
  }): Promise<HostTensor> {
    const [b, c, h, w] = this.#checkLatents(input.latents, "latents");
    this.#checkBatch(b, "latents");
    validateGuidanceScale(input.guidanceScale, "guidance_scale");
    const n = this.pipeline.schedule.config.numTrainTimesteps;
    if (input.timesteps.length !== b && input.timesteps.length !== 1) {
      throw new InvalidArgumentError(
        "timesteps",
        `expected ${b} values (one per item) or 1, got ${input.timesteps.length}`,
      );
    }
    input.timesteps.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= n) {
        throw new InvalidArgumentError(
          `timesteps[${i}]`,
          `timestep ${t} is not in the training schedule [0, ${n - 1}]`,
        );
      }
    });
    const ts = input.timesteps.length === b ? input.timesteps : new Array(b).fill(input.timesteps[0]);
    const lora = this.#useLora(input.role);
    const cond = this.denoiser.conditioning(input.conditioning, b, input.guidanceScale);
    try {
      return await withReadback((rb) =>
        rb.float(
          tf.tidy(() =>
            this.denoiser.noise(
              tf.tensor4d(input.latents.data, [b, c, h, w]),
              ts,
              cond,
              input.guidanceScale,
              lora,
            )
          ),
        )
      );
    } finally {
      cond.dispose();
    }
  }

  async decode(
    latents: HostTensor,
    returnTensor: boolean,
  ): Promise<{ images: RgbImage[]; pixels: HostTensor | null }> {
    const [b, c, h, w] = this.#checkLatents(latents, "latents");
    this.#checkBatch(b, "latents");
    return await withReadback(async (rb) => {
      let images!: Promise<RgbImage[]>;
      let pixels: Promise<HostTensor> | null = null;
      tf.tidy(() => {
        const unit = decodeToUnit(this.pipeline, tf.tensor4d(latents.data, [b, c, h, w]));
        images = rb.images(unit);
        if (returnTensor) pixels = rb.float(unit);
      });
      return { images: await images, pixels: pixels ? await pixels : null };
    });
  }

  async encodeImages(images: RgbImage[]): Promise<HostTensor> {
    if (images.length === 0) throw new InvalidArgumentError("images", "must not be empty");
    this.#checkBatch(images.length, "images");
    const { imageWidth: W, imageHeight: H } = this.pipeline;
    images.forEach((im, i) => {
      if (im.width !== W || im.height !== H) {
        throw new InvalidArgumentError(
          `images[${i}]`,
          `expected ${W}x${H} (the model's image size), got ${im.width}x${im.height}`,
        );
      }
      if (im.data.length !== W * H * 3) {
        throw new InvalidArgumentError(
          `images[${i}].data`,
          `expected ${W * H * 3} bytes (RGB), got ${im.data.length}`,
        );
      }
    });
    return await withReadback((rb) =>
      rb.float(tf.tidy(() => {
        const all = new Float32Array(images.length * H * W * 3);
        images.forEach((im, i) => all.set(Float32Array.from(im.data, (v) => v / 255), i * H * W * 3));
        const unit = tf.transpose(tf.tensor4d(all, [images.length, H, W, 3]), [0, 3, 1, 2]) as tf.Tensor4D;
        return encodeFromUnit(this.pipeline, unit);
      }))
    );
  }

  /** Full trajectories from seeded x_T to images (proto Generate). */
  async generate(input: {
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
    const cfg = this.#samplerConfig(input.step, false);
    const [c, h, w] = this.pipeline.latentShape;
    let b = input.batch;
    if (input.initialLatents) b = this.#checkLatents(input.initialLatents, "initial_latents")[0];
    if (!Number.isInteger(b) || b < 1) {
      throw new InvalidArgumentError("conditioning.prompts", "need at least one prompt");
    }
    this.#checkBatch(b, "batch");
    const lora = this.#useLora(input.role);
    const wScale = input.step.guidanceScale;
    const cond = this.denoiser.conditioning(input.conditioning, b, wScale);
    try {
      const timesteps = inferenceTimesteps(this.pipeline.schedule.config, cfg.numInferenceSteps);
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
          const coeff = stepCoefficientsAt(this.pipeline.schedule, cfg, i);
          const eps = this.denoiser.noise(x, new Array(b).fill(coeff.timestep), cond, wScale, lora);
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
          const images = rb.images(tf.tidy(() => decodeToUnit(this.pipeline, x)));
          return { images: await images, latents: await rb.float(x.clone()) };
        });
      } finally {
        x.dispose();
      }
    } finally {
      cond.dispose();
    }
  }

  #checkTransitions(t: TransitionsInput, field: string, step: StepOptions, needNext: boolean): {
    batch: number;
    shape: [number, number, number, number];
    coeffs: StepCoefficients[];
  } {
    const shape = this.#checkLatents(t.latents, `${field}.latents`);
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
    idx.forEach((i, j) => this.#stepIndex(i, step, `${field}.step_indices[${j}]`));
    const cfg = this.#samplerConfig(step, true);
    const coeffs = idx.map((i) => stepCoefficientsAt(this.pipeline.schedule, cfg, i));
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
  #referenceMean(t: TransitionsInput, x: tf.Tensor4D, coeffs: StepCoefficients[], w: number): tf.Tensor4D {
    return tf.tidy(() => {
      let eps: tf.Tensor4D;
      if (t.referenceNoisePred) eps = tf.tensor4d(t.referenceNoisePred.data, x.shape);
      else {
        const cond = this.denoiser.conditioning(t.conditioning, x.shape[0], w);
        try {
          eps = this.denoiser.noise(x, coeffs.map((c) => c.timestep), cond, w, false);
        } finally {
          cond.dispose();
        }
      }
      return stepMean(x, eps, coeffs).mean as tf.Tensor4D;
    });
  }

  /** h, log pi_theta and log pi_ref per transition (proto LogRatios; RDPO_SPEC.md section 2). */
  async logRatios(input: { transitions: TransitionsInput; step: StepOptions }): Promise<{
    logRatios: HostTensor;
    policyLogProbs: HostTensor;
    referenceLogProbs: HostTensor;
  }> {
    this.#requireAdapter("LogRatios");
    const t = input.transitions;
    const { batch, shape, coeffs } = this.#checkTransitions(t, "transitions", input.step, true);
    this.#checkBatch(batch, "transitions");
    const w = input.step.guidanceScale;
    const red = input.step.reduction;
    return await withReadback(async (rb) => {
      let reads!: {
        logRatios: Promise<HostTensor>;
        policy: Promise<HostTensor>;
        reference: Promise<HostTensor>;
      };
      tf.tidy(() => {
        const x = tf.tensor4d(t.latents.data, shape);
        const next = tf.tensor4d(t.nextLatents!.data, shape);
        const muRef = this.#referenceMean(t, x, coeffs, w);
        const cond = this.denoiser.conditioning(t.conditioning, batch, w);
        let muTheta: tf.Tensor4D;
        try {
          const eps = this.denoiser.noise(x, coeffs.map((c) => c.timestep), cond, w, true);
          muTheta = stepMean(x, eps, coeffs).mean as tf.Tensor4D;
        } finally {
          cond.dispose();
        }
        reads = {
          logRatios: rb.float(logRatio(next, muTheta, muRef, coeffs, red)),
          policy: rb.float(stepLogProb(next, muTheta, coeffs, red)),
          reference: rb.float(stepLogProb(next, muRef, coeffs, red)),
        };
      });
      return {
        logRatios: await reads.logRatios,
        policyLogProbs: await reads.policy,
        referenceLogProbs: await reads.reference,
      };
    });
  }

  #checkAccounting(expected: number | undefined, requestId: string): TrainStepOutput | null {
    const opt = this.#requireAdapter("training").optimizer;
    const last = this.#lastTrain;
    if (
      requestId && last && last.requestId === requestId &&
      (expected === undefined || expected === last.stepBefore)
    ) {
      return last.result; // a retry of the step just applied: answer it again, apply nothing
    }
    if (expected !== undefined && expected !== opt.step) {
      throw new FailedPreconditionError(
        `expected_optimizer_step: the adapter is at optimizer step ${opt.step}, the request expects ${expected}`,
      );
    }
    return null;
  }

  /** Gradients keyed by PEFT name, in PEFT layout (A [r, in], B [out, r]). */
  #peftGradients(grads: Record<string, tf.Tensor>, slot: AdapterSlot): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [varName, g] of Object.entries(grads)) {
      const key = slot.peftByVar.get(varName);
      if (key) out.set(key, g);
    }
    return out;
  }

  /** One optimizer step on a batch of pairs (proto TrainStep; losses per RDPO_SPEC.md section 5). */
  trainStep(input: TrainStepInput): Promise<TrainStepOutput> {
    return this.#exclusive(() => this.#trainStep(input));
  }

  async #trainStep(input: TrainStepInput): Promise<TrainStepOutput> {
    const slot = this.#requireAdapter("TrainStep");
    await enableGradients();
    validateLossConfig(input.loss, "loss");
    const cached = this.#checkAccounting(input.expectedOptimizerStep, input.requestId);
    if (cached) return cached;
    const isDiffusionDpo = input.loss.kind === "diffusion_dpo";
    const wi = this.#checkTransitions(input.winners, "winners", input.step, !isDiffusionDpo);
    const li = this.#checkTransitions(input.losers, "losers", input.step, !isDiffusionDpo);
    if (wi.batch !== li.batch || wi.shape.join() !== li.shape.join()) {
      throw new InvalidArgumentError(
        "losers.latents.shape",
        `must equal winners.latents.shape ${JSON.stringify(wi.shape)}`,
      );
    }
    const pairs = wi.batch;
    this.#checkBatch(2 * pairs, "winners + losers");
    const stepBefore = slot.optimizer.step;

    const metrics: { hW?: tf.Tensor; hL?: tf.Tensor; perPair?: tf.Tensor } = {};
    // Everything the loss treats as a constant (reference means, conditioning, noised inputs) is
    // prepared outside the gradient scope and freed only after backpropagation has used it.
    const prepared = isDiffusionDpo
      ? this.#prepareDiffusionDpo(input, wi.shape, wi.coeffs)
      : this.#preparePreference(input, wi, li);
    let value: tf.Scalar | null = null;
    let grads: Record<string, tf.Tensor> = {};
    try {
      const r = tf.variableGrads(() => prepared.loss(metrics), [...slot.varByPeft.values()]);
      value = r.value;
      grads = r.grads;
      const pg = this.#peftGradients(grads, slot);
      let gradNorm: number;
      let gradients: Map<string, TensorRecord> | null = null;
      if (input.returnGradients) {
        gradNorm = await AdamOptimizer.globalNorm(pg);
        gradients = new Map();
        for (const [k, g] of pg) {
          gradients.set(k, this.#toPeftRecord(k, (await g.data()) as Float32Array, slot));
        }
      } else {
        gradNorm = await slot.optimizer.apply(pg, input.optimizer);
      }
      const hW = await metrics.hW!.data();
      const hL = await metrics.hL!.data();
      const per = await metrics.perPair!.data();
      const lossValue = (await value!.data())[0];
      const pairResults: PairResult[] = [];
      for (let i = 0; i < pairs; i++) {
        pairResults.push({
          logRatioWinner: hW[i],
          logRatioLoser: hL[i],
          loss: per[i],
          correct: hW[i] > hL[i],
        });
      }
      const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
      const result: TrainStepOutput = {
        loss: lossValue,
        meanLogRatioWinner: mean(hW),
        meanLogRatioLoser: mean(hL),
        accuracy: pairResults.filter((p) => p.correct).length / pairs,
        gradNorm,
        optimizerStep: slot.optimizer.step,
        pairs: pairResults,
        gradients,
        adapterChecksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()),
      };
      if (!input.returnGradients) this.#lastTrain = { requestId: input.requestId, stepBefore, result };
      return result;
    } finally {
      value?.dispose();
      Object.values(grads).forEach((g) => g.dispose());
      Object.values(metrics).forEach((t) => t?.dispose());
      prepared.dispose();
    }
  }

  /** dpo / rdpo: h from the step's Gaussian (RDPO_SPEC.md section 2); shared parents computed once. */
  #preparePreference(
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
      const muRefW = this.#referenceMean(winners, xW, wi.coeffs, w);
      owned.push(muRefW);
      const muRefL = sharedParent ? muRefW : this.#referenceMean(losers, xL, li.coeffs, w);
      if (muRefL !== muRefW) owned.push(muRefL);
      const condW = this.denoiser.conditioning(winners.conditioning, wi.shape[0], w);
      owned.push(condW);
      const condL = sharedParent ? condW : this.denoiser.conditioning(losers.conditioning, wi.shape[0], w);
      if (condL !== condW) owned.push(condL);
      const tsW = wi.coeffs.map((c) => c.timestep);
      const tsL = li.coeffs.map((c) => c.timestep);
      return {
        loss: (metrics) => {
          const muW = stepMean(xW, this.denoiser.noise(xW, tsW, condW, w, true), wi.coeffs).mean;
          const muL = sharedParent
            ? muW
            : stepMean(xL, this.denoiser.noise(xL, tsL, condL, w, true), li.coeffs).mean;
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
  #prepareDiffusionDpo(
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
      const condW = this.denoiser.conditioning(input.winners.conditioning, p, 1);
      owned.push(condW);
      const condL = this.denoiser.conditioning(input.losers.conditioning, p, 1);
      owned.push(condL);
      const refW = this.denoiser.noise(xW, ts, condW, 1, false);
      owned.push(refW);
      const refL = this.denoiser.noise(xL, ts, condL, 1, false);
      owned.push(refL);
      return {
        loss: (metrics) => {
          const r = diffusionDpoLoss({
            noise,
            policyWinner: this.denoiser.noise(xW, ts, condW, 1, true),
            referenceWinner: refW,
            policyLoser: this.denoiser.noise(xL, ts, condL, 1, true),
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

  /** Internal-layout values of adapter variable `key` -> a PEFT record (transposed: A [r, in], B [out, r]). */
  #toPeftRecord(key: string, internal: Float32Array, slot: AdapterSlot): TensorRecord {
    const [rows, cols] = slot.varByPeft.get(key)!.shape as [number, number];
    return { dtype: "F32", shape: [cols, rows], data: transposeHost(internal, rows, cols) };
  }

  /** A PEFT record for adapter variable `key` -> its internal-layout values, validated. */
  #fromPeftRecord(
    key: string,
    rec: { shape: readonly number[]; data: ArrayLike<number> },
    slot: AdapterSlot,
    field: string,
  ): Float32Array {
    const v = slot.varByPeft.get(key);
    if (!v) throw new InvalidArgumentError(field, `unknown adapter key "${key}"`);
    const [rows, cols] = v.shape as [number, number];
    if (rec.shape.length !== 2 || rec.shape[0] !== cols || rec.shape[1] !== rows) {
      throw new InvalidArgumentError(
        field,
        `"${key}" must have shape [${cols}, ${rows}], got ${JSON.stringify(rec.shape)}`,
      );
    }
    return transposeHost(rec.data, cols, rows);
  }

  /** Applies externally averaged gradients (PEFT names and layout) with Adam (proto ApplyGradients). */
  applyGradients(
    input: ApplyGradientsInput,
  ): Promise<{ optimizerStep: number; adapterChecksum: string; gradNorm: number }> {
    return this.#exclusive(() => this.#applyGradients(input));
  }

  async #applyGradients(
    input: ApplyGradientsInput,
  ): Promise<{ optimizerStep: number; adapterChecksum: string; gradNorm: number }> {
    const slot = this.#requireAdapter("ApplyGradients");
    const cached = this.#checkAccounting(input.expectedOptimizerStep, input.requestId);
    if (cached) {
      return {
        optimizerStep: cached.optimizerStep,
        adapterChecksum: cached.adapterChecksum,
        gradNorm: cached.gradNorm,
      };
    }
    const grads = new Map<string, tf.Tensor>();
    try {
      for (const [k, g] of input.gradients) {
        checkFloatTensor(g, `gradients.${k}`, g.shape.length);
        const v = slot.varByPeft.get(k);
        grads.set(k, tf.tensor(this.#fromPeftRecord(k, g, slot, `gradients.${k}`), v?.shape));
      }
      const stepBefore = slot.optimizer.step;
      const gradNorm = await slot.optimizer.apply(grads, input.optimizer);
      const adapterChecksum = await checksumTensors(await slot.lora.toPeftTensorsAsync());
      const result: TrainStepOutput = {
        loss: 0,
        meanLogRatioWinner: 0,
        meanLogRatioLoser: 0,
        accuracy: 0,
        gradNorm,
        optimizerStep: slot.optimizer.step,
        pairs: [],
        gradients: null,
        adapterChecksum,
      };
      this.#lastTrain = { requestId: input.requestId, stepBefore, result };
      return { optimizerStep: slot.optimizer.step, adapterChecksum, gradNorm };
    } finally {
      grads.forEach((g) => g.dispose());
    }
  }

  /**
   * The adapter in PEFT names and layout, optionally with Adam's moments. Under the adapter lock like
   * every reader that awaits its tensors: a LoadAdapter or TrainStep in between would dispose or
   * replace them mid-read (found by the fuzzer: INTERNAL "Cannot read properties of undefined").
   */
  getAdapter(includeOptimizerState: boolean): Promise<AdapterData> {
    return this.#exclusive(() => this.#getAdapter(includeOptimizerState));
  }

  async #getAdapter(includeOptimizerState: boolean): Promise<AdapterData> {
    const slot = this.#requireAdapter("GetAdapter");
    const weights = await slot.lora.toPeftTensorsAsync();
    let optimizerState: Map<string, TensorRecord> | null = null;
    if (includeOptimizerState) {
      optimizerState = new Map();
      const st = await slot.optimizer.exportState();
      for (const [k, mv] of st.moments) {
        optimizerState.set(`${k}.exp_avg`, this.#toPeftRecord(k, mv.m, slot));
        optimizerState.set(`${k}.exp_avg_sq`, this.#toPeftRecord(k, mv.v, slot));
      }
    }
    return {
      weights,
      rank: slot.lora.rank,
      alpha: slot.lora.alpha,
      targetModules: [...slot.lora.targetModules],
      optimizerState,
      optimizerStep: slot.optimizer.step,
      checksum: await checksumTensors(weights),
    };
  }

  /** Replaces the adapter: from tensors, from a file under the adapter root, or fresh (reset). */
  loadAdapter(input: LoadAdapterInput): Promise<{ checksum: string; optimizerStep: number }> {
    return this.#exclusive(async () => {
      // A load that fails half way (weights missing, wrong shapes) must not leave the process with
      // a different adapter than before: keep a copy and put it back (found by the fuzzer).
      const backup = await this.#snapshot();
      try {
        return await this.#loadAdapter(input);
      } catch (error) {
        if (backup) this.#restore(backup);
        throw error;
      }
    });
  }

  async #snapshot(): Promise<AdapterBackup | null> {
    const slot = this.#adapter;
    if (!slot) return null;
    return {
      settings: {
        rank: slot.lora.rank,
        alpha: slot.lora.alpha,
        targetModules: [...slot.lora.targetModules],
        seed: 0,
      } satisfies LoraSettings,
      weights: await slot.lora.toPeftTensorsAsync(),
      state: await slot.optimizer.exportState(),
    };
  }

  #restore(backup: AdapterBackup): void {
    this.#replaceAdapter(backup.settings);
    const slot = this.#adapter!;
    slot.lora.loadPeftTensors(backup.weights);
    slot.optimizer.importState(backup.state);
  }

  async #loadAdapter(input: LoadAdapterInput): Promise<{ checksum: string; optimizerStep: number }> {
    this.#requireAdapter("LoadAdapter");
    if (input.reset) {
      this.#replaceAdapter({ ...this.options.lora, seed: input.seed ?? this.options.lora.seed });
    } else if (input.path !== undefined) {
      const path = await resolveInsideRoot(this.options.adapterRoot, input.path, "path", {
        mustExist: true,
        missing: "invalid_argument",
      });
      const { tensors, metadata } = await readSafetensors(path).catch((e) => {
        throw new InvalidArgumentError("path", `cannot read adapter file: ${(e as Error).message}`);
      });
      const meta = parseLoraMetadata(metadata, "unet.", "path");
      const rank = meta.rank ?? this.#rankOf(tensors, "path");
      this.#replaceAdapter({
        rank,
        alpha: meta.alpha ?? rank,
        targetModules: meta.targetModules ?? this.options.lora.targetModules,
        seed: 0,
      });
      this.#adapter!.lora.loadPeftTensors(tensors);
    } else if (input.adapter) {
      const a = input.adapter;
      const rank = a.rank || this.#rankOf(a.weights, "adapter.weights");
      const targets = a.targetModules.length ? a.targetModules : this.options.lora.targetModules;
      this.#replaceAdapter({ rank, alpha: a.alpha || rank, targetModules: targets, seed: 0 });
      const slot = this.#adapter!;
      slot.lora.loadPeftTensors(a.weights);
      if (a.optimizerState.size) {
        const moments: AdamState["moments"] = new Map();
        for (const [k, v] of slot.varByPeft) {
          const get = (suffix: string) => {
            const rec = a.optimizerState.get(`${k}.${suffix}`);
            if (!rec) throw new InvalidArgumentError("adapter.optimizer_state", `missing "${k}.${suffix}"`);
            const data = this.#fromPeftRecord(k, rec, slot, `adapter.optimizer_state.${k}.${suffix}`);
            if (data.length !== v.size) {
              throw new InvalidArgumentError("adapter.optimizer_state", `bad size for "${k}"`);
            }
            return data;
          };
          moments.set(k, { m: get("exp_avg"), v: get("exp_avg_sq") });
        }
        slot.optimizer.importState({ step: a.optimizerStep, moments });
      } else if (a.optimizerStep) {
        slot.optimizer.importState({
          step: a.optimizerStep,
          moments: (await slot.optimizer.exportState()).moments,
        });
      }
    } else {
      throw new InvalidArgumentError("source", "set adapter, path, or reset");
    }
    this.#lastTrain = null;
    const slot = this.#adapter!;
    return {
      checksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()),
      optimizerStep: slot.optimizer.step,
    };
  }

  #rankOf(tensors: ReadonlyMap<string, { shape: readonly number[] }>, field: string): number {
    for (const [k, t] of tensors) if (k.endsWith(".lora_A.weight")) return t.shape[0];
    throw new InvalidArgumentError(field, "no lora_A weights found");
  }

  #replaceAdapter(settings: LoraSettings): void {
    const maxRank = this.options.maxLoraRank ?? DEFAULT_MAX_LORA_RANK;
    if (!Number.isInteger(settings.rank) || settings.rank < 1 || settings.rank > maxRank) {
      throw new ResourceExhaustedError(
        `adapter.rank: ${settings.rank} is outside [1, ${maxRank}] (--max-lora-rank): the adapter's ` +
          "size and every UNet pass grow with it",
      );
    }
    const old = this.#adapter;
    if (old) {
      old.optimizer.dispose();
      old.lora.dispose();
      this.#adapter = null;
    }
    try {
      this.#adapter = this.#attach(settings);
    } catch (e) {
      // Keep serving: fall back to a fresh adapter with the configured settings.
      this.#adapter = this.#attach(this.options.lora);
      throw e;
    }
  }

  /** Writes the adapter in PEFT format under the adapter root (atomically), under the adapter lock. */
  saveAdapter(path: string): Promise<{ path: string; bytes: number; checksum: string }> {
    return this.#exclusive(() => this.#saveAdapter(path));
  }

  async #saveAdapter(path: string): Promise<{ path: string; bytes: number; checksum: string }> {
    const slot = this.#requireAdapter("SaveAdapter");
    const dest = await resolveInsideRoot(this.options.adapterRoot, path, "path");
    if (!dest.endsWith(".safetensors")) throw new InvalidArgumentError("path", "must end with .safetensors");
    await Deno.mkdir(dirname(dest), { recursive: true });
    const bytes = await slot.lora.save(dest).catch((e) => {
      throw new NotFoundError(`path: cannot write ${path}: ${(e as Error).message}`);
    });
    return { path: dest, bytes, checksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()) };
  }

  dispose(): void {
    this.#adapter?.optimizer.dispose();
    this.#adapter?.lora.dispose();
    this.#adapter = null;
    this.denoiser.dispose();
  }
}

/** Whether winners and losers share their parents x_t (shared_parent pairs): same bytes, same steps. */
function sameTransitionsParent(a: TransitionsInput, b: TransitionsInput): boolean {
  if (a.latents.data.length !== b.latents.data.length) return false;
  if (a.stepIndices.join() !== b.stepIndices.join()) return false;
  if (a.conditioning.prompts.join("\u0000") !== b.conditioning.prompts.join("\u0000")) return false;
  if (a.conditioning.promptEmbeds || b.conditioning.promptEmbeds) return false;
  if (!!a.referenceNoisePred !== !!b.referenceNoisePred) return false;
  const x = a.latents.data, y = b.latents.data;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
