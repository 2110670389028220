/**
 * An SD1.5-layout pipeline (`sd15` or `sd15-mini`, specs.ts) with seeded random weights, in memory:
 * what the sd15 bench runs when no --model-dir is given. The tokenizer is the CLIP BPE of the shared
 * fixtures (read from the file).
 */
import { buildNoiseSchedule, parseScheduleConfig } from "../../../../lib/rdpo/schedule.ts";
import { fixturePath } from "../../../../lib/testing/fixtures.ts";
import { pathExists } from "../../../../lib/fs/exists.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { AutoencoderKL } from "../vae.ts";
import { CLIPTextModel } from "../clip_text.ts";
import { initRandomParams } from "../weights.ts";
import { clipPromptTokenizer, type PolicyPipeline } from "../../pipeline.ts";
import { type ModelSpec } from "./specs.ts";

/** The spec's pipeline with seeded random weights at `latent` x `latent` latents. */
export async function randomSpecPipeline(
  spec: ModelSpec,
  latent: number,
  log: (s: string) => void = () => {},
): Promise<PolicyPipeline> {
  const vocab = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");
  if (!(await pathExists(vocab))) {
    throw new Error(`sd15 bench: CLIP BPE vocabulary not found at ${vocab} (set RDPO_SHARED_DIR)`);
  }
  const unet = new UNet2DConditionModel(parseUNetConfig(spec.unet));
  log(`random weights: unet (${spec.name})`);
  initRandomParams(unet.params, 1);
  const vae = new AutoencoderKL(parseVaeConfig(spec.vae));
  log("random weights: vae");
  initRandomParams(vae.params, 2);
  const textEncoder = new CLIPTextModel(parseClipTextConfig(spec.textEncoder));
  log("random weights: text encoder");
  initRandomParams(textEncoder.params, 3);
  return {
    name: `${spec.name}-random`,
    unet,
    textEncoder,
    vae,
    tokenizer: await clipPromptTokenizer(vocab, textEncoder.config.maxPositionEmbeddings),
    schedule: buildNoiseSchedule(parseScheduleConfig(spec.scheduler, "scheduler")),
    configs: {
      unet: JSON.stringify(spec.unet),
      textEncoder: JSON.stringify(spec.textEncoder),
      vae: JSON.stringify(spec.vae),
      scheduler: JSON.stringify(spec.scheduler),
    },
    latentShape: [4, latent, latent],
    imageWidth: latent * 8,
    imageHeight: latent * 8,
  };
}

/** One line naming a spec's widths (the bench table says which model it ran). */
export function describeWidths(spec: ModelSpec): string {
  const u = spec.unet as {
    block_out_channels: number[];
    cross_attention_dim: number;
    layers_per_block: number;
  };
  const v = spec.vae as { block_out_channels: number[]; layers_per_block: number };
  const t = spec.textEncoder as { hidden_size: number; num_hidden_layers: number; intermediate_size: number };
  return `UNet block_out_channels ${JSON.stringify(u.block_out_channels)} x ${u.layers_per_block} layers, ` +
    `cross_attention_dim ${u.cross_attention_dim}; VAE ${
      JSON.stringify(v.block_out_channels)
    } x ${v.layers_per_block}; ` +
    `CLIP text ${t.hidden_size} wide, ${t.num_hidden_layers} layers, MLP ${t.intermediate_size}`;
}
