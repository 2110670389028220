import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assert, assertAllClose, assertAlmostEquals, assertEquals } from "../../../lib/testing/assert.ts";
import { createScorer } from "../bundle.ts";
import { AestheticHead } from "./aesthetic.ts";
import { linkBundle } from "../testing/bundle_dir.ts";
import { loadClipFixture } from "../testing/clip_fixture.ts";
import { l2Normalize, LinearChainHead } from "./linear_head.ts";

const AES_DIR = fixturePath("aesthetic");
const HEAD = `${AES_DIR}/sac+logos+ava1-l14-linearMSE.safetensors`;
const CLIP_DIR = fixturePath("clip_scorer");

interface AestheticCase {
  name: string;
  embedding?: number[];
  embedding_before_normalization?: number[];
  score_f64: number;
  score_f32?: number;
}

Deno.test({
  name: "aesthetic head: folded and sequential float64 both match the reference vectors",
  ignore: !hasFixtures(HEAD, `${AES_DIR}/vectors.json`),
  fn: async () => {
    const chain = await LinearChainHead.load(HEAD, "layers.");
    assertEquals(chain.layers.map((l) => l.name), [
      "layers.0",
      "layers.2",
      "layers.4",
      "layers.6",
      "layers.7",
    ]);
    const head = AestheticHead.fromChain(chain);
    const { cases } = JSON.parse(await Deno.readTextFile(`${AES_DIR}/vectors.json`)) as {
      cases: AestheticCase[];
    };
    assert(cases.length > 0, "no cases");
    for (const c of cases) {
      const scale = Math.max(1, Math.abs(c.score_f64));
      if (c.embedding) {
        const folded = head.scoreNormalized(c.embedding);
        const sequential = chain.applySequential(c.embedding)[0];
        assertAlmostEquals(folded, c.score_f64, 1e-5 * scale, `${c.name}: folded vs f64`);
        assertAlmostEquals(sequential, c.score_f64, 1e-5 * scale, `${c.name}: sequential vs f64`);
        assertAlmostEquals(folded, sequential, 1e-9 * scale, `${c.name}: folded vs sequential`);
        if (c.score_f32 !== undefined) {
          assertAlmostEquals(folded, c.score_f32, 1e-5 * scale, `${c.name}: vs f32`);
        }
      } else if (c.embedding_before_normalization) {
        // The full scorer normalizes first.
        assertAlmostEquals(head.score(c.embedding_before_normalization), c.score_f64, 1e-5 * scale, c.name);
        assertAlmostEquals(
          chain.applySequential(l2Normalize(c.embedding_before_normalization))[0],
          c.score_f64,
          1e-5 * scale,
          `${c.name}: sequential`,
        );
      }
    }
  },
});

Deno.test({
  name: "aesthetic scorer end to end: PNG -> CLIP preprocessing -> clip_vision.onnx -> head (clip_scorer)",
  ignore: !hasFixtures(HEAD, CLIP_DIR),
  fn: async () => {
    const fx = await loadClipFixture(CLIP_DIR);
    const dir = await linkBundle(
      {
        format: 1,
        kind: "aesthetic",
        version: "test",
        models: { vision: { file: "clip_vision.onnx" } },
        preprocessing: { type: "clip", size: fx.size },
      },
      { "clip_vision.onnx": `${CLIP_DIR}/clip_vision.onnx`, "head.safetensors": HEAD },
    );
    const scorer = await createScorer(dir);
    try {
      assertEquals(scorer.kind, "aesthetic");
      assertEquals(scorer.needsPrompts, false);
      const images = fx.images;
      const scores = await scorer.score(images, []);
      assertAllClose(scores, fx.aesthetic, { rtol: 1e-4, label: "aesthetic" });
      // Batch composition does not change a score.
      const single = await scorer.score([images[2]], []);
      assertAlmostEquals(single[0], scores[2], 1e-5);
      // Concurrent calls on one scorer (the Scorer contract) give the same per-image scores.
      const [x, y] = await Promise.all([scorer.score(images, []), scorer.score([...images].reverse(), [])]);
      assertAllClose(x, scores, { rtol: 1e-6, label: "concurrent a" });
      assertAllClose([...y].reverse(), scores, { rtol: 1e-6, label: "concurrent b" });
    } finally {
      await scorer.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
