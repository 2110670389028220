/**
 * Step-reward estimators (RDPO_SPEC.md section 3), over reward numbers:
 *   final   (D3PO): every step gets the final image's reward r(c, decode(x_0)).
 *   q       (SPO/TailorPO, paper Eq. 5): the candidate x_prev is scored by Q(x_prev).
 *   delta_q (RDPO, Eq. 6): the candidate is scored by its improvement Q(x_prev) - Q(x_t)
 *           (next minus current; the paper prints the opposite sign, RDPO_SPEC.md section 3).
 * Q(x) = r(c, decode(x0hat(x))) with the policy's guided eps; Q(x_0) = r(c, decode(x_0)).
 */
import { InvalidArgumentError } from "../errors.ts";

export type StepRewardEstimator = "final" | "q" | "delta_q";
export const STEP_REWARD_ESTIMATORS: readonly StepRewardEstimator[] = ["final", "q", "delta_q"];

/** The rewards one candidate transition x_t -> x_prev has. */
export interface TransitionRewards {
  /** Q(x_prev): reward of x0hat(x_prev) (of x_prev itself at the last step). Needed by q, delta_q. */
  next?: number;
  /** Q(x_t): reward of x0hat(x_t) of the parent. Needed by delta_q. */
  current?: number;
  /** Reward of the trajectory's final image. Needed by final. */
  final?: number;
}

export function validateEstimator(name: string, field = "estimator"): asserts name is StepRewardEstimator {
  if (!(STEP_REWARD_ESTIMATORS as readonly string[]).includes(name)) {
    throw new InvalidArgumentError(
      field,
      `unknown step-reward estimator ${JSON.stringify(name)} (supported: ${
        STEP_REWARD_ESTIMATORS.join(", ")
      })`,
    );
  }
}

/** Which rewards an estimator reads, so a caller scores only what is needed. */
export function requiredRewards(
  estimator: StepRewardEstimator,
): { next: boolean; current: boolean; final: boolean } {
  validateEstimator(estimator);
  return {
    next: estimator !== "final",
    current: estimator === "delta_q",
    final: estimator === "final",
  };
}

function finite(value: number | undefined, field: string, estimator: string): number {
  if (value === undefined) throw new InvalidArgumentError(field, `required by the ${estimator} estimator`);
  if (!Number.isFinite(value)) {
    throw new InvalidArgumentError(field, `expected a finite reward, got ${value}`);
  }
  return value;
}

/** The step reward of one transition under the estimator. */
export function stepReward(
  estimator: StepRewardEstimator,
  rewards: TransitionRewards,
  field = "rewards",
): number {
  validateEstimator(estimator);
  switch (estimator) {
    case "final":
      return finite(rewards.final, `${field}.final`, estimator);
    case "q":
      return finite(rewards.next, `${field}.next`, estimator);
    case "delta_q":
      // Improvement = next minus current (RDPO_SPEC.md section 3).
      return finite(rewards.next, `${field}.next`, estimator) -
        finite(rewards.current, `${field}.current`, estimator);
  }
}

/** Step rewards of several transitions (e.g. the K candidates of one parent). */
export function stepRewards(
  estimator: StepRewardEstimator,
  rewards: readonly TransitionRewards[],
  field = "rewards",
): number[] {
  return rewards.map((r, i) => stepReward(estimator, r, `${field}[${i}]`));
}

/**
 * Step rewards of K candidates sharing one parent x_t: `next[k]` = Q(x_prev^k), `current` = Q(x_t),
 * `final[k]` = final reward of the trajectory through candidate k (for `final`).
 */
export function candidateStepRewards(
  estimator: StepRewardEstimator,
  rewards: { next?: readonly number[]; current?: number; final?: readonly number[] },
  field = "rewards",
): number[] {
  validateEstimator(estimator);
  const list = estimator === "final" ? rewards.final : rewards.next;
  const listName = estimator === "final" ? "final" : "next";
  if (!list) throw new InvalidArgumentError(`${field}.${listName}`, `required by the ${estimator} estimator`);
  return list.map((v, k) =>
    stepReward(
      estimator,
      estimator === "final" ? { final: v } : { next: v, current: rewards.current },
      `${field}[${k}]`,
    )
  );
}
