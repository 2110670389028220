/**
 * AutoencoderKL with diffusers v0.24 semantics (autoencoder_kl.py, vae.py Encoder/Decoder,
 * DownEncoderBlock2D / UpDecoderBlock2D / UNetMidBlock2D): encode -> the diagonal Gaussian's mean
 * and logvar (from quant_conv, logvar clamped to [-30, 20]); decode -> post_quant_conv -> decoder.
 * No scaling factor is applied here: the pipeline multiplies latents by `scalingFactor` after
 * encoding and divides before decoding. Inputs and outputs are NCHW.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { VaeConfig } from "./config.ts";
import { type ParamScope, ParamStore } from "./params.ts";
import {
  activate,
  Conv2d,
  type FlopCounter,
  type ForwardContext,
  GroupNorm,
  Linear,
  toNCHW,
  toNHWC,
} from "./nn.ts";
import {
  Downsample2D,
  ResnetBlock2D,
  type ResnetOptions,
  SpatialSelfAttention,
  Upsample2D,
} from "./blocks.ts";

const VAE_EPS = 1e-6; // Encoder/Decoder pass resnet_eps=1e-6 and GroupNorm eps=1e-6

/** UNetMidBlock2D as the VAE uses it: resnet, [attention], resnet (no time embedding). */
class VaeMidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attention: SpatialSelfAttention | null;

  constructor(
    scope: ParamScope,
    channels: number,
    groups: number,
    act: VaeConfig["actFn"],
    withAttention: boolean,
  ) {
    const o: ResnetOptions = {
      inChannels: channels,
      outChannels: channels,
      tembChannels: null,
      groups,
      eps: VAE_EPS,
      act,
      outputScaleFactor: 1,
      skipTimeAct: false,
    };
    this.resnets = [
      new ResnetBlock2D(scope.scope("resnets.0"), o),
      new ResnetBlock2D(scope.scope("resnets.1"), o),
    ];
    // attention_head_dim = channels: a single head over all channels.
    this.attention = withAttention
      ? new SpatialSelfAttention(scope.scope("attentions.0"), channels, groups, VAE_EPS, channels)
      : null;
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.resnets[0].forward(x, null, ctx);
      if (this.attention) h = this.attention.forward(h, ctx);
      return this.resnets[1].forward(h, null, ctx);
    });
  }
}

class Encoder {
  readonly convIn: Conv2d;
  readonly blocks: { resnets: ResnetBlock2D[]; down: Downsample2D | null }[] = [];
  readonly mid: VaeMidBlock;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(scope: ParamScope, readonly c: VaeConfig) {
    const ch = c.blockOutChannels;
    this.convIn = new Conv2d(scope, "conv_in", c.inChannels, ch[0], 3, { padding: 1 });
    let out = ch[0];
    for (let i = 0; i < ch.length; i++) {
      const inCh = out;
      out = ch[i];
      const s = scope.scope(`down_blocks.${i}`);
      const resnets: ResnetBlock2D[] = [];
      for (let j = 0; j < c.layersPerBlock; j++) {
        resnets.push(new ResnetBlock2D(s.scope(`resnets.${j}`), resnetOptions(c, j === 0 ? inCh : out, out)));
      }
      // DownEncoderBlock2D uses downsample_padding=0: pad right/bottom by one, then conv.
      const down = i < ch.length - 1 ? new Downsample2D(s.scope("downsamplers.0"), out, 0) : null;
      this.blocks.push({ resnets, down });
    }
    const last = ch[ch.length - 1];
    this.mid = new VaeMidBlock(
      scope.scope("mid_block"),
      last,
      c.normNumGroups,
      c.actFn,
      c.midBlockAddAttention,
    );
    this.normOut = new GroupNorm(scope, "conv_norm_out", c.normNumGroups, last, VAE_EPS);
    this.convOut = new Conv2d(scope, "conv_out", last, 2 * c.latentChannels, 3, { padding: 1 });
  }

  forward(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.convIn.forward(x, ctx);
      for (const b of this.blocks) {
        for (const r of b.resnets) h = r.forward(h, null, ctx);
        if (b.down) h = b.down.forward(h, ctx);
      }
      h = this.mid.forward(h, ctx);
      h = activate(this.normOut.forward(h), this.c.actFn) as tf.Tensor4D;
      return this.convOut.forward(h, ctx);
    });
  }
}

class Decoder {
  readonly convIn: Conv2d;
  readonly mid: VaeMidBlock;
  readonly blocks: { resnets: ResnetBlock2D[]; up: Upsample2D | null }[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(scope: ParamScope, readonly c: VaeConfig) {
    const ch = c.blockOutChannels;
    const last = ch[ch.length - 1];
    this.convIn = new Conv2d(scope, "conv_in", c.latentChannels, last, 3, { padding: 1 });
    this.mid = new VaeMidBlock(
      scope.scope("mid_block"),
      last,
      c.normNumGroups,
      c.actFn,
      c.midBlockAddAttention,
    );
    const rev = [...ch].reverse();
    let out = rev[0];
    for (let i = 0; i < rev.length; i++) {
      const prev = out;
      out = rev[i];
      const s = scope.scope(`up_blocks.${i}`);
      const resnets: ResnetBlock2D[] = [];
      for (let j = 0; j < c.layersPerBlock + 1; j++) {
        resnets.push(new ResnetBlock2D(s.scope(`resnets.${j}`), resnetOptions(c, j === 0 ? prev : out, out)));
      }
      const up = i < rev.length - 1 ? new Upsample2D(s.scope("upsamplers.0"), out) : null;
      this.blocks.push({ resnets, up });
    }
    this.normOut = new GroupNorm(scope, "conv_norm_out", c.normNumGroups, ch[0], VAE_EPS);
    this.convOut = new Conv2d(scope, "conv_out", ch[0], c.outChannels, 3, { padding: 1 });
  }

  forward(z: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.convIn.forward(z, ctx);
      h = this.mid.forward(h, ctx);
      for (const b of this.blocks) {
        for (const r of b.resnets) h = r.forward(h, null, ctx);
        if (b.up) h = b.up.forward(h, ctx);
      }
      h = activate(this.normOut.forward(h), this.c.actFn) as tf.Tensor4D;
      return this.convOut.forward(h, ctx);
    });
  }
}

function resnetOptions(c: VaeConfig, inCh: number, outCh: number): ResnetOptions {
  return {
    inChannels: inCh,
    outChannels: outCh,
    tembChannels: null,
    groups: c.normNumGroups,
    eps: VAE_EPS,
    act: c.actFn,
    outputScaleFactor: 1,
    skipTimeAct: false,
  };
}

export interface LatentDistribution {
  /** [B, latent_channels, h, w] */
  mean: tf.Tensor4D;
  /** [B, latent_channels, h, w], clamped to [-30, 20] as diffusers' DiagonalGaussianDistribution */
  logvar: tf.Tensor4D;
}

/**
 * A sample of the latent distribution: mean + exp(logvar / 2) * noise (diffusers'
 * `latent_dist.sample()` with the caller's N(0, 1) noise; `mode()` is the mean).
 */
export function sampleLatents(dist: LatentDistribution, noise: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(dist.mean, tf.mul(tf.exp(tf.mul(dist.logvar, 0.5)), noise)) as tf.Tensor4D);
}

export class AutoencoderKL {
  readonly params = new ParamStore();
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Linear | null;
  readonly postQuantConv: Linear | null;

  constructor(readonly config: VaeConfig) {
    const root = this.params.scope("");
    this.encoder = new Encoder(root.scope("encoder"), config);
    this.decoder = new Decoder(root.scope("decoder"), config);
    const z = config.latentChannels;
    this.quantConv = config.useQuantConv
      ? new Linear(root, "quant_conv", 2 * z, 2 * z, { conv1x1: true })
      : null;
    this.postQuantConv = config.usePostQuantConv
      ? new Linear(root, "post_quant_conv", z, z, { conv1x1: true })
      : null;
  }

  /** Latent scale for the pipeline: latents = scalingFactor * (sample - shiftFactor). */
  get scalingFactor(): number {
    return this.config.scalingFactor;
  }

  parameterCount(): number {
    return this.params.count();
  }

  /** images [B, in_channels, H, W] in [-1, 1] (NCHW) -> the latent distribution (unscaled). */
  encode(images: tf.Tensor4D, options: { flops?: FlopCounter } = {}): LatentDistribution {
    const c = this.config;
    if (images.rank !== 4 || images.shape[1] !== c.inChannels) {
      throw new InvalidArgumentError(
        "images.shape",
        `expected [B, ${c.inChannels}, H, W], got ${JSON.stringify(images.shape)}`,
      );
    }
    const ctx: ForwardContext = { lora: false, flops: options.flops ?? null };
    const [mean, logvar] = tf.tidy(() => {
      let moments = this.encoder.forward(toNHWC(images), ctx);
      if (this.quantConv) moments = this.quantConv.forward(moments, ctx) as tf.Tensor4D;
      const [m, lv] = tf.split(moments, 2, 3);
      return [toNCHW(m as tf.Tensor4D), toNCHW(tf.clipByValue(lv, -30, 20) as tf.Tensor4D)];
    });
    return { mean, logvar };
  }

  /** latents [B, latent_channels, h, w] (already divided by the scaling factor) -> images NCHW. */
  decode(latents: tf.Tensor4D, options: { flops?: FlopCounter } = {}): tf.Tensor4D {
    const c = this.config;
    if (latents.rank !== 4 || latents.shape[1] !== c.latentChannels) {
      throw new InvalidArgumentError(
        "latents.shape",
        `expected [B, ${c.latentChannels}, h, w], got ${JSON.stringify(latents.shape)}`,
      );
    }
    const ctx: ForwardContext = { lora: false, flops: options.flops ?? null };
    return tf.tidy(() => {
      let z = toNHWC(latents);
      if (this.postQuantConv) z = this.postQuantConv.forward(z, ctx) as tf.Tensor4D;
      return toNCHW(this.decoder.forward(z, ctx));
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** The VAE's deprecated attention key names (SD1.5's original vae checkpoint) for each new name. */
export function vaeKeyAliases(key: string): string[] {
  const m = key.match(
    /^(.*\.mid_block\.attentions\.0)\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/,
  );
  if (!m) return [];
  const old =
    { group_norm: "group_norm", to_q: "query", to_k: "key", to_v: "value", "to_out.0": "proj_attn" }[m[2]];
  return old && old !== m[2] ? [`${m[1]}.${old}.${m[3]}`] : [];
}
