/**
 * Preference pairs from step rewards (RDPO_SPEC.md section 4).
 *
 * shared_parent (RDPO Algorithm 1, SPO, TailorPO): K >= 2 candidates from one x_t; the best and the
 *   worst by step reward form (winner, loser); the trajectory continues from the winner, or (option,
 *   as SPO does) from a seeded random candidate.
 * independent (D3PO): two trajectories a, b from one x_T, each with its own parent; at each step the
 *   one with the higher step reward wins.
 *
 * Tie rule. The spec says a pair whose gap is "below min_margin (default 0)" is skipped. Read
 * literally, the default would train exact ties (gap 0), whose labels are arbitrary: such a pair
 * carries no preference. So a pair is trained only when gap > 0 AND gap >= min_margin; with the
 * default 0 exactly the ties (gap = 0) are skipped, and with min_margin > 0 a gap equal to min_margin
 * is still trained (only gaps strictly below it are skipped, as the spec says).
 */
import { InvalidArgumentError } from "../errors.ts";
import { randomIndex, type RngKey } from "./rng.ts";

export type PairingMode = "shared_parent" | "independent";
export const PAIRING_MODES: readonly PairingMode[] = ["shared_parent", "independent"];

/** Where a shared_parent trajectory continues: the winner (RDPO) or a random candidate (SPO). */
export type Continuation = "winner" | "random";

export interface RankedPair {
  /** Index of the best candidate (the first one among equal maxima). */
  winner: number;
  /** Index of the worst candidate (the last one among equal minima, so winner != loser). */
  loser: number;
  /** Step-reward gap, winner minus loser (>= 0). */
  margin: number;
}

export interface SelectedPair extends RankedPair {
  /** True when the tie rule skips the pair (it is not trained). */
  skipped: boolean;
}

export interface SharedParentSelection extends SelectedPair {
  /** Candidate the trajectory continues from. */
  next: number;
}

export function validatePairingMode(mode: string, field = "pairing"): asserts mode is PairingMode {
  if (!(PAIRING_MODES as readonly string[]).includes(mode)) {
    throw new InvalidArgumentError(
      field,
      `unknown pairing mode ${JSON.stringify(mode)} (supported: ${PAIRING_MODES.join(", ")})`,
    );
  }
}

/** Throws unless min_margin is a finite number >= 0. */
export function validateMinMargin(minMargin: number, field = "min_margin"): void {
  if (!Number.isFinite(minMargin) || minMargin < 0) {
    throw new InvalidArgumentError(field, `must be a finite number >= 0, got ${minMargin}`);
  }
}

/** The tie rule above: true when a pair with this gap is skipped. */
export function isSkippedTie(margin: number, minMargin = 0): boolean {
  validateMinMargin(minMargin);
  return !(margin > 0 && margin >= minMargin);
}

function requireRewards(stepRewards: readonly number[], minCount: number, field: string): void {
  if (stepRewards.length < minCount) {
    throw new InvalidArgumentError(
      field,
      `expected at least ${minCount} step rewards, got ${stepRewards.length}`,
    );
  }
  stepRewards.forEach((r, i) => {
    if (!Number.isFinite(r)) {
      throw new InvalidArgumentError(`${field}[${i}]`, `expected a finite step reward, got ${r}`);
    }
  });
}

/** Best and worst of K >= 2 candidates by step reward. */
export function rankCandidates(stepRewards: readonly number[], field = "step_rewards"): RankedPair {
  requireRewards(stepRewards, 2, field);
  let winner = 0;
  let loser = stepRewards.length - 1;
  for (let i = 0; i < stepRewards.length; i++) {
    if (stepRewards[i] > stepRewards[winner]) winner = i;
    const j = stepRewards.length - 1 - i;
    if (stepRewards[j] < stepRewards[loser]) loser = j;
  }
  return { winner, loser, margin: stepRewards[winner] - stepRewards[loser] };
}

/**
 * shared_parent selection: rank the K candidates, apply the tie rule and pick the continuation.
 * `continueFrom: "random"` needs `choiceKey`; the index is randomIndex(choiceKey, K).
 */
export function selectSharedParentPair(
  stepRewards: readonly number[],
  options: { minMargin?: number; continueFrom?: Continuation; choiceKey?: RngKey } = {},
  field = "step_rewards",
): SharedParentSelection {
  const ranked = rankCandidates(stepRewards, field);
  const skipped = isSkippedTie(ranked.margin, options.minMargin ?? 0);
  const continueFrom = options.continueFrom ?? "winner";
  let next: number;
  if (continueFrom === "winner") {
    next = ranked.winner;
  } else if (continueFrom === "random") {
    if (!options.choiceKey) {
      throw new InvalidArgumentError(
        "choice_key",
        'required when continuing from a random candidate ("random")',
      );
    }
    next = randomIndex(options.choiceKey, stepRewards.length);
  } else {
    throw new InvalidArgumentError(
      "continue_from",
      `unknown value ${JSON.stringify(continueFrom)} (winner, random)`,
    );
  }
  return { ...ranked, skipped, next };
}

/**
 * independent selection: two trajectories' step rewards [r_a, r_b]; winner 0 (a) or 1 (b). An exact
 * tie names a as the winner and is skipped by the tie rule.
 */
export function selectIndependentPair(
  stepRewards: readonly [number, number] | readonly number[],
  options: { minMargin?: number } = {},
  field = "step_rewards",
): SelectedPair {
  requireRewards(stepRewards, 2, field);
  if (stepRewards.length !== 2) {
    throw new InvalidArgumentError(
      field,
      `independent pairs have exactly 2 trajectories, got ${stepRewards.length}`,
    );
  }
  const winner = stepRewards[1] > stepRewards[0] ? 1 : 0;
  const loser = 1 - winner;
  const margin = stepRewards[winner] - stepRewards[loser];
  return { winner, loser, margin, skipped: isSkippedTie(margin, options.minMargin ?? 0) };
}
