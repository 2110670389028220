/**
 * The contract between the reward service's registry/batcher and the scorer implementations
 * (one file per kind under scorers/). Pure: no gRPC.
 */

/** An 8-bit RGB image, row-major HWC, `data.length === width * height * 3`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A loaded scorer instance (one name@version). Implementations must be safe to call concurrently. */
export interface Scorer {
  /** Kind, e.g. "aesthetic", "pickscore", "jpeg_compressibility", "onnx". */
  readonly kind: string;
  /** Whether `score` needs one prompt per image. */
  readonly needsPrompts: boolean;
  /**
   * Scores a batch. `prompts` has one entry per image when `needsPrompts`, else it is empty.
   * Returns one score per image, in order, with exactly the reference implementation's semantics
   * (REWARDS.md).
   */
  score(images: RgbImage[], prompts: string[]): Promise<Float64Array>;
  /** Releases sessions and native memory. */
  close(): Promise<void>;
}
