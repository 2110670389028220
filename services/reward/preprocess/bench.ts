/**
 * CLIP preprocessing (shortest side to 224 by PIL BICUBIC, center crop, normalize to CHW float32)
 * before and after the cached crop-aware plans: `clipPixelValuesReference` (the whole image through
 * the reference port, then the crop) against `clipPixelValues` (resize_plan.ts run by the wasm
 * SIMD passes), interleaved A/B per round on the same images so a loaded machine skews both alike.
 * Every round also checks the two give the same float32 bits. Prints a Markdown table: median
 * milliseconds per image, the range over rounds, and the median of the per-round speedups.
 *
 *   deno run -A services/reward/preprocess/bench.ts [--rounds 15] [--per-round 4]
 */

import { median } from "../../../lib/stats.ts";
import type { FlagSpecs } from "../../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../../lib/cli/command.ts";
import { clipPixelValues, clipPixelValuesReference, useOneRowHorizontalKernel } from "./clip_image.ts";
import { noise } from "./noise_image.ts";

export interface PreprocessBenchRow {
  input: string;
  variant: string;
  referenceMs: number;
  planMs: number;
  referenceRange: [number, number];
  planRange: [number, number];
  /** Median over rounds of reference/plan time measured in the same round. */
  speedup: number;
  /** The same plan with the one-row horizontal kernel (before the four-row kernel). */
  oneRowMs: number;
  oneRowSpeedup: number;
}

/** Inputs: SD1.5 samples (512), a 4:3 photo, a large photo, SD-XL size. */
export const BENCH_INPUTS: [number, number][] = [[512, 512], [640, 480], [1024, 768], [1024, 1024]];

export function runPreprocessBench(
  { rounds = 15, perRound = 4, inputs = BENCH_INPUTS } = {},
): PreprocessBenchRow[] {
  const rows: PreprocessBenchRow[] = [];
  for (const [w, h] of inputs) {
    for (const variant of ["transformers", "torchvision"] as const) {
      const images = Array.from({ length: perRound }, (_, i) => noise(w, h, i + 1));
      const ref: number[] = [], plan: number[] = [], ratio: number[] = [];
      const oneRow: number[] = [], oneRowRatio: number[] = [];
      const time = (fn: typeof clipPixelValues) => {
        const t0 = performance.now();
        const out = fn(images, 224, { variant });
        return { ms: (performance.now() - t0) / perRound, out };
      };
      const timeOneRow = () => {
        const was = useOneRowHorizontalKernel(true);
        try {
          return time(clipPixelValues);
        } finally {
          useOneRowHorizontalKernel(was);
        }
      };
      const same = (a: Float32Array, b: Float32Array, what: string) => {
        const x = new Uint32Array(a.buffer), y = new Uint32Array(b.buffer);
        if (x.some((v, i) => v !== y[i])) throw new Error(`${w}x${h} ${variant}: ${what} outputs differ`);
      };
      time(clipPixelValuesReference); // warm-up (JIT, plan cache)
      time(clipPixelValues);
      timeOneRow();
      for (let r = 0; r < rounds; r++) {
        const a = time(clipPixelValuesReference), b = time(clipPixelValues), c = timeOneRow();
        same(a.out, b.out, "plan");
        same(a.out, c.out, "one-row kernel");
        ref.push(a.ms);
        plan.push(b.ms);
        oneRow.push(c.ms);
        ratio.push(a.ms / b.ms);
        oneRowRatio.push(a.ms / c.ms);
      }
      rows.push({
        input: `${w}x${h}`,
        variant,
        referenceMs: median(ref),
        planMs: median(plan),
        referenceRange: [Math.min(...ref), Math.max(...ref)],
        planRange: [Math.min(...plan), Math.max(...plan)],
        speedup: median(ratio),
        oneRowMs: median(oneRow),
        oneRowSpeedup: median(oneRowRatio),
      });
    }
  }
  return rows;
}

export function formatPreprocessBench(rows: PreprocessBenchRow[]): string {
  const r2 = ([a, b]: [number, number]) => `${a.toFixed(2)}-${b.toFixed(2)}`;
  return [
    "| input | variant | before: reference ms/image (range) | plan + wasm, one-row horizontal kernel ms/image | speedup | after: plan + wasm, four-row kernel ms/image (range) | speedup (median of rounds) |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.input} | ${r.variant} | ${r.referenceMs.toFixed(2)} (${r2(r.referenceRange)}) | ` +
      `${r.oneRowMs.toFixed(3)} | ${r.oneRowSpeedup.toFixed(1)}x | ` +
      `${r.planMs.toFixed(3)} (${r2(r.planRange)}) | ${r.speedup.toFixed(1)}x |`
    ),
  ].join("\n");
}

export const PREPROCESS_BENCH_FLAGS = {
  rounds: {
    type: "int",
    default: 15,
    min: 1,
    description: "interleaved A/B rounds per input (median shown)",
  },
  perRound: { type: "int", default: 4, min: 1, description: "images per round (the time is per image)" },
} as const satisfies FlagSpecs;

export const PREPROCESS_BENCH_COMMAND: CommandSpec<typeof PREPROCESS_BENCH_FLAGS> = {
  name: "services/reward/preprocess/bench.ts",
  summary: "CLIP preprocessing: the reference port vs cached plans + wasm SIMD, interleaved (a table)",
  flags: PREPROCESS_BENCH_FLAGS,
  examples: [
    "deno run -A services/reward/preprocess/bench.ts",
    "deno run -A services/reward/preprocess/bench.ts --rounds 5 --per-round 2",
  ],
  async run(values) {
    console.log(
      formatPreprocessBench(runPreprocessBench({ rounds: values.rounds, perRound: values.perRound })),
    );
    const { formatPoolBench, runPoolBench } = await import("./pool_bench.ts");
    console.log("\n" + formatPoolBench(await runPoolBench({ rounds: values.rounds })));
  },
};

if (import.meta.main) await runCommand(PREPROCESS_BENCH_COMMAND);
