/**
 * A small convolutional image classifier of the prompted attributes (heads.ts): a stack of
 * stride-2 convolutions with ReLU, a hidden dense layer, and one linear output per class of every
 * head, trained in tfjs and exported to ONNX with the same arithmetic (convolution weights
 * transposed HWIO -> OIHW, features flattened in HWC order), so the reward service scores exactly
 * what was trained. The output is the log-softmax of each head, concatenated: [B, totalClasses].
 */
import * as tf from "@tensorflow/tfjs-core";
import { OnnxGraphBuilder } from "../../services/reward/testing/onnx_builder.ts";
import { ATTRIBUTE_HEADS, type AttributeHead, headOffsets, totalClasses } from "./heads.ts";

export interface ConvLayerSpec {
  filters: number;
  kernel: number;
}

/** An architecture: every conv has stride 2 and padding floor(kernel / 2). */
export interface ClassifierArch {
  name: string;
  convs: ConvLayerSpec[];
  hidden: number;
}

/** The reward's classifier ("a") and the held-out evaluator's ("b": other widths, kernels, depth). */
export const ARCHS: Record<string, ClassifierArch> = {
  a: {
    name: "a",
    convs: [{ filters: 16, kernel: 3 }, { filters: 32, kernel: 3 }, { filters: 64, kernel: 3 }],
    hidden: 64,
  },
  b: { name: "b", convs: [{ filters: 24, kernel: 5 }, { filters: 48, kernel: 3 }], hidden: 128 },
};

export const IMAGE_SIZE = 32;

/** Mulberry32 for weight init (seeded, so a classifier is a function of its seed). */
function rng(seed: number): () => number {
  let a = (seed ^ 0x2545f491) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** He-normal weights, zero biases; names are what the checkpoint stores. */
export function initClassifierParams(
  arch: ClassifierArch,
  heads: readonly AttributeHead[],
  seed: number,
): Map<string, tf.Variable> {
  const rand = rng(seed);
  const normal = (n: number, std: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const r = Math.sqrt(-2 * Math.log(1 - rand()));
      out[i] = std * r * Math.cos(2 * Math.PI * rand());
    }
    return out;
  };
  const params = new Map<string, tf.Variable>();
  let channels = 3;
  let side = IMAGE_SIZE;
  arch.convs.forEach((c, i) => {
    const fanIn = c.kernel * c.kernel * channels;
    const shape = [c.kernel, c.kernel, channels, c.filters];
    params.set(
      `conv${i}.weight`,
      tf.variable(tf.tensor(normal(fanIn * c.filters, Math.sqrt(2 / fanIn)), shape)),
    );
    params.set(`conv${i}.bias`, tf.variable(tf.zeros([c.filters])));
    channels = c.filters;
    side = Math.ceil(side / 2);
  });
  const features = side * side * channels;
  const out = totalClasses(heads);
  params.set(
    "fc0.weight",
    tf.variable(tf.tensor(normal(features * arch.hidden, Math.sqrt(2 / features)), [features, arch.hidden])),
  );
  params.set("fc0.bias", tf.variable(tf.zeros([arch.hidden])));
  params.set(
    "fc1.weight",
    tf.variable(tf.tensor(normal(arch.hidden * out, Math.sqrt(1 / arch.hidden)), [arch.hidden, out])),
  );
  params.set("fc1.bias", tf.variable(tf.zeros([out])));
  return params;
}

/** Logits [B, totalClasses] of images NHWC in [0, 1]. */
export function classifierLogits(
  arch: ClassifierArch,
  params: ReadonlyMap<string, tf.Tensor>,
  images: tf.Tensor4D,
): tf.Tensor2D {
  return tf.tidy(() => {
    let x: tf.Tensor4D = images;
    arch.convs.forEach((c, i) => {
      const y = tf.conv2d(x, params.get(`conv${i}.weight`) as tf.Tensor4D, 2, Math.floor(c.kernel / 2));
      x = tf.relu(tf.add(y, params.get(`conv${i}.bias`)!)) as tf.Tensor4D;
    });
    const flat = tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
    const h = tf.relu(
      tf.add(tf.matMul(flat, params.get("fc0.weight") as tf.Tensor2D), params.get("fc0.bias")!),
    );
    return tf.add(
      tf.matMul(h as tf.Tensor2D, params.get("fc1.weight") as tf.Tensor2D),
      params.get("fc1.bias")!,
    ) as tf.Tensor2D;
  });
}

/** Per head log-softmax of the logits, concatenated [B, totalClasses] (what the ONNX model outputs). */
export function headLogProbs(logits: tf.Tensor2D, heads: readonly AttributeHead[]): tf.Tensor2D {
  return tf.tidy(() => {
    const offsets = headOffsets(heads);
    const parts = heads.map((h, i) =>
      tf.logSoftmax(tf.slice(logits, [0, offsets[i]], [-1, h.classes.length]))
    );
    return tf.concat(parts, 1) as tf.Tensor2D;
  });
}

/**
 * The ONNX model: `pixel_values` float32 [batch, 3, 32, 32] (x / 255, NCHW) -> `log_probs` float32
 * [batch, totalClasses], per head log-softmax.
 */
export async function exportClassifierOnnx(
  arch: ClassifierArch,
  params: ReadonlyMap<string, tf.Tensor>,
  heads: readonly AttributeHead[],
): Promise<Uint8Array> {
  const g = new OnnxGraphBuilder(`attribute_classifier_${arch.name}`);
  g.input("pixel_values", "float32", ["batch", 3, IMAGE_SIZE, IMAGE_SIZE]);
  const data = async (name: string) => (await params.get(name)!.data()) as Float32Array;
  let x = "pixel_values";
  for (let i = 0; i < arch.convs.length; i++) {
    const c = arch.convs[i];
    const w = params.get(`conv${i}.weight`)!;
    const oihw = tf.transpose(w, [3, 2, 0, 1]);
    const [o, ci, kh, kw] = oihw.shape;
    g.initializer(`conv${i}.weight`, "float32", [o, ci, kh, kw], (await oihw.data()) as Float32Array);
    oihw.dispose();
    g.initializer(`conv${i}.bias`, "float32", [o], await data(`conv${i}.bias`));
    const p = Math.floor(c.kernel / 2);
    g.node("Conv", [x, `conv${i}.weight`, `conv${i}.bias`], [`conv${i}`], {
      kernel_shape: { ints: [c.kernel, c.kernel] },
      strides: { ints: [2, 2] },
      pads: { ints: [p, p, p, p] },
    });
    g.node("Relu", [`conv${i}`], [`relu${i}`]);
    x = `relu${i}`;
  }
  // tfjs flattens NHWC: transpose back before flattening so fc0's rows line up.
  g.node("Transpose", [x], ["nhwc"], { perm: { ints: [0, 2, 3, 1] } });
  g.node("Flatten", ["nhwc"], ["features"], { axis: { i: 1 } });
  for (const [layer, input, relu] of [["fc0", "features", true], ["fc1", "h", false]] as const) {
    const w = params.get(`${layer}.weight`)!;
    g.initializer(`${layer}.weight`, "float32", w.shape as number[], await data(`${layer}.weight`));
    g.initializer(`${layer}.bias`, "float32", [w.shape[1]!], await data(`${layer}.bias`));
    g.node("MatMul", [input, `${layer}.weight`], [`${layer}_mm`]);
    g.node("Add", [`${layer}_mm`, `${layer}.bias`], [relu ? `${layer}_pre` : "logits"]);
    if (relu) g.node("Relu", [`${layer}_pre`], ["h"]);
  }
  const offsets = headOffsets(heads);
  const parts: string[] = [];
  heads.forEach((h, i) => {
    g.initializer(`start${i}`, "int64", [1], BigInt64Array.of(BigInt(offsets[i])));
    g.initializer(`end${i}`, "int64", [1], BigInt64Array.of(BigInt(offsets[i] + h.classes.length)));
    g.initializer(`axis${i}`, "int64", [1], BigInt64Array.of(1n));
    g.node("Slice", ["logits", `start${i}`, `end${i}`, `axis${i}`], [`head${i}`]);
    g.node("LogSoftmax", [`head${i}`], [`logp${i}`], { axis: { i: 1 } });
    parts.push(`logp${i}`);
  });
  g.node("Concat", parts, ["log_probs"], { axis: { i: 1 } });
  g.output("log_probs", "float32", ["batch", totalClasses(heads)]);
  return g.build();
}

/** The reward bundle's manifest (kind `attribute_classifier`, services/reward/BUNDLES.md) for `model.onnx`. */
export function attributeBundleManifest(
  name: string,
  version: string,
  description: string,
  heads: readonly AttributeHead[] = ATTRIBUTE_HEADS,
) {
  return {
    format: 1,
    kind: "attribute_classifier",
    name,
    version,
    description,
    models: { model: { file: "model.onnx", feeds: { pixel_values: "pixel_values" }, output: "log_probs" } },
    // x / 255, NCHW: what the classifier was trained on (mean 0, std 1 leaves CLIP's rescale alone).
    preprocessing: { type: "clip", size: IMAGE_SIZE, mean: [0, 0, 0], std: [1, 1, 1] },
    attributes: heads.map((h) => ({
      name: h.name,
      classes: h.classes,
      patterns: h.patterns,
      ...(h.presence ? { presence: h.presence } : {}),
    })),
  };
}
