import { assert, assertEquals, assertThrows } from "../../../lib/testing/assert.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import {
  clipCropPlan,
  clipPixelValues,
  clipPixelValuesReference,
  clipResizeAndCropReference,
} from "./clip_image.ts";
import { buildResizeCropPlan, ResizePlanCache, runResizeCropPlan } from "./resize_plan.ts";
import { HORIZONTAL_KERNELS, WasmResampler } from "./resize_wasm.ts";

/** Seeded noise with hard edges (the bytes where overshoot clipping matters). */
function image(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    const v = x >>> 24;
    data[i] = v < 40 ? 0 : v > 215 ? 255 : v;
  }
  return { width, height, data };
}

/** Sizes that take every branch: down and up, both passes, one pass, none, odd margins, tiny. */
const SIZES: [number, number, number][] = [
  [640, 480, 224],
  [512, 512, 224],
  [480, 640, 224],
  [224, 300, 224], // no resize at all (Pillow copies), crop only
  [300, 224, 224],
  [225, 333, 224], // vertical skipped? no: 225 -> 224 on the short side, long side truncated
  [97, 61, 224], // upscaling both axes
  [1, 7, 5],
  [7, 1, 5],
  [333, 200, 64],
  [17, 29, 16],
];

function sameBytes(a: ArrayLike<number>, b: ArrayLike<number>, label: string) {
  assertEquals(a.length, b.length, `${label}: length`);
  let bad = 0, first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  assertEquals(bad, 0, `${label}: ${bad} values differ, first at ${first}`);
}

Deno.test("the crop-aware plan (JS and wasm SIMD) gives the reference port's bytes", () => {
  const wasm = new WasmResampler();
  for (const [i, [w, h, size]] of SIZES.entries()) {
    for (const variant of ["transformers", "torchvision"] as const) {
      const img = image(w, h, i + 1);
      const ref = clipResizeAndCropReference(img, size, variant);
      const plan = clipCropPlan(img, size, variant);
      const js = new Uint8ClampedArray(size * size * 3);
      runResizeCropPlan(plan, img.data, js);
      sameBytes(js, ref.data, `JS ${w}x${h} -> ${size} ${variant}`);
      for (const kernel of HORIZONTAL_KERNELS) {
        wasm.horizontalKernel = kernel;
        const simd = new Uint8Array(size * size * 3);
        wasm.resizeCrop(plan, img.data, simd);
        sameBytes(simd, ref.data, `wasm ${kernel} ${w}x${h} -> ${size} ${variant}`);
      }
    }
  }
});

Deno.test("wasm horizontal kernels: every row remainder of the 4-row kernels, one column, odd and even taps", () => {
  // The 4-row kernels run rows in fours and the one-row kernel the rest; their last column stores
  // 2 + 1 bytes per row; the dense one pads taps to a multiple of 4 (every count mod 4 is swept). Sweep shapes so that the kept row counts take every remainder mod 4, the crop
  // has 1..5 columns (1: the first column is the last), and the tap counts are odd and even.
  const wasm = new WasmResampler();
  const remainders = new Set<number>(), parities = new Set<number>(), quarters = new Set<number>();
  let i = 0;
  for (const w of [1, 2, 3, 5, 9, 31, 64]) {
    for (const h of [5, 6, 7, 8, 9, 10, 11, 12, 33]) {
      for (const size of [1, 2, 3, 4, 5]) {
        const img = image(w, h, ++i);
        const ref = clipResizeAndCropReference(img, size, "transformers");
        const plan = clipCropPlan(img, size, "transformers");
        if (plan.horizontal) {
          remainders.add(plan.rowCount % 4);
          for (const c of plan.horizontal.count) parities.add(c % 2), quarters.add(c % 4);
        }
        for (const kernel of HORIZONTAL_KERNELS) {
          wasm.horizontalKernel = kernel;
          const simd = new Uint8Array(size * size * 3);
          wasm.resizeCrop(plan, img.data, simd);
          sameBytes(simd, ref.data, `wasm ${kernel} ${w}x${h} -> ${size}`);
        }
      }
    }
  }
  assertEquals([...remainders].sort(), [0, 1, 2, 3], "row remainders covered");
  assertEquals([...parities].sort(), [0, 1], "odd and even tap counts covered");
  assertEquals([...quarters].sort(), [0, 1, 2, 3], "tap counts mod 4 covered");
});

Deno.test("clipPixelValues equals the reference pipeline bit for bit, across plans and batches", () => {
  // Alternating sizes make the kernels reload taps between images of one batch.
  const images = [image(640, 480, 3), image(200, 303, 4), image(640, 480, 5), image(224, 224, 6)];
  for (const variant of ["transformers", "torchvision"] as const) {
    const got = clipPixelValues(images, 224, { variant });
    const want = clipPixelValuesReference(images, 224, { variant });
    sameBytes(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `batch ${variant}`);
  }
  const stats = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  sameBytes(
    new Uint32Array(clipPixelValues(images, 64, stats).buffer),
    new Uint32Array(clipPixelValuesReference(images, 64, stats).buffer),
    "other stats, size 64",
  );
});

const shape = (
  inWidth: number,
  inHeight: number,
  resizedWidth: number,
  resizedHeight: number,
  left: number,
) => ({
  inWidth,
  inHeight,
  resizedWidth,
  resizedHeight,
  size: 224,
  top: 0,
  left,
});

Deno.test("ResizePlanCache reuses plans and stays within its capacity", () => {
  const cache = new ResizePlanCache(2);
  const a = cache.get(shape(640, 480, 298, 224, 37));
  assert(cache.get(shape(640, 480, 298, 224, 37)) === a, "same key, new plan");
  cache.get(shape(512, 512, 224, 224, 0));
  cache.get(shape(300, 224, 300, 224, 38));
  assertEquals(cache.size, 2);
  assert(cache.get(shape(640, 480, 298, 224, 37)) !== a, "evicted plan came back");
});

Deno.test("a plan refuses a crop outside the resized image and input of the wrong size", () => {
  assertThrows(() => buildResizeCropPlan({ ...shape(640, 480, 298, 224, 37), top: 1 }), RangeError, "crop");
  const plan = buildResizeCropPlan(shape(640, 480, 298, 224, 37));
  assertThrows(
    () => runResizeCropPlan(plan, new Uint8Array(10), new Uint8ClampedArray(224 * 224 * 3)),
    RangeError,
    "640x480",
  );
  assertThrows(
    () => new WasmResampler().resizeCrop(plan, new Uint8Array(10), new Uint8Array(224 * 224 * 3)),
    RangeError,
    "640x480",
  );
});
