/** The `sd15` section of `deno task bench`: its flags and what it prints (bench.ts does the work). */
import { dirname } from "node:path";
import type { FlagSpecs } from "../../../../lib/rpc/flags.ts";
import { type BackendName, BACKENDS, parseBackendName } from "../../../../lib/tensor/backend.ts";
import { runSd15Bench } from "./bench.ts";
import { formatSd15Bench } from "./bench_format.ts";
import { MODEL_SPECS } from "./specs.ts";
import { formatTorchTimings, readTorchTimings, torchRatios } from "./torch_baseline.ts";

export const SD15_BENCH_FLAGS = {
  quick: {
    type: "bool",
    description:
      "sd15: the same code on sd15-mini (SD1.5's layout, small widths) at 8x8 latents (CI, no GPU)",
  },
  config: {
    type: "string",
    default: "",
    choices: ["", ...Object.keys(MODEL_SPECS)],
    description: "sd15: model spec of the random weights (default: sd15-mini with --quick, else sd15)",
  },
  latent: { type: "int", default: 0, min: 0, description: "sd15: latent side (0: 8 with --quick, else 64)" },
  pairs: { type: "int", default: 2, min: 1, description: "sd15: prompts sampled = pairs of the train step" },
  backend: {
    type: "string",
    default: "",
    choices: ["", ...BACKENDS],
    description: "sd15: tfjs backend (default: webgpu when an adapter exists, else cpu)",
  },
  modelDir: { type: "string", default: "", description: "sd15: load this folder instead of random weights" },
  variant: { type: "string", default: "", description: 'sd15: weight variant of --model-dir, e.g. "fp16"' },
  requireGpu: { type: "bool", description: "sd15: refuse to time on a fallback (software) adapter" },
  iters: { type: "int", default: 0, min: 0, description: "sd15: timed repetitions (0: 1 quick, 3 full)" },
  firstOnly: {
    type: "bool",
    description: "sd15: time the first call of each row only (full width on a software adapter)",
  },
  out: { type: "string", default: "", description: "sd15: also write the table (Markdown) and JSON here" },
  torchJson: {
    type: "string",
    default: "",
    description: "sd15: PyTorch eager timings (bench/gpu/torch_unet.py) for the ratio column",
  },
} as const satisfies FlagSpecs;

export async function runSd15Section(values: {
  quick: boolean;
  config: string;
  latent: number;
  pairs: number;
  firstOnly: boolean;
  backend: string;
  modelDir: string;
  variant: string;
  requireGpu: boolean;
  iters: number;
  out: string;
  torchJson: string;
}): Promise<void> {
  const config = values.config || (values.quick ? "sd15-mini" : "sd15");
  console.log(
    `## Stable Diffusion 1.5 ${config === "sd15" ? "at full width" : `layout at reduced width (${config})`}${
      values.quick ? " (--quick)" : ""
    }\n`,
  );
  const result = await runSd15Bench({
    quick: values.quick,
    config,
    latent: values.latent || undefined,
    pairs: values.pairs,
    backend: values.backend ? parseBackendName(values.backend) as BackendName : undefined,
    modelDir: values.modelDir || undefined,
    variant: values.variant,
    requireHardware: values.requireGpu,
    iters: values.firstOnly ? 0 : values.iters || undefined,
  });
  const torch = values.torchJson ? await readTorchTimings(values.torchJson) : null;
  let table = formatSd15Bench(result, torch ? torchRatios(result.rows, torch) : undefined);
  if (torch) table += "\n\n" + formatTorchTimings(torch);
  console.log(table + "\n");
  if (values.out) {
    // The table is what a GPU run leaves behind: its folder is made rather than the run lost.
    await Deno.mkdir(dirname(values.out) || ".", { recursive: true });
    await Deno.writeTextFile(values.out, table + "\n");
    await Deno.writeTextFile(`${values.out}.json`, JSON.stringify(result, null, 2) + "\n");
  }
}
