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
  /**
   * Median over rounds of this round's throughput relative to the same round's baseline (the mean
   * of the comparison's rows marked `baseline`, else its first row): a ratio per round, so load
   * that changes between rounds cancels (issue 21).
   */
  ratio: number;
  /** Smallest and largest per-round ratio (the spread). */
  minRatio: number;
  maxRatio: number;
  note: string;
}

export interface Mode {
  comparison: string;
  mode: string;
  note: string;
  images: number;
  /** Part of the comparison's baseline (per-round ratios are taken against their mean). */
  baseline?: boolean;
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
/**
 * CPU milliseconds (user + system, all threads) process `pid` has used ("self": this one), from
 * /proc (10 ms ticks); NaN where /proc is not there.
 */
export function cpuMs(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14, 15) at 100 Hz
  } catch {
    return NaN;
  }
}

export async function spawnService(
  args: string[],
): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
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
    pid: child.pid,
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
    // The order rotates by one mode per round, so no mode always runs first (warm-up) or last.
    for (let j = 0; j < modes.length; j++) {
      const i = (j + r) % modes.length;
      const t0 = performance.now();
      await modes[i].run();
      samples[i].push(modes[i].images / ((performance.now() - t0) / 1000));
    }
  }
  const baseOf = (comparison: string) => {
    const inGroup = modes.flatMap((m, i) => m.comparison === comparison ? [i] : []);
    const marked = inGroup.filter((i) => modes[i].baseline);
    return marked.length ? marked : inGroup.slice(0, 1);
  };
  const rows = modes.map((mode, i) => {
    const base = baseOf(mode.comparison);
    const perRound = samples[i].map((v, r) =>
      v / (base.reduce((a, b) => a + samples[b][r], 0) / base.length)
    );
    return {
      comparison: mode.comparison,
      mode: mode.mode,
      images: mode.images,
      imagesPerSecond: median(samples[i]),
      minImagesPerSecond: Math.min(...samples[i]),
      maxImagesPerSecond: Math.max(...samples[i]),
      ratio: median(perRound),
      minRatio: Math.min(...perRound),
      maxRatio: Math.max(...perRound),
      note: mode.note,
    };
  });
  return rows;
}
