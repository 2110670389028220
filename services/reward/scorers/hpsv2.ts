/**
 * HPSv2 / HPSv2.1 (REWARDS.md "hpsv2"): open_clip ViT-H-14 towers exported separately, `image`
 * (pixel_values -> image_embeds [B, D]) and `text` (input_ids -> text_embeds [B, D]; an
 * attention_mask input is fed too if the export declares one). HPSv2 preprocessing (longest side to
 * 224 by torchvision bicubic on the float tensor, zero padding to square), open_clip tokens padded
 * with 0. Score = cosine(image, text) computed in float64 — no logit scale (the reference's
 * `image_features @ text_features.T` of normalized features).
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { BundleManifest, CreateScorerOptions } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { BoundModel } from "./bound_model.ts";
import { checkImageSize, checkSequenceLength } from "./checks.ts";
import {
  checkPrompts,
  dedupePrompts,
  loadTokenizer,
  normalizeScores,
  type PromptTokenizer,
} from "./inputs.ts";
import { pooledPixelValues } from "../preprocess/pool.ts";
import { readFloatOutput } from "./onnx_session.ts";

/** cos(a, b) of two equal-length float64 rows (0 when either is the zero vector). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const d = Math.sqrt(na) * Math.sqrt(nb);
  return d === 0 ? 0 : dot / d;
}

export class Hpsv2Scorer implements Scorer {
  readonly kind = "hpsv2";
  readonly needsPrompts = true;

  private constructor(
    readonly manifest: BundleManifest,
    readonly image: BoundModel,
    readonly text: BoundModel,
    readonly tokenizer: PromptTokenizer,
  ) {}

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<Hpsv2Scorer> {
    const tokenizer = await loadTokenizer(manifest.tokenizer!, resolve);
    const image = await BoundModel.open("image", manifest.models.image, resolve, options);
    let text: BoundModel | undefined;
    try {
      text = await BoundModel.open("text", manifest.models.text, resolve, options);
      checkImageSize(image, manifest.preprocessing!);
      checkSequenceLength(text, tokenizer);
      return new Hpsv2Scorer(manifest, image, text, tokenizer);
    } catch (e) {
      await image.close();
      await text?.close();
      throw e;
    }
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    checkPrompts(images, prompts, true);
    if (images.length === 0) return new Float64Array(0);
    const size = this.manifest.preprocessing!.size;
    const pixels = await pooledPixelValues(this.manifest.preprocessing!, images);
    const { unique, index } = dedupePrompts(prompts);
    const tok = this.tokenizer.encode(unique);
    const dims = [unique.length, tok.length];
    const [img, txt] = await Promise.all([
      this.image.run({ pixel_values: { data: pixels, dims: [images.length, 3, size, size] } }),
      this.text.run({
        input_ids: { data: tok.inputIds, dims },
        attention_mask: { data: tok.attentionMask, dims },
      }),
    ]);
    const ie = readFloatOutput(img, this.image.spec.output);
    const te = readFloatOutput(txt, this.text.spec.output);
    const d = ie.data.length / images.length;
    if (!Number.isInteger(d) || te.data.length !== unique.length * d) {
      throw new InvalidArgumentError(
        "models",
        `image embeddings [${ie.dims}] and text embeddings [${te.dims}] do not share a dimension`,
      );
    }
    const scores = Float64Array.from(
      index,
      (t, i) => cosine(ie.data.subarray(i * d, (i + 1) * d), te.data.subarray(t * d, (t + 1) * d)),
    );
    return normalizeScores(scores, this.manifest.normalization);
  }

  async close(): Promise<void> {
    await this.image.close();
    await this.text.close();
  }
}
