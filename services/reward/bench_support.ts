/**
 * What the reward service benchmark (bench.ts) is built from: its images, the service as a child
 * process, and the interleaved measurement of several modes.
 */
import { fileURLToPath } from "node:url";
import type { RgbImage } from "./scorer.ts";
import { median } from "../../lib/stats.ts";

export { median };

export interface RewardBenchRow {
  comparison: string;
  mode: string;
  /** Images per round. */
  images: number;
  /** Median over rounds. */
  imagesPerSecond: number;
  minImagesPerSecond: number;
  maxImagesPerSecond: number;
  /** Median throughput relative to the comparison's first (baseline) row. */
  ratio: number;
  note: string;
}

export interface Mode {
  comparison: string;
  mode: string;
  note: string;
  images: number;
  run(): Promise<void>;
}

export function noiseImage(side: number, seed: number): RgbImage {
  const data = new Uint8Array(side * side * 3);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return { width: side, height: side, data };
}

/**
 * The service as its own process (as deployed: clients elsewhere, so their encoding does not share
 * the server's event loop). Resolves once it printed `listening on`.
 */
export async function spawnService(args: string[]): Promise<{ address: string; stop(): Promise<void> }> {
  const main = fileURLToPath(new URL("./main.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--host=127.0.0.1", "--port=0", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/listening on \S+\n/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the reward service exited before listening; stdout: ${out}`);
    out += value;
  }
  const address = /listening on (\S+)/.exec(out)![1];
  return {
    address,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited (the status below says how).
      }
      const status = await child.status;
      if (status.code !== 0) {
        console.error(
          `warning: a reward service process exited with ${status.code} after the measurements ` +
            "(Deno node:http2 abort when clients close; see the report)",
        );
      }
      await reader.cancel();
    },
  };
}

/** Runs every mode `rounds` times, interleaved; one row per mode (median, min, max). */
export async function measure(modes: Mode[], rounds: number): Promise<RewardBenchRow[]> {
  const samples = modes.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, mode] of modes.entries()) {
      const t0 = performance.now();
      await mode.run();
      samples[i].push(mode.images / ((performance.now() - t0) / 1000));
    }
  }
  const rows = modes.map((mode, i) => ({
    comparison: mode.comparison,
    mode: mode.mode,
    images: mode.images,
    imagesPerSecond: median(samples[i]),
    minImagesPerSecond: Math.min(...samples[i]),
    maxImagesPerSecond: Math.max(...samples[i]),
    ratio: 1,
    note: mode.note,
  }));
  for (const row of rows) {
    const base = rows.find((r) => r.comparison === row.comparison)!;
    row.ratio = row.imagesPerSecond / base.imagesPerSecond;
  }
  return rows;
}
