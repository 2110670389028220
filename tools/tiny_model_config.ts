/**
 * Architecture of the project's embedded text-to-image model (issue 7): a pixel-space
 * UNet2DConditionModel on 32x32 RGB images conditioned by a small CLIPTextModel over the shapes
 * grammar's word tokenizer, with Stable Diffusion's DDIM schedule (RDPO_SPEC.md section 1). Same
 * model classes and config keys as SD1.5, only smaller.
 */
import { makeWordTokenizerConfig, type WordTokenizerConfig } from "../lib/text/word_tokenizer.ts";
import { STABLE_DIFFUSION_SCHEDULE } from "../lib/rdpo/schedule.ts";
import { grammarWords } from "./shapes/dataset.ts";

export const TINY_IMAGE_SIZE = 32;
export const TINY_MAX_TOKENS = 16;

export function tinyTokenizerConfig(): WordTokenizerConfig {
  return makeWordTokenizerConfig(grammarWords(), TINY_MAX_TOKENS);
}

export function tinyUNetConfig(): Record<string, unknown> {
  return {
    _class_name: "UNet2DConditionModel",
    sample_size: TINY_IMAGE_SIZE,
    in_channels: 3,
    out_channels: 3,
    down_block_types: ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    mid_block_type: "UNetMidBlock2DCrossAttn",
    block_out_channels: [32, 64, 64],
    layers_per_block: 1,
    norm_num_groups: 8,
    cross_attention_dim: 64,
    attention_head_dim: 4,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: "silu",
  };
}

export function tinyTextEncoderConfig(vocabSize: number): Record<string, unknown> {
  return {
    architectures: ["CLIPTextModel"],
    vocab_size: vocabSize,
    hidden_size: 64,
    intermediate_size: 128,
    projection_dim: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: TINY_MAX_TOKENS,
    hidden_act: "quick_gelu",
    layer_norm_eps: 1e-5,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 2,
  };
}

/** diffusers DDIMScheduler config with SD1.5's values. */
export function tinySchedulerConfig(): Record<string, unknown> {
  const s = STABLE_DIFFUSION_SCHEDULE;
  return {
    _class_name: "DDIMScheduler",
    num_train_timesteps: s.numTrainTimesteps,
    beta_start: s.betaStart,
    beta_end: s.betaEnd,
    beta_schedule: s.betaSchedule,
    clip_sample: false,
    set_alpha_to_one: false,
    steps_offset: s.stepsOffset,
    timestep_spacing: s.timestepSpacing,
    prediction_type: "epsilon",
  };
}
