/**
 * Turning a scorer's request (images, prompts) into model inputs as a bundle manifest describes
 * them: pixel values by the named preprocessing, token ids and masks by the named tokenizer.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import { ClipBpeTokenizer } from "../../../lib/text/clip_bpe.ts";
import { WordPieceTokenizer } from "../../../lib/text/wordpiece.ts";
import type { PreprocessingSpec, TokenizerSpec } from "../bundle.ts";
import { clipPixelValues, hpsv2PixelValues } from "../preprocess/clip_image.ts";

/** Pixel values [N, 3, size, size] float32 for `images` per `spec`. */
export function pixelValuesFor(spec: PreprocessingSpec, images: RgbImage[]): Float32Array {
  const { size, mean, std } = spec;
  switch (spec.type) {
    case "clip":
      return clipPixelValues(images, size, { mean, std, variant: "transformers" });
    case "clip_torchvision":
      return clipPixelValues(images, size, { mean, std, variant: "torchvision" });
    case "hpsv2":
      return hpsv2PixelValues(images, size, { mean, std, antialias: spec.antialias ?? true });
  }
}

/** Token ids and attention masks for a batch of prompts, row-major [N, length]. */
export interface TokenizedBatch {
  inputIds: number[];
  attentionMask: number[];
  length: number;
}

export interface PromptTokenizer {
  readonly length: number;
  encode(prompts: string[]): TokenizedBatch;
}

/** Loads the tokenizer a manifest names (`resolve` maps bundle-relative paths to files). */
export async function loadTokenizer(
  spec: TokenizerSpec,
  resolve: (p: string) => string,
): Promise<PromptTokenizer> {
  if (spec.type === "clip_bpe") {
    const tok = await ClipBpeTokenizer.fromFile(resolve(spec.file));
    const length = spec.context_length;
    return {
      length,
      encode(prompts) {
        const b = tok.encodeBatch(prompts, { contextLength: length, padId: spec.pad_id });
        return { ...b, length };
      },
    };
  }
  const tok = await WordPieceTokenizer.fromFile(resolve(spec.file), {
    doLowerCase: spec.lowercase,
    addedTokens: spec.added_tokens,
  });
  const length = spec.max_length;
  return {
    length,
    encode(prompts) {
      const inputIds: number[] = [];
      const attentionMask: number[] = [];
      for (const p of prompts) {
        const e = tok.encode(p, length);
        inputIds.push(...e.inputIds);
        attentionMask.push(...e.attentionMask);
      }
      return { inputIds, attentionMask, length };
    },
  };
}

/** Checks a score request: well-formed prompts when needed, none otherwise. */
export function checkPrompts(images: RgbImage[], prompts: string[], needsPrompts: boolean): void {
  if (!needsPrompts) return;
  if (prompts.length !== images.length) {
    throw new InvalidArgumentError(
      "prompts",
      `expected one prompt per image (${images.length}), got ${prompts.length}`,
    );
  }
  prompts.forEach((p, i) => {
    if (typeof p !== "string") throw new InvalidArgumentError(`prompts[${i}]`, "must be a string");
  });
}

/** Distinct prompts in first-seen order and, per image, the index of its prompt among them. */
export function dedupePrompts(prompts: string[]): { unique: string[]; index: number[] } {
  const unique: string[] = [];
  const seen = new Map<string, number>();
  const index = prompts.map((p) => {
    let i = seen.get(p);
    if (i === undefined) {
      i = unique.length;
      unique.push(p);
      seen.set(p, i);
    }
    return i;
  });
  return { unique, index };
}

/** Applies a manifest's `normalization` ((r - mean) / std) in place. */
export function normalizeScores(scores: Float64Array, norm?: { mean: number; std: number }): Float64Array {
  if (norm) { for (let i = 0; i < scores.length; i++) scores[i] = (scores[i] - norm.mean) / norm.std; }
  return scores;
}
