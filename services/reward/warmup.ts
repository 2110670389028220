/**
 * The warm-up batch a version must pass before it is marked READY (registry.ts `load`): one small
 * synthetic image, plus a prompt for text-conditioned scorers.
 */
import { FailedPreconditionError } from "../../lib/errors.ts";
import type { RgbImage, Scorer } from "./scorer.ts";

/** The warm-up input: a 64x64 RGB gradient, and one prompt for text-conditioned scorers. */
export const WARMUP_PROMPT = "a photo of a cat";
export function warmupImage(side = 64): RgbImage {
  const data = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const i = (y * side + x) * 3;
      data[i] = (x * 255) / (side - 1);
      data[i + 1] = (y * 255) / (side - 1);
      data[i + 2] = ((x + y) * 255) / (2 * (side - 1));
    }
  }
  return { width: side, height: side, data };
}

/** One warm-up batch; the scorer must return one finite score. */
export async function warmUp(ref: string, scorer: Scorer): Promise<void> {
  let scores: Float64Array;
  try {
    scores = await scorer.score([warmupImage()], scorer.needsPrompts ? [WARMUP_PROMPT] : []);
  } catch (error) {
    throw new FailedPreconditionError(
      `warm-up of ${ref} failed: ${(error instanceof Error ? error.message : String(error))}`,
    );
  }
  if (scores?.length !== 1 || !Number.isFinite(scores[0])) {
    throw new FailedPreconditionError(
      `warm-up of ${ref} failed: expected one finite score, got [${Array.from(scores ?? []).join(", ")}]`,
    );
  }
}
