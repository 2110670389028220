import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assert, assertEquals, assertThrows } from "../../../lib/testing/assert.ts";
import { readImageFile, type RgbImage } from "../../../lib/image/png.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import {
  fixedPointCoefficients,
  PIL_BICUBIC,
  pilResize,
  PRECISION_BITS,
  precomputeCoefficients,
} from "./pil_resize.ts";
import { clipResizeAndCrop, clipResizeAndCropReference } from "./clip_image.ts";

const RESIZE_DIR = fixturePath("resize");

interface ResizeCase {
  input: string;
  output: string;
}

Deno.test({
  name: "pilResize + CLIP crop reproduces Pillow's BICUBIC bytes (resize fixture)",
  ignore: !hasFixtures(RESIZE_DIR),
  fn: async () => {
    const readme = JSON.parse(await Deno.readTextFile(`${RESIZE_DIR}/README.json`));
    const cases = readme.cases as ResizeCase[];
    assert(cases.length > 0, "README.json lists no cases");
    for (const c of cases) {
      const input = await readImageFile(`${RESIZE_DIR}/${c.input}`);
      const expected = await readImageFile(`${RESIZE_DIR}/${c.output}`);
      // The fast plan (wasm SIMD) and the reference port must both give Pillow's bytes.
      for (
        const [path, got] of [
          ["plan", clipResizeAndCrop(input, expected.width)],
          ["reference", clipResizeAndCropReference(input, expected.width)],
        ] as const
      ) {
        checkBytes(`${c.input} (${path})`, got, expected);
      }
    }
  },
});

function checkBytes(name: string, got: RgbImage, expected: RgbImage) {
  assertEquals([got.width, got.height], [expected.width, expected.height], `${name}: size`);
  let maxDiff = 0;
  let mismatched = 0;
  for (let i = 0; i < got.data.length; i++) {
    const d = Math.abs(got.data[i] - expected.data[i]);
    if (d > 0) mismatched++;
    maxDiff = Math.max(maxDiff, d);
  }
  // Byte-exact: no tolerance.
  assertEquals(mismatched, 0, `${name}: ${mismatched} bytes differ (max ${maxDiff})`);
}

Deno.test("bicubic coefficients sum to one and match the kernel at scale 1", () => {
  const c = precomputeCoefficients(10, 0, 10, 5, PIL_BICUBIC);
  assertEquals(c.ksize, 2 * Math.ceil(2 * 2) + 1);
  for (let xx = 0; xx < 5; xx++) {
    let s = 0;
    for (let i = 0; i < c.ksize; i++) s += c.weights[xx * c.ksize + i];
    assert(Math.abs(s - 1) < 1e-12, `row ${xx} sums to ${s}`);
  }
  // Upscaling by 2: support stays 2, center of output 0 is 0.25 in input space.
  const up = precomputeCoefficients(4, 0, 4, 8, PIL_BICUBIC);
  assertEquals(up.bounds[0], 0);
  const fixed = fixedPointCoefficients(new Float64Array([0.5, -0.25, 1e-9]));
  assertEquals([...fixed], [1 << (PRECISION_BITS - 1), -(1 << (PRECISION_BITS - 2)), 0]);
});

Deno.test("pilResize keeps a constant image constant and copies when the size is unchanged", () => {
  const data = new Uint8Array(37 * 23 * 3).fill(77);
  const small = pilResize({ width: 37, height: 23, channels: 3, data }, 11, 7);
  assert(small.data.every((v) => v === 77), "constant image changed under resampling");
  const same = pilResize({ width: 37, height: 23, channels: 3, data }, 37, 23);
  assertEquals(same.data.length, data.length);
  assert(same.data !== data, "expected a copy");
});

Deno.test("pilResize clips overshoot at sharp edges to [0, 255]", () => {
  // A 0/255 step: bicubic's negative lobes overshoot; Pillow clips, never wraps.
  const w = 16, h = 2;
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = w / 2; x < w; x++) data[y * w + x] = 255;
  const up = pilResize({ width: w, height: h, channels: 1, data }, 40, 2);
  assertEquals(up.data[0], 0);
  assertEquals(up.data[39], 255);
});

Deno.test("pilResize rejects malformed input naming the field", () => {
  assertThrows(
    () => pilResize({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) }, 1, 1),
    InvalidArgumentError,
    "image.data",
  );
  assertThrows(
    () => pilResize({ width: 2, height: 2, channels: 3, data: new Uint8Array(12) }, 0, 1),
    InvalidArgumentError,
    "size",
  );
});
