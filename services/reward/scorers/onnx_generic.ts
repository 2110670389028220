/**
 * The generic `onnx` scorer: one model described entirely by the manifest (BUNDLES.md). Its inputs
 * are fed from named sources (pixel_values by the manifest's preprocessing, input_ids and
 * attention_mask by its tokenizer); its output is reduced to one score per image (`per_image`: a
 * [B] or [B, 1] output; `diagonal`: a [T, I] texts-by-images matrix read at [t(i), i], CLIP style),
 * then the optional `normalization` is applied.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { BundleManifest, CreateScorerOptions } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { BoundModel, type FeedValues } from "./bound_model.ts";
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

export class OnnxGenericScorer implements Scorer {
  readonly kind = "onnx";
  readonly needsPrompts: boolean;

  private constructor(
    readonly manifest: BundleManifest,
    readonly model: BoundModel,
    readonly tokenizer: PromptTokenizer | undefined,
  ) {
    this.needsPrompts = tokenizer !== undefined &&
      (model.inputsFrom("input_ids").length > 0 || model.inputsFrom("attention_mask").length > 0);
  }

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<OnnxGenericScorer> {
    const tokenizer = manifest.tokenizer ? await loadTokenizer(manifest.tokenizer, resolve) : undefined;
    const model = await BoundModel.open("model", manifest.models.model, resolve, options);
    try {
      checkImageSize(model, manifest.preprocessing!);
      if (tokenizer) checkSequenceLength(model, tokenizer);
      if (manifest.output_reduce === "diagonal" && !tokenizer) {
        throw new InvalidArgumentError(
          "output_reduce",
          `"diagonal" needs a tokenizer (texts x images output)`,
        );
      }
      return new OnnxGenericScorer(manifest, model, tokenizer);
    } catch (e) {
      await model.close();
      throw e;
    }
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    checkPrompts(images, prompts, this.needsPrompts);
    if (images.length === 0) return new Float64Array(0);
    const size = this.manifest.preprocessing!.size;
    const values: FeedValues = {
      pixel_values: {
        data: await pooledPixelValues(this.manifest.preprocessing!, images),
        dims: [images.length, 3, size, size],
      },
    };
    const diagonal = this.manifest.output_reduce === "diagonal";
    const { unique, index } = diagonal ? dedupePrompts(prompts) : { unique: prompts, index: [] as number[] };
    if (this.needsPrompts) {
      const tok = this.tokenizer!.encode(unique);
      const dims = [unique.length, tok.length];
      values.input_ids = { data: tok.inputIds, dims };
      values.attention_mask = { data: tok.attentionMask, dims };
    }
    const out = readFloatOutput(await this.model.run(values), this.model.spec.output);
    let scores: Float64Array;
    if (diagonal) {
      if (out.data.length !== unique.length * images.length) {
        throw new InvalidArgumentError(
          "output_reduce",
          `"diagonal" expects a [${unique.length}, ${images.length}] output, got [${out.dims}]`,
        );
      }
      scores = Float64Array.from(index, (t, i) => out.data[t * images.length + i]);
    } else {
      if (out.data.length !== images.length) {
        throw new InvalidArgumentError(
          "output_reduce",
          `"per_image" expects ${images.length} values, got [${out.dims}]`,
        );
      }
      scores = out.data;
    }
    return normalizeScores(scores, this.manifest.normalization);
  }

  async close(): Promise<void> {
    await this.model.close();
  }
}
