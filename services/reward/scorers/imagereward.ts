/**
 * ImageReward v1.0 (REWARDS.md "imagereward"), split into two ONNX models so one image embedding can
 * serve many prompts: `vision` (pixel_values -> image_embeds [B, 197, 1024], BLIP ViT-L/16) and
 * `text_head` (input_ids, attention_mask, image_embeds -> reward: BERT with cross-attention, [CLS],
 * MLP). Tokens: bert-base-uncased WordPiece, [CLS] ... [SEP], padded with 0 to 35. Image
 * preprocessing is the reference's torchvision Compose (`clip_torchvision`). The raw reward is
 * normalized `(r - mean) / std` with the reference's constants unless the manifest overrides them.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { BundleManifest, CreateScorerOptions } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { BoundModel } from "./bound_model.ts";
import { checkImageSize, checkSequenceLength } from "./checks.ts";
import { checkPrompts, loadTokenizer, normalizeScores, type PromptTokenizer } from "./inputs.ts";
import { pooledPixelValues } from "../preprocess/pool.ts";
import { readFloatOutput } from "./onnx_session.ts";

export class ImageRewardScorer implements Scorer {
  readonly kind = "imagereward";
  readonly needsPrompts = true;

  private constructor(
    readonly manifest: BundleManifest,
    readonly vision: BoundModel,
    readonly textHead: BoundModel,
    readonly tokenizer: PromptTokenizer,
  ) {}

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<ImageRewardScorer> {
    const tokenizer = await loadTokenizer(manifest.tokenizer!, resolve);
    const vision = await BoundModel.open("vision", manifest.models.vision, resolve, options);
    let textHead: BoundModel | undefined;
    try {
      textHead = await BoundModel.open("text_head", manifest.models.text_head, resolve, options);
      checkImageSize(vision, manifest.preprocessing!);
      checkSequenceLength(textHead, tokenizer);
      if (textHead.inputsFrom("image_embeds").length === 0) {
        throw new InvalidArgumentError("models.text_head.feeds", "must feed image_embeds to some input");
      }
      return new ImageRewardScorer(manifest, vision, textHead, tokenizer);
    } catch (e) {
      await vision.close();
      await textHead?.close();
      throw e;
    }
  }

  /** Raw rewards (before normalization), one per image with its prompt. */
  async rawRewards(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    const size = this.manifest.preprocessing!.size;
    const pixels = await pooledPixelValues(this.manifest.preprocessing!, images);
    const embeds = await this.vision.run({
      pixel_values: { data: pixels, dims: [images.length, 3, size, size] },
    });
    if (embeds.dims[0] !== images.length) {
      throw new InvalidArgumentError(
        "models.vision.output",
        `expected batch ${images.length}, got [${embeds.dims}]`,
      );
    }
    const tok = this.tokenizer.encode(prompts);
    const dims = [prompts.length, tok.length];
    const out = readFloatOutput(
      await this.textHead.run({
        input_ids: { data: tok.inputIds, dims },
        attention_mask: { data: tok.attentionMask, dims },
        image_embeds: embeds,
      }),
      this.textHead.spec.output,
    );
    if (out.data.length !== images.length) {
      throw new InvalidArgumentError(
        "models.text_head.output",
        `expected ${images.length} rewards, got [${out.dims}]`,
      );
    }
    return out.data;
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    checkPrompts(images, prompts, true);
    if (images.length === 0) return new Float64Array(0);
    return normalizeScores(await this.rawRewards(images, prompts), this.manifest.normalization);
  }

  async close(): Promise<void> {
    await this.vision.close();
    await this.textHead.close();
  }
}
