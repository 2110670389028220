/**
 * Entry point of the sd15 table alone (what bench/gpu/run.sh bundles into one file with
 * `deno bundle`, so the GPU machine needs Deno and nothing else): same flags as
 * `deno task bench --only sd15`. The bundle answers --help and bad flags as this script does.
 */
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { runSd15Section, SD15_BENCH_FLAGS } from "../../services/policy/model/sd15/bench_section.ts";

export const SD15_GPU_BENCH_COMMAND: CommandSpec<typeof SD15_BENCH_FLAGS> = {
  name: "bench/gpu/sd15_main.ts",
  summary: "the SD1.5 table alone (deno task bench --only sd15), the entry point bench/gpu/run.sh bundles",
  description: "On the GPU machine it runs as the bundle .gpu/sd15bench.js (bash bench/gpu/run.sh).",
  flags: SD15_BENCH_FLAGS,
  examples: [
    "deno run -A bench/gpu/sd15_main.ts --quick --out .tmp/sd15.md",
    "deno run -A .gpu/sd15bench.js --require-gpu --iters 2 --torch-json /tmp/gpu/torch.json",
  ],
  run: (values) => runSd15Section(values),
};

if (import.meta.main) await runCommand(SD15_GPU_BENCH_COMMAND);
