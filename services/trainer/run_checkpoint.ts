import { canonicalConfigJson, type RunConfig } from "./config.ts";
import { readLatestPointer, writeCheckpoint } from "./checkpoint.ts";
import { fromNamed } from "./adapter_restore.ts";
import { AdapterLostError } from "./policy_restart.ts";
import type { PromptCursor } from "./prompts.ts";
import type { RunPosition } from "./run_position.ts";
import type { TrainerServices } from "./services.ts";

/** Writes a checkpoint of the run's adapter, after checking the policy still holds it. */
export async function checkpoint(
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
