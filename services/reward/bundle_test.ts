import { assertEquals, assertRejects, assertThrows } from "../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import {
  bundleFiles,
  createBuiltinScorer,
  createScorer,
  IMAGEREWARD_MEAN,
  parseManifest,
  readBundleManifest,
} from "./bundle.ts";
import { writeBundle } from "./testing/bundle_dir.ts";
import { patternImage } from "./testing/fake_models.ts";

Deno.test("parseManifest fills per-kind defaults", () => {
  const a = parseManifest({ kind: "aesthetic", version: "2" });
  assertEquals(a.models.vision, {
    file: "vision.onnx",
    feeds: { pixel_values: "pixel_values" },
    output: "image_embeds",
  });
  assertEquals(a.head, { file: "head.safetensors", prefix: "layers." });
  assertEquals(a.preprocessing?.type, "clip");
  assertEquals(a.preprocessing?.size, 224);
  const p = parseManifest({ kind: "pickscore", version: "1", tokenizer: { type: "clip_bpe" } });
  assertEquals(p.tokenizer, {
    type: "clip_bpe",
    file: "bpe_simple_vocab_16e6.txt.gz",
    context_length: 77,
    pad_id: 0,
  });
  assertEquals(p.models.clip.output, "logits_per_text");
  const r = parseManifest({ kind: "imagereward", version: "1", tokenizer: { type: "wordpiece" } });
  assertEquals(r.normalization?.mean, IMAGEREWARD_MEAN);
  assertEquals(r.preprocessing?.type, "clip_torchvision");
  assertEquals(r.tokenizer?.type === "wordpiece" && r.tokenizer.max_length, 35);
  const h = parseManifest({ kind: "hpsv2", version: "2.1", tokenizer: { type: "clip_bpe" } });
  assertEquals(h.preprocessing?.type, "hpsv2");
  assertEquals(Object.keys(h.models), ["image", "text"]);
  assertEquals(bundleFiles(h).map(([f]) => f), ["models.image.file", "models.text.file", "tokenizer.file"]);
  const j = parseManifest({ kind: "jpeg_compressibility", version: "1" });
  assertEquals(j.models, {});
});

Deno.test("parseManifest errors name the field", () => {
  const bad: [unknown, string][] = [
    [[], "manifest"],
    [{ version: "1" }, "manifest.kind"],
    [{ kind: "clipscore", version: "1" }, "manifest.kind"],
    [{ kind: "aesthetic" }, "manifest.version"],
    [{ kind: "aesthetic", version: "1", format: 2 }, "manifest.format"],
    [{ kind: "aesthetic", version: "1", models: { text: { file: "t.onnx" } } }, "models.text"],
    [{ kind: "aesthetic", version: "1", models: { vision: { file: "../x.onnx" } } }, "models.vision.file"],
    [
      { kind: "aesthetic", version: "1", models: { vision: { feeds: { x: "pixels" } } } },
      "models.vision.feeds.x",
    ],
    [{ kind: "aesthetic", version: "1", preprocessing: { type: "lanczos" } }, "preprocessing.type"],
    [{ kind: "aesthetic", version: "1", preprocessing: { std: [1, 0, 1] } }, "preprocessing.std"],
    [{ kind: "aesthetic", version: "1", preprocessing: { size: 0 } }, "preprocessing.size"],
    [{ kind: "pickscore", version: "1" }, "tokenizer"],
    [{ kind: "pickscore", version: "1", tokenizer: { type: "sentencepiece" } }, "tokenizer.type"],
    [{ kind: "pickscore", version: "1", tokenizer: { type: "clip_bpe", pad_id: 50000 } }, "tokenizer.pad_id"],
    [
      { kind: "imagereward", version: "1", tokenizer: { type: "wordpiece", max_length: 1 } },
      "tokenizer.max_length",
    ],
    [{
      kind: "imagereward",
      version: "1",
      tokenizer: { type: "wordpiece" },
      normalization: { mean: 0, std: 0 },
    }, "normalization.std"],
    [{ kind: "onnx", version: "1" }, "models.model"],
    [
      { kind: "onnx", version: "1", models: { model: { file: "m.onnx", output: "y" } } },
      "models.model.feeds",
    ],
    [{
      kind: "onnx",
      version: "1",
      models: { model: { file: "m.onnx", feeds: { x: "input_ids" }, output: "y" } },
    }, "models.model.feeds"],
    [
      {
        kind: "onnx",
        version: "1",
        models: { model: { file: "m.onnx", feeds: { x: "pixel_values", t: "input_ids" }, output: "y" } },
      },
      "tokenizer",
    ],
    [
      {
        kind: "onnx",
        version: "1",
        output_reduce: "mean",
        models: { model: { file: "m.onnx", feeds: { x: "pixel_values" }, output: "y" } },
      },
      "output_reduce",
    ],
  ];
  for (const [raw, field] of bad) assertThrows(() => parseManifest(raw), InvalidArgumentError, field);
});

Deno.test("readBundleManifest reports a missing file by field, and unreadable JSON", async () => {
  const missing = await writeBundle({ format: 1, kind: "aesthetic", version: "1" }, { "vision.onnx": "x" });
  const broken = await Deno.makeTempDir();
  await Deno.writeTextFile(`${broken}/manifest.json`, "{ kind: aesthetic");
  try {
    await assertRejects(() => readBundleManifest(missing), InvalidArgumentError, "head.file");
    await assertRejects(() => readBundleManifest(broken), InvalidArgumentError, "manifest");
    await assertRejects(() => readBundleManifest(`${broken}/nope`), InvalidArgumentError, "bundle");
  } finally {
    await Deno.remove(missing, { recursive: true });
    await Deno.remove(broken, { recursive: true });
  }
});

Deno.test("built-in kinds are created by name alone or from a files-free bundle", async () => {
  const byName = await createBuiltinScorer("jpeg_incompressibility");
  assertEquals(byName.kind, "jpeg_incompressibility");
  assertEquals(byName.needsPrompts, false);
  const img = patternImage(64, 48);
  const a = await byName.score([img], []);
  const dir = await writeBundle({ format: 1, kind: "jpeg_compressibility", version: "1" }, {});
  try {
    const fromBundle = await createScorer(dir);
    const b = await fromBundle.score([img], []);
    assertEquals(b[0], -a[0]);
    await fromBundle.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await assertRejects(() => createBuiltinScorer("aesthetic"), InvalidArgumentError, "kind");
});

Deno.test("createScorer rejects an execution provider it does not know", async () => {
  const dir = await writeBundle(
    {
      format: 1,
      kind: "onnx",
      version: "1",
      models: { model: { file: "m.onnx", feeds: { p: "pixel_values" }, output: "s" } },
    },
    { "m.onnx": "not onnx" },
  );
  try {
    await assertRejects(
      // deno-lint-ignore no-explicit-any
      () => createScorer(dir, undefined, { executionProvider: "tpu" as any }),
      InvalidArgumentError,
      "executionProvider",
    );
    await assertRejects(() => createScorer(dir), InvalidArgumentError, "cannot load ONNX model");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
