/**
 * One ONNX model of a bundle bound to its manifest entry: which input is fed from which source,
 * which output is read. Validates the binding against the session's declared inputs/outputs at
 * load time, so a bundle whose manifest and model disagree fails on load, not on first request.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { FeedSource, ModelSpec } from "../bundle.ts";
import {
  fixedDim,
  floatTensor,
  inputMetadata,
  integerTensor,
  openSession,
  ort,
  outputMetadata,
  runSession,
  type SessionOptions,
  type TensorMetadata,
} from "./onnx_session.ts";

/** Values available to feed, by source. */
export interface FeedValues {
  pixel_values?: { data: Float32Array; dims: number[] };
  input_ids?: { data: number[]; dims: number[] };
  attention_mask?: { data: number[]; dims: number[] };
  image_embeds?: ort.Tensor;
}

export class BoundModel {
  private constructor(
    readonly role: string,
    readonly spec: ModelSpec,
    readonly session: ort.InferenceSession,
    readonly inputs: Map<string, TensorMetadata>,
    readonly output: TensorMetadata,
  ) {}

  static async open(
    role: string,
    spec: ModelSpec,
    resolve: (p: string) => string,
    options: SessionOptions = {},
  ): Promise<BoundModel> {
    const session = await openSession(resolve(spec.file), options);
    try {
      const field = `models.${role}`;
      const inputs = new Map<string, TensorMetadata>();
      for (const name of Object.keys(spec.feeds)) inputs.set(name, inputMetadata(session, name, field));
      for (const name of session.inputNames) {
        if (!inputs.has(name)) {
          throw new InvalidArgumentError(
            `${field}.feeds`,
            `model input "${name}" has no source (feeds name: ${Object.keys(spec.feeds).join(", ")})`,
          );
        }
      }
      const output = outputMetadata(session, spec.output, field);
      return new BoundModel(role, spec, session, inputs, output);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /** Input names fed from `source`. */
  inputsFrom(source: FeedSource): string[] {
    return Object.entries(this.spec.feeds).filter(([, s]) => s === source).map(([n]) => n);
  }

  /** The square image side the model declares on its pixel input ([B, 3, S, S]), if fixed. */
  declaredImageSize(): number | undefined {
    const [name] = this.inputsFrom("pixel_values");
    if (!name) return undefined;
    const meta = this.inputs.get(name)!;
    return fixedDim(meta, 3) ?? fixedDim(meta, 2);
  }

  /** The sequence length the model declares on a token input ([B, L]), if fixed. */
  declaredSequenceLength(): number | undefined {
    for (const src of ["input_ids", "attention_mask"] as const) {
      for (const name of this.inputsFrom(src)) {
        const d = fixedDim(this.inputs.get(name)!, 1);
        if (d !== undefined) return d;
      }
    }
    return undefined;
  }

  /** Runs the model on the values its feeds name; returns the bound output. */
  async run(values: FeedValues): Promise<ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, source] of Object.entries(this.spec.feeds)) {
      const meta = this.inputs.get(name)!;
      switch (source) {
        case "pixel_values": {
          const v = values.pixel_values;
          if (!v) throw new Error(`models.${this.role}: no pixel_values to feed "${name}"`);
          feeds[name] = floatTensor(meta, v.data, v.dims);
          break;
        }
        case "input_ids":
        case "attention_mask": {
          const v = values[source];
          if (!v) throw new Error(`models.${this.role}: no ${source} to feed "${name}"`);
          feeds[name] = integerTensor(meta, v.data, v.dims);
          break;
        }
        case "image_embeds": {
          const v = values.image_embeds;
          if (!v) throw new Error(`models.${this.role}: no image_embeds to feed "${name}"`);
          feeds[name] = v.type === meta.type
            ? v
            : floatTensor(meta, Float32Array.from(v.data as Float32Array), [...v.dims]);
          break;
        }
      }
    }
    const out = await runSession(this.session, feeds, [this.spec.output]);
    return out[this.spec.output];
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
