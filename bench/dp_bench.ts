/**
 * Data-parallel RDPO on loopback (issue 18): steps per second and the per-step time split with
 * P = 1, 2, 3 policy processes (and the one-address path as a baseline), the reduction's own cost
 * per step and the gradient bytes moved per step. Every policy process shares this machine's cores,
 * so the scaling is bounded by them; the reduction share and the bytes are what carries over.
 *
 *   deno task bench --only dp
 *   deno run -A bench/dp_bench.ts [--steps 4] [--batch 6]
 */
import { join } from "node:path";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { train } from "../services/trainer/loop.ts";
import { readMetrics, type StepMetrics } from "../services/trainer/metrics.ts";
import { loopbackCluster } from "../services/trainer/testing/cluster.ts";

export interface DpBenchRow {
  label: string;
  steps: number;
  stepsPerSecond: number;
  /** Mean ms per step of each phase (the slowest replica's, for sample/score/train). */
  phases: Record<string, number>;
  wireMs: number;
  stepMs: number;
  gradientBytes: number;
}

const PHASES = ["sample", "score", "train", "reduce", "apply"];

export async function runDpBench(options: { steps?: number; batch?: number } = {}): Promise<DpBenchRow[]> {
  const steps = options.steps ?? 4;
  const cluster = await loopbackCluster(3);
  await cluster.start();
  const rows: DpBenchRow[] = [];
  try {
    const all = cluster.addresses();
    const runs: [string, string | string[]][] = [
      ["one address", all[0]],
      ["P = 1", all.slice(0, 1)],
      ["P = 2", all.slice(0, 2)],
      ["P = 3", all],
    ];
    for (const [label, policy] of runs) {
      const runDir = `bench-${rows.length}`;
      const overrides = {
        training: { steps: steps + 1, prompt_batch_size: options.batch ?? 6 },
        checkpoint: { every: 1000, keep_last: 1 },
      };
      console.error(`dp bench: ${label}, ${steps + 1} steps`);
      await train(cluster.config(runDir, policy, overrides), {
        progress: "none",
        log: () => {},
        skipEvaluation: true,
      });
      // The first step warms every process up (JIT, kernels): it is left out.
      const records = (await readMetrics(join(cluster.tmp, runDir, "metrics.jsonl")))
        .filter((r): r is StepMetrics => r.type === "step").slice(1);
      const mean = (f: (r: StepMetrics) => number) => records.reduce((a, r) => a + f(r), 0) / records.length;
      const stepMs = mean((r) => r.step_seconds * 1000);
      rows.push({
        label,
        steps: records.length,
        stepsPerSecond: 1000 / stepMs,
        phases: Object.fromEntries(PHASES.map((p) => [p, mean((r) => r.phases[p] ?? 0)])),
        wireMs: mean((r) => r.wire_ms),
        stepMs,
        gradientBytes: mean((r) => r.gradient_bytes ?? 0),
      });
    }
  } finally {
    await cluster.stop();
  }
  return rows;
}

export function formatDpBench(rows: DpBenchRow[]): string {
  const head = [
    "policy",
    "steps/s",
    "step ms",
    ...PHASES.map((p) => `${p} ms`),
    "wire ms",
    "reduce % of step",
    "gradient bytes/step",
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const r of rows) {
    lines.push(
      `| ${
        [
          r.label,
          r.stepsPerSecond.toFixed(3),
          r.stepMs.toFixed(0),
          ...PHASES.map((p) => r.phases[p].toFixed(1)),
          r.wireMs.toFixed(0),
          ((100 * r.phases.reduce) / r.stepMs).toFixed(2),
          Math.round(r.gradientBytes).toLocaleString("en-US"),
        ].join(" | ")
      } |`,
    );
  }
  return lines.join("\n");
}

export const DP_BENCH_FLAGS = {
  steps: {
    type: "int",
    default: 4,
    min: 1,
    description: "measured steps per configuration (one more runs first as a warm-up)",
  },
  batch: { type: "int", default: 6, min: 1, description: "prompts per step (training.prompt_batch_size)" },
} as const satisfies FlagSpecs;

export const DP_BENCH_COMMAND: CommandSpec<typeof DP_BENCH_FLAGS> = {
  name: "bench/dp_bench.ts",
  summary: "data-parallel RDPO steps with 1-3 policy processes on loopback (a table)",
  flags: DP_BENCH_FLAGS,
  examples: ["deno run -A bench/dp_bench.ts", "deno run -A bench/dp_bench.ts --steps 2 --batch 3"],
  async run(values) {
    console.log(formatDpBench(await runDpBench({ steps: values.steps, batch: values.batch })));
  },
};

if (import.meta.main) await runCommand(DP_BENCH_COMMAND);
