import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assertAllClose, assertEquals, assertRejects } from "../../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { createScorer } from "../bundle.ts";
import { clipPixelValues } from "../preprocess/clip_image.ts";
import { linkBundle, writeBundle } from "../testing/bundle_dir.ts";
import { loadClipFixture } from "../testing/clip_fixture.ts";
import { buildLinearImageScorerOnnx, linearImageScore } from "../testing/onnx_builder.ts";
import { patternImage } from "../testing/fake_models.ts";

const CLIP_DIR = fixturePath("clip_scorer");
const VOCAB = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");

Deno.test("onnx generic: per_image output of rank 1 and 2, custom names, normalization", async () => {
  const images = [patternImage(300, 240, 1), patternImage(224, 224, 2)];
  const pixels = clipPixelValues(images, 224);
  const per = 3 * 224 * 224;
  for (const outputRank of [1, 2] as const) {
    const opts = {
      weights: [1.5, -0.5, 2] as [number, number, number],
      bias: 0.3,
      outputRank,
      inputName: "image",
      outputName: "aesthetic",
    };
    const dir = await writeBundle(
      {
        format: 1,
        kind: "onnx",
        version: "1",
        models: { model: { file: "m.onnx", feeds: { image: "pixel_values" }, output: "aesthetic" } },
        preprocessing: { type: "clip", size: 224 },
        normalization: { mean: 0.1, std: 4 },
      },
      { "m.onnx": buildLinearImageScorerOnnx(opts) },
    );
    const scorer = await createScorer(dir);
    try {
      assertEquals(scorer.kind, "onnx");
      assertEquals(scorer.needsPrompts, false);
      const got = await scorer.score(images, []);
      const want = images.map((_, i) =>
        (linearImageScore(pixels.subarray(i * per, (i + 1) * per), opts) - 0.1) / 4
      );
      assertAllClose(got, want, { atol: 1e-5, label: `rank ${outputRank}` });
      assertEquals((await scorer.score([], [])).length, 0);
    } finally {
      await scorer.close();
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("onnx generic: a size the model does not declare, or an unfed input, fails on load", async () => {
  const model = buildLinearImageScorerOnnx({ weights: [1, 1, 1], size: 64 });
  const wrongSize = await writeBundle(
    {
      format: 1,
      kind: "onnx",
      version: "1",
      models: { model: { file: "m.onnx", feeds: { pixel_values: "pixel_values" }, output: "score" } },
    },
    { "m.onnx": model },
  );
  const wrongName = await writeBundle(
    {
      format: 1,
      kind: "onnx",
      version: "1",
      models: { model: { file: "m.onnx", feeds: { pixels: "pixel_values" }, output: "score" } },
      preprocessing: { type: "clip", size: 64 },
    },
    { "m.onnx": model },
  );
  const wrongOutput = await writeBundle(
    {
      format: 1,
      kind: "onnx",
      version: "1",
      models: { model: { file: "m.onnx", feeds: { pixel_values: "pixel_values" }, output: "logits" } },
      preprocessing: { type: "clip", size: 64 },
    },
    { "m.onnx": model },
  );
  try {
    await assertRejects(() => createScorer(wrongSize), InvalidArgumentError, "preprocessing.size");
    await assertRejects(() => createScorer(wrongName), InvalidArgumentError, "models.model.inputs");
    await assertRejects(() => createScorer(wrongOutput), InvalidArgumentError, "models.model.outputs");
  } finally {
    for (const d of [wrongSize, wrongName, wrongOutput]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test({
  name: "onnx generic: a CLIP export with output_reduce diagonal equals logits_per_text[t][i] (clip_scorer)",
  ignore: !hasFixtures(CLIP_DIR, VOCAB),
  fn: async () => {
    const fx = await loadClipFixture(CLIP_DIR);
    const dir = await linkBundle(
      {
        format: 1,
        kind: "onnx",
        version: "1",
        models: {
          model: {
            file: "clip.onnx",
            feeds: { input_ids: "input_ids", pixel_values: "pixel_values", attention_mask: "attention_mask" },
            output: "logits_per_text",
          },
        },
        tokenizer: { type: "clip_bpe", file: "vocab.gz", pad_id: 0 },
        preprocessing: { type: "clip", size: fx.size },
        output_reduce: "diagonal",
      },
      { "clip.onnx": `${CLIP_DIR}/clip.onnx`, "vocab.gz": VOCAB },
    );
    const scorer = await createScorer(dir);
    try {
      assertEquals(scorer.needsPrompts, true);
      const { images, prompts } = fx;
      const chosen = images.map((_, i) => prompts[(i + 1) % prompts.length]);
      const got = await scorer.score(images, chosen);
      const want = images.map((_, i) => fx.logitsPerText[(i + 1) % prompts.length][i]);
      assertAllClose(got, want, { rtol: 1e-4, label: "diagonal" });
    } finally {
      await scorer.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
