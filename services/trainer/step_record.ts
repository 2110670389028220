/** A training step's metrics record (metrics.jsonl's "step" line) and its progress-bar view. */
import type { UpdateMetrics } from "./epoch.ts";
import type { StepMetrics } from "./metrics.ts";
import type { StepProgress } from "./progress.ts";
import { type CallTotals, wireByRpc } from "./services.ts";
import type { CollectedBatch } from "./trajectory.ts";

export interface StepRecordInput {
  /** The step's number (1-based) and the optimizer step after it. */
  step: number;
  optimizerStep: number;
  collected: CollectedBatch;
  /** Means over the step's updates (epoch.ts meanOfUpdates); null: no update this step. */
  summary: Omit<UpdateMetrics, "pairs"> | null;
  /** The step's RPCs (CallClock.take()). */
  clock: CallTotals;
  seconds: number;
  /** Data-parallel steps: gradient bytes on the wire. */
  gradientBytes?: number;
  /** The epoch's updates, one per optimizer step (left out in the per-batch structure). */
  updates?: UpdateMetrics[];
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export function stepRecord(r: StepRecordInput): StepMetrics {
  const { collected, summary, clock } = r;
  const margins = collected.pairs.map((p) => p.margin);
  return {
    type: "step",
    step: r.step,
    time: new Date().toISOString(),
    loss: summary?.loss ?? 0,
    h_w: summary?.h_w ?? 0,
    h_l: summary?.h_l ?? 0,
    accuracy: summary?.accuracy ?? 0,
    reward_margin: margins.length ? mean(margins) : 0,
    pairs: collected.pairs.length,
    skipped_ties: collected.skippedTies,
    mean_reward: mean(collected.finalRewards),
    step_seconds: r.seconds,
    wire_ms: clock.wireMs,
    rpcs: clock.calls,
    wire_bytes_sent: clock.bytesSent,
    wire_bytes_received: clock.bytesReceived,
    rpcs_by_stream: clock.streamCalls,
    rpcs_unary: clock.unaryCalls,
    wire_by_rpc: wireByRpc(clock.byRpc),
    phases: collected.phases,
    grad_norm: summary?.grad_norm,
    optimizer_step: r.optimizerStep,
    ...(r.gradientBytes !== undefined ? { gradient_bytes: r.gradientBytes } : {}),
    ...(r.updates ? { updates: r.updates } : {}),
  };
}

/** What the progress reporter shows of a step. */
export function stepProgress(record: StepMetrics): StepProgress {
  return {
    step: record.step,
    loss: record.loss,
    h_w: record.h_w,
    h_l: record.h_l,
    accuracy: record.accuracy,
    mean_reward: record.mean_reward,
    reward_margin: record.reward_margin,
    skipped_ties: record.skipped_ties,
    step_seconds: record.step_seconds,
  };
}
