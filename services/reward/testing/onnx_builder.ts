/**
 * A minimal ONNX ModelProto writer for tests: tiny models with the same input/output names, element
 * types and ranks as the real exports, whose outputs a test can compute by hand. Encodes only the
 * onnx.proto fields needed (field numbers from onnx/onnx.proto) with @bufbuild/protobuf's
 * BinaryWriter; IR version 8, default-domain opset 17 (ORT 1.30 runs both).
 *
 * ```ts
 * const g = new OnnxGraphBuilder("fake");
 * g.input("pixel_values", "float32", ["batch", 3, 224, 224]);
 * g.initializer("w", "float32", [3, 1], Float32Array.of(1, 2, 3));
 * g.node("ReduceMean", ["pixel_values"], ["m"], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
 * g.node("MatMul", ["m", "w"], ["score"]);
 * g.output("score", "float32", ["batch", 1]);
 * await Deno.writeFile("model.onnx", g.build());
 * ```
 *
 * `buildLinearImageScorerOnnx` is a ready-made image scorer for registry/batcher tests (load, swap,
 * warm-up): score = bias + sum_c weights[c] * mean(pixel_values[:, c]).
 */

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export type OnnxElemType = "float32" | "int64" | "int32" | "bool" | "float64";

const DATA_TYPE: Record<OnnxElemType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };

export type AttrValue =
  | { i: number }
  | { f: number }
  | { s: string }
  | { ints: number[] }
  | { floats: number[] };

interface Tensor {
  name: string;
  type: OnnxElemType;
  dims: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
}

interface ValueInfo {
  name: string;
  type: OnnxElemType;
  dims: (number | string)[];
}

interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

function writeTensor(w: BinaryWriter, t: Tensor): void {
  for (const d of t.dims) w.tag(1, WireType.Varint).int64(d);
  w.tag(2, WireType.Varint).int32(DATA_TYPE[t.type]);
  w.tag(8, WireType.LengthDelimited).string(t.name);
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  w.tag(9, WireType.LengthDelimited).bytes(bytes.slice()); // raw_data, little-endian
}

function writeValueInfo(w: BinaryWriter, v: ValueInfo): void {
  w.tag(1, WireType.LengthDelimited).string(v.name);
  w.tag(2, WireType.LengthDelimited).fork(); // TypeProto
  w.tag(1, WireType.LengthDelimited).fork(); // TypeProto.Tensor
  w.tag(1, WireType.Varint).int32(DATA_TYPE[v.type]);
  w.tag(2, WireType.LengthDelimited).fork(); // TensorShapeProto
  for (const d of v.dims) {
    w.tag(1, WireType.LengthDelimited).fork(); // Dimension
    if (typeof d === "number") w.tag(1, WireType.Varint).int64(d);
    else w.tag(2, WireType.LengthDelimited).string(d);
    w.join();
  }
  w.join().join().join();
}

function writeAttribute(w: BinaryWriter, name: string, a: AttrValue): void {
  w.tag(1, WireType.LengthDelimited).string(name);
  if ("i" in a) w.tag(3, WireType.Varint).int64(a.i).tag(20, WireType.Varint).int32(2);
  else if ("f" in a) w.tag(2, WireType.Bit32).float(a.f).tag(20, WireType.Varint).int32(1);
  else if ("s" in a) {
    w.tag(4, WireType.LengthDelimited).bytes(new TextEncoder().encode(a.s)).tag(20, WireType.Varint).int32(3);
  } else if ("ints" in a) {
    for (const v of a.ints) w.tag(8, WireType.Varint).int64(v);
    w.tag(20, WireType.Varint).int32(7);
  } else {
    for (const v of a.floats) w.tag(7, WireType.Bit32).float(v);
    w.tag(20, WireType.Varint).int32(6);
  }
}

export class OnnxGraphBuilder {
  readonly #inputs: ValueInfo[] = [];
  readonly #outputs: ValueInfo[] = [];
  readonly #initializers: Tensor[] = [];
  readonly #nodes: Node[] = [];

  constructor(readonly name = "graph", readonly opset = 17) {}

  /** A graph input; string dims are symbolic (e.g. "batch"). */
  input(name: string, type: OnnxElemType, dims: (number | string)[]): this {
    this.#inputs.push({ name, type, dims });
    return this;
  }

  output(name: string, type: OnnxElemType, dims: (number | string)[]): this {
    this.#outputs.push({ name, type, dims });
    return this;
  }

  /** A constant weight (row-major data in the typed array of `type`). */
  initializer(name: string, type: OnnxElemType, dims: number[], data: Tensor["data"]): this {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`initializer ${name}: ${data.length} values for dims [${dims}]`);
    this.#initializers.push({ name, type, dims, data });
    return this;
  }

  node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}): this {
    this.#nodes.push({ opType, inputs, outputs, attrs });
    return this;
  }

  /** Serialized ModelProto. */
  build(): Uint8Array {
    const w = new BinaryWriter();
    w.tag(1, WireType.Varint).int64(8); // ir_version
    w.tag(2, WireType.LengthDelimited).string("rdpo-onnx-builder"); // producer_name
    w.tag(7, WireType.LengthDelimited).fork(); // graph
    this.#nodes.forEach((n, k) => {
      w.tag(1, WireType.LengthDelimited).fork();
      for (const i of n.inputs) w.tag(1, WireType.LengthDelimited).string(i);
      for (const o of n.outputs) w.tag(2, WireType.LengthDelimited).string(o);
      w.tag(3, WireType.LengthDelimited).string(`${n.opType}_${k}`);
      w.tag(4, WireType.LengthDelimited).string(n.opType);
      for (const [name, a] of Object.entries(n.attrs)) {
        w.tag(5, WireType.LengthDelimited).fork();
        writeAttribute(w, name, a);
        w.join();
      }
      w.join();
    });
    w.tag(2, WireType.LengthDelimited).string(this.name);
    for (const t of this.#initializers) {
      w.tag(5, WireType.LengthDelimited).fork();
      writeTensor(w, t);
      w.join();
    }
    for (const v of this.#inputs) {
      w.tag(11, WireType.LengthDelimited).fork();
      writeValueInfo(w, v);
      w.join();
    }
    for (const v of this.#outputs) {
      w.tag(12, WireType.LengthDelimited).fork();
      writeValueInfo(w, v);
      w.join();
    }
    w.join();
    w.tag(8, WireType.LengthDelimited).fork(); // opset_import
    w.tag(1, WireType.LengthDelimited).string("");
    w.tag(2, WireType.Varint).int64(this.opset);
    w.join();
    return w.finish();
  }
}

export interface LinearImageScorerOptions {
  /** Per-channel weights on the channel means of the (normalized) pixel values. */
  weights: [number, number, number];
  bias?: number;
  /** Square input side (declared as a fixed dim). Default 224. */
  size?: number;
  inputName?: string;
  outputName?: string;
  /** Output shape [B] (rank 1) or [B, 1] (rank 2, default). */
  outputRank?: 1 | 2;
}

/**
 * An image scorer model: `pixel_values` float32 [batch, 3, size, size] ->
 * `score` float32 [batch, 1] (or [batch]) = bias + sum_c weights[c] * mean over HxW of channel c.
 * Use with a manifest of kind "onnx" (BUNDLES.md) or compute expectations with
 * `linearImageScore(pixelValuesOfOneImage, options)`.
 */
export function buildLinearImageScorerOnnx(options: LinearImageScorerOptions): Uint8Array {
  const size = options.size ?? 224;
  const input = options.inputName ?? "pixel_values";
  const output = options.outputName ?? "score";
  const g = new OnnxGraphBuilder("linear_image_scorer");
  g.input(input, "float32", ["batch", 3, size, size]);
  g.initializer("w", "float32", [3, 1], Float32Array.from(options.weights));
  g.initializer("b", "float32", [1], Float32Array.of(options.bias ?? 0));
  g.node("ReduceMean", [input], ["channel_mean"], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
  g.node("MatMul", ["channel_mean", "w"], ["projected"]);
  if ((options.outputRank ?? 2) === 2) {
    g.node("Add", ["projected", "b"], [output]);
    g.output(output, "float32", ["batch", 1]);
  } else {
    g.node("Add", ["projected", "b"], ["score_2d"]);
    g.initializer("shape_b", "int64", [1], BigInt64Array.of(-1n));
    g.node("Reshape", ["score_2d", "shape_b"], [output]);
    g.output(output, "float32", ["batch"]);
  }
  return g.build();
}

/** The score `buildLinearImageScorerOnnx` computes for one image's CHW pixel values, in float64. */
export function linearImageScore(chw: ArrayLike<number>, options: LinearImageScorerOptions): number {
  const plane = chw.length / 3;
  let s = options.bias ?? 0;
  for (let c = 0; c < 3; c++) {
    let sum = 0;
    for (let i = 0; i < plane; i++) sum += chw[c * plane + i];
    s += options.weights[c] * (sum / plane);
  }
  return s;
}
