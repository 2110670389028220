/**
 * Methods as named presets over the run config's keys (config.ts). A preset is a partial config
 * laid between the schema defaults and the user's keys: the user's keys always win, and the
 * cross-field rules of config.ts then check the combination.
 *
 * What each method is, in this project's terms (RDPO_SPEC.md sections 3-5):
 *
 * | preset            | estimator | pairing       | continue | loss | lambda | ratio_clamp |
 * |-------------------|-----------|---------------|----------|------|--------|-------------|
 * | rdpo              | delta_q   | shared_parent | winner   | rdpo | 100    | -           |
 * | rdpo_star         | delta_q   | shared_parent | winner   | rdpo | 0      | -           |
 * | tailorpo          | q         | shared_parent | winner   | dpo  | -      | 0           |
 * | d3po              | final     | independent   | -        | dpo  | -      | 0.1         |
 * | dpo_stepwise      | q         | shared_parent | random   | dpo  | -      | 0           |
 * | best_of_n_q       | q (inference only: N candidates per step, keep the best; section 7)     |
 * | best_of_n_delta_q | delta_q (idem)                                                           |
 *
 * `dpo_stepwise` is the plain step-wise DPO baseline in SPO's manner (continue from a random
 * candidate so the trajectory is not biased toward winners, no clamp); it differs from tailorpo
 * only in `continue_from`.
 */

/**
 * D3PO's ratio clamp: `train.eps = 0.1` in config/base.py of github.com/yk7333/d3po (commit
 * 1c906091f6fbd2a76bd2a53328c2da05b8105169), used in scripts/train_d3po.py as
 * `torch.clamp(torch.exp(log_prob - ref_log_prob), 1 - eps, 1 + eps)`.
 */
export const D3PO_RATIO_CLAMP = 0.1;

export const METHOD_NAMES = [
  "rdpo",
  "rdpo_star",
  "tailorpo",
  "d3po",
  "dpo_stepwise",
  "best_of_n_q",
  "best_of_n_delta_q",
] as const;
export type MethodName = typeof METHOD_NAMES[number];

export interface Preset {
  /** One line for --help and the report. */
  description: string;
  /** Partial raw config (the file's keys). */
  values: Record<string, unknown>;
}

export const PRESETS: Record<MethodName, Preset> = {
  rdpo: {
    description: "RDPO (Algorithm 1): delta-Q step reward, shared-parent pairs, loser-likelihood penalty",
    values: {
      mode: "train",
      preference: { estimator: "delta_q", pairing: "shared_parent", continue_from: "winner" },
      loss: { kind: "rdpo", lambda: 100 },
    },
  },
  rdpo_star: {
    description: "RDPO* (paper Table 1): RDPO without the penalty (lambda = 0)",
    values: {
      mode: "train",
      preference: { estimator: "delta_q", pairing: "shared_parent", continue_from: "winner" },
      loss: { kind: "rdpo", lambda: 0 },
    },
  },
  tailorpo: {
    description: "TailorPO: Q-value step reward, shared-parent pairs, DPO loss",
    values: {
      mode: "train",
      preference: { estimator: "q", pairing: "shared_parent", continue_from: "winner" },
      loss: { kind: "dpo" },
    },
  },
  d3po: {
    description: "D3PO: final-image reward, two independent trajectories, DPO loss with ratio clamp 0.1",
    values: {
      mode: "train",
      preference: { estimator: "final", pairing: "independent", num_candidates: 2 },
      loss: { kind: "dpo", ratio_clamp: D3PO_RATIO_CLAMP },
    },
  },
  dpo_stepwise: {
    description: "step-wise DPO (SPO style): Q-value step reward, continue from a random candidate",
    values: {
      mode: "train",
      preference: { estimator: "q", pairing: "shared_parent", continue_from: "random" },
      loss: { kind: "dpo" },
    },
  },
  best_of_n_q: {
    description: "step-wise best-of-N sampling (no training), candidates ranked by Q (paper Table 4)",
    values: { mode: "best_of_n", best_of_n: { estimator: "q" } },
  },
  best_of_n_delta_q: {
    description: "step-wise best-of-N sampling (no training), candidates ranked by delta-Q (paper Table 4)",
    values: { mode: "best_of_n", best_of_n: { estimator: "delta_q" } },
  },
};
