/**
 * PickScore (REWARDS.md "pickscore"): an optimum `clip` export of `yuvalkirstain/PickScore_v1`
 * (inputs input_ids, pixel_values, attention_mask; output logits_per_text [T, I] =
 * exp(logit_scale) * cos(text, image)). Image i is scored with its own prompt:
 * `logits_per_text[t(i)][i]`, where the batch's distinct prompts are encoded once.
 * Tokens: CLIP BPE, 77, padded with 0 (the laion processor's `!`; causal pooling at EOT makes the
 * pad id irrelevant to the score).
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

export class PickScoreScorer implements Scorer {
  readonly kind = "pickscore";
  readonly needsPrompts = true;

  private constructor(
    readonly manifest: BundleManifest,
    readonly clip: BoundModel,
    readonly tokenizer: PromptTokenizer,
  ) {}

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<PickScoreScorer> {
    const tokenizer = await loadTokenizer(manifest.tokenizer!, resolve);
    const clip = await BoundModel.open("clip", manifest.models.clip, resolve, options);
    try {
      checkImageSize(clip, manifest.preprocessing!);
      checkSequenceLength(clip, tokenizer);
      return new PickScoreScorer(manifest, clip, tokenizer);
    } catch (e) {
      await clip.close();
      throw e;
    }
  }

  /** The [T, I] matrix of `logits_per_text` for distinct prompts x images (row-major). */
  async logitsPerText(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    const size = this.manifest.preprocessing!.size;
    const pixels = await pooledPixelValues(this.manifest.preprocessing!, images);
    const tok = this.tokenizer.encode(prompts);
    const dims = [prompts.length, tok.length];
    const out = readFloatOutput(
      await this.clip.run({
        pixel_values: { data: pixels, dims: [images.length, 3, size, size] },
        input_ids: { data: tok.inputIds, dims },
        attention_mask: { data: tok.attentionMask, dims },
      }),
      this.clip.spec.output,
    );
    if (out.data.length !== prompts.length * images.length) {
      throw new InvalidArgumentError(
        "models.clip.output",
        `expected [${prompts.length}, ${images.length}] (texts x images), got [${out.dims}]`,
      );
    }
    return out.data;
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    checkPrompts(images, prompts, true);
    if (images.length === 0) return new Float64Array(0);
    const { unique, index } = dedupePrompts(prompts);
    const m = await this.logitsPerText(images, unique);
    const n = images.length;
    return normalizeScores(Float64Array.from(index, (t, i) => m[t * n + i]), this.manifest.normalization);
  }

  async close(): Promise<void> {
    await this.clip.close();
  }
}
