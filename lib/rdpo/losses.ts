/**
 * Preference losses per pair on tfjs tensors (RDPO_SPEC.md section 5); the batch loss is the mean.
 * h_w and h_l are the log-ratios of log_prob.ts, so gradients reach the policy's eps through them.
 *
 *   dpo:  L = -log sigmoid(beta (h_w - h_l)), optionally with D3PO's ratio clamp (below).
 *   rdpo: L = -log sigmoid(beta (h_w - h_l) - lambda max(0, h_l))  (the paper's Eq. 9 with the sign
 *         corrected per RDPO_SPEC.md section 5: the penalty pushes the loser's likelihood down).
 *   diffusion_dpo: L = -log sigmoid(-beta_d / 2 ((e_w^theta - e_w^ref) - (e_l^theta - e_l^ref))),
 *         e = mean over dims of (eps - eps_model)^2 (Wallace et al.), same t and noise for both images.
 *
 * -log sigmoid(x) is computed as softplus(-x) = max(-x, 0) + log1p(exp(-|x|)), finite for every x.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../errors.ts";
import { requireBatched, requireSameShape } from "./per_item.ts";
import { stopGradient } from "./stop_gradient.ts";

export type LossKind = "dpo" | "rdpo" | "diffusion_dpo";
export const LOSS_KINDS: readonly LossKind[] = ["dpo", "rdpo", "diffusion_dpo"];

export interface LossConfig {
  kind: LossKind;
  /** beta (dpo, rdpo) or beta_d (diffusion_dpo); > 0. */
  beta: number;
  /** rdpo penalty weight lambda >= 0 (0 = RDPO*, no penalty). Must be 0 for other kinds. */
  lambda: number;
  /** dpo ratio clamp e >= 0 (0 disables it). Must be 0 for other kinds. */
  ratioClamp: number;
}

/**
 * Defaults: beta 0.1 and lambda 100 (RDPO paper section 5.1, D3PO); diffusion_dpo's beta_d 5000 is
 * Wallace et al.'s value for SD1.5.
 */
export function defaultLossConfig(kind: LossKind): LossConfig {
  switch (kind) {
    case "dpo":
      return { kind, beta: 0.1, lambda: 0, ratioClamp: 0 };
    case "rdpo":
      return { kind, beta: 0.1, lambda: 100, ratioClamp: 0 };
    case "diffusion_dpo":
      return { kind, beta: 5000, lambda: 0, ratioClamp: 0 };
  }
}

/** Throws, naming the field, for an unknown kind or an out-of-range or misplaced option. */
export function validateLossConfig(config: LossConfig, field = "loss"): void {
  const p = field ? `${field}.` : "";
  if (!(LOSS_KINDS as readonly string[]).includes(config.kind)) {
    throw new InvalidArgumentError(
      `${p}kind`,
      `unknown loss ${JSON.stringify(config.kind)} (supported: ${LOSS_KINDS.join(", ")})`,
    );
  }
  if (!Number.isFinite(config.beta) || config.beta <= 0) {
    throw new InvalidArgumentError(`${p}beta`, `must be a finite number > 0, got ${config.beta}`);
  }
  if (!Number.isFinite(config.lambda) || config.lambda < 0) {
    throw new InvalidArgumentError(`${p}lambda`, `must be a finite number >= 0, got ${config.lambda}`);
  }
  if (config.kind !== "rdpo" && config.lambda !== 0) {
    throw new InvalidArgumentError(
      `${p}lambda`,
      `applies to the rdpo loss only, got ${config.lambda} with ${config.kind}`,
    );
  }
  if (!Number.isFinite(config.ratioClamp) || config.ratioClamp < 0) {
    throw new InvalidArgumentError(
      `${p}ratio_clamp`,
      `must be a finite number >= 0, got ${config.ratioClamp}`,
    );
  }
  if (config.kind !== "dpo" && config.ratioClamp !== 0) {
    // A clamp would cap rdpo's penalty at log(1 + e) and zero its gradient above: it defeats the penalty.
    throw new InvalidArgumentError(
      `${p}ratio_clamp`,
      `applies to the dpo loss only, got ${config.ratioClamp} with ${config.kind}`,
    );
  }
}

/**
 * -log sigmoid(x) = softplus(-x), in the overflow-free form max(-x, 0) + log1p(exp(-|x|)), with the
 * exact derivative -sigmoid(-x). (Differentiating the max/abs form op by op is wrong at x = 0: tfjs
 * takes relu'(0) = 0 but |x|'(0) = -1, which gives +1/2 instead of -1/2.)
 */
export const negLogSigmoid: (x: tf.Tensor) => tf.Tensor = tf.customGrad((x, save) => {
  const input = x as tf.Tensor;
  (save as tf.GradSaveFunc)([input]);
  return {
    value: tf.add(tf.relu(tf.neg(input)), tf.log1p(tf.exp(tf.neg(tf.abs(input))))),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.neg(tf.mul(dy, tf.sigmoid(tf.neg(saved[0])))),
  };
});

/**
 * D3PO's clamp of the probability ratio, torch.clamp(exp(h), 1 - e, 1 + e) followed by log, done in
 * log space: h clipped to [log(1 - e), log(1 + e)] (no lower bound when e >= 1). As with torch.clamp
 * the gradient is zero where the ratio is clipped (D3PO scripts/train_with_rm.py applies it to the
 * ratio of each of the two samples before the sigmoid). e = 0 disables it.
 */
export function clampLogRatio(h: tf.Tensor, ratioClamp: number): tf.Tensor {
  if (ratioClamp === 0) return h;
  const upper = Math.log1p(ratioClamp);
  if (ratioClamp >= 1) return tf.minimum(h, upper);
  return tf.clipByValue(h, Math.log1p(-ratioClamp), upper);
}

function requirePairs(hW: tf.Tensor, hL: tf.Tensor): void {
  if (hW.rank !== 1 || hW.shape[0] === 0) {
    throw new InvalidArgumentError(
      "log_ratio_winner",
      `expected shape [P] with P >= 1, got [${hW.shape.join(", ")}]`,
    );
  }
  requireSameShape(hL, hW, "log_ratio_loser", "log_ratio_winner");
}

/** dpo per pair: -log sigmoid(beta (h_w - h_l)), h clamped first when ratioClamp > 0. [P] */
export function dpoLoss(hW: tf.Tensor1D, hL: tf.Tensor1D, beta: number, ratioClamp = 0): tf.Tensor1D {
  validateLossConfig({ kind: "dpo", beta, lambda: 0, ratioClamp });
  requirePairs(hW, hL);
  return tf.tidy(() => {
    const w = clampLogRatio(hW, ratioClamp);
    const l = clampLogRatio(hL, ratioClamp);
    return negLogSigmoid(tf.mul(tf.sub(w, l), beta)) as tf.Tensor1D;
  });
}

/**
 * rdpo per pair: -log sigmoid(beta (h_w - h_l) - lambda max(0, h_l)). [P]
 * The penalty is exactly 0 when h_l <= 0 (relu), so L = log 2 at h_w = h_l = 0.
 */
export function rdpoLoss(hW: tf.Tensor1D, hL: tf.Tensor1D, beta: number, lambda: number): tf.Tensor1D {
  validateLossConfig({ kind: "rdpo", beta, lambda, ratioClamp: 0 });
  requirePairs(hW, hL);
  return tf.tidy(() => {
    const margin = tf.mul(tf.sub(hW, hL), beta);
    return negLogSigmoid(tf.sub(margin, tf.mul(tf.relu(hL), lambda))) as tf.Tensor1D;
  });
}

/** dpo or rdpo per pair from log-ratios, by config. [P] */
export function preferenceLoss(hW: tf.Tensor1D, hL: tf.Tensor1D, config: LossConfig): tf.Tensor1D {
  validateLossConfig(config);
  switch (config.kind) {
    case "dpo":
      return dpoLoss(hW, hL, config.beta, config.ratioClamp);
    case "rdpo":
      return rdpoLoss(hW, hL, config.beta, config.lambda);
    case "diffusion_dpo":
      throw new InvalidArgumentError(
        "loss.kind",
        "diffusion_dpo works on noise predictions, not log-ratios: use diffusionDpoLoss",
      );
  }
}

/** Inputs of diffusion_dpo, all [P, C, H, W]: one shared noise target and the four predictions. */
export interface DiffusionDpoInputs {
  /** eps that noised both images (same t and noise for the pair). */
  noise: tf.Tensor;
  policyWinner: tf.Tensor;
  referenceWinner: tf.Tensor;
  policyLoser: tf.Tensor;
  referenceLoser: tf.Tensor;
}

export interface DiffusionDpoResult {
  /** Loss per pair, [P]. */
  loss: tf.Tensor1D;
  /**
   * Implicit log-ratios h = -(e^theta - e^ref) / 2, so that the loss is -log sigmoid(beta_d (h_w - h_l))
   * like dpo's, and pair metrics (accuracy h_w > h_l) read the same. [P] each.
   */
  logRatioWinner: tf.Tensor1D;
  logRatioLoser: tf.Tensor1D;
}

/** diffusion_dpo per pair (RDPO_SPEC.md section 5, Wallace et al.). */
export function diffusionDpoLoss(inputs: DiffusionDpoInputs, beta: number): DiffusionDpoResult {
  validateLossConfig({ kind: "diffusion_dpo", beta, lambda: 0, ratioClamp: 0 });
  const { noise, policyWinner, referenceWinner, policyLoser, referenceLoser } = inputs;
  requireBatched(noise, "noise");
  requireSameShape(policyWinner, noise, "policy_winner", "noise");
  requireSameShape(referenceWinner, noise, "reference_winner", "noise");
  requireSameShape(policyLoser, noise, "policy_loser", "noise");
  requireSameShape(referenceLoser, noise, "reference_loser", "noise");
  return tf.tidy(() => {
    const axes = Array.from({ length: noise.rank - 1 }, (_, i) => i + 1);
    const target = stopGradient(noise);
    const err = (pred: tf.Tensor) => tf.mean(tf.square(tf.sub(target, pred)), axes);
    const hW = tf.mul(tf.sub(err(policyWinner), err(stopGradient(referenceWinner))), -0.5) as tf.Tensor1D;
    const hL = tf.mul(tf.sub(err(policyLoser), err(stopGradient(referenceLoser))), -0.5) as tf.Tensor1D;
    const loss = negLogSigmoid(tf.mul(tf.sub(hW, hL), beta)) as tf.Tensor1D;
    return { loss, logRatioWinner: hW, logRatioLoser: hL };
  });
}

/** The batch loss: the mean of the per-pair losses (RDPO_SPEC.md section 5). */
export function batchLoss(perPair: tf.Tensor1D): tf.Scalar {
  if (perPair.rank !== 1 || perPair.shape[0] === 0) {
    throw new InvalidArgumentError(
      "pairs",
      `expected at least one pair, got shape [${perPair.shape.join(", ")}]`,
    );
  }
  return tf.mean(perPair) as tf.Scalar;
}
