/**
 * Building blocks with PyTorch semantics on NHWC activations (tfjs' conv2d layout): Linear, Conv2d,
 * GroupNorm, LayerNorm, activations and multi-head attention. Models convert NCHW <-> NHWC only at
 * their boundary; inside, a [B, H, W, C] map is a [B, H*W, C] token sequence without a transpose.
 *
 * Every forward takes a ForwardContext: `lora` switches LoRA adapters on or off for this call (the
 * policy and the reference model share one copy of the base weights, RDPO_SPEC.md section 2), and
 * `flops`, when set, accumulates the analytic FLOP count of convolutions and matrix products.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Param, ParamScope } from "./params.ts";
import { tensorByteLimit } from "../../../lib/tensor/limits.ts";

/** Counts multiply-adds as 2 FLOPs, for convolutions and matrix products only. */
export class FlopCounter {
  total = 0;
  add(flops: number): void {
    this.total += flops;
  }
}

export interface ForwardContext {
  /** Apply LoRA adapters attached to Linear layers. */
  lora: boolean;
  /** When set, every conv/matmul adds its FLOPs. */
  flops?: FlopCounter | null;
}

/**
 * Whether a gradient tape is recording. Fused conv/matmul define their gradient with customGrad,
 * which computes the weight and bias gradients even when only the input's gradient is needed (the
 * LoRA case: base weights frozen); the unfused ops' registered gradients are pruned per input by
 * the tape, so under a tape the layers use unfused ops.
 */
function recordingGradients(): boolean {
  return (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
}

/** A LoRA pair on one Linear: y += scale * (x A) B with A [in, r], B [r, out] (PEFT's lora_A^T, lora_B^T). */
export interface LoraPair {
  a: tf.Variable;
  b: tf.Variable;
  scale: number;
}

/** torch.nn.Linear; the weight is stored [in, out]. Also used for 1x1 convolutions on NHWC maps. */
export class Linear {
  readonly weight: Param;
  readonly bias: Param | null;
  lora: LoraPair | null = null;

  constructor(
    scope: ParamScope,
    readonly path: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; conv1x1?: boolean } = {},
  ) {
    const s = scope.scope(path);
    const shape = options.conv1x1 ? [outFeatures, inFeatures, 1, 1] : [outFeatures, inFeatures];
    this.weight = s.declare("weight", shape, "linear");
    this.bias = options.bias === false ? null : s.declare("bias", [outFeatures], "plain");
    scope.store.registerModule(s.prefix, this);
  }

  /** Full key path of this module (e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`). */
  get key(): string {
    return this.weight.name.slice(0, -".weight".length);
  }

  /** x: [..., in] -> [..., out]. */
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const n = lead.reduce((a, b) => a * b, 1);
      const x2 = tf.reshape(x, [n, this.inFeatures]) as tf.Tensor2D;
      const w = this.weight.value as tf.Tensor as tf.Tensor2D;
      let y: tf.Tensor;
      if (recordingGradients()) {
        y = tf.matMul(x2, w);
        if (this.bias) y = tf.add(y, this.bias.value);
      } else y = tf.fused.matMul({ a: x2, b: w, bias: this.bias?.value });
      ctx.flops?.add(2 * n * this.inFeatures * this.outFeatures);
      if (ctx.lora && this.lora) {
        const { a, b, scale } = this.lora;
        const r = a.shape[1] as number;
        const down = tf.matMul(x2, a as tf.Tensor as tf.Tensor2D);
        const up = tf.matMul(down, b as tf.Tensor as tf.Tensor2D);
        y = tf.add(y, scale === 1 ? up : tf.mul(up, scale));
        ctx.flops?.add(2 * n * r * (this.inFeatures + this.outFeatures));
      }
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}

/** torch.nn.Conv2d (square kernel, symmetric zero padding) on NHWC input; weight stored [kh, kw, in, out]. */
export class Conv2d {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(
    scope: ParamScope,
    path: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly options: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    const s = scope.scope(path);
    this.weight = s.declare("weight", [outChannels, inChannels, kernel, kernel], "conv");
    this.bias = options.bias === false ? null : s.declare("bias", [outChannels], "plain");
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    const stride = this.options.stride ?? 1;
    const pad = this.options.padding ?? 0;
    const filter = this.weight.value as tf.Tensor as tf.Tensor4D;
    let y: tf.Tensor4D;
    if (recordingGradients()) {
      const bias = this.bias;
      y = tf.tidy(() => {
        const conv = tf.conv2d(x, filter, stride, pad);
        return bias ? tf.add(conv, bias.value) as tf.Tensor4D : conv;
      });
    } else y = tf.fused.conv2d({ x, filter, strides: stride, pad, bias: this.bias?.value });
    const [b, ho, wo] = y.shape;
    ctx.flops?.add(2 * b * ho * wo * this.outChannels * this.inChannels * this.kernel * this.kernel);
    return y;
  }
}

/** torch.nn.GroupNorm over the channels (last axis) of an NHWC map or a [B, L, C] sequence. */
export class GroupNorm {
  readonly weight: Param;
  readonly bias: Param;

  constructor(
    scope: ParamScope,
    path: string,
    readonly groups: number,
    readonly channels: number,
    readonly eps: number,
  ) {
    if (channels % groups !== 0) {
      throw new Error(`${scope.key(path)}: ${channels} channels are not divisible into ${groups} groups`);
    }
    const s = scope.scope(path);
    this.weight = s.declare("weight", [channels], "plain");
    this.bias = s.declare("bias", [channels], "plain");
  }

  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      const b = shape[0];
      const c = this.channels;
      const g = this.groups;
      const grouped = tf.reshape(x, [b, -1, g, c / g]);
      const { mean, variance } = tf.moments(grouped, [1, 3], true); // [b, 1, g, 1], biased like PyTorch
      const rstd = tf.rsqrt(tf.add(variance, this.eps));
      // y = x * scale + shift with per-(batch, channel) scale = gamma * rstd, shift = beta - mean * scale
      const gamma = tf.reshape(this.weight.value, [1, 1, g, c / g]);
      const beta = tf.reshape(this.bias.value, [1, 1, g, c / g]);
      const scale = tf.mul(rstd, gamma);
      const shift = tf.sub(beta, tf.mul(mean, scale));
      return tf.reshape(tf.add(tf.mul(grouped, scale), shift), shape) as T;
    });
  }
}

/** torch.nn.LayerNorm over the last axis (elementwise affine). */
export class LayerNorm {
  readonly weight: Param;
  readonly bias: Param;

  constructor(scope: ParamScope, path: string, readonly features: number, readonly eps: number) {
    const s = scope.scope(path);
    this.weight = s.declare("weight", [features], "plain");
    this.bias = s.declare("bias", [features], "plain");
  }

  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(normed, this.weight.value), this.bias.value) as T;
    });
  }
}

/** Activation names accepted in configs (diffusers `act_fn`, transformers `hidden_act`). */
export type ActivationName = "silu" | "swish" | "gelu" | "gelu_tanh" | "quick_gelu" | "mish" | "relu";

const ACTIVATION_ALIASES: Record<string, ActivationName> = {
  silu: "silu",
  swish: "silu",
  gelu: "gelu",
  gelu_new: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  gelu_tanh: "gelu_tanh",
  quick_gelu: "quick_gelu",
  mish: "mish",
  relu: "relu",
};

/** Resolves a config activation name; throws naming the field for an unknown one. */
export function parseActivation(field: string, name: unknown): ActivationName {
  const a = typeof name === "string" ? ACTIVATION_ALIASES[name] : undefined;
  if (!a) {
    throw new Error(
      `${field}: unsupported activation ${JSON.stringify(name)} (supported: ${
        Object.keys(ACTIVATION_ALIASES).join(", ")
      })`,
    );
  }
  return a;
}

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Applies an activation elementwise. gelu is the exact (erf) form, as torch's default. */
export function activate(x: tf.Tensor, name: ActivationName): tf.Tensor {
  return tf.tidy(() => {
    switch (name) {
      case "silu":
      case "swish":
        return tf.mul(x, tf.sigmoid(x));
      case "gelu":
        return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1));
      case "gelu_tanh": {
        const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
        return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
      }
      case "quick_gelu":
        return tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
      case "mish":
        return tf.mul(x, tf.tanh(tf.softplus(x)));
      case "relu":
        return tf.relu(x);
    }
  });
}

/**
 * Scaled dot-product attention over heads: q [B, L, H*D], k and v [B, S, H*D] -> [B, L, H*D].
 * `mask`, when given, is added to the [.., L, S] scores (e.g. a causal mask of large negatives).
 */
export function multiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  heads: number,
  ctx: ForwardContext,
  mask?: tf.Tensor,
): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, l, inner] = q.shape;
    const s = k.shape[1];
    const d = inner / heads;
    const scale = 1 / Math.sqrt(d);
    const split = (t: tf.Tensor3D, n: number) =>
      heads === 1
        ? t
        : tf.reshape(tf.transpose(tf.reshape(t, [b, n, heads, d]), [0, 2, 1, 3]), [b * heads, n, d]);
    const qh = split(tf.mul(q, scale) as tf.Tensor3D, l) as tf.Tensor3D;
    const kh = split(k, s) as tf.Tensor3D;
    const vh = split(v, s) as tf.Tensor3D;
    const plan = attentionSlices(b * heads, l, s, tensorByteLimit());
    const out = plan.sliced ? slicedAttention(qh, kh, vh, plan, mask) : attend(qh, kh, vh, mask);
    ctx.flops?.add(2 * 2 * b * heads * l * s * d);
    if (heads === 1) return out as tf.Tensor3D;
    return tf.reshape(tf.transpose(tf.reshape(out, [b, heads, l, d]), [0, 2, 1, 3]), [
      b,
      l,
      inner,
    ]) as tf.Tensor3D;
  });
}

/** softmax(q k^T [+ mask]) v on [N, L, D] x [N, S, D]. */
function attend(qh: tf.Tensor3D, kh: tf.Tensor3D, vh: tf.Tensor3D, mask?: tf.Tensor): tf.Tensor3D {
  let scores: tf.Tensor = tf.matMul(qh, kh, false, true); // [N, L, S]
  if (mask) scores = tf.add(scores, mask);
  return tf.matMul(tf.softmax(scores) as tf.Tensor3D, vh);
}

/** How the [N, L, S] float32 score tensor is cut so no piece exceeds `limitBytes`. */
export interface AttentionSlices {
  sliced: boolean;
  /** Rows of N (batch x heads) per slice. */
  batchSlice: number;
  /** Query positions per slice (< L only when one head's scores alone exceed the limit). */
  querySlice: number;
}

/**
 * diffusers' attention slicing (`set_attention_slice`) chooses the slice by hand; here it follows
 * from the limit: as many heads per slice as fit, and query chunks when a single head is too big
 * (a softmax row is independent of the other rows, so either cut is exact).
 */
export function attentionSlices(n: number, l: number, s: number, limitBytes: number): AttentionSlices {
  const headBytes = l * s * 4;
  if (n * headBytes <= limitBytes) return { sliced: false, batchSlice: n, querySlice: l };
  if (headBytes <= limitBytes) {
    return { sliced: true, batchSlice: Math.max(1, Math.floor(limitBytes / headBytes)), querySlice: l };
  }
  return { sliced: true, batchSlice: 1, querySlice: Math.max(1, Math.floor(limitBytes / (s * 4))) };
}

function slicedAttention(
  qh: tf.Tensor3D,
  kh: tf.Tensor3D,
  vh: tf.Tensor3D,
  plan: AttentionSlices,
  mask?: tf.Tensor,
): tf.Tensor3D {
  const [n, l, d] = qh.shape;
  const s = kh.shape[1];
  const pieces: tf.Tensor3D[] = [];
  for (let i = 0; i < n; i += plan.batchSlice) {
    const nb = Math.min(plan.batchSlice, n - i);
    const k = tf.slice(kh, [i, 0, 0], [nb, s, d]);
    const v = tf.slice(vh, [i, 0, 0], [nb, s, d]);
    const rows: tf.Tensor3D[] = [];
    for (let j = 0; j < l; j += plan.querySlice) {
      const nl = Math.min(plan.querySlice, l - j);
      const q = tf.slice(qh, [i, j, 0], [nb, nl, d]);
      const m = mask ? sliceMask(mask, i, nb, j, nl) : undefined;
      rows.push(tf.tidy(() => attend(q, k, v, m)));
    }
    pieces.push(rows.length === 1 ? rows[0] : tf.concat(rows, 1));
  }
  return pieces.length === 1 ? pieces[0] : tf.concat(pieces, 0);
}

/** The part of a broadcastable [N|1, L|1, S] mask for rows i..i+nb, queries j..j+nl. */
function sliceMask(mask: tf.Tensor, i: number, nb: number, j: number, nl: number): tf.Tensor {
  const shape = mask.rank === 3 ? mask.shape : [1, ...mask.shape.slice(-2)];
  const m = mask.rank === 3 ? mask : tf.reshape(mask, shape);
  const [mn, ml, ms] = shape;
  return tf.slice(m, [mn === 1 ? 0 : i, ml === 1 ? 0 : j, 0], [mn === 1 ? 1 : nb, ml === 1 ? 1 : nl, ms]);
}

/** NCHW -> NHWC. */
export function toNHWC(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 2, 3, 1]);
}

/** NHWC -> NCHW. */
export function toNCHW(x: tf.Tensor4D): tf.Tensor4D {
  return tf.transpose(x, [0, 3, 1, 2]);
}
