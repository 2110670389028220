/**
 * The reward service's pure core (no gRPC): validates requests (every error names its field),
 * resolves the scorer once per request and holds its lease until the reply, and scores through the
 * version's dynamic batcher. Management calls (load, unload, alias, list) go to the registry; bundle
 * paths are resolved inside the model root first (paths.ts).
 */
import { FailedPreconditionError, InvalidArgumentError, ResourceExhaustedError } from "../../lib/errors.ts";
import type { BatchingConfig } from "./batcher.ts";
import { resolveBundlePath } from "./paths.ts";
import type { ScorerRegistry, ScorerSource, ScorerStatus, UnloadResult } from "./registry.ts";
import type { RgbImage } from "./scorer.ts";

export interface RewardLimits {
  /** Largest accepted width or height (--max-image-side). */
  maxImageSide: number;
  /** Most images in one Score request (--max-images-per-request); more is RESOURCE_EXHAUSTED. */
  maxImagesPerRequest: number;
  /** Longest accepted prompt, in UTF-16 code units (scorers truncate to 77 tokens anyway). */
  maxPromptChars: number;
}

export const DEFAULT_LIMITS: RewardLimits = {
  maxImageSide: 4096,
  maxImagesPerRequest: 256,
  maxPromptChars: 10_000,
};

/** An image as it arrives (rdpo.v1.Image): HWC uint8, `channels` must be 3. */
export interface ImageInput {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

export interface ScoreInput {
  /** Name, alias or name@version. */
  scorer: string;
  images: ImageInput[];
  /** 0 (image-only scorers), 1 (shared by all images) or one per image. */
  prompts: string[];
}

export interface ScoreOutput {
  scores: Float64Array;
  scorerName: string;
  version: string;
  queueMs: number;
  inferenceMs: number;
  batchSize: number;
}

export interface LoadInput {
  name: string;
  version: string;
  /** Bundle folder relative to the model root; "" for built-in kinds. */
  bundle: string;
  /** Built-in kind when `bundle` is empty; with a bundle, the kind it must have ("" = any). */
  kind: string;
  batching?: Partial<BatchingConfig>;
  alias?: string;
}

export interface RewardCoreOptions {
  registry: ScorerRegistry;
  /** Folder bundles are resolved in; without one only built-in kinds can be loaded. */
  modelRoot?: string;
  limits?: Partial<RewardLimits>;
}

export class RewardCore {
  readonly registry: ScorerRegistry;
  readonly limits: RewardLimits;
  readonly modelRoot: string | undefined;

  constructor(options: RewardCoreOptions) {
    this.registry = options.registry;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.modelRoot = options.modelRoot;
  }

  /** Validates, resolves the scorer once, and scores through its batcher. */
  async score(input: ScoreInput, signal?: AbortSignal): Promise<ScoreOutput> {
    const images = validateImages(input.images, this.limits);
    validatePrompts(input.prompts, images.length, this.limits);
    const lease = this.registry.resolve(input.scorer);
    try {
      let prompts: string[] = [];
      if (lease.needsPrompts) {
        if (input.prompts.length === 0) {
          throw new InvalidArgumentError(
            "prompts",
            `scorer ${lease.name}@${lease.version} (${lease.kind}) needs prompts: give one per image or one ` +
              `shared by all ${images.length} images`,
          );
        }
        prompts = input.prompts.length === 1 ? images.map(() => input.prompts[0]) : input.prompts;
      }
      const result = await lease.score(images, prompts, signal);
      return {
        scores: result.scores,
        scorerName: lease.name,
        version: lease.version,
        queueMs: result.queueMs,
        inferenceMs: result.inferenceMs,
        batchSize: result.batchSize,
      };
    } finally {
      lease.release();
    }
  }

  /** Loads a bundle (resolved inside the model root) or a built-in kind as name@version. */
  async loadScorer(input: LoadInput): Promise<ScorerStatus> {
    let source: ScorerSource;
    if (input.bundle) {
      if (!this.modelRoot) {
        throw new FailedPreconditionError(
          "bundle: this service has no --model-root, so only built-in kinds (bundle empty, kind set) can be loaded",
        );
      }
      source = { kind: input.kind, bundlePath: await resolveBundlePath(this.modelRoot, input.bundle) };
    } else if (input.kind) {
      source = { kind: input.kind };
    } else {
      throw new InvalidArgumentError(
        "bundle",
        "empty, and no kind given: name a bundle folder under the model root, or a built-in kind",
      );
    }
    return await this.registry.load(
      input.name,
      input.version,
      source,
      input.batching,
      input.alias || undefined,
    );
  }

  unloadScorer(name: string, version: string, drainTimeoutMs = 0): Promise<UnloadResult> {
    return this.registry.unload(name, version, drainTimeoutMs);
  }

  /** Returns the previous target ("" if the alias is new). Empty name and version delete it. */
  setAlias(alias: string, name: string, version: string): string {
    return this.registry.setAlias(alias, name, version);
  }

  listScorers(): { scorers: ScorerStatus[]; aliases: Record<string, string> } {
    return this.registry.list();
  }
}

/** Checks every image; returns them as scorer RgbImages (same buffers, no copies). */
export function validateImages(images: ImageInput[], limits: RewardLimits): RgbImage[] {
  if (images.length === 0) throw new InvalidArgumentError("images", "empty: send at least one image");
  if (images.length > limits.maxImagesPerRequest) {
    throw new ResourceExhaustedError(
      `images: ${images.length} images exceed the limit of ${limits.maxImagesPerRequest} per request ` +
        `(--max-images-per-request); split the request`,
    );
  }
  return images.map((image, i) => {
    const field = `images[${i}]`;
    if (image.channels !== 3) {
      throw new InvalidArgumentError(
        `${field}.channels`,
        `expected 3 (RGB, HWC), got ${image.channels}${image.channels === 0 ? " (unset)" : ""}`,
      );
    }
    for (const side of ["width", "height"] as const) {
      const n = image[side];
      if (!Number.isInteger(n) || n <= 0) {
        throw new InvalidArgumentError(`${field}.${side}`, `must be > 0, got ${n}`);
      }
      if (n > limits.maxImageSide) {
        throw new ResourceExhaustedError(
          `${field}.${side}: ${n} exceeds the limit of ${limits.maxImageSide} pixels (--max-image-side)`,
        );
      }
    }
    const expected = image.width * image.height * 3;
    if (image.data.length !== expected) {
      throw new InvalidArgumentError(
        `${field}.data`,
        `expected ${expected} bytes (${image.width}x${image.height}x3), got ${image.data.length}`,
      );
    }
    return { width: image.width, height: image.height, data: image.data };
  });
}

/** 0, 1 (shared) or one prompt per image, each within the length limit. */
export function validatePrompts(prompts: string[], imageCount: number, limits: RewardLimits): void {
  if (prompts.length > 1 && prompts.length !== imageCount) {
    throw new InvalidArgumentError(
      "prompts",
      `expected 0, 1 (shared) or ${imageCount} (one per image) prompts, got ${prompts.length}`,
    );
  }
  prompts.forEach((prompt, i) => {
    if (prompt.length > limits.maxPromptChars) {
      throw new InvalidArgumentError(
        `prompts[${i}]`,
        `${prompt.length} characters exceed the limit of ${limits.maxPromptChars}`,
      );
    }
  });
}
