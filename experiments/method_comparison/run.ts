/**
 * The paper's method comparison on the embedded world (issue 20): base, D3PO, TailorPO, RDPO*
 * and RDPO, several seeds each, trained on `prompt_fidelity` in the peers' epoch structure
 * (configs/base.json; services/trainer/epoch.ts), evaluated on held-out prompts with the same
 * seeds under the trained reward, the held-out evaluator (`attribute_evaluator`, never trained
 * on), JPEG size and colourfulness. Writes results.json, RESULTS.md's generated tables, and the
 * h_w / h_l curves during training (h_l.svg, h_l.png: the paper's Figure 1 / 3b).
 *
 *   deno run -A experiments/method_comparison/run.ts [--seeds 1,2,3] [--methods d3po,tailorpo,rdpo_star,rdpo,rdpo_lambda_beta]
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
/**
 * `rdpo_lambda_beta` is RDPO with lambda = beta = 0.1: h here is a per-dimension mean log-ratio (~1e-5), so
 * the paper's lambda 100 makes the penalty outweigh the preference 1000 to 1 (RESULTS.md); lambda = beta
 * keeps both terms of the loss at one scale.
 */
export const METHODS = ["d3po", "tailorpo", "rdpo_star", "rdpo", "rdpo_lambda_beta"] as const;
/**
 * Training structures: `epoch` is configs/base.json's peers' epoch structure (several sample
 * batches, then minibatch updates over them, off-policy after the first); `per_batch` is one
 * update per fresh batch (on-policy, RDPO_SPEC.md section 6), the rest of the config unchanged.
 */
export const STRUCTURES = ["epoch", "per_batch"] as const;
const ON_POLICY = { sample_batches_per_epoch: 1, train_batch_size: null, num_inner_epochs: 1 };

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
  structures: {
    type: "string",
    default: "epoch",
    description: `comma-separated training structures, each one of ${
      STRUCTURES.join(", ")
    } (per_batch: on-policy)`,
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

/** Comma-separated values each one of `choices`; anything else is a FlagError naming `flag`. */
function parseChoices(flag: string, raw: string, choices: readonly string[]): string[] {
  const parts = raw.split(",").map((s) => s.trim());
  const bad = parts.filter((p) => !choices.includes(p));
  if (bad.length) throw new FlagError(`${flag}: "${bad.join(",")}" is not one of ${choices.join(", ")}`);
  return parts;
}

/** "epoch,per_batch" -> ["epoch", "per_batch"]; anything else is a FlagError naming --structures. */
export const parseStructures = (raw: string): string[] => parseChoices("--structures", raw, STRUCTURES);

/** A run's name in the tables and its folder: the method, with " (on-policy)" / "-per_batch" for per_batch. */
export const runLabel = (method: string, structure: string) =>
  structure === "epoch" ? method : `${method} (on-policy)`;
export const runDirName = (method: string, structure: string, seed: number) =>
  structure === "epoch" ? `${method}-seed-${seed}` : `${method}-${structure}-seed-${seed}`;

/**
 * SIGTERM / SIGINT: the first aborts `controller` (the trainer checkpoints and returns, the caller
 * stops its services in `finally`); a second calls `hardStop` (kill the services now, exit). So a
 * stopped comparison never leaves service processes behind. Returns the remover of the listeners.
 */
export function onStopSignals(controller: AbortController, hardStop: () => void): () => void {
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  const handler = () => {
    if (controller.signal.aborted) hardStop();
    else controller.abort(new Error("stopped by a signal"));
  };
  for (const sig of signals) Deno.addSignalListener(sig, handler);
  return () => {
    for (const sig of signals) Deno.removeSignalListener(sig, handler);
  };
}

/** "d3po,rdpo" -> ["d3po", "rdpo"]; an unknown method is a FlagError naming --methods. */
export const parseMethods = (raw: string): string[] => parseChoices("--methods", raw, METHODS);

interface Settings {
  seeds: number[];
  methods: string[];
  structures: string[];
  steps?: number;
  out: string;
  collect: boolean;
}

const SCORERS = ["prompt_fidelity", "attribute_evaluator", "jpeg_compressibility", "colorfulness"];

/** One finished run: per-sample eval scores (base and tuned, same seeds), h curves, the adapter. */
interface RunResult {
  method: string;
  /** STRUCTURES; absent in results written before structures existed: "epoch". */
  structure?: string;
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
  structure: string,
  seed: number,
  services: { policy: string; reward: string },
  signal: AbortSignal,
) {
  const runDir = join(settings.out, runDirName(method, structure, seed));
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
    training: {
      ...(settings.steps !== undefined ? { steps: settings.steps } : {}),
      ...(structure === "per_batch" ? ON_POLICY : {}),
    },
  });
  const config = parseConfig(JSON.stringify(raw), `${method} seed ${seed}`);
  const t0 = performance.now();
  const tag = `[${runLabel(method, structure)} ${seed}]`;
  const r = await train(config, { resume: true, signal, log: (l) => console.error(`${tag} ${l}`) });
  // Stopped mid-run: the checkpoint lets a later call resume; no result.json for a partial run.
  if (signal.aborted) throw signal.reason;
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
    structure,
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

const labelOf = (r: RunResult) => runLabel(r.method, r.structure ?? "epoch");

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stdErr = (xs: number[]) => {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1) / xs.length);
};
const fmt = (xs: number[], digits = 3) =>
  `${mean(xs).toFixed(digits)} ± ${Number.isNaN(stdErr(xs)) ? "n/a" : stdErr(xs).toFixed(digits)}`;

/** The tables (Markdown) of RESULTS.md from the finished runs, run labels (runLabel) in the order given. */
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
    const rs = results.filter((r) => labelOf(r) === m);
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
    const rs = results.filter((r) => labelOf(r) === m);
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
      `| ${labelOf(r)} | ${r.seed} | ${r.optimizerSteps} | ${
        pairedDifference(r.base.prompt_fidelity, r.tuned.prompt_fidelity).mean.toFixed(3)
      } | ${pairedDifference(r.base.attribute_evaluator, r.tuned.attribute_evaluator).mean.toFixed(3)} | ${
        tail.length ? mean(tail.map((x) => x[1])).toExponential(2) : "n/a"
      } | ${r.seconds.toFixed(0)} | \`${r.adapterChecksum.slice(0, 16)}\` |`,
    );
  }
  return lines.join("\n") + "\n";
}

/** h_w (dashed) and h_l per optimizer step, averaged over seeds, for the given methods. */
function hChart(results: RunResult[], shown: string[], structure: string): string {
  const series = shown.flatMap((m, i) => {
    const rs = results.filter((r) => labelOf(r) === m);
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
    title: `h_w, h_l at training time, ${structure} (mean over each method's seeds)`,
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
    structures: parseStructures(values.structures),
    steps: values.steps,
    out: resolve(repoRoot, values.out),
    collect: values.collect,
  };
  const { seeds, methods, structures } = settings;
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
    join(settings.out, `adapters-${structures.join("-")}-${seeds.join("-")}`),
  ]);
  const results: RunResult[] = [];
  const finished = async (m: string, structure: string, s: number) => {
    try {
      return JSON.parse(
        await Deno.readTextFile(join(settings.out, runDirName(m, structure, s), "result.json")),
      ) as RunResult;
    } catch {
      return null;
    }
  };
  const planned = structures.flatMap((st) => seeds.flatMap((s) => methods.map((m) => [st, s, m] as const)));
  // Only collecting finished runs (e.g. after one process per seed): no services needed.
  const done = await Promise.all(planned.map(([st, s, m]) => finished(m, st, s)));
  const needServices = !settings.collect && done.some((r) => r === null);
  const controller = new AbortController();
  const removeSignals = onStopSignals(controller, () => {
    console.error("second stop signal: killing the services");
    Promise.all([policy.kill(), reward.kill()]).finally(() => Deno.exit(143));
  });
  try {
    if (needServices) await Promise.all([reward.start(0, 300_000), policy.start(0, 300_000)]);
    for (const [structure, seed, m] of planned) {
      if (controller.signal.aborted) throw controller.signal.reason;
      if (settings.collect && !(await finished(m, structure, seed))) continue;
      const r = await runOne(
        settings,
        m,
        structure,
        seed,
        { policy: policy.address, reward: reward.address },
        controller.signal,
      );
      results.push(r);
      console.log(
        `${runLabel(m, structure)} seed ${seed}: Δ prompt_fidelity ${
          pairedDifference(r.base.prompt_fidelity, r.tuned.prompt_fidelity).mean.toFixed(4)
        }, Δ evaluator ${
          pairedDifference(r.base.attribute_evaluator, r.tuned.attribute_evaluator).mean.toFixed(4)
        } (${r.seconds.toFixed(0)} s)`,
      );
    }
  } finally {
    if (needServices) await Promise.all([policy.stop(), reward.stop()]);
    removeSignals();
  }
  const labels = structures.flatMap((st) => methods.map((m) => runLabel(m, st)));
  const tables = resultTables(results, labels);
  for (const st of structures) {
    const shown = ["d3po", "rdpo_star", "rdpo", "rdpo_lambda_beta"].map((m) => runLabel(m, st));
    const svg = hChart(results, shown, st === "epoch" ? "peers' epoch structure" : "on-policy, per batch");
    const name = st === "epoch" ? "h_l" : `h_l_${st}`;
    await Deno.writeTextFile(join(here, `${name}.svg`), svg);
    await Deno.writeFile(join(here, `${name}.png`), await svgToPng(svg));
  }
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
