/**
 * The peers' epoch structure (D3PO/DDPO; RDPO_SPEC.md section 6): sample several prompt batches
 * with the policy as it stands, then take minibatch optimizer steps over the pairs collected, for
 * one or more inner epochs, in a seeded shuffled order. h_w and h_l of the later updates are then
 * measured off-policy (against the policy that drew the pairs), which is where the loser penalty
 * can act. `loop.ts` calls `endsEpoch` after each sample batch and trains on `updatePlan`'s
 * minibatches when it returns true.
 *
 * Config keys (`training.*`, defaults reproduce the one-update-per-batch loop bit for bit):
 *   sample_batches_per_epoch  prompt batches sampled before training (D3PO sample.num_batches_per_epoch)
 *   train_batch_size          pairs per minibatch; null: every pair of the epoch in one optimizer step
 *   gradient_accumulation_steps minibatches per optimizer step
 *   num_inner_epochs          passes over the epoch's pairs
 *   structure                 "per_batch", or "d3po": unset keys take D3PO's config/base.py values
 *
 * Gradient accumulation is done by concatenation: one TrainStep on `train_batch_size x
 * gradient_accumulation_steps` pairs. The policy's loss is the mean over the pairs of a request, so
 * its gradient is the mean of the equal-size minibatch gradients that accumulation adds up (the
 * float summation order differs), at one RPC instead of several.
 */
import type { RunConfig } from "./config.ts";
import { randomInt, seededRandom } from "./random.ts";

export interface EpochSettings {
  sampleBatchesPerEpoch: number;
  trainBatchSize: number | null;
  gradientAccumulationSteps: number;
  numInnerEpochs: number;
}

/**
 * D3PO's values (config/base.py of github.com/yk7333/d3po, commit 1c906091): sample.num_batches_per_epoch
 * 2, train.batch_size 1 sample, train.gradient_accumulation_steps 1, train.num_inner_epochs 1. One D3PO
 * "sample" is a trajectory pair trained at every timestep with the gradients accumulated over the
 * timesteps (its Accelerator multiplies gradient_accumulation_steps by num_train_timesteps), so in
 * pairs one optimizer step is one trajectory pair's fine-tuned steps: train_batch_size =
 * |finetune_step_indices| (resolved in config.ts). D3PO's sample.batch_size (10 prompts) is our
 * training.prompt_batch_size, which the user sets (its default 2 is kept).
 */
export const D3PO_EPOCH = {
  sample_batches_per_epoch: 2,
  train_trajectory_pairs: 1,
  gradient_accumulation_steps: 1,
  num_inner_epochs: 1,
} as const;

export const EPOCH_STRUCTURES = ["per_batch", "d3po"] as const;
export type EpochStructure = typeof EPOCH_STRUCTURES[number];

/** The config block's keys as resolved (config.ts fills them; see `resolveEpochKeys`). */
export interface EpochConfigKeys {
  structure: EpochStructure;
  sample_batches_per_epoch: number | null;
  train_batch_size: number | null;
  gradient_accumulation_steps: number | null;
  num_inner_epochs: number | null;
}

/** The block's keys (config.ts leaves them out of the config hash at their per-batch defaults). */
export const EPOCH_KEYS = [
  "structure",
  "sample_batches_per_epoch",
  "train_batch_size",
  "gradient_accumulation_steps",
  "num_inner_epochs",
] as const;

/** Fills unset keys: D3PO's values under structure "d3po", the per-batch defaults otherwise. Idempotent. */
export function resolveEpochKeys(t: EpochConfigKeys, fineTunedSteps: number): void {
  const d3po = t.structure === "d3po";
  t.sample_batches_per_epoch ??= d3po ? D3PO_EPOCH.sample_batches_per_epoch : 1;
  if (d3po) t.train_batch_size ??= D3PO_EPOCH.train_trajectory_pairs * fineTunedSteps;
  t.gradient_accumulation_steps ??= d3po ? D3PO_EPOCH.gradient_accumulation_steps : 1;
  t.num_inner_epochs ??= d3po ? D3PO_EPOCH.num_inner_epochs : 1;
}

export function epochSettings(config: RunConfig): EpochSettings {
  const t = config.training;
  return {
    sampleBatchesPerEpoch: t.sample_batches_per_epoch ?? 1,
    trainBatchSize: t.train_batch_size,
    gradientAccumulationSteps: t.gradient_accumulation_steps ?? 1,
    numInnerEpochs: t.num_inner_epochs ?? 1,
  };
}

/** Whether these settings are today's loop: one optimizer step on each fresh batch's pairs. */
export function isPerBatch(s: EpochSettings): boolean {
  return s.sampleBatchesPerEpoch === 1 && s.trainBatchSize === null && s.numInnerEpochs === 1 &&
    s.gradientAccumulationSteps === 1;
}

/** After `stepsDone` sample batches (of `total`), whether an epoch is complete (the last may be short). */
export function endsEpoch(stepsDone: number, s: EpochSettings, total: number): boolean {
  return stepsDone % s.sampleBatchesPerEpoch === 0 || stepsDone === total;
}

/** The first sample batch (0-based step) of the epoch holding step `step`. */
export function epochStart(step: number, s: EpochSettings): number {
  return step - (step % s.sampleBatchesPerEpoch);
}

/**
 * The optimizer steps of one epoch over `pairCount` pairs, each a list of pair indices. With
 * train_batch_size null every inner epoch is one step over all pairs in sampling order (a mean
 * does not depend on the order, and the default stays bit-identical); otherwise each inner epoch
 * is a fresh seeded permutation (seed, epoch, inner epoch) cut into steps of
 * train_batch_size x gradient_accumulation_steps pairs, the last one shorter when they do not
 * divide (D3PO asserts divisibility; pairs here vary with skipped ties, so nothing is dropped).
 */
export function updatePlan(pairCount: number, s: EpochSettings, seed: number, epoch: number): number[][] {
  if (pairCount === 0) return [];
  const plan: number[][] = [];
  for (let inner = 0; inner < s.numInnerEpochs; inner++) {
    const order = Array.from({ length: pairCount }, (_, i) => i);
    if (s.trainBatchSize === null) {
      plan.push(order);
      continue;
    }
    const random = seededRandom(seed, 0x45504f43 + epoch * s.numInnerEpochs + inner);
    for (let i = pairCount - 1; i > 0; i--) {
      const j = randomInt(random, i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const per = s.trainBatchSize * s.gradientAccumulationSteps;
    for (let k = 0; k < pairCount; k += per) plan.push(order.slice(k, k + per));
  }
  return plan;
}

/** What the loop needs from one TrainStep response. */
export interface UpdateResponse {
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  accuracy: number;
  gradNorm?: number;
  optimizerStep: bigint;
  adapterChecksum: string;
}

/**
 * Runs the epoch's optimizer steps in `updatePlan` order; `train(pairs, k, expectedOptimizerStep)`
 * sends the k-th. Returns the responses in order (empty when there are no pairs).
 */
export async function runEpochUpdates<P, R extends UpdateResponse>(
  pairs: readonly P[],
  s: EpochSettings,
  seed: number,
  epoch: number,
  optimizerStep: number,
  train: (pairs: P[], k: number, expectedOptimizerStep: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  let expected = optimizerStep;
  for (const [k, indices] of updatePlan(pairs.length, s, seed, epoch).entries()) {
    const r = await train(indices.map((i) => pairs[i]), k, expected);
    expected = Number(r.optimizerStep);
    out.push(r);
  }
  return out;
}

/** One optimizer step's numbers, as the step record's `updates` list holds them (the h_l curve). */
export interface UpdateMetrics {
  loss: number;
  h_w: number;
  h_l: number;
  accuracy: number;
  pairs: number;
  grad_norm?: number;
}

export function updateMetrics<R extends UpdateResponse>(r: R, pairs: number): UpdateMetrics {
  return {
    loss: r.loss,
    h_w: r.meanLogRatioWinner,
    h_l: r.meanLogRatioLoser,
    accuracy: r.accuracy,
    pairs,
    grad_norm: r.gradNorm,
  };
}

/** Means over the epoch's updates (one update: its own values, exactly). */
export function meanOfUpdates(us: readonly UpdateMetrics[]): Omit<UpdateMetrics, "pairs"> | null {
  if (us.length === 0) return null;
  const mean = (f: (u: UpdateMetrics) => number) => us.reduce((a, u) => a + f(u), 0) / us.length;
  const norms = us.map((u) => u.grad_norm).filter((g): g is number => g !== undefined);
  return {
    loss: mean((u) => u.loss),
    h_w: mean((u) => u.h_w),
    h_l: mean((u) => u.h_l),
    accuracy: mean((u) => u.accuracy),
    grad_norm: norms.length === us.length ? mean((u) => u.grad_norm!) : undefined,
  };
}
