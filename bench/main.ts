/**
 * `deno task bench`: every benchmark of the project, each printed as a Markdown table.
 *
 *   deno task bench                      all sections
 *   deno task bench --only wire,model    some: wire, model, scorers, reward, dp, security
 *   deno task bench --only sd15 [--quick] [--backend webgpu] [--out FILE]   SD1.5 at full width
 *
 * Sections: gRPC wire cost of SD1.5-shaped payloads vs in-process (bench/wire_bench.ts) and an RDPO
 * step's RPCs, bytes and wire time (bench/step_wire_bench.ts), a Session message hop by hop
 * (bench/session_hop_probe.ts) and the bare grpc-js floor under it (bench/grpc_floor_probe.ts); UNet forward GFLOP/s and LoRA train step
 * per tfjs backend (services/policy/model/bench.ts); CLIP preprocessing before/after and scorer
 * throughput vs raw ONNX Runtime on the fixture CLIP (services/reward/preprocess/bench.ts,
 * services/reward/scorers/bench.ts, need ../shared); the reward service vs direct scorer calls and
 * batched vs batch-1 under 32 clients (services/reward/bench.ts); data-parallel RDPO steps with 1-3
 * policy processes on loopback (bench/dp_bench.ts); plaintext vs TLS vs mutual TLS (+ token) per new
 * channel and per call (bench/security_bench.ts); SD1.5 at full width, only when named
 * (services/policy/model/sd15/bench.ts).
 * Timings depend on the machine and its load: the tables are measurements, not assertions.
 */
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import { FlagError, type FlagSpecs, type FlagValues } from "../lib/rpc/flags.ts";
import { formatWireBench, runWireBench } from "./wire_bench.ts";
import { runSd15Section, SD15_BENCH_FLAGS } from "../services/policy/model/sd15/bench_section.ts";

const SECTIONS = ["wire", "model", "scorers", "reward", "dp", "security"] as const;
/** Sections run only when named in --only (they load a full-size model). */
const OPT_IN = ["sd15"] as const;
const ALL = [...SECTIONS, ...OPT_IN] as readonly string[];

export const BENCH_FLAGS = {
  only: {
    type: "string",
    default: SECTIONS.join(","),
    description: `comma-separated sections: ${ALL.join(", ")} (${OPT_IN.join(", ")} only when named)`,
  },
  ...SD15_BENCH_FLAGS,
} as const satisfies FlagSpecs;

/** Runs bench/<script> in its own process and returns its stdout. */
async function runBenchScript(script: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`bench/${script} exited with ${out.code}`);
  return new TextDecoder().decode(out.stdout);
}

async function bench(values: FlagValues<typeof BENCH_FLAGS>): Promise<void> {
  const only = new Set(values.only.split(",").map((s) => s.trim()));
  for (const s of only) {
    if (!ALL.includes(s)) throw new FlagError(`--only: unknown section "${s}" (${ALL.join(", ")})`);
  }

  console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} logical cores\n`);

  if (only.has("wire")) {
    console.log("## gRPC wire cost (loopback) vs in-process\n");
    console.log(formatWireBench(await runWireBench({ iterations: 100 })) + "\n");
    const { formatStepWireBench, formatWireBreakdown, runStepWireBench } = await import(
      "./step_wire_bench.ts"
    );
    console.log(
      "## RDPO step on the wire (tiny model, real service processes; before and after interleaved)\n",
    );
    const stepRows = await runStepWireBench({ steps: 5 });
    console.log(formatStepWireBench(stepRows) + "\n");
    console.log("Where the wire time goes, per RPC (medians per step):\n");
    console.log(formatWireBreakdown(stepRows) + "\n");
    // Subprocesses: the hop probe must set RDPO_HOP_TRACE before lib/rpc loads.
    console.log("A Session message hop by hop (bench/session_hop_probe.ts, ms per message):\n");
    console.log(await runBenchScript("session_hop_probe.ts", ["--steps", "6", "--summary"]));
    console.log(
      "The transport floor under it: bare grpc-js bidi, two processes (bench/grpc_floor_probe.ts):\n",
    );
    console.log(await runBenchScript("grpc_floor_probe.ts", []));
  }
  if (only.has("model")) {
    const { formatTable, runModelBench } = await import("../services/policy/model/bench.ts");
    console.log("## UNet forward and LoRA train step per backend\n");
    console.log(formatTable(await runModelBench({ iters: 3 })) + "\n");
  }
  if (only.has("scorers")) {
    const { formatPreprocessBench, runPreprocessBench } = await import(
      "../services/reward/preprocess/bench.ts"
    );
    console.log("## CLIP preprocessing: reference port vs cached plan + wasm SIMD (interleaved)\n");
    console.log(formatPreprocessBench(runPreprocessBench({ rounds: 9 })) + "\n");
    const { formatPoolBench, runPoolBench } = await import("../services/reward/preprocess/pool_bench.ts");
    console.log(formatPoolBench(await runPoolBench({ rounds: 9 })) + "\n");
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
    const { formatRewardBench, formatRewardGoals, runRewardBench } = await import(
      "../services/reward/bench.ts"
    );
    console.log("## Reward service: gRPC vs direct, batched vs batch-1 (32 clients)\n");
    const { model, rows } = await runRewardBench({ rounds: 3 });
    console.log(formatRewardBench(model, rows) + "\n\n" + formatRewardGoals(rows) + "\n");
  }
  if (only.has("dp")) {
    const { formatDpBench, runDpBench } = await import("./dp_bench.ts");
    console.log("## Data-parallel RDPO: policy replicas on loopback (tiny model, 6 prompts per step)\n");
    console.log(formatDpBench(await runDpBench()) + "\n");
  }
  if (only.has("security")) {
    const { formatSecurityBench, runSecurityBench } = await import("./security_bench.ts");
    console.log("## Transport security and tokens: handshake and per-call cost (loopback)\n");
    console.log(formatSecurityBench(await runSecurityBench()) + "\n");
  }
  if (only.has("sd15")) await runSd15Section(values);
}

export const BENCH_COMMAND: CommandSpec<typeof BENCH_FLAGS> = {
  name: "bench",
  summary: "every benchmark of the project, each printed as a Markdown table",
  flags: BENCH_FLAGS,
  examples: [
    "deno task bench",
    "deno task bench --only wire,model",
    "deno task bench --only dp,security",
    "deno task bench --only sd15 --quick",
  ],
  run: (values) => bench(values),
};

if (import.meta.main) await runCommand(BENCH_COMMAND);
