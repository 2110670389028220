/**
 * UNet2DConditionModel with diffusers v0.24 semantics (unet_2d_condition.py, unet_2d_blocks.py),
 * built from config.json and loaded by exact state-dict key names. Inputs and outputs are NCHW like
 * PyTorch; activations are NHWC inside (tfjs' conv layout).
 */
import * as tf from "@tensorflow/tfjs-core";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";
import { type UNetConfig } from "./config.ts";
import { ParamStore } from "./params.ts";
import type { ParamScope } from "./params.ts";
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
import { Downsample2D, ResnetBlock2D, type ResnetOptions, Upsample2D } from "./blocks.ts";
import { Transformer2DModel } from "./transformer2d.ts";
import { checkpointed, loraVariablesOf } from "./checkpoint.ts";

/** Options of one forward pass. */
export interface UNetForwardOptions {
  /** Apply the attached LoRA adapter (the policy) or not (the reference model). Default: false. */
  lora?: boolean;
  /** Accumulates the analytic FLOPs of the pass. */
  flops?: FlopCounter;
  /**
   * Gradient checkpointing of every resnet and transformer block (checkpoint.ts): under a gradient
   * tape, block activations are recomputed in the backward instead of kept. Default: false.
   */
  checkpoint?: boolean;
}

/** Timesteps as a tensor or numbers: one per batch item, or one shared by the batch. */
export type Timesteps = tf.Tensor | number | ArrayLike<number>;

/**
 * Sinusoidal timestep embedding (diffusers `get_timestep_embedding`), computed in float32 steps as
 * PyTorch does: exponent = -ln(10000) * i / (half - shift), arg = t * exp(exponent),
 * [sin, cos] or, with flip_sin_to_cos, [cos, sin]; odd widths are zero-padded.
 */
export function timestepEmbedding(
  timesteps: readonly number[],
  dim: number,
  flipSinToCos: boolean,
  freqShift: number,
): tf.Tensor2D {
  const half = Math.floor(dim / 2);
  const f = Math.fround;
  const freqs = new Float32Array(half);
  const lnMax = f(-Math.log(10000));
  const denom = f(half - freqShift);
  for (let i = 0; i < half; i++) freqs[i] = f(Math.exp(f(f(lnMax * i) / denom)));
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = f(timesteps[b]);
    for (let i = 0; i < half; i++) {
      const arg = f(t * freqs[i]);
      const s = Math.sin(arg);
      const c = Math.cos(arg);
      out[b * dim + i] = flipSinToCos ? c : s;
      out[b * dim + half + i] = flipSinToCos ? s : c;
    }
  }
  return tf.tensor2d(out, [timesteps.length, dim]);
}

interface DownBlock {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[] | null;
  downsampler: Downsample2D | null;
}

interface UpBlock {
  resnets: ResnetBlock2D[];
  attentions: Transformer2DModel[] | null;
  upsampler: Upsample2D | null;
}

export class UNet2DConditionModel {
  readonly params = new ParamStore();
  readonly timeLinear1: Linear;
  readonly timeLinear2: Linear;
  readonly convIn: Conv2d;
  readonly downBlocks: DownBlock[] = [];
  readonly mid: { resnets: ResnetBlock2D[]; attentions: Transformer2DModel[] } | null;
  readonly upBlocks: UpBlock[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(readonly config: UNetConfig) {
    const c = config;
    const root = this.params.scope("");
    const ch0 = c.blockOutChannels[0];
    const tembDim = c.timeEmbeddingDim;
    this.timeLinear1 = new Linear(root, "time_embedding.linear_1", ch0, tembDim);
    this.timeLinear2 = new Linear(root, "time_embedding.linear_2", tembDim, tembDim);
    this.convIn = new Conv2d(root, "conv_in", c.inChannels, ch0, c.convInKernel, {
      padding: (c.convInKernel - 1) / 2,
    });
    const resnet = (inCh: number, outCh: number, scale = 1): ResnetOptions => ({
      inChannels: inCh,
      outChannels: outCh,
      tembChannels: tembDim,
      groups: c.normNumGroups,
      eps: c.normEps,
      act: c.actFn,
      outputScaleFactor: scale,
      skipTimeAct: false,
    });
    const transformer = (
      scope: ParamScope,
      channels: number,
      heads: number,
      layers: number,
      crossDim: number,
      onlyCross: boolean,
    ) =>
      new Transformer2DModel(scope, {
        heads,
        dimHead: channels / heads,
        inChannels: channels,
        layers,
        crossAttentionDim: crossDim,
        groups: c.normNumGroups,
        useLinearProjection: c.useLinearProjection,
        onlyCrossAttention: onlyCross,
      });

    const n = c.blockOutChannels.length;
    let outCh = ch0;
    for (let i = 0; i < n; i++) {
      const inCh = outCh;
      outCh = c.blockOutChannels[i];
      const s = root.scope(`down_blocks.${i}`);
      const cross = c.downBlockTypes[i] === "CrossAttnDownBlock2D";
      const block: DownBlock = { resnets: [], attentions: cross ? [] : null, downsampler: null };
      for (let j = 0; j < c.layersPerBlock[i]; j++) {
        block.resnets.push(new ResnetBlock2D(s.scope(`resnets.${j}`), resnet(j === 0 ? inCh : outCh, outCh)));
        if (cross) {
          block.attentions!.push(
            transformer(
              s.scope(`attentions.${j}`),
              outCh,
              c.numAttentionHeads[i],
              c.transformerLayersPerBlock[i],
              c.crossAttentionDim[i],
              c.onlyCrossAttention[i],
            ),
          );
        }
      }
      if (i < n - 1) {
        block.downsampler = new Downsample2D(s.scope("downsamplers.0"), outCh, c.downsamplePadding);
      }
      this.downBlocks.push(block);
    }

    const last = c.blockOutChannels[n - 1];
    if (c.midBlockType === "UNetMidBlock2DCrossAttn") {
      const s = root.scope("mid_block");
      this.mid = {
        resnets: [
          new ResnetBlock2D(s.scope("resnets.0"), resnet(last, last, c.midBlockScaleFactor)),
          new ResnetBlock2D(s.scope("resnets.1"), resnet(last, last, c.midBlockScaleFactor)),
        ],
        attentions: [
          transformer(
            s.scope("attentions.0"),
            last,
            c.numAttentionHeads[n - 1],
            c.transformerLayersPerBlock[n - 1],
            c.crossAttentionDim[n - 1],
            false,
          ),
        ],
      };
    } else {
      this.mid = null;
    }

    const rev = <T>(a: T[]) => [...a].reverse();
    const revOut = rev(c.blockOutChannels);
    const revHeads = rev(c.numAttentionHeads);
    const revLayers = rev(c.layersPerBlock);
    const revCross = rev(c.crossAttentionDim);
    const revTransformerLayers = c.reverseTransformerLayersPerBlock ?? rev(c.transformerLayersPerBlock);
    const revOnlyCross = rev(c.onlyCrossAttention);
    outCh = revOut[0];
    for (let i = 0; i < n; i++) {
      const prevOut = outCh;
      outCh = revOut[i];
      const inCh = revOut[Math.min(i + 1, n - 1)];
      const s = root.scope(`up_blocks.${i}`);
      const cross = c.upBlockTypes[i] === "CrossAttnUpBlock2D";
      const layers = revLayers[i] + 1;
      const block: UpBlock = { resnets: [], attentions: cross ? [] : null, upsampler: null };
      for (let j = 0; j < layers; j++) {
        const skipCh = j === layers - 1 ? inCh : outCh;
        const resIn = j === 0 ? prevOut : outCh;
        block.resnets.push(new ResnetBlock2D(s.scope(`resnets.${j}`), resnet(resIn + skipCh, outCh)));
        if (cross) {
          block.attentions!.push(
            transformer(
              s.scope(`attentions.${j}`),
              outCh,
              revHeads[i],
              revTransformerLayers[i],
              revCross[i],
              revOnlyCross[i],
            ),
          );
        }
      }
      if (i < n - 1) block.upsampler = new Upsample2D(s.scope("upsamplers.0"), outCh);
      this.upBlocks.push(block);
    }

    this.convNormOut = new GroupNorm(root, "conv_norm_out", c.normNumGroups, ch0, c.normEps);
    this.convOut = new Conv2d(root, "conv_out", ch0, c.outChannels, c.convOutKernel, {
      padding: (c.convOutKernel - 1) / 2,
    });
  }

  /**
   * Default of `UNetForwardOptions.checkpoint` (diffusers' `enable_gradient_checkpointing()`): an
   * RDPO step on SD1.5 at 64x64 latents, 2 pairs with guidance, holds about 197 GiB of activations
   * without it and 21 GiB with it (sd15/memory.ts).
   */
  gradientCheckpointing = false;

  /** Whether a LoRA adapter is attached to any layer. */
  hasLora(): boolean {
    for (const m of this.params.modules().values()) if (m instanceof Linear && m.lora) return true;
    return false;
  }

  /** Number of scalar parameters of the base model (LoRA not included). */
  parameterCount(): number {
    return this.params.count();
  }

  /**
   * Predicts the noise: sample [B, in_channels, H, W] (NCHW), timesteps (B values or one),
   * encoderHiddenStates [B, S, cross_attention_dim] -> [B, out_channels, H, W] (NCHW).
   */
  forward(
    sample: tf.Tensor4D,
    timesteps: Timesteps,
    encoderHiddenStates: tf.Tensor3D,
    options: UNetForwardOptions = {},
  ): tf.Tensor4D {
    const c = this.config;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new InvalidArgumentError(
        "sample.shape",
        `expected [B, ${c.inChannels}, H, W], got ${JSON.stringify(sample.shape)}`,
      );
    }
    const b = sample.shape[0];
    const crossDim = c.crossAttentionDim[0];
    if (
      encoderHiddenStates.rank !== 3 || encoderHiddenStates.shape[0] !== b ||
      encoderHiddenStates.shape[2] !== crossDim
    ) {
      throw new InvalidArgumentError(
        "encoder_hidden_states.shape",
        `expected [${b}, S, ${crossDim}], got ${JSON.stringify(encoderHiddenStates.shape)}`,
      );
    }
    const ts = timestepValues(timesteps, b);
    if (options.lora && !this.hasLora()) {
      throw new FailedPreconditionError("unet.forward: lora=true but no LoRA adapter is attached");
    }
    const ctx: ForwardContext = { lora: options.lora ?? false, flops: options.flops ?? null };
    const block = <T extends tf.Tensor>(
      module: object,
      f: (...xs: tf.Tensor[]) => T,
      ...xs: tf.Tensor[]
    ): T =>
      (options.checkpoint ?? this.gradientCheckpointing)
        ? checkpointed(f, xs, loraVariablesOf(module))
        : f(...xs);
    const resnet = (r: ResnetBlock2D, x: tf.Tensor4D, emb: tf.Tensor2D) =>
      block(r, (h, e) => r.forward(h as tf.Tensor4D, e as tf.Tensor2D, ctx), x, emb);
    const attention = (a: Transformer2DModel, x: tf.Tensor4D, context: tf.Tensor3D) =>
      block(a, (h, c) => a.forward(h as tf.Tensor4D, c as tf.Tensor3D, ctx), x, context);
    return tf.tidy(() => {
      const tEmb = timestepEmbedding(ts, c.blockOutChannels[0], c.flipSinToCos, c.freqShift);
      let emb = this.timeLinear2.forward(
        activate(this.timeLinear1.forward(tEmb, ctx), c.actFn),
        ctx,
      ) as tf.Tensor2D;
      if (c.timestepPostAct) emb = activate(emb, c.timestepPostAct) as tf.Tensor2D;
      if (c.timeEmbeddingActFn) emb = activate(emb, c.timeEmbeddingActFn) as tf.Tensor2D;
      const context = encoderHiddenStates;

      let x = toNHWC(sample);
      if (c.centerInputSample) x = tf.sub(tf.mul(x, 2), 1);
      x = this.convIn.forward(x, ctx);
      const skips: tf.Tensor4D[] = [x];
      for (const down of this.downBlocks) {
        down.resnets.forEach((r, j) => {
          x = resnet(r, x, emb);
          if (down.attentions) x = attention(down.attentions[j], x, context);
          skips.push(x);
        });
        if (down.downsampler) {
          x = down.downsampler.forward(x, ctx);
          skips.push(x);
        }
      }
      if (this.mid) {
        x = resnet(this.mid.resnets[0], x, emb);
        x = attention(this.mid.attentions[0], x, context);
        x = resnet(this.mid.resnets[1], x, emb);
      }
      for (const up of this.upBlocks) {
        up.resnets.forEach((r, j) => {
          const skip = skips.pop()!;
          x = resnet(r, tf.concat([x, skip], 3), emb);
          if (up.attentions) x = attention(up.attentions[j], x, context);
        });
        if (up.upsampler) {
          // Upsample to the next skip's size (diffusers' forward_upsample_size for odd sizes; x2 otherwise).
          const next = skips[skips.length - 1];
          x = up.upsampler.forward(x, ctx, [next.shape[1], next.shape[2]]);
        }
      }
      x = activate(this.convNormOut.forward(x), c.actFn) as tf.Tensor4D;
      x = this.convOut.forward(x, ctx);
      return toNCHW(x);
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** Reads timesteps into numbers, broadcasting a single value to the batch. */
export function timestepValues(timesteps: Timesteps, batch: number): number[] {
  let values: number[];
  if (typeof timesteps === "number") values = [timesteps];
  else if (timesteps instanceof tf.Tensor) {
    if (timesteps.rank > 1) {
      throw new InvalidArgumentError(
        "timesteps.shape",
        `expected a scalar or [B], got ${JSON.stringify(timesteps.shape)}`,
      );
    }
    values = Array.from(timesteps.dataSync());
  } else values = Array.from(timesteps, Number);
  if (values.length === 1 && batch !== 1) values = new Array(batch).fill(values[0]);
  if (values.length !== batch) {
    throw new InvalidArgumentError(
      "timesteps",
      `expected ${batch} values (one per batch item) or 1, got ${values.length}`,
    );
  }
  if (!values.every(Number.isFinite)) throw new InvalidArgumentError("timesteps", "values must be finite");
  return values;
}
