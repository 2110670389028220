/**
 * The policy service's gRPC adapter: proto messages <-> PolicyCore calls. Validation of tensors and
 * images happens here (lib/tensor/codec.ts, errors naming the field); the semantics live in PolicyCore (core.ts, one module per
 * concern behind it: sampling.ts, inference.ts, generate.ts, transitions.ts, train_step.ts, adapter_io.ts).
 */
import {
  type AdapterState,
  type Conditioning,
  LossKind,
  ModelRole,
  type OptimizerConfig,
  PolicyService,
  Reduction,
  Sampler,
  type StepConfig,
  type Transitions,
} from "../../gen/rdpo/v1/policy_pb.ts";
import type { NamedTensor, RngKey, Tensor } from "../../gen/rdpo/v1/tensor_pb.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { ImplOf } from "../../lib/rpc/types.ts";
import { decodeFloat32, decodeImages, encodeImage, encodeTensor } from "../../lib/tensor/codec.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import type { LossConfig } from "../../lib/rdpo/losses.ts";
import { defaultLossConfig } from "../../lib/rdpo/losses.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { traceTrainStep } from "../../lib/telemetry/policy.ts";
import { type AdamConfig, resolveAdamConfig } from "./adam.ts";
import {
  type ConditioningInput,
  DEFAULT_STEP,
  type HostTensor,
  type Role,
  type StepOptions,
  type TransitionsInput,
} from "./core.ts";
import { sampleWithLeadSteps } from "./lead_steps.ts";
import type { PolicyCoreApi } from "./worker_core.ts";

/** Largest image side accepted by EncodeImages. */
const MAX_IMAGE_SIDE = 4096;

function float(field: string, t: Tensor | undefined): HostTensor {
  const d = decodeFloat32(field, t);
  return { shape: d.shape, data: d.data };
}

function optionalFloat(field: string, t: Tensor | undefined): HostTensor | undefined {
  return t && (t.shape.length > 0 || t.data.length > 0) ? float(field, t) : undefined;
}

function tensorOut(t: HostTensor): Tensor {
  return encodeTensor(t.data, t.shape);
}

function images(list: RgbImage[]) {
  return list.map((im) => encodeImage(im.width, im.height, 3, im.data));
}

function role(r: ModelRole, field: string): Role {
  switch (r) {
    case ModelRole.UNSPECIFIED:
    case ModelRole.POLICY:
      return "policy";
    case ModelRole.REFERENCE:
      return "reference";
    default:
      throw new InvalidArgumentError(field, `unknown role ${r}`);
  }
}

/** proto StepConfig -> StepOptions; unset fields take the spec defaults (RDPO_SPEC.md section 5). */
export function stepOptions(s: StepConfig | undefined, field = "step"): StepOptions {
  const sampler = s?.sampler ?? Sampler.UNSPECIFIED;
  if (sampler !== Sampler.UNSPECIFIED && sampler !== Sampler.DDIM && sampler !== Sampler.DDPM) {
    throw new InvalidArgumentError(`${field}.sampler`, `unknown sampler ${sampler}`);
  }
  const reduction = s?.reduction ?? Reduction.UNSPECIFIED;
  if (reduction !== Reduction.UNSPECIFIED && reduction !== Reduction.MEAN && reduction !== Reduction.SUM) {
    throw new InvalidArgumentError(`${field}.reduction`, `unknown reduction ${reduction}`);
  }
  return {
    sampler: sampler === Sampler.DDPM ? "ddpm" : "ddim",
    numInferenceSteps: s?.numInferenceSteps || DEFAULT_STEP.numInferenceSteps,
    eta: s?.eta ?? DEFAULT_STEP.eta,
    guidanceScale: s?.guidanceScale ?? DEFAULT_STEP.guidanceScale,
    reduction: reduction === Reduction.SUM ? "sum" : "mean",
  };
}

function conditioning(c: Conditioning | undefined, field: string): ConditioningInput {
  return {
    prompts: c?.prompts ?? [],
    promptEmbeds: optionalFloat(`${field}.prompt_embeds`, c?.promptEmbeds),
    negativeEmbeds: optionalFloat(`${field}.negative_embeds`, c?.negativeEmbeds),
  };
}

function transitions(t: Transitions | undefined, field: string): TransitionsInput {
  if (!t) throw new InvalidArgumentError(field, "is required");
  return {
    conditioning: conditioning(t.conditioning, `${field}.conditioning`),
    latents: float(`${field}.latents`, t.latents),
    nextLatents: optionalFloat(`${field}.next_latents`, t.nextLatents),
    stepIndices: t.stepIndices.length ? t.stepIndices : [],
    referenceNoisePred: optionalFloat(`${field}.reference_noise_pred`, t.referenceNoisePred),
  };
}

function rngKey(k: RngKey | undefined): { seed: bigint; stream: bigint } {
  return { seed: k?.seed ?? 0n, stream: k?.stream ?? 0n };
}

function lossConfig(
  l: { kind: LossKind; beta: number; lambda: number; ratioClamp: number } | undefined,
): LossConfig {
  const kind = l?.kind ?? LossKind.UNSPECIFIED;
  const name = kind === LossKind.DPO
    ? "dpo"
    : kind === LossKind.DIFFUSION_DPO
    ? "diffusion_dpo"
    : kind === LossKind.RDPO || kind === LossKind.UNSPECIFIED
    ? "rdpo"
    : null;
  if (!name) throw new InvalidArgumentError("loss.kind", `unknown loss kind ${kind}`);
  const d = defaultLossConfig(name);
  return {
    kind: name,
    beta: l?.beta || d.beta,
    lambda: name === "rdpo" ? (l?.lambda ?? d.lambda) : (l?.lambda ?? 0),
    ratioClamp: l?.ratioClamp ?? 0,
  };
}

function adam(o: OptimizerConfig | undefined): AdamConfig {
  return resolveAdamConfig({
    learningRate: o?.learningRate,
    beta1: o?.beta1,
    beta2: o?.beta2,
    epsilon: o?.epsilon,
    weightDecay: o?.weightDecay,
    maxGradNorm: o?.maxGradNorm,
  });
}

function namedFloats(
  list: NamedTensor[],
  field: string,
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  list.forEach((nt, i) => {
    if (!nt.name) throw new InvalidArgumentError(`${field}[${i}].name`, "must not be empty");
    if (out.has(nt.name)) throw new InvalidArgumentError(`${field}[${i}].name`, `duplicate "${nt.name}"`);
    out.set(nt.name, float(`${field}[${i}].tensor`, nt.tensor));
  });
  return out;
}

function namedOut(map: ReadonlyMap<string, TensorRecord>): NamedTensor[] {
  return [...map].map(([name, t]) => ({
    name,
    tensor: encodeTensor(t.data as Float32Array, t.shape),
  })) as NamedTensor[];
}

function adapterInput(a: AdapterState) {
  return {
    weights: namedFloats(a.weights, "adapter.weights"),
    rank: a.rank,
    alpha: a.alpha,
    targetModules: a.targetModules,
    optimizerState: namedFloats(a.optimizerState, "adapter.optimizer_state"),
    optimizerStep: Number(a.optimizerStep),
  };
}

function optionalStep(v: bigint | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

/**
 * What GetInfo would say of the adapter now, carried on SampleCandidates so the trainer checks for a
 * restarted or changed policy without a GetInfo per step (issue 21). A worker core answers info()
 * from its cache (worker_core.ts); an in-thread core checksums the adapter (small next to a UNet pass).
 */
async function adapterStamp(core: PolicyCoreApi) {
  const i = await core.info();
  return {
    instanceId: i.instanceId as string,
    optimizerStep: BigInt(i.optimizerStep as number),
    adapterChecksum: i.adapterChecksum as string,
  };
}

/** The PolicyService implementation over a core (in-thread, or hosted in a worker: worker_core.ts). */
export function policyService(core: PolicyCoreApi): ImplOf<typeof PolicyService> {
  return {
    async getInfo() {
      const i = await core.info() as Record<string, never>;
      const configs = i.configs as unknown as { unet: string; textEncoder: string; vae: string };
      return {
        modelName: i.modelName,
        unetConfigJson: configs.unet,
        textEncoderConfigJson: configs.textEncoder,
        vaeConfigJson: configs.vae,
        latentShape: (i.latentShape as unknown as number[]).map(BigInt),
        imageWidth: i.imageWidth,
        imageHeight: i.imageHeight,
        backend: i.backend,
        role: (i.role as string) === "reference" ? ModelRole.REFERENCE : ModelRole.POLICY,
        baseParameters: BigInt(i.baseParameters),
        adapterParameters: BigInt(i.adapterParameters),
        loraRank: i.loraRank,
        loraAlpha: i.loraAlpha,
        loraTargetModules: i.loraTargetModules,
        optimizerStep: BigInt(i.optimizerStep),
        adapterChecksum: i.adapterChecksum,
        memoryBytes: BigInt(i.memoryBytes),
        tensorCount: BigInt(i.tensorCount),
        instanceId: i.instanceId,
        maxSequenceLength: i.maxSequenceLength,
        numTrainTimesteps: i.numTrainTimesteps,
        sampleLeadSteps: true,
        // lib/rpc/server.ts serves the Session carrier of every service that declares it.
        sessionStream: true,
      };
    },

    async encodePrompts(req) {
      const r = await core.encodePrompts(req.prompts);
      const ids = BigInt64Array.from(r.ids, (v) => BigInt(v));
      return {
        promptEmbeds: tensorOut(r.embeds),
        inputIds: encodeTensor(ids, [req.prompts.length, r.length]),
      };
    },

    async sampleCandidates(req) {
      const r = await sampleWithLeadSteps(core, {
        conditioning: conditioning(req.conditioning, "conditioning"),
        latents: float("latents", req.latents),
        stepIndex: req.stepIndex,
        step: stepOptions(req.step),
        numCandidates: req.numCandidates,
        noise: rngKey(req.noise),
        parentNoisePred: optionalFloat("parent_noise_pred", req.parentNoisePred),
        predictCandidateNoise: req.predictCandidateNoise,
        decodeCandidates: req.decodeCandidates,
        decodeParent: req.decodeParent,
        role: role(req.role, "role"),
      }, { count: req.leadSteps, noise: rngKey(req.leadNoise) });
      return {
        candidates: tensorOut(r.candidates),
        logProbs: r.logProbs ? tensorOut(r.logProbs) : undefined,
        candidateNoisePred: r.candidateNoisePred ? tensorOut(r.candidateNoisePred) : undefined,
        candidateImages: images(r.candidateImages),
        parentImages: images(r.parentImages),
        parentNoisePred: tensorOut(r.parentNoisePred),
        timestep: BigInt(r.timestep),
        prevTimestep: BigInt(r.prevTimestep),
        sigma: r.sigma,
        parentLatents: r.parentLatents ? tensorOut(r.parentLatents) : undefined,
        ...await adapterStamp(core),
      };
    },

    async predictNoise(req) {
      const timesteps = req.timesteps.map((t, i) => {
        const n = Number(t);
        if (!Number.isSafeInteger(n)) {
          throw new InvalidArgumentError(`timesteps[${i}]`, `not an integer: ${t}`);
        }
        return n;
      });
      if (timesteps.length === 0) throw new InvalidArgumentError("timesteps", "must not be empty");
      const r = await core.predictNoise({
        conditioning: conditioning(req.conditioning, "conditioning"),
        latents: float("latents", req.latents),
        timesteps,
        guidanceScale: req.guidanceScale ?? DEFAULT_STEP.guidanceScale,
        role: role(req.role, "role"),
      });
      return { noisePred: tensorOut(r) };
    },

    async decode(req) {
      const r = await core.decode(float("latents", req.latents), req.returnTensor);
      return { images: images(r.images), pixels: r.pixels ? tensorOut(r.pixels) : undefined };
    },

    async encodeImages(req) {
      const imgs = decodeImages("images", req.images, { maxSide: MAX_IMAGE_SIDE });
      return { latents: tensorOut(await core.encodeImages(imgs)) };
    },

    async generate(req, ctx) {
      const cond = conditioning(req.conditioning, "conditioning");
      const r = await core.generate({
        deadlineEpochMs: ctx.deadline?.getTime(),
        // In-thread cores also stop when the client cancels; a worker core gets the deadline only.
        checkContinue: () => ctx.signal.throwIfAborted(),
        conditioning: cond,
        step: stepOptions(req.step),
        noise: rngKey(req.noise),
        initialLatents: optionalFloat("initial_latents", req.initialLatents),
        batch: cond.promptEmbeds ? cond.promptEmbeds.shape[0] : cond.prompts.length,
        role: role(req.role, "role"),
      });
      return { images: images(r.images), latents: req.returnLatents ? tensorOut(r.latents) : undefined };
    },

    async logRatios(req) {
      const r = await core.logRatios({
        transitions: transitions(req.transitions, "transitions"),
        step: stepOptions(req.step),
      });
      return {
        logRatios: tensorOut(r.logRatios),
        policyLogProbs: tensorOut(r.policyLogProbs),
        referenceLogProbs: tensorOut(r.referenceLogProbs),
      };
    },

    async trainStep(req) {
      const r = await traceTrainStep(req.winners?.stepIndices.length ?? 0, () =>
        core.trainStep({
          winners: transitions(req.winners, "winners"),
          losers: transitions(req.losers, "losers"),
          step: stepOptions(req.step),
          loss: lossConfig(req.loss),
          optimizer: adam(req.optimizer),
          expectedOptimizerStep: optionalStep(req.expectedOptimizerStep),
          requestId: req.requestId,
          returnGradients: req.returnGradients,
          noise: rngKey(req.noise),
        }));
      return {
        loss: r.loss,
        meanLogRatioWinner: r.meanLogRatioWinner,
        meanLogRatioLoser: r.meanLogRatioLoser,
        accuracy: r.accuracy,
        gradNorm: r.gradNorm,
        optimizerStep: BigInt(r.optimizerStep),
        pairs: r.pairs,
        gradients: r.gradients ? namedOut(r.gradients) : [],
        adapterChecksum: r.adapterChecksum,
        instanceId: (await core.info()).instanceId as string,
      };
    },

    async applyGradients(req) {
      const r = await core.applyGradients({
        gradients: namedFloats(req.gradients, "gradients"),
        optimizer: adam(req.optimizer),
        expectedOptimizerStep: optionalStep(req.expectedOptimizerStep),
        requestId: req.requestId,
      });
      return {
        optimizerStep: BigInt(r.optimizerStep),
        adapterChecksum: r.adapterChecksum,
        gradNorm: r.gradNorm,
      };
    },

    async getAdapter(req) {
      const a = await core.getAdapter(req.includeOptimizerState);
      return {
        adapter: {
          weights: namedOut(a.weights),
          rank: a.rank,
          alpha: a.alpha,
          targetModules: a.targetModules,
          optimizerState: a.optimizerState ? namedOut(a.optimizerState) : [],
          optimizerStep: BigInt(a.optimizerStep),
          checksum: a.checksum,
        },
      };
    },

    async loadAdapter(req) {
      const src = req.source;
      const r = await core.loadAdapter(
        req.reset
          ? { reset: true, seed: Number(req.seed) }
          : src.case === "path"
          ? { path: src.value }
          : src.case === "adapter"
          ? { adapter: adapterInput(src.value) }
          : {},
      );
      return { checksum: r.checksum, optimizerStep: BigInt(r.optimizerStep) };
    },

    async saveAdapter(req) {
      const r = await core.saveAdapter(req.path);
      return { path: r.path, bytes: BigInt(r.bytes), checksum: r.checksum };
    },
  };
}
