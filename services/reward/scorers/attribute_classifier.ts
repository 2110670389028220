/**
 * The `attribute_classifier` kind (BUNDLES.md): an image classifier with one softmax head per
 * attribute (shape, colour, ...), whose ONNX model outputs the per-head log-probabilities
 * concatenated, [B, sum of classes]. The score of (image, prompt) is the log-probability of the
 * attributes the prompt asks for: sum over heads of log p(class | image) for the class whose pattern
 * the prompt matches (heads the prompt does not mention add nothing; a prompt asking for nothing
 * scores 0). This is the `prompt_fidelity` reward of the embedded world (issue 20).
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import type { AttributeSpec, BundleManifest, CreateScorerOptions } from "../bundle.ts";
import type { Scorer } from "../scorer.ts";
import { BoundModel } from "./bound_model.ts";
import { checkImageSize } from "./checks.ts";
import { checkPrompts } from "./inputs.ts";
import { pooledPixelValues } from "../preprocess/pool.ts";
import { fixedDim, readFloatOutput } from "./onnx_session.ts";

/** Per head of `attributes`, the class index the prompt asks for, or -1. Throws on two classes of one head. */
export function askedClasses(attributes: AttributeSpec[], prompt: string, field = "prompt"): number[] {
  const text = prompt.toLowerCase().trim();
  return attributes.map((a) => {
    const hits = a.patterns.flatMap((p, k) => (new RegExp(p).test(text) ? [k] : []));
    if (hits.length > 1) {
      throw new InvalidArgumentError(
        field,
        `asks for ${a.name} ${hits.map((k) => a.classes[k]).join(" and ")} at once: ${
          JSON.stringify(prompt)
        }`,
      );
    }
    return hits.length ? hits[0] : -1;
  });
}

export class AttributeClassifierScorer implements Scorer {
  readonly kind = "attribute_classifier";
  readonly needsPrompts = true;
  readonly #offsets: number[];
  readonly #width: number;

  private constructor(readonly manifest: BundleManifest, readonly model: BoundModel) {
    this.#offsets = [];
    let o = 0;
    for (const a of manifest.attributes!) {
      this.#offsets.push(o);
      o += a.classes.length;
    }
    this.#width = o;
  }

  static async create(
    manifest: BundleManifest,
    resolve: (p: string) => string,
    options: CreateScorerOptions = {},
  ): Promise<AttributeClassifierScorer> {
    const model = await BoundModel.open("model", manifest.models.model, resolve, options);
    try {
      checkImageSize(model, manifest.preprocessing!);
      const scorer = new AttributeClassifierScorer(manifest, model);
      const declared = fixedDim(model.output, 1);
      if (declared !== undefined && declared !== scorer.#width) {
        throw new InvalidArgumentError(
          "attributes",
          `name ${scorer.#width} classes but models.model's output ${model.spec.output} has ${declared}`,
        );
      }
      return scorer;
    } catch (e) {
      await model.close();
      throw e;
    }
  }

  async score(images: RgbImage[], prompts: string[]): Promise<Float64Array> {
    checkPrompts(images, prompts, true);
    const attributes = this.manifest.attributes!;
    // Parse every prompt before running the model: a bad prompt fails the request cheaply.
    const asked = prompts.map((p, i) => askedClasses(attributes, p, `prompts[${i}]`));
    if (images.length === 0) return new Float64Array(0);
    const size = this.manifest.preprocessing!.size;
    const out = readFloatOutput(
      await this.model.run({
        pixel_values: {
          data: await pooledPixelValues(this.manifest.preprocessing!, images),
          dims: [images.length, 3, size, size],
        },
      }),
      this.model.spec.output,
    );
    if (out.data.length !== images.length * this.#width) {
      throw new InvalidArgumentError(
        "attributes",
        `expect a [${images.length}, ${this.#width}] output, the model gave [${out.dims}]`,
      );
    }
    return Float64Array.from(
      asked,
      (classes, i) =>
        classes.reduce((s, k, h) => (k < 0 ? s : s + out.data[i * this.#width + this.#offsets[h] + k]), 0),
    );
  }

  async close(): Promise<void> {
    await this.model.close();
  }
}
