/**
 * ONNX Runtime plumbing shared by the model-based scorers: opening a session on a chosen execution
 * provider with errors that say what is missing, and building feeds in the element type and rank
 * each input *declares* (INFRA.md "ONNX Runtime": read inputMetadata, never assume int64 vs int32).
 */

import * as ort from "onnxruntime-node";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";

export type ExecutionProvider = "cpu" | "webgpu" | "cuda";
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ["cpu", "webgpu", "cuda"];

export interface SessionOptions {
  executionProvider?: ExecutionProvider;
  /** ORT intra-op threads (0 = ORT's default). */
  intraOpNumThreads?: number;
  /**
   * Whether ORT's pool threads spin-wait for work after a run (ORT's own default). Default here:
   * false, i.e. `session.intra_op.allow_spinning` / `inter_op` "0", so idle threads sleep instead of
   * burning the cores the service's transport and preprocessing need (issue 21). Measured on the
   * 2-core machine (CLIP fixture ViT, batch 8, 10 runs 20 ms apart, A/B/A/B in one process):
   * spinning used 117-130 ms of CPU for 184-275 ms of runs, not spinning 41-49 ms for 91-129 ms.
   */
  allowSpinning?: boolean;
}

/** Opens `path`; a missing CUDA/WebGPU runtime becomes a FailedPreconditionError naming the fix. */
export async function openSession(path: string, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  const ep = options.executionProvider ?? "cpu";
  if (!EXECUTION_PROVIDERS.includes(ep)) {
    throw new InvalidArgumentError(
      "executionProvider",
      `must be one of ${EXECUTION_PROVIDERS.join(", ")}, got ${ep}`,
    );
  }
  try {
    await Deno.stat(path);
  } catch {
    throw new InvalidArgumentError("model", `ONNX file not found: ${path}`);
  }
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [ep],
    graphOptimizationLevel: "all",
  };
  if (options.intraOpNumThreads) sessionOptions.intraOpNumThreads = options.intraOpNumThreads;
  if (!(options.allowSpinning ?? false)) {
    sessionOptions.extra = {
      session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } },
    };
  }
  try {
    return await ort.InferenceSession.create(path, sessionOptions);
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (ep === "cuda" && /shared library|providers_(shared|cuda)|cannot open shared object/i.test(msg)) {
      throw new FailedPreconditionError(
        `executionProvider "cuda": the CUDA execution provider binaries are not installed ` +
          `(libonnxruntime_providers_cuda.so next to onnxruntime-node's binding; they come from its install ` +
          `script, run with network access and without ONNXRUNTIME_NODE_INSTALL=skip, plus CUDA 12 and cuDNN 9). ` +
          `ORT said: ${msg.split("\n")[0]}`,
      );
    }
    if (ep === "webgpu" && /adapter/i.test(msg)) {
      throw new FailedPreconditionError(
        `executionProvider "webgpu": no WebGPU adapter (needs a Vulkan loader and driver). ORT said: ${
          msg.split("\n")[0]
        }`,
      );
    }
    throw new InvalidArgumentError("model", `cannot load ONNX model ${path}: ${msg}`);
  }
}

export type TensorMetadata = ort.InferenceSession.TensorValueMetadata;

/** The declared metadata of input `name`, or an error listing the inputs the model has. */
export function inputMetadata(session: ort.InferenceSession, name: string, file = "model"): TensorMetadata {
  const m = session.inputMetadata.find((x) => x.name === name);
  if (!m) {
    throw new InvalidArgumentError(
      `${file}.inputs`,
      `model has no input "${name}" (inputs: ${session.inputNames.join(", ")})`,
    );
  }
  if (!m.isTensor) throw new InvalidArgumentError(`${file}.inputs`, `input "${name}" is not a tensor`);
  return m;
}

/** The declared metadata of output `name`, or an error listing the outputs the model has. */
export function outputMetadata(session: ort.InferenceSession, name: string, file = "model"): TensorMetadata {
  const m = session.outputMetadata.find((x) => x.name === name);
  if (!m) {
    throw new InvalidArgumentError(
      `${file}.outputs`,
      `model has no output "${name}" (outputs: ${session.outputNames.join(", ")})`,
    );
  }
  if (!m.isTensor) throw new InvalidArgumentError(`${file}.outputs`, `output "${name}" is not a tensor`);
  return m;
}

/** A fixed (numeric) dimension of a declared shape, or undefined for a symbolic/absent one. */
export function fixedDim(meta: TensorMetadata, axis: number): number | undefined {
  const d = meta.shape[axis];
  return typeof d === "number" && d > 0 ? d : undefined;
}

/**
 * The dims to feed for data we hold as `dims`, fitted to the declared shape: same rank is checked
 * as is; a different rank (a rank-0 scalar, [B] vs [B, 1]) is accepted when the element count fits
 * the declared fixed dims with at most one symbolic dim taking the rest.
 */
function fitShape(meta: TensorMetadata, dims: number[]): number[] {
  const declared = meta.shape;
  const total = dims.reduce((a, b) => a * b, 1);
  if (declared.length === dims.length) return checkFixed(meta, dims);
  if (declared.length === 0) return total === 1 ? [] : dims;
  const symbolic = declared.filter((d) => typeof d !== "number" || d <= 0).length;
  const fixed = declared.reduce<number>((a, d) => (typeof d === "number" && d > 0 ? a * d : a), 1);
  if (symbolic <= 1 && total % fixed === 0 && (symbolic === 1 || total === fixed)) {
    return declared.map((d) => (typeof d === "number" && d > 0 ? d : total / fixed));
  }
  throw new InvalidArgumentError(
    `inputs.${meta.name}`,
    `model declares [${declared.join(", ")}], which does not fit data of shape [${dims.join(", ")}]`,
  );
}

function checkFixed(meta: TensorMetadata, dims: number[]): number[] {
  meta.shape.forEach((d, i) => {
    if (typeof d === "number" && d > 0 && dims[i] !== d) {
      throw new InvalidArgumentError(
        `inputs.${meta.name}`,
        `model declares dimension ${i} = ${d} ([${meta.shape.join(", ")}]), have [${dims.join(", ")}]`,
      );
    }
  });
  return dims;
}

/** An integer tensor (token ids, masks) in the declared element type: int64, int32 or float. */
export function integerTensor(meta: TensorMetadata, values: ArrayLike<number>, dims: number[]): ort.Tensor {
  const shape = fitShape(meta, dims);
  switch (meta.type) {
    case "int64":
      return new ort.Tensor("int64", BigInt64Array.from(Array.from(values, (v) => BigInt(v))), shape);
    case "int32":
      return new ort.Tensor("int32", Int32Array.from(values), shape);
    case "float32":
      return new ort.Tensor("float32", Float32Array.from(values), shape);
    case "bool":
      return new ort.Tensor("bool", Uint8Array.from(values, (v) => (v ? 1 : 0)), shape);
    default:
      throw new InvalidArgumentError(
        `inputs.${meta.name}`,
        `unsupported element type ${meta.type} for integer data`,
      );
  }
}

/** A float tensor in the declared element type (float32; float64 is widened). */
export function floatTensor(meta: TensorMetadata, values: Float32Array, dims: number[]): ort.Tensor {
  const shape = fitShape(meta, dims);
  switch (meta.type) {
    case "float32":
      return new ort.Tensor("float32", values, shape);
    case "float64":
      return new ort.Tensor("float64", Float64Array.from(values), shape);
    default:
      throw new InvalidArgumentError(
        `inputs.${meta.name}`,
        `model declares ${meta.type}; only float32/float64 pixel or embedding inputs are supported (export in float32)`,
      );
  }
}

/** A float output's values as float64, with its dims. */
export function readFloatOutput(t: ort.Tensor, name: string): { data: Float64Array; dims: number[] } {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Float64Array) {
    return { data: Float64Array.from(d), dims: [...t.dims] };
  }
  throw new InvalidArgumentError(`outputs.${name}`, `expected a float output, got ${t.type}`);
}

/** Runs the session asking only for `outputs`, and checks that each came back. */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  outputs: string[],
): Promise<Record<string, ort.Tensor>> {
  const result = await session.run(feeds, outputs);
  for (const o of outputs) {
    if (!result[o]) throw new InvalidArgumentError(`outputs.${o}`, "model returned no such output");
  }
  return result;
}

export { ort };
