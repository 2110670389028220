/**
 * Prints the expected memory of SD1.5 passes from their shapes (memory.ts):
 *
 *   deno run -A services/policy/model/sd15/memory_main.ts [--latent 64] [--pairs 2] [--limit-mib 128]
 */
import { parseFlags } from "../../../../lib/rpc/flags.ts";
import { estimateUNetMemory, formatMemoryRows } from "./memory.ts";
import { modelSpec } from "./specs.ts";

const { values } = parseFlags(Deno.args, {
  latent: { type: "int", default: 64, min: 1, description: "latent height and width" },
  pairs: { type: "int", default: 2, min: 1, description: "preference pairs of the train step" },
  limitMib: { type: "int", default: 128, min: 0, description: "tensor limit in MiB (0: none)" },
});
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
