/** Adapter updates: one optimizer step on a batch of pairs, or on externally averaged gradients. */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { validateLossConfig } from "../../lib/rdpo/losses.ts";
import { enableGradients } from "../../lib/tensor/gradients.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { AdamOptimizer } from "./adam.ts";
import { fromPeftRecord, peftGradients, toPeftRecord } from "./adapter_slot.ts";
import { checksumTensors } from "./checksum.ts";
import type { ApplyGradientsInput, PairResult, TrainStepInput, TrainStepOutput } from "./core_types.ts";
import { prepareDiffusionDpo, preparePreference } from "./pair_losses.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { checkFloatTensor } from "./tensor_checks.ts";
import type { TrainAccounting } from "./train_accounting.ts";
import { checkTransitions } from "./transitions.ts";

export async function trainStep(
  parts: PolicyParts,
  accounting: TrainAccounting,
  input: TrainStepInput,
): Promise<TrainStepOutput> {
  const slot = parts.adapters.require("TrainStep");
  await enableGradients();
  validateLossConfig(input.loss, "loss");
  const cached = accounting.check(parts.adapters, input.expectedOptimizerStep, input.requestId);
  if (cached) return cached;
  const isDiffusionDpo = input.loss.kind === "diffusion_dpo";
  const wi = checkTransitions(parts, input.winners, "winners", input.step, !isDiffusionDpo);
  const li = checkTransitions(parts, input.losers, "losers", input.step, !isDiffusionDpo);
  if (wi.batch !== li.batch || wi.shape.join() !== li.shape.join()) {
    throw new InvalidArgumentError(
      "losers.latents.shape",
      `must equal winners.latents.shape ${JSON.stringify(wi.shape)}`,
    );
  }
  const pairs = wi.batch;
  parts.limits.checkBatch(2 * pairs, "winners + losers");
  const stepBefore = slot.optimizer.step;

  const metrics: { hW?: tf.Tensor; hL?: tf.Tensor; perPair?: tf.Tensor } = {};
  // Everything the loss treats as a constant (reference means, conditioning, noised inputs) is
  // prepared outside the gradient scope and freed only after backpropagation has used it.
  const prepared = isDiffusionDpo
    ? prepareDiffusionDpo(parts.denoiser, input, wi.shape, wi.coeffs)
    : preparePreference(parts.denoiser, input, wi, li);
  let value: tf.Scalar | null = null;
  let grads: Record<string, tf.Tensor> = {};
  try {
    const r = tf.variableGrads(() => prepared.loss(metrics), [...slot.varByPeft.values()]);
    value = r.value;
    grads = r.grads;
    const pg = peftGradients(grads, slot);
    let gradNorm: number;
    let gradients: Map<string, TensorRecord> | null = null;
    if (input.returnGradients) {
      gradNorm = await AdamOptimizer.globalNorm(pg);
      gradients = new Map();
      for (const [k, g] of pg) {
        gradients.set(k, toPeftRecord(k, (await g.data()) as Float32Array, slot));
      }
    } else {
      gradNorm = await slot.optimizer.apply(pg, input.optimizer);
    }
    const hW = await metrics.hW!.data();
    const hL = await metrics.hL!.data();
    const per = await metrics.perPair!.data();
    const lossValue = (await value!.data())[0];
    const pairResults: PairResult[] = [];
    for (let i = 0; i < pairs; i++) {
      pairResults.push({
        logRatioWinner: hW[i],
        logRatioLoser: hL[i],
        loss: per[i],
        correct: hW[i] > hL[i],
      });
    }
    const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / xs.length;
    const result: TrainStepOutput = {
      loss: lossValue,
      meanLogRatioWinner: mean(hW),
      meanLogRatioLoser: mean(hL),
      accuracy: pairResults.filter((p) => p.correct).length / pairs,
      gradNorm,
      optimizerStep: slot.optimizer.step,
      pairs: pairResults,
      gradients,
      adapterChecksum: await checksumTensors(await slot.lora.toPeftTensorsAsync()),
    };
    if (!input.returnGradients) accounting.last = { requestId: input.requestId, stepBefore, result };
    return result;
  } finally {
    value?.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    Object.values(metrics).forEach((t) => t?.dispose());
    prepared.dispose();
  }
}

export async function applyGradients(
  parts: PolicyParts,
  accounting: TrainAccounting,
  input: ApplyGradientsInput,
): Promise<{ optimizerStep: number; adapterChecksum: string; gradNorm: number }> {
  const slot = parts.adapters.require("ApplyGradients");
  const cached = accounting.check(parts.adapters, input.expectedOptimizerStep, input.requestId);
  if (cached) {
    return {
      optimizerStep: cached.optimizerStep,
      adapterChecksum: cached.adapterChecksum,
      gradNorm: cached.gradNorm,
    };
  }
  const grads = new Map<string, tf.Tensor>();
  try {
    for (const [k, g] of input.gradients) {
      checkFloatTensor(g, `gradients.${k}`, g.shape.length);
      const v = slot.varByPeft.get(k);
      grads.set(k, tf.tensor(fromPeftRecord(k, g, slot, `gradients.${k}`), v?.shape));
    }
    const stepBefore = slot.optimizer.step;
    const gradNorm = await slot.optimizer.apply(grads, input.optimizer);
    const adapterChecksum = await checksumTensors(await slot.lora.toPeftTensorsAsync());
    const result: TrainStepOutput = {
      loss: 0,
      meanLogRatioWinner: 0,
      meanLogRatioLoser: 0,
      accuracy: 0,
      gradNorm,
      optimizerStep: slot.optimizer.step,
      pairs: [],
      gradients: null,
      adapterChecksum,
    };
    accounting.last = { requestId: input.requestId, stepBefore, result };
    return { optimizerStep: slot.optimizer.step, adapterChecksum, gradNorm };
  } finally {
    grads.forEach((g) => g.dispose());
  }
}
