/**
 * `deno task bench --only sd15 [--quick]`: Stable Diffusion 1.5 through the policy core on one
 * backend, as one table (bench_format.ts): the adapter (vendor, architecture, fallback or not), the
 * CLIP encode of 8 prompts, the UNet forward (batch `pairs` with classifier-free guidance), the VAE
 * decode, DDIM sampling through PolicyCore.generate, the trainer's sampling step
 * (PolicyCore.sampleCandidates: K = 2 candidates per prompt with their log-probs, candidate noise
 * predictions and decoded candidates), one RDPO LoRA train step through PolicyCore.trainStep on the
 * pairs those candidates make (guidance on, checkpointed UNet blocks) and how far the adapter moved,
 * and the memory: measured (tfjs' allocation, pool included) beside the estimate from the shapes
 * (memory.ts).
 *
 * Full mode is SD1.5 at full width and 64x64 latents (512x512 images). --quick runs the same code
 * at 8x8 latents on `sd15-mini` (SD1.5's block structure and key layout at small widths), so it
 * takes a minute on a CPU or a software adapter (CI); `--config sd15 --latent 8` is the full-width
 * model at 8x8 latents (the lavapipe run of bench/results/sd15-lavapipe-*.md).
 */
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, hasWebGpuAdapter, initBackend } from "../../../../lib/tensor/backend.ts";
import { describeDevice, type DeviceReport } from "../../../../lib/tensor/limits.ts";
import { initialLatentsNoise } from "../../../../lib/rdpo/rng.ts";
import { disposePipeline, loadPipeline, type PolicyPipeline } from "../../pipeline.ts";
import { DEFAULT_STEP, PolicyCore } from "../../core.ts";
import { DEFAULT_ADAM } from "../../adam.ts";
import type { HostTensor } from "../../denoiser.ts";
import type { TensorRecord } from "../../../../lib/tensor/safetensors.ts";
import { modelSpec } from "./specs.ts";
import { estimateUNetMemory, type MemoryRow } from "./memory.ts";
import { describeWidths, randomSpecPipeline } from "./random_pipeline.ts";

export interface Sd15BenchOptions {
  quick: boolean;
  /** Model spec of the random weights (default: sd15-mini with --quick, else sd15). */
  config?: string;
  /** Latent side (default: 8 with --quick, else 64). */
  latent?: number;
  /** Preference pairs of the train step = prompts sampled (default 2). */
  pairs?: number;
  backend?: BackendName;
  /** Timed repetitions after the first call (median reported); 0: the first call only. */
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
  /** The reported time: the median of the repetitions, or the first call when there were none. */
  ms: number;
  /** The first call (shader compilation, buffer pools, weight upload included). */
  firstMs: number;
  /** Repetitions behind `ms` (0: `ms` is the first call). */
  reps: number;
  note: string;
}

export interface Sd15BenchResult {
  device: DeviceReport;
  /** Spec name, or the model folder. */
  model: string;
  widths: string;
  latent: number;
  pairs: number;
  parameters: number;
  loadSeconds: number;
  rows: Sd15Row[];
  /**
   * Each train step's loss, in order (the first is ln 2 for RDPO: lora_B starts at 0, so the policy
   * equals the reference), and how far the adapter moved over all steps (max |delta| of its weights).
   */
  losses: number[];
  adapterMaxDelta: number;
  adapterChanged: boolean;
  /** Finite log-probs of the sampled candidates [B, K]. */
  logProbs: number[];
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

/** First call, then `iters` timed repetitions (median). Returns the first call's result too. */
async function timed<T>(
  iters: number,
  f: () => Promise<T>,
): Promise<{ first: number; median: number; value: T }> {
  let t0 = performance.now();
  const value = await f();
  const first = performance.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { first, median: times.length ? times[Math.floor(times.length / 2)] : first, value };
}

function deviceBytes(): number {
  const m = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number };
  return m.numBytesAllocatedInGPU ?? m.numBytes;
}

/** The default backend: webgpu when an adapter exists, else wasm (cpu for full width: wasm's 4 GB heap). */
async function defaultBackend(config: string): Promise<BackendName> {
  if (await hasWebGpuAdapter()) return "webgpu";
  return config === "sd15" ? "cpu" : "wasm";
}

/** Largest |after - before| over the adapter's (float32) weights. */
function maxAbsDelta(before: Map<string, TensorRecord>, after: Map<string, TensorRecord>): number {
  let m = 0;
  for (const [k, a] of after) {
    const x = a.data as Float32Array;
    const y = before.get(k)!.data as Float32Array;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  }
  return m;
}

export async function runSd15Bench(o: Sd15BenchOptions): Promise<Sd15BenchResult> {
  const log = o.log ?? ((s: string) => console.error(s));
  const config = o.config || (o.quick ? "sd15-mini" : "sd15");
  const latent = o.latent || (o.quick ? 8 : 64);
  const pairs = o.pairs || 2;
  const iters = o.iters ?? (o.quick ? 1 : 3);
  const backend = o.backend ?? await defaultBackend(o.modelDir ? "sd15" : config);
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
  const t0 = performance.now();
  const spec = modelSpec(config);
  const pipeline: PolicyPipeline = o.modelDir
    ? await loadPipeline(o.modelDir, { variant: o.variant })
    : await randomSpecPipeline(spec, latent, log);
  if (o.modelDir) pipeline.latentShape = [pipeline.latentShape[0], latent, latent];
  const unetJson = JSON.parse(pipeline.configs.unet);
  const widths = describeWidths({
    ...spec,
    unet: unetJson,
    vae: JSON.parse(pipeline.configs.vae),
    textEncoder: JSON.parse(pipeline.configs.textEncoder),
  });
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
  const tStart = performance.now();
  let peak = deviceBytes();
  // Each row is logged as it is measured, so a run cut short still shows what it reached.
  const add = async <T>(what: string, note: string, f: () => Promise<T>): Promise<T> => {
    log(`${what} ...`);
    const t = await timed(iters, f);
    const row = { what, ms: t.median, firstMs: t.first, reps: iters, note };
    rows.push(row);
    peak = Math.max(peak, deviceBytes());
    log(
      `${what}: first ${t.first.toFixed(0)} ms, reported ${t.median.toFixed(0)} ms (at ${
        ((performance.now() - tStart) / 1000).toFixed(0)
      } s; ${JSON.stringify(tf.memory())})`,
    );
    return t.value;
  };
  try {
    const guidance = 5;
    const step = { ...DEFAULT_STEP, numInferenceSteps: 20, guidanceScale: guidance };
    const ids = PROMPTS.map((p) => pipeline.tokenizer!.encode(p));
    await add("CLIP text encode, 8 prompts", "77 tokens, causal mask, final layer norm", async () => {
      const out = pipeline.textEncoder!.forward(ids.map((i) => [...i]));
      await out.lastHiddenState.data();
      Object.values(out).forEach((t) => (t as tf.Tensor | null)?.dispose());
    });

    const [c] = pipeline.latentShape;
    const x = tf.randomNormal([pairs, c, latent, latent], 0, 1, "float32", 7) as tf.Tensor4D;
    const embeds = pipeline.textEncoder!.forward(ids.slice(0, 2 * pairs).map((i) => [...i]));
    const ctx = embeds.lastHiddenState as tf.Tensor3D;
    await add(
      `UNet forward, batch ${pairs} + CFG (${2 * pairs} x ${latent}x${latent})`,
      "eps_u + w (eps_c - eps_u), w = 5",
      async () => {
        const eps = tf.tidy(() => {
          const both = pipeline.unet.forward(
            tf.concat([x, x]) as tf.Tensor4D,
            new Array(2 * pairs).fill(999),
            ctx,
          );
          const [u, cnd] = tf.split(both, 2);
          return tf.add(u, tf.mul(guidance, tf.sub(cnd, u)));
        });
        await eps.data();
        eps.dispose();
      },
    );

    await add(`VAE decode, ${pairs} images ${latent * 8}x${latent * 8}`, "scaling 0.18215", async () => {
      const img = pipeline.vae!.decode(tf.div(x, pipeline.vae!.scalingFactor) as tf.Tensor4D);
      await img.data();
      img.dispose();
    });
    x.dispose();
    Object.values(embeds).forEach((t) => (t as tf.Tensor | null)?.dispose());

    const steps = o.samplingSteps ?? 2;
    await add(
      `DDIM sampling, ${pairs} images, ${steps} steps + CFG + decode`,
      "PolicyCore.generate, eta 1",
      () =>
        core.generate({
          conditioning: { prompts: PROMPTS.slice(0, pairs) },
          step: { ...step, numInferenceSteps: steps },
          noise: { seed: 1n, stream: 0n },
          batch: pairs,
          role: "policy",
        }),
    );

    // The trainer's sampling step (services/trainer/trajectory.ts): K candidates per prompt from
    // one parent, their log-probs, their noise predictions and decoded images.
    const d = c * latent * latent;
    const parent: HostTensor = {
      shape: [pairs, c, latent, latent],
      data: initialLatentsNoise({ seed: 3n, stream: 0n }, pairs, d),
    };
    const stepIndex = 5;
    const sampled = await add(
      `SampleCandidates, ${pairs} prompts x K 2 + CFG, log-probs, decode`,
      `PolicyCore.sampleCandidates at step ${stepIndex}/20 (the trainer's call)`,
      () =>
        core.sampleCandidates({
          conditioning: { prompts: PROMPTS.slice(0, pairs) },
          latents: parent,
          stepIndex,
          step,
          numCandidates: 2,
          noise: { seed: 5n, stream: 0n },
          predictCandidateNoise: true,
          decodeCandidates: true,
          decodeParent: false,
          role: "policy",
        }),
    );
    const logProbs = Array.from(sampled.logProbs?.data ?? []);
    const cand = (k: number): HostTensor => {
      const out = new Float32Array(pairs * d);
      for (let j = 0; j < pairs; j++) {
        out.set(sampled.candidates.data.subarray((j * 2 + k) * d, (j * 2 + k + 1) * d), j * d);
      }
      return { shape: [pairs, c, latent, latent], data: out };
    };
    const side = (next: HostTensor) => ({
      conditioning: { prompts: PROMPTS.slice(0, pairs) },
      latents: parent,
      nextLatents: next,
      stepIndices: [stepIndex],
    });
    const beforeAdapter = await core.getAdapter(false);
    const before = beforeAdapter.weights;
    let optimizerStep = 0;
    const losses: number[] = [];
    await add(
      `RDPO LoRA train step, ${pairs} pairs + CFG`,
      "PolicyCore.trainStep on the sampled candidates: rank 4, checkpointed blocks, reference = LoRA off, Adam",
      async () => {
        const out = await core.trainStep({
          winners: side(cand(0)),
          losers: side(cand(1)),
          step,
          loss: { kind: "rdpo", beta: 0.1, lambda: 100, ratioClamp: 0 },
          optimizer: { ...DEFAULT_ADAM },
          requestId: `bench-${optimizerStep++}`,
          returnGradients: false,
          noise: { seed: 1n, stream: BigInt(optimizerStep) },
        });
        losses.push(out.loss);
      },
    );
    const afterAdapter = await core.getAdapter(false);
    const adapterMaxDelta = maxAbsDelta(before, afterAdapter.weights);
    const parameters = pipeline.unet.parameterCount() + pipeline.vae!.params.count() +
      pipeline.textEncoder!.params.count();
    core.dispose();
    disposePipeline(pipeline);
    log("memory estimate from the shapes");
    const estimate = await estimateUNetMemory({
      unetConfig: unetJson,
      latent,
      pairs,
      contextLength: 77,
      tensorLimitBytes: Number.isFinite(device.tensorByteLimit) ? device.tensorByteLimit : 128 * 2 ** 20,
      checkpointing: [true],
    });
    return {
      device,
      model: o.modelDir ? `${o.modelDir}${o.variant ? ` (variant ${o.variant})` : ""}` : config,
      widths,
      latent,
      pairs,
      parameters,
      loadSeconds,
      rows,
      losses,
      adapterMaxDelta,
      adapterChanged: afterAdapter.checksum !== beforeAdapter.checksum,
      logProbs,
      measuredPeakBytes: peak || null,
      estimate,
    };
  } catch (e) {
    core.dispose();
    disposePipeline(pipeline);
    throw e;
  }
}
