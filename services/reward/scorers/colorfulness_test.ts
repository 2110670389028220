import { assertAlmostEquals, assertEquals, assertRejects } from "../../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import type { RgbImage } from "../../../lib/image/png.ts";
import { colorfulness, ColorfulnessScorer } from "./colorfulness.ts";

function image(pixels: [number, number, number][], width = pixels.length): RgbImage {
  return { width, height: pixels.length / width, data: Uint8Array.from(pixels.flat()) };
}

Deno.test("colorfulness: grey images score 0", () => {
  assertEquals(colorfulness(image([[0, 0, 0], [128, 128, 128], [255, 255, 255], [7, 7, 7]], 2)), 0);
});

Deno.test("colorfulness: hand-computed values (Hasler-Suesstrunk M3)", () => {
  // Uniform red: rg = 255, yb = 127.5, no spread: only the mean term.
  assertAlmostEquals(colorfulness(image([[255, 0, 0], [255, 0, 0]])), 0.3 * Math.hypot(255, 127.5), 1e-9);
  // Red and blue pixels: rg in {255, 0} (mean 127.5, sd 127.5); yb in {127.5, -255} (mean -63.75, sd 191.25).
  assertAlmostEquals(
    colorfulness(image([[255, 0, 0], [0, 0, 255]])),
    Math.hypot(127.5, 191.25) + 0.3 * Math.hypot(127.5, -63.75),
    1e-9,
  );
});

Deno.test("colorfulness equals a two-pass reference on a random image", () => {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 256;
  const pixels = Array.from({ length: 37 * 23 }, () => [rand(), rand(), rand()] as [number, number, number]);
  const rg = pixels.map(([r, g]) => r - g);
  const yb = pixels.map(([r, g, b]) => (r + g) / 2 - b);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const sd = (v: number[]) => Math.sqrt(mean(v.map((x) => (x - mean(v)) ** 2)));
  const expected = Math.hypot(sd(rg), sd(yb)) + 0.3 * Math.hypot(mean(rg), mean(yb));
  assertAlmostEquals(colorfulness(image(pixels, 37)), expected, 1e-9);
});

Deno.test("ColorfulnessScorer scores a batch in order and names a malformed image", async () => {
  const s = new ColorfulnessScorer();
  const grey = image([[9, 9, 9]]), red = image([[255, 0, 0]]);
  const out = await s.score([red, grey], []);
  assertEquals(Array.from(out), [colorfulness(red), 0]);
  const bad: RgbImage = { width: 2, height: 2, data: new Uint8Array(5) };
  const err = await assertRejects(() => s.score([grey, bad], []), InvalidArgumentError);
  assertEquals(err.message.includes("images[1]"), true, err.message);
});
