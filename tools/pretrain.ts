/**
 * `deno task pretrain`: trains the project's embedded text-to-image model (issue 7) from scratch on
 * the procedural shapes data set, with the standard epsilon-prediction objective
 * E ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, c)||^2 on SD's noise schedule,
 * prompts dropped to "" 10% of the time so classifier-free guidance works.
 *
 * Resumable: every --checkpoint-every steps it writes the model, Adam's moments and the step
 * atomically into --out/checkpoint; a later run continues from there. When done it writes the model
 * folder (--out/model) that the policy service loads, and the loss curve (CSV + SVG).
 *
 *   deno task pretrain --steps 20000 --batch 16 --out runs/pretrain
 *   deno task pretrain --out runs/pretrain --export-only     (model folder from the last checkpoint)
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { BACKENDS, initBackend, parseBackendName } from "../lib/tensor/backend.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { enableGradients } from "../lib/tensor/gradients.ts";
import { readSafetensors, type TensorRecord, writeSafetensors } from "../lib/tensor/safetensors.ts";
import { WordTokenizer } from "../lib/text/word_tokenizer.ts";
import { buildNoiseSchedule, parseScheduleConfig } from "../lib/rdpo/schedule.ts";
import { AdamOptimizer, resolveAdamConfig } from "../services/policy/adam.ts";
import { CLIPTextModel } from "../services/policy/model/clip_text.ts";
import { parseClipTextConfig, parseUNetConfig } from "../services/policy/model/config.ts";
import { UNet2DConditionModel } from "../services/policy/model/unet.ts";
import { initRandomParams } from "../services/policy/model/weights.ts";
import { saveModelFolder } from "../services/policy/model_folder.ts";
import { makeSample } from "./shapes/dataset.ts";
import {
  TINY_IMAGE_SIZE,
  tinySchedulerConfig,
  tinyTextEncoderConfig,
  tinyTokenizerConfig,
  tinyUNetConfig,
} from "./tiny_model_config.ts";

export interface PretrainOptions {
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  seed: number;
  out: string;
  checkpointEvery: number;
  dropPrompt: number;
  /**
   * Decay of the exponential moving average of the weights that the exported model uses (0: export
   * the raw weights). Averaging removes most of the step-to-step noise of constant-lr Adam, which
   * shows in samples as grain and colour drift.
   */
  ema: number;
  backend: string;
  /** Write the model folder from the latest checkpoint and stop (no training). */
  exportOnly?: boolean;
  log: (line: string) => void;
}

/** Deterministic per-step randomness: Mulberry32 seeded by (seed, step). */
function stepRandom(seed: number, step: number): () => number {
  let a = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normals(rand: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const a = 2 * Math.PI * rand();
    out[i] = r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

export class TinyModelTrainer {
  readonly tokenizer = new WordTokenizer(tinyTokenizerConfig());
  readonly unetConfig = tinyUNetConfig();
  readonly textConfig = tinyTextEncoderConfig(this.tokenizer.vocabSize);
  readonly schedulerConfig = tinySchedulerConfig();
  readonly unet = new UNet2DConditionModel(parseUNetConfig(this.unetConfig));
  readonly text = new CLIPTextModel(parseClipTextConfig(this.textConfig));
  readonly schedule = buildNoiseSchedule(parseScheduleConfig(this.schedulerConfig));
  readonly params = new Map<string, tf.Variable>();
  /** EMA shadow of `params` (same names), when options.ema > 0. */
  readonly ema = new Map<string, tf.Variable>();
  readonly optimizer: AdamOptimizer;
  step = 0;
  /** Updates folded into the EMA so far (its warm-up, and resuming a checkpoint made without EMA). */
  emaSteps = 0;

  constructor(readonly options: PretrainOptions) {
    initRandomParams(this.unet.params, options.seed, 0.02);
    initRandomParams(this.text.params, options.seed + 1, 0.02);
    for (
      const [prefix, store] of [["unet.", this.unet.params], ["text_encoder.", this.text.params]] as const
    ) {
      store.setTrainable(true);
      for (const [k, v] of store.variables()) this.params.set(prefix + k, v);
    }
    this.optimizer = new AdamOptimizer(this.params);
    if (options.ema > 0) {
      for (const [name, v] of this.params) this.ema.set(name, tf.variable(v.clone(), false));
    }
  }

  /** ema <- d ema + (1 - d) param, with the usual warm-up d = min(decay, (1 + n) / (10 + n)). */
  private updateEma(): void {
    if (this.ema.size === 0) return;
    const d = Math.min(this.options.ema, (1 + this.emaSteps) / (10 + this.emaSteps));
    tf.tidy(() => {
      for (const [name, e] of this.ema) e.assign(tf.add(tf.mul(e, d), tf.mul(this.params.get(name)!, 1 - d)));
    });
    this.emaSteps += 1;
  }

  parameterCount(): number {
    return this.unet.parameterCount() + this.text.parameterCount();
  }

  /** One optimizer step on batch `step`; returns the loss. */
  async trainStep(): Promise<number> {
    const { batch, seed, dropPrompt } = this.options;
    const size = TINY_IMAGE_SIZE;
    const rand = stepRandom(seed, this.step);
    const images = new Float32Array(batch * size * size * 3);
    const ids: number[][] = [];
    const ts: number[] = [];
    for (let i = 0; i < batch; i++) {
      const s = makeSample(seed, this.step * batch + i, size);
      for (let j = 0; j < s.image.length; j++) images[i * s.image.length + j] = s.image[j] / 127.5 - 1;
      ids.push([...this.tokenizer.encode(rand() < dropPrompt ? "" : s.prompt)]);
      ts.push(
        Math.min(
          this.schedule.config.numTrainTimesteps - 1,
          Math.floor(rand() * this.schedule.config.numTrainTimesteps),
        ),
      );
    }
    const eps = normals(rand, batch * 3 * size * size);
    const lr = this.options.lr * Math.min(1, (this.step + 1) / Math.max(1, this.options.warmup));
    const { value, grads } = tf.tidy(() => {
      const x0 = tf.transpose(tf.tensor4d(images, [batch, size, size, 3]), [0, 3, 1, 2]) as tf.Tensor4D;
      const noise = tf.tensor4d(eps, [batch, 3, size, size]);
      const abar = ts.map((t) => this.schedule.alphasCumprod[t]);
      const xt = tf.add(
        tf.mul(x0, tf.tensor4d(abar.map(Math.sqrt), [batch, 1, 1, 1])),
        tf.mul(noise, tf.tensor4d(abar.map((a) => Math.sqrt(1 - a)), [batch, 1, 1, 1])),
      ) as tf.Tensor4D;
      return tf.variableGrads(() => {
        const ctx = this.text.forward(tf.tensor2d(ids, [batch, this.tokenizer.maxLength], "int32"));
        const pred = this.unet.forward(xt, ts, ctx.lastHiddenState);
        return tf.mean(tf.square(tf.sub(pred, noise))) as tf.Scalar;
      }, [...this.params.values()]);
    });
    let lossValue: number;
    try {
      const byName = new Map<string, tf.Tensor>();
      for (const [name, v] of this.params) byName.set(name, grads[v.name]);
      await this.optimizer.apply(byName, resolveAdamConfig({ learningRate: lr, maxGradNorm: 1 }));
      lossValue = (await value.data())[0];
      this.updateEma();
    } finally {
      value.dispose();
      Object.values(grads).forEach((g) => g.dispose());
    }
    this.step += 1;
    return lossValue;
  }

  async saveCheckpoint(dir: string, losses: number[]): Promise<void> {
    await Deno.mkdir(dir, { recursive: true });
    const state = await this.optimizer.exportState();
    const tensors = new Map<string, TensorRecord>();
    for (const [name, v] of this.params) {
      tensors.set(`param.${name}`, { dtype: "F32", shape: [v.size], data: (await v.data()) as Float32Array });
      const mv = state.moments.get(name)!;
      tensors.set(`adam_m.${name}`, { dtype: "F32", shape: [v.size], data: mv.m });
      tensors.set(`adam_v.${name}`, { dtype: "F32", shape: [v.size], data: mv.v });
      const e = this.ema.get(name);
      if (e) {
        tensors.set(`ema.${name}`, { dtype: "F32", shape: [v.size], data: (await e.data()) as Float32Array });
      }
    }
    tensors.set("losses", { dtype: "F32", shape: [losses.length], data: Float32Array.from(losses) });
    await writeSafetensors(join(dir, "state.safetensors"), tensors, {
      step: String(this.step),
      adam_step: String(state.step),
      seed: String(this.options.seed),
      batch: String(this.options.batch),
      ema_steps: String(this.emaSteps),
    });
  }

  /** Restores a checkpoint; returns the loss history, or null when there is none. */
  async loadCheckpoint(dir: string): Promise<number[] | null> {
    let file;
    try {
      file = await readSafetensors(join(dir, "state.safetensors"));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    const { tensors, metadata } = file;
    if (Number(metadata.seed) !== this.options.seed || Number(metadata.batch) !== this.options.batch) {
      throw new Error(
        `checkpoint in ${dir} was made with seed ${metadata.seed}, batch ${metadata.batch}; pass the same flags`,
      );
    }
    const moments = new Map<string, { m: Float32Array; v: Float32Array }>();
    for (const [name, v] of this.params) {
      const p = tensors.get(`param.${name}`);
      if (!p) throw new Error(`checkpoint lacks parameter ${name}`);
      v.assign(tf.tensor(p.data as Float32Array, v.shape));
      moments.set(name, {
        m: tensors.get(`adam_m.${name}`)!.data as Float32Array,
        v: tensors.get(`adam_v.${name}`)!.data as Float32Array,
      });
    }
    this.optimizer.importState({ step: Number(metadata.adam_step), moments });
    this.step = Number(metadata.step);
    // A checkpoint made without EMA (or with EMA off) starts the average from the current weights.
    this.emaSteps = 0;
    for (const [name, e] of this.ema) {
      const saved = tensors.get(`ema.${name}`);
      tf.tidy(() =>
        e.assign(saved ? tf.tensor(saved.data as Float32Array, e.shape) : this.params.get(name)!)
      );
      if (saved) this.emaSteps = Number(metadata.ema_steps ?? 0);
    }
    return Array.from(tensors.get("losses")!.data as Float32Array);
  }

  /** Writes the model folder: the EMA weights when EMA is on (swapped in, then restored), else the raw ones. */
  async saveModel(dir: string, facts: Record<string, unknown>): Promise<void> {
    const raw = new Map<string, tf.Tensor>();
    for (const [name, e] of this.ema) {
      const p = this.params.get(name)!;
      raw.set(name, p.clone());
      p.assign(e);
    }
    try {
      await saveModelFolder(dir, {
        unet: { config: this.unetConfig, params: this.unet.params },
        textEncoder: { config: this.textConfig, params: this.text.params },
        tokenizer: this.tokenizer.config,
        scheduler: this.schedulerConfig,
        index: {
          rdpo_pretraining: {
            ...facts,
            weights: this.ema.size ? `ema decay ${this.options.ema}, ${this.emaSteps} updates` : "raw",
          },
        },
      });
    } finally {
      for (const [name, t] of raw) {
        this.params.get(name)!.assign(t);
        t.dispose();
      }
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const e of this.ema.values()) e.dispose();
    this.unet.dispose();
    this.text.dispose();
  }
}

/** Loss curve as a small SVG (moving average over 1% of the steps). */
export function lossCurveSvg(losses: number[], width = 640, height = 320): string {
  const win = Math.max(1, Math.floor(losses.length / 100));
  const smooth: number[] = [];
  for (let i = 0; i < losses.length; i++) {
    const a = Math.max(0, i - win + 1);
    let s = 0;
    for (let j = a; j <= i; j++) s += losses[j];
    smooth.push(s / (i - a + 1));
  }
  const maxY = Math.max(...smooth, 1e-6);
  const pad = 40;
  const x = (i: number) => pad + (i / Math.max(1, smooth.length - 1)) * (width - 2 * pad);
  const y = (v: number) => height - pad - (v / maxY) * (height - 2 * pad);
  const path = smooth.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<rect width="100%" height="100%" fill="white"/>
<line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" stroke="black"/>
<line x1="${pad}" y1="${pad}" x2="${pad}" y2="${height - pad}" stroke="black"/>
<text x="${width / 2}" y="${
    height - 8
  }" text-anchor="middle" font-family="sans-serif" font-size="12">step (${losses.length})</text>
<text x="8" y="${pad - 10}" font-family="sans-serif" font-size="12">loss (max ${maxY.toFixed(3)}, last ${
    smooth.at(-1)?.toFixed(4)
  })</text>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
</svg>
`;
}

/** The loss curve as CSV (one row per step) and SVG (smoothed), written beside the model folders. */
async function writeLossCurve(dir: string, losses: number[]): Promise<void> {
  await Deno.writeTextFile(
    join(dir, "loss.csv"),
    "step,loss\n" + losses.map((l, i) => `${i + 1},${l}`).join("\n") + "\n",
  );
  await Deno.writeTextFile(join(dir, "loss.svg"), lossCurveSvg(losses));
}

export async function pretrain(options: PretrainOptions): Promise<{ losses: number[]; seconds: number }> {
  await initBackend(parseBackendName(options.backend));
  await enableGradients();
  const trainer = new TinyModelTrainer(options);
  const ckptDir = join(options.out, "checkpoint");
  const losses = (await trainer.loadCheckpoint(ckptDir)) ?? [];
  options.log(
    `tiny model: ${trainer.parameterCount()} parameters; ${
      trainer.step > 0 ? `resuming at step ${trainer.step}` : "from scratch"
    }`,
  );
  if (options.exportOnly) {
    if (trainer.step === 0) throw new Error(`no checkpoint in ${ckptDir} to export`);
    const dir = join(options.out, `model-step-${trainer.step}`);
    await trainer.saveModel(dir, {
      steps: trainer.step,
      batch: options.batch,
      lr: options.lr,
      seed: options.seed,
    });
    await writeLossCurve(options.out, losses);
    options.log(`exported step ${trainer.step} to ${dir}`);
    trainer.dispose();
    return { losses, seconds: 0 };
  }
  const t0 = performance.now();
  const startStep = trainer.step;
  const tty = Deno.stdout.isTerminal();
  while (trainer.step < options.steps) {
    losses.push(await trainer.trainStep());
    const done = trainer.step - startStep;
    const secs = (performance.now() - t0) / 1000;
    const eta = (secs / done) * (options.steps - trainer.step);
    const recent = losses.slice(-50);
    const line = `step ${trainer.step}/${options.steps} loss ${
      (recent.reduce((a, b) => a + b, 0) / recent.length).toFixed(4)
    } ` +
      `${(done / secs).toFixed(2)} steps/s ETA ${Math.round(eta)}s`;
    if (tty) {
      Deno.stdout.writeSync(new TextEncoder().encode(`\r${line}   `));
    } else if (trainer.step % 100 === 0) {
      options.log(line);
    }
    if (trainer.step % options.checkpointEvery === 0 || trainer.step === options.steps) {
      await trainer.saveCheckpoint(ckptDir, losses);
    }
  }
  if (tty) Deno.stdout.writeSync(new TextEncoder().encode("\n"));
  const seconds = (performance.now() - t0) / 1000;
  await trainer.saveModel(join(options.out, "model"), {
    steps: options.steps,
    batch: options.batch,
    lr: options.lr,
    seed: options.seed,
    final_loss_mean_last_500: losses.slice(-500).reduce((a, b) => a + b, 0) / Math.min(500, losses.length),
  });
  await writeLossCurve(options.out, losses);
  trainer.dispose();
  return { losses, seconds };
}

export const PRETRAIN_FLAGS = {
  steps: { type: "int", default: 20000, min: 0, description: "optimizer steps (in total, over resumes)" },
  batch: { type: "int", default: 16, min: 1, description: "images per step" },
  lr: { type: "number", default: 0.0005, min: 0, description: "peak learning rate" },
  warmup: { type: "int", default: 500, min: 0, description: "linear warm-up steps" },
  seed: { type: "int", default: 1, min: 0, description: "seed of the init and the data" },
  out: { type: "string", default: "runs/pretrain", description: "output folder (checkpoints, model/)" },
  checkpointEvery: { type: "int", default: 500, min: 1, description: "steps between checkpoints" },
  dropPrompt: {
    type: "number",
    default: 0.1,
    min: 0,
    max: 1,
    description: "fraction of prompts dropped (classifier-free guidance)",
  },
  ema: { type: "number", default: 0.999, min: 0, max: 1, description: "EMA decay of the exported weights" },
  backend: {
    type: "string",
    env: ["RDPO_BACKEND"],
    default: "wasm",
    choices: BACKENDS,
    description: "tfjs backend",
  },
  exportOnly: { type: "bool", default: false, description: "only export model/ from the last checkpoint" },
} as const satisfies FlagSpecs;

export const PRETRAIN_COMMAND: CommandSpec<typeof PRETRAIN_FLAGS> = {
  name: "pretrain",
  summary: "pretrains the embedded tiny text-to-image model on the procedural shapes data",
  flags: PRETRAIN_FLAGS,
  examples: ["deno task pretrain --steps 200 --out runs/pretrain-smoke", "deno task pretrain --export-only"],
  async run(values) {
    const r = await pretrain({ ...values, log: (l) => console.log(l) });
    console.log(
      `done: ${r.losses.length} steps, last loss ${r.losses.at(-1)?.toFixed(4)}, ${
        r.seconds.toFixed(0)
      } s this run`,
    );
  },
};

if (import.meta.main) await runCommand(PRETRAIN_COMMAND);
