import { encodeTensor } from "../../lib/tensor/codec.ts";
import type { RunConfig } from "./config.ts";
import { lossConfigMessage, optimizerConfigMessage, stepConfigMessage } from "./messages.ts";
import type { TrainerServices } from "./services.ts";
import type { TransitionPair } from "./trajectory.ts";

/** One TrainStep on the collected pairs; returns the response (with `returnGradients`: unapplied). */
export async function trainOnPairs(
  services: TrainerServices,
  config: RunConfig,
  pairs: TransitionPair[],
  latentShape: readonly number[],
  expectedOptimizerStep: number,
  requestId: string,
  returnGradients = false,
) {
  const [c, h, w] = latentShape;
  const d = c * h * w;
  const p = pairs.length;
  const pack = (pick: (x: TransitionPair) => Float32Array) => {
    const out = new Float32Array(p * d);
    pairs.forEach((x, i) => out.set(pick(x), i * d));
    return encodeTensor(out, [p, c, h, w]);
  };
  const side = (parent: (x: TransitionPair) => Float32Array, next: (x: TransitionPair) => Float32Array) => ({
    conditioning: { prompts: pairs.map((x) => x.prompt) },
    latents: pack(parent),
    nextLatents: pack(next),
    stepIndices: pairs.map((x) => x.stepIndex),
  });
  return await services.call("train_step", (o) =>
    services.policy.trainStep({
      winners: side((x) => x.winnerParent, (x) => x.winnerNext),
      losers: side((x) => x.loserParent, (x) => x.loserNext),
      step: stepConfigMessage(config),
      loss: lossConfigMessage(config),
      optimizer: optimizerConfigMessage(config),
      expectedOptimizerStep: BigInt(expectedOptimizerStep),
      requestId,
      returnGradients,
    }, o));
}
