/**
 * The preprocessing pool (pool.ts) against the in-thread path: batches of 8 and 32 images of 640x480
 * to CLIP's 224, interleaved per round (in-thread, then each pool size with shared and with cloned
 * images), outputs bit-compared. Printed by
 * `deno run -A services/reward/preprocess/bench.ts` and `deno task bench --only reward` after the
 * resize table; it is how `--preprocess-workers`'s default was chosen (see pool.ts).
 */
import { median } from "../../../lib/stats.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";
import { PreprocessPool } from "./pool.ts";
import { noise } from "./noise_image.ts";

export interface PoolBenchRow {
  batch: number;
  workers: number;
  /** How images reach the workers: shared memory (now) or structured clone (before). */
  transport: "in-thread" | "shared" | "clone";
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

/**
 * For each batch size: in-thread, then every (workers, transport) pool, interleaved in each round on
 * the same images; every pooled output is bit-compared with the in-thread one.
 */
export async function runPoolBench(
  { rounds = 9, batches = [8, 32], workers = [1, 2] } = {},
): Promise<{ cores: number; rows: PoolBenchRow[] }> {
  const rows: PoolBenchRow[] = [];
  for (const batch of batches) {
    const images = Array.from({ length: batch }, (_, k) => noise(640, 480, k + 1));
    const pools = workers.flatMap((w) => [new PreprocessPool(w), new PreprocessPool(w, true)]);
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
          if (x.length !== y.length || x.some((v, j) => v !== y[j])) {
            throw new Error(`pool of ${p.size}: outputs differ from in-thread`);
          }
          times[i].push(b.ms);
          ratios[i].push(a.ms / b.ms);
        }
      }
      const range = (t: number[]): [number, number] => [Math.min(...t), Math.max(...t)];
      rows.push({
        batch,
        workers: 0,
        transport: "in-thread",
        msPerBatch: median(base),
        range: range(base),
        speedup: 1,
      });
      pools.forEach((p, i) =>
        rows.push({
          batch,
          workers: p.size,
          transport: p.cloneImages ? "clone" : "shared",
          msPerBatch: median(times[i]),
          range: range(times[i]),
          speedup: median(ratios[i]),
        })
      );
    } finally {
      pools.forEach((p) => p.close());
    }
  }
  return { cores: navigator.hardwareConcurrency, rows };
}

export function formatPoolBench({ cores, rows }: { cores: number; rows: PoolBenchRow[] }): string {
  return [
    `Preprocessing pool, images 640x480 -> 224 (CLIP), ${cores} cores; "clone" = images sent by structured`,
    `clone (before), "shared" = one SharedArrayBuffer in, pixels transferred out (now):`,
    "",
    "| batch | workers | images travel by | ms per batch (range) | speedup vs in-thread (median of rounds) |",
    "| ---: | ---: | --- | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.batch} | ${r.workers === 0 ? "0 (in-thread)" : r.workers} | ${r.transport} | ${
        r.msPerBatch.toFixed(2)
      } (${r.range[0].toFixed(2)}-${r.range[1].toFixed(2)}) | ${r.speedup.toFixed(2)}x |`
    ),
  ].join("\n");
}
