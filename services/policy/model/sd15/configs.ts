/**
 * Stable Diffusion 1.5's component configs as its published model folder holds them
 * (`unet/config.json`, `vae/config.json`, `text_encoder/config.json`, `scheduler/scheduler_config.json`,
 * `model_index.json`). `make-model --config sd15` writes these; the key-manifest test checks that the
 * models built from them have exactly the names and shapes diffusers produces
 * (../shared/fixtures/sd15_keys), so a value here that drifted from SD1.5 fails that test.
 */

/** diffusers version whose semantics the models follow (services/policy/model/README.md). */
export const DIFFUSERS_VERSION = "0.24.0";

export const SD15_UNET_CONFIG = {
  _class_name: "UNet2DConditionModel",
  _diffusers_version: DIFFUSERS_VERSION,
  act_fn: "silu",
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
} as const;

export const SD15_VAE_CONFIG = {
  _class_name: "AutoencoderKL",
  _diffusers_version: DIFFUSERS_VERSION,
  act_fn: "silu",
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  scaling_factor: 0.18215,
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
} as const;

/** transformers' CLIPTextConfig of openai/clip-vit-large-patch14 (SD1.5's text encoder). */
export const SD15_TEXT_ENCODER_CONFIG = {
  architectures: ["CLIPTextModel"],
  model_type: "clip_text_model",
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 2,
  hidden_act: "quick_gelu",
  hidden_size: 768,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  projection_dim: 768,
  torch_dtype: "float32",
  vocab_size: 49408,
} as const;

export const SD15_SCHEDULER_CONFIG = {
  _class_name: "PNDMScheduler",
  _diffusers_version: DIFFUSERS_VERSION,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: "epsilon",
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: "leading",
  trained_betas: null,
} as const;

export const SD15_MODEL_INDEX = {
  _class_name: "StableDiffusionPipeline",
  _diffusers_version: DIFFUSERS_VERSION,
  feature_extractor: [null, null],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ["diffusers", "PNDMScheduler"],
  text_encoder: ["transformers", "CLIPTextModel"],
  tokenizer: ["transformers", "CLIPTokenizer"],
  unet: ["diffusers", "UNet2DConditionModel"],
  vae: ["diffusers", "AutoencoderKL"],
} as const;

/** The configs as mutable JSON objects (the parsers take plain records). */
export function sd15Json<T>(config: T): Record<string, unknown> {
  return structuredClone(config) as Record<string, unknown>;
}
