/**
 * Per-kernel profile of the CLIP preprocessing (resize_wasm.ts `profile`): for each input size, the
 * min over `--reps` runs of each phase of one image's resize-crop-normalize to 224 — copying the
 * source rows into wasm memory, the horizontal pass (every kernel of HORIZONTAL_KERNELS), vertical,
 * normalize, copying the float32 out — beside the whole call, so the JS around the kernels is the
 * difference. Prints a Markdown table (ms per image).
 *
 *   deno run -A services/reward/preprocess/kernel_profile.ts [--reps 30]
 */

import type { FlagSpecs } from "../../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../../lib/cli/command.ts";
import { buildResizeCropPlan } from "./resize_plan.ts";
import { HORIZONTAL_KERNELS, WasmResampler } from "./resize_wasm.ts";
import { centerCropOffsets, shortestEdgeSize } from "./clip_image.ts";
import { noise } from "./noise_image.ts";
import { BENCH_INPUTS } from "./bench.ts";

const PHASES = [
  "copyIn",
  ...HORIZONTAL_KERNELS.map((k) => `h:${k}`),
  "horizontal",
  "vertical",
  "normalize",
  "copyOut",
  "wholeCall",
];

export function runKernelProfile(
  reps: number,
  inputs = BENCH_INPUTS,
): { input: string; ms: Record<string, number> }[] {
  const wasm = new WasmResampler();
  // The transformers normalization table shape (values do not change kernel times).
  const lut = new Float32Array(768).map((_, i) => (i & 255) / 255);
  return inputs.map(([w, h]) => {
    const [rw, rh] = shortestEdgeSize(w, h, 224);
    const [top, left] = centerCropOffsets(rw, rh, 224, "transformers");
    const plan = buildResizeCropPlan({
      inWidth: w,
      inHeight: h,
      resizedWidth: rw,
      resizedHeight: rh,
      size: 224,
      top,
      left,
    });
    return { input: `${w}x${h}`, ms: wasm.profile(plan, noise(w, h, 1).data, lut, reps) };
  });
}

export function formatKernelProfile(rows: { input: string; ms: Record<string, number> }[]): string {
  const cell = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(3));
  return [
    `| input | ${PHASES.join(" | ")} | JS around (whole - kernels) |`,
    `| --- | ${PHASES.map(() => "---:").join(" | ")} | ---: |`,
    ...rows.map(({ input, ms }) => {
      const kernels = ["copyIn", "horizontal", "vertical", "normalize", "copyOut"].reduce(
        (s, k) => s + (ms[k] ?? 0),
        0,
      );
      return `| ${input} | ${PHASES.map((p) => cell(ms[p])).join(" | ")} | ${cell(ms.wholeCall - kernels)} |`;
    }),
  ].join("\n");
}

export const KERNEL_PROFILE_FLAGS = {
  reps: { type: "int", default: 30, min: 1, description: "runs per phase (the min is shown)" },
} as const satisfies FlagSpecs;

export const KERNEL_PROFILE_COMMAND: CommandSpec<typeof KERNEL_PROFILE_FLAGS> = {
  name: "services/reward/preprocess/kernel_profile.ts",
  summary:
    "CLIP preprocessing per wasm kernel (copy in, every horizontal kernel, vertical, normalize, copy out)",
  flags: KERNEL_PROFILE_FLAGS,
  examples: ["deno run -A services/reward/preprocess/kernel_profile.ts --reps 20"],
  run(values) {
    console.log(formatKernelProfile(runKernelProfile(values.reps)));
  },
};

if (import.meta.main) await runCommand(KERNEL_PROFILE_COMMAND);
