/**
 * Samples a model folder into a labelled PNG grid (rows: prompts, columns: seeds), through the same
 * policy core the service runs (DDIM, classifier-free guidance, seeded noise).
 *
 *   deno run -A tools/sample_grid.ts --model-dir runs/pretrain/model --out grid.png \
 *     [--prompts "a red circle on a blue background;two small green squares on a white background"] \
 *     [--samples 4] [--steps 20] [--guidance 3]
 */
import { parseArgs } from "node:util";
import { initBackend, parseBackendName } from "../lib/tensor/backend.ts";
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

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "model-dir": { type: "string" },
    out: { type: "string", default: "grid.png" },
    prompts: { type: "string", default: DEFAULT_GRID_PROMPTS.join(";") },
    samples: { type: "string", default: "4" },
    steps: { type: "string", default: "20" },
    guidance: { type: "string", default: "3" },
    seed: { type: "string", default: "0" },
    backend: { type: "string", default: "wasm" },
  },
});
if (!values["model-dir"]) {
  console.error("--model-dir is required");
  Deno.exit(2);
}
await initBackend(parseBackendName(values.backend!));
const pipeline = await loadPipeline(values["model-dir"]);
const core = new PolicyCore(pipeline, {
  role: "reference",
  lora: { rank: 1 },
  adapterRoot: ".",
  maxBatch: 64,
  backend: values.backend!,
});
const prompts = values.prompts!.split(";").map((p) => p.trim()).filter(Boolean);
const n = Number(values.samples);
const rows = [];
for (const [i, prompt] of prompts.entries()) {
  const r = await core.generate({
    conditioning: { prompts: new Array(n).fill(prompt) },
    step: {
      sampler: "ddim",
      numInferenceSteps: Number(values.steps),
      eta: 1.0,
      guidanceScale: Number(values.guidance),
      reduction: "mean",
    },
    noise: { seed: BigInt(values.seed!), stream: BigInt(i * n) },
    batch: n,
    role: "reference",
  });
  rows.push(r.images);
}
await writeSampleGrid(values.out!, {
  title: `${values["model-dir"]}: DDIM ${values.steps} steps, eta 1, guidance ${values.guidance}`,
  images: rows,
  rowLabels: prompts,
  columnLabels: Array.from({ length: n }, (_, i) => `seed ${i + 1}`),
  cellSize: 96,
});
console.log(`wrote ${values.out}`);
core.dispose();
