/**
 * Serving benchmark of the reward service (prints tables; no assertions):
 *
 * 1. gRPC overhead: images/s of Score through the whole service (its own process, loopback; one
 *    client, requests of `batch` images, max_batch = batch, no queue delay) against calling the
 *    same scorer directly on the same images and batch. Measured one request at a time
 *    (latency-bound: transfer, then inference), with `pipeline` requests in flight, and with
 *    requests in flight against a service whose ONNX Runtime runs one thread. Each gRPC row notes
 *    the median wall and server-handler (`rdpo-server-ms` trailer) milliseconds per request: the
 *    profile that says where a shortfall goes. Goal (issue 21): >= 0.8x with 2 in flight.
 * 2. Dynamic batching: 32 concurrent clients sending batch-1 requests, served with max_batch 1
 *    against max_batch = clients at several queue delays; beside them the scorer's own gain from
 *    batch 32 over batch 1. Goal: the service's gain >= 0.9x the scorer's (`formatRewardGoals`).
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
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { createClient } from "../../lib/rpc/client.ts";
import { SERVER_PRE_TIME_TRAILER, SERVER_TIME_TRAILER } from "../../lib/rpc/server.ts";
import { FlagError, type FlagSpecs } from "../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import { fixturePath, hasFixtures } from "../../lib/testing/fixtures.ts";
import { createScorer } from "./bundle.ts";
import { RewardCore } from "./core.ts";
import { ScorerRegistry } from "./registry.ts";
import { bundleScorerFactory } from "./scorer_factory.ts";
import type { RgbImage } from "./scorer.ts";
import { buildLinearImageScorerOnnx } from "./testing/onnx_builder.ts";
import {
  cpuMs,
  measure,
  median,
  type Mode,
  noiseImage,
  type RewardBenchRow,
  spawnService,
} from "./bench_support.ts";

export type { RewardBenchRow };

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
  /** Queue delays of the batched configurations, one service each (default 0, 0.5, 1, 2, 5 ms). */
  queueDelaysMs?: number[];
  /** Interleaved measurement rounds per mode (default 5). */
  rounds?: number;
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

const toProto = (im: RgbImage) => ({ width: im.width, height: im.height, channels: 3, data: im.data });

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
  const delays = options.queueDelaysMs ?? [0, 0.5, 1, 2, 5];
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
    const start = async (maxBatch: number, queueDelayMs: number, extra: string[] = []) => {
      const service = await spawnService([
        `--model-root=${root}`,
        "--no-builtins",
        "--preload=bench@1=bench/1",
        `--max-batch=${maxBatch}`,
        `--max-queue-delay-ms=${queueDelayMs}`,
        ...extra,
      ]);
      cleanups.push(() => service.stop());
      return service;
    };
    const whole = await start(batch, 0);
    // The same service with ONNX Runtime on one thread: on a 2-core machine that leaves a core to
    // the transport (client encode, server receive/decode) while a batch is in inference. And the
    // "before" of the ORT threads: spin-waiting after each run (ORT's default, ours until issue 21).
    const lean = await start(batch, 0, ["--intra-op-threads=1"]);
    const spinning = await start(batch, 0, ["--ort-spinning"]);
    const single = await start(1, 0);
    const dynamics = await Promise.all(delays.map((d) => start(clients, d)));
    const client = createClient(RewardService, whole.address);
    const leanClient = createClient(RewardService, lean.address);
    const spinClient = createClient(RewardService, spinning.address);
    cleanups.push(() => client.close(), () => leanClient.close(), () => spinClient.close());
    // Per gRPC mode: wall ms, the server's handler ms (rdpo-server-ms trailer) and its request
    // decode + dispatch ms (rdpo-server-pre-ms) of each request, and this client's encode/decode ms.
    const profile = new Map<string, { wall: number[]; server: number[]; pre: number[]; codec: number[] }>();
    const profiled = async (name: string, c: typeof client) => {
      const p = profile.get(name) ?? { wall: [], server: [], pre: [], codec: [] };
      profile.set(name, p);
      const t0 = performance.now();
      await c.score(request, {
        onTrailer: (m) => {
          p.server.push(Number(m.get(SERVER_TIME_TRAILER)[0] ?? NaN));
          p.pre.push(Number(m.get(SERVER_PRE_TIME_TRAILER)[0] ?? NaN));
        },
        onCodecMs: (encodeMs, decodeMs) => p.codec.push(encodeMs + decodeMs),
      });
      p.wall.push(performance.now() - t0);
    };
    // CPU ms per request of the service process and of this process (the client), per gRPC mode.
    const cpu = new Map<string, { server: number; client: number; wall: number; requests: number }>();
    const inFlight = (name: string, c: typeof client, n: number, pid: number) => async () => {
      const [s0, c0, t0] = [cpuMs(pid), cpuMs("self"), performance.now()];
      let next = 0;
      await Promise.all(Array.from({ length: n }, async () => {
        while (next++ < requests) await profiled(name, c);
      }));
      const acc = cpu.get(name) ?? { server: 0, client: 0, wall: 0, requests: 0 };
      acc.server += cpuMs(pid) - s0;
      acc.client += cpuMs("self") - c0;
      acc.wall += performance.now() - t0;
      acc.requests += requests;
      cpu.set(name, acc);
    };
    const pool = (address: string) => {
      const made = Array.from({ length: clients }, () => createClient(RewardService, address));
      cleanups.push(() => made.forEach((c) => c.close()));
      return made;
    };
    const singlePool = pool(single.address);
    const dynamicPools = dynamics.map((d) => pool(d.address));
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
        baseline: true,
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
        run: inFlight("grpc1", client, 1, whole.pid),
      },
      {
        comparison: overhead,
        mode: `Score over gRPC, ${pipeline} requests in flight`,
        note: "the next request arrives while the current one is in inference",
        images: requests * batch,
        run: inFlight("grpc2", client, pipeline, whole.pid),
      },
      {
        comparison: overhead,
        mode: `Score over gRPC, ${pipeline} in flight, service ORT 1 thread`,
        note: "--intra-op-threads=1: a core stays free for the transport",
        images: requests * batch,
        run: inFlight("grpc2lean", leanClient, pipeline, lean.pid),
      },
      {
        comparison: overhead,
        mode: `Score over gRPC, ${pipeline} in flight, service ORT threads spinning (before)`,
        note: "--ort-spinning: ORT's default, idle pool threads spin-wait after each run",
        images: requests * batch,
        run: inFlight("grpc2spin", spinClient, pipeline, spinning.pid),
      },
      {
        comparison: overhead,
        mode: "scorer called directly, again after the gRPC rows",
        note: "order check: measured twice per round; the ratios' base is the mean of both direct rows",
        images: requests * batch,
        baseline: true,
        run: async () => {
          for (let i = 0; i < requests; i++) await scorer.score(images, []);
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
      ...delays.map((d, i) => ({
        comparison: concurrency,
        mode: `dynamic batching (max_batch ${clients}, delay ${d} ms)`,
        note: "",
        images: clients * perClient,
        run: concurrent(`dynamic${d}`, dynamicPools[i]),
      })),
    ];
    for (let i = 0; i < WARMUP; i++) {
      await scorer.score(images, []);
      await core.score(request);
      await client.score(request);
      await leanClient.score(request);
      await spinClient.score(request);
      await concurrent("warm-up", singlePool)();
      for (const p of dynamicPools) await concurrent("warm-up", p)();
    }
    batchSizes.clear();
    const rows = await measure(modes, rounds);
    const rowOf = (mode: string) => rows.find((r) => r.mode === mode)!;
    const batchRows: [string, RewardBenchRow][] = [
      ["single", rowOf("max_batch 1 (batch-1 inferences, one at a time)")],
      ...delays.map((d) =>
        [`dynamic${d}`, rowOf(`dynamic batching (max_batch ${clients}, delay ${d} ms)`)] as [
          string,
          RewardBenchRow,
        ]
      ),
    ];
    for (const [name, row] of batchRows) {
      const sizes = batchSizes.get(name) ?? [];
      row.note = `mean batch ${(sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length)).toFixed(1)}`;
    }
    const grpcRows: [string, string][] = [
      ["grpc1", "Score over gRPC, 1 request at a time"],
      ["grpc2", `Score over gRPC, ${pipeline} requests in flight`],
      ["grpc2lean", `Score over gRPC, ${pipeline} in flight, service ORT 1 thread`],
      ["grpc2spin", `Score over gRPC, ${pipeline} in flight, service ORT threads spinning (before)`],
    ];
    for (const [name, mode] of grpcRows) {
      const p = profile.get(name);
      if (!p) continue;
      const server = p.server.filter(Number.isFinite);
      const pre = p.pre.filter(Number.isFinite);
      rowOf(mode).note += `; per request: wall ${median(p.wall).toFixed(1)} ms, server handler ${
        median(server).toFixed(1)
      } ms, server decode+dispatch ${median(pre).toFixed(2)} ms, client encode+decode ${
        median(p.codec).toFixed(2)
      } ms (medians)${cpuNote(cpu.get(name))}; ${
        (request.images.reduce((a, im) => a + im.data.length, 0) / 1024).toFixed(0)
      } KiB of pixels per request`;
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

/** "CPU per request: service X ms, client Y ms; Z cores busy" (from /proc, 10 ms ticks). */
function cpuNote(c: { server: number; client: number; wall: number; requests: number } | undefined): string {
  if (!c || !Number.isFinite(c.server)) return "";
  return `; CPU per request: service ${(c.server / c.requests).toFixed(1)} ms, client ${
    (c.client / c.requests).toFixed(1)
  } ms, ${((c.server + c.client) / c.wall).toFixed(2)} of ${navigator.hardwareConcurrency} cores busy`;
}

export function formatRewardBench(model: string, rows: RewardBenchRow[]): string {
  const header =
    "| comparison | mode | images/round | images/s (median) | range | ratio (median of per-round ratios) | per-round ratio range | note |";
  const lines = rows.map((r) =>
    `| ${r.comparison} | ${r.mode} | ${r.images} | ${r.imagesPerSecond.toFixed(1)} | ` +
    `${r.minImagesPerSecond.toFixed(0)}-${r.maxImagesPerSecond.toFixed(0)} | ${r.ratio.toFixed(2)}x | ` +
    `${r.minRatio.toFixed(2)}-${r.maxRatio.toFixed(2)} | ${r.note} |`
  );
  return [
    `model: ${model}; load ${Deno.loadavg().map((v) => v.toFixed(2)).join(" ")} (1/5/15 min) after the run`,
    "",
    header,
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...lines,
  ].join(
    "\n",
  );
}

/**
 * The issue-21 goals read off the rows: gRPC with requests in flight against the direct scorer
 * (>= 0.8x), and what dynamic batching gains under concurrent batch-1 clients against what the
 * scorer itself gains from one big batch (>= 0.9 of it), per queue delay; the best delay is named.
 */
export function formatRewardGoals(rows: RewardBenchRow[]): string {
  const by = (comparison: string) => rows.filter((r) => r.comparison.startsWith(comparison));
  const overhead = by("gRPC overhead");
  const ceiling = by("scorer batch scaling");
  const concurrency = rows.filter((r) => r.comparison.includes("concurrent clients"));
  const lines = ["| goal | measured | target | met |", "| --- | ---: | ---: | --- |"];
  for (const r of overhead.filter((r) => r.mode.includes("in flight"))) {
    lines.push(
      `| ${r.mode} / direct scorer (per-round ratio, median; range ${r.minRatio.toFixed(2)}-${
        r.maxRatio.toFixed(2)
      }) | ${r.ratio.toFixed(2)}x | 0.80x | ${r.ratio >= 0.8 ? "yes" : "no"} |`,
    );
  }
  const scorerGain = ceiling.length === 2 ? ceiling[1].ratio : NaN;
  let best: RewardBenchRow | null = null;
  for (const r of concurrency.slice(1)) {
    const share = r.ratio / scorerGain;
    if (!best || r.ratio > best.ratio) best = r;
    lines.push(
      `| ${r.mode}: gain ${r.ratio.toFixed(2)}x vs scorer batch gain ${scorerGain.toFixed(2)}x | ` +
        `${share.toFixed(2)} | 0.90 | ${share >= 0.9 ? "yes" : "no"} |`,
    );
  }
  if (best) lines.push("", `best queue delay this run: ${best.mode}`);
  return lines.join("\n");
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
  queueDelaysMs: {
    type: "string",
    default: "0,0.5,1,2,5",
    description: "comma-separated queue delays (ms) of the batched configurations (sweep)",
  },
  rounds: { type: "int", default: 5, min: 1, description: "interleaved rounds per mode (median shown)" },
} as const satisfies FlagSpecs;

export const REWARD_BENCH_COMMAND: CommandSpec<typeof REWARD_BENCH_FLAGS> = {
  name: "services/reward/bench.ts",
  summary: "the reward service vs direct scorer calls, and batched vs batch-1 under many clients",
  flags: REWARD_BENCH_FLAGS,
  examples: ["deno run -A services/reward/bench.ts --rounds 3 --clients 16"],
  async run(values) {
    const queueDelaysMs = values.queueDelaysMs.split(",").map(Number);
    if (queueDelaysMs.some((d) => !Number.isFinite(d) || d < 0)) {
      throw new FlagError(`--queue-delays-ms: "${values.queueDelaysMs}" is not a list of numbers >= 0`);
    }
    await runRewardBench(
      { ...values, queueDelaysMs },
      (model, rows) => console.log(formatRewardBench(model, rows) + "\n\n" + formatRewardGoals(rows)),
    );
  },
};

if (import.meta.main) await runCommand(REWARD_BENCH_COMMAND);
