/**
 * Training checkpoints, written atomically so that a crash at any moment leaves the previous
 * checkpoint intact and loadable:
 *
 *   <run>/checkpoints/.tmp-step-000040-<rand>/   1. every file written here and fsynced
 *       adapter_model.safetensors               LoRA weights under their PEFT keys
 *       optimizer.safetensors                   Adam moments ("<key>.exp_avg", "<key>.exp_avg_sq")
 *       config.json                             the resolved config (canonical JSON), if given
 *       state.json                              trainer state + sha256 of every file above (last)
 *   <run>/checkpoints/step-000040/              2. the folder renamed into place (atomic)
 *   <run>/checkpoints/latest                    3. pointer file "step-000040", replaced by rename
 *
 * The pointer is the commit point: until it is replaced, loading returns the previous checkpoint.
 * Then all but the newest `keepLast` step folders are removed. Loading checks every file against
 * the sha256 recorded in state.json and the config hash against the current config.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../lib/errors.ts";
import { readSafetensors, type TensorRecord, writeSafetensors } from "../../lib/tensor/safetensors.ts";
import type { PromptCursor } from "./prompts.ts";
import { pathExists } from "../../lib/fs/exists.ts";

export const CHECKPOINTS_DIR = "checkpoints";
export const LATEST_FILE = "latest";
export const ADAPTER_FILE = "adapter_model.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const STATE_FILE = "state.json";
export const CONFIG_FILE = "config.json";
const FORMAT_VERSION = 1;

/** The LoRA adapter as the policy's GetAdapter returns it. */
export interface AdapterCheckpoint {
  /** PEFT key -> tensor. */
  weights: Map<string, TensorRecord>;
  rank: number;
  alpha: number;
  targetModules: string[];
  /** The policy's adapter checksum, to confirm a LoadAdapter restored the same weights. */
  checksum: string;
}

/** Adam state as the policy returns it: moments by "<key>.exp_avg" / "<key>.exp_avg_sq", and the step. */
export interface OptimizerCheckpoint {
  state: Map<string, TensorRecord>;
  step: number;
}

/** What the loop needs to continue exactly where it stopped. */
export interface TrainerState {
  /** Training iterations completed. */
  step: number;
  /** Where the prompt batcher continues. */
  prompt_cursor: PromptCursor;
  /** Named counters of the noise streams drawn so far (e.g. {"train": 1234, "eval": 40}). */
  rng: Record<string, number>;
  /** Metrics so far (e.g. summarizeMetrics' result), for the report and progress. */
  metrics: Record<string, unknown>;
  /** configHash() of the run's config (config.ts). */
  config_hash: string;
  /** Free-form additions of the loop (e.g. elapsed seconds). */
  extra?: Record<string, unknown>;
}

export interface CheckpointData {
  state: TrainerState;
  adapter: AdapterCheckpoint;
  optimizer: OptimizerCheckpoint | null;
  /** Canonical config JSON, stored beside the state for inspection. */
  configJson?: string;
}

export interface LoadedCheckpoint extends CheckpointData {
  /** Absolute or run-relative folder of the checkpoint, and its name ("step-000040"). */
  dir: string;
  name: string;
  savedAt: string;
}

/** Phases after which `onPhase` is called (tests use it to simulate a crash). */
export type CheckpointPhase = "adapter" | "optimizer" | "state" | "sealed" | "renamed" | "latest";

export interface WriteCheckpointOptions {
  /** Keep this many newest step folders (>= 1). */
  keepLast: number;
  onPhase?: (phase: CheckpointPhase) => void | Promise<void>;
}

interface StateFile {
  format_version: number;
  saved_at: string;
  state: TrainerState;
  adapter: { rank: number; alpha: number; target_modules: string[]; checksum: string };
  optimizer: { step: number } | null;
  /** File name -> sha256 hex. */
  files: Record<string, string>;
}

/** "step-000040": zero-padded so names sort like numbers up to a million steps. */
export function checkpointName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new InvalidArgumentError("step", `expected a non-negative integer, got ${step}`);
  }
  return `step-${String(step).padStart(6, "0")}`;
}

function parseCheckpointName(name: string): number | null {
  const m = /^step-(\d{6,})$/.exec(name);
  return m ? Number(m[1]) : null;
}

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/** fsync a file or a folder (a folder's entry list, so renames in it are durable). */
async function syncPath(path: string): Promise<void> {
  let f: Deno.FsFile | undefined;
  try {
    f = await Deno.open(path, { read: true });
    await f.sync();
  } catch {
    // Some filesystems refuse fsync on folders; the rename is still atomic there.
  } finally {
    f?.close();
  }
}

async function writeTextDurably(path: string, text: string): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
}

function checkState(state: TrainerState): void {
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new InvalidArgumentError("state.step", `expected a non-negative integer, got ${state.step}`);
  }
  if (!/^[0-9a-f]{64}$/.test(state.config_hash)) {
    throw new InvalidArgumentError(
      "state.config_hash",
      `expected 64 hex digits, got ${JSON.stringify(state.config_hash)}`,
    );
  }
  for (const [k, v] of Object.entries(state.rng)) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new InvalidArgumentError(`state.rng.${k}`, `expected a non-negative integer, got ${v}`);
    }
  }
}

/** Removes leftovers of interrupted writes (temporary and set-aside folders). */
async function removeStaleTemporaries(checkpointsDir: string): Promise<void> {
  for await (const e of Deno.readDir(checkpointsDir)) {
    if (
      e.name.startsWith(".tmp-") || e.name.startsWith(".old-") || e.name.startsWith(`${LATEST_FILE}.tmp-`)
    ) {
      await Deno.remove(join(checkpointsDir, e.name), { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Writes a checkpoint for `data.state.step` atomically (see the file comment) and prunes old ones.
 * Returns the checkpoint folder.
 */
export async function writeCheckpoint(
  runDir: string,
  data: CheckpointData,
  options: WriteCheckpointOptions,
): Promise<string> {
  if (!Number.isSafeInteger(options.keepLast) || options.keepLast < 1) {
    throw new InvalidArgumentError(
      "checkpoint.keep_last",
      `must be an integer >= 1, got ${options.keepLast}`,
    );
  }
  checkState(data.state);
  const phase = async (p: CheckpointPhase) => await options.onPhase?.(p);
  const checkpointsDir = join(runDir, CHECKPOINTS_DIR);
  await Deno.mkdir(checkpointsDir, { recursive: true });
  await removeStaleTemporaries(checkpointsDir);

  const name = checkpointName(data.state.step);
  const tmp = join(checkpointsDir, `.tmp-${name}-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(tmp);
  try {
    const files: Record<string, string> = {};
    const { adapter, optimizer } = data;
    // writeSafetensors fsyncs its file (and renames within the temp folder).
    await writeSafetensors(join(tmp, ADAPTER_FILE), adapter.weights, { format: "pt" });
    files[ADAPTER_FILE] = await sha256File(join(tmp, ADAPTER_FILE));
    await phase("adapter");
    if (optimizer) {
      await writeSafetensors(join(tmp, OPTIMIZER_FILE), optimizer.state, { step: String(optimizer.step) });
      files[OPTIMIZER_FILE] = await sha256File(join(tmp, OPTIMIZER_FILE));
    }
    await phase("optimizer");
    if (data.configJson !== undefined) {
      await writeTextDurably(join(tmp, CONFIG_FILE), data.configJson);
      files[CONFIG_FILE] = await sha256File(join(tmp, CONFIG_FILE));
    }
    const stateFile: StateFile = {
      format_version: FORMAT_VERSION,
      saved_at: new Date().toISOString(),
      state: data.state,
      adapter: {
        rank: adapter.rank,
        alpha: adapter.alpha,
        target_modules: adapter.targetModules,
        checksum: adapter.checksum,
      },
      optimizer: optimizer ? { step: optimizer.step } : null,
      files,
    };
    await writeTextDurably(join(tmp, STATE_FILE), JSON.stringify(stateFile, null, 2) + "\n");
    await phase("state");
    await syncPath(tmp);
    await phase("sealed");
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }

  const finalDir = join(checkpointsDir, name);
  let setAside: string | null = null;
  if (await pathExists(finalDir, { noFollow: true })) {
    // Same step written again (e.g. after a resume from an earlier checkpoint): move the old one
    // aside first; rename cannot replace a non-empty folder.
    setAside = join(checkpointsDir, `.old-${name}-${crypto.randomUUID().slice(0, 8)}`);
    await Deno.rename(finalDir, setAside);
  }
  await Deno.rename(tmp, finalDir);
  await syncPath(checkpointsDir);
  await phase("renamed");

  const latestTmp = join(checkpointsDir, `${LATEST_FILE}.tmp-${crypto.randomUUID().slice(0, 8)}`);
  await writeTextDurably(latestTmp, name + "\n");
  await Deno.rename(latestTmp, join(checkpointsDir, LATEST_FILE));
  await syncPath(checkpointsDir);
  await phase("latest");

  if (setAside) await Deno.remove(setAside, { recursive: true });
  await pruneCheckpoints(runDir, options.keepLast);
  return finalDir;
}

export interface CheckpointEntry {
  step: number;
  name: string;
  dir: string;
}

/** Step folders of a run, oldest first (temporary folders excluded). */
export async function listCheckpoints(runDir: string): Promise<CheckpointEntry[]> {
  const checkpointsDir = join(runDir, CHECKPOINTS_DIR);
  const out: CheckpointEntry[] = [];
  try {
    for await (const e of Deno.readDir(checkpointsDir)) {
      const step = parseCheckpointName(e.name);
      if (e.isDirectory && step !== null) out.push({ step, name: e.name, dir: join(checkpointsDir, e.name) });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The name the `latest` pointer holds, or null when there is none. */
export async function readLatestPointer(runDir: string): Promise<string | null> {
  try {
    const name = (await Deno.readTextFile(join(runDir, CHECKPOINTS_DIR, LATEST_FILE))).trim();
    return parseCheckpointName(name) === null ? null : name;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Removes all but the newest `keepLast` step folders; never the one `latest` points to. */
export async function pruneCheckpoints(runDir: string, keepLast: number): Promise<string[]> {
  const all = await listCheckpoints(runDir);
  const latest = await readLatestPointer(runDir);
  const removed: string[] = [];
  for (const e of all.slice(0, Math.max(0, all.length - keepLast))) {
    if (e.name === latest) continue;
    await Deno.remove(e.dir, { recursive: true });
    removed.push(e.name);
  }
  return removed;
}

/** Reads and verifies one checkpoint folder (file hashes, state shape). */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const name = dir.split("/").filter(Boolean).pop() ?? dir;
  let stateFile: StateFile;
  try {
    stateFile = JSON.parse(await Deno.readTextFile(join(dir, STATE_FILE)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`checkpoint ${dir}: no ${STATE_FILE}`);
    throw new FailedPreconditionError(
      `checkpoint ${dir}: ${STATE_FILE} is unreadable: ${(e as Error).message}`,
    );
  }
  if (stateFile.format_version !== FORMAT_VERSION) {
    throw new FailedPreconditionError(
      `checkpoint ${dir}: format_version ${stateFile.format_version}, this trainer reads ${FORMAT_VERSION}`,
    );
  }
  for (const [file, expected] of Object.entries(stateFile.files)) {
    let actual: string;
    try {
      actual = await sha256File(join(dir, file));
    } catch {
      throw new FailedPreconditionError(`checkpoint ${dir}: ${file} is missing`);
    }
    if (actual !== expected) {
      throw new FailedPreconditionError(
        `checkpoint ${dir}: ${file} is corrupt (sha256 ${actual}, recorded ${expected})`,
      );
    }
  }
  const adapterTensors = await readSafetensors(join(dir, ADAPTER_FILE));
  let optimizer: OptimizerCheckpoint | null = null;
  if (stateFile.optimizer) {
    const opt = await readSafetensors(join(dir, OPTIMIZER_FILE));
    optimizer = { state: opt.tensors, step: stateFile.optimizer.step };
  }
  const configJson = stateFile.files[CONFIG_FILE]
    ? await Deno.readTextFile(join(dir, CONFIG_FILE))
    : undefined;
  return {
    dir,
    name,
    savedAt: stateFile.saved_at,
    state: stateFile.state,
    adapter: {
      weights: adapterTensors.tensors,
      rank: stateFile.adapter.rank,
      alpha: stateFile.adapter.alpha,
      targetModules: stateFile.adapter.target_modules,
      checksum: stateFile.adapter.checksum,
    },
    optimizer,
    ...(configJson !== undefined ? { configJson } : {}),
  };
}

export interface LoadLatestOptions {
  /** The current config's hash: a checkpoint written under another config is refused... */
  configHash?: string;
  /** ...unless forced. */
  force?: boolean;
  /**
   * Told when the checkpoint `latest` names fails verification (truncated, corrupted, missing a
   * file) and an older one that verifies is used instead; the message names both and the reason.
   */
  onFallback?: (message: string) => void;
}

/**
 * The checkpoint `latest` points to, or null when the run has none. If the pointer is missing or
 * names a folder that is gone, the newest step folder that verifies is used instead.
 */
export async function loadLatestCheckpoint(
  runDir: string,
  options: LoadLatestOptions = {},
): Promise<LoadedCheckpoint | null> {
  const pointer = await readLatestPointer(runDir);
  let loaded: LoadedCheckpoint | null = null;
  let pointedFailure: Error | null = null;
  if (pointer && (await pathExists(join(runDir, CHECKPOINTS_DIR, pointer), { noFollow: true }))) {
    try {
      loaded = await loadCheckpoint(join(runDir, CHECKPOINTS_DIR, pointer));
    } catch (e) {
      // A damaged latest checkpoint (torn write, bit rot, full disk at copy time): the one before
      // it is still a valid place to continue from, so use that and say so.
      pointedFailure = e as Error;
    }
  }
  if (!loaded) {
    const all = await listCheckpoints(runDir);
    for (const e of all.reverse()) {
      if (pointedFailure && e.name === pointer) continue;
      try {
        loaded = await loadCheckpoint(e.dir);
        break;
      } catch {
        // An incomplete or damaged folder: try the one before.
      }
    }
    if (pointedFailure) {
      if (!loaded) throw pointedFailure;
      options.onFallback?.(
        `checkpoint ${pointer} failed verification (${pointedFailure.message}); ` +
          `falling back to ${loaded.name} (step ${loaded.state.step})`,
      );
    }
  }
  if (!loaded) return null;
  if (options.configHash !== undefined && loaded.state.config_hash !== options.configHash && !options.force) {
    throw new FailedPreconditionError(
      `checkpoint ${loaded.dir} was written with config hash ${loaded.state.config_hash.slice(0, 12)}..., ` +
        `the current config hashes to ${options.configHash.slice(0, 12)}...: the run's training settings ` +
        `changed. Restore the original config, use a new run_dir, or force the resume.`,
    );
  }
  return loaded;
}
