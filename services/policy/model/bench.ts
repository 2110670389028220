/**
 * UNet benchmark: forward time and GFLOP/s (FLOPs counted analytically: convolutions and matrix
 * products, 2 per multiply-add) and the LoRA train step time (forward + backward + Adam on the
 * adapter only), per backend, on random weights:
 *
 * - `tiny`: the golden unet_a size (block_out_channels [32, 64], 8x8 latent, cross-attention 32);
 * - `mid`: block_out_channels [64, 128, 256], 32x32 latent, cross-attention 256, 77 context tokens.
 *
 * Run alone: `deno run -A services/policy/model/bench.ts [--backends wasm,cpu,webgpu] [--iters 3]
 * [--configs tiny,mid]`. The lead's bench/main.ts calls `runModelBench()` and prints the rows.
 */
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, hasWebGpuAdapter } from "../../../lib/tensor/backend.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import type { FlagSpecs } from "../../../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../../../lib/cli/command.ts";
import { parseUNetConfig, type UNetConfig } from "./config.ts";
import { LoraAdapter } from "./lora.ts";
import { FlopCounter } from "./nn.ts";
import { UNet2DConditionModel } from "./unet.ts";
import { initRandomParams } from "./weights.ts";

export interface BenchCase {
  name: string;
  config: UNetConfig;
  batch: number;
  latent: number;
  contextLength: number;
}

export const BENCH_CASES: Record<string, BenchCase> = {
  tiny: {
    name: "tiny",
    config: parseUNetConfig({
      in_channels: 4,
      out_channels: 4,
      block_out_channels: [32, 64],
      down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 2,
      attention_head_dim: 8,
      cross_attention_dim: 32,
      norm_num_groups: 32,
    }),
    batch: 2,
    latent: 8,
    contextLength: 7,
  },
  mid: {
    name: "mid",
    config: parseUNetConfig({
      in_channels: 4,
      out_channels: 4,
      block_out_channels: [64, 128, 256],
      down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
      up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
      layers_per_block: 2,
      attention_head_dim: 8,
      cross_attention_dim: 256,
      norm_num_groups: 32,
    }),
    batch: 2,
    latent: 32,
    contextLength: 77,
  },
};

export interface BenchRow {
  config: string;
  backend: string;
  params: number;
  gflopPerForward: number;
  forwardMs: number;
  gflops: number;
  loraStepMs: number | null;
}

async function median(iters: number, f: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Benchmarks one case on one backend (the backend must be selectable). */
export async function benchCase(
  c: BenchCase,
  backend: BackendName,
  iters = 3,
  train = true,
): Promise<BenchRow> {
  await initBackend(backend, { gradients: train });
  const unet = new UNet2DConditionModel(c.config);
  initRandomParams(unet.params, 1);
  const lora = LoraAdapter.attach(unet, { rank: 4 });
  const ch = c.config.inChannels;
  const sample = tf.randomNormal([c.batch, ch, c.latent, c.latent], 0, 1, "float32", 1) as tf.Tensor4D;
  const context = tf.randomNormal(
    [c.batch, c.contextLength, c.config.crossAttentionDim[0]],
    0,
    1,
    "float32",
    2,
  ) as tf.Tensor3D;
  const timesteps = Array.from({ length: c.batch }, (_, i) => 999 - 100 * i);
  const optimizer = tf.train.adam(1e-4);
  try {
    const flops = new FlopCounter();
    const warm = unet.forward(sample, timesteps, context, { lora: true, flops });
    await warm.data();
    warm.dispose();
    const forwardMs = await median(iters, async () => {
      const y = unet.forward(sample, timesteps, context, { lora: true });
      await y.data();
      y.dispose();
    });
    let loraStepMs: number | null = null;
    if (train) {
      const step = async () => {
        const loss = optimizer.minimize(
          () => tf.mean(tf.square(unet.forward(sample, timesteps, context, { lora: true }))) as tf.Scalar,
          true,
          lora.variables(),
        )!;
        await loss.data();
        loss.dispose();
      };
      await step(); // warm-up (optimizer slots, shader compilation)
      loraStepMs = await median(iters, step);
    }
    return {
      config: c.name,
      backend,
      params: unet.parameterCount(),
      gflopPerForward: flops.total / 1e9,
      forwardMs,
      gflops: flops.total / 1e9 / (forwardMs / 1000),
      loraStepMs,
    };
  } finally {
    optimizer.dispose();
    tf.dispose([sample, context]);
    lora.dispose();
    unet.dispose();
  }
}

export interface ModelBenchOptions {
  backends?: BackendName[];
  configs?: string[];
  iters?: number;
  /** Print each row as it is measured. */
  log?: (line: string) => void;
}

/** Whether the WebGPU adapter is a software fallback (Mesa's llvmpipe), which is very slow. */
async function isFallbackAdapter(): Promise<boolean> {
  const gpu = (navigator as unknown as {
    gpu?: {
      requestAdapter(): Promise<
        { isFallbackAdapter?: boolean; info?: { isFallbackAdapter?: boolean } } | null
      >;
    };
  }).gpu;
  const adapter = await gpu?.requestAdapter();
  return Boolean(adapter?.isFallbackAdapter ?? adapter?.info?.isFallbackAdapter);
}

/**
 * Default plan: wasm on tiny and mid, cpu on tiny only (the pure-JS backend is slow), webgpu on
 * tiny and mid when an adapter exists (tiny only on a software fallback adapter).
 */
export async function runModelBench(options: ModelBenchOptions = {}): Promise<BenchRow[]> {
  const gpu = await hasWebGpuAdapter();
  const slowGpu = gpu && await isFallbackAdapter();
  const backends = options.backends ??
    (["wasm", "cpu", ...(gpu ? ["webgpu" as const] : [])] as BackendName[]);
  const configs = options.configs ?? ["tiny", "mid"];
  const rows: BenchRow[] = [];
  for (const name of configs) {
    const c = BENCH_CASES[name];
    if (!c) throw new Error(`--configs: unknown case "${name}" (${Object.keys(BENCH_CASES).join(", ")})`);
    for (const backend of backends) {
      if (backend === "cpu" && name !== "tiny" && !options.backends) continue;
      if (backend === "webgpu" && (!gpu || (slowGpu && name !== "tiny" && !options.backends))) continue;
      const row = await benchCase(c, backend, options.iters ?? 3);
      rows.push(row);
      options.log?.(formatRow(row));
    }
  }
  return rows;
}

export const TABLE_HEADER =
  "| config | backend | params | GFLOP/fwd | fwd ms | GFLOP/s | LoRA step ms |\n|---|---|---|---|---|---|---|";

export function formatRow(r: BenchRow): string {
  return `| ${r.config} | ${r.backend} | ${(r.params / 1e6).toFixed(2)}M | ${
    r.gflopPerForward.toFixed(3)
  } | ${r.forwardMs.toFixed(1)} | ${r.gflops.toFixed(2)} | ${
    r.loraStepMs === null ? "-" : r.loraStepMs.toFixed(1)
  } |`;
}

export function formatTable(rows: BenchRow[]): string {
  return [TABLE_HEADER, ...rows.map(formatRow)].join("\n");
}

export const MODEL_BENCH_FLAGS = {
  backends: { type: "string", description: "comma-separated tfjs backends (default: every available one)" },
  configs: { type: "string", description: "comma-separated UNet configs, e.g. tiny,mid (default: all)" },
  iters: { type: "int", min: 1, description: "timed iterations per case (default: the bench's own)" },
} as const satisfies FlagSpecs;

export const MODEL_BENCH_COMMAND: CommandSpec<typeof MODEL_BENCH_FLAGS> = {
  name: "services/policy/model/bench.ts",
  summary: "UNet forward GFLOP/s and LoRA train step per tfjs backend (a table)",
  flags: MODEL_BENCH_FLAGS,
  examples: ["deno run -A services/policy/model/bench.ts --backends wasm,cpu --iters 3"],
  async run(values) {
    console.log(TABLE_HEADER);
    await runModelBench({
      backends: values.backends?.split(",") as BackendName[] | undefined,
      configs: values.configs?.split(","),
      iters: values.iters,
      log: (l) => console.log(l),
    });
  },
};

if (import.meta.main) await runCommand(MODEL_BENCH_COMMAND);
