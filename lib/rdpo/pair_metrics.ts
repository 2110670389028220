/**
 * What a training step reports (RDPO_SPEC.md section 6): loss, mean h_w, mean h_l, pair accuracy
 * (fraction with h_w > h_l), reward margin and skipped ties. Plain numbers, computed from the
 * per-pair values the loss produced (read back from tensors by the caller).
 */
import { InvalidArgumentError } from "../errors.ts";

export interface PairMetrics {
  logRatioWinner: number;
  logRatioLoser: number;
  loss: number;
  /** h_w > h_l (strict: a pair with h_w = h_l, e.g. at initialisation, is not counted correct). */
  correct: boolean;
}

export interface StepMetrics {
  /** Mean per-pair loss (the batch loss). */
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  /** Fraction of pairs with h_w > h_l. */
  accuracy: number;
  /** Mean step-reward gap (winner minus loser) of the trained pairs; 0 when none were given. */
  rewardMargin: number;
  /** Pairs skipped by the tie rule (pairing.ts) before training. */
  skippedTies: number;
  pairs: PairMetrics[];
}

export interface PairValues {
  logRatioWinner: ArrayLike<number>;
  logRatioLoser: ArrayLike<number>;
  losses: ArrayLike<number>;
  /** Step-reward margins of the trained pairs (same order); optional. */
  rewardMargins?: ArrayLike<number>;
  skippedTies?: number;
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length === 0 ? 0 : s / xs.length;
}

/** Summarises a step. With no trained pairs every mean is 0 (nothing was trained). */
export function summarizePairs(values: PairValues): StepMetrics {
  const n = values.logRatioWinner.length;
  for (const [name, arr] of [["log_ratio_loser", values.logRatioLoser], ["losses", values.losses]] as const) {
    if (arr.length !== n) {
      throw new InvalidArgumentError(name, `expected ${n} values (one per pair), got ${arr.length}`);
    }
  }
  if (values.rewardMargins && values.rewardMargins.length !== n) {
    throw new InvalidArgumentError(
      "reward_margins",
      `expected ${n} values (one per pair), got ${values.rewardMargins.length}`,
    );
  }
  const skippedTies = values.skippedTies ?? 0;
  if (!Number.isInteger(skippedTies) || skippedTies < 0) {
    throw new InvalidArgumentError("skipped_ties", `expected an integer >= 0, got ${skippedTies}`);
  }
  const pairs: PairMetrics[] = [];
  for (let i = 0; i < n; i++) {
    const w = values.logRatioWinner[i];
    const l = values.logRatioLoser[i];
    pairs.push({ logRatioWinner: w, logRatioLoser: l, loss: values.losses[i], correct: w > l });
  }
  return {
    loss: mean(values.losses),
    meanLogRatioWinner: mean(values.logRatioWinner),
    meanLogRatioLoser: mean(values.logRatioLoser),
    accuracy: n === 0 ? 0 : pairs.filter((p) => p.correct).length / n,
    rewardMargin: values.rewardMargins ? mean(values.rewardMargins) : 0,
    skippedTies,
    pairs,
  };
}
