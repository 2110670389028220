/**
 * The run config and metrics as protobuf messages for the calls the loop makes (StepConfig,
 * LossConfig, OptimizerConfig) and the events the trainer service streams (ProgressEvent). Messages
 * only: no service definitions, no grpc-js.
 */
import { create } from "@bufbuild/protobuf";
import {
  type LossConfig,
  LossConfigSchema,
  LossKind,
  type OptimizerConfig,
  OptimizerConfigSchema,
  Reduction,
  Sampler,
  type StepConfig,
  StepConfigSchema,
} from "../../gen/rdpo/v1/policy_pb.ts";
import { type ProgressEvent, ProgressEventSchema, RunState } from "../../gen/rdpo/v1/trainer_pb.ts";
import type { RunConfig } from "./config.ts";
import type { MetricsRecord } from "./metrics.ts";

const SAMPLERS = { ddim: Sampler.DDIM, ddpm: Sampler.DDPM } as const;
const REDUCTIONS = { mean: Reduction.MEAN, sum: Reduction.SUM } as const;
const LOSS_KINDS = { dpo: LossKind.DPO, rdpo: LossKind.RDPO, diffusion_dpo: LossKind.DIFFUSION_DPO } as const;

/** How to step (sampling, log-ratios and training must agree on it). */
export function stepConfigMessage(config: RunConfig): StepConfig {
  const s = config.sampling;
  return create(StepConfigSchema, {
    sampler: SAMPLERS[s.sampler],
    numInferenceSteps: s.num_inference_steps,
    eta: s.eta,
    guidanceScale: s.guidance_scale,
    reduction: REDUCTIONS[s.reduction],
  });
}

/** The loss of TrainStep (RDPO_SPEC.md section 5); lambda and ratio_clamp only where they apply. */
export function lossConfigMessage(config: RunConfig): LossConfig {
  const l = config.loss;
  return create(LossConfigSchema, {
    kind: LOSS_KINDS[l.kind],
    beta: l.beta,
    lambda: l.kind === "rdpo" ? l.lambda : 0,
    ratioClamp: l.kind === "dpo" ? l.ratio_clamp : 0,
  });
}

export function optimizerConfigMessage(config: RunConfig): OptimizerConfig {
  const o = config.optimizer;
  return create(OptimizerConfigSchema, {
    learningRate: o.lr,
    beta1: o.betas[0],
    beta2: o.betas[1],
    epsilon: o.eps,
    weightDecay: o.weight_decay,
    maxGradNorm: o.max_grad_norm,
  });
}

export interface ProgressContext {
  runId: string;
  totalSteps: number;
  state?: RunState;
  etaSeconds?: number;
  message?: string;
}

const finite = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : 0);

/** A metrics record as a ProgressEvent (step records fill the step fields, eval records eval_rewards). */
export function progressEventMessage(record: MetricsRecord, ctx: ProgressContext): ProgressEvent {
  const base = {
    runId: ctx.runId,
    step: BigInt(record.step),
    totalSteps: BigInt(ctx.totalSteps),
    state: ctx.state ?? RunState.RUNNING,
    etaSeconds: finite(ctx.etaSeconds),
    message: ctx.message ?? "",
  };
  if (record.type === "eval") {
    return create(ProgressEventSchema, {
      ...base,
      evalRewards: Object.fromEntries(
        Object.entries(record.rewards).map(([name, s]) => [name, finite(s.mean)]),
      ),
      message: ctx.message ?? `evaluation of ${record.model}`,
    });
  }
  return create(ProgressEventSchema, {
    ...base,
    loss: finite(record.loss),
    meanLogRatioWinner: finite(record.h_w),
    meanLogRatioLoser: finite(record.h_l),
    accuracy: finite(record.accuracy),
    rewardMargin: finite(record.reward_margin),
    skippedTies: record.skipped_ties,
    meanReward: finite(record.mean_reward),
    stepSeconds: finite(record.step_seconds),
    wireMs: finite(record.wire_ms),
  });
}
