import { assert, assertEquals, assertNotEquals } from "../../lib/testing/assert.ts";
import { COLORS, grammarWords, makeSample, promptFor, sampleSpec } from "./dataset.ts";

Deno.test("shapes dataset: samples are a pure function of (seed, index)", () => {
  const a = makeSample(7, 123, 32);
  const b = makeSample(7, 123, 32);
  assertEquals(a.prompt, b.prompt);
  assertEquals(a.image, b.image);
  assertNotEquals(makeSample(8, 123, 32).image, a.image);
});

Deno.test("shapes dataset: every prompt word is in the grammar vocabulary", () => {
  const vocab = new Set(grammarWords());
  for (let i = 0; i < 500; i++) {
    for (const w of promptFor(sampleSpec(1, i)).split(" ")) assert(vocab.has(w), `"${w}" not in vocabulary`);
  }
});

Deno.test("shapes dataset: the shape's colour covers part of the image", () => {
  const s = makeSample(3, 5, 32);
  assertEquals(s.image.length, 32 * 32 * 3);
  // Background and shape colours differ by construction, so the image is not one flat colour.
  const first = [s.image[0], s.image[1], s.image[2]];
  let differing = 0;
  for (let i = 0; i < s.image.length; i += 3) {
    if (Math.abs(s.image[i] - first[0]) + Math.abs(s.image[i + 1] - first[1]) > 60) differing++;
  }
  assert(differing > 10, `only ${differing} pixels differ from the background`);
});

Deno.test("shapes dataset: opacity 0 draws no object; jitter draws the same scene differently", () => {
  for (let i = 0; i < 20; i++) {
    const spec = sampleSpec(3, i);
    const empty = makeSample(3, i, 32, { opacity: 0 });
    assertEquals(
      makeSample(3, i, 32, {}).image,
      makeSample(3, i, 32).image,
      "default options draw as before",
    );
    if (spec.color === spec.stripes) continue;
    // Every pixel is the background or stripe colour plus noise: none is nearer the object's colour.
    const col = COLORS[spec.color];
    const near = (o: number, c: readonly number[]) =>
      Math.abs(empty.image[o] - c[0]) + Math.abs(empty.image[o + 1] - c[1]) +
      Math.abs(empty.image[o + 2] - c[2]);
    for (let o = 0; o < empty.image.length; o += 3) {
      const bgDist = Math.min(
        near(o, COLORS[spec.background]),
        spec.stripes ? near(o, COLORS[spec.stripes]) : 1e9,
      );
      assert(bgDist <= near(o, col) || bgDist < 40, `sample ${i}: pixel ${o / 3} looks like the object`);
    }
    const j = makeSample(3, i, 32, { variant: "jitter" });
    assertEquals(j.prompt, promptFor(spec));
    assertNotEquals(j.image, makeSample(3, i, 32).image);
  }
});
