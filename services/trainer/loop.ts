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
import type { AdapterState } from "../../gen/rdpo/v1/policy_pb.ts";
import type { NamedTensor } from "../../gen/rdpo/v1/tensor_pb.ts";
import { FailedPreconditionError } from "../../lib/errors.ts";
import { Code } from "../../lib/rpc/status.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { canonicalConfigJson, type RunConfig, totalSteps } from "./config.ts";
import {
  type LoadedCheckpoint,
  loadLatestCheckpoint,
  readLatestPointer,
  writeCheckpoint,
} from "./checkpoint.ts";
import { beforeAfterGrid, evaluateModel } from "./evaluate.ts";
import { lossConfigMessage, optimizerConfigMessage, stepConfigMessage } from "./messages.ts";
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
import { connectServices, type TrainerServices } from "./services.ts";
import { collectPairs, type TransitionPair } from "./trajectory.ts";
import { DataParallel } from "./data_parallel_step.ts";
import { isDataParallel } from "./replicas.ts";
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

/** Where the run stands; a checkpoint stores exactly this (plus the adapter and optimizer). */
interface RunPosition {
  step: number;
  cursor: PromptCursor;
  optimizerStep: number;
}

function fromNamed(list: NamedTensor[], field: string): Map<string, TensorRecord> {
  const out = new Map<string, TensorRecord>();
  list.forEach((nt, i) => {
    const d = decodeFloat32(`${field}[${i}]`, nt.tensor);
    out.set(nt.name, { dtype: "F32", shape: d.shape, data: d.data.slice() });
  });
  return out;
}

function toNamed(
  map: ReadonlyMap<string, TensorRecord>,
): { name: string; tensor: ReturnType<typeof encodeTensor> }[] {
  return [...map].map(([name, t]) => ({ name, tensor: encodeTensor(t.data as Float32Array, t.shape) }));
}

/** Puts the policy's adapter where a checkpoint (or a fresh start) says it is. */
async function restoreAdapter(
  services: TrainerServices,
  config: RunConfig,
  ckpt: LoadedCheckpoint | null,
): Promise<string> {
  if (!ckpt) {
    const fresh = await services.call(
      "load_adapter",
      (o) => services.policy.loadAdapter({ reset: true, seed: BigInt(config.seed) }, o),
    );
    return fresh.checksum;
  }
  const r = await services.call("load_adapter", (o) =>
    services.policy.loadAdapter({
      source: {
        case: "adapter",
        value: {
          weights: toNamed(ckpt.adapter.weights),
          rank: ckpt.adapter.rank,
          alpha: ckpt.adapter.alpha,
          targetModules: ckpt.adapter.targetModules,
          optimizerState: ckpt.optimizer ? toNamed(ckpt.optimizer.state) : [],
          optimizerStep: BigInt(ckpt.optimizer?.step ?? 0),
        } as unknown as AdapterState,
      },
    }, o));
  if (r.checksum !== ckpt.adapter.checksum) {
    throw new FailedPreconditionError(
      `checkpoint ${ckpt.name}: the policy holds adapter ${r.checksum} after loading, the checkpoint recorded ${ckpt.adapter.checksum}`,
    );
  }
  return r.checksum;
}

/** The policy lost or changed the run's adapter (restart): recovered by reload + replay. */
class AdapterLostError extends FailedPreconditionError {
  override name = "AdapterLostError";
}

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

async function checkpoint(
  services: TrainerServices,
  config: RunConfig,
  runDir: string,
  configHash: string,
  pos: RunPosition,
  metrics: Record<string, unknown>,
  expectedChecksum: string,
  /** Mid-epoch: where the epoch began (a resume samples its batches again from there). */
  epochBegin?: { step: number; cursor: PromptCursor },
): Promise<void> {
  const r = await services.call(
    "get_adapter",
    (o) => services.policy.getAdapter({ includeOptimizerState: true }, o),
  );
  const a = r.adapter!;
  if (a.checksum !== expectedChecksum || Number(a.optimizerStep) !== pos.optimizerStep) {
    // Never checkpoint an adapter that is not the run's (e.g. a restarted policy's fresh one).
    throw new AdapterLostError(
      `the policy's adapter (${
        a.checksum.slice(0, 12)
      }, optimizer step ${a.optimizerStep}) is not the run's ` +
        `(${expectedChecksum.slice(0, 12)}, optimizer step ${pos.optimizerStep})`,
    );
  }
  await writeCheckpoint(runDir, {
    state: {
      step: pos.step,
      prompt_cursor: pos.cursor,
      rng: { train_step: pos.step },
      metrics,
      config_hash: configHash,
      ...(epochBegin ? { extra: { epoch_start: epochBegin } } : {}),
    },
    adapter: {
      weights: fromNamed(a.weights, "adapter.weights"),
      rank: a.rank,
      alpha: a.alpha,
      targetModules: a.targetModules,
      checksum: a.checksum,
    },
    optimizer: {
      state: fromNamed(a.optimizerState, "adapter.optimizer_state"),
      step: Number(a.optimizerStep),
    },
    configJson: canonicalConfigJson(config),
  }, { keepLast: config.checkpoint.keep_last }).catch(async (e) => {
    // A full disk or a read-only run folder: writeCheckpoint removed its temporary folder and
    // never touched the previous checkpoint, so the run stops here and can resume from that one.
    const previous = await readLatestPointer(runDir).catch(() => null);
    throw new CheckpointWriteError(
      `checkpoint at step ${pos.step} could not be written to ${runDir}: ${(e as Error).message}. ` +
        (previous
          ? `The previous checkpoint ${previous} is intact: make room (or make the folder writable) and resume.`
          : "No earlier checkpoint exists: make room (or make the folder writable) and start again."),
      { cause: e },
    );
  });
}

/** Writing a checkpoint failed (disk full, read-only folder): the run stops, the last one stays. */
export class CheckpointWriteError extends Error {
  override name = "CheckpointWriteError";
}

/** A TrainStep refused for step accounting, or a lost adapter noticed by the loop. */
function isPolicyRestart(e: unknown): boolean {
  if (e instanceof AdapterLostError) return true;
  return (e as { code?: number })?.code === Code.FAILED_PRECONDITION &&
    String((e as Error).message).includes("expected_optimizer_step");
}

/**
 * Whether a resumed run stays bit-identical to an uninterrupted one: yes when the checkpoint and
 * this run both train data-parallel (any replica counts: sharding and reduction are defined over the
 * global batch, data_parallel.ts), or both with one address; no across the two (one batched
 * TrainStep sums the pairs' gradients in another float order than the per-prompt reduction).
 */
export function resumeNote(ckpt: LoadedCheckpoint, replicas: number): string {
  const before = Number(
    (ckpt.state.metrics as { data_parallel?: { replicas?: number } })?.data_parallel?.replicas ?? 0,
  );
  const mode = (p: number) => (p ? `data-parallel over ${p} replica(s)` : "one policy address");
  if ((before > 0) === (replicas > 0)) {
    return `resume: checkpoint written with ${mode(before)}, resumed with ${
      mode(replicas)
    }: bit-identical to an uninterrupted run`;
  }
  return `resume: checkpoint written with ${mode(before)}, resumed with ${
    mode(replicas)
  }: NOT bit-identical ` +
    "(the gradient is summed in another order; the difference is float32 rounding)";
}

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
    // A checkpoint inside an epoch (epoch.ts) resumes at the epoch's start: no update happened since,
    // so the adapter is the one that drew the epoch's batches, and sampling them again is exact.
    const start = (c: LoadedCheckpoint | null): RunPosition => {
      const begin = c?.state.extra?.epoch_start as { step: number; cursor: PromptCursor } | undefined;
      return {
        step: begin?.step ?? c?.state.step ?? 0,
        cursor: begin?.cursor ?? c?.state.prompt_cursor ?? { epoch: 0, index: 0 },
        optimizerStep: c?.optimizer?.step ?? 0,
      };
    };
    const batcherAt = (cursor: PromptCursor) =>
      new PromptBatcher(prompts.train, {
        batchSize: config.training.prompt_batch_size,
        shuffle: config.prompts.shuffle,
        seed: config.prompts.shuffle_seed,
        cursor,
      });
    let pos = start(ckpt);
    let batcher = batcherAt(pos.cursor);
    if (ckpt && pos.step < ckpt.state.step) await truncateMetrics(run.paths.metrics, pos.step);
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
        const now = dp
          ? null
          : await stepTrace.run(() => services.call("get_info", (o) => services.policy.getInfo({}, o)));
        if (dp) await stepTrace.run(() => dp!.check(pos.optimizerStep, expectedChecksum));
        else if (
          now && (now.instanceId !== instanceId || Number(now.optimizerStep) !== pos.optimizerStep ||
            now.adapterChecksum !== expectedChecksum)
        ) {
          throw new AdapterLostError(
            `the policy (instance ${now!.instanceId.slice(0, 8)}) is at optimizer step ${
              now!.optimizerStep
            }, the run at ${pos.optimizerStep}`,
          );
        }
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
            { config, services, latentShape, step },
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
                    .then((r) => (updates.push(updateMetrics(r, pairs.length)), r)),
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
        pos = start(ckpt);
        batcher = batcherAt(pos.cursor);
        pending = [];
        await truncateMetrics(run.paths.metrics, pos.step);
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
