/**
 * Samples a model folder into a labelled PNG grid (rows: prompts, columns: seeds), through the same
 * policy core the service runs (DDIM, classifier-free guidance, seeded noise).
 *
 *   deno run -A tools/sample_grid.ts --model-dir runs/pretrain/model --out grid.png \
 *     [--prompts "a red circle on a blue background;two small green squares on a white background"] \
 *     [--samples 4] [--steps 20] [--guidance 3]
 */
import { BACKENDS, initBackend, parseBackendName } from "../lib/tensor/backend.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import type { FlagSpecs, FlagValues } from "../lib/rpc/flags.ts";
import { PolicyCore } from "../services/policy/core.ts";
import { loadPipeline } from "../services/policy/pipeline.ts";
import { writeSampleGrid } from "../services/trainer/report/grid.ts";

export const DEFAULT_GRID_PROMPTS = [
  "a red circle on a blue background",
  "a large yellow square on a black background",
  "two small green triangles on a white background",
  "three blue crosses on a pink background",
  "a purple ring at the top left on a gray background",
  "a large orange circle on a green background with white stripes",
];

export const SAMPLE_GRID_FLAGS = {
  modelDir: { type: "string", required: true, description: "diffusers-layout model folder" },
  out: { type: "string", default: "grid.png", description: "PNG to write" },
  prompts: {
    type: "string",
    default: DEFAULT_GRID_PROMPTS.join(";"),
    description: "semicolon-separated rows",
  },
  samples: { type: "int", default: 4, min: 1, description: "seeds (columns) per prompt" },
  steps: { type: "int", default: 20, min: 1, description: "DDIM steps" },
  guidance: { type: "number", default: 3, min: 0, description: "classifier-free guidance scale" },
  seed: { type: "int", default: 0, min: 0, description: "noise seed" },
  backend: { type: "string", default: "wasm", choices: BACKENDS, description: "tfjs backend" },
} as const satisfies FlagSpecs;

async function sampleGrid(values: FlagValues<typeof SAMPLE_GRID_FLAGS>): Promise<void> {
  await initBackend(parseBackendName(values.backend));
  const pipeline = await loadPipeline(values.modelDir);
  const core = new PolicyCore(pipeline, {
    role: "reference",
    lora: { rank: 1 },
    adapterRoot: ".",
    maxBatch: 64,
    backend: values.backend,
  });
  const prompts = values.prompts.split(";").map((p) => p.trim()).filter(Boolean);
  const n = values.samples;
  const rows = [];
  for (const [i, prompt] of prompts.entries()) {
    const r = await core.generate({
      conditioning: { prompts: new Array(n).fill(prompt) },
      step: {
        sampler: "ddim",
        numInferenceSteps: values.steps,
        eta: 1.0,
        guidanceScale: values.guidance,
        reduction: "mean",
      },
      noise: { seed: BigInt(values.seed), stream: BigInt(i * n) },
      batch: n,
      role: "reference",
    });
    rows.push(r.images);
  }
  await writeSampleGrid(values.out, {
    title: `${values.modelDir}: DDIM ${values.steps} steps, eta 1, guidance ${values.guidance}`,
    images: rows,
    rowLabels: prompts,
    columnLabels: Array.from({ length: n }, (_, i) => `seed ${i + 1}`),
    cellSize: 96,
  });
  console.log(`wrote ${values.out}`);
  core.dispose();
}

export const SAMPLE_GRID_COMMAND: CommandSpec<typeof SAMPLE_GRID_FLAGS> = {
  name: "tools/sample_grid.ts",
  summary: "samples a model folder into a labelled PNG grid (rows: prompts, columns: seeds)",
  flags: SAMPLE_GRID_FLAGS,
  examples: ["deno run -A tools/sample_grid.ts --model-dir models/tiny --out grid.png --samples 2"],
  run: (values) => sampleGrid(values),
};

if (import.meta.main) await runCommand(SAMPLE_GRID_COMMAND);
