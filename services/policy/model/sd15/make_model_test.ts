/**
 * make-model writes folders loadPipeline reads back exactly: float32, the fp16 variant (up-cast at
 * load) and sharded indexes; bad folders fail naming the folder, the key or the config field.
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "../../../../lib/testing/assert.ts";
import { initBackend } from "../../../../lib/tensor/backend.ts";
import { halfToFloat } from "../../../../lib/tensor/safetensors.ts";
import { floatToHalf } from "../../../../lib/tensor/codec.ts";
import { disposePipeline, loadPipeline, type PolicyPipeline } from "../../pipeline.ts";
import { madeValues, makeModelFolder, withVariant } from "./make_model.ts";
import { modelSpec } from "./specs.ts";
import { fixturePath, hasFixtures } from "../../../../lib/testing/fixtures.ts";

await initBackend("cpu");
const VOCAB = fixturePath("clip-bpe", "bpe_simple_vocab_16e6.txt.gz");
const ignore = !hasFixtures(VOCAB);

async function tempModel(options: { dtype?: "f32" | "f16"; maxShardBytes?: number } = {}): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sd15-mini-" });
  await makeModelFolder({
    out: join(dir, "m"),
    spec: modelSpec("sd15-mini"),
    seed: 7,
    tokenizerVocab: VOCAB,
    ...options,
  });
  return join(dir, "m");
}

async function assertWeightsAre(p: PolicyPipeline, round: (x: number) => number): Promise<void> {
  for (const store of [p.unet.params, p.vae!.params, p.textEncoder!.params]) {
    for (const param of store.params()) {
      const want = madeValues(param, 7, 0.02).map(round);
      const t = param.toTorch();
      const got = await t.data();
      t.dispose();
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) throw new Error(`${param.name}[${i}]: ${got[i]} != ${want[i]}`);
      }
    }
  }
}

Deno.test({ name: "make-model sd15-mini (float32, one file) loads back bit-exactly", ignore }, async () => {
  const dir = await tempModel();
  try {
    const p = await loadPipeline(dir);
    try {
      assertEquals(p.latentShape, [4, 8, 8]);
      assertEquals(p.imageWidth, 64);
      assertEquals(p.vae!.scalingFactor, 0.18215);
      await assertWeightsAre(p, (x) => x);
    } finally {
      disposePipeline(p);
    }
  } finally {
    await Deno.remove(join(dir, ".."), { recursive: true });
  }
});

Deno.test(
  { name: "make-model --dtype f16 sharded: loads with variant fp16, up-cast from half", ignore },
  async () => {
    const dir = await tempModel({ dtype: "f16", maxShardBytes: 1_000_000 });
    try {
      const index = JSON.parse(
        await Deno.readTextFile(join(dir, "unet", "diffusion_pytorch_model.safetensors.index.fp16.json")),
      );
      assert(new Set(Object.values(index.weight_map)).size > 1, "unet is sharded");
      const p = await loadPipeline(dir, { variant: "fp16" });
      try {
        await assertWeightsAre(p, (x) => halfToFloat(floatToHalf(x)));
      } finally {
        disposePipeline(p);
      }
      // Without the variant there are no weights: the error names the folder and what it looked for.
      const e = await assertRejects(() => loadPipeline(dir));
      assert(e.message.includes(join(dir, "unet")), e.message);
      assert(e.message.includes("diffusion_pytorch_model.safetensors.index.json"), e.message);
      assert(e.message.includes("fp16.safetensors"), e.message);
    } finally {
      await Deno.remove(join(dir, ".."), { recursive: true });
    }
  },
);

Deno.test(
  { name: "a broken shard index fails naming the index, the shard and the key", ignore },
  async () => {
    const dir = await tempModel({ maxShardBytes: 1_000_000 });
    try {
      const path = join(dir, "unet", "diffusion_pytorch_model.safetensors.index.json");
      const original = await Deno.readTextFile(path);
      const index = JSON.parse(original);
      const shard = index.weight_map["conv_in.weight"];
      index.weight_map["conv_in.bogus"] = shard;
      await Deno.writeTextFile(path, JSON.stringify(index));
      let e = await assertRejects(() => loadPipeline(dir));
      for (const part of [path, shard, "conv_in.bogus"]) assert(e.message.includes(part), e.message);
      await Deno.writeTextFile(path, original);
      await Deno.remove(join(dir, "unet", shard));
      e = await assertRejects(() => loadPipeline(dir));
      assert(e.message.includes(join(dir, "unet", shard)), e.message);
    } finally {
      await Deno.remove(join(dir, ".."), { recursive: true });
    }
  },
);

const UNSUPPORTED: [string, string, unknown, string][] = [
  ["unet", "num_class_embeds", 10, "10"],
  ["unet", "addition_embed_type", "text_time", "text_time"],
  ["unet", "attention_type", "gated", "gated"],
  ["unet", "class_embed_type", "timestep", "timestep"],
  ["scheduler", "_class_name", "EulerAncestralDiscreteScheduler", "EulerAncestralDiscreteScheduler"],
];

Deno.test(
  { name: "unsupported config values fail at load naming the key and the value", ignore },
  async () => {
    const dir = await tempModel();
    const before = tf.memory().numTensors;
    try {
      for (const [component, key, value, shown] of UNSUPPORTED) {
        const file = join(
          dir,
          component,
          component === "scheduler" ? "scheduler_config.json" : "config.json",
        );
        const original = await Deno.readTextFile(file);
        await Deno.writeTextFile(file, JSON.stringify({ ...JSON.parse(original), [key]: value }));
        const e = await assertRejects(() => loadPipeline(dir));
        assert(e.message.includes(key) && e.message.includes(shown), `${key}: ${e.message}`);
        assertEquals(e.name, "InvalidArgumentError", `${key}: ${e.name}`);
        await Deno.writeTextFile(file, original);
      }
      // Restored: it loads.
      disposePipeline(await loadPipeline(dir));
      assertEquals(tf.memory().numTensors, before, "failed loads free what they built");
    } finally {
      await Deno.remove(join(dir, ".."), { recursive: true });
    }
  },
);

Deno.test("withVariant follows diffusers' _add_variant", () => {
  assertEquals(withVariant("model.safetensors", "fp16"), "model.fp16.safetensors");
  assertEquals(
    withVariant("diffusion_pytorch_model.safetensors.index.json", "fp16"),
    "diffusion_pytorch_model.safetensors.index.fp16.json",
  );
  assertEquals(withVariant("model.safetensors", ""), "model.safetensors");
});
