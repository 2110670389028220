/**
 * The `attribute_classifier` kind (BUNDLES.md): an image classifier with one softmax head per
 * attribute (shape, colour, ...), whose ONNX model outputs the per-head log-probabilities
 * concatenated, [B, sum of classes]. The score of (image, prompt) is the log-probability of the
 * attributes the prompt asks for: sum over heads of log p(class | image) for the class whose pattern
 * the prompt matches (heads the prompt does not mention add nothing; a prompt asking for nothing
 * scores 0). A head with `presence` (the object heads: shape, colour, ...) is conditional on an object
 * being visible, so its term is the joint log p(visible, class) = log(1 - p(absent)) + log p(class |
 * image): an image that erased the object pays log(1 - p(absent)) once per object attribute asked,
 * instead of scoring those heads' near-uniform guess on an empty image (issue 20: the tuned models
 * erased objects whose colour was wrong, since "no object" cost less than a wrong colour). This is
 * the `prompt_fidelity` reward of the embedded world.
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

/** Where each head's classes sit in a `log_probs` row, and where its presence class sits. */
export interface HeadLayout {
  offset: number;
  size: number;
  /** For a conditional head: the presence head's offset, size and absent class index. */
  presence?: { offset: number; size: number; absent: number };
}

export function headLayouts(attributes: AttributeSpec[]): HeadLayout[] {
  const offsets: number[] = [];
  let o = 0;
  for (const a of attributes) {
    offsets.push(o);
    o += a.classes.length;
  }
  return attributes.map((a, h) => {
    const layout: HeadLayout = { offset: offsets[h], size: a.classes.length };
    if (!a.presence) return layout;
    const p = attributes.findIndex((b) => b.name === a.presence!.head);
    const absent = attributes[p].classes.indexOf(a.presence.absent);
    return { ...layout, presence: { offset: offsets[p], size: attributes[p].classes.length, absent } };
  });
}

/** log(1 - p(absent)) as the log-sum-exp of the other classes' log-probabilities (no cancellation). */
function logPresent(row: ArrayLike<number>, p: NonNullable<HeadLayout["presence"]>): number {
  let max = -Infinity;
  for (let c = 0; c < p.size; c++) if (c !== p.absent) max = Math.max(max, row[p.offset + c]);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let c = 0; c < p.size; c++) if (c !== p.absent) sum += Math.exp(row[p.offset + c] - max);
  return max + Math.log(sum);
}

/** The score of one image: the asked classes' log-probabilities (joint with presence where a head has one). */
export function attributeScore(layouts: HeadLayout[], asked: number[], row: ArrayLike<number>): number {
  let score = 0;
  asked.forEach((k, h) => {
    if (k < 0) return;
    const l = layouts[h];
    score += row[l.offset + k] + (l.presence ? logPresent(row, l.presence) : 0);
  });
  return score;
}

export class AttributeClassifierScorer implements Scorer {
  readonly kind = "attribute_classifier";
  readonly needsPrompts = true;
  readonly #layouts: HeadLayout[];
  readonly #width: number;

  private constructor(readonly manifest: BundleManifest, readonly model: BoundModel) {
    this.#layouts = headLayouts(manifest.attributes!);
    this.#width = manifest.attributes!.reduce((n, a) => n + a.classes.length, 0);
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
    const w = this.#width;
    return Float64Array.from(
      asked,
      (classes, i) => attributeScore(this.#layouts, classes, out.data.subarray(i * w, (i + 1) * w)),
    );
  }

  async close(): Promise<void> {
    await this.model.close();
  }
}
