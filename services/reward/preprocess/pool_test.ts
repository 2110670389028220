import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import { assert, assertEquals } from "../../../lib/testing/assert.ts";
import type { PreprocessingSpec } from "../bundle.ts";
import { pixelValuesFor } from "../scorers/inputs.ts";
import { chunkRanges, configurePreprocessPool, pooledPixelValues, PreprocessPool } from "./pool.ts";

/** Seeded images of assorted sizes (landscape, portrait, square, smaller than the crop). */
function images(n: number, seed = 1): RgbImage[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  const sizes = [[64, 48], [40, 72], [50, 50], [20, 30], [97, 61]];
  return Array.from({ length: n }, (_, i) => {
    const [width, height] = sizes[i % sizes.length];
    const data = new Uint8Array(width * height * 3);
    for (let j = 0; j < data.length; j++) data[j] = next();
    return { width, height, data };
  });
}

const SPECS: PreprocessingSpec[] = [
  { type: "clip", size: 32, mean: [0.48, 0.45, 0.41], std: [0.27, 0.26, 0.28] },
  { type: "clip_torchvision", size: 24, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  { type: "hpsv2", size: 28, mean: [0.48, 0.45, 0.41], std: [0.27, 0.26, 0.28] },
] as PreprocessingSpec[];

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

Deno.test("preprocess pool: chunks are contiguous, in order, sizes within one", () => {
  assertEquals(chunkRanges(5, 2), [[0, 3], [3, 5]]);
  assertEquals(chunkRanges(7, 3), [[0, 3], [3, 5], [5, 7]]);
  assertEquals(chunkRanges(2, 8), [[0, 1], [1, 2]]);
  assertEquals(chunkRanges(0, 4), [[0, 0]]);
});

Deno.test("preprocess pool: the same bits as the in-thread path, for every preprocessing and pool size", async () => {
  for (const size of [1, 2, 3]) {
    const pool = new PreprocessPool(size);
    try {
      for (const spec of SPECS) {
        for (const n of [2, 5, 7]) {
          const batch = images(n, n * 7 + size);
          const expected = pixelValuesFor(spec, batch);
          const got = await pool.pixelValues(spec, batch);
          assertEquals(got.length, expected.length);
          assertEquals(bits(got), bits(expected), `${spec.type}, ${n} images, ${size} workers`);
        }
      }
      // Concurrent batches do not mix.
      const a = images(4, 11), b = images(6, 12);
      const [ga, gb] = await Promise.all([pool.pixelValues(SPECS[0], a), pool.pixelValues(SPECS[2], b)]);
      assertEquals(bits(ga), bits(pixelValuesFor(SPECS[0], a)));
      assertEquals(bits(gb), bits(pixelValuesFor(SPECS[2], b)));
    } finally {
      pool.close();
    }
  }
});

Deno.test("preprocess pool: shared and cloned images, views into larger buffers, reused inputs", async () => {
  // Images as views at odd offsets of one buffer (like bytes fields of a decoded request).
  const base = images(6, 31);
  const backing = new Uint8Array(base.reduce((n, im) => n + im.data.length + 7, 0));
  let at = 3;
  const views = base.map((im) => {
    backing.set(im.data, at);
    const data = backing.subarray(at, at + im.data.length);
    at += im.data.length + 7;
    return { ...im, data };
  });
  for (const clone of [false, true]) {
    const pool = new PreprocessPool(2, clone);
    try {
      // Large, small, large again: the spare input buffer is reused and, when too small, replaced.
      for (const batch of [views, views.slice(0, 2), views, images(9, 41)]) {
        const got = await pool.pixelValues(SPECS[0], batch);
        assertEquals(
          bits(got),
          bits(pixelValuesFor(SPECS[0], batch)),
          `clone=${clone}, ${batch.length} images`,
        );
        assert(!(got.buffer instanceof SharedArrayBuffer), "callers get an ordinary buffer");
      }
    } finally {
      pool.close();
    }
  }
  assertEquals(
    backing.subarray(3, 3 + base[0].data.length),
    base[0].data,
    "the caller's bytes are untouched",
  );
});

Deno.test("preprocess pool: a bad image is named by its index in the whole batch", async () => {
  const pool = new PreprocessPool(2);
  try {
    const batch = images(5);
    batch[4] = { width: 4, height: 4, data: new Uint8Array(3) }; // in the second worker's chunk
    let inThread: unknown, pooled: unknown;
    try {
      pixelValuesFor(SPECS[0], batch);
    } catch (e) {
      inThread = e;
    }
    try {
      await pool.pixelValues(SPECS[0], batch);
    } catch (e) {
      pooled = e;
    }
    assert(inThread instanceof InvalidArgumentError && pooled instanceof InvalidArgumentError);
    assertEquals(pooled.field, "images[4]");
    assertEquals(pooled.message, inThread.message);
    // The pool still works after an error.
    const ok = images(3);
    assertEquals(bits(await pool.pixelValues(SPECS[1], ok)), bits(pixelValuesFor(SPECS[1], ok)));
  } finally {
    pool.close();
  }
});

Deno.test("preprocess pool: the scorers' entry point uses the configured pool, and 0 turns it off", async () => {
  const batch = images(4, 21);
  const expected = bits(pixelValuesFor(SPECS[0], batch));
  configurePreprocessPool(2);
  try {
    const pooled = pooledPixelValues(SPECS[0], batch);
    assert(pooled instanceof Promise, "a batch of 4 goes to the pool");
    assertEquals(bits(await pooled), expected);
  } finally {
    configurePreprocessPool(0);
  }
  const inThread = pooledPixelValues(SPECS[0], batch);
  assert(!(inThread instanceof Promise), "without a pool: in this thread");
  assertEquals(bits(inThread), expected);
});
