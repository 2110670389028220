/**
 * Named model specs `make-model --config NAME` writes: `sd15` (Stable Diffusion 1.5 at full size)
 * and `sd15-mini` (SD1.5's architecture -- four UNet levels, three with cross-attention, the
 * 4-level VAE, a CLIP text encoder -- at small widths, for tests that need the whole SD1.5 layout
 * in seconds).
 */
import {
  SD15_MODEL_INDEX,
  SD15_SCHEDULER_CONFIG,
  SD15_TEXT_ENCODER_CONFIG,
  SD15_UNET_CONFIG,
  SD15_VAE_CONFIG,
  sd15Json,
} from "./configs.ts";

type Json = Record<string, unknown>;

export interface ModelSpec {
  name: string;
  unet: Json;
  vae: Json;
  textEncoder: Json;
  scheduler: Json;
  modelIndex: Json;
}

function sd15(): ModelSpec {
  return {
    name: "sd15",
    unet: sd15Json(SD15_UNET_CONFIG),
    vae: sd15Json(SD15_VAE_CONFIG),
    textEncoder: sd15Json(SD15_TEXT_ENCODER_CONFIG),
    scheduler: sd15Json(SD15_SCHEDULER_CONFIG),
    modelIndex: sd15Json(SD15_MODEL_INDEX),
  };
}

function sd15Mini(): ModelSpec {
  const s = sd15();
  return {
    ...s,
    name: "sd15-mini",
    unet: {
      ...s.unet,
      sample_size: 8,
      block_out_channels: [32, 64, 64, 64],
      cross_attention_dim: 32,
      norm_num_groups: 8,
    },
    vae: {
      ...s.vae,
      sample_size: 64,
      block_out_channels: [16, 16, 32, 32],
      norm_num_groups: 8,
      layers_per_block: 1,
    },
    textEncoder: {
      ...s.textEncoder,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      projection_dim: 32,
    },
  };
}

export const MODEL_SPECS: Record<string, () => ModelSpec> = { sd15, "sd15-mini": sd15Mini };

export function modelSpec(name: string): ModelSpec {
  const make = MODEL_SPECS[name];
  if (!make) {
    throw new Error(`--config: unknown config "${name}" (known: ${Object.keys(MODEL_SPECS).join(", ")})`);
  }
  return make();
}
