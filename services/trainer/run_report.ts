/** A finished run's report: the before/after sample grid, the curves, the config (report/build.ts). */
import { join } from "node:path";
import { canonicalConfigJson } from "./config.ts";
import { beforeAfterGrid, type EvalContext } from "./evaluate.ts";
import { type MetricsRecord, readMetrics } from "./metrics.ts";
import { buildReport } from "./report/build.ts";
import type { MetricsSink } from "./report/tensorboard.ts";
import type { OpenedRun } from "./run_dir.ts";

export interface RunReportInput {
  /** The grid's prompts (base and tuned samples with the same seeds). */
  prompts: string[];
  steps: number;
  optimizerSteps: number;
  /** Mean wire ms per training step; null when no step ran in this process. */
  meanWireMs: number | null;
}

/** Writes the run's HTML report (and sends its grid to the sinks); returns the report's path. */
export async function writeRunReport(
  ctx: EvalContext,
  run: OpenedRun,
  sink: MetricsSink,
  input: RunReportInput,
): Promise<string> {
  const config = ctx.config;
  const grid = await beforeAfterGrid(ctx, input.prompts);
  const records: MetricsRecord[] = await readMetrics(run.paths.metrics);
  const built = await buildReport(run.paths.root, {
    title: `${config.method} — ${run.paths.root}`,
    configText: JSON.stringify(JSON.parse(canonicalConfigJson(config)), null, 2),
    configHash: run.configHash,
    summary: [
      ["method", config.method],
      ["steps", input.steps],
      ["optimizer steps", input.optimizerSteps],
      ["mean wire ms per step", input.meanWireMs !== null ? input.meanWireMs.toFixed(2) : "n/a"],
    ],
    grid,
    records,
  });
  const gridFile = built.files.find((f) => f.endsWith("grid.png"));
  if (gridFile) await sink.grid(input.steps, await Deno.readFile(join(run.paths.root, gridFile)));
  return built.html;
}
