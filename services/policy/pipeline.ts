/**
 * Loads a Stable-Diffusion-compatible model folder in diffusers layout:
 *
 *   unet/config.json + unet/diffusion_pytorch_model.safetensors   (or .safetensors.index.json shards)
 *   text_encoder/config.json + text_encoder/model.safetensors        (optional: prompt embeds only)
 *   tokenizer/merges.txt (CLIP BPE, SD1.5) or tokenizer/tokenizer_config.json {"type": "word"}
 *   vae/config.json + vae/diffusion_pytorch_model.safetensors         (absent: a pixel-space model)
 *   scheduler/scheduler_config.json                                   (absent: SD1.5's DDIM schedule)
 *
 * and turns it into the pieces the policy core needs: the models, a tokenizer, the noise schedule,
 * and the latent/image geometry.
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { InvalidArgumentError } from "../../lib/errors.ts";
import {
  buildNoiseSchedule,
  type NoiseSchedule,
  parseScheduleConfig,
  STABLE_DIFFUSION_SCHEDULE,
} from "../../lib/rdpo/schedule.ts";
import { ClipBpeTokenizer } from "../../lib/text/clip_bpe.ts";
import { WordTokenizer, type WordTokenizerConfig } from "../../lib/text/word_tokenizer.ts";
import type { CLIPTextModel } from "./model/clip_text.ts";
import { loadClipText, loadUNet, loadVae } from "./model/loaders.ts";
import { openWeights } from "./model/weights.ts";
import type { UNet2DConditionModel } from "./model/unet.ts";
import type { AutoencoderKL } from "./model/vae.ts";
import { pathExists } from "../../lib/fs/exists.ts";

/** Text -> fixed-length token ids (what the text encoder was trained with). */
export interface PromptTokenizer {
  readonly maxLength: number;
  encode(text: string): Int32Array;
}

export interface PolicyPipeline {
  name: string;
  unet: UNet2DConditionModel;
  textEncoder: CLIPTextModel | null;
  tokenizer: PromptTokenizer | null;
  /** null for pixel-space models (the UNet works on images in [-1, 1] directly). */
  vae: AutoencoderKL | null;
  schedule: NoiseSchedule;
  /** Raw config texts, reported by GetInfo. */
  configs: { unet: string; textEncoder: string; vae: string; scheduler: string };
  /** One sample's latent shape [C, H, W]. */
  latentShape: [number, number, number];
  imageWidth: number;
  imageHeight: number;
}

async function firstExisting(dir: string, names: string[]): Promise<string | null> {
  for (const n of names) if (await pathExists(join(dir, n))) return join(dir, n);
  return null;
}

async function requireFile(dir: string, names: string[], what: string): Promise<string> {
  const found = await firstExisting(dir, names);
  if (!found) throw new InvalidArgumentError("model_dir", `${what}: none of ${names.join(", ")} in ${dir}`);
  return found;
}

/** Opens a component's weights (single file or shards), loads, and closes them. */
async function withWeights<T>(
  dir: string,
  bases: string[],
  variant: string,
  load: (weights: Awaited<ReturnType<typeof openWeights>>) => Promise<T>,
): Promise<T> {
  const weights = await openWeights(dir, bases, variant);
  try {
    return await load(weights);
  } finally {
    weights.close();
  }
}

/** CLIP BPE for SD-style folders, or the project's word tokenizer (tokenizer_config.json type "word"). */
export async function loadPromptTokenizer(dir: string, maxLength: number): Promise<PromptTokenizer | null> {
  const tokDir = join(dir, "tokenizer");
  const configPath = join(tokDir, "tokenizer_config.json");
  if (await pathExists(configPath)) {
    const cfg = JSON.parse(await Deno.readTextFile(configPath)) as Partial<WordTokenizerConfig>;
    if (cfg.type === "word") {
      const word = new WordTokenizer(cfg as WordTokenizerConfig);
      return { maxLength: word.maxLength, encode: (t) => word.encode(t) };
    }
  }
  const merges = await firstExisting(tokDir, [
    "merges.txt",
    "bpe_simple_vocab_16e6.txt.gz",
    "bpe_simple_vocab_16e6.txt",
  ]);
  if (!merges) return null;
  return await clipPromptTokenizer(merges, maxLength);
}

/** SD1.5's prompt tokenizer from a CLIP BPE vocabulary file (merges.txt or bpe_simple_vocab_16e6.txt[.gz]). */
export async function clipPromptTokenizer(path: string, maxLength: number): Promise<PromptTokenizer> {
  const bpe = await ClipBpeTokenizer.fromFile(path);
  const padId = bpe.eotId; // SD1.5 pads with EOT (REWARDS.md, CLIP BPE tokenizer)
  return {
    maxLength,
    encode: (t) => Int32Array.from(bpe.encode(t, { contextLength: maxLength, padId }).inputIds),
  };
}

export interface LoadPipelineOptions {
  /** Weight file variant, e.g. "fp16" for `diffusion_pytorch_model.fp16.safetensors` (up-cast at load). */
  variant?: string;
}

/** Loads the model folder `dir` (see the file comment). */
export async function loadPipeline(dir: string, options: LoadPipelineOptions = {}): Promise<PolicyPipeline> {
  const variant = options.variant ?? "";
  if (!(await pathExists(join(dir, "unet")))) {
    throw new InvalidArgumentError(
      "model_dir",
      `${dir} has no unet/ folder (expected a diffusers model folder)`,
    );
  }
  const unetConfigPath = await requireFile(join(dir, "unet"), ["config.json"], "unet config");
  const unet = await withWeights(
    join(dir, "unet"),
    ["diffusion_pytorch_model", "model"],
    variant,
    (weights) => loadUNet({ config: unetConfigPath, weights }),
  );
  const disposeOnError: { dispose(): void }[] = [unet];
  try {
    let textEncoder: CLIPTextModel | null = null;
    let textEncoderConfig = "";
    const teDir = join(dir, "text_encoder");
    if (await pathExists(teDir)) {
      const cfgPath = await requireFile(teDir, ["config.json"], "text encoder config");
      textEncoderConfig = await Deno.readTextFile(cfgPath);
      textEncoder = await withWeights(
        teDir,
        ["model"],
        variant,
        (weights) => loadClipText({ config: cfgPath, weights }),
      );
      disposeOnError.push(textEncoder);
      const crossDim = unet.config.crossAttentionDim[0];
      if (textEncoder.config.hiddenSize !== crossDim) {
        throw new InvalidArgumentError(
          "model_dir",
          `text_encoder hidden_size ${textEncoder.config.hiddenSize} does not match the unet's cross_attention_dim ${crossDim}`,
        );
      }
    }
    const tokenizer = textEncoder
      ? await loadPromptTokenizer(dir, textEncoder.config.maxPositionEmbeddings)
      : null;
    if (textEncoder && !tokenizer) {
      throw new InvalidArgumentError(
        "model_dir",
        `${dir}/tokenizer: no merges.txt or word tokenizer_config.json`,
      );
    }

    let vae: AutoencoderKL | null = null;
    let vaeConfig = "";
    const vaeDir = join(dir, "vae");
    if (await pathExists(vaeDir)) {
      const cfgPath = await requireFile(vaeDir, ["config.json"], "vae config");
      vaeConfig = await Deno.readTextFile(cfgPath);
      vae = await withWeights(
        vaeDir,
        ["diffusion_pytorch_model", "model"],
        variant,
        (weights) => loadVae({ config: cfgPath, weights }),
      );
      disposeOnError.push(vae);
    }

    const schedPath = await firstExisting(join(dir, "scheduler"), ["scheduler_config.json"]);
    const schedulerConfig = schedPath
      ? await Deno.readTextFile(schedPath)
      : JSON.stringify(STABLE_DIFFUSION_SCHEDULE);
    const schedule = buildNoiseSchedule(
      schedPath
        ? parseScheduleConfig(JSON.parse(schedulerConfig), "scheduler/scheduler_config.json")
        : STABLE_DIFFUSION_SCHEDULE,
    );

    const u = unet.config;
    const size = u.sampleSize ?? 64;
    const latentShape: [number, number, number] = [u.inChannels, size, size];
    let imageSize = size;
    if (vae) {
      if (vae.config.latentChannels !== u.inChannels) {
        throw new InvalidArgumentError(
          "model_dir",
          `vae latent_channels ${vae.config.latentChannels} differs from unet in_channels ${u.inChannels}`,
        );
      }
      imageSize = size * 2 ** (vae.config.blockOutChannels.length - 1);
    } else if (u.inChannels !== 3 || u.outChannels !== 3) {
      throw new InvalidArgumentError(
        "model_dir",
        "a model without vae/ must be pixel-space (unet in/out channels 3)",
      );
    }
    return {
      name: dir.split("/").filter(Boolean).pop() ?? dir,
      unet,
      textEncoder,
      tokenizer,
      vae,
      schedule,
      configs: {
        unet: await Deno.readTextFile(unetConfigPath),
        textEncoder: textEncoderConfig,
        vae: vaeConfig,
        scheduler: schedulerConfig,
      },
      latentShape,
      imageWidth: imageSize,
      imageHeight: imageSize,
    };
  } catch (e) {
    for (const m of disposeOnError) m.dispose();
    throw e;
  }
}

/** Frees every model's weights. */
export function disposePipeline(p: PolicyPipeline): void {
  p.unet.dispose();
  p.textEncoder?.dispose();
  p.vae?.dispose();
}

/** Latents (scaled, as sampled) -> images in [0, 1], NCHW; identity mapping for pixel-space models. */
export function decodeToUnit(p: PolicyPipeline, latents: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const x = p.vae ? p.vae.decode(tf.div(latents, p.vae.scalingFactor) as tf.Tensor4D) : latents;
    return tf.clipByValue(tf.add(tf.mul(x, 0.5), 0.5), 0, 1) as tf.Tensor4D;
  });
}

/** Images in [0, 1], NCHW -> latents scaled by the VAE scaling factor (the VAE mean; no sampling). */
export function encodeFromUnit(p: PolicyPipeline, images: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const x = tf.sub(tf.mul(images, 2), 1) as tf.Tensor4D;
    if (!p.vae) return x;
    const { mean, logvar } = p.vae.encode(x);
    logvar.dispose();
    return tf.mul(mean, p.vae.scalingFactor) as tf.Tensor4D;
  });
}
