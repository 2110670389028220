/**
 * Sampling one prompt batch and turning it into preference pairs: the inner part of the paper's
 * Algorithm 1 (RDPO_SPEC.md sections 3-4).
 *
 * shared_parent: from each x_t draw K candidates with the same mean and seeded noise; on fine-tune
 * steps score them by the step reward, pair best with worst, continue from the winner (or a random
 * candidate); elsewhere draw one. The noise prediction at the chosen candidate is passed to the
 * next step, so no UNet pass is repeated (section 3 cost note).
 *
 * independent (D3PO): two trajectories per prompt from the same x_T, stepped with different noise;
 * at each fine-tune step the pair is (x_t^a -> x_prev^a, x_t^b -> x_prev^b), ranked by the chosen
 * estimator (final: the final images' rewards).
 *
 * Noise streams (lib/rdpo/rng.ts): x_T of item b is stream base + b, block 0; step i's candidates
 * use streams base + b*K + k, block i + 1. `base` is unique per training step, so every step's
 * samples are a pure function of (seed, step). A data-parallel shard (data_parallel.ts) holds items
 * [offset, offset + b) of the global batch and draws exactly their global streams and choice keys,
 * so an item's trajectory is the same whichever replica samples it (shared_parent only).
 */
import { type Image, type Tensor } from "../../gen/rdpo/v1/tensor_pb.ts";
import type { StepConfig } from "../../gen/rdpo/v1/policy_pb.ts";
import { candidateStepRewards } from "../../lib/rdpo/estimators.ts";
import { selectIndependentPair, selectSharedParentPair } from "../../lib/rdpo/pairing.ts";
import { initialLatentsNoise } from "../../lib/rdpo/rng.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import type { RunConfig } from "./config.ts";
import type { TrainerServices } from "./services.ts";
import { finetuneStepEvent, phaseSpan } from "../../lib/telemetry/rdpo.ts";

/** One preference pair of transitions (winner, loser) at one inference step. */
export interface TransitionPair {
  prompt: string;
  stepIndex: number;
  winnerParent: Float32Array;
  winnerNext: Float32Array;
  loserParent: Float32Array;
  loserNext: Float32Array;
  /** Step-reward gap, winner minus loser. */
  margin: number;
  /** Index of the pair's prompt in the step's global batch (the data-parallel gradient unit). */
  item?: number;
}

export interface CollectedBatch {
  pairs: TransitionPair[];
  skippedTies: number;
  /** Reward of each final image (one per trajectory). */
  finalRewards: number[];
  /** The final images, in trajectory order (for sample grids). */
  finalImages: Image[];
  /** Milliseconds per phase: sample (policy), score (reward), rank (pairing). */
  phases: Record<string, number>;
}

export interface TrajectoryContext {
  config: RunConfig;
  services: TrainerServices;
  /** [C, H, W] of one sample (GetInfo.latent_shape). */
  latentShape: readonly number[];
  step: StepConfig;
  /**
   * The policy serves SampleCandidatesRequest.lead_steps: the shared-parent path sends the
   * single-candidate steps before a choice point (or the last step) in that step's call (issue 21).
   */
  leadSteps?: boolean;
  /**
   * Sees the policy state each SampleCandidates response carries (instance id, optimizer step,
   * adapter checksum) and throws when it is not the run's: the loop's restart check (issue 21).
   */
  checkPolicy?: (state: PolicyStamp) => void;
}

/** The policy state a SampleCandidates response carries. */
export interface PolicyStamp {
  instanceId: string;
  optimizerStep: bigint;
  adapterChecksum: string;
}

/** Times a phase call into `phases`, in a span that names the inference-step index it serves. */
function timer(phases: Record<string, number>) {
  return async <T>(
    phase: string,
    fn: () => Promise<T>,
    stepIndex?: number,
    finetune?: boolean,
  ): Promise<T> => {
    const t0 = performance.now();
    try {
      return await phaseSpan(phase, fn, stepIndex, finetune);
    } finally {
      phases[phase] = (phases[phase] ?? 0) + performance.now() - t0;
    }
  };
}

/** The weighted sum of the configured scorers for each image (prompts: one per image). */
export async function scoreImages(
  ctx: { config: RunConfig; services: TrainerServices },
  images: Image[],
  prompts: string[],
  scorers = ctx.config.scorers,
): Promise<number[]> {
  const total = new Array(images.length).fill(0);
  const parts = await Promise.all(
    scorers.map((s) =>
      ctx.services.call("score", (o) => ctx.services.reward.score({ scorer: s.name, images, prompts }, o))
    ),
  );
  parts.forEach((r, i) => r.scores.forEach((v, j) => (total[j] += scorers[i].weight * v)));
  return total;
}

/**
 * Scores several image groups with one Score call per scorer (issue 21: a fine-tune step's
 * candidates and its parents travel together instead of in two calls); one result per group.
 */
export async function scoreGroups(
  ctx: { config: RunConfig; services: TrainerServices },
  groups: { images: Image[]; prompts: string[] }[],
): Promise<number[][]> {
  const all = await scoreImages(ctx, groups.flatMap((g) => g.images), groups.flatMap((g) => g.prompts));
  let at = 0;
  return groups.map((g) => all.slice(at, at += g.images.length));
}

/** Rows of a [N, ...] float32 tensor message as subarrays of D values. */
function rows(t: Tensor | undefined, field: string, d: number): Float32Array[] {
  const { data } = decodeFloat32(field, t);
  const out: Float32Array[] = [];
  for (let i = 0; i * d < data.length; i++) out.push(data.subarray(i * d, (i + 1) * d));
  return out;
}

function stack(parts: Float32Array[], d: number): Float32Array {
  const out = new Float32Array(parts.length * d);
  parts.forEach((p, i) => out.set(p, i * d));
  return out;
}

/** Where a shard's items sit in the step's global batch (data-parallel sampling). */
export interface BatchShard {
  offset: number;
  globalBatch: number;
}

/** Samples one prompt batch (or a shard of one) and collects its pairs (see the file comment). */
export async function collectPairs(
  ctx: TrajectoryContext,
  prompts: string[],
  seed: bigint,
  base: bigint,
  shard?: BatchShard,
): Promise<CollectedBatch> {
  if (ctx.config.preference.pairing === "independent") {
    if (shard) throw new Error("collectPairs: shards need preference.pairing shared_parent");
    return await collectIndependent(ctx, prompts, seed, base);
  }
  return await collectSharedParent(ctx, prompts, seed, base, shard);
}

async function collectSharedParent(
  ctx: TrajectoryContext,
  prompts: string[],
  seed: bigint,
  base: bigint,
  shard: BatchShard = { offset: 0, globalBatch: prompts.length },
): Promise<CollectedBatch> {
  const { config, services } = ctx;
  const [c, h, w] = ctx.latentShape;
  const d = c * h * w;
  const b = prompts.length;
  const T = config.sampling.num_inference_steps;
  const fineTune = new Set(config.preference.finetune_step_indices);
  const estimator = config.preference.estimator;
  const phases: Record<string, number> = {};
  const timed = timer(phases);
  const pairs: TransitionPair[] = [];
  let skippedTies = 0;

  const offset = shard.offset;
  let x = initialLatentsNoise({ seed, stream: base + BigInt(offset) }, b, d);
  let parentEps: Float32Array | null = null;
  let qParent: number[] | null = null;
  let finalImages: Image[] = [];
  let finalRewards: number[] | null = null;
  // Single-candidate steps not yet sent: they run in the next call's lead_steps (ctx.leadSteps).
  let lead = 0;
  for (let i = 0; i < T; i++) {
    const train = fineTune.has(i);
    const k = train ? config.preference.num_candidates : 1;
    const last = i === T - 1;
    const needQ = train; // estimator q or delta_q (final is refused with shared_parent by config)
    if (ctx.leadSteps && !train && !last) {
      // Nothing of this step is read before the next choice point: x_t and the parent eps stay
      // those of its parent, and the policy runs it first in the next call.
      lead++;
      qParent = null;
      continue;
    }
    const leadSteps = lead;
    lead = 0;
    const res = await timed(
      "sample",
      () =>
        services.call("sample_candidates", (o) =>
          services.policy.sampleCandidates({
            conditioning: { prompts },
            latents: encodeTensor(x, [b, c, h, w]),
            stepIndex: i - leadSteps,
            leadSteps,
            // As the lead steps' own calls (num_candidates 1) would have keyed their noise.
            leadNoise: leadSteps ? { seed, stream: base + BigInt(offset) } : undefined,
            step: ctx.step,
            numCandidates: k,
            // Item j's candidate streams are base + (offset + j) * k + kk, as in the global batch.
            noise: { seed, stream: base + BigInt(offset * k) },
            parentNoisePred: parentEps ? encodeTensor(parentEps, [b, c, h, w]) : undefined,
            predictCandidateNoise: needQ && !last,
            decodeCandidates: needQ || last,
            decodeParent: needQ && estimator === "delta_q" && qParent === null,
          }, o)),
      i,
      train,
    );
    ctx.checkPolicy?.(res);
    // The lead steps ran on the policy: their result is this step's parent x_t.
    if (leadSteps) x = decodeFloat32("parent_latents", res.parentLatents).data.slice();
    const cands = rows(res.candidates, "candidates", d);
    const eps = res.candidateNoisePred ? rows(res.candidateNoisePred, "candidate_noise_pred", d) : null;
    const chosen = new Array<number>(b).fill(0);
    let candRewards: number[] | null = null;
    if (needQ) {
      const candPrompts = prompts.flatMap((p) => new Array(k).fill(p));
      const groups = [{ images: res.candidateImages, prompts: candPrompts }];
      if (estimator === "delta_q" && qParent === null) groups.push({ images: res.parentImages, prompts });
      const scored = await timed("score", () => scoreGroups(ctx, groups), i, train);
      candRewards = scored[0];
      if (scored.length > 1) qParent = scored[1];
      const t0 = performance.now();
      const [pairsBefore, tiesBefore] = [pairs.length, skippedTies];
      for (let j = 0; j < b; j++) {
        const next = candRewards.slice(j * k, (j + 1) * k);
        const stepRewards = candidateStepRewards(estimator, { next, current: qParent?.[j] });
        const sel = selectSharedParentPair(stepRewards, {
          minMargin: config.preference.min_margin,
          continueFrom: config.preference.continue_from,
          // Streams from base + 2^31 on are never noise streams (those are base + b*K + k).
          choiceKey: { seed, stream: base + (1n << 31n) + BigInt(i * shard.globalBatch + offset + j) },
        });
        chosen[j] = sel.next;
        if (sel.skipped) skippedTies++;
        else {
          const parent = x.subarray(j * d, (j + 1) * d);
          pairs.push({
            prompt: prompts[j],
            stepIndex: i,
            winnerParent: parent.slice(),
            winnerNext: cands[j * k + sel.winner].slice(),
            loserParent: parent.slice(),
            loserNext: cands[j * k + sel.loser].slice(),
            margin: sel.margin,
            item: offset + j,
          });
        }
      }
      phases.rank = (phases.rank ?? 0) + performance.now() - t0;
      finetuneStepEvent(i, pairs.length - pairsBefore, skippedTies - tiesBefore);
      qParent = chosen.map((kk, j) => candRewards![j * k + kk]);
    } else {
      qParent = null;
    }
    x = stack(chosen.map((kk, j) => cands[j * k + kk]), d);
    parentEps = eps ? stack(chosen.map((kk, j) => eps[j * k + kk]), d) : null;
    if (last) {
      finalImages = chosen.map((kk, j) => res.candidateImages[j * k + kk]);
      if (candRewards) finalRewards = chosen.map((kk, j) => candRewards![j * k + kk]);
    }
  }
  finalRewards ??= await timed("score", () => scoreImages(ctx, finalImages, prompts), T - 1, false);
  return { pairs, skippedTies, finalRewards, finalImages, phases };
}

async function collectIndependent(
  ctx: TrajectoryContext,
  prompts: string[],
  seed: bigint,
  base: bigint,
): Promise<CollectedBatch> {
  const { config, services } = ctx;
  const [c, h, w] = ctx.latentShape;
  const d = c * h * w;
  const b = prompts.length;
  const n = 2 * b; // trajectories a_0..a_{B-1}, b_0..b_{B-1}
  const T = config.sampling.num_inference_steps;
  const fineTune = new Set(config.preference.finetune_step_indices);
  const estimator = config.preference.estimator;
  const phases: Record<string, number> = {};
  const timed = timer(phases);
  const trajPrompts = [...prompts, ...prompts];

  const xT = initialLatentsNoise({ seed, stream: base }, b, d);
  let x = new Float32Array(n * d);
  x.set(xT, 0);
  x.set(xT, b * d); // both trajectories of a prompt start from the same x_T
  // Per fine-tune step: parents, nexts and step rewards of every trajectory.
  const recorded: {
    stepIndex: number;
    parents: Float32Array;
    nexts: Float32Array;
    rewards: number[] | null;
  }[] = [];
  let finalImages: Image[] = [];
  for (let i = 0; i < T; i++) {
    const train = fineTune.has(i);
    const last = i === T - 1;
    const needQ = train && estimator !== "final";
    const res = await timed(
      "sample",
      () =>
        services.call("sample_candidates", (o) =>
          services.policy.sampleCandidates({
            conditioning: { prompts: trajPrompts },
            latents: encodeTensor(x, [n, c, h, w]),
            stepIndex: i,
            step: ctx.step,
            numCandidates: 1,
            noise: { seed, stream: base },
            decodeCandidates: needQ || last,
            decodeParent: needQ && estimator === "delta_q",
          }, o)),
      i,
      train,
    );
    ctx.checkPolicy?.(res);
    const next = decodeFloat32("candidates", res.candidates).data;
    if (train) {
      let rewards: number[] | null = null;
      if (needQ) {
        const groups = [{ images: res.candidateImages, prompts: trajPrompts }];
        if (estimator === "delta_q") groups.push({ images: res.parentImages, prompts: trajPrompts });
        const [q, qt] = await timed("score", () => scoreGroups(ctx, groups), i, train);
        rewards = qt ? q.map((v, j) => candidateStepRewards("delta_q", { next: [v], current: qt[j] })[0]) : q;
      }
      recorded.push({ stepIndex: i, parents: x.slice(), nexts: next.slice(), rewards });
    }
    x = next.slice();
    if (last) finalImages = res.candidateImages;
  }
  const finalRewards = await timed("score", () => scoreImages(ctx, finalImages, trajPrompts), T - 1, false);
  const pairs: TransitionPair[] = [];
  let skippedTies = 0;
  const t0 = performance.now();
  for (const r of recorded) {
    for (let j = 0; j < b; j++) {
      const ra = r.rewards ? r.rewards[j] : finalRewards[j];
      const rb = r.rewards ? r.rewards[b + j] : finalRewards[b + j];
      const sel = selectIndependentPair([ra, rb], { minMargin: config.preference.min_margin });
      if (sel.skipped) {
        skippedTies++;
        continue;
      }
      const [wi, li] = sel.winner === 0 ? [j, b + j] : [b + j, j];
      pairs.push({
        prompt: prompts[j],
        stepIndex: r.stepIndex,
        winnerParent: r.parents.slice(wi * d, (wi + 1) * d),
        winnerNext: r.nexts.slice(wi * d, (wi + 1) * d),
        loserParent: r.parents.slice(li * d, (li + 1) * d),
        loserNext: r.nexts.slice(li * d, (li + 1) * d),
        margin: sel.margin,
      });
    }
  }
  phases.rank = performance.now() - t0;
  return { pairs, skippedTies, finalRewards, finalImages, phases };
}
