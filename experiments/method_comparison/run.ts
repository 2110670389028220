/**
 * The paper's method comparison on the embedded world (issue 20): base, D3PO, TailorPO, RDPO*
 * and RDPO, several seeds each, trained on `prompt_fidelity` in the peers' epoch structure
 * (configs/base.json; services/trainer/epoch.ts), evaluated on held-out prompts with the same
 * seeds under the trained reward, the held-out evaluator (`attribute_evaluator`, never trained
 * on), JPEG size and colourfulness. Writes results.json, RESULTS.md's generated tables, and the
 * h_w / h_l curves during training (h_l.svg, h_l.png: the paper's Figure 1 / 3b).
 *
 *   deno run -A experiments/method_comparison/run.ts [--seeds 1,2,3] [--methods d3po,tailorpo,rdpo_star,rdpo]
 *                                                    [--steps N] [--out runs/method_comparison] [--collect]
 *   deno run -A experiments/method_comparison/run.ts --help
 *
 * Resumable: a finished (method, seed) leaves result.json in its run folder and is not run again.
 */
import { join, resolve } from "node:path";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { FlagError, type FlagSpecs, type FlagValues } from "../../lib/rpc/flags.ts";
import { ServiceProcess } from "../../lib/process/service_process.ts";
import { repoRoot } from "../../lib/testing/fixtures.ts";
import { parseConfig } from "../../services/trainer/config.ts";
import { train } from "../../services/trainer/loop.ts";
import { evalRecords, pairedDifference, readMetrics } from "../../services/trainer/metrics.ts";
import { lineChartSvg, PALETTE } from "../../services/trainer/report/plot.ts";
import { svgToPng } from "../../services/trainer/report/svg.ts";

const here = join(repoRoot, "experiments", "method_comparison");
/** The methods with a preset in configs/ (configs/<method>.json). */
export const METHODS = ["d3po", "tailorpo", "rdpo_star", "rdpo"] as const;

export const METHOD_COMPARISON_FLAGS = {
  seeds: {
    type: "string",
    default: "1,2,3",
    description: "comma-separated integer seeds, one run per method each",
  },
  methods: {
    type: "string",
    default: METHODS.join(","),
    description: `comma-separated methods, each one of ${METHODS.join(", ")}`,
  },
  steps: {
    type: "int",
    min: 1,
    description: "training steps per run; unset: configs/base.json's training.steps",
  },
  out: {
    type: "string",
    default: "runs/method_comparison",
    description: "folder of the runs (one per method and seed; relative: to the repository root)",
  },
  collect: {
    type: "bool",
    description: "only tabulate the finished runs (no services, nothing trained)",
  },
} as const satisfies FlagSpecs;

/** "1,2,3" -> [1, 2, 3]; anything but non-negative integers is a FlagError naming --seeds. */
export function parseSeeds(raw: string): number[] {
  const parts = raw.split(",").map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new FlagError(`--seeds: "${raw}" is not a comma-separated list of non-negative integers`);
  }
  return parts.map(Number);
}

/** "d3po,rdpo" -> ["d3po", "rdpo"]; an unknown method is a FlagError naming --methods. */
export function parseMethods(raw: string): string[] {
  const parts = raw.split(",").map((s) => s.trim());
  const bad = parts.filter((p) => !(METHODS as readonly string[]).includes(p));
  if (bad.length) {
    throw new FlagError(`--methods: "${bad.join(",")}" is not one of ${METHODS.join(", ")}`);
  }
  return parts;
}

interface Settings {
  seeds: number[];
  methods: string[];
  steps?: number;
  out: string;
  collect: boolean;
}

const SCORERS = ["prompt_fidelity", "attribute_evaluator", "jpeg_compressibility", "colorfulness"];

/** One finished run: per-sample eval scores (base and tuned, same seeds), h curves, the adapter. */
interface RunResult {
  method: string;
  seed: number;
  seconds: number;
  adapterChecksum: string;
  optimizerSteps: number;
  base: Record<string, number[]>;
  tuned: Record<string, number[]>;
  /** Per optimizer step, in order: [h_w, h_l]. */
  h: [number, number][];
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && prev && typeof prev === "object"
      ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(p)) as Record<string, unknown>;

async function runOne(
  settings: Settings,
  method: string,
  seed: number,
  services: { policy: string; reward: string },
) {
  const runDir = join(settings.out, `${method}-seed-${seed}`);
  const resultPath = join(runDir, "result.json");
  try {
    return JSON.parse(await Deno.readTextFile(resultPath)) as RunResult;
  } catch { /* not run yet */ }
  let raw = merge(
    await readJson(join(here, "configs", "base.json")),
    await readJson(join(here, "configs", `${method}.json`)),
  );
  raw = merge(raw, {
    seed,
    run_dir: runDir,
    services,
    prompts: { file: join(repoRoot, (raw.prompts as { file: string }).file) },
    ...(settings.steps !== undefined ? { training: { steps: settings.steps } } : {}),
  });
  const config = parseConfig(JSON.stringify(raw), `${method} seed ${seed}`);
  const t0 = performance.now();
  const r = await train(config, { resume: true, log: (l) => console.error(`[${method} ${seed}] ${l}`) });
  const records = await readMetrics(join(runDir, "metrics.jsonl"));
  const evals = evalRecords(records);
  const pick = (model: string) =>
    Object.fromEntries(
      SCORERS.map((k) => [k, evals.filter((e) => e.model === model).at(-1)!.rewards[k].values!]),
    );
  const h: [number, number][] = records.flatMap((x) =>
    x.type === "step"
      ? (x.updates ?? (x.pairs ? [{ h_w: x.h_w, h_l: x.h_l }] : [])).map((u) =>
        [u.h_w, u.h_l] as [number, number]
      )
      : []
  );
  const result: RunResult = {
    method,
    seed,
    seconds: (performance.now() - t0) / 1000,
    adapterChecksum: r.adapterChecksum,
    optimizerSteps: r.optimizerStep,
    base: pick("base"),
    tuned: pick("policy"),
    h,
  };
  await Deno.writeTextFile(`${resultPath}.tmp`, JSON.stringify(result));
  await Deno.rename(`${resultPath}.tmp`, resultPath);
  return result;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stdErr = (xs: number[]) => {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1) / xs.length);
};
const fmt = (xs: number[], digits = 3) =>
  `${mean(xs).toFixed(digits)} ± ${Number.isNaN(stdErr(xs)) ? "n/a" : stdErr(xs).toFixed(digits)}`;

/** The tables (Markdown) of RESULTS.md from the finished runs, methods in the order given. */
export function resultTables(results: RunResult[], methods: readonly string[]): string {
  const lines: string[] = [];
  const bySeed = new Map<number, RunResult>();
  for (const r of results) if (!bySeed.has(r.seed)) bySeed.set(r.seed, r);
  lines.push(
    `| model | runs | ${SCORERS.join(" | ")} |`,
    `|---|---:|${SCORERS.map(() => "---:").join("|")}|`,
  );
  const baseRuns = [...bySeed.values()];
  lines.push(
    `| base | ${baseRuns.length} | ${
      SCORERS.map((k) => fmt(baseRuns.map((r) => mean(r.base[k])))).join(" | ")
    } |`,
  );
  for (const m of methods) {
    const rs = results.filter((r) => r.method === m);
    if (rs.length === 0) continue;
    lines.push(
      `| ${m} | ${rs.length} | ${SCORERS.map((k) => fmt(rs.map((r) => mean(r.tuned[k])))).join(" | ")} |`,
    );
  }
  lines.push(
    "",
    "Paired per seed (tuned - base over the same held-out samples; mean ± s.e. over seeds of the per-seed mean; improved = seeds whose mean rose):",
    "",
    `| method | ${SCORERS.map((k) => `Δ ${k}`).join(" | ")} | improved seeds (trained / evaluator) |`,
    `|---|${SCORERS.map(() => "---:").join("|")}|---|`,
  );
  for (const m of methods) {
    const rs = results.filter((r) => r.method === m);
    if (rs.length === 0) continue;
    const d = (k: string) => rs.map((r) => pairedDifference(r.base[k], r.tuned[k]).mean);
    const up = (k: string) => d(k).filter((x) => x > 0).length;
    lines.push(
      `| ${m} | ${SCORERS.map((k) => fmt(d(k))).join(" | ")} | ${up("prompt_fidelity")}/${rs.length} / ${
        up("attribute_evaluator")
      }/${rs.length} |`,
    );
  }
  lines.push(
    "",
    "Per run:",
    "",
    "| method | seed | optimizer steps | Δ prompt_fidelity | Δ attribute_evaluator | mean h_l (last quarter) | seconds | adapter sha256 |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
  );
  for (const r of results) {
    const tail = r.h.slice(Math.floor(r.h.length * 0.75));
    lines.push(
      `| ${r.method} | ${r.seed} | ${r.optimizerSteps} | ${
        pairedDifference(r.base.prompt_fidelity, r.tuned.prompt_fidelity).mean.toFixed(3)
      } | ${pairedDifference(r.base.attribute_evaluator, r.tuned.attribute_evaluator).mean.toFixed(3)} | ${
        tail.length ? mean(tail.map((x) => x[1])).toExponential(2) : "n/a"
      } | ${r.seconds.toFixed(0)} | \`${r.adapterChecksum.slice(0, 16)}\` |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** h_w (dashed) and h_l per optimizer step, averaged over seeds, for the given methods. */
function hChart(results: RunResult[], shown: string[]): string {
  const series = shown.flatMap((m, i) => {
    const rs = results.filter((r) => r.method === m);
    if (rs.length === 0) return [];
    const n = Math.min(...rs.map((r) => r.h.length));
    const avg = (j: 0 | 1) =>
      Array.from({ length: n }, (_, k) => [k + 1, mean(rs.map((r) => r.h[k][j]))] as const);
    return [
      { name: `${m} h_l`, points: avg(1), color: PALETTE[i] },
      { name: `${m} h_w`, points: avg(0), color: PALETTE[i], dashed: true, opacity: 0.6 },
    ];
  });
  return lineChartSvg({
    title: "h_w, h_l at training time (mean over each method's seeds)",
    series,
    xLabel: "optimizer step",
    yLabel: "log-ratio per dimension",
    zeroLine: true,
  });
}

async function methodComparison(values: FlagValues<typeof METHOD_COMPARISON_FLAGS>): Promise<void> {
  const settings: Settings = {
    seeds: parseSeeds(values.seeds),
    methods: parseMethods(values.methods),
    steps: values.steps,
    out: resolve(repoRoot, values.out),
    collect: values.collect,
  };
  const { seeds, methods } = settings;
  const started = performance.now();
  const bundles = ["prompt_fidelity", "attribute_evaluator"];
  const reward = new ServiceProcess("services/reward/main.ts", [
    "--model-root",
    join(repoRoot, "models"),
    "--preload",
    bundles.map((b) => `${b}@v1=${b}`).join(","),
  ]);
  const policy = new ServiceProcess("services/policy/main.ts", [
    "--model-dir",
    join(repoRoot, "models", "tiny"),
    "--lora-rank",
    "4",
    "--adapter-root",
    join(settings.out, `adapters-${seeds.join("-")}`),
  ]);
  const results: RunResult[] = [];
  const finished = async (m: string, s: number) => {
    try {
      return JSON.parse(
        await Deno.readTextFile(join(settings.out, `${m}-seed-${s}`, "result.json")),
      ) as RunResult;
    } catch {
      return null;
    }
  };
  // Only collecting finished runs (e.g. after one process per seed): no services needed.
  const done = await Promise.all(seeds.flatMap((s) => methods.map((m) => finished(m, s))));
  try {
    if (!settings.collect && done.some((r) => r === null)) {
      await Promise.all([reward.start(0, 300_000), policy.start(0, 300_000)]);
    }
    for (const seed of seeds) {
      for (const m of methods) {
        if (settings.collect && !(await finished(m, seed))) continue;
        const r = await runOne(settings, m, seed, { policy: policy.address, reward: reward.address });
        results.push(r);
        console.log(
          `${m} seed ${seed}: Δ prompt_fidelity ${
            pairedDifference(r.base.prompt_fidelity, r.tuned.prompt_fidelity).mean.toFixed(4)
          }, Δ evaluator ${
            pairedDifference(r.base.attribute_evaluator, r.tuned.attribute_evaluator).mean.toFixed(4)
          } (${r.seconds.toFixed(0)} s)`,
        );
      }
    }
  } finally {
    if (!settings.collect && done.some((r) => r === null)) await Promise.all([policy.stop(), reward.stop()]);
  }
  const tables = resultTables(results, methods);
  const svg = hChart(results, ["d3po", "rdpo_star", "rdpo"]);
  await Deno.writeTextFile(join(here, "h_l.svg"), svg);
  await Deno.writeFile(join(here, "h_l.png"), await svgToPng(svg));
  await Deno.writeTextFile(
    join(here, "results.json"),
    JSON.stringify(results.map(({ h: _h, ...r }) => r), null, 1) + "\n",
  );
  await Deno.writeTextFile(join(here, "tables.md"), tables);
  console.log(tables);
  console.log(`wall time ${((performance.now() - started) / 1000).toFixed(0)} s for ${results.length} runs`);
}

export const METHOD_COMPARISON_COMMAND: CommandSpec<typeof METHOD_COMPARISON_FLAGS> = {
  name: "experiments/method_comparison/run.ts",
  summary: "the method comparison: base, D3PO, TailorPO, RDPO* and RDPO on prompt_fidelity, several seeds",
  description: "Trains each (method, seed) not yet finished under --out (resumable: a finished run leaves " +
    "result.json), then writes results.json, tables.md and h_l.svg / h_l.png into " +
    "experiments/method_comparison/. Several processes may share one --out; --collect only tabulates.",
  flags: METHOD_COMPARISON_FLAGS,
  examples: [
    "deno run -A experiments/method_comparison/run.ts --seeds 1 --steps 4 --methods d3po",
    "deno run -A experiments/method_comparison/run.ts --collect --seeds 1,2,3",
  ],
  run: (values) => methodComparison(values),
};

if (import.meta.main) await runCommand(METHOD_COMPARISON_COMMAND);
