/**
 * One training run between its steps (loop.ts's `train` drives it): where the run is (step, prompt
 * cursor, optimizer step), what the policy must hold (instance id, adapter checksum), the epoch's
 * pairs not yet trained on, and the run's outputs (metrics, events, checkpoints, evaluations).
 *
 * `step` is Algorithm 1's loop body: sample pairs (trajectory.ts), train when the epoch's last
 * batch is in (epoch.ts), record, checkpoint, evaluate. `recover` is the exact replay after a
 * policy restart: the last checkpoint back into the policy, the steps since sampled again.
 */
import { FailedPreconditionError } from "../../lib/errors.ts";
import { phaseSpan, type StepTrace } from "../../lib/telemetry/rdpo.ts";
import { restoreAdapter } from "./adapter_restore.ts";
import { type LoadedCheckpoint, loadLatestCheckpoint } from "./checkpoint.ts";
import { type RunConfig, totalSteps } from "./config.ts";
import { DataParallel } from "./data_parallel_step.ts";
import {
  endsEpoch,
  type EpochSettings,
  epochSettings,
  epochStart,
  isPerBatch,
  meanOfUpdates,
  runEpochUpdates,
  type UpdateMetrics,
  updateMetrics,
  type UpdateResponse,
} from "./epoch.ts";
import { evaluateModel } from "./evaluate.ts";
import { stepConfigMessage } from "./messages.ts";
import { appendMetrics, type MetricsRecord, truncateMetrics } from "./metrics.ts";
import { trainOnPairs } from "./pair_train_step.ts";
import { AdapterLostError, isPolicyRestart, resumeNote } from "./policy_restart.ts";
import { ProgressReporter } from "./progress.ts";
import { loadPromptSets, PromptBatcher, type PromptCursor } from "./prompts.ts";
import { isDataParallel } from "./replicas.ts";
import type { MetricsSink } from "./report/tensorboard.ts";
import { checkpoint } from "./run_checkpoint.ts";
import type { OpenedRun } from "./run_dir.ts";
import { type RunPosition, startPosition } from "./run_position.ts";
import type { TrainerServices } from "./services.ts";
import { stepProgress, stepRecord } from "./step_record.ts";
import { writeRunReport } from "./run_report.ts";
import { collectPairs, type PolicyStamp, type TransitionPair } from "./trajectory.ts";
import type { TrainOptions, TrainResult } from "./loop.ts";

/** Restarts of the policy a run replays before it gives up. */
const MAX_RECOVERIES = 10;

export class TrainingLoop {
  readonly #config: RunConfig;
  readonly #options: TrainOptions;
  readonly #run: OpenedRun;
  readonly #services: TrainerServices;
  readonly #sink: MetricsSink;
  readonly #log: (line: string) => void;
  #say: (line: string) => void;
  /** Several policy replicas: sharded sampling, reduced gradients, one update on all (issue 18). */
  #dp: DataParallel | null = null;
  #latentShape: number[] = [];
  #leadSteps = false;
  #total = 0;
  #reporter!: ProgressReporter;
  #trainPrompts: string[] = [];
  #evalPrompts: string[] = [];
  #epochs!: EpochSettings;
  readonly #seed: bigint;
  readonly #stepMessage: ReturnType<typeof stepConfigMessage>;
  // What the policy must hold: its instance, and the adapter the run's last update left.
  #instanceId = "";
  #expectedChecksum = "";
  #ckpt: LoadedCheckpoint | null;
  #pos!: RunPosition;
  #batcher!: PromptBatcher;
  /** Pairs sampled in the current epoch, not yet trained on, and where the epoch began. */
  #pending: TransitionPair[] = [];
  #epochBegin!: { step: number; cursor: PromptCursor };
  #recoveries = 0;
  #wireTotal = 0;
  #wireSteps = 0;

  constructor(
    config: RunConfig,
    options: TrainOptions,
    run: OpenedRun,
    services: TrainerServices,
    sink: MetricsSink,
    log: (line: string) => void,
  ) {
    this.#config = config;
    this.#options = options;
    this.#run = run;
    this.#services = services;
    this.#sink = sink;
    this.#log = log;
    this.#say = log;
    this.#ckpt = run.checkpoint;
    this.#seed = BigInt(config.seed);
    this.#stepMessage = stepConfigMessage(config);
  }

  /** Asks the policy what it serves, restores the adapter, and finds where the run starts. */
  async start(): Promise<void> {
    const config = this.#config;
    const info = await this.#getInfo();
    this.#latentShape = info.latentShape.map(Number);
    // Single-candidate steps ride in the next SampleCandidates call where the policy serves that.
    this.#leadSteps = info.sampleLeadSteps && (this.#options.sampleLeadSteps ?? true);
    if (info.loraRank !== config.lora.rank) {
      throw new FailedPreconditionError(
        `lora.rank: the policy serves rank ${info.loraRank}, the config asks for ${config.lora.rank} (start it with --lora-rank ${config.lora.rank})`,
      );
    }
    if (isDataParallel(config.services.policy)) this.#dp = await DataParallel.open(config, this.#services);
    const prompts = await loadPromptSets(config.prompts);
    this.#trainPrompts = prompts.train;
    this.#total = totalSteps(config, prompts.train.length);
    const reporter = new ProgressReporter({
      total: this.#total,
      mode: this.#options.progress ?? config.progress,
    });
    this.#reporter = reporter;
    this.#say = this.#options.log ?? ((line: string) => reporter.message(line));
    this.#evalPrompts = prompts.eval.slice(0, config.eval.max_prompts ?? prompts.eval.length);

    // Where the run starts: the checkpoint openRun found, or step 0 with a fresh adapter.
    this.#instanceId = info.instanceId;
    this.#expectedChecksum = await this.#restoreAll();
    this.#pos = startPosition(this.#ckpt);
    this.#batcher = this.#batcherAt(this.#pos.cursor);
    if (this.#ckpt && this.#pos.step < this.#ckpt.state.step) {
      await truncateMetrics(this.#run.paths.metrics, this.#pos.step);
    }
    // The event files are cut where metrics.jsonl was (openRun: at the checkpoint's step, or all of
    // it without one): TensorBoard drops earlier events from the START step on.
    await this.#sink.start(this.#ckpt ? this.#pos.step + 1 : 0);
    this.#epochs = epochSettings(config);
    this.#epochBegin = { step: this.#pos.step, cursor: this.#pos.cursor };
    this.#say(
      `run ${this.#run.paths.root}: ${config.method}, ${this.#total} steps, ${prompts.train.length} train / ${this.#evalPrompts.length} eval prompts` +
        (this.#ckpt ? `, resumed at step ${this.#pos.step}` : "") +
        (this.#dp ? `, ${this.#dp.size} policy replicas` : ""),
    );
    if (this.#ckpt) this.#say(resumeNote(this.#ckpt, this.#dp?.size ?? 0));
  }

  /** The number of the step `step` runs next (1-based, as the metrics file records it). */
  get nextStep(): number {
    return this.#pos.step + 1;
  }

  /** All steps done, or asked to stop (signal, or `stopAtStep` reached). */
  get stopped(): boolean {
    return this.#pos.step >= this.#total || this.#stopRequested();
  }

  /** The base and policy evaluation at step 0 of a fresh run, when the config asks for it. */
  async evaluateAtStart(): Promise<void> {
    if (!this.#options.skipEvaluation && this.#config.eval.at_start && this.#pos.step === 0) {
      await this.#evaluate(0, ["base", "policy"]);
    }
  }

  /** One step of Algorithm 1 (see the file comment); every RPC runs under the step's span. */
  async step(trace: StepTrace): Promise<void> {
    const config = this.#config;
    const t0 = performance.now();
    this.#services.clock.take();
    // A restarted policy lost its adapter: `recover` puts the last checkpoint back and replays.
    // One address: every SampleCandidates response carries the policy's state, checked as it
    // arrives (#checkPolicy), so the step asks no GetInfo (issue 21); the step's samples are
    // thrown away with the replay.
    if (this.#dp) await trace.run(() => this.#dp!.check(this.#pos.optimizerStep, this.#expectedChecksum));
    const batch = this.#batcher.next();
    trace.setPromptBatch(batch.prompts.length);
    const requestId = `${this.#run.configHash.slice(0, 12)}-step-${this.#pos.step}`;
    const parallel = this.#dp
      ? await trace.run(() =>
        this.#dp!.step(
          { latentShape: this.#latentShape, step: this.#stepMessage, trainOnPairs },
          batch.prompts,
          this.#seed,
          BigInt(this.#pos.step) << 32n,
          this.#pos.step,
          this.#pos.optimizerStep,
          requestId,
        )
      )
      : null;
    const collected = parallel?.collected ?? await trace.run(() =>
      collectPairs(
        {
          config,
          services: this.#services,
          latentShape: this.#latentShape,
          step: this.#stepMessage,
          checkPolicy: (now) => this.#checkPolicy(now),
          leadSteps: this.#leadSteps,
        },
        batch.prompts,
        this.#seed,
        BigInt(this.#pos.step) << 32n,
      )
    );
    const phases = collected.phases;
    if (this.#pos.step === epochStart(this.#pos.step, this.#epochs)) {
      this.#pending = [];
      this.#epochBegin = { step: this.#pos.step, cursor: this.#pos.cursor };
    }
    // Data-parallel steps sample and train on the replicas (data_parallel_step.ts, per batch only).
    if (!parallel) this.#pending.push(...collected.pairs);
    // The epoch's updates once its last batch is in (epoch.ts; per batch by default).
    let trained: UpdateResponse | null = parallel?.trained ?? null;
    const updates: UpdateMetrics[] = [];
    if (parallel?.trained) {
      this.#expectedChecksum = parallel.trained.adapterChecksum;
      updates.push(updateMetrics(parallel.trained, collected.pairs.length));
    }
    if (!parallel && endsEpoch(this.#pos.step + 1, this.#epochs, this.#total) && this.#pending.length > 0) {
      const t1 = performance.now();
      const responses = await trace.run(() => phaseSpan("train", () => this.#trainEpoch(requestId, updates)));
      phases.train = performance.now() - t1;
      trained = responses.at(-1) ?? null;
      if (trained) this.#expectedChecksum = trained.adapterChecksum;
      this.#pending = [];
    }
    const summary = meanOfUpdates(updates);
    const clock = this.#services.clock.take();
    this.#pos = {
      step: this.#pos.step + 1,
      cursor: batch.next,
      optimizerStep: trained ? Number(trained.optimizerStep) : this.#pos.optimizerStep,
    };
    const record = stepRecord({
      step: this.#pos.step,
      optimizerStep: this.#pos.optimizerStep,
      collected,
      summary,
      clock,
      seconds: (performance.now() - t0) / 1000,
      gradientBytes: parallel?.gradientBytes,
      updates: isPerBatch(this.#epochs) ? undefined : updates,
    });
    this.#wireTotal += clock.wireMs;
    this.#wireSteps += 1;
    await this.#write(record);
    this.#reporter.step(stepProgress(record));
    this.#options.onRecord?.(record, this.#total);
    const pos = this.#pos;
    if (pos.step % config.checkpoint.every === 0 || pos.step === this.#total || this.#stopRequested()) {
      await trace.run(() =>
        checkpoint(
          this.#services,
          config,
          this.#run.paths.root,
          this.#run.configHash,
          pos,
          { last: record, ...(this.#dp ? { data_parallel: { replicas: this.#dp.size } } : {}) },
          this.#expectedChecksum,
          endsEpoch(pos.step, this.#epochs, this.#total) ? undefined : this.#epochBegin,
        )
      );
    }
    trace.finish({
      pairs: record.pairs,
      skippedTies: record.skipped_ties,
      rewardMargin: record.reward_margin,
      phases,
    });
    if (
      !this.#options.skipEvaluation && config.eval.every > 0 && pos.step % config.eval.every === 0 &&
      pos.step < this.#total
    ) {
      await this.#evaluate(pos.step, ["policy"]);
    }
  }

  /**
   * After a failed step: a policy restart (new instance, adapter lost) puts the last checkpoint
   * back and replays from it, so the run's steps stay exact; any other error is rethrown.
   */
  async recover(error: unknown): Promise<void> {
    // Data-parallel: a restart is a replica with a new instance id (asked, not guessed from the error).
    if (!(this.#dp ? await this.#dp.restarted(error) : isPolicyRestart(error))) throw error;
    this.#recoveries += 1;
    if (this.#recoveries > MAX_RECOVERIES) throw error;
    this.#ckpt = await loadLatestCheckpoint(this.#run.paths.root, {
      configHash: this.#run.configHash,
      onFallback: this.#log,
    });
    this.#expectedChecksum = await this.#restoreAll();
    this.#instanceId = (await this.#getInfo()).instanceId;
    const from = this.#pos.step;
    this.#pos = startPosition(this.#ckpt);
    this.#batcher = this.#batcherAt(this.#pos.cursor);
    this.#pending = [];
    await truncateMetrics(this.#run.paths.metrics, this.#pos.step);
    await this.#sink.start(this.#pos.step + 1);
    this.#say(
      `policy service restarted (${
        (error as Error).message
      }); replaying from step ${this.#pos.step} (was at ${from})`,
    );
  }

  /** After the loop: the final evaluation, the sample grid and the report of a finished run. */
  async finish(): Promise<TrainResult> {
    const config = this.#config;
    const pos = this.#pos;
    this.#reporter.finish();
    let reportPath: string | null = null;
    const meanWireMs = this.#wireSteps ? this.#wireTotal / this.#wireSteps : 0;
    if (pos.step >= this.#total && !this.#options.skipEvaluation) {
      if (config.eval.at_end) {
        await this.#evaluate(pos.step, config.eval.at_start ? ["policy"] : ["base", "policy"]);
      }
      reportPath = await writeRunReport(this.#evalContext(), this.#run, this.#sink, {
        prompts: this.#evalPrompts.slice(0, config.report.grid_prompts),
        steps: pos.step,
        optimizerSteps: pos.optimizerStep,
        meanWireMs: this.#wireSteps ? meanWireMs : null,
      });
      this.#say(`report: ${reportPath}`);
    }
    return {
      runDir: this.#run.paths.root,
      steps: pos.step,
      optimizerStep: pos.optimizerStep,
      adapterChecksum: this.#expectedChecksum,
      reportPath,
      meanWireMs,
      recoveries: this.#recoveries,
      replicas: this.#dp?.size ?? 0,
    };
  }

  /** Closes the replicas' clients (the caller owns the services and the sink). */
  close(): void {
    this.#dp?.close();
  }

  #stopRequested(): boolean {
    const { signal, stopAtStep } = this.#options;
    return signal?.aborted || (stopAtStep !== undefined && this.#pos.step >= stopAtStep);
  }

  #getInfo() {
    return this.#services.call("get_info", (o) => this.#services.policy.getInfo({}, o));
  }

  #restoreAll(): Promise<string> {
    const ckpt = this.#ckpt;
    return this.#dp
      ? this.#dp.restore((s) => restoreAdapter(s, this.#config, ckpt))
      : restoreAdapter(this.#services, this.#config, ckpt);
  }

  #batcherAt(cursor: PromptCursor): PromptBatcher {
    return new PromptBatcher(this.#trainPrompts, {
      batchSize: this.#config.training.prompt_batch_size,
      shuffle: this.#config.prompts.shuffle,
      seed: this.#config.prompts.shuffle_seed,
      cursor,
    });
  }

  /** Throws AdapterLostError when a sampling response is not from the run's policy state. */
  #checkPolicy(now: PolicyStamp): void {
    if (
      now.instanceId !== this.#instanceId || Number(now.optimizerStep) !== this.#pos.optimizerStep ||
      now.adapterChecksum !== this.#expectedChecksum
    ) {
      throw new AdapterLostError(
        `the policy (instance ${
          now.instanceId.slice(0, 8)
        }) is at optimizer step ${now.optimizerStep}, the run at ${this.#pos.optimizerStep}`,
      );
    }
  }

  /** The epoch's optimizer steps over its pending pairs (epoch.ts order), each checked for a restart. */
  #trainEpoch(requestId: string, updates: UpdateMetrics[]) {
    return runEpochUpdates(
      this.#pending,
      this.#epochs,
      this.#config.seed,
      Math.floor(this.#pos.step / this.#epochs.sampleBatchesPerEpoch),
      this.#pos.optimizerStep,
      async (pairs, k, expected) => {
        const r = await trainOnPairs(
          this.#services,
          this.#config,
          pairs,
          this.#latentShape,
          expected,
          k ? `${requestId}-u${k}` : requestId,
        );
        // Trained by another instance than sampled (restart in between): replay.
        if (r.instanceId !== this.#instanceId) {
          throw new AdapterLostError(
            `TrainStep answered by policy instance ${r.instanceId.slice(0, 8)}, not ${
              this.#instanceId.slice(0, 8)
            }`,
          );
        }
        updates.push(updateMetrics(r, pairs.length));
        return r;
      },
    );
  }

  #evalContext() {
    return { config: this.#config, services: this.#services };
  }

  async #evaluate(step: number, models: ("base" | "policy")[]): Promise<void> {
    for (const model of models) {
      const { record } = await evaluateModel(this.#evalContext(), model, this.#evalPrompts, step);
      await this.#write(record);
      this.#options.onRecord?.(record, 0);
      this.#say(
        `eval step ${step} ${model}: ` +
          Object.entries(record.rewards).map(([k, v]) => `${k} ${v.mean.toFixed(4)} ± ${v.std.toFixed(4)}`)
            .join(", "),
      );
    }
  }

  /** A record into metrics.jsonl and the report sinks (TensorBoard, ...). */
  async #write(record: MetricsRecord): Promise<void> {
    await appendMetrics(this.#run.paths.metrics, record);
    await this.#sink.record(record);
  }
}
