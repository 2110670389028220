/**
 * Trains an attribute classifier (classifier.ts) on the procedural shapes data set and writes it
 * as a reward bundle of kind `attribute_classifier` (services/reward/BUNDLES.md): model.onnx,
 * manifest.json (heads, classes, prompt patterns), metrics.json (held-out accuracy per attribute on
 * fresh procedural images), loss.csv.
 *
 *   deno run -A tools/attributes/train_classifier.ts --arch a --seed 1 --steps 2000 --out models/prompt_fidelity
 *   deno run -A tools/attributes/train_classifier.ts --arch b --seed 2 --steps 500 --batch 32 --lr 0.003 \
 *     --out models/attribute_evaluator --name attribute_evaluator
 *   deno run -A tools/attributes/train_classifier.ts --help
 *
 * Training images are blurred at random (a 3x3 box blur, half the time) because the embedded model's
 * samples are softer than the renderer's crisp shapes. The held-out set uses a data seed that
 * training never sees.
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { type CommandSpec, runCommand } from "../../lib/cli/command.ts";
import type { FlagSpecs, FlagValues } from "../../lib/rpc/flags.ts";
import { BACKENDS, initBackend, parseBackendName } from "../../lib/tensor/backend.ts";
import { enableGradients } from "../../lib/tensor/gradients.ts";
import { type RenderOptions, renderSpec, sampleSpec } from "../shapes/dataset.ts";
import { uniform } from "../shapes/rand.ts";
import {
  ARCHS,
  attributeBundleManifest,
  type ClassifierArch,
  classifierLogits,
  exportClassifierOnnx,
  headLogProbs,
  IMAGE_SIZE,
  initClassifierParams,
} from "./classifier.ts";
import { ATTRIBUTE_HEADS, headOffsets, totalClasses, type Visibility } from "./heads.ts";
import { movingAverage } from "../../services/trainer/metrics.ts";
import { lineChartSvg, PALETTE } from "../../services/trainer/report/plot.ts";

/** Data seeds: training draws from TRAIN_DATA_SEED + classifier seed, evaluation from HELD_OUT_DATA_SEED. */
export const TRAIN_DATA_SEED = 7000;
export const HELD_OUT_DATA_SEED = 424242;

export interface ClassifierBatch {
  images: Float32Array;
  /** One-hot targets [B, totalClasses] (all zero for a head the image does not decide). */
  targets: Float32Array;
  /** Per head, per image: 1 when labelled. */
  mask: Float32Array;
  labels: Int32Array;
}

function boxBlur(img: Float32Array, size: number): Float32Array {
  const out = new Float32Array(img.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        let n = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy, xx = x + dx;
            if (yy < 0 || yy >= size || xx < 0 || xx >= size) continue;
            s += img[(yy * size + xx) * 3 + c];
            n++;
          }
        }
        out[(y * size + x) * 3 + c] = s / n;
      }
    }
  }
  return out;
}

/** Radius of a shape in pixels at 32x32 below which it counts as not visible ("none"). */
const VISIBLE_RADIUS_PX = 1;

/**
 * How sample `index` is drawn for the classifiers: 9 % without an object, 9 % faded (opacity
 * 0.05-0.75: below 0.3 "none", 0.3-0.55 ambiguous, above "shown"), 4 % shrunk (radius x 0.1-0.3:
 * under 1 pixel "none", else ambiguous), the rest as the data set draws it. A pure function of
 * (dataSeed, index), like the data set.
 */
export function visibilityOf(
  dataSeed: number,
  index: number,
  small: boolean,
): { render: RenderOptions; visibility: Visibility } {
  const [u0, u1] = uniform(dataSeed ^ 0x3c6ef372, index, 2);
  if (u0 < 0.09) return { render: { opacity: 0 }, visibility: "none" };
  if (u0 < 0.18) {
    const opacity = 0.05 + 0.7 * u1;
    return {
      render: { opacity },
      visibility: opacity < 0.3 ? "none" : opacity < 0.55 ? "ambiguous" : "shown",
    };
  }
  if (u0 < 0.22) {
    const scale = 0.1 + 0.2 * u1;
    const radiusPx = (small ? 0.11 : 0.2) * IMAGE_SIZE * scale;
    return { render: { scale }, visibility: radiusPx < VISIBLE_RADIUS_PX ? "none" : "ambiguous" };
  }
  return { render: {}, visibility: "shown" };
}

/**
 * Images (NHWC, x / 255) and labels of samples [start, start + n) of data set `dataSeed`, drawn by
 * renderer `variant` (training the evaluator on another variant than the reward keeps it from
 * sharing the reward's generator).
 */
export function makeBatch(
  dataSeed: number,
  start: number,
  n: number,
  augment: boolean,
  variant: RenderOptions["variant"] = "default",
): ClassifierBatch {
  const heads = ATTRIBUTE_HEADS;
  const total = totalClasses(heads);
  const offsets = headOffsets(heads);
  const px = IMAGE_SIZE * IMAGE_SIZE * 3;
  const images = new Float32Array(n * px);
  const targets = new Float32Array(n * total);
  const mask = new Float32Array(heads.length * n);
  const labels = new Int32Array(heads.length * n);
  for (let i = 0; i < n; i++) {
    // The scene once: its size decides what "too small to see" is, then it is drawn (makeSample's steps).
    const spec = sampleSpec(dataSeed, start + i);
    const vis = visibilityOf(dataSeed, start + i, spec.size === "small");
    const image = renderSpec(spec, IMAGE_SIZE, dataSeed, start + i, { ...vis.render, variant });
    let img: Float32Array = Float32Array.from(image, (v) => v / 255);
    // Sample-determined augmentation (the last pixel's noise decides), so a batch is reproducible.
    if (augment && (image[px - 1] + start + i) % 2 === 0) img = boxBlur(img, IMAGE_SIZE);
    images.set(img, i * px);
    heads.forEach((h, k) => {
      const l = h.label(spec, vis.visibility);
      labels[k * n + i] = l;
      if (l >= 0) {
        targets[i * total + offsets[k] + l] = 1;
        mask[k * n + i] = 1;
      }
    });
  }
  return { images, targets, mask, labels };
}

/** Sum over heads of the mean cross-entropy over the images that head labels. */
function lossOf(arch: ClassifierArch, params: Map<string, tf.Variable>, b: ClassifierBatch, n: number) {
  const heads = ATTRIBUTE_HEADS;
  const offsets = headOffsets(heads);
  const x = tf.tensor4d(b.images, [n, IMAGE_SIZE, IMAGE_SIZE, 3]);
  const t = tf.tensor2d(b.targets, [n, totalClasses(heads)]);
  const logp = headLogProbs(classifierLogits(arch, params, x), heads);
  const terms = heads.map((h, k) => {
    const valid = b.mask.subarray(k * n, (k + 1) * n).reduce((a, v) => a + v, 0);
    const ce = tf.neg(
      tf.sum(
        tf.mul(
          tf.slice(logp, [0, offsets[k]], [-1, h.classes.length]),
          tf.slice(t, [0, offsets[k]], [-1, h.classes.length]),
        ),
      ),
    );
    return tf.div(ce, Math.max(1, valid));
  });
  return tf.addN(terms) as tf.Scalar;
}

/** Accuracy per head on `n` fresh images of the held-out data seed. */
export async function heldOutAccuracy(
  arch: ClassifierArch,
  params: ReadonlyMap<string, tf.Tensor>,
  n: number,
  dataSeed = HELD_OUT_DATA_SEED,
): Promise<Record<string, { accuracy: number; n: number }>> {
  // Beside each head's accuracy: count_none_recall (argmax "none" on the images labelled none) and
  // count_false_none (argmax "none" on images with a visible object).
  const heads = ATTRIBUTE_HEADS;
  const offsets = headOffsets(heads);
  const correct = heads.map(() => 0);
  const counted = heads.map(() => 0);
  const countHead = heads.findIndex((h) => h.name === "count");
  const noneClass = heads[countHead].classes.indexOf("none");
  const none = { labelled: 0, recalled: 0, shown: 0, falseNone: 0 };
  const chunk = 200;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const b = makeBatch(dataSeed, start, m, false);
    const logits = tf.tidy(() =>
      classifierLogits(arch, params, tf.tensor4d(b.images, [m, IMAGE_SIZE, IMAGE_SIZE, 3]))
    );
    const v = (await logits.data()) as Float32Array;
    logits.dispose();
    const total = totalClasses(heads);
    heads.forEach((h, k) => {
      for (let i = 0; i < m; i++) {
        const l = b.labels[k * m + i];
        if (l < 0) continue;
        let best = 0;
        for (let c = 1; c < h.classes.length; c++) {
          if (v[i * total + offsets[k] + c] > v[i * total + offsets[k] + best]) best = c;
        }
        counted[k]++;
        if (best === l) correct[k]++;
        if (k === countHead && l === noneClass) {
          none.labelled++;
          if (best === noneClass) none.recalled++;
        } else if (k === countHead) {
          none.shown++;
          if (best === noneClass) none.falseNone++;
        }
      }
    });
  }
  return {
    ...Object.fromEntries(
      heads.map((h, k) => [h.name, { accuracy: correct[k] / Math.max(1, counted[k]), n: counted[k] }]),
    ),
    count_none_recall: { accuracy: none.recalled / Math.max(1, none.labelled), n: none.labelled },
    count_false_none: { accuracy: none.falseNone / Math.max(1, none.shown), n: none.shown },
  };
}

/** loss.svg of a bundle folder's loss.csv (raw and a 50-step moving average). */
export async function writeLossChart(dir: string, title: string): Promise<void> {
  const rows = (await Deno.readTextFile(join(dir, "loss.csv"))).trim().split("\n").slice(1).map((l) =>
    l.split(",").map(Number) as [number, number]
  );
  const svg = lineChartSvg({
    title,
    series: [
      { name: "loss (sum over heads)", points: rows, color: PALETTE[0], opacity: 0.35 },
      { name: "50-step mean", points: movingAverage(rows, 50), color: PALETTE[1] },
    ],
    xLabel: "step",
    yLabel: "cross-entropy",
  });
  await writeAtomic(join(dir, "loss.svg"), svg);
}

export interface TrainClassifierOptions {
  arch: ClassifierArch;
  seed: number;
  steps: number;
  batch: number;
  lr: number;
  /** The renderer variant of the training images (held-out accuracy is always on `default`). */
  renderer: "default" | "jitter";
  evalImages: number;
  out: string;
  name: string;
  description: string;
  log: (line: string) => void;
}

/** Writes `path` via a temporary file and a rename (a crash never leaves half a file). */
async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

export async function trainClassifier(o: TrainClassifierOptions): Promise<Record<string, unknown>> {
  await enableGradients();
  const params = initClassifierParams(o.arch, ATTRIBUTE_HEADS, o.seed);
  const optimizer = tf.train.adam(o.lr);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    const b = makeBatch(TRAIN_DATA_SEED + o.seed, step * o.batch, o.batch, true, o.renderer);
    const loss = optimizer.minimize(() => lossOf(o.arch, params, b, o.batch), true, [...params.values()])!;
    losses.push((await loss.data())[0]);
    loss.dispose();
    if ((step + 1) % 25 === 0 || step + 1 === o.steps) {
      const recent = losses.slice(-25);
      o.log(
        `step ${step + 1}/${o.steps} loss ${
          (recent.reduce((a, v) => a + v, 0) / recent.length).toFixed(4)
        } ` +
          `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      );
    }
  }
  const accuracy = await heldOutAccuracy(o.arch, params, o.evalImages);
  o.log(
    `held-out accuracy: ${
      Object.entries(accuracy).map(([k, v]) => `${k} ${v.accuracy.toFixed(3)}`).join(", ")
    }`,
  );
  await Deno.mkdir(o.out, { recursive: true });
  await writeAtomic(join(o.out, "model.onnx"), await exportClassifierOnnx(o.arch, params, ATTRIBUTE_HEADS));
  const manifest = attributeBundleManifest(
    o.name,
    `arch-${o.arch.name}-seed-${o.seed}-steps-${o.steps}`,
    o.description,
  );
  await writeAtomic(join(o.out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  const metrics = {
    arch: o.arch,
    seed: o.seed,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    renderer: o.renderer,
    train_data_seed: TRAIN_DATA_SEED + o.seed,
    held_out_data_seed: HELD_OUT_DATA_SEED,
    held_out_accuracy: accuracy,
    final_loss_mean_last_100: losses.slice(-100).reduce((a, v) => a + v, 0) / Math.min(100, losses.length),
    train_seconds: (performance.now() - t0) / 1000,
  };
  await writeAtomic(join(o.out, "metrics.json"), JSON.stringify(metrics, null, 2) + "\n");
  await writeAtomic(
    join(o.out, "loss.csv"),
    "step,loss\n" + losses.map((l, i) => `${i + 1},${l}`).join("\n") + "\n",
  );
  for (const v of params.values()) v.dispose();
  return metrics;
}

export const TRAIN_CLASSIFIER_FLAGS = {
  arch: {
    type: "string",
    default: "a",
    choices: Object.keys(ARCHS),
    description: "classifier architecture (a: the reward's, b: the held-out evaluator's)",
  },
  seed: { type: "int", default: 1, min: 0, description: "init seed; training data seed is 7000 + seed" },
  steps: { type: "int", default: 1500, min: 1, description: "Adam steps" },
  batch: { type: "int", default: 64, min: 1, description: "fresh procedural images per step" },
  lr: { type: "number", default: 0.002, min: 0, description: "Adam learning rate" },
  renderer: {
    type: "string",
    default: "default",
    choices: ["default", "jitter"],
    description: "renderer variant of the training images (jitter: the evaluator's own generator)",
  },
  evalImages: {
    type: "int",
    default: 2000,
    min: 1,
    description: "held-out images (data seed 424242) for metrics.json's accuracy per attribute",
  },
  out: { type: "string", required: true, description: "bundle folder to write (created when missing)" },
  name: { type: "string", default: "prompt_fidelity", description: "the bundle's name in manifest.json" },
  description: {
    type: "string",
    default: "log-probability of the prompted attributes",
    description: "the bundle's description in manifest.json",
  },
  backend: { type: "string", default: "wasm", choices: BACKENDS, description: "tfjs backend" },
  plotOnly: {
    type: "bool",
    description: "only redraw loss.svg from --out's loss.csv (nothing trained)",
  },
} as const satisfies FlagSpecs;

async function trainClassifierCommand(values: FlagValues<typeof TRAIN_CLASSIFIER_FLAGS>): Promise<void> {
  if (values.plotOnly) {
    await writeLossChart(values.out, `${values.name}: training loss`);
    return;
  }
  await initBackend(parseBackendName(values.backend), { gradients: true });
  const metrics = await trainClassifier({
    arch: ARCHS[values.arch],
    seed: values.seed,
    steps: values.steps,
    batch: values.batch,
    lr: values.lr,
    renderer: values.renderer as "default" | "jitter",
    evalImages: values.evalImages,
    out: values.out,
    name: values.name,
    description: values.description,
    log: (l) => console.log(l),
  });
  console.log(JSON.stringify(metrics.held_out_accuracy));
}

export const TRAIN_CLASSIFIER_COMMAND: CommandSpec<typeof TRAIN_CLASSIFIER_FLAGS> = {
  name: "tools/attributes/train_classifier.ts",
  summary: "trains an attribute classifier on the procedural shapes and writes it as a reward bundle",
  description: "Writes model.onnx, manifest.json, metrics.json (held-out accuracy per attribute) and " +
    "loss.csv into --out; --plot-only redraws loss.svg from an existing loss.csv.",
  flags: TRAIN_CLASSIFIER_FLAGS,
  examples: [
    "deno run -A tools/attributes/train_classifier.ts --arch a --seed 1 --steps 2000 --batch 64 --lr 0.002 " +
    "--out models/prompt_fidelity --name prompt_fidelity",
    "deno run -A tools/attributes/train_classifier.ts --arch b --seed 2 --steps 500 --batch 32 --lr 0.003 " +
    "--out models/attribute_evaluator --name attribute_evaluator",
  ],
  run: (values) => trainClassifierCommand(values),
};

if (import.meta.main) await runCommand(TRAIN_CLASSIFIER_COMMAND);
