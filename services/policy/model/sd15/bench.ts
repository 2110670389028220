/**
 * `deno task bench --only sd15 [--quick]`: Stable Diffusion 1.5 at full width through the policy
 * core on one backend, as one table: the adapter (vendor, architecture, fallback or not), the UNet
 * forward (batch 2 with classifier-free guidance: 4 samples), DDIM sampling through
 * PolicyCore.generate, one RDPO LoRA train step through PolicyCore.trainStep (2 pairs, guidance on,
 * checkpointed UNet blocks), the VAE decode of two images, the CLIP encode of 8 prompts, and the
 * memory: measured (tfjs' allocation, pool included) beside the estimate from the shapes
 * (memory.ts). Full size is 64x64 latents (512x512 images); --quick is the same code at 8x8
 * latents, for CI and machines without a GPU.
 */
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, hasWebGpuAdapter, initBackend } from "../../../../lib/tensor/backend.ts";
import { describeDevice, type DeviceReport } from "../../../../lib/tensor/limits.ts";
import { buildNoiseSchedule, parseScheduleConfig } from "../../../../lib/rdpo/schedule.ts";
import { fixturePath } from "../../../../lib/testing/fixtures.ts";
import { pathExists } from "../../../../lib/fs/exists.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { AutoencoderKL } from "../vae.ts";
import { CLIPTextModel } from "../clip_text.ts";
import { initRandomParams } from "../weights.ts";
import { clipPromptTokenizer, disposePipeline, loadPipeline, type PolicyPipeline } from "../../pipeline.ts";
import { DEFAULT_STEP, PolicyCore } from "../../core.ts";
import { DEFAULT_ADAM } from "../../adam.ts";
import { modelSpec } from "./specs.ts";
import { estimateUNetMemory, type MemoryRow } from "./memory.ts";

export interface Sd15BenchOptions {
  quick: boolean;
  backend?: BackendName;
  /** Timed repetitions after a warm-up (median reported). */
  iters?: number;
  /** A make-model folder to load instead of in-memory random weights. */
  modelDir?: string;
  variant?: string;
  /** Refuse to time on a fallback (software) adapter: the GPU check sets it. */
  requireHardware?: boolean;
  /** DDIM steps of the sampling row. */
  samplingSteps?: number;
  log?: (line: string) => void;
}

export interface Sd15Row {
  what: string;
  ms: number;
  note: string;
}

export interface Sd15BenchResult {
  device: DeviceReport;
  latent: number;
  parameters: number;
  loadSeconds: number;
  rows: Sd15Row[];
  measuredPeakBytes: number | null;
  estimate: MemoryRow[];
}

const PROMPTS = [
  "a photo of a cat",
  "a photo of a dog",
  "a watercolor painting of a horse",
  "a red bird on a branch",
  "a rabbit in a field of flowers",
  "a lion at sunset",
  "an owl in the snow",
  "a goldfish in a bowl",
];

/** SD1.5 with seeded random weights, in memory, at `latent` x `latent` latents. */
async function randomSd15(latent: number, log: (s: string) => void): Promise<PolicyPipeline> {
  const spec = modelSpec("sd15");
  const unet = new UNet2DConditionModel(parseUNetConfig(spec.unet));
  log("random weights: unet");
  initRandomParams(unet.params, 1);
  const vae = new AutoencoderKL(parseVaeConfig(spec.vae));
  log("random weights: vae");
  initRandomParams(vae.params, 2);
  const textEncoder = new CLIPTextModel(parseClipTextConfig(spec.textEncoder));
  log("random weights: text encoder");
  initRandomParams(textEncoder.params, 3);
  const vocab = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");
  if (!(await pathExists(vocab))) {
    throw new Error(`sd15 bench: CLIP BPE vocabulary not found at ${vocab} (set RDPO_SHARED_DIR)`);
  }
  return {
    name: "sd15-random",
    unet,
    textEncoder,
    vae,
    tokenizer: await clipPromptTokenizer(vocab, textEncoder.config.maxPositionEmbeddings),
    schedule: buildNoiseSchedule(parseScheduleConfig(spec.scheduler, "scheduler")),
    configs: {
      unet: JSON.stringify(spec.unet),
      textEncoder: JSON.stringify(spec.textEncoder),
      vae: JSON.stringify(spec.vae),
      scheduler: JSON.stringify(spec.scheduler),
    },
    latentShape: [4, latent, latent],
    imageWidth: latent * 8,
    imageHeight: latent * 8,
  };
}

async function timed(iters: number, f: () => Promise<void>): Promise<number> {
  await f(); // warm-up: shader compilation, buffer pools
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function gpuBytes(): number | null {
  const m = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number };
  return m.numBytesAllocatedInGPU ?? null;
}

export async function runSd15Bench(o: Sd15BenchOptions): Promise<Sd15BenchResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const backend = o.backend ?? ((await hasWebGpuAdapter()) ? "webgpu" : "cpu");
  await initBackend(backend, { gradients: true });
  const device = await describeDevice();
  log(`device: ${JSON.stringify(device)}`);
  if (o.requireHardware && device.isFallbackAdapter) {
    throw new Error(
      `sd15 bench: refusing to time on a fallback adapter (${
        device.description || device.backend
      }); a GPU is required`,
    );
  }
  const latent = o.quick ? 8 : 64;
  const iters = o.iters ?? (o.quick ? 1 : 3);
  const t0 = performance.now();
  const pipeline = o.modelDir
    ? await loadPipeline(o.modelDir, { variant: o.variant })
    : await randomSd15(latent, log);
  if (o.modelDir) pipeline.latentShape = [pipeline.latentShape[0], latent, latent];
  pipeline.unet.gradientCheckpointing = true;
  const loadSeconds = (performance.now() - t0) / 1000;
  log(`weights ready in ${loadSeconds.toFixed(1)} s`);
  const core = new PolicyCore(pipeline, {
    role: "policy",
    lora: { rank: 4, alpha: 4, seed: 0 },
    adapterRoot: ".",
    maxBatch: 64,
    backend,
  });
  const rows: Sd15Row[] = [];
  const t00 = performance.now();
  // Each row is logged as it is measured, so a run cut short still shows what it reached.
  const add = (row: Sd15Row) => {
    rows.push(row);
    log(`${row.what}: ${row.ms.toFixed(1)} ms (at ${((performance.now() - t00) / 1000).toFixed(0)} s)`);
  };
  let peak = gpuBytes() ?? 0;
  const notePeak = () => {
    peak = Math.max(peak, gpuBytes() ?? tf.memory().numBytes);
  };
  try {
    const guidance = 5;
    const step = { ...DEFAULT_STEP, numInferenceSteps: 20, guidanceScale: guidance };
    const ids = PROMPTS.map((p) => pipeline.tokenizer!.encode(p));
    log("clip encode");
    add({
      what: "CLIP text encode, 8 prompts",
      ms: await timed(iters, async () => {
        const out = pipeline.textEncoder!.forward(ids.map((i) => [...i]));
        await out.lastHiddenState.data();
        Object.values(out).forEach((t) => (t as tf.Tensor | null)?.dispose());
      }),
      note: "77 tokens, ViT-L/14 text tower",
    });
    notePeak();

    const [c] = pipeline.latentShape;
    const x = tf.randomNormal([2, c, latent, latent], 0, 1, "float32", 7) as tf.Tensor4D;
    const embeds = pipeline.textEncoder!.forward(ids.slice(0, 4).map((i) => [...i]));
    const ctx = embeds.lastHiddenState as tf.Tensor3D;
    log("unet forward");
    add({
      what: `UNet forward, batch 2 + CFG (4 x ${latent}x${latent})`,
      ms: await timed(iters, async () => {
        const eps = tf.tidy(() => {
          const both = pipeline.unet.forward(tf.concat([x, x]) as tf.Tensor4D, [999, 999, 999, 999], ctx);
          const [u, cnd] = tf.split(both, 2);
          return tf.add(u, tf.mul(guidance, tf.sub(cnd, u)));
        });
        await eps.data();
        eps.dispose();
      }),
      note: "eps_u + w (eps_c - eps_u), w = 5",
    });
    notePeak();

    log("vae decode");
    add({
      what: `VAE decode, 2 images ${latent * 8}x${latent * 8}`,
      ms: await timed(iters, async () => {
        const img = pipeline.vae!.decode(tf.div(x, pipeline.vae!.scalingFactor) as tf.Tensor4D);
        await img.data();
        img.dispose();
      }),
      note: "scaling 0.18215",
    });
    notePeak();

    const steps = o.samplingSteps ?? 2;
    log("sampling");
    add({
      what: `DDIM sampling, 2 images, ${steps} steps + CFG + decode`,
      ms: await timed(0, async () => {
        await core.generate({
          conditioning: { prompts: PROMPTS.slice(0, 2) },
          step: { ...step, numInferenceSteps: steps },
          noise: { seed: 1n, stream: 0n },
          batch: 2,
          role: "policy",
        });
      }),
      note: "PolicyCore.generate, eta 1 (first call: includes warm-up)",
    });
    notePeak();

    log("lora train step");
    const host = (seed: number) => {
      const t = tf.randomNormal([2, c, latent, latent], 0, 1, "float32", seed);
      const data = t.dataSync() as Float32Array;
      t.dispose();
      return { shape: [2, c, latent, latent], data };
    };
    const parent = host(11);
    const side = (seed: number) => ({
      conditioning: { prompts: PROMPTS.slice(0, 2) },
      latents: parent,
      nextLatents: host(seed),
      stepIndices: [5],
    });
    let optimizerStep = 0;
    add({
      what: "RDPO LoRA train step, 2 pairs + CFG",
      ms: await timed(iters, async () => {
        await core.trainStep({
          winners: side(12 + optimizerStep),
          losers: side(40 + optimizerStep),
          step,
          loss: { kind: "rdpo", beta: 0.1, lambda: 100, ratioClamp: 0 },
          optimizer: { ...DEFAULT_ADAM },
          requestId: `bench-${optimizerStep++}`,
          returnGradients: false,
          noise: { seed: 1n, stream: BigInt(optimizerStep) },
        });
      }),
      note: "PolicyCore.trainStep: rank 4, checkpointed blocks, reference = LoRA off, Adam",
    });
    notePeak();
    x.dispose();
    Object.values(embeds).forEach((t) => (t as tf.Tensor | null)?.dispose());
    const parameters = pipeline.unet.parameterCount() + pipeline.vae!.params.count() +
      pipeline.textEncoder!.params.count();
    core.dispose();
    disposePipeline(pipeline);
    log("memory estimate from the shapes");
    const estimate = await estimateUNetMemory({
      unetConfig: modelSpec("sd15").unet,
      latent,
      pairs: 2,
      contextLength: 77,
      tensorLimitBytes: Number.isFinite(device.tensorByteLimit) ? device.tensorByteLimit : 128 * 2 ** 20,
      checkpointing: [true],
    });
    return {
      device,
      latent,
      parameters,
      loadSeconds,
      rows,
      measuredPeakBytes: peak || null,
      estimate,
    };
  } catch (e) {
    core.dispose();
    disposePipeline(pipeline);
    throw e;
  }
}

/** The result as one Markdown table (plus the adapter line above it). */
export function formatSd15Bench(r: Sd15BenchResult, ratios?: Map<string, number>): string {
  const d = r.device;
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  const adapter = d.backend === "webgpu"
    ? `${d.vendor || "?"} / ${d.architecture || "?"} (${d.description || "no description"}), fallback: ${
      d.isFallbackAdapter ? "yes" : "no"
    }, maxStorageBufferBindingSize ${d.maxStorageBufferBindingSize}, maxBufferSize ${d.maxBufferSize}`
    : `${d.description}, fallback: yes`;
  const lines = [
    `SD1.5 (${
      (r.parameters / 1e6).toFixed(0)
    } M parameters, random weights), ${r.latent}x${r.latent} latents, backend ${d.backend}: ${adapter}; weights ready in ${
      r.loadSeconds.toFixed(1)
    } s`,
    "",
    ratios ? "| what | ms | x PyTorch eager fp32 | note |" : "| what | ms | note |",
    ratios ? "| --- | ---: | ---: | --- |" : "| --- | ---: | --- |",
  ];
  for (const row of r.rows) {
    const ratio = ratios?.get(row.what);
    lines.push(
      ratios
        ? `| ${row.what} | ${row.ms.toFixed(1)} | ${ratio ? ratio.toFixed(2) : "-"} | ${row.note} |`
        : `| ${row.what} | ${row.ms.toFixed(1)} | ${row.note} |`,
    );
  }
  const est = r.estimate.find((e) => e.pass.startsWith("LoRA"));
  lines.push(
    `| peak memory, measured | - | ${ratios ? "- | " : ""}${
      r.measuredPeakBytes ? gib(r.measuredPeakBytes) : "n/a"
    } (tfjs: allocated, buffer pool included) |`,
    `| peak memory, from the shapes | - | ${ratios ? "- | " : ""}${
      est
        ? `${gib(est.peakBytes)} train step; largest tensor ${(est.largest.bytes / 2 ** 20).toFixed(0)} MiB ${
          JSON.stringify(est.largest.shape)
        }`
        : "n/a"
    } |`,
  );
  return lines.join("\n");
}
