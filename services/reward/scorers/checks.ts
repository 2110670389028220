/** Load-time consistency checks between a manifest and the models it binds. */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import type { BoundModel } from "./bound_model.ts";
import type { PromptTokenizer } from "./inputs.ts";

/** The preprocessing size must equal the pixel input's declared side, when the model fixes it. */
export function checkImageSize(model: BoundModel, pre: PreprocessingSpec): void {
  const declared = model.declaredImageSize();
  if (declared !== undefined && declared !== pre.size) {
    throw new InvalidArgumentError(
      "preprocessing.size",
      `is ${pre.size} but models.${model.role} declares ${declared}x${declared} pixel input`,
    );
  }
}

/** The tokenizer's length must equal the token inputs' declared length, when the model fixes it. */
export function checkSequenceLength(model: BoundModel, tok: PromptTokenizer): void {
  const declared = model.declaredSequenceLength();
  if (declared !== undefined && declared !== tok.length) {
    throw new InvalidArgumentError(
      "tokenizer",
      `produces ${tok.length} tokens but models.${model.role} declares sequence length ${declared}`,
    );
  }
}
