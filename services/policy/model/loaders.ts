/**
 * Builds each model from its config.json and fills it from safetensors by exact key name.
 * `config` is a path to a config.json, or the parsed JSON object; `weights` is a path to a
 * .safetensors file, or an open WeightSource (closed by the caller).
 */
import {
  type ClipTextConfig,
  parseClipTextConfig,
  parseUNetConfig,
  parseVaeConfig,
  readConfigJson,
  type UNetConfig,
  unwrapConfig,
  type VaeConfig,
} from "./config.ts";
import { loadParams, SafetensorsSource, type WeightSource } from "./weights.ts";
import { UNet2DConditionModel } from "./unet.ts";
import { AutoencoderKL, vaeKeyAliases } from "./vae.ts";
import { clipIgnoredKey, CLIPTextModel } from "./clip_text.ts";
import type { ParamStore } from "./params.ts";

export interface ModelSource {
  config: string | Record<string, unknown>;
  weights: string | WeightSource;
  /** Create the base weights as trainable variables (full fine-tuning). Default false. */
  trainable?: boolean;
}

async function configObject(config: ModelSource["config"]): Promise<Record<string, unknown>> {
  return typeof config === "string" ? await readConfigJson(config) : unwrapConfig(config, "config");
}

async function fill(
  params: ParamStore,
  source: ModelSource,
  options: Parameters<typeof loadParams>[2],
  dispose: () => void,
): Promise<void> {
  const weights = typeof source.weights === "string"
    ? await SafetensorsSource.open(source.weights)
    : source.weights;
  try {
    await loadParams(params, weights, { ...options, trainable: source.trainable });
  } catch (e) {
    dispose();
    throw e;
  } finally {
    if (typeof source.weights === "string") weights.close();
  }
}

export async function loadUNet(source: ModelSource): Promise<UNet2DConditionModel> {
  const cfg: UNetConfig = parseUNetConfig(await configObject(source.config), describe(source.config, "unet"));
  const model = new UNet2DConditionModel(cfg);
  await fill(model.params, source, {}, () => model.dispose());
  return model;
}

export async function loadVae(source: ModelSource): Promise<AutoencoderKL> {
  const cfg: VaeConfig = parseVaeConfig(await configObject(source.config), describe(source.config, "vae"));
  const model = new AutoencoderKL(cfg);
  await fill(model.params, source, { aliases: vaeKeyAliases }, () => model.dispose());
  return model;
}

/** `withProjection`: CLIPTextModelWithProjection (needs `text_projection.weight`). */
export async function loadClipText(
  source: ModelSource & { withProjection?: boolean },
): Promise<CLIPTextModel> {
  const cfg: ClipTextConfig = parseClipTextConfig(
    await configObject(source.config),
    describe(source.config, "text_encoder"),
  );
  const model = new CLIPTextModel(cfg, source.withProjection ?? false);
  await fill(model.params, source, { ignore: clipIgnoredKey }, () => model.dispose());
  return model;
}

function describe(config: ModelSource["config"], name: string): string {
  return typeof config === "string" ? config : `${name}/config.json`;
}
