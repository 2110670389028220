import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { assertEquals } from "../../lib/testing/assert.ts";
import { LossKind, Reduction, Sampler, StepConfigSchema } from "../../gen/rdpo/v1/policy_pb.ts";
import { RunState } from "../../gen/rdpo/v1/trainer_pb.ts";
import { parseConfig } from "./config.ts";
import {
  lossConfigMessage,
  optimizerConfigMessage,
  progressEventMessage,
  stepConfigMessage,
} from "./messages.ts";

const SCORERS = "scorers: [{name: aesthetic}]\n";

Deno.test("messages: step config carries sampler, T, eta, guidance and reduction", () => {
  const m = stepConfigMessage(
    parseConfig(SCORERS + "sampling: {sampler: ddim, eta: 0.5, guidance_scale: 7.5, reduction: sum}"),
  );
  assertEquals(
    [m.sampler, m.numInferenceSteps, m.eta, m.guidanceScale, m.reduction],
    [Sampler.DDIM, 20, 0.5, 7.5, Reduction.SUM],
  );
  const back = fromBinary(StepConfigSchema, toBinary(StepConfigSchema, m));
  assertEquals(back.eta, 0.5);
});

Deno.test("messages: loss config per method; unused options are zero on the wire", () => {
  const rdpo = lossConfigMessage(parseConfig(SCORERS));
  assertEquals([rdpo.kind, rdpo.beta, rdpo.lambda, rdpo.ratioClamp], [LossKind.RDPO, 0.1, 100, 0]);
  const d3po = lossConfigMessage(parseConfig(SCORERS + "method: d3po"));
  assertEquals([d3po.kind, d3po.lambda, d3po.ratioClamp], [LossKind.DPO, 0, 0.1]);
  const star = lossConfigMessage(parseConfig(SCORERS + "method: rdpo_star"));
  assertEquals([star.kind, star.lambda], [LossKind.RDPO, 0]);
});

Deno.test("messages: optimizer config", () => {
  const o = optimizerConfigMessage(
    parseConfig(SCORERS + "optimizer: {lr: 1e-4, betas: [0.8, 0.99], max_grad_norm: 0}"),
  );
  assertEquals(
    [o.learningRate, o.beta1, o.beta2, o.epsilon, o.weightDecay, o.maxGradNorm],
    [1e-4, 0.8, 0.99, 1e-8, 1e-4, 0],
  );
});

Deno.test("messages: progress events from step and eval records (NaN -> 0)", () => {
  const step = progressEventMessage({
    type: "step",
    step: 7,
    time: "",
    loss: NaN,
    h_w: 0.01,
    h_l: -0.002,
    accuracy: 0.75,
    reward_margin: 0.3,
    pairs: 4,
    skipped_ties: 1,
    mean_reward: 5.5,
    step_seconds: 3,
    wire_ms: 12,
    phases: {},
  }, { runId: "r1", totalSteps: 100, etaSeconds: 279 });
  assertEquals(
    [
      step.runId,
      step.step,
      step.totalSteps,
      step.state,
      step.loss,
      step.meanLogRatioLoser,
      step.skippedTies,
      step.etaSeconds,
    ],
    ["r1", 7n, 100n, RunState.RUNNING, 0, -0.002, 1, 279],
  );
  const ev = progressEventMessage(
    {
      type: "eval",
      step: 10,
      time: "",
      model: "policy",
      rewards: { aesthetic: { mean: 6.1, std: 0.2, count: 5 } },
    },
    { runId: "r1", totalSteps: 100 },
  );
  assertEquals(ev.evalRewards, { aesthetic: 6.1 });
  assertEquals(ev.message, "evaluation of policy");
});
