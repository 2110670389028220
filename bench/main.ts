/**
 * `deno task bench`: every benchmark of the project, each printed as a Markdown table.
 *
 *   deno task bench                      all sections
 *   deno task bench --only wire,model    some: wire, model, scorers, reward
 *   deno task bench --only sd15 [--quick] [--backend webgpu] [--out FILE]   SD1.5 at full width
 *
 * Sections: gRPC wire cost of SD1.5-shaped payloads vs in-process (bench/wire_bench.ts); UNet forward
 * GFLOP/s and LoRA train step per tfjs backend (services/policy/model/bench.ts); scorer throughput vs
 * raw ONNX Runtime on the fixture CLIP (services/reward/scorers/bench.ts, needs ../shared); the reward
 * service vs direct scorer calls and batched vs batch-1 under 32 clients (services/reward/bench.ts).
 * Timings depend on the machine and its load: the tables are measurements, not assertions.
 */
import { parseFlags } from "../lib/rpc/flags.ts";
import { formatWireBench, runWireBench } from "./wire_bench.ts";
import { runSd15Section, SD15_BENCH_FLAGS } from "../services/policy/model/sd15/bench_section.ts";

const SECTIONS = ["wire", "model", "scorers", "reward"] as const;
/** Sections run only when named in --only (they load a full-size model). */
const OPT_IN = ["sd15"] as const;
const { values } = parseFlags(Deno.args, {
  only: {
    type: "string",
    default: SECTIONS.join(","),
    description: `comma-separated: ${[...SECTIONS, ...OPT_IN].join(", ")}`,
  },
  ...SD15_BENCH_FLAGS,
});
const only = new Set(values.only.split(",").map((s) => s.trim()));
for (const s of only) {
  if (![...SECTIONS, ...OPT_IN].includes(s as typeof SECTIONS[number])) {
    console.error(`--only: unknown section "${s}" (${[...SECTIONS, ...OPT_IN].join(", ")})`);
    Deno.exit(2);
  }
}

console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} logical cores\n`);

if (only.has("wire")) {
  console.log("## gRPC wire cost (loopback) vs in-process\n");
  console.log(formatWireBench(await runWireBench({ iterations: 100 })) + "\n");
}
if (only.has("model")) {
  const { formatTable, runModelBench } = await import("../services/policy/model/bench.ts");
  console.log("## UNet forward and LoRA train step per backend\n");
  console.log(formatTable(await runModelBench({ iters: 3 })) + "\n");
}
if (only.has("scorers")) {
  console.log("## Scorers vs raw session.run (fixture CLIP)\n");
  try {
    const { benchScorers } = await import("../services/reward/scorers/bench.ts");
    await benchScorers({ batches: [1, 8], seconds: 2 });
  } catch (e) {
    console.log(`skipped: ${(e as Error).message}`);
  }
  console.log();
}
if (only.has("reward")) {
  const { formatRewardBench, runRewardBench } = await import("../services/reward/bench.ts");
  console.log("## Reward service: gRPC vs direct, batched vs batch-1 (32 clients)\n");
  const { model, rows } = await runRewardBench({ rounds: 3 });
  console.log(formatRewardBench(model, rows) + "\n");
}
if (only.has("sd15")) await runSd15Section(values);
