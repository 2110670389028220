/**
 * A tiny pixel-space text-to-image model with random weights, written as a real model folder, for
 * tests of the policy core, service and trainer (milliseconds per UNet pass on the wasm backend).
 */
import { makeWordTokenizerConfig } from "../../../lib/text/word_tokenizer.ts";
import { parseClipTextConfig, parseUNetConfig } from "../model/config.ts";
import { CLIPTextModel } from "../model/clip_text.ts";
import { UNet2DConditionModel } from "../model/unet.ts";
import { initRandomParams } from "../model/weights.ts";
import { saveModelFolder } from "../model_folder.ts";

export const TINY_WORDS = "a red green blue circle square on background small large".split(" ");

export function tinyUNetConfig(sampleSize = 8): Record<string, unknown> {
  return {
    sample_size: sampleSize,
    in_channels: 3,
    out_channels: 3,
    down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels: [16, 32],
    layers_per_block: 1,
    norm_num_groups: 8,
    cross_attention_dim: 16,
    attention_head_dim: 2,
  };
}

export function tinyTextConfig(vocabSize: number, maxLength: number): Record<string, unknown> {
  return {
    vocab_size: vocabSize,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    max_position_embeddings: maxLength,
    hidden_act: "quick_gelu",
    layer_norm_eps: 1e-5,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
  };
}

/** Writes a random tiny model to `dir`; weights are N(0, std) from `seed`. */
export async function writeTinyModel(
  dir: string,
  { seed = 1, std = 0.05, sampleSize = 8 } = {},
): Promise<void> {
  const tokenizer = makeWordTokenizerConfig(TINY_WORDS, 8);
  const unetConfig = tinyUNetConfig(sampleSize);
  const textConfig = tinyTextConfig(tokenizer.vocab.length, tokenizer.max_length);
  const unet = new UNet2DConditionModel(parseUNetConfig(unetConfig));
  const text = new CLIPTextModel(parseClipTextConfig(textConfig));
  try {
    initRandomParams(unet.params, seed, std);
    initRandomParams(text.params, seed + 1, std);
    await saveModelFolder(dir, {
      unet: { config: unetConfig, params: unet.params },
      textEncoder: { config: textConfig, params: text.params },
      tokenizer,
    });
  } finally {
    unet.dispose();
    text.dispose();
  }
}
