/**
 * Prints the expected memory of SD1.5 passes from their shapes (memory.ts):
 *
 *   deno run -A services/policy/model/sd15/memory_main.ts [--latent 64] [--pairs 2] [--limit-mib 128]
 */
import type { FlagSpecs } from "../../../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../../../lib/cli/command.ts";
import { estimateUNetMemory, formatMemoryRows } from "./memory.ts";
import { modelSpec } from "./specs.ts";

export const SD15_MEMORY_FLAGS = {
  latent: { type: "int", default: 64, min: 1, description: "latent height and width" },
  pairs: { type: "int", default: 2, min: 1, description: "preference pairs of the train step" },
  limitMib: { type: "int", default: 128, min: 0, description: "tensor limit in MiB (0: none)" },
} as const satisfies FlagSpecs;

export const SD15_MEMORY_COMMAND: CommandSpec<typeof SD15_MEMORY_FLAGS> = {
  name: "services/policy/model/sd15/memory_main.ts",
  summary: "expected memory of SD1.5 UNet passes (with and without checkpointing), from shapes only",
  flags: SD15_MEMORY_FLAGS,
  examples: [
    "deno run -A services/policy/model/sd15/memory_main.ts",
    "deno run -A services/policy/model/sd15/memory_main.ts --latent 32 --pairs 1 --limit-mib 0",
  ],
  async run(values) {
    const t0 = performance.now();
    const rows = await estimateUNetMemory({
      unetConfig: modelSpec("sd15").unet,
      latent: values.latent,
      pairs: values.pairs,
      contextLength: 77,
      tensorLimitBytes: values.limitMib ? values.limitMib * 2 ** 20 : null,
      checkpointing: [false, true],
    });
    console.log(
      `SD1.5 UNet, ${values.latent}x${values.latent} latents, ${values.pairs} pairs + CFG, shapes only:\n`,
    );
    console.log(formatMemoryRows(rows));
    console.log(`\n(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  },
};

if (import.meta.main) await runCommand(SD15_MEMORY_COMMAND);
