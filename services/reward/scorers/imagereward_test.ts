import {
  assert,
  assertAllClose,
  assertAlmostEquals,
  assertEquals,
  assertRejects,
} from "../../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { WordPieceTokenizer } from "../../../lib/text/wordpiece.ts";
import { createScorer, IMAGEREWARD_MEAN, IMAGEREWARD_STD } from "../bundle.ts";
import { clipPixelValues } from "../preprocess/clip_image.ts";
import { writeBundle } from "../testing/bundle_dir.ts";
import {
  buildFakeImageRewardTextHead,
  buildFakeImageRewardVision,
  fakeImageRewardRaw,
  type FakeImageRewardSpec,
  patternImage,
  seededWeights,
} from "../testing/fake_models.ts";
import type { ImageRewardScorer } from "./imagereward.ts";

const VOCAB = [
  "[PAD]",
  "[unused0]",
  "[UNK]",
  "[CLS]",
  "[SEP]",
  "[MASK]",
  "a",
  "cat",
  "dog",
  "red",
  "fox",
  "in",
  "the",
  "snow",
  ",",
  "!",
  "photo",
  "of",
  "play",
  "##ing",
];

function spec(seqLen = 35): FakeImageRewardSpec {
  const dim = 4, tokens = 197, vocab = VOCAB.length + 2; // + [DEC], [ENC]
  return {
    size: 224,
    tokens,
    dim,
    seqLen,
    visionWeight: seededWeights(3 * tokens * dim, 7),
    table: seededWeights(vocab * dim, 11),
    headWeight: seededWeights(dim, 13),
  };
}

async function bundle(s: FakeImageRewardSpec, extra: object = {}): Promise<string> {
  return await writeBundle(
    {
      format: 1,
      kind: "imagereward",
      version: "fake",
      tokenizer: { type: "wordpiece", file: "vocab.txt" },
      ...extra,
    },
    {
      "vision.onnx": buildFakeImageRewardVision(s),
      "text_head.onnx": buildFakeImageRewardTextHead(s),
      "vocab.txt": VOCAB.join("\n") + "\n",
    },
  );
}

Deno.test("imagereward: WordPiece tokens, torchvision preprocessing, reference normalization", async () => {
  const s = spec();
  const dir = await bundle(s);
  const scorer = await createScorer(dir) as ImageRewardScorer;
  try {
    assertEquals(scorer.kind, "imagereward");
    assertEquals(scorer.needsPrompts, true);
    // 267x200 has an odd crop margin (299 - 224 = 75): torchvision rounds 37.5 to 38.
    const images = [patternImage(267, 200, 1), patternImage(256, 256, 3), patternImage(180, 320, 5)];
    const prompts = ["A red fox in the snow!", "a cat, playing", "unknown words here"];
    const got = await scorer.score(images, prompts);
    const tok = new WordPieceTokenizer(VOCAB, { addedTokens: ["[DEC]", "[ENC]"] });
    const pixels = clipPixelValues(images, 224, { variant: "torchvision" });
    const per = 3 * 224 * 224;
    const want = images.map((_, i) => {
      const e = tok.encode(prompts[i], 35);
      const raw = fakeImageRewardRaw(s, pixels.subarray(i * per, (i + 1) * per), e.inputIds, e.attentionMask);
      return (raw - IMAGEREWARD_MEAN) / IMAGEREWARD_STD;
    });
    assertAllClose(got, want, { atol: 1e-4, label: "imagereward" });
    // The transformers-style floor crop would give a different score for the odd-margin image.
    const floorPixels = clipPixelValues([images[0]], 224, { variant: "transformers" });
    const e0 = tok.encode(prompts[0], 35);
    const floorScore =
      (fakeImageRewardRaw(s, floorPixels, e0.inputIds, e0.attentionMask) - IMAGEREWARD_MEAN) /
      IMAGEREWARD_STD;
    assert(Math.abs(floorScore - got[0]) > 1e-4, "crop rounding should matter for this image");
    await assertRejects(() => scorer.score(images, prompts.slice(1)), InvalidArgumentError, "prompts");
  } finally {
    await scorer.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imagereward: manifest normalization overrides the reference constants", async () => {
  const s = spec();
  const dir = await bundle(s, { normalization: { mean: 1, std: 2 } });
  const dirRaw = await bundle(s, { normalization: { mean: 0, std: 1 } });
  const a = await createScorer(dir);
  const b = await createScorer(dirRaw);
  try {
    const images = [patternImage(224, 224, 2)];
    const raw = await b.score(images, ["a photo of a dog"]);
    const norm = await a.score(images, ["a photo of a dog"]);
    assertAlmostEquals(norm[0], (raw[0] - 1) / 2, 1e-9);
  } finally {
    await a.close();
    await b.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(dirRaw, { recursive: true });
  }
});

Deno.test("imagereward: a text head declaring another sequence length is rejected on load", async () => {
  const s = spec(20);
  const dir = await bundle(s);
  try {
    await assertRejects(() => createScorer(dir), InvalidArgumentError, "tokenizer");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
