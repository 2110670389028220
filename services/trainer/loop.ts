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
 * Every sample is a function of (seed, step), so a step can be replayed exactly: when the policy
 * service restarts (new instance id, adapter lost), the run reloads the last checkpoint into it and
 * replays the steps since, which gives bit-identically the adapter an uninterrupted run has.
 */
import { FailedPreconditionError } from "../../lib/errors.ts";
import { canonicalConfigJson, type RunConfig, totalSteps } from "./config.ts";
import { loadLatestCheckpoint } from "./checkpoint.ts";
import { beforeAfterGrid, evaluateModel } from "./evaluate.ts";
import { stepConfigMessage } from "./messages.ts";
import {
  appendMetrics,
  type MetricsRecord,
  readMetrics,
  type StepMetrics,
  truncateMetrics,
} from "./metrics.ts";
import { ProgressReporter } from "./progress.ts";
import { loadPromptSets, PromptBatcher, type PromptCursor } from "./prompts.ts";
import { join } from "node:path";
import { buildReport } from "./report/build.ts";
import { openMetricsSink } from "./report/tensorboard.ts";
import { openRun } from "./run_dir.ts";
import { connectServices, wireByRpc } from "./services.ts";
import { collectPairs, type PolicyStamp, type TransitionPair } from "./trajectory.ts";
import { DataParallel } from "./data_parallel_step.ts";
import { isDataParallel } from "./replicas.ts";
import { restoreAdapter } from "./adapter_restore.ts";
import { trainOnPairs } from "./pair_train_step.ts";
import { AdapterLostError, isPolicyRestart, resumeNote } from "./policy_restart.ts";
import { checkpoint } from "./run_checkpoint.ts";
import { startPosition } from "./run_position.ts";
import {
  endsEpoch,
  epochSettings,
  epochStart,
  isPerBatch,
  meanOfUpdates,
  runEpochUpdates,
  type UpdateMetrics,
  updateMetrics,
} from "./epoch.ts";
import { phaseSpan, StepTrace } from "../../lib/telemetry/rdpo.ts";

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
  let dp: DataParallel | null = null;
  const sink = await openMetricsSink(config.report_to, run.paths.root);
  try {
    const info = await services.call("get_info", (o) => services.policy.getInfo({}, o));
    const latentShape = info.latentShape.map(Number);
    // Single-candidate steps ride in the next SampleCandidates call where the policy serves that.
    const leadSteps = info.sampleLeadSteps && (options.sampleLeadSteps ?? true);
    if (info.loraRank !== config.lora.rank) {
      throw new FailedPreconditionError(
        `lora.rank: the policy serves rank ${info.loraRank}, the config asks for ${config.lora.rank} (start it with --lora-rank ${config.lora.rank})`,
      );
    }
    // Several policy replicas: sharded sampling, reduced gradients, one update on all (issue 18).
    if (isDataParallel(config.services.policy)) dp = await DataParallel.open(config, services);
    const prompts = await loadPromptSets(config.prompts);
    const total = totalSteps(config, prompts.train.length);
    const reporter = new ProgressReporter({ total, mode: options.progress ?? config.progress });
    const say = options.log ?? ((line: string) => reporter.message(line));
    const evalPrompts = prompts.eval.slice(0, config.eval.max_prompts ?? prompts.eval.length);

    // Where the run starts: the checkpoint openRun found, or step 0 with a fresh adapter.
    let instanceId = info.instanceId;
    let ckpt = run.checkpoint;
    const restoreAll = () =>
      dp ? dp.restore((s) => restoreAdapter(s, config, ckpt)) : restoreAdapter(services, config, ckpt);
    let expectedChecksum = await restoreAll();
    const batcherAt = (cursor: PromptCursor) =>
      new PromptBatcher(prompts.train, {
        batchSize: config.training.prompt_batch_size,
        shuffle: config.prompts.shuffle,
        seed: config.prompts.shuffle_seed,
        cursor,
      });
    let pos = startPosition(ckpt);
    let batcher = batcherAt(pos.cursor);
    if (ckpt && pos.step < ckpt.state.step) await truncateMetrics(run.paths.metrics, pos.step);
    // The event files are cut where metrics.jsonl was (openRun: at the checkpoint's step, or all of
    // it without one): TensorBoard drops earlier events from the START step on.
    await sink.start(ckpt ? pos.step + 1 : 0);
    const epochs = epochSettings(config);
    // Pairs sampled in the current epoch, not yet trained on, and where the epoch began.
    let pending: TransitionPair[] = [];
    let epochBegin = { step: pos.step, cursor: pos.cursor };
    say(
      `run ${run.paths.root}: ${config.method}, ${total} steps, ${prompts.train.length} train / ${evalPrompts.length} eval prompts` +
        (ckpt ? `, resumed at step ${pos.step}` : "") + (dp ? `, ${dp.size} policy replicas` : ""),
    );
    if (ckpt) say(resumeNote(ckpt, dp?.size ?? 0));

    const evalCtx = { config, services };
    const evaluate = async (step: number, models: ("base" | "policy")[]) => {
      for (const model of models) {
        const { record } = await evaluateModel(evalCtx, model, evalPrompts, step);
        await appendMetrics(run.paths.metrics, record);
        await sink.record(record);
        options.onRecord?.(record, 0);
        say(
          `eval step ${step} ${model}: ` +
            Object.entries(record.rewards).map(([k, v]) => `${k} ${v.mean.toFixed(4)} ± ${v.std.toFixed(4)}`)
              .join(", "),
        );
      }
    };
    if (!options.skipEvaluation && config.eval.at_start && pos.step === 0) {
      await evaluate(0, ["base", "policy"]);
    }

    const seed = BigInt(config.seed);
    const step = stepConfigMessage(config);
    let recoveries = 0;
    let wireTotal = 0;
    let wireSteps = 0;
    const stopRequested = () =>
      options.signal?.aborted || (options.stopAtStep !== undefined && pos.step >= options.stopAtStep);
    while (pos.step < total && !stopRequested()) {
      const t0 = performance.now();
      services.clock.take();
      // The step's span: every RPC of the step (checkpoint included) runs under it.
      const stepTrace = new StepTrace(pos.step + 1, config.method);
      try {
        // A restarted policy lost its adapter: put the last checkpoint back and replay from there.
        // One address: every SampleCandidates response carries the policy's state, checked as it
        // arrives (checkPolicy), so the step asks no GetInfo (issue 21); the step's samples are
        // thrown away with the replay.
        if (dp) await stepTrace.run(() => dp!.check(pos.optimizerStep, expectedChecksum));
        const checkPolicy = (now: PolicyStamp) => {
          if (
            now.instanceId !== instanceId || Number(now.optimizerStep) !== pos.optimizerStep ||
            now.adapterChecksum !== expectedChecksum
          ) {
            throw new AdapterLostError(
              `the policy (instance ${
                now.instanceId.slice(0, 8)
              }) is at optimizer step ${now.optimizerStep}, the run at ${pos.optimizerStep}`,
            );
          }
        };
        const batch = batcher.next();
        stepTrace.setPromptBatch(batch.prompts.length);
        const requestId = `${run.configHash.slice(0, 12)}-step-${pos.step}`;
        const parallel = dp
          ? await stepTrace.run(() =>
            dp!.step(
              { latentShape, step, trainOnPairs },
              batch.prompts,
              seed,
              BigInt(pos.step) << 32n,
              pos.step,
              pos.optimizerStep,
              requestId,
            )
          )
          : null;
        const collected = parallel?.collected ?? await stepTrace.run(() =>
          collectPairs(
            { config, services, latentShape, step, checkPolicy, leadSteps },
            batch.prompts,
            seed,
            BigInt(pos.step) << 32n,
          )
        );
        const phases = collected.phases;
        if (pos.step === epochStart(pos.step, epochs)) {
          pending = [];
          epochBegin = { step: pos.step, cursor: pos.cursor };
        }
        // Data-parallel steps sample and train on the replicas (data_parallel_step.ts, per batch only).
        if (!parallel) pending.push(...collected.pairs);
        // The epoch's updates once its last batch is in (epoch.ts; per batch by default).
        let trained:
          | Pick<
            Awaited<ReturnType<typeof trainOnPairs>>,
            | "loss"
            | "meanLogRatioWinner"
            | "meanLogRatioLoser"
            | "accuracy"
            | "gradNorm"
            | "optimizerStep"
            | "adapterChecksum"
          >
          | null = parallel?.trained ?? null;
        if (trained) expectedChecksum = trained.adapterChecksum;
        const updates: UpdateMetrics[] = [];
        if (parallel?.trained) updates.push(updateMetrics(parallel.trained, collected.pairs.length));
        if (!parallel && endsEpoch(pos.step + 1, epochs, total) && pending.length > 0) {
          const t1 = performance.now();
          const responses = await stepTrace.run(() =>
            phaseSpan("train", () =>
              runEpochUpdates(
                pending,
                epochs,
                config.seed,
                Math.floor(pos.step / epochs.sampleBatchesPerEpoch),
                pos.optimizerStep,
                (pairs, k, expected) =>
                  trainOnPairs(
                    services,
                    config,
                    pairs,
                    latentShape,
                    expected,
                    k ? `${requestId}-u${k}` : requestId,
                  )
                    .then((r) => {
                      // Trained by another instance than sampled (restart in between): replay.
                      if (r.instanceId !== instanceId) {
                        throw new AdapterLostError(
                          `TrainStep answered by policy instance ${r.instanceId.slice(0, 8)}, not ${
                            instanceId.slice(0, 8)
                          }`,
                        );
                      }
                      updates.push(updateMetrics(r, pairs.length));
                      return r;
                    }),
              ))
          );
          phases.train = performance.now() - t1;
          trained = responses.at(-1) ?? null;
          if (trained) expectedChecksum = trained.adapterChecksum;
          pending = [];
        }
        const summary = meanOfUpdates(updates);
        const clock = services.clock.take();
        pos = {
          step: pos.step + 1,
          cursor: batch.next,
          optimizerStep: trained ? Number(trained.optimizerStep) : pos.optimizerStep,
        };
        const margins = collected.pairs.map((p) => p.margin);
        const record: StepMetrics = {
          type: "step",
          step: pos.step,
          time: new Date().toISOString(),
          loss: summary?.loss ?? 0,
          h_w: summary?.h_w ?? 0,
          h_l: summary?.h_l ?? 0,
          accuracy: summary?.accuracy ?? 0,
          reward_margin: margins.length ? margins.reduce((a, b) => a + b, 0) / margins.length : 0,
          pairs: collected.pairs.length,
          skipped_ties: collected.skippedTies,
          mean_reward: collected.finalRewards.reduce((a, b) => a + b, 0) / collected.finalRewards.length,
          step_seconds: (performance.now() - t0) / 1000,
          wire_ms: clock.wireMs,
          rpcs: clock.calls,
          wire_bytes_sent: clock.bytesSent,
          wire_bytes_received: clock.bytesReceived,
          wire_by_rpc: wireByRpc(clock.byRpc),
          phases,
          grad_norm: summary?.grad_norm,
          optimizer_step: pos.optimizerStep,
          ...(parallel ? { gradient_bytes: parallel.gradientBytes } : {}),
          ...(isPerBatch(epochs) ? {} : { updates }),
        };
        wireTotal += clock.wireMs;
        wireSteps += 1;
        await appendMetrics(run.paths.metrics, record);
        await sink.record(record);
        reporter.step({
          step: pos.step,
          loss: record.loss,
          h_w: record.h_w,
          h_l: record.h_l,
          accuracy: record.accuracy,
          mean_reward: record.mean_reward,
          reward_margin: record.reward_margin,
          skipped_ties: record.skipped_ties,
          step_seconds: record.step_seconds,
        });
        options.onRecord?.(record, total);
        if (pos.step % config.checkpoint.every === 0 || pos.step === total || stopRequested()) {
          await stepTrace.run(() =>
            checkpoint(
              services,
              config,
              run.paths.root,
              run.configHash,
              pos,
              { last: record, ...(dp ? { data_parallel: { replicas: dp.size } } : {}) },
              expectedChecksum,
              endsEpoch(pos.step, epochs, total) ? undefined : epochBegin,
            )
          );
        }
        stepTrace.finish({
          pairs: record.pairs,
          skippedTies: record.skipped_ties,
          rewardMargin: record.reward_margin,
          phases,
        });
        if (
          !options.skipEvaluation && config.eval.every > 0 && pos.step % config.eval.every === 0 &&
          pos.step < total
        ) {
          await evaluate(pos.step, ["policy"]);
        }
      } catch (e) {
        stepTrace.fail(e);
        // Data-parallel: a restart is a replica with a new instance id (asked, not guessed from e).
        if (!(dp ? await dp.restarted(e) : isPolicyRestart(e))) throw e;
        // Exact step accounting after a policy restart: back to the last checkpoint, replay.
        recoveries += 1;
        if (recoveries > 10) throw e;
        ckpt = await loadLatestCheckpoint(run.paths.root, { configHash: run.configHash, onFallback: log });
        expectedChecksum = await restoreAll();
        instanceId = (await services.call("get_info", (o) => services.policy.getInfo({}, o))).instanceId;
        const from = pos.step;
        pos = startPosition(ckpt);
        batcher = batcherAt(pos.cursor);
        pending = [];
        await truncateMetrics(run.paths.metrics, pos.step);
        await sink.start(pos.step + 1);
        say(
          `policy service restarted (${
            (e as Error).message
          }); replaying from step ${pos.step} (was at ${from})`,
        );
      }
    }
    reporter.finish();

    let reportPath: string | null = null;
    const finished = pos.step >= total;
    if (finished && !options.skipEvaluation) {
      if (config.eval.at_end) {
        await evaluate(pos.step, config.eval.at_start ? ["policy"] : ["base", "policy"]);
      }
      const grid = await beforeAfterGrid(evalCtx, evalPrompts.slice(0, config.report.grid_prompts));
      const records: MetricsRecord[] = await readMetrics(run.paths.metrics);
      const built = await buildReport(run.paths.root, {
        title: `${config.method} — ${run.paths.root}`,
        configText: JSON.stringify(JSON.parse(canonicalConfigJson(config)), null, 2),
        configHash: run.configHash,
        summary: [
          ["method", config.method],
          ["steps", pos.step],
          ["optimizer steps", pos.optimizerStep],
          ["mean wire ms per step", wireSteps ? (wireTotal / wireSteps).toFixed(2) : "n/a"],
        ],
        grid,
        records,
      });
      reportPath = built.html;
      const gridFile = built.files.find((f) => f.endsWith("grid.png"));
      if (gridFile) await sink.grid(pos.step, await Deno.readFile(join(run.paths.root, gridFile)));
      say(`report: ${reportPath}`);
    }
    return {
      runDir: run.paths.root,
      steps: pos.step,
      optimizerStep: pos.optimizerStep,
      adapterChecksum: expectedChecksum,
      reportPath,
      meanWireMs: wireSteps ? wireTotal / wireSteps : 0,
      recoveries,
      replicas: dp?.size ?? 0,
    };
  } finally {
    dp?.close();
    services.close();
    await sink.close();
  }
}
