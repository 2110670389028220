import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assertAllClose, assertEquals, assertRejects } from "../../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { createScorer } from "../bundle.ts";
import { linkBundle } from "../testing/bundle_dir.ts";
import { loadClipFixture } from "../testing/clip_fixture.ts";

const CLIP_DIR = fixturePath("clip_scorer");
const VOCAB = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");

async function pickscoreBundle(padId: number, size: number): Promise<string> {
  return await linkBundle(
    {
      format: 1,
      kind: "pickscore",
      version: "test",
      preprocessing: { type: "clip", size },
      tokenizer: { type: "clip_bpe", file: "bpe_simple_vocab_16e6.txt.gz", pad_id: padId },
    },
    { "clip.onnx": `${CLIP_DIR}/clip.onnx`, "bpe_simple_vocab_16e6.txt.gz": VOCAB },
  );
}

Deno.test({
  name: "pickscore end to end equals logits_per_text[t][i] for every prompt and image (clip_scorer)",
  ignore: !hasFixtures(CLIP_DIR, VOCAB),
  fn: async () => {
    const fx = await loadClipFixture(CLIP_DIR);
    const { images, prompts } = fx;
    // The fixture pads with EOT; PickScore pads with 0. The causal text tower makes them agree.
    for (const padId of [49407, 0]) {
      const dir = await pickscoreBundle(padId, fx.size);
      const scorer = await createScorer(dir);
      try {
        assertEquals(scorer.needsPrompts, true);
        for (let t = 0; t < prompts.length; t++) {
          const row = await scorer.score(images, images.map(() => prompts[t]));
          assertAllClose(row, fx.logitsPerText[t], {
            rtol: 1e-4,
            label: `pad ${padId}, prompt ${t}`,
          });
        }
        // Mixed prompts in one batch: image i with prompt (i mod T) reads the matching entry.
        const mixed = images.map((_, i) => prompts[i % prompts.length]);
        const got = await scorer.score(images, mixed);
        const want = images.map((_, i) => fx.logitsPerText[i % prompts.length][i]);
        assertAllClose(got, want, { rtol: 1e-4, label: `pad ${padId}, mixed prompts` });
        await assertRejects(() => scorer.score(images, prompts.slice(0, 1)), InvalidArgumentError, "prompts");
      } finally {
        await scorer.close();
        await Deno.remove(dir, { recursive: true });
      }
    }
  },
});
