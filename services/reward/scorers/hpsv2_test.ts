import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assert, assertAllClose, assertEquals } from "../../../lib/testing/assert.ts";
import { ClipBpeTokenizer } from "../../../lib/text/clip_bpe.ts";
import { createScorer } from "../bundle.ts";
import { hpsv2PixelValues } from "../preprocess/clip_image.ts";
import { linkBundle } from "../testing/bundle_dir.ts";
import {
  buildFakeHpsv2Image,
  buildFakeHpsv2Text,
  fakeHpsv2Embeddings,
  type FakeHpsv2Spec,
  patternImage,
  seededWeights,
} from "../testing/fake_models.ts";
import { cosine } from "./hpsv2.ts";

const VOCAB = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");

Deno.test("cosine is scale invariant and 1 for parallel vectors", () => {
  assertEquals(cosine([1, 2, 3], [2, 4, 6]), 1);
  assert(Math.abs(cosine([1, 0], [0, 3])) < 1e-15, "orthogonal");
  assertEquals(cosine([0, 0], [1, 1]), 0);
});

Deno.test({
  name: "hpsv2: open_clip tokens padded with 0, longest-side preprocessing, cosine without logit scale",
  ignore: !hasFixtures(VOCAB),
  fn: async () => {
    const s: FakeHpsv2Spec = {
      size: 224,
      dim: 5,
      seqLen: 77,
      idScale: 49408,
      imageWeight: seededWeights(3 * 5, 3),
      textWeight: seededWeights(77 * 5, 5),
    };
    const tmp = await Deno.makeTempDir();
    await Deno.writeFile(`${tmp}/image.onnx`, buildFakeHpsv2Image(s));
    await Deno.writeFile(`${tmp}/text.onnx`, buildFakeHpsv2Text(s));
    const dir = await linkBundle(
      { format: 1, kind: "hpsv2", version: "fake", tokenizer: { type: "clip_bpe" } },
      {
        "image.onnx": `${tmp}/image.onnx`,
        "text.onnx": `${tmp}/text.onnx`,
        "bpe_simple_vocab_16e6.txt.gz": VOCAB,
      },
    );
    const scorer = await createScorer(dir);
    try {
      assertEquals(scorer.kind, "hpsv2");
      const images = [patternImage(300, 200, 1), patternImage(256, 256, 2), patternImage(150, 330, 4)];
      const prompts = ["a photo of a cat", "an oil painting of a lighthouse", "a photo of a cat"];
      const got = await scorer.score(images, prompts);
      const tok = await ClipBpeTokenizer.fromFile(VOCAB);
      const pixels = hpsv2PixelValues(images, 224);
      const per = 3 * 224 * 224;
      const want = images.map((_, i) => {
        const ids = tok.encode(prompts[i], { contextLength: 77, padId: 0 }).inputIds;
        const e = fakeHpsv2Embeddings(s, pixels.subarray(i * per, (i + 1) * per), ids);
        return cosine(e.image, e.text);
      });
      // float32 in ORT vs float64 here over 77-term sums with cancellation: a few 1e-5 apart.
      assertAllClose(got, want, { atol: 1e-4, label: "hpsv2" });
      // With EOT padding the (non-causal) fake text tower would give other scores: padding is 0.
      const eotIds = tok.encode(prompts[0], { contextLength: 77, padId: 49407 }).inputIds;
      const eot = fakeHpsv2Embeddings(s, pixels.subarray(0, per), eotIds);
      assert(
        Math.abs(cosine(eot.image, eot.text) - got[0]) > 1e-3,
        "pad id should matter for the fake tower",
      );
    } finally {
      await scorer.close();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
