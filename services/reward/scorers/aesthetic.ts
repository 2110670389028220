/**
 * The LAION improved aesthetic predictor (REWARDS.md "aesthetic"): CLIP ViT-L/14 image embedding
 * (`get_image_features`, the projected 768-d vector, from a vision-with-projection ONNX export),
 * L2-normalized, then the linear-MSE head. The head has no activations, so it is folded into one
 * affine map in float64 at load time (aesthetic_test.ts checks the fold against sequential
 * application and the reference vectors).
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { BundleManifest, CreateScorerOptions } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { BoundModel } from "./bound_model.ts";
import { checkImageSize } from "./checks.ts";
import { normalizeScores } from "./inputs.ts";
import { pooledPixelValues } from "../preprocess/pool.ts";
import { l2Normalize, LinearChainHead } from "./linear_head.ts";
import { readFloatOutput } from "./onnx_session.ts";

/** The folded head: `score = w . e + b` for a unit embedding e. */
export class AestheticHead {
  constructor(readonly weight: Float64Array, readonly bias: number) {}

  static fromChain(chain: LinearChainHead): AestheticHead {
    const f = chain.fold();
    if (f.outFeatures !== 1) {
      throw new InvalidArgumentError("head.file", `head must output 1 value, gives ${f.outFeatures}`);
    }
    return new AestheticHead(f.weight, f.bias[0]);
  }

  get dim(): number {
    return this.weight.length;
  }

  /** Score of an embedding that is already L2-normalized. */
  scoreNormalized(e: ArrayLike<number>): number {
    if (e.length !== this.weight.length) {
      throw new InvalidArgumentError(
        "image_embeds",
        `expected ${this.weight.length} values, got ${e.length}`,
      );
    }
    let s = this.bias;
    for (let i = 0; i < e.length; i++) s += this.weight[i] * e[i];
    return s;
  }

  /** The full scorer semantics: normalize, then the head. */
  score(embedding: ArrayLike<number>): number {
    return this.scoreNormalized(l2Normalize(embedding));
  }
}

export class AestheticScorer implements Scorer {
  readonly kind = "aesthetic";
  readonly needsPrompts = false;

  private constructor(
    readonly manifest: BundleManifest,
    readonly vision: BoundModel,
    readonly head: AestheticHead,
  ) {}

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<AestheticScorer> {
    const head = AestheticHead.fromChain(
      await LinearChainHead.load(resolve(manifest.head!.file), manifest.head!.prefix),
    );
    const vision = await BoundModel.open("vision", manifest.models.vision, resolve, options);
    try {
      checkImageSize(vision, manifest.preprocessing!);
      const dim = vision.output.shape[vision.output.shape.length - 1];
      if (typeof dim === "number" && dim > 0 && dim !== head.dim) {
        throw new InvalidArgumentError(
          "head.file",
          `head takes ${head.dim} inputs, models.vision gives ${dim}`,
        );
      }
      return new AestheticScorer(manifest, vision, head);
    } catch (e) {
      await vision.close();
      throw e;
    }
  }

  /** Unnormalized image embeddings [N, D] as float64 rows. */
  async embed(images: RgbImage[]): Promise<Float64Array[]> {
    const size = this.manifest.preprocessing!.size;
    const pixels = await pooledPixelValues(this.manifest.preprocessing!, images);
    const out = readFloatOutput(
      await this.vision.run({ pixel_values: { data: pixels, dims: [images.length, 3, size, size] } }),
      this.vision.spec.output,
    );
    const dim = out.data.length / images.length;
    if (!Number.isInteger(dim) || dim !== this.head.dim) {
      throw new InvalidArgumentError(
        `models.vision.output`,
        `expected [${images.length}, ${this.head.dim}], got [${out.dims}]`,
      );
    }
    return images.map((_, i) => out.data.subarray(i * dim, (i + 1) * dim));
  }

  async score(images: RgbImage[], _prompts: string[]): Promise<Float64Array> {
    if (images.length === 0) return new Float64Array(0);
    const embeds = await this.embed(images);
    return normalizeScores(Float64Array.from(embeds, (e) => this.head.score(e)), this.manifest.normalization);
  }

  async close(): Promise<void> {
    await this.vision.close();
  }
}
