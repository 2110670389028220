/**
 * A tfjs backend that computes shapes and no values: every kernel the models use returns tensors of
 * the right shape and dtype, filled with nothing. It answers "how big is the largest tensor of a
 * full-size SD1.5 step, and what is the peak of live tensor bytes" in seconds on a CPU, for shapes
 * (64x64 latents, 860 M parameters) that no CPU here can run. The numbers are the tensors tfjs holds
 * (tape-saved activations included); a real device adds its allocator's pooling on top.
 *
 * Reading a tensor returns zeros. A kernel missing here fails naming it (add its shape rule).
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  backend_util,
  type BackendTimingInfo,
  type DataId,
  type DataType,
  KernelBackend,
  type KernelConfig,
  type NamedAttrMap,
  registerBackend,
  registerKernel,
  slice_util,
  type TensorInfo,
  util,
} from "@tensorflow/tfjs-core";

export const SHAPE_BACKEND = "shapes";

interface Entry {
  refCount: number;
  bytes: number;
}

/** The largest allocation seen: its bytes, shape and the kernel that made it. */
export interface Allocation {
  bytes: number;
  shape: number[];
  dtype: DataType;
  kernel: string;
}

function bytesOf(shape: readonly number[], dtype: DataType): number {
  const n = util.sizeFromShape(shape as number[]);
  return n * (dtype === "bool" ? 1 : dtype === "complex64" ? 8 : 4);
}

export class ShapeBackend extends KernelBackend {
  readonly #data = new Map<DataId, Entry>();
  liveBytes = 0;
  peakBytes = 0;
  largest: Allocation = { bytes: 0, shape: [], dtype: "float32", kernel: "" };
  /** Allocations above `watchBytes` (shapes and kernels), for the test's message. */
  readonly over: Allocation[] = [];
  watchBytes = Number.POSITIVE_INFINITY;
  kernel = "(upload)";

  /** Restarts the peak and largest-allocation records from the current live bytes. */
  resetPeak(): void {
    this.peakBytes = this.liveBytes;
    this.largest = { bytes: 0, shape: [], dtype: "float32", kernel: "" };
    this.over.length = 0;
  }

  #track(id: DataId, shape: readonly number[], dtype: DataType, refCount: number): void {
    const bytes = bytesOf(shape, dtype);
    this.#data.set(id, { refCount, bytes });
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    const a = { bytes, shape: [...shape], dtype, kernel: this.kernel };
    if (bytes > this.largest.bytes) this.largest = a;
    if (bytes > this.watchBytes && this.over.length < 50) this.over.push(a);
  }

  override write(_values: unknown, shape: number[], dtype: DataType): DataId {
    const id = {};
    this.#track(id, shape, dtype, 1);
    return id;
  }

  override move(dataId: DataId, _values: unknown, shape: number[], dtype: DataType, refCount: number): void {
    this.#track(dataId, shape, dtype, refCount);
  }

  makeOutput(shape: number[], dtype: DataType = "float32"): TensorInfo {
    return { dataId: this.write(null, shape, dtype), shape, dtype };
  }

  /** An output sharing `x`'s data (reshape). */
  share(x: TensorInfo, shape: number[]): TensorInfo {
    this.incRef(x.dataId);
    return { dataId: x.dataId, shape, dtype: x.dtype };
  }

  override incRef(dataId: DataId): void {
    const e = this.#data.get(dataId);
    if (e) e.refCount++;
  }

  override refCount(dataId: DataId): number {
    return this.#data.get(dataId)?.refCount ?? 0;
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const e = this.#data.get(dataId);
    if (!e) return true;
    if (!force && e.refCount > 1) {
      e.refCount--;
      return false;
    }
    this.#data.delete(dataId);
    this.liveBytes -= e.bytes;
    return true;
  }

  override readSync(dataId: DataId): Float32Array {
    const e = this.#data.get(dataId);
    return new Float32Array((e?.bytes ?? 0) / 4);
  }

  override read(dataId: DataId): Promise<Float32Array> {
    return Promise.resolve(this.readSync(dataId));
  }

  override numDataIds(): number {
    return this.#data.size;
  }

  override memory(): { unreliable: boolean } {
    return { unreliable: false };
  }

  override timerAvailable(): boolean {
    return false;
  }

  override async time(f: () => void): Promise<BackendTimingInfo> {
    f();
    return await Promise.resolve({ kernelMs: 0 });
  }

  override floatPrecision(): 16 | 32 {
    return 32;
  }

  override epsilon(): number {
    return 1e-7;
  }

  override dispose(): void {
    this.#data.clear();
    this.liveBytes = 0;
  }
}

type Rule = (
  inputs: TensorInfo[],
  attrs: NamedAttrMap,
  b: ShapeBackend,
  named: Record<string, TensorInfo>,
) => TensorInfo | TensorInfo[];

const same = (dtype?: DataType): Rule => (inputs, _a, b) =>
  b.makeOutput([...inputs[0].shape], dtype ?? inputs[0].dtype);
const broadcast = (dtype?: DataType): Rule => (inputs, _a, b) =>
  b.makeOutput(
    backend_util.assertAndGetBroadcastShape(inputs[0].shape, inputs[1].shape),
    dtype ?? inputs[0].dtype,
  );

function reduce(dtype?: DataType): Rule {
  return ([x], attrs, b) => {
    const axes = util.parseAxisParam(attrs.axis as number | number[], x.shape);
    const [outShape] = backend_util.computeOutAndReduceShapes(x.shape, axes);
    const shape = attrs.keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    return b.makeOutput(shape, dtype ?? x.dtype);
  };
}

const matMul: Rule = ([a, bt], attrs, b) => {
  const ta = Boolean(attrs.transposeA);
  const tb = Boolean(attrs.transposeB);
  const m = a.shape[a.shape.length - (ta ? 1 : 2)];
  const n = bt.shape[bt.shape.length - (tb ? 2 : 1)];
  const outer = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), bt.shape.slice(0, -2));
  return b.makeOutput([...outer, m, n], a.dtype);
};

const conv2d: Rule = ([x, filter], attrs, b) => {
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides as [number, number] | number,
    attrs.dilations as [number, number] | number,
    attrs.pad as "same" | "valid" | number,
    attrs.dimRoundingMode as "floor" | "round" | "ceil" | undefined,
    false,
    (attrs.dataFormat as "NHWC" | "NCHW" | undefined) === "NCHW" ? "channelsFirst" : "channelsLast",
  );
  return b.makeOutput(info.outShape, x.dtype);
};

const RULES: Record<string, Rule> = {
  BatchMatMul: matMul,
  _FusedMatMul: matMul,
  Conv2D: conv2d,
  FusedConv2D: conv2d,
  Conv2DBackpropInput: ([dy], attrs, b) => b.makeOutput([...(attrs.inputShape as number[])], dy.dtype),
  Conv2DBackpropFilter: ([x], attrs, b) => b.makeOutput([...(attrs.filterShape as number[])], x.dtype),
  Reshape: ([x], attrs, b) =>
    b.share(x, util.inferFromImplicitShape(attrs.shape as number[], util.sizeFromShape(x.shape))),
  Identity: ([x], _a, b) => b.share(x, [...x.shape]),
  Transpose: ([x], attrs, b) => b.makeOutput((attrs.perm as number[]).map((p) => x.shape[p]), x.dtype),
  Concat: (inputs, attrs, b) => {
    const axis = util.parseAxisParam(attrs.axis as number, inputs[0].shape)[0];
    return b.makeOutput(backend_util.computeOutShape(inputs.map((t) => t.shape), axis), inputs[0].dtype);
  },
  SplitV: ([x], attrs, b) => {
    const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
    const sizes = backend_util.prepareSplitSize(
      x as tf.Tensor,
      attrs.numOrSizeSplits as number[] | number,
      axis,
    );
    return sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return b.makeOutput(shape, x.dtype);
    });
  },
  Slice: ([x], attrs, b) => {
    const [, size] = slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
    return b.makeOutput(size, x.dtype);
  },
  PadV2: ([x], attrs, b) =>
    b.makeOutput(
      x.shape.map((d, i) => d + (attrs.paddings as number[][])[i][0] + (attrs.paddings as number[][])[i][1]),
      x.dtype,
    ),
  ResizeNearestNeighbor: ([x], attrs, b) => {
    const [h, w] = attrs.size as [number, number];
    return b.makeOutput([x.shape[0], h, w, x.shape[3]], x.dtype);
  },
  ResizeNearestNeighborGrad: (_i, _a, b, named) => b.makeOutput([...named.images.shape], named.images.dtype),
  Fill: (_i, attrs, b) =>
    b.makeOutput([...(attrs.shape as number[])], (attrs.dtype as DataType) ?? "float32"),
  Tile: ([x], attrs, b) => b.makeOutput(x.shape.map((d, i) => d * (attrs.reps as number[])[i]), x.dtype),
  BroadcastTo: ([x], attrs, b) => b.makeOutput([...(attrs.shape as number[])], x.dtype),
  AddN: (inputs, _a, b) => b.makeOutput([...inputs[0].shape], inputs[0].dtype),
  Cast: ([x], attrs, b) => b.makeOutput([...x.shape], attrs.dtype as DataType),
  Select: ([, t, e], _a, b) =>
    b.makeOutput(backend_util.assertAndGetBroadcastShape(t.shape, e.shape), t.dtype),
  Sum: reduce(),
  Mean: reduce(),
  Max: reduce(),
  Min: reduce(),
  Prod: reduce(),
  All: reduce("bool"),
  Any: reduce("bool"),
};
for (
  const k of [
    "Abs",
    "Ceil",
    "Cos",
    "Elu",
    "Erf",
    "Exp",
    "Expm1",
    "Floor",
    "LeakyRelu",
    "Log",
    "Log1p",
    "Neg",
    "Reciprocal",
    "Relu",
    "Relu6",
    "Round",
    "Rsqrt",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softplus",
    "Sqrt",
    "Square",
    "Step",
    "Tanh",
    "ZerosLike",
    "OnesLike",
    "Softmax",
    "LogSoftmax",
    "ClipByValue",
  ]
) RULES[k] = same();
RULES.IsNan = same("bool");
RULES.LogicalNot = same("bool");
for (
  const k of [
    "Add",
    "Sub",
    "Multiply",
    "RealDiv",
    "Pow",
    "Maximum",
    "Minimum",
    "SquaredDifference",
    "FloorDiv",
    "Mod",
  ]
) {
  RULES[k] = broadcast();
}
for (
  const k of ["Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual", "LogicalAnd", "LogicalOr"]
) {
  RULES[k] = broadcast("bool");
}

let registered = false;

/** Registers the backend (idempotent); select it with `tf.setBackend(SHAPE_BACKEND)`. */
export function registerShapeBackend(): void {
  if (registered) return;
  registered = true;
  registerBackend(SHAPE_BACKEND, () => new ShapeBackend(), 0);
  for (const [kernelName, rule] of Object.entries(RULES)) {
    const config: KernelConfig = {
      kernelName,
      backendName: SHAPE_BACKEND,
      kernelFunc: ({ inputs, attrs, backend }) => {
        const b = backend as ShapeBackend;
        b.kernel = kernelName;
        const named = inputs as unknown as Record<string, TensorInfo>;
        try {
          return rule(Object.values(named), attrs ?? {}, b, named);
        } finally {
          b.kernel = "(upload)";
        }
      },
    };
    registerKernel(config);
  }
}

/** Selects the shape backend and returns it. */
export async function useShapeBackend(): Promise<ShapeBackend> {
  registerShapeBackend();
  if (!(await tf.setBackend(SHAPE_BACKEND))) throw new Error("shape backend: tfjs could not select it");
  return tf.backend() as unknown as ShapeBackend;
}
