/**
 * Evaluation (RDPO_SPEC.md section 6): N samples per eval prompt from the base model (adapter off)
 * and the tuned policy, with the same seeds, scored by every configured scorer, like the paper's
 * Table 8. Also the before/after sample grid and step-wise best-of-N sampling (section 7).
 */
import { ModelRole } from "../../gen/rdpo/v1/policy_pb.ts";
import type { Image } from "../../gen/rdpo/v1/tensor_pb.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { candidateStepRewards } from "../../lib/rdpo/estimators.ts";
import { rankCandidates } from "../../lib/rdpo/pairing.ts";
import { initialLatentsNoise } from "../../lib/rdpo/rng.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import type { RunConfig } from "./config.ts";
import { type EvalMetrics, scoreStats } from "./metrics.ts";
import { stepConfigMessage } from "./messages.ts";
import type { SampleGridInput } from "./report/grid.ts";
import type { TrainerServices } from "./services.ts";
import { scoreImages } from "./trajectory.ts";

/** Eval noise lives far from training streams (those are step << 32). */
const EVAL_STREAM_BASE = 1n << 62n;

export interface EvalContext {
  config: RunConfig;
  services: TrainerServices;
  /** Items per Generate call. */
  chunk?: number;
}

export type ModelName = "base" | "policy";

function toRgb(im: Image): RgbImage {
  return { width: im.width, height: im.height, data: im.data };
}

function evalSeed(config: RunConfig): bigint {
  return BigInt(config.eval.seed ?? config.seed);
}

/** Images for `prompts` x `samples` (prompt-major), seed-matched across models. */
export async function generateSamples(
  ctx: EvalContext,
  model: ModelName,
  prompts: string[],
  samples: number,
): Promise<Image[]> {
  const items = prompts.flatMap((p) => new Array(samples).fill(p) as string[]);
  const chunk = ctx.chunk ?? 8;
  const out: Image[] = [];
  for (let start = 0; start < items.length; start += chunk) {
    const part = items.slice(start, start + chunk);
    const r = await ctx.services.call("generate", (o) =>
      ctx.services.policy.generate({
        conditioning: { prompts: part },
        step: stepConfigMessage(ctx.config),
        // Item i of the whole evaluation uses stream EVAL_STREAM_BASE + i for both models.
        noise: { seed: evalSeed(ctx.config), stream: EVAL_STREAM_BASE + BigInt(start) },
        role: model === "base" ? ModelRole.REFERENCE : ModelRole.POLICY,
      }, o));
    out.push(...r.images);
  }
  return out;
}

/** Scores samples of one model with every eval scorer; returns the metrics record and the images. */
export async function evaluateModel(
  ctx: EvalContext,
  model: ModelName,
  prompts: string[],
  step: number,
): Promise<{ record: EvalMetrics; images: Image[] }> {
  const t0 = performance.now();
  const n = ctx.config.eval.samples_per_prompt;
  const images = await generateSamples(ctx, model, prompts, n);
  const imagePrompts = prompts.flatMap((p) => new Array(n).fill(p) as string[]);
  const rewards: EvalMetrics["rewards"] = {};
  for (const name of ctx.config.eval.scorers) {
    const scores = await scoreImages(ctx, images, imagePrompts, [{ name, weight: 1 }]);
    rewards[name] = { ...scoreStats(scores), values: Array.from(scores) };
  }
  return {
    record: {
      type: "eval",
      step,
      time: new Date().toISOString(),
      model,
      rewards,
      seconds: (performance.now() - t0) / 1000,
    },
    images,
  };
}

/** Rows = prompts, columns = base samples then tuned samples, captioned with the training reward. */
export async function beforeAfterGrid(ctx: EvalContext, prompts: string[]): Promise<SampleGridInput> {
  const n = ctx.config.report.grid_samples;
  const base = await generateSamples(ctx, "base", prompts, n);
  const tuned = await generateSamples(ctx, "policy", prompts, n);
  const imagePrompts = prompts.flatMap((p) => new Array(n).fill(p) as string[]);
  const baseScores = await scoreImages(ctx, base, imagePrompts);
  const tunedScores = await scoreImages(ctx, tuned, imagePrompts);
  const row = (r: number) => [
    ...base.slice(r * n, (r + 1) * n).map(toRgb),
    ...tuned.slice(r * n, (r + 1) * n).map(toRgb),
  ];
  const captions = (r: number) => [
    ...baseScores.slice(r * n, (r + 1) * n).map((s) => s.toFixed(3)),
    ...tunedScores.slice(r * n, (r + 1) * n).map((s) => s.toFixed(3)),
  ];
  return {
    title: "base (left) vs tuned (right), same seeds; caption: training reward",
    images: prompts.map((_, r) => row(r)),
    rowLabels: prompts,
    columnLabels: [
      ...Array.from({ length: n }, (_, i) => `base ${i + 1}`),
      ...Array.from({ length: n }, (_, i) => `tuned ${i + 1}`),
    ],
    captions: prompts.map((_, r) => captions(r)),
    cellSize: Math.max(64, ctx.config.report.image_size),
  };
}

/**
 * Step-wise best-of-N sampling (RDPO_SPEC.md section 7): at every step draw N candidates from x_t,
 * keep the one with the best step reward (q or delta_q), continue. Returns the final images and the
 * training scorers' reward of each.
 */
export async function bestOfN(
  ctx: EvalContext & { latentShape: readonly number[] },
  prompts: string[],
  model: ModelName,
): Promise<{ images: Image[]; rewards: number[] }> {
  const { config, services } = ctx;
  const [c, h, w] = ctx.latentShape;
  const d = c * h * w;
  const b = prompts.length;
  const k = config.best_of_n.num_candidates;
  const estimator = config.best_of_n.estimator;
  const seed = evalSeed(config);
  const base = EVAL_STREAM_BASE + (1n << 40n);
  let x = initialLatentsNoise({ seed, stream: base }, b, d);
  let parentEps: Float32Array | null = null;
  let qParent: number[] | null = null;
  let images: Image[] = [];
  let rewards: number[] = [];
  const T = config.sampling.num_inference_steps;
  for (let i = 0; i < T; i++) {
    const last = i === T - 1;
    const res = await services.call("sample_candidates", (o) =>
      services.policy.sampleCandidates({
        conditioning: { prompts },
        latents: encodeTensor(x, [b, c, h, w]),
        stepIndex: i,
        step: stepConfigMessage(config),
        numCandidates: k,
        noise: { seed, stream: base },
        parentNoisePred: parentEps ? encodeTensor(parentEps, [b, c, h, w]) : undefined,
        predictCandidateNoise: !last,
        decodeCandidates: true,
        decodeParent: estimator === "delta_q" && qParent === null,
        role: model === "base" ? ModelRole.REFERENCE : ModelRole.POLICY,
      }, o));
    const q = await scoreImages(
      ctx,
      res.candidateImages,
      prompts.flatMap((p) => new Array(k).fill(p) as string[]),
    );
    if (estimator === "delta_q" && qParent === null) {
      qParent = await scoreImages(ctx, res.parentImages, prompts);
    }
    const cands = decodeFloat32("candidates", res.candidates).data;
    const eps = res.candidateNoisePred
      ? decodeFloat32("candidate_noise_pred", res.candidateNoisePred).data
      : null;
    const nextX = new Float32Array(b * d);
    const nextEps = eps ? new Float32Array(b * d) : null;
    const chosen: number[] = [];
    for (let j = 0; j < b; j++) {
      const stepRewards = candidateStepRewards(estimator, {
        next: q.slice(j * k, (j + 1) * k),
        current: qParent?.[j],
      });
      const best = k > 1 ? rankCandidates(stepRewards).winner : 0;
      chosen.push(best);
      nextX.set(cands.subarray((j * k + best) * d, (j * k + best + 1) * d), j * d);
      nextEps?.set(eps!.subarray((j * k + best) * d, (j * k + best + 1) * d), j * d);
    }
    qParent = chosen.map((best, j) => q[j * k + best]);
    x = nextX;
    parentEps = nextEps;
    if (last) {
      images = chosen.map((best, j) => res.candidateImages[j * k + best]);
      rewards = qParent;
    }
  }
  return { images, rewards };
}
