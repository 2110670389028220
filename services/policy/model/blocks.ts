/**
 * diffusers v0.24 building blocks shared by the UNet and the VAE, on NHWC maps:
 * ResnetBlock2D (resnet.py), Downsample2D / Upsample2D (downsampling.py / upsampling.py), the
 * `Attention` module with its default processor (attention_processor.py) and the VAE mid-block
 * spatial self-attention.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ParamScope } from "./params.ts";
import {
  activate,
  type ActivationName,
  Conv2d,
  type ForwardContext,
  GroupNorm,
  Linear,
  multiHeadAttention,
} from "./nn.ts";

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** Width of the time embedding; null for the VAE's blocks (no time input). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  act: ActivationName;
  outputScaleFactor: number;
  skipTimeAct: boolean;
}

/** ResnetBlock2D with time_embedding_norm "default" (added after conv1). */
export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Linear | null;

  constructor(scope: ParamScope, readonly o: ResnetOptions) {
    this.norm1 = new GroupNorm(scope, "norm1", o.groups, o.inChannels, o.eps);
    this.conv1 = new Conv2d(scope, "conv1", o.inChannels, o.outChannels, 3, { padding: 1 });
    this.timeEmbProj = o.tembChannels === null
      ? null
      : new Linear(scope, "time_emb_proj", o.tembChannels, o.outChannels);
    this.norm2 = new GroupNorm(scope, "norm2", o.groups, o.outChannels, o.eps);
    this.conv2 = new Conv2d(scope, "conv2", o.outChannels, o.outChannels, 3, { padding: 1 });
    // use_in_shortcut = in != out; diffusers' shortcut is a 1x1 conv (a Linear over channels).
    this.convShortcut = o.inChannels !== o.outChannels
      ? new Linear(scope, "conv_shortcut", o.inChannels, o.outChannels, { conv1x1: true })
      : null;
  }

  /** x [B, H, W, Cin], temb [B, T] or null -> [B, H, W, Cout]. */
  forward(x: tf.Tensor4D, temb: tf.Tensor2D | null, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      let h = activate(this.norm1.forward(x), this.o.act) as tf.Tensor4D;
      h = this.conv1.forward(h, ctx);
      if (temb && this.timeEmbProj) {
        const t = this.o.skipTimeAct ? temb : activate(temb, this.o.act);
        const proj = this.timeEmbProj.forward(t, ctx);
        h = tf.add(h, tf.reshape(proj, [proj.shape[0], 1, 1, this.o.outChannels]));
      }
      h = activate(this.norm2.forward(h), this.o.act) as tf.Tensor4D;
      h = this.conv2.forward(h, ctx);
      const shortcut = this.convShortcut ? this.convShortcut.forward(x, ctx) : x;
      const out = tf.add(shortcut, h);
      return (this.o.outputScaleFactor === 1 ? out : tf.div(out, this.o.outputScaleFactor)) as tf.Tensor4D;
    });
  }
}

/**
 * Downsample2D(use_conv=True): a 3x3 stride-2 conv. With padding 0 (the VAE encoder) diffusers
 * first pads one zero column on the right and one row at the bottom.
 */
export class Downsample2D {
  readonly conv: Conv2d;

  constructor(scope: ParamScope, channels: number, readonly padding: number) {
    this.conv = new Conv2d(scope, "conv", channels, channels, 3, { stride: 2, padding });
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      const input = this.padding === 0 ? tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]) : x;
      return this.conv.forward(input, ctx);
    });
  }
}

/** Upsample2D(use_conv=True): nearest-neighbour resize (x2, or to `size`) then a 3x3 conv. */
export class Upsample2D {
  readonly conv: Conv2d;

  constructor(scope: ParamScope, channels: number) {
    this.conv = new Conv2d(scope, "conv", channels, channels, 3, { padding: 1 });
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext, size?: [number, number]): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      // torch nearest: src = floor(dst * in / out); tfjs without align_corners/half_pixel does the same.
      const up = tf.image.resizeNearestNeighbor(x, size ?? [2 * h, 2 * w], false, false);
      return this.conv.forward(up, ctx);
    });
  }
}

/**
 * diffusers `Attention` (to_q/to_k/to_v without bias unless `bias`, to_out.0 with bias), default
 * processor: softmax(q k^T / sqrt(d)) v per head. The LoRA targets of RDPO live here.
 */
export class Attention {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;

  constructor(
    scope: ParamScope,
    readonly queryDim: number,
    contextDim: number,
    readonly heads: number,
    dimHead: number,
    qkvBias: boolean,
  ) {
    const inner = heads * dimHead;
    this.toQ = new Linear(scope, "to_q", queryDim, inner, { bias: qkvBias });
    this.toK = new Linear(scope, "to_k", contextDim, inner, { bias: qkvBias });
    this.toV = new Linear(scope, "to_v", contextDim, inner, { bias: qkvBias });
    this.toOut = new Linear(scope, "to_out.0", inner, queryDim);
  }

  /** x [B, L, queryDim], context [B, S, contextDim] (null: self-attention) -> [B, L, queryDim]. */
  forward(x: tf.Tensor3D, context: tf.Tensor3D | null, ctx: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const c = context ?? x;
      const q = this.toQ.forward(x, ctx) as tf.Tensor3D;
      const k = this.toK.forward(c, ctx) as tf.Tensor3D;
      const v = this.toV.forward(c, ctx) as tf.Tensor3D;
      const o = multiHeadAttention(q, k, v, this.heads, ctx);
      return this.toOut.forward(o, ctx) as tf.Tensor3D;
    });
  }

  linears(): Linear[] {
    return [this.toQ, this.toK, this.toV, this.toOut];
  }
}

/**
 * The VAE mid-block attention (diffusers `Attention` with group_norm, one head of all channels,
 * biases on q/k/v, residual_connection=True, rescale_output_factor 1).
 */
export class SpatialSelfAttention {
  readonly groupNorm: GroupNorm;
  readonly attn: Attention;

  constructor(scope: ParamScope, channels: number, groups: number, eps: number, dimHead: number) {
    this.groupNorm = new GroupNorm(scope, "group_norm", groups, channels, eps);
    this.attn = new Attention(scope, channels, channels, channels / dimHead, dimHead, true);
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const seq = tf.reshape(this.groupNorm.forward(x), [b, h * w, c]) as tf.Tensor3D;
      const out = this.attn.forward(seq, null, ctx);
      return tf.add(tf.reshape(out, [b, h, w, c]), x) as tf.Tensor4D;
    });
  }
}
