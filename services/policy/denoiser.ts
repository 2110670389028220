/**
 * Prompt conditioning and the guided noise prediction eps = eps_u + w (eps_c - eps_u)
 * (RDPO_SPEC.md section 1: the guided eps is used for sampling and for the log-probabilities).
 * The conditional and unconditional passes run as one UNet batch.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { guidedNoise, needsUnconditional } from "../../lib/rdpo/guidance.ts";
import type { PolicyPipeline } from "./pipeline.ts";

/** A float32 tensor as plain data (what the gRPC adapter decodes a proto Tensor into). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Prompts as text, or precomputed embeddings (proto Conditioning). */
export interface ConditioningInput {
  prompts: string[];
  promptEmbeds?: HostTensor;
  negativeEmbeds?: HostTensor;
}

/** Resolved conditioning for a batch: cond [B, L, D] and, when guidance needs it, uncond [B, L, D]. */
export interface Conditioning {
  cond: tf.Tensor3D;
  uncond: tf.Tensor3D | null;
  dispose(): void;
}

/** Bounded cache of prompt embeddings: encoding is deterministic, so caching changes nothing but speed. */
const EMBED_CACHE_LIMIT = 512;

export class Denoiser {
  readonly #cache = new Map<string, tf.Tensor2D>();

  constructor(readonly pipeline: PolicyPipeline) {}

  get contextShape(): [number, number] | null {
    const te = this.pipeline.textEncoder;
    return te ? [te.config.maxPositionEmbeddings, te.config.hiddenSize] : null;
  }

  /** Token ids [B, L] and hidden states [B, L, D] of the text encoder. */
  encodePrompts(
    prompts: string[],
    field = "prompts",
  ): { embeds: tf.Tensor3D; ids: Int32Array; length: number } {
    const { textEncoder, tokenizer } = this.pipeline;
    if (!textEncoder || !tokenizer) {
      throw new InvalidArgumentError(field, "this model has no text encoder; send prompt_embeds instead");
    }
    if (prompts.length === 0) throw new InvalidArgumentError(field, "must not be empty");
    const length = tokenizer.maxLength;
    const ids = new Int32Array(prompts.length * length);
    prompts.forEach((p, i) => {
      if (typeof p !== "string") throw new InvalidArgumentError(`${field}[${i}]`, "must be a string");
      ids.set(tokenizer.encode(p), i * length);
    });
    const rows = prompts.map((p, i) => {
      const hit = this.#cache.get(p);
      if (hit) return hit;
      const row = tf.tidy(() => {
        const out = textEncoder.forward(
          tf.tensor2d(ids.subarray(i * length, (i + 1) * length), [1, length], "int32"),
        );
        out.pooled.dispose();
        out.textEmbeds?.dispose();
        return tf.squeeze(out.lastHiddenState, [0]) as tf.Tensor2D;
      });
      if (this.#cache.size >= EMBED_CACHE_LIMIT) {
        const [oldest, t] = this.#cache.entries().next().value as [string, tf.Tensor2D];
        this.#cache.delete(oldest);
        t.dispose();
      }
      this.#cache.set(p, tf.keep(row));
      return row;
    });
    return { embeds: tf.stack(rows) as tf.Tensor3D, ids, length };
  }

  #embedsFrom(t: HostTensor, batch: number, field: string): tf.Tensor3D {
    const cross = this.pipeline.unet.config.crossAttentionDim[0];
    if (t.shape.length !== 3 || t.shape[2] !== cross || (t.shape[0] !== batch && t.shape[0] !== 1)) {
      throw new InvalidArgumentError(
        `${field}.shape`,
        `expected [${batch} or 1, L, ${cross}], got ${JSON.stringify(t.shape)}`,
      );
    }
    return tf.tidy(() => {
      const e = tf.tensor3d(t.data, t.shape as [number, number, number]);
      return (t.shape[0] === batch ? e : tf.tile(e, [batch, 1, 1])) as tf.Tensor3D;
    });
  }

  /** Resolves a batch's conditioning; prompts may be one per item or one shared by all. */
  conditioning(
    input: ConditioningInput,
    batch: number,
    guidanceScale: number,
    field = "conditioning",
  ): Conditioning {
    const needUncond = needsUnconditional(guidanceScale);
    const owned: tf.Tensor[] = [];
    try {
      let cond: tf.Tensor3D;
      if (input.promptEmbeds) {
        cond = this.#embedsFrom(input.promptEmbeds, batch, `${field}.prompt_embeds`);
      } else {
        const prompts = input.prompts;
        if (prompts.length !== batch && prompts.length !== 1) {
          throw new InvalidArgumentError(
            `${field}.prompts`,
            `expected ${batch} prompts (one per item) or 1 (shared), got ${prompts.length}`,
          );
        }
        const enc = this.encodePrompts(prompts, `${field}.prompts`);
        cond = prompts.length === batch
          ? enc.embeds
          : tf.tidy(() => tf.tile(enc.embeds, [batch, 1, 1]) as tf.Tensor3D);
        if (cond !== enc.embeds) enc.embeds.dispose();
      }
      owned.push(cond);
      let uncond: tf.Tensor3D | null = null;
      if (needUncond) {
        if (input.negativeEmbeds) {
          uncond = this.#embedsFrom(input.negativeEmbeds, batch, `${field}.negative_embeds`);
        } else if (this.pipeline.textEncoder) {
          const enc = this.encodePrompts([""], `${field}.prompts`);
          uncond = tf.tidy(() => tf.tile(enc.embeds, [batch, 1, 1]) as tf.Tensor3D);
          enc.embeds.dispose();
        } else {
          throw new InvalidArgumentError(
            "guidance_scale",
            `guidance ${guidanceScale} needs an unconditional embedding, but this model has no text encoder and no negative_embeds were sent`,
          );
        }
        if (uncond.shape[1] !== cond.shape[1]) {
          throw new InvalidArgumentError(
            `${field}.negative_embeds.shape`,
            `sequence length ${uncond.shape[1]} differs from the prompt embeddings' ${cond.shape[1]}`,
          );
        }
        owned.push(uncond);
      }
      return { cond, uncond, dispose: () => owned.forEach((t) => t.dispose()) };
    } catch (e) {
      owned.forEach((t) => t.dispose());
      throw e;
    }
  }

  /**
   * Guided eps(x, t) [B, C, H, W] of the policy (`lora` true) or the reference. `timesteps` has one
   * value per item. Runs inside the caller's tidy/grad scope.
   */
  noise(
    latents: tf.Tensor4D,
    timesteps: number[],
    c: Conditioning,
    guidanceScale: number,
    lora: boolean,
  ): tf.Tensor4D {
    const unet = this.pipeline.unet;
    if (!c.uncond || !needsUnconditional(guidanceScale)) {
      return unet.forward(latents, timesteps, c.cond, { lora });
    }
    return tf.tidy(() => {
      const b = latents.shape[0];
      const both = unet.forward(
        tf.concat([latents, latents]) as tf.Tensor4D,
        [...timesteps, ...timesteps],
        tf.concat([c.uncond!, c.cond]) as tf.Tensor3D,
        { lora },
      );
      const [u, cnd] = tf.split(both, [b, b]);
      return guidedNoise(u, cnd, guidanceScale) as tf.Tensor4D;
    });
  }

  dispose(): void {
    for (const t of this.#cache.values()) t.dispose();
    this.#cache.clear();
  }
}
