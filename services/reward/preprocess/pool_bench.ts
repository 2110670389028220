/**
 * The preprocessing pool (pool.ts) against the in-thread path on one batch: 8 images of 640x480 to
 * CLIP's 224, interleaved per round (in-thread, then each pool size), outputs bit-compared. Printed by
 * `deno run -A services/reward/preprocess/bench.ts` and `deno task bench --only reward` after the
 * resize table; it is why `--preprocess-workers` defaults to 0 (see pool.ts).
 */
import { median } from "../../../lib/stats.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";
import { PreprocessPool } from "./pool.ts";
import { noise } from "./noise_image.ts";

export interface PoolBenchRow {
  workers: number;
  msPerBatch: number;
  range: [number, number];
  /** Median over rounds of in-thread / this row, measured in the same round. */
  speedup: number;
}

const SPEC = {
  type: "clip",
  size: 224,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
} as PreprocessingSpec;

export async function runPoolBench(
  { rounds = 9, batch = 8, workers = [1, 2, 4] } = {},
): Promise<{ cores: number; rows: PoolBenchRow[] }> {
  const images = Array.from({ length: batch }, (_, k) => noise(640, 480, k + 1));
  const pools = workers.map((w) => new PreprocessPool(w));
  try {
    const timeSync = () => {
      const t0 = performance.now();
      const out = pixelValuesFor(SPEC, images);
      return { ms: performance.now() - t0, out };
    };
    const timePool = async (p: PreprocessPool) => {
      const t0 = performance.now();
      const out = await p.pixelValues(SPEC, images);
      return { ms: performance.now() - t0, out };
    };
    timeSync(); // warm-up: JIT, plan cache, workers' module load
    for (const p of pools) await timePool(p);
    const base: number[] = [];
    const times = pools.map(() => [] as number[]);
    const ratios = pools.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      const a = timeSync();
      base.push(a.ms);
      for (const [i, p] of pools.entries()) {
        const b = await timePool(p);
        const x = new Uint32Array(a.out.buffer), y = new Uint32Array(b.out.buffer);
        if (x.some((v, j) => v !== y[j])) throw new Error(`pool of ${p.size}: outputs differ from in-thread`);
        times[i].push(b.ms);
        ratios[i].push(a.ms / b.ms);
      }
    }
    const rows: PoolBenchRow[] = [
      { workers: 0, msPerBatch: median(base), range: [Math.min(...base), Math.max(...base)], speedup: 1 },
      ...pools.map((p, i) => ({
        workers: p.size,
        msPerBatch: median(times[i]),
        range: [Math.min(...times[i]), Math.max(...times[i])] as [number, number],
        speedup: median(ratios[i]),
      })),
    ];
    return { cores: navigator.hardwareConcurrency, rows };
  } finally {
    pools.forEach((p) => p.close());
  }
}

export function formatPoolBench({ cores, rows }: { cores: number; rows: PoolBenchRow[] }): string {
  return [
    `Preprocessing pool, batch of 8 images 640x480 -> 224 (CLIP), ${cores} cores:`,
    "",
    "| workers | ms per batch (range) | speedup vs in-thread (median of rounds) |",
    "| ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.workers === 0 ? "0 (in-thread)" : r.workers} | ${r.msPerBatch.toFixed(2)} (${
        r.range[0].toFixed(2)
      }-${r.range[1].toFixed(2)}) | ${r.speedup.toFixed(2)}x |`
    ),
  ].join("\n");
}
