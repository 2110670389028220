/**
 * CLIPTextModel with transformers semantics (modeling_clip.py): token + position embeddings, a
 * causal mask, pre-LN encoder layers (layer_norm1 -> self-attention -> residual, layer_norm2 ->
 * MLP fc1/act/fc2 -> residual), final_layer_norm, and the pooled output taken at the EOS token.
 * Optional `text_projection` (CLIPTextModelWithProjection) gives `textEmbeds`.
 */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { ClipTextConfig } from "./config.ts";
import { type Param, type ParamScope, ParamStore } from "./params.ts";
import {
  activate,
  type FlopCounter,
  type ForwardContext,
  LayerNorm,
  Linear,
  multiHeadAttention,
} from "./nn.ts";

/** A large negative added to masked scores (exp underflows to exactly 0 in float32). */
const MASKED = -1e30;

class ClipEncoderLayer {
  readonly layerNorm1: LayerNorm;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  readonly layerNorm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(scope: ParamScope, readonly c: ClipTextConfig) {
    const d = c.hiddenSize;
    const attn = scope.scope("self_attn");
    this.q = new Linear(attn, "q_proj", d, d);
    this.k = new Linear(attn, "k_proj", d, d);
    this.v = new Linear(attn, "v_proj", d, d);
    this.out = new Linear(attn, "out_proj", d, d);
    this.layerNorm1 = new LayerNorm(scope, "layer_norm1", d, c.layerNormEps);
    this.fc1 = new Linear(scope, "mlp.fc1", d, c.intermediateSize);
    this.fc2 = new Linear(scope, "mlp.fc2", c.intermediateSize, d);
    this.layerNorm2 = new LayerNorm(scope, "layer_norm2", d, c.layerNormEps);
  }

  forward(x: tf.Tensor3D, mask: tf.Tensor, ctx: ForwardContext): tf.Tensor3D {
    return tf.tidy(() => {
      const h = this.layerNorm1.forward(x);
      const a = multiHeadAttention(
        this.q.forward(h, ctx) as tf.Tensor3D,
        this.k.forward(h, ctx) as tf.Tensor3D,
        this.v.forward(h, ctx) as tf.Tensor3D,
        this.c.numAttentionHeads,
        ctx,
        mask,
      );
      const x1 = tf.add(x, this.out.forward(a, ctx));
      const m = this.fc2.forward(
        activate(this.fc1.forward(this.layerNorm2.forward(x1), ctx), this.c.hiddenAct),
        ctx,
      );
      return tf.add(x1, m) as tf.Tensor3D;
    });
  }
}

export interface ClipTextOutput {
  /** [B, L, hidden] after final_layer_norm */
  lastHiddenState: tf.Tensor3D;
  /** [B, hidden]: lastHiddenState at each row's EOS position */
  pooled: tf.Tensor2D;
  /** [B, projection_dim] = pooled @ text_projection^T, when the model has a projection */
  textEmbeds: tf.Tensor2D | null;
}

export class CLIPTextModel {
  readonly params = new ParamStore();
  readonly tokenEmbedding: Param;
  readonly positionEmbedding: Param;
  readonly layers: ClipEncoderLayer[] = [];
  readonly finalLayerNorm: LayerNorm;
  readonly textProjection: Linear | null;

  /** `withProjection`: also declare `text_projection.weight` (CLIPTextModelWithProjection). */
  constructor(readonly config: ClipTextConfig, readonly withProjection = false) {
    const c = config;
    const root = this.params.scope("text_model");
    const emb = root.scope("embeddings");
    this.tokenEmbedding = emb.declare("token_embedding.weight", [c.vocabSize, c.hiddenSize], "plain");
    this.positionEmbedding = emb.declare(
      "position_embedding.weight",
      [c.maxPositionEmbeddings, c.hiddenSize],
      "plain",
    );
    for (let i = 0; i < c.numHiddenLayers; i++) {
      this.layers.push(new ClipEncoderLayer(root.scope(`encoder.layers.${i}`), c));
    }
    this.finalLayerNorm = new LayerNorm(root, "final_layer_norm", c.hiddenSize, c.layerNormEps);
    if (withProjection) {
      if (c.projectionDim === null) {
        throw new InvalidArgumentError(
          "text_encoder/config.json.projection_dim",
          "required for a model with text_projection",
        );
      }
      this.textProjection = new Linear(
        this.params.scope(""),
        "text_projection",
        c.hiddenSize,
        c.projectionDim,
        {
          bias: false,
        },
      );
    } else this.textProjection = null;
  }

  parameterCount(): number {
    return this.params.count();
  }

  /**
   * Pooling positions. transformers: with the legacy `eos_token_id == 2` the EOS is taken to be the
   * highest id (argmax over input_ids); otherwise the first position equal to eos_token_id (argmax
   * of the equality mask, so 0 when a row has none).
   */
  eosPositions(ids: Int32Array, batch: number, length: number): number[] {
    const out: number[] = [];
    const eos = this.config.eosTokenId;
    for (let b = 0; b < batch; b++) {
      const row = ids.subarray(b * length, (b + 1) * length);
      let pos = 0;
      if (eos === 2) {
        for (let i = 1; i < length; i++) if (row[i] > row[pos]) pos = i;
      } else {
        const first = row.indexOf(eos);
        pos = first < 0 ? 0 : first;
      }
      out.push(pos);
    }
    return out;
  }

  /** ids: [B, L] token ids (int32 tensor, or rows of numbers) with L <= max_position_embeddings. */
  forward(ids: tf.Tensor2D | number[][], options: { flops?: FlopCounter } = {}): ClipTextOutput {
    const c = this.config;
    const idTensor = Array.isArray(ids) ? tf.tensor2d(ids, undefined, "int32") : ids;
    try {
      if (idTensor.rank !== 2) {
        throw new InvalidArgumentError(
          "input_ids.shape",
          `expected [B, L], got ${JSON.stringify(idTensor.shape)}`,
        );
      }
      const [b, l] = idTensor.shape;
      if (l < 1 || l > c.maxPositionEmbeddings) {
        throw new InvalidArgumentError(
          "input_ids.shape",
          `length ${l} must be in 1..${c.maxPositionEmbeddings}`,
        );
      }
      const idData = Int32Array.from(idTensor.dataSync());
      for (let i = 0; i < idData.length; i++) {
        if (idData[i] < 0 || idData[i] >= c.vocabSize) {
          throw new InvalidArgumentError(
            `input_ids[${Math.floor(i / l)}][${i % l}]`,
            `id ${idData[i]} is outside 0..${c.vocabSize - 1}`,
          );
        }
      }
      const positions = this.eosPositions(idData, b, l);
      const ctx: ForwardContext = { lora: false, flops: options.flops ?? null };
      const [lastHiddenState, pooled, textEmbeds] = tf.tidy(() => {
        const tok = tf.gather(this.tokenEmbedding.value, tf.tensor1d(idData, "int32"));
        const pos = tf.slice(this.positionEmbedding.value, [0, 0], [l, c.hiddenSize]);
        let h = tf.add(tf.reshape(tok, [b, l, c.hiddenSize]), pos) as tf.Tensor3D;
        const mask = causalMask(l);
        for (const layer of this.layers) h = layer.forward(h, mask, ctx);
        const last = this.finalLayerNorm.forward(h);
        const flatIndex = tf.tensor1d(positions.map((p, i) => i * l + p), "int32");
        const pooled = tf.gather(tf.reshape(last, [b * l, c.hiddenSize]), flatIndex) as tf.Tensor2D;
        const textEmbeds = this.textProjection
          ? this.textProjection.forward(pooled, ctx) as tf.Tensor2D
          : null;
        return textEmbeds ? [last, pooled, textEmbeds] : [last, pooled];
      });
      return {
        lastHiddenState: lastHiddenState as tf.Tensor3D,
        pooled: pooled as tf.Tensor2D,
        textEmbeds: (textEmbeds ?? null) as tf.Tensor2D | null,
      };
    } finally {
      if (Array.isArray(ids)) idTensor.dispose();
    }
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** [L, L] additive mask: 0 on and below the diagonal, a large negative above (future tokens). */
export function causalMask(l: number): tf.Tensor2D {
  const data = new Float32Array(l * l);
  for (let i = 0; i < l; i++) for (let j = i + 1; j < l; j++) data[i * l + j] = MASKED;
  return tf.tensor2d(data, [l, l]);
}

/** Keys a CLIPTextModel checkpoint may hold that the model does not use. */
export function clipIgnoredKey(key: string): boolean {
  return key === "text_model.embeddings.position_ids" || key === "text_projection.weight" ||
    key.startsWith("vision_model.") || key === "visual_projection.weight" || key === "logit_scale";
}
