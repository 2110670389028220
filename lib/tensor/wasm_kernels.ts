/**
 * Kernels the tfjs `wasm` backend (4.22) lacks or runs badly, built from kernels it has, so models
 * can be trained on it at a usable speed:
 *
 * - `Conv2DBackpropFilter` (the weight gradient of conv2d; wasm has none, so any gradient that
 *   reaches a conv weight failed with "kernel not registered"). It is computed as one matrix
 *   product per filter tap: dW[i, j] = X_ij^T dY, where X_ij [N, Cin] is the (padded, strided)
 *   input window the tap (i, j) sees over all N = B*Ho*Wo output positions and dY is [N, Cout].
 *   The input is transposed once to channels-first so every product is a plain [Cin, N] x [N, Cout]
 *   multiply, the case wasm's matmul runs fast (through XNNPACK).
 *
 * - `Conv2DBackpropInput` (the input gradient of conv2d) replaced: wasm's own runs at about a tenth
 *   of its forward conv speed. It is the forward conv (XNNPACK) of the stride-dilated dy with the
 *   180-degree-rotated filter, its in/out channels swapped, padded by (k - 1 - pad).
 * - `BatchMatMul` wrapped: wasm multiplies fast (XNNPACK) only a single [m, k] x [k, n] product
 *   without transposes; transposed or batched products fall to a loop about 7 to 25 times slower.
 *   The wrapper transposes explicitly and splits batches into single products (a batch against one
 *   shared matrix becomes one tall product). Small products keep the original path.
 *
 * - `Slice` replaced: wasm's own first copies the WHOLE input out of the wasm heap
 *   (`backend.readSync`) for every slice, so taking one batch item of a [16, 1024, 1024] tensor
 *   costs 65 ms. The replacement copies only the selected rows, through views of the heap.
 *
 * One fix for the `cpu` backend lives here too (`registerCpuKernelFixes()`): its
 * `ResizeNearestNeighborGrad` is wrong for batch > 1 (checked against the definition: errors as
 * large as the gradient itself for a plain x2 upsampling of a batch of 2; wasm's is right). The
 * replacement sums dy over each source pixel's block for integer scale factors (the UNet/VAE
 * upsamplers) and otherwise accumulates dy into the source pixels with tfjs' forward index rule.
 *
 * Kernels here run tfjs ops inside `tf.tidy` and return the resulting Tensor, which the engine
 * accepts as a kernel output (ops run inside a kernel are not recorded on the gradient tape).
 *
 * Call `await registerWasmKernels()` (idempotent) before running models on wasm; it imports the
 * wasm backend module first, because that import registers wasm's own kernels and would otherwise
 * overwrite the replacements.
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  conv2dBackpropFilterByTaps,
  conv2dBackpropInputByConv,
  resizeNearestNeighborGrad,
} from "./conv_grad_kernels.ts";

export { conv2dBackpropFilterByTaps, conv2dBackpropInputByConv, resizeNearestNeighborGrad };

type Attrs = Record<string, unknown>;

function asTensor(info: tf.TensorInfo): { t: tf.Tensor; owned: boolean } {
  if (info instanceof tf.Tensor) return { t: info, owned: false };
  return { t: tf.engine().makeTensorFromTensorInfo(info), owned: true };
}

/** The parts of tfjs' BackendWasm the Slice replacement uses. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Zero-copy-input slice on the wasm heap: copies each contiguous innermost run of the selection. */
function sliceOnHeap(
  x: tf.TensorInfo,
  begin: number[],
  size: number[],
  backend: WasmBackendLike,
): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const rank = x.shape.length;
  const strides = new Array(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * x.shape[i + 1];
  // Merge trailing dimensions taken whole into one contiguous run.
  let inner = rank - 1;
  while (inner > 0 && begin[inner] === 0 && size[inner] === x.shape[inner]) inner--;
  const run = size.slice(inner).reduce((a, b) => a * b, 1);
  const outer = size.slice(0, inner);
  const count = outer.reduce((a, b) => a * b, 1);
  const index = new Array(inner).fill(0);
  for (let r = 0; r < count; r++) {
    let offset = begin[inner] * strides[inner];
    for (let d = 0; d < inner; d++) offset += (begin[d] + index[d]) * strides[d];
    dst.set(src.subarray(offset, offset + run), r * run);
    for (let d = inner - 1; d >= 0; d--) {
      if (++index[d] < outer[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Products (per batch item) with fewer multiply-adds than this keep wasm's own loop. */
const MIN_SPLIT_MACS = 1 << 15;

type KernelFunc = (
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
) => tf.TensorInfo | tf.TensorInfo[];

function fastBatchMatMul(original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    const batchDims = (s: number[]) => s.slice(0, -2);
    const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
    const batchA = size(batchDims(a.shape));
    const batchB = size(batchDims(b.shape));
    const m = transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
    const k = transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    const simple = !transposeA && !transposeB && batchA === 1 && batchB === 1;
    const broadcastable = batchA === batchB || batchA === 1 || batchB === 1;
    // Per-product size, measured on wasm: below ~2^15 multiply-adds the split's overhead (slices,
    // one kernel call per item) outweighs XNNPACK's speed; above it splitting wins 1.5x to 7x in
    // the UNet (attention scores and probabilities x values at 16x16 and 32x32 latents).
    if (
      simple || !broadcastable || a.dtype !== "float32" || b.dtype !== "float32" || m * k * n < MIN_SPLIT_MACS
    ) {
      return original(args);
    }
    const at = asTensor(a);
    const bt = asTensor(b);
    try {
      return tf.tidy(() => {
        const swapLast = (t: tf.Tensor) => {
          const perm = t.shape.map((_, i) => i);
          perm[perm.length - 1] = perm.length - 2;
          perm[perm.length - 2] = perm.length - 1;
          return tf.transpose(t, perm);
        };
        const A = tf.reshape(transposeA ? swapLast(at.t) : at.t, [batchA, m, k]);
        const B = tf.reshape(transposeB ? swapLast(bt.t) : bt.t, [batchB, k, n]);
        const outBatch = batchDims(a.shape).length >= batchDims(b.shape).length
          ? batchDims(a.shape)
          : batchDims(b.shape);
        let out: tf.Tensor;
        if (batchB === 1) {
          // Every A row block against the same B: one tall product.
          out = tf.matMul(
            tf.reshape(A, [batchA * m, k]) as tf.Tensor2D,
            tf.reshape(B, [k, n]) as tf.Tensor2D,
          );
        } else {
          // tf.slice, not tf.unstack: wasm's Unpack is orders of magnitude slower than Slice.
          const a0 = batchA === 1 ? tf.reshape(A, [m, k]) as tf.Tensor2D : null;
          const products: tf.Tensor[] = [];
          for (let i = 0; i < batchB; i++) {
            const ai = a0 ?? tf.reshape(tf.slice(A, [i, 0, 0], [1, m, k]), [m, k]) as tf.Tensor2D;
            const bi = tf.reshape(tf.slice(B, [i, 0, 0], [1, k, n]), [k, n]) as tf.Tensor2D;
            products.push(tf.matMul(ai, bi));
          }
          out = tf.stack(products);
        }
        return tf.reshape(out, [...outBatch, m, n]);
      }) as unknown as tf.TensorInfo;
    } finally {
      if (at.owned) at.t.dispose();
      if (bt.owned) bt.t.dispose();
    }
  };
}

let registered: Promise<void> | null = null;

/** Registers the missing and faster wasm kernels (idempotent). */
export function registerWasmKernels(): Promise<void> {
  registered ??= import("@tensorflow/tfjs-backend-wasm").then(register);
  return registered;
}

function register(): void {
  const slice = tf.getKernel(tf.Slice, "wasm");
  if (slice) {
    const original = slice.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel(tf.Slice, "wasm");
    tf.registerKernel({
      ...slice,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const { x } = args.inputs as { x: tf.TensorInfo };
        if (x.dtype === "string" || x.shape.length === 0) return original(args);
        const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
        const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
        if (s.some((d) => d === 0)) return original(args);
        return sliceOnHeap(x, b, s, args.backend as WasmBackendLike);
      }) as unknown as tf.KernelFunc,
    });
  }
  const matMul = tf.getKernel(tf.BatchMatMul, "wasm");
  if (matMul) {
    const original = matMul.kernelFunc as unknown as KernelFunc;
    tf.unregisterKernel(tf.BatchMatMul, "wasm");
    tf.registerKernel({ ...matMul, kernelFunc: fastBatchMatMul(original) as unknown as tf.KernelFunc });
  }
  const backpropInput = tf.getKernel(tf.Conv2DBackpropInput, "wasm");
  if (backpropInput) tf.unregisterKernel(tf.Conv2DBackpropInput, "wasm");
  tf.registerKernel({
    kernelName: tf.Conv2DBackpropInput,
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs }) => {
      const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
      const a = attrs as Attrs;
      if (a.dataFormat !== undefined && a.dataFormat !== "NHWC") {
        throw new Error(
          `Conv2DBackpropInput (wasm): dataFormat ${String(a.dataFormat)} is not supported (NHWC only)`,
        );
      }
      const dyt = asTensor(dy);
      const ft = asTensor(filter);
      try {
        return conv2dBackpropInputByConv(
          a.inputShape as [number, number, number, number],
          dyt.t as tf.Tensor4D,
          ft.t as tf.Tensor4D,
          a.strides as [number, number],
          a.pad as "valid",
          a.dimRoundingMode as "floor" | undefined,
        ) as unknown as tf.TensorInfo;
      } finally {
        if (dyt.owned) dyt.t.dispose();
        if (ft.owned) ft.t.dispose();
      }
    },
  });
  if (!tf.getKernel(tf.Conv2DBackpropFilter, "wasm")) {
    tf.registerKernel({
      kernelName: tf.Conv2DBackpropFilter,
      backendName: "wasm",
      kernelFunc: ({ inputs, attrs }) => {
        const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
        const a = attrs as Attrs;
        if (a.dataFormat !== undefined && a.dataFormat !== "NHWC") {
          throw new Error(
            `Conv2DBackpropFilter (wasm): dataFormat ${String(a.dataFormat)} is not supported (NHWC only)`,
          );
        }
        const xt = asTensor(x);
        const dyt = asTensor(dy);
        try {
          return conv2dBackpropFilterByTaps(
            xt.t as tf.Tensor4D,
            dyt.t as tf.Tensor4D,
            a.filterShape as [number, number, number, number],
            a.strides as [number, number],
            a.pad as "valid",
            1,
            a.dimRoundingMode as "floor" | undefined,
          ) as unknown as tf.TensorInfo;
        } finally {
          if (xt.owned) xt.t.dispose();
          if (dyt.owned) dyt.t.dispose();
        }
      },
    });
  }
}

let cpuFixed: Promise<void> | null = null;

/** Replaces the cpu backend's wrong ResizeNearestNeighborGrad (idempotent; see the file comment). */
export function registerCpuKernelFixes(): Promise<void> {
  cpuFixed ??= import("@tensorflow/tfjs-backend-cpu").then(() => {
    if (tf.getKernel(tf.ResizeNearestNeighborGrad, "cpu")) {
      tf.unregisterKernel(tf.ResizeNearestNeighborGrad, "cpu");
    }
    tf.registerKernel({
      kernelName: tf.ResizeNearestNeighborGrad,
      backendName: "cpu",
      kernelFunc: ({ inputs, attrs }) => {
        const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
        const { alignCorners, halfPixelCenters } = attrs as {
          alignCorners: boolean;
          halfPixelCenters: boolean;
        };
        const dyt = asTensor(dy);
        try {
          return resizeNearestNeighborGrad(
            dyt.t as tf.Tensor4D,
            images.shape as [number, number, number, number],
            alignCorners,
            halfPixelCenters,
          ) as unknown as tf.TensorInfo;
        } finally {
          if (dyt.owned) dyt.t.dispose();
        }
      },
    });
  });
  return cpuFixed;
}
