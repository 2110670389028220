/**
 * One data-parallel RDPO step over the policy replicas (issue 18), the I/O around data_parallel.ts:
 *
 *   shard the global prompt batch (shardBatch), every replica at once:
 *     sample its shard's trajectories and score them (trajectory.ts with the shard's global streams)
 *     one TrainStep with return_gradients per prompt of the shard that has pairs
 *   reduce the per-prompt gradients in global order (reduceGradients)
 *   ApplyGradients of the reduced gradient on every replica; every replica must answer with the same
 *   adapter checksum, or the run stops naming the one that diverged
 *
 * The loop (loop.ts) keeps its step accounting: a replica that restarted (new instance id) is found
 * by `restarted()`, and the loop reloads the last checkpoint into every replica and replays.
 */
import { epochSettings, isPerBatch } from "./epoch.ts";
import type { StepConfig } from "../../gen/rdpo/v1/policy_pb.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../lib/errors.ts";
import { decodeFloat32, encodeTensor } from "../../lib/tensor/codec.ts";
import {
  ATTR_RDPO_REPLICA_ADDRESS,
  ATTR_RDPO_REPLICA_INDEX,
  ATTR_RDPO_SHARD_OFFSET,
  ATTR_RDPO_SHARD_SIZE,
  SPAN_RDPO_REPLICA,
} from "../../lib/telemetry/attributes.ts";
import { phaseSpan } from "../../lib/telemetry/rdpo.ts";
import { withSpan } from "../../lib/telemetry/tracing.ts";
import type { RunConfig } from "./config.ts";
import { divergentReplicas, type GradientUnit, reduceGradients, shardBatch } from "./data_parallel.ts";
import { optimizerConfigMessage } from "./messages.ts";
import { type Replica, ReplicaSet } from "./replicas.ts";
import type { TrainerServices } from "./services.ts";
import { type CollectedBatch, collectPairs, type TransitionPair } from "./trajectory.ts";

/** A replica's adapter is not the run's (it restarted): the loop reloads the checkpoint and replays. */
export class ReplicaLostError extends FailedPreconditionError {
  override name = "ReplicaLostError";
}

/** Replicas that no longer hold the same adapter after the same update: the run must stop. */
export class ReplicaDivergedError extends FailedPreconditionError {
  override name = "ReplicaDivergedError";
}

/** How the trainer calls TrainStep (loop.ts trainOnPairs, passed in to keep one copy). */
export type TrainOnPairs = (
  services: TrainerServices,
  config: RunConfig,
  pairs: TransitionPair[],
  latentShape: readonly number[],
  expectedOptimizerStep: number,
  requestId: string,
  returnGradients: boolean,
) => Promise<{
  loss: number;
  meanLogRatioWinner: number;
  meanLogRatioLoser: number;
  accuracy: number;
  gradients: { name: string; tensor?: import("../../gen/rdpo/v1/tensor_pb.ts").Tensor }[];
}>;

export interface DataParallelStepResult {
  collected: CollectedBatch;
  /** Null when no replica found a pair (no update). */
  trained: {
    loss: number;
    meanLogRatioWinner: number;
    meanLogRatioLoser: number;
    accuracy: number;
    gradNorm: number;
    optimizerStep: bigint;
    adapterChecksum: string;
  } | null;
  /** Gradient bytes on the wire this step: per-prompt gradients in, the reduced one out to every replica. */
  gradientBytes: number;
}

const tensorBytes = (list: { tensor?: { data: Uint8Array } }[]) =>
  list.reduce((n, t) => n + (t.tensor?.data.byteLength ?? 0), 0);

/** The replicas of a run and what the loop needs from them (see the file comment). */
export class DataParallel {
  readonly replicas: ReplicaSet;
  #instanceIds: string[] = [];

  private constructor(readonly config: RunConfig, readonly services: TrainerServices) {
    this.replicas = new ReplicaSet(config);
  }

  /** Connects to the replicas; refuses configs whose sampling is not defined over the global batch. */
  static async open(config: RunConfig, services: TrainerServices): Promise<DataParallel> {
    if (config.preference.pairing !== "shared_parent") {
      throw new InvalidArgumentError(
        "services.policy",
        `several policy replicas need preference.pairing "shared_parent" (got "${config.preference.pairing}"): ` +
          "independent trajectories draw their noise per position in the whole batch",
      );
    }
    if (!isPerBatch(epochSettings(config))) {
      // A replica samples and trains its shard in one step; an epoch's shuffled minibatches would
      // mix pairs across replicas, which the per-prompt gradient reduction does not define yet.
      throw new InvalidArgumentError(
        "services.policy",
        "several policy replicas train one update per sample batch: leave training.sample_batches_per_epoch, " +
          "train_batch_size, num_inner_epochs and gradient_accumulation_steps at their defaults",
      );
    }
    const dp = new DataParallel(config, services);
    await dp.replicas.connect();
    return dp;
  }

  get size(): number {
    return this.replicas.size;
  }

  /** The trainer's services with the policy client of one replica. */
  on(replica: Replica): TrainerServices {
    return { ...this.services, policy: replica.client };
  }

  /**
   * Puts every replica's adapter where `restore` (loop.ts restoreAdapter) puts one, after resolving
   * `services.policy` again (a restarted pod may have another IP); returns the one checksum.
   */
  async restore(restore: (services: TrainerServices) => Promise<string>): Promise<string> {
    await this.replicas.connect();
    const infos = await Promise.all(
      this.replicas.replicas.map((r) => this.services.call("get_info", (o) => r.client.getInfo({}, o))),
    );
    infos.forEach((info, i) => {
      if (
        info.loraRank !== this.config.lora.rank || info.latentShape.join() !== infos[0].latentShape.join()
      ) {
        throw new FailedPreconditionError(
          `services.policy: ${this.replicas.describe(i)} serves LoRA rank ${info.loraRank} and latents ` +
            `[${info.latentShape.join(", ")}]; the run needs rank ${this.config.lora.rank} and ` +
            `[${infos[0].latentShape.join(", ")}] on every replica`,
        );
      }
    });
    const sums = await Promise.all(this.replicas.replicas.map((r) => restore(this.on(r))));
    this.#checkSame(sums, "after loading the adapter");
    this.#instanceIds = await Promise.all(
      this.replicas.replicas.map(async (r) =>
        (await this.services.call("get_info", (o) => r.client.getInfo({}, o))).instanceId
      ),
    );
    return sums[0];
  }

  /**
   * Every replica still holds the run's adapter: a replica with a new instance id restarted
   * (ReplicaLostError: reload and replay); one with the same instance but another optimizer step or
   * checksum was changed behind the run's back (ReplicaDivergedError: the run stops).
   */
  async check(optimizerStep: number, checksum: string): Promise<void> {
    const infos = await Promise.all(
      this.replicas.replicas.map((r) => this.services.call("get_info", (o) => r.client.getInfo({}, o))),
    );
    infos.forEach((now, i) => {
      if (now.instanceId !== this.#instanceIds[i]) {
        throw new ReplicaLostError(
          `${this.replicas.describe(i)} (instance ${now.instanceId.slice(0, 8)}) is at optimizer step ` +
            `${now.optimizerStep}, the run at ${optimizerStep}`,
        );
      }
      if (Number(now.optimizerStep) !== optimizerStep || now.adapterChecksum !== checksum) {
        throw new ReplicaDivergedError(
          `${this.replicas.describe(i)} diverged: it holds adapter ${now.adapterChecksum.slice(0, 12)} at ` +
            `optimizer step ${now.optimizerStep}, the run ${checksum.slice(0, 12)} at ${optimizerStep}`,
        );
      }
    });
  }

  /**
   * Whether `error` came from a replica restart: every replica is asked (each call waits as long as
   * rpc.retry allows for its replica to come back) and one answering with a new instance id means
   * yes. Otherwise, replicas that disagree with the majority's optimizer step and adapter are named
   * in a ReplicaDivergedError; false leaves `error` to stand.
   */
  async restarted(error: unknown): Promise<boolean> {
    if (error instanceof ReplicaLostError) return true;
    if (error instanceof ReplicaDivergedError) return false;
    let infos;
    try {
      await this.replicas.connect();
      infos = await Promise.all(
        this.replicas.replicas.map((r) => this.services.call("get_info", (o) => r.client.getInfo({}, o))),
      );
    } catch {
      return false; // a replica that does not come back within rpc.retry: the original error stands
    }
    if (
      infos.length !== this.#instanceIds.length || infos.some((x, i) => x.instanceId !== this.#instanceIds[i])
    ) {
      return true;
    }
    const states = infos.map((x) => `${x.optimizerStep}:${x.adapterChecksum}`);
    const bad = divergentReplicas(states);
    if (bad.length > 0) {
      throw new ReplicaDivergedError(
        bad.map((i) =>
          `${this.replicas.describe(i)} diverged (optimizer step ${infos[i].optimizerStep}, adapter ` +
          `${infos[i].adapterChecksum.slice(0, 12)})`
        ).join(", ") + ` after: ${(error as Error).message}`,
      );
    }
    return false;
  }

  /** One step (see the file comment); `base` is the step's noise stream base (loop.ts). */
  async step(
    ctx: { latentShape: readonly number[]; step: StepConfig; trainOnPairs: TrainOnPairs },
    prompts: string[],
    seed: bigint,
    base: bigint,
    stepNumber: number,
    expectedOptimizerStep: number,
    requestId: string,
  ): Promise<DataParallelStepResult> {
    const { config } = this;
    const shards = shardBatch(prompts.length, this.size, stepNumber, seed);
    let gradientBytes = 0;
    /** Each key's shape as the replicas send it (PEFT layout); the reduced gradient goes back in it. */
    const shapes = new Map<string, readonly number[]>();
    const perReplica = await settleAll(this.replicas.replicas.map((replica) => {
      const shard = shards[replica.index];
      return withSpan(SPAN_RDPO_REPLICA, {
        [ATTR_RDPO_REPLICA_INDEX]: replica.index,
        [ATTR_RDPO_REPLICA_ADDRESS]: replica.address,
        [ATTR_RDPO_SHARD_OFFSET]: shard.offset,
        [ATTR_RDPO_SHARD_SIZE]: shard.size,
      }, async () => {
        if (shard.size === 0) return { shard, collected: null, units: [] as GradientUnit[], trainMs: 0 };
        const services = this.on(replica);
        const collected = await collectPairs(
          { config, services, latentShape: ctx.latentShape, step: ctx.step },
          prompts.slice(shard.offset, shard.offset + shard.size),
          seed,
          base,
          { offset: shard.offset, globalBatch: prompts.length },
        );
        // The gradient unit is one prompt's pairs: the reduction is then independent of P.
        const byItem = new Map<number, TransitionPair[]>();
        for (const p of collected.pairs) byItem.set(p.item!, [...(byItem.get(p.item!) ?? []), p]);
        const units: GradientUnit[] = [];
        const t0 = performance.now();
        if (byItem.size > 0) {
          await phaseSpan("train", async () => {
            for (const [item, pairs] of [...byItem].sort((a, b) => a[0] - b[0])) {
              const r = await ctx.trainOnPairs(
                services,
                config,
                pairs,
                ctx.latentShape,
                expectedOptimizerStep,
                `${requestId}-item-${item}`,
                true,
              );
              gradientBytes += tensorBytes(r.gradients);
              units.push({
                index: item,
                pairs: pairs.length,
                gradients: new Map(r.gradients.map((g, i) => {
                  const t = decodeFloat32(`gradients[${i}]`, g.tensor);
                  shapes.set(g.name, t.shape);
                  return [g.name, t.data];
                })),
                loss: r.loss,
                meanLogRatioWinner: r.meanLogRatioWinner,
                meanLogRatioLoser: r.meanLogRatioLoser,
                accuracy: r.accuracy,
              });
            }
          });
        }
        return { shard, collected, units, trainMs: performance.now() - t0 };
      });
    }));

    const collected = mergeCollected(perReplica);
    const t1 = performance.now();
    const reduced = await phaseSpan(
      "reduce",
      () => Promise.resolve(reduceGradients(perReplica.flatMap((r) => r.units))),
    );
    collected.phases.reduce = performance.now() - t1;
    collected.phases.train = Math.max(0, ...perReplica.map((r) => r.trainMs));
    if (!reduced) return { collected, trained: null, gradientBytes };

    const shaped = [...reduced.gradients].map(([name, g]) => ({
      name,
      tensor: encodeTensor(g, shapes.get(name) ?? [g.length]),
    }));
    const t2 = performance.now();
    const applied = await phaseSpan(
      "apply",
      () =>
        settleAll(
          this.replicas.replicas.map((r) =>
            this.services.call("train_step", (o) =>
              r.client.applyGradients({
                gradients: shaped,
                optimizer: optimizerConfigMessage(config),
                expectedOptimizerStep: BigInt(expectedOptimizerStep),
                requestId: `${requestId}-apply`,
              }, o))
          ),
        ),
    );
    collected.phases.apply = performance.now() - t2;
    gradientBytes += this.size * tensorBytes(shaped);
    this.#checkSame(
      applied.map((a) => a.adapterChecksum),
      `after optimizer step ${applied[0].optimizerStep}`,
    );
    return {
      collected,
      trained: {
        loss: reduced.loss,
        meanLogRatioWinner: reduced.meanLogRatioWinner,
        meanLogRatioLoser: reduced.meanLogRatioLoser,
        accuracy: reduced.accuracy,
        gradNorm: applied[0].gradNorm,
        optimizerStep: applied[0].optimizerStep,
        adapterChecksum: applied[0].adapterChecksum,
      },
      gradientBytes,
    };
  }

  #checkSame(checksums: string[], when: string): void {
    const bad = divergentReplicas(checksums);
    if (bad.length === 0) return;
    const agreed = checksums.find((_, i) => !bad.includes(i))!;
    throw new ReplicaDivergedError(
      `adapter checksums diverged ${when}: ` +
        bad.map((i) => `${this.replicas.describe(i)} holds ${checksums[i].slice(0, 12)}`).join(", ") +
        `, the others ${agreed.slice(0, 12)}`,
    );
  }

  close(): void {
    this.replicas.close();
  }
}

/**
 * Promise.all that waits for every call to end before rejecting with the first failure: no call of
 * an abandoned step may still be running when recovery reloads the replicas' adapters.
 */
async function settleAll<T>(calls: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(calls);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** The replicas' batches as one, in global batch order; phases are the slowest replica's. */
function mergeCollected(
  perReplica: { shard: { offset: number }; collected: CollectedBatch | null }[],
): CollectedBatch {
  const parts = perReplica.filter((r) => r.collected).sort((a, b) => a.shard.offset - b.shard.offset)
    .map((r) => r.collected!);
  const phases: Record<string, number> = {};
  for (const p of parts) {
    for (const [k, v] of Object.entries(p.phases)) phases[k] = Math.max(phases[k] ?? 0, v);
  }
  return {
    pairs: parts.flatMap((p) => p.pairs),
    skippedTies: parts.reduce((n, p) => n + p.skippedTies, 0),
    finalRewards: parts.flatMap((p) => p.finalRewards),
    finalImages: parts.flatMap((p) => p.finalImages),
    phases,
  };
}
