/**
 * `report_to: tensorboard` (issue 16): the run's metrics as TensorBoard event files in
 * <run_dir>/tensorboard, written as the run goes (point `tensorboard --logdir runs` at it):
 *
 *   train/loss, train/h_w, train/h_l, train/accuracy, train/reward, train/margin, train/grad_norm
 *   time/step_seconds, time/wire_ms, time/<phase>_ms         step timings
 *   eval/<model>/<scorer>, eval/<model>/<scorer>_std           evaluation rewards
 *   samples/before_after                                       the report's sample grid (image)
 *
 * Every writer (each start or resume) opens its own file and begins with a SessionLog START at its
 * first step, so TensorBoard drops what an interrupted run logged past its last checkpoint.
 *
 * h_w / h_l are the RDPO loss terms of RDPO_SPEC.md section 4 as metrics.ts records them.
 */
import { join } from "node:path";
import { EventFileWriter } from "../../../lib/tensorboard/event_file.ts";
import type { ReportTarget } from "../config.ts";
import type { MetricsRecord } from "../metrics.ts";

export const TENSORBOARD_DIR = "tensorboard";
export const GRID_TAG = "samples/before_after";

/** The scalars of one metrics record, by tag. */
export function scalarsOf(record: MetricsRecord): Record<string, number> {
  if (record.type === "eval") {
    const out: Record<string, number> = {};
    for (const [scorer, stats] of Object.entries(record.rewards)) {
      out[`eval/${record.model}/${scorer}`] = stats.mean;
      out[`eval/${record.model}/${scorer}_std`] = stats.std;
    }
    if (record.seconds !== undefined) out[`time/eval_${record.model}_seconds`] = record.seconds;
    return out;
  }
  const out: Record<string, number> = {
    "train/loss": record.loss,
    "train/h_w": record.h_w,
    "train/h_l": record.h_l,
    "train/accuracy": record.accuracy,
    "train/reward": record.mean_reward,
    "train/margin": record.reward_margin,
    "time/step_seconds": record.step_seconds,
    "time/wire_ms": record.wire_ms,
  };
  if (record.grad_norm !== undefined) out["train/grad_norm"] = record.grad_norm;
  for (const [phase, ms] of Object.entries(record.phases ?? {})) out[`time/${phase}_ms`] = ms;
  return out;
}

/** Where a run's metrics also go besides metrics.jsonl; a no-op for report_to: none. */
export interface MetricsSink {
  record(record: MetricsRecord): Promise<void>;
  /** The before/after sample grid (a PNG) at `step`. */
  grid(step: number, png: Uint8Array): Promise<void>;
  /** The run (re)starts logging at `step` (after a resume: the checkpoint's step + 1). */
  start(step: number): Promise<void>;
  close(): Promise<void>;
}

const NO_SINK: MetricsSink = {
  record: async () => {},
  grid: async () => {},
  start: async () => {},
  close: async () => {},
};

/** The sink of `target` for the run folder `runDir`. */
export async function openMetricsSink(target: ReportTarget, runDir: string): Promise<MetricsSink> {
  if (target !== "tensorboard") return NO_SINK;
  const writer = await EventFileWriter.open(join(runDir, TENSORBOARD_DIR));
  return {
    record: (record) => {
      const wallTime = Date.parse(record.time) / 1000;
      return writer.scalars(record.step, scalarsOf(record), Number.isFinite(wallTime) ? wallTime : undefined);
    },
    grid: (step, png) => writer.image(step, GRID_TAG, png),
    start: (step) => writer.sessionStart(step),
    close: () => writer.close(),
  };
}
