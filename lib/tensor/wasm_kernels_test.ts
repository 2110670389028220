/**
 * The wasm kernels against the cpu backend (tfjs' reference implementation): gradients of conv2d
 * with respect to the filter (Conv2DBackpropFilter, absent from wasm) and the input, and matrix
 * products in every transpose/batch form.
 */
import * as tf from "@tensorflow/tfjs-core";
import { assertAllClose, assertEquals } from "../testing/assert.ts";
import { initBackend } from "./backend.ts";
import {
  conv2dBackpropFilterByTaps,
  conv2dBackpropInputByConv,
  registerCpuKernelFixes,
  registerWasmKernels,
} from "./wasm_kernels.ts";

await registerWasmKernels();
await registerCpuKernelFixes();
// tfjs-core's bundle registers no gradient functions; the union package does.
await import("@tensorflow/tfjs");

type Pad = "valid" | "same" | number;
const CASES: {
  name: string;
  x: [number, number, number, number];
  k: number;
  cout: number;
  stride: number;
  pad: Pad;
}[] = [
  { name: "3x3 stride 1 pad 1", x: [2, 9, 7, 3], k: 3, cout: 5, stride: 1, pad: 1 },
  { name: "3x3 stride 2 pad 1 (odd size)", x: [2, 9, 7, 3], k: 3, cout: 5, stride: 2, pad: 1 },
  { name: "3x3 stride 2 pad 1 (even size)", x: [1, 8, 8, 4], k: 3, cout: 2, stride: 2, pad: 1 },
  { name: "3x3 stride 2 same", x: [1, 8, 6, 3], k: 3, cout: 4, stride: 2, pad: "same" },
  { name: "3x3 stride 2 valid", x: [2, 9, 9, 3], k: 3, cout: 4, stride: 2, pad: "valid" },
  { name: "1x1 valid", x: [2, 5, 5, 6], k: 1, cout: 3, stride: 1, pad: "valid" },
  { name: "5x5 stride 1 pad 2", x: [1, 7, 6, 2], k: 5, cout: 3, stride: 1, pad: 2 },
];

function wave(n: number, f: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * f + 0.3));
}

/** Gradients of sum(conv2d(x, w) * weights) wrt x and w, on `backend`. */
async function convGrads(backend: "wasm" | "cpu", c: (typeof CASES)[number]) {
  await initBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(wave(c.x.reduce((a, b) => a * b), 0.7), c.x);
    const w = tf.tensor4d(wave(c.k * c.k * c.x[3] * c.cout, 1.3), [c.k, c.k, c.x[3], c.cout]);
    const f = (xx: tf.Tensor, ww: tf.Tensor) => {
      const y = tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, c.stride, c.pad);
      return tf.sum(tf.mul(y, tf.tensor(wave(y.size, 0.19), y.shape)));
    };
    const [dx, dw] = tf.grads(f)([x, w]);
    return { dx: dx.dataSync().slice(), dw: dw.dataSync().slice() };
  });
}

for (const c of CASES) {
  Deno.test(`wasm conv2d gradients match cpu: ${c.name}`, async () => {
    const wasm = await convGrads("wasm", c);
    const cpu = await convGrads("cpu", c);
    assertAllClose(wasm.dw, cpu.dw, { rtol: 1e-5, label: "dW (Conv2DBackpropFilter)" });
    assertAllClose(wasm.dx, cpu.dx, { rtol: 1e-5, label: "dx (Conv2DBackpropInput)" });
  });
}

Deno.test("conv2dBackpropFilterByTaps / ByConv agree with cpu's kernels directly", async () => {
  await initBackend("cpu");
  const c = CASES[1];
  tf.tidy(() => {
    const x = tf.tensor4d(wave(c.x.reduce((a, b) => a * b), 0.7), c.x);
    const w = tf.tensor4d(wave(c.k * c.k * c.x[3] * c.cout, 1.3), [c.k, c.k, c.x[3], c.cout]);
    const y = tf.conv2d(x, w, c.stride, c.pad);
    const dy = tf.tensor4d(wave(y.size, 0.23), y.shape as [number, number, number, number]);
    const filterShape = w.shape as [number, number, number, number];
    const attrs = { strides: c.stride, pad: c.pad, dataFormat: "NHWC", filterShape, inputShape: c.x };
    const refW = tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs) as tf.Tensor;
    const refX = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter: w }, attrs) as tf.Tensor;
    const ours = conv2dBackpropFilterByTaps(x, dy, filterShape, c.stride, c.pad);
    const oursX = conv2dBackpropInputByConv(c.x, dy, w, c.stride, c.pad);
    assertEquals(ours.shape, refW.shape);
    assertAllClose(ours.dataSync(), refW.dataSync(), { rtol: 1e-5, label: "dW" });
    assertAllClose(oursX.dataSync(), refX.dataSync(), { rtol: 1e-5, label: "dx" });
  });
});

const MATMULS: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [
  { a: [96, 80], b: [80, 72], ta: false, tb: false },
  { a: [96, 80], b: [72, 80], ta: false, tb: true },
  { a: [80, 96], b: [80, 72], ta: true, tb: false },
  { a: [80, 96], b: [72, 80], ta: true, tb: true },
  { a: [6, 64, 40], b: [6, 40, 48], ta: false, tb: false },
  { a: [6, 64, 40], b: [6, 48, 40], ta: false, tb: true },
  { a: [6, 40, 64], b: [6, 40, 48], ta: true, tb: false },
  { a: [6, 64, 40], b: [40, 48], ta: false, tb: false },
  { a: [64, 40], b: [6, 40, 48], ta: false, tb: false },
  { a: [2, 3, 64, 40], b: [2, 3, 40, 48], ta: false, tb: false },
  { a: [3, 4, 5], b: [3, 5, 2], ta: false, tb: false }, // small: the original path
];

for (const m of MATMULS) {
  Deno.test(`wasm matMul ${JSON.stringify(m.a)} x ${JSON.stringify(m.b)} transpose ${m.ta}/${m.tb} matches cpu`, async () => {
    const run = async (backend: "wasm" | "cpu") => {
      await initBackend(backend);
      return tf.tidy(() => {
        const a = tf.tensor(wave(m.a.reduce((x, y) => x * y), 0.31), m.a);
        const b = tf.tensor(wave(m.b.reduce((x, y) => x * y), 0.53), m.b);
        const r = tf.matMul(a, b, m.ta, m.tb);
        return { shape: r.shape, data: r.dataSync().slice() };
      });
    };
    const wasm = await run("wasm");
    const cpu = await run("cpu");
    assertEquals(wasm.shape, cpu.shape);
    assertAllClose(wasm.data, cpu.data, { rtol: 1e-5, label: "product" });
  });
}

/** d/dx sum(resizeNearest(x, [oh, ow]) * w) from the definition: w summed into each source pixel. */
function resizeGradByDefinition(shape: number[], oh: number, ow: number, w: Float32Array): Float32Array {
  const [b, h, wd, c] = shape;
  const out = new Float32Array(b * h * wd * c);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        const sy = Math.min(h - 1, Math.floor(y * h / oh));
        const sx = Math.min(wd - 1, Math.floor(x * wd / ow));
        for (let ch = 0; ch < c; ch++) {
          out[((n * h + sy) * wd + sx) * c + ch] += w[((n * oh + y) * ow + x) * c + ch];
        }
      }
    }
  }
  return out;
}

for (
  const [shape, oh, ow] of [[[2, 4, 3, 5], 8, 6], [[2, 5, 3, 2], 9, 7], [[1, 3, 3, 1], 6, 6]] as [
    [number, number, number, number],
    number,
    number,
  ][]
) {
  for (const backend of ["wasm", "cpu"] as const) {
    Deno.test(`resizeNearestNeighbor gradient ${JSON.stringify(shape)} -> ${oh}x${ow} is right on ${backend}`, async () => {
      await initBackend(backend);
      const w = wave(shape[0] * oh * ow * shape[3], 0.11);
      const g = tf.tidy(() => {
        const x = tf.tensor4d(wave(shape.reduce((a, b) => a * b), 0.37), [...shape]);
        const weights = tf.tensor4d(w, [shape[0], oh, ow, shape[3]]);
        return tf.grad((xx: tf.Tensor) =>
          tf.sum(tf.mul(tf.image.resizeNearestNeighbor(xx as tf.Tensor4D, [oh, ow]), weights))
        )(x);
      });
      assertAllClose(g.dataSync(), resizeGradByDefinition([...shape], oh, ow, w), {
        atol: 1e-5,
        label: "d resize",
      });
      g.dispose();
    });
  }
}

const SLICES: { shape: number[]; begin: number[]; size: number[]; dtype: "float32" | "int32" }[] = [
  { shape: [10], begin: [3], size: [4], dtype: "float32" },
  { shape: [4, 6], begin: [1, 2], size: [2, 3], dtype: "float32" },
  { shape: [4, 6], begin: [1, 0], size: [2, 6], dtype: "int32" },
  { shape: [3, 4, 5, 6], begin: [1, 1, 2, 0], size: [2, 2, 3, 6], dtype: "float32" },
  { shape: [3, 4, 5, 6], begin: [0, 1, 2, 3], size: [3, 3, 3, 2], dtype: "float32" },
  { shape: [2, 3, 4, 5, 6], begin: [1, 0, 1, 2, 1], size: [1, 3, 2, 3, 4], dtype: "float32" },
];

for (const c of SLICES) {
  Deno.test(`wasm slice ${JSON.stringify(c.shape)} begin ${JSON.stringify(c.begin)} size ${JSON.stringify(c.size)} (${c.dtype}) matches cpu`, async () => {
    const run = async (backend: "wasm" | "cpu") => {
      await initBackend(backend);
      return tf.tidy(() => {
        const n = c.shape.reduce((a, b) => a * b, 1);
        const x = tf.tensor(Float32Array.from({ length: n }, (_, i) => i), c.shape, c.dtype);
        const r = tf.slice(x, c.begin, c.size);
        return { shape: r.shape, data: Array.from(r.dataSync()) };
      });
    };
    assertEquals(await run("wasm"), await run("cpu"));
  });
}

Deno.test("wasm kernels leak no tensors", async () => {
  await initBackend("wasm");
  const x = tf.tensor4d(wave(2 * 8 * 8 * 3, 0.7), [2, 8, 8, 3]);
  const w = tf.variable(tf.tensor4d(wave(3 * 3 * 3 * 4, 1.3), [3, 3, 3, 4]));
  const a = tf.tensor3d(wave(4 * 64 * 32, 0.1), [4, 64, 32]);
  const step = () => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.conv2d(x, w as unknown as tf.Tensor4D, 2, 1)) as tf.Scalar,
      [w],
    );
    tf.dispose([value, ...Object.values(grads)]);
    tf.matMul(a, a, true, false).dispose();
  };
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) step();
  assertEquals(tf.memory().numTensors, before);
  tf.dispose([x, w, a]);
});
