/**
 * Serving benchmark of the reward service (prints a table; no assertions):
 *
 * 1. gRPC overhead: images/s of Score through the whole service (its own process, loopback; one
 *    client, requests of `batch` images, max_batch = batch, no queue delay) against calling the
 *    same scorer directly on the same images and batch. Goal: >= 0.95x. Measured both one request
 *    at a time (latency-bound: transfer, then inference) and with `pipeline` requests in flight.
 * 2. Dynamic batching: 32 concurrent clients sending batch-1 requests, served with max_batch 1
 *    (every request its own inference, one at a time) against max_batch = clients with a small
 *    queue delay (requests merged). Goal: >= 2x.
 *
 * Every mode is measured in `rounds` interleaved rounds (A, B, C, A, B, C, ...) and the table shows
 * the median images/s with the range, so a machine shared with other work skews all modes alike.
 *
 * The model is the aesthetic scorer on the tiny CLIP of the shared fixtures (ViT at 224,
 * clip_scorer/clip_vision.onnx + aesthetic/ head) when they exist, else a linear ONNX scorer
 * from testing/onnx_builder.ts with the same CLIP preprocessing; files are copied into a temporary
 * model root (bundle files must lie inside it).
 *
 *   deno run -A services/reward/bench.ts [--batch 8] [--requests 20] [--clients 32] [--rounds 5] [--image-side 224]
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { createClient } from "../../lib/rpc/client.ts";
import type { FlagSpecs } from "../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { fixturePath, hasFixtures } from "../../lib/testing/fixtures.ts";
import { createScorer } from "./bundle.ts";
import { RewardCore } from "./core.ts";
import { ScorerRegistry } from "./registry.ts";
import { bundleScorerFactory } from "./scorer_factory.ts";
import type { RgbImage } from "./scorer.ts";
import { buildLinearImageScorerOnnx } from "./testing/onnx_builder.ts";

export interface RewardBenchOptions {
  /** Images per request in the overhead comparison (default 8). */
  batch?: number;
  /** Requests per round in the overhead comparison (default 20). */
  requests?: number;
  /** Requests a client keeps outstanding in the pipelined overhead row (default 2). */
  pipeline?: number;
  /** Concurrent clients in the batching comparison (default 32). */
  clients?: number;
  /** Batch-1 requests per client per round in the batching comparison (default 4). */
  requestsPerClient?: number;
  /** Square input image side (default 224: no resize, so the serving layer is what is measured). */
  imageSide?: number;
  /** Queue delay of the batched configuration (default 2 ms). */
  maxQueueDelayMs?: number;
  /** Interleaved measurement rounds per mode (default 5). */
  rounds?: number;
}

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

interface Mode {
  comparison: string;
  mode: string;
  note: string;
  images: number;
  run(): Promise<void>;
}

/** Untimed calls before each measurement (JIT, ONNX Runtime arenas, connections). */
const WARMUP = 5;
const CLIP_DIR = fixturePath("clip_scorer");
const HEAD = fixturePath("aesthetic", "sac+logos+ava1-l14-linearMSE.safetensors");

/** Writes the benchmark bundle into `<root>/bench/1`; returns a description of the model. */
async function writeBenchBundle(root: string): Promise<string> {
  const dir = join(root, "bench", "1");
  await Deno.mkdir(dir, { recursive: true });
  if (hasFixtures(join(CLIP_DIR, "clip_vision.onnx"), HEAD)) {
    await Deno.copyFile(join(CLIP_DIR, "clip_vision.onnx"), join(dir, "clip_vision.onnx"));
    await Deno.copyFile(HEAD, join(dir, "head.safetensors"));
    await Deno.writeTextFile(
      join(dir, "manifest.json"),
      JSON.stringify({
        format: 1,
        kind: "aesthetic",
        version: "1",
        models: { vision: { file: "clip_vision.onnx" } },
        preprocessing: { type: "clip", size: 224 },
      }),
    );
    return "aesthetic on the tiny CLIP ViT (fixtures clip_scorer + aesthetic head)";
  }
  await Deno.writeFile(
    join(dir, "model.onnx"),
    buildLinearImageScorerOnnx({ weights: [0.5, -0.25, 1], bias: 1, size: 224 }),
  );
  await Deno.writeTextFile(
    join(dir, "manifest.json"),
    JSON.stringify({
      format: 1,
      kind: "onnx",
      version: "1",
      models: { model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "score" } },
      preprocessing: { type: "clip", size: 224 },
    }),
  );
  return "linear ONNX scorer at 224 (onnx_builder; fixtures absent)";
}

function noiseImage(side: number, seed: number): RgbImage {
  const data = new Uint8Array(side * side * 3);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return { width: side, height: side, data };
}

const toProto = (im: RgbImage) => ({ width: im.width, height: im.height, channels: 3, data: im.data });

/**
 * The service as its own process (as deployed: clients elsewhere, so their encoding does not share
 * the server's event loop). Resolves once it printed `listening on`.
 */
async function spawnService(args: string[]): Promise<{ address: string; stop(): Promise<void> }> {
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

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs every mode `rounds` times, interleaved; one row per mode (median, min, max). */
async function measure(modes: Mode[], rounds: number): Promise<RewardBenchRow[]> {
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

/**
 * Runs the benchmark; `onResult` receives the table before the processes are torn down (so a
 * failure while stopping them cannot lose the measurements).
 */
export async function runRewardBench(
  options: RewardBenchOptions = {},
  onResult?: (model: string, rows: RewardBenchRow[]) => void,
): Promise<{ model: string; rows: RewardBenchRow[] }> {
  const batch = options.batch ?? 8;
  const requests = options.requests ?? 20;
  const pipeline = options.pipeline ?? 2;
  const clients = options.clients ?? 32;
  const perClient = options.requestsPerClient ?? 4;
  const side = options.imageSide ?? 224;
  const delay = options.maxQueueDelayMs ?? 2;
  const rounds = options.rounds ?? 5;
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "reward-bench-" }));
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const model = await writeBenchBundle(root);
    const images = Array.from({ length: batch }, (_, i) => noiseImage(side, i));
    const protoImages = images.map(toProto);
    const request = { scorer: "bench", images: protoImages, prompts: [] };

    // The scorer itself, and the serving layer without transport (validation, lease, batcher).
    const scorer = await createScorer(join(root, "bench", "1"));
    const registry = new ScorerRegistry({
      factory: bundleScorerFactory({ modelRoot: root }),
      defaultBatching: { maxBatch: batch, maxQueueDelayMs: 0 },
      log: () => {},
    });

    const core = new RewardCore({ registry, modelRoot: root });
    await core.loadScorer({ name: "bench", version: "1", bundle: "bench/1", kind: "" });

    // The service as its own process: max_batch = batch (one request = one inference), max_batch 1,
    // and dynamic batching over `clients` batch-1 callers.
    const start = async (maxBatch: number, queueDelayMs: number) => {
      const service = await spawnService([
        `--model-root=${root}`,
        "--no-builtins",
        "--preload=bench@1=bench/1",
        `--max-batch=${maxBatch}`,
        `--max-queue-delay-ms=${queueDelayMs}`,
      ]);
      cleanups.push(() => service.stop());
      return service;
    };
    const whole = await start(batch, 0);
    const single = await start(1, 0);
    const dynamic = await start(clients, delay);
    const client = createClient(RewardService, whole.address);
    cleanups.push(() => client.close());
    const pool = (address: string) => {
      const made = Array.from({ length: clients }, () => createClient(RewardService, address));
      cleanups.push(() => made.forEach((c) => c.close()));
      return made;
    };
    const singlePool = pool(single.address);
    const dynamicPool = pool(dynamic.address);
    const batchSizes = new Map<string, number[]>();
    const concurrent = (name: string, callers: typeof singlePool) => async () => {
      await Promise.all(callers.map(async (c, i) => {
        for (let k = 0; k < perClient; k++) {
          const res = await c.score({ scorer: "bench", images: [protoImages[(i + k) % batch]] });
          batchSizes.set(name, [...(batchSizes.get(name) ?? []), res.batchSize]);
        }
      }));
    };
    const clientImages = Array.from({ length: clients }, (_, i) => images[i % batch]);
    const overhead = "gRPC overhead (same model, same batch)";
    const ceiling = "scorer batch scaling (what batching can gain)";
    const concurrency = `${clients} concurrent clients, batch-1 requests`;
    const modes: Mode[] = [
      {
        comparison: overhead,
        mode: "scorer called directly",
        note: `batch ${batch}, ${side}x${side}`,
        images: requests * batch,
        run: async () => {
          for (let i = 0; i < requests; i++) await scorer.score(images, []);
        },
      },
      {
        comparison: overhead,
        mode: "RewardCore.score in-process (no transport)",
        note: `validation + lease + batcher; max_batch ${batch}, delay 0`,
        images: requests * batch,
        run: async () => {
          for (let i = 0; i < requests; i++) await core.score(request);
        },
      },
      {
        comparison: overhead,
        mode: "Score over gRPC, 1 request at a time",
        note: "service process on loopback; transfer and inference never overlap",
        images: requests * batch,
        run: async () => {
          for (let i = 0; i < requests; i++) await client.score(request);
        },
      },
      {
        comparison: overhead,
        mode: `Score over gRPC, ${pipeline} requests in flight`,
        note: "the next request arrives while the current one is in inference",
        images: requests * batch,
        run: async () => {
          let next = 0;
          await Promise.all(Array.from({ length: pipeline }, async () => {
            while (next++ < requests) await client.score(request);
          }));
        },
      },
      {
        comparison: ceiling,
        mode: "scorer directly, batch 1",
        note: "",
        images: clients * perClient,
        run: async () => {
          for (let i = 0; i < clients * perClient; i++) await scorer.score([images[i % batch]], []);
        },
      },
      {
        comparison: ceiling,
        mode: `scorer directly, batch ${clients}`,
        note: "",
        images: clients * perClient,
        run: async () => {
          for (let i = 0; i < perClient; i++) await scorer.score(clientImages, []);
        },
      },
      {
        comparison: concurrency,
        mode: "max_batch 1 (batch-1 inferences, one at a time)",
        note: "",
        images: clients * perClient,
        run: concurrent("single", singlePool),
      },
      {
        comparison: concurrency,
        mode: `dynamic batching (max_batch ${clients}, delay ${delay} ms)`,
        note: "",
        images: clients * perClient,
        run: concurrent("dynamic", dynamicPool),
      },
    ];
    for (let i = 0; i < WARMUP; i++) {
      await scorer.score(images, []);
      await core.score(request);
      await client.score(request);
      await concurrent("warm-up", singlePool)();
      await concurrent("warm-up", dynamicPool)();
    }
    batchSizes.clear();
    const rows = await measure(modes, rounds);
    for (const [name, row] of [["single", rows[6]], ["dynamic", rows[7]]] as const) {
      const sizes = batchSizes.get(name) ?? [];
      row.note = `mean batch ${(sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length)).toFixed(1)}`;
    }
    cleanups.unshift(() => registry.closeAll(), () => scorer.close());
    onResult?.(model, rows);
    return { model, rows };
  } finally {
    // Channels close first, then the service processes stop. Deno 2.9.6's node:http2 sometimes
    // aborts (nghttp2 assertion in find_stream_on_goaway_func) in a process that receives GOAWAY
    // after many large streams: here that can only hit the service processes, after the
    // measurements, never this process.
    for (const cleanup of cleanups.reverse()) await cleanup();
    await Deno.remove(root, { recursive: true });
  }
}

export function formatRewardBench(model: string, rows: RewardBenchRow[]): string {
  const header = "| comparison | mode | images/round | images/s (median) | range | ratio | note |";
  const lines = rows.map((r) =>
    `| ${r.comparison} | ${r.mode} | ${r.images} | ${r.imagesPerSecond.toFixed(1)} | ` +
    `${r.minImagesPerSecond.toFixed(0)}-${r.maxImagesPerSecond.toFixed(0)} | ${
      r.ratio.toFixed(2)
    }x | ${r.note} |`
  );
  return [`model: ${model}`, "", header, "| --- | --- | ---: | ---: | ---: | ---: | --- |", ...lines].join(
    "\n",
  );
}

export const REWARD_BENCH_FLAGS = {
  batch: { type: "int", default: 8, min: 1, description: "images per request (overhead comparison)" },
  requests: { type: "int", default: 20, min: 1, description: "requests per round (overhead comparison)" },
  pipeline: {
    type: "int",
    default: 2,
    min: 1,
    description: "requests a client keeps outstanding (pipelined row)",
  },
  clients: { type: "int", default: 32, min: 1, description: "concurrent clients (batching comparison)" },
  requestsPerClient: {
    type: "int",
    default: 4,
    min: 1,
    description: "batch-1 requests per client per round (batching comparison)",
  },
  imageSide: { type: "int", default: 224, min: 1, description: "square input side (224: no resize)" },
  maxQueueDelayMs: {
    type: "number",
    default: 2,
    min: 0,
    description: "queue delay of the batched configuration",
  },
  rounds: { type: "int", default: 5, min: 1, description: "interleaved rounds per mode (median shown)" },
} as const satisfies FlagSpecs;

export const REWARD_BENCH_COMMAND: CommandSpec<typeof REWARD_BENCH_FLAGS> = {
  name: "services/reward/bench.ts",
  summary: "the reward service vs direct scorer calls, and batched vs batch-1 under many clients",
  flags: REWARD_BENCH_FLAGS,
  examples: ["deno run -A services/reward/bench.ts --rounds 3 --clients 16"],
  async run(values) {
    await runRewardBench(values, (model, rows) => console.log(formatRewardBench(model, rows)));
  },
};

if (import.meta.main) await runCommand(REWARD_BENCH_COMMAND);
