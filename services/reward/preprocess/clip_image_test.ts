import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assert, assertAllClose, assertEquals, assertThrows } from "../../../lib/testing/assert.ts";
import { readImageFile, type RgbImage } from "../../../lib/image/png.ts";
import { SafetensorsFile } from "../../../lib/tensor/safetensors.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import {
  centerCropOffsets,
  CLIP_MEAN,
  CLIP_STD,
  clipPixelValues,
  hpsv2ImageTensor,
  quantizeUnitFloatImage,
  shortestEdgeSize,
} from "./clip_image.ts";
import { PIL_BICUBIC, precomputeCoefficients } from "./pil_resize.ts";
import { torchResizeBicubic } from "./torch_resize.ts";

const CLIP_DIR = fixturePath("clip_scorer");

interface ExpectedImage {
  file: string;
  width: number;
  height: number;
  resized: [number, number];
  crop_top_left: [number, number];
}

Deno.test({
  name: "clipPixelValues matches CLIPImageProcessor pixel_values (clip_scorer fixture)",
  ignore: !hasFixtures(CLIP_DIR),
  fn: async () => {
    const expected = JSON.parse(await Deno.readTextFile(`${CLIP_DIR}/expected.json`));
    const st = await SafetensorsFile.open(`${CLIP_DIR}/expected.safetensors`);
    try {
      const ref = await st.readFloat32("pixel_values");
      const size = ref.shape[2];
      const images: RgbImage[] = [];
      for (const e of expected.images as ExpectedImage[]) {
        const img = await readImageFile(`${CLIP_DIR}/${e.file}`);
        assertEquals([img.width, img.height], [e.width, e.height], `${e.file}: decoded size`);
        const [rw, rh] = shortestEdgeSize(img.width, img.height, size);
        assertEquals([rw, rh], e.resized, `${e.file}: resized [width, height]`);
        assertEquals(centerCropOffsets(rw, rh, size), e.crop_top_left, `${e.file}: crop [top, left]`);
        images.push(img);
      }
      assertEquals(ref.shape, [images.length, 3, size, size]);
      const got = clipPixelValues(images, size);
      assertAllClose(got, ref.data, { atol: 1e-5, label: "pixel_values" });
      // Byte-identical, not only close: same uint8 crop, same float32 arithmetic as the reference.
      const gotBits = new Uint32Array(got.buffer),
        refBits = new Uint32Array(ref.data.buffer, ref.data.byteOffset);
      let differ = 0;
      for (let i = 0; i < gotBits.length; i++) if (gotBits[i] !== refBits[i]) differ++;
      assertEquals(differ, 0, `${differ} of ${gotBits.length} float32 pixel values differ in their bits`);
    } finally {
      st.close();
    }
  },
});

Deno.test("shortestEdgeSize truncates the long side like int(size*long/short)", () => {
  assertEquals(shortestEdgeSize(640, 480, 224), [298, 224]);
  assertEquals(shortestEdgeSize(200, 303, 224), [224, 339]);
  assertEquals(shortestEdgeSize(512, 512, 224), [224, 224]);
  assertEquals(centerCropOffsets(299, 224, 224), [0, 37]);
  // torchvision's CenterCrop rounds half to even: 37.5 -> 38, 57.5 -> 58, 36.5 -> 36.
  assertEquals(centerCropOffsets(299, 224, 224, "torchvision"), [0, 38]);
  assertEquals(centerCropOffsets(224, 339, 224, "torchvision"), [58, 0]);
  assertEquals(centerCropOffsets(297, 224, 224, "torchvision"), [0, 36]);
});

function gradientImage(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 7 + y * 3) & 255;
      data[i + 1] = (x * y) & 255;
      data[i + 2] = ((x ^ y) * 5) & 255;
    }
  }
  return { width, height, data };
}

/** Float64 separable resize with Pillow's coefficients: the algorithm torch's AA path shares. */
function referenceAaResize(chw: Float32Array, h: number, w: number, oh: number, ow: number): Float64Array {
  const ch = precomputeCoefficients(w, 0, w, ow, PIL_BICUBIC);
  const cv = precomputeCoefficients(h, 0, h, oh, PIL_BICUBIC);
  const tmp = new Float64Array(3 * h * ow);
  for (let r = 0; r < 3 * h; r++) {
    for (let x = 0; x < ow; x++) {
      let s = 0;
      for (let j = 0; j < ch.bounds[2 * x + 1]; j++) {
        s += chw[r * w + ch.bounds[2 * x] + j] * ch.weights[x * ch.ksize + j];
      }
      tmp[r * ow + x] = s;
    }
  }
  const out = new Float64Array(3 * oh * ow);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let j = 0; j < cv.bounds[2 * y + 1]; j++) {
          s += tmp[(c * h + cv.bounds[2 * y] + j) * ow + x] * cv.weights[y * cv.ksize + j];
        }
        out[(c * oh + y) * ow + x] = s;
      }
    }
  }
  return out;
}

Deno.test("torchResizeBicubic (antialias) is Pillow's separable filter carried out in float32", () => {
  const img = gradientImage(96, 80);
  const chw = new Float32Array(3 * 96 * 80);
  for (let i = 0; i < 96 * 80; i++) {
    for (let c = 0; c < 3; c++) chw[c * 96 * 80 + i] = img.data[i * 3 + c] / 255;
  }
  const got = torchResizeBicubic(chw, 3, 80, 96, 35, 42);
  const ref = referenceAaResize(chw, 80, 96, 35, 42);
  // Sample centers are float32 in ATen (about 1e-5 absolute at x ~ 90), hence a few 1e-6 apart.
  assertAllClose(got, ref, { atol: 1e-5, label: "aa resize" });
  // Without antialias the 4-tap a=-0.75 kernel differs from the AA one when downscaling.
  const plain = torchResizeBicubic(chw, 3, 80, 96, 35, 42, { antialias: false });
  assert(plain.some((v, i) => Math.abs(v - got[i]) > 1e-3), "antialias=false should differ");
  // Upscaling by an integer factor with the plain kernel reproduces samples at the half-pixel phase.
  const flat = torchResizeBicubic(new Float32Array(3 * 4 * 4).fill(0.25), 3, 4, 4, 8, 8, {
    antialias: false,
  });
  assertAllClose(flat, new Float32Array(3 * 64).fill(0.25), { atol: 1e-7, label: "constant upscale" });
});

Deno.test("hpsv2ImageTensor: longest side to size, even zero padding before normalization", () => {
  const img = gradientImage(300, 200);
  const size = 224;
  const t = hpsv2ImageTensor(img, size);
  // 300x200 -> 224 x round(149.33) = 149; pad_h = 75 -> 37 above, 38 below.
  const h = 149, top = 37;
  for (let c = 0; c < 3; c++) {
    const pad = Math.fround(Math.fround(0 - Math.fround(CLIP_MEAN[c])) / Math.fround(CLIP_STD[c]));
    const plane = t.subarray(c * size * size, (c + 1) * size * size);
    assertEquals(plane[0], pad, "top padding");
    assertEquals(plane[(top - 1) * size + 100], pad, "last padded row above");
    assert(plane[top * size + 100] !== pad, "first image row");
    assert(plane[(top + h - 1) * size + 100] !== pad, "last image row");
    assertEquals(plane[(top + h) * size + 100], pad, "first padded row below");
    assertEquals(plane[(size - 1) * size], pad, "bottom padding");
  }
});

Deno.test("hpsv2ImageTensor on a square image equals the float resize of ToTensor, normalized", () => {
  const img = gradientImage(64, 64);
  const size = 32;
  const t = hpsv2ImageTensor(img, size);
  const chw = new Float32Array(3 * 64 * 64);
  for (let i = 0; i < 64 * 64; i++) {
    for (let c = 0; c < 3; c++) chw[c * 4096 + i] = Math.fround(img.data[i * 3 + c] / 255);
  }
  const ref = referenceAaResize(chw, 64, 64, size, size);
  const expected = ref.map((v, i) => {
    const c = Math.floor(i / (size * size));
    return (v - CLIP_MEAN[c]) / CLIP_STD[c];
  });
  assertAllClose(t, expected, { atol: 1e-5, label: "hpsv2 square" });
});

Deno.test("quantizeUnitFloatImage rounds half to even in float32 and clamps", () => {
  const chw = Float32Array.from([-0.1, 1.2, 0.5, 0, 1, 0.25]);
  const q = quantizeUnitFloatImage(chw, 2, 1, "chw");
  // pixel 0 = (R=-0.1, G=0.5, B=1), pixel 1 = (R=1.2, G=0, B=0.25)
  assertEquals([...q.data], [0, 128, 255, 255, 0, 64]);
  // float32(2.5/255) * 255 rounds to exactly 2.5 in float32: half to even gives 2 (half up would give 3).
  const x = Math.fround(2.5 / 255);
  assertEquals(Math.fround(x * 255), 2.5);
  const hwc = quantizeUnitFloatImage(Float32Array.from([x, 0, 1]), 1, 1, "hwc");
  assertEquals([...hwc.data], [2, 0, 255]);
  assertThrows(() => quantizeUnitFloatImage(new Float32Array(5), 1, 1), InvalidArgumentError, "image");
});

Deno.test("clipPixelValues names the bad image", () => {
  assertThrows(
    () => clipPixelValues([{ width: 2, height: 2, data: new Uint8Array(3) }]),
    InvalidArgumentError,
    "images[0]",
  );
});
