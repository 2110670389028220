/**
 * Step-wise RDPO, the paper's Algorithm 1, against remote policy and reward services
 * (RDPO_SPEC.md). `train` reads top to bottom:
 *
 *   open the run folder (resume from its last checkpoint, or start the adapter fresh)
 *   for each prompt batch:
 *     sample trajectories from seeded noise, K candidates at fine-tune steps, rank them by the
 *     step reward, record (winner, loser) pairs, continue from the winner        (trajectory.ts)
 *     one TrainStep on the pairs, with exact optimizer-step accounting
 *     metrics, progress, checkpoints, evaluations
 *   final evaluation, sample grid, HTML report
 *
 * The loop's state and its body live in training_loop.ts (TrainingLoop: start, step, recover,
 * finish); this function is the order they run in.
 *
 * Every sample is a function of (seed, step), so a step can be replayed exactly: when the policy
 * service restarts (new instance id, adapter lost), the run reloads the last checkpoint into it and
 * replays the steps since, which gives bit-identically the adapter an uninterrupted run has.
 */
import type { RunConfig } from "./config.ts";
import type { MetricsRecord } from "./metrics.ts";
import { openMetricsSink } from "./report/tensorboard.ts";
import { openRun } from "./run_dir.ts";
import { connectServices } from "./services.ts";
import { trainOnPairs } from "./pair_train_step.ts";
import { resumeNote } from "./policy_restart.ts";
import { TrainingLoop } from "./training_loop.ts";
import { StepTrace } from "../../lib/telemetry/rdpo.ts";

export interface TrainOptions {
  resume?: boolean;
  force?: boolean;
  /** Stop (after checkpointing) once this many steps are done in total: tests simulate a crash. */
  stopAtStep?: number;
  /** Lines for humans (default: the progress reporter's message). */
  log?: (line: string) => void;
  progress?: "auto" | "bar" | "lines" | "none";
  /** Skip evaluations and the report (tests of the training path alone). */
  skipEvaluation?: boolean;
  /** Stops the run after the current step (with a checkpoint). */
  signal?: AbortSignal;
  /**
   * Run the single-candidate steps between two choice points in the SampleCandidates call of the
   * step after them (issue 21; default: whenever the policy's GetInfo says it serves lead_steps).
   * false: one call per inference step, the old path (the wire bench's baseline).
   */
  sampleLeadSteps?: boolean;
  /** Called with every metrics record as it is written (progress streaming). */
  onRecord?: (record: MetricsRecord, total: number) => void;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  optimizerStep: number;
  adapterChecksum: string;
  reportPath: string | null;
  /** Mean wire milliseconds per training step (RPC wall time minus server compute). */
  meanWireMs: number;
  recoveries: number;
  /** Policy replicas of a data-parallel run (services.policy a list or DNS name); 0 for one address. */
  replicas: number;
}

export { trainOnPairs };
export { CheckpointWriteError } from "./run_checkpoint.ts";
export { resumeNote };

/** Runs (or resumes) a training run; see the file comment. */
export async function train(config: RunConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const log = options.log ?? ((line: string) => console.error(line));
  const run = await openRun(config, { resume: options.resume, force: options.force, log });
  const services = connectServices(config, {
    onRetry: (what, attempt, error) =>
      log(`${what}: attempt ${attempt} failed (${(error as Error).message}); retrying`),
  });
  const sink = await openMetricsSink(config.report_to, run.paths.root);
  const loop = new TrainingLoop(config, options, run, services, sink, log);
  try {
    await loop.start();
    await loop.evaluateAtStart();
    while (!loop.stopped) {
      const trace = new StepTrace(loop.nextStep, config.method);
      try {
        await loop.step(trace);
      } catch (e) {
        trace.fail(e);
        await loop.recover(e);
      }
    }
    return await loop.finish();
  } finally {
    loop.close();
    services.close();
    await sink.close();
  }
}
