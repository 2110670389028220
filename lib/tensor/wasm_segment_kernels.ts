/**
 * `UnsortedSegmentSum` for the tfjs `wasm` backend, which lacks it. It is the gradient of `gather`
 * (an embedding lookup), so training a text encoder's token embedding needs it. Built from kernels
 * wasm has: out[s] = sum over i with ids[i] = s of x[i] = oneHot(ids)^T x, one matrix product.
 */
import * as tf from "@tensorflow/tfjs-core";

export function unsortedSegmentSumByMatMul(x: tf.Tensor, ids: tf.Tensor, numSegments: number): tf.Tensor {
  return tf.tidy(() => {
    const n = ids.size;
    const rest = x.shape.slice(ids.rank);
    const cols = rest.reduce((a, b) => a * b, 1);
    const flat = tf.reshape(x, [n, cols]);
    const oneHot = tf.cast(tf.oneHot(tf.cast(tf.reshape(ids, [n]), "int32"), numSegments), x.dtype);
    return tf.reshape(tf.matMul(oneHot, flat, true, false), [numSegments, ...rest]);
  });
}

let registered = false;

/** Registers the kernel for wasm once (after the wasm backend module has registered its own). */
export function registerWasmSegmentKernels(): void {
  if (registered || tf.getKernel(tf.UnsortedSegmentSum, "wasm")) return;
  registered = true;
  tf.registerKernel({
    kernelName: tf.UnsortedSegmentSum,
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const engine = tf.engine();
      const xt = x instanceof tf.Tensor ? x : engine.makeTensorFromTensorInfo(x);
      const it = segmentIds instanceof tf.Tensor ? segmentIds : engine.makeTensorFromTensorInfo(segmentIds);
      try {
        return unsortedSegmentSumByMatMul(
          xt,
          it,
          (attrs as { numSegments: number }).numSegments,
        ) as unknown as tf.TensorInfo;
      } finally {
        if (xt !== x) xt.dispose();
        if (it !== segmentIds) it.dispose();
      }
    },
  });
}
