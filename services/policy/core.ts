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
import { AdapterHolder } from "./adapter_holder.ts";
import { loadAdapter, readAdapter, saveAdapter } from "./adapter_io.ts";
import { attachAdapter } from "./adapter_slot.ts";
import { checksumTensors } from "./checksum.ts";
import type {
  AdapterData,
  ApplyGradientsInput,
  LoadAdapterInput,
  PolicyCoreOptions,
  Role,
  SampleCandidatesInput,
  SampleCandidatesOutput,
  StepOptions,
  TrainStepInput,
  TrainStepOutput,
  TransitionsInput,
} from "./core_types.ts";
import { type ConditioningInput, Denoiser, type HostTensor } from "./denoiser.ts";
import { generate } from "./generate.ts";
import { decodeLatents, encodeImages, predictNoise } from "./inference.ts";
import { logRatios } from "./log_ratios.ts";
import type { PolicyPipeline } from "./pipeline.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { withReadback } from "./readback.ts";
import { RequestLimits } from "./request_limits.ts";
import { sampleCandidates } from "./sampling.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import type { RngKey } from "../../lib/rdpo/rng.ts";
import { applyGradients, trainStep } from "./train_step.ts";
import { TrainAccounting } from "./train_accounting.ts";

export type { ConditioningInput, HostTensor };
export * from "./core_types.ts";
export { checksumTensors };

export class PolicyCore {
  readonly denoiser: Denoiser;
  readonly instanceId = crypto.randomUUID();
  readonly #adapters: AdapterHolder;
  readonly #accounting = new TrainAccounting();
  readonly #parts: PolicyParts;
  /** Serialises adapter changes (train, apply, load): awaits inside them must not interleave. */
  #adapterLock: Promise<unknown> = Promise.resolve();

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#adapterLock.then(fn, fn);
    this.#adapterLock = run.catch(() => {});
    return run;
  }

  constructor(readonly pipeline: PolicyPipeline, readonly options: PolicyCoreOptions) {
    this.denoiser = new Denoiser(pipeline);
    this.#adapters = new AdapterHolder(pipeline.unet, options);
    if (options.role === "policy") this.#adapters.slot = attachAdapter(pipeline.unet, options.lora);
    this.#parts = {
      pipeline,
      denoiser: this.denoiser,
      limits: new RequestLimits(pipeline, options),
      adapters: this.#adapters,
    };
  }

  /** GetInfo's facts. */
  async info(): Promise<Record<string, unknown>> {
    // The checksum awaits the adapter's tensors: read them under the adapter lock (see getAdapter).
    const checksum = await this.#exclusive(async () =>
      this.#adapters.slot ? await checksumTensors(await this.#adapters.slot.lora.toPeftTensorsAsync()) : ""
    );
    const a = this.#adapters.slot;
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
  sampleCandidates(input: SampleCandidatesInput): Promise<SampleCandidatesOutput> {
    return sampleCandidates(this.#parts, input);
  }

  /** Guided eps of the policy or the reference at given timestep values (proto PredictNoise). */
  predictNoise(input: {
    conditioning: ConditioningInput;
    latents: HostTensor;
    timesteps: number[];
    guidanceScale: number;
    role: Role;
  }): Promise<HostTensor> {
    return predictNoise(this.#parts, input);
  }

  decode(
    latents: HostTensor,
    returnTensor: boolean,
  ): Promise<{ images: RgbImage[]; pixels: HostTensor | null }> {
    return decodeLatents(this.#parts, latents, returnTensor);
  }

  encodeImages(images: RgbImage[]): Promise<HostTensor> {
    return encodeImages(this.#parts, images);
  }

  /** Full trajectories from seeded x_T to images (proto Generate). */
  generate(input: {
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
    return generate(this.#parts, input);
  }

  /** h, log pi_theta and log pi_ref per transition (proto LogRatios; RDPO_SPEC.md section 2). */
  logRatios(input: { transitions: TransitionsInput; step: StepOptions }): Promise<{
    logRatios: HostTensor;
    policyLogProbs: HostTensor;
    referenceLogProbs: HostTensor;
  }> {
    return logRatios(this.#parts, input);
  }

  /** One optimizer step on a batch of pairs (proto TrainStep; losses per RDPO_SPEC.md section 5). */
  trainStep(input: TrainStepInput): Promise<TrainStepOutput> {
    return this.#exclusive(() => trainStep(this.#parts, this.#accounting, input));
  }

  /** Applies externally averaged gradients (PEFT names and layout) with Adam (proto ApplyGradients). */
  applyGradients(
    input: ApplyGradientsInput,
  ): Promise<{ optimizerStep: number; adapterChecksum: string; gradNorm: number }> {
    return this.#exclusive(() => applyGradients(this.#parts, this.#accounting, input));
  }

  /**
   * The adapter in PEFT names and layout, optionally with Adam's moments. Under the adapter lock like
   * every reader that awaits its tensors: a LoadAdapter or TrainStep in between would dispose or
   * replace them mid-read (found by the fuzzer: INTERNAL "Cannot read properties of undefined").
   */
  getAdapter(includeOptimizerState: boolean): Promise<AdapterData> {
    return this.#exclusive(() => readAdapter(this.#adapters, includeOptimizerState));
  }

  /** Replaces the adapter: from tensors, from a file under the adapter root, or fresh (reset). */
  loadAdapter(input: LoadAdapterInput): Promise<{ checksum: string; optimizerStep: number }> {
    return this.#exclusive(async () => {
      // A load that fails half way (weights missing, wrong shapes) must not leave the process with
      // a different adapter than before: keep a copy and put it back (found by the fuzzer).
      const backup = await this.#adapters.snapshot();
      try {
        return await loadAdapter(this.#adapters, this.#accounting, this.options, input);
      } catch (error) {
        if (backup) this.#adapters.restore(backup);
        throw error;
      }
    });
  }

  /** Writes the adapter in PEFT format under the adapter root (atomically), under the adapter lock. */
  saveAdapter(path: string): Promise<{ path: string; bytes: number; checksum: string }> {
    return this.#exclusive(() => saveAdapter(this.#adapters, this.options.adapterRoot, path));
  }

  dispose(): void {
    this.#adapters.dispose();
    this.denoiser.dispose();
  }
}
