/**
 * The run folder: where a run's files live, and opening it for a new run or a resume.
 *
 *   <run>/config.json        the resolved config (pretty canonical JSON) and its hash
 *   <run>/metrics.jsonl      metrics.ts
 *   <run>/checkpoints/       checkpoint.ts
 *   <run>/report.html, report/   report/build.ts
 *
 * Opening for a resume loads the latest checkpoint (refusing one written under another config
 * unless forced) and cuts metrics.jsonl back to the checkpoint's step, so the steps that run again
 * are not logged twice. Opening a folder that already holds a run without asking to resume is an
 * error rather than a silent overwrite.
 */
import { join } from "node:path";
import { AlreadyExistsError } from "../../lib/errors.ts";
import { canonicalConfigJson, configHash, resolveRunDir, type RunConfig } from "./config.ts";
import {
  CHECKPOINTS_DIR,
  listCheckpoints,
  type LoadedCheckpoint,
  loadLatestCheckpoint,
} from "./checkpoint.ts";
import { readMetrics, truncateMetrics } from "./metrics.ts";

export interface RunPaths {
  root: string;
  config: string;
  metrics: string;
  checkpoints: string;
  report: string;
  reportDir: string;
}

export function runPaths(runDir: string): RunPaths {
  return {
    root: runDir,
    config: join(runDir, "config.json"),
    metrics: join(runDir, "metrics.jsonl"),
    checkpoints: join(runDir, CHECKPOINTS_DIR),
    report: join(runDir, "report.html"),
    reportDir: join(runDir, "report"),
  };
}

export interface OpenRunOptions {
  /** Continue from the latest checkpoint when there is one. */
  resume?: boolean;
  /** Resume even when the checkpoint's config hash differs. */
  force?: boolean;
  /** Where a fallback from a damaged latest checkpoint is reported. */
  log?: (line: string) => void;
}

export interface OpenedRun {
  paths: RunPaths;
  configHash: string;
  /** The checkpoint to continue from (null: start at step 0). */
  checkpoint: LoadedCheckpoint | null;
}

async function hasRunFiles(paths: RunPaths): Promise<boolean> {
  if ((await listCheckpoints(paths.root)).length > 0) return true;
  return (await readMetrics(paths.metrics)).length > 0;
}

/** Creates or reopens the run folder of `config` and writes its config.json. */
export async function openRun(config: RunConfig, options: OpenRunOptions = {}): Promise<OpenedRun> {
  const paths = runPaths(resolveRunDir(config));
  const hash = configHash(config);
  await Deno.mkdir(paths.root, { recursive: true });
  let checkpoint: LoadedCheckpoint | null = null;
  if (options.resume) {
    checkpoint = await loadLatestCheckpoint(paths.root, {
      configHash: hash,
      force: options.force,
      onFallback: options.log,
    });
    // Steps after the checkpoint (or every record, when starting over) will be logged again.
    await truncateMetrics(paths.metrics, checkpoint ? checkpoint.state.step : -1);
  } else if (await hasRunFiles(paths)) {
    throw new AlreadyExistsError(
      `run folder ${paths.root} already holds a run (checkpoints or metrics): resume it, or choose another run_dir`,
    );
  }
  const text = JSON.stringify(JSON.parse(canonicalConfigJson(config)), null, 2) + "\n";
  const tmp = `${paths.config}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, paths.config);
  return { paths, configHash: hash, checkpoint };
}
