/**
 * diffusers v0.24 Transformer2DModel (continuous input) and BasicTransformerBlock (norm_type
 * "layer_norm", GEGLU feed-forward), on NHWC maps: the map is a token sequence [B, H*W, C] without
 * any transpose.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ParamScope } from "./params.ts";
import { activate, type ForwardContext, GroupNorm, LayerNorm, Linear } from "./nn.ts";
import { Attention } from "./blocks.ts";
import { tensorByteLimit } from "../../../lib/tensor/limits.ts";

export interface Transformer2DOptions {
  heads: number;
  dimHead: number;
  inChannels: number;
  layers: number;
  crossAttentionDim: number;
  groups: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

/** FeedForward(activation "geglu", mult 4): net.0 = GEGLU(dim, 4 dim), net.2 = Linear(4 dim, dim). */
class GegluFeedForward {
  readonly proj: Linear;
  readonly out: Linear;

  constructor(scope: ParamScope, readonly dim: number) {
    const inner = dim * 4;
    this.proj = new Linear(scope, "net.0.proj", dim, inner * 2);
    this.out = new Linear(scope, "net.2", inner, dim);
  }

  forward(x: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, l] = x.shape;
      // The projection is [B, L, 8 dim]: chunk the tokens when it would exceed the tensor limit
      // (diffusers' feed-forward chunking; tokens are independent, so the result is the same).
      const chunk = Math.max(1, Math.floor(tensorByteLimit() / (b * this.proj.outFeatures * 4)));
      if (chunk >= l) return this.#forward(x, ctx);
      const parts: tf.Tensor3D[] = [];
      for (let i = 0; i < l; i += chunk) {
        const n = Math.min(chunk, l - i);
        parts.push(tf.tidy(() => this.#forward(tf.slice(x, [0, i, 0], [b, n, x.shape[2]]), ctx)));
      }
      return tf.concat(parts, 1);
    });
  }

  #forward(x: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    const [hidden, gate] = tf.split(this.proj.forward(x, ctx), 2, -1);
    return this.out.forward(tf.mul(hidden, activate(gate, "gelu")), ctx) as tf.Tensor3D;
  }
}

/** BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, each pre-LN + residual. */
export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff: GegluFeedForward;

  constructor(scope: ParamScope, dim: number, readonly o: Transformer2DOptions) {
    const eps = 1e-5; // BasicTransformerBlock norm_eps default
    this.norm1 = new LayerNorm(scope, "norm1", dim, eps);
    // only_cross_attention: attn1 attends to the context too.
    this.attn1 = new Attention(
      scope.scope("attn1"),
      dim,
      o.onlyCrossAttention ? o.crossAttentionDim : dim,
      o.heads,
      o.dimHead,
      false,
    );
    this.norm2 = new LayerNorm(scope, "norm2", dim, eps);
    this.attn2 = new Attention(scope.scope("attn2"), dim, o.crossAttentionDim, o.heads, o.dimHead, false);
    this.norm3 = new LayerNorm(scope, "norm3", dim, eps);
    this.ff = new GegluFeedForward(scope.scope("ff"), dim);
  }

  forward(x: tf.Tensor3D, context: tf.Tensor3D, ctx: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      let h = tf.add(
        this.attn1.forward(this.norm1.forward(x), this.o.onlyCrossAttention ? context : null, ctx),
        x,
      );
      h = tf.add(this.attn2.forward(this.norm2.forward(h) as tf.Tensor3D, context, ctx), h);
      h = tf.add(this.ff.forward(this.norm3.forward(h) as tf.Tensor3D, ctx), h);
      return h as tf.Tensor3D;
    });
  }
}

/** Transformer2DModel: GroupNorm(eps 1e-6), proj_in, transformer blocks, proj_out, residual. */
export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly projIn: Linear;
  readonly blocks: BasicTransformerBlock[] = [];
  readonly projOut: Linear;

  constructor(scope: ParamScope, readonly o: Transformer2DOptions) {
    const inner = o.heads * o.dimHead;
    this.norm = new GroupNorm(scope, "norm", o.groups, o.inChannels, 1e-6);
    // use_linear_projection=False means 1x1 convs: the same matmul over channels on NHWC.
    const conv1x1 = !o.useLinearProjection;
    this.projIn = new Linear(scope, "proj_in", o.inChannels, inner, { conv1x1 });
    for (let i = 0; i < o.layers; i++) {
      this.blocks.push(new BasicTransformerBlock(scope.scope(`transformer_blocks.${i}`), inner, o));
    }
    this.projOut = new Linear(scope, "proj_out", inner, o.inChannels, { conv1x1 });
  }

  /** x [B, H, W, C], context [B, S, D] -> [B, H, W, C]. */
  forward(x: tf.Tensor4D, context: tf.Tensor3D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const seq = tf.reshape(this.norm.forward(x), [b, h * w, c]) as tf.Tensor3D;
      let hs = this.projIn.forward(seq, ctx) as tf.Tensor3D;
      for (const block of this.blocks) hs = block.forward(hs, context, ctx);
      const out = tf.reshape(this.projOut.forward(hs, ctx), [b, h, w, c]);
      return tf.add(out, x) as tf.Tensor4D;
    });
  }

  attentions(): Attention[] {
    return this.blocks.flatMap((b) => [b.attn1, b.attn2]);
  }
}
