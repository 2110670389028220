import * as tf from "@tensorflow/tfjs-core";
import {
  assert,
  assertAllClose,
  assertEquals,
  assertRejects,
  assertThrows,
  maxAbs,
} from "../../../lib/testing/assert.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";
import { SafetensorsFile, writeSafetensors } from "../../../lib/tensor/safetensors.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import { LORA_METADATA_KEY, LoraAdapter, matchesTarget } from "./lora.ts";
import { tinyUNet, unetInputs } from "./test_util.ts";

await initBackend("wasm", { gradients: true });

Deno.test("lora: PEFT target matching (exact name or dotted suffix)", () => {
  assert(matchesTarget("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", "to_out.0"));
  assert(matchesTarget("a.to_q", "to_q"));
  assert(!matchesTarget("a.xto_q", "to_q"));
  assert(!matchesTarget("a.to_q.x", "to_q"));
});

Deno.test("lora: attaches to every to_q/to_k/to_v/to_out.0 with PEFT's init (A uniform within 1/sqrt(in), B zero)", () => {
  const unet = tinyUNet();
  const lora = LoraAdapter.attach(unet, { rank: 4 });
  try {
    // tiny config: transformers in down 0 (1), mid (1), up 1 (2 layers) = 4, x 2 attentions x 4 linears
    const paths = lora.modulePaths();
    assertEquals(paths.length, 4 * 2 * 4);
    assert(paths.every((p) => /\.(to_q|to_k|to_v|to_out\.0)$/.test(p)), paths.join());
    const tensors = lora.toPeftTensors();
    assertEquals(tensors.size, 2 * paths.length);
    for (const p of paths) {
      const a = tensors.get(`unet.${p}.lora_A.weight`)!;
      const b = tensors.get(`unet.${p}.lora_B.weight`)!;
      assertEquals(a.shape[0], 4);
      assertEquals(b.shape[1], 4);
      const bound = 1 / Math.sqrt(a.shape[1]);
      assert(maxAbs(a.data as Float32Array) <= bound, `${p}: A exceeds ${bound}`);
      assert(maxAbs(a.data as Float32Array) > bound / 2, `${p}: A looks degenerate`);
      assertEquals(maxAbs(b.data as Float32Array), 0);
    }
    assertEquals(lora.parameterCount(), [...tensors.values()].reduce((n, t) => n + t.data.length, 0));
  } finally {
    lora.dispose();
    unet.dispose();
  }
});

Deno.test("lora: the same seed gives the same adapter, another seed another", () => {
  const unet = tinyUNet();
  const first = LoraAdapter.attach(unet, { rank: 2, seed: 7 });
  const a1 = first.toPeftTensors();
  first.dispose();
  const second = LoraAdapter.attach(unet, { rank: 2, seed: 7 });
  const a2 = second.toPeftTensors();
  second.dispose();
  const third = LoraAdapter.attach(unet, { rank: 2, seed: 8 });
  const a3 = third.toPeftTensors();
  third.dispose();
  unet.dispose();
  const key = [...a1.keys()].find((k) => k.endsWith("lora_A.weight"))!;
  assertEquals(Array.from(a1.get(key)!.data as Float32Array), Array.from(a2.get(key)!.data as Float32Array));
  assert(
    maxAbs(
      Float32Array.from(
        a1.get(key)!.data as Float32Array,
        (v, i) => v - (a3.get(key)!.data as Float32Array)[i],
      ),
    ) > 0,
  );
});

Deno.test("lora: with B = 0 the policy equals the reference exactly; after a change they differ", () => {
  const unet = tinyUNet();
  const lora = LoraAdapter.attach(unet, { rank: 4, alpha: 8 });
  const { sample, context, timesteps } = unetInputs(2, 4, 8, 5, 16);
  try {
    const on = unet.forward(sample, timesteps, context, { lora: true });
    const off = unet.forward(sample, timesteps, context, { lora: false });
    assertEquals(Array.from(on.dataSync()), Array.from(off.dataSync()));
    for (const v of lora.variables()) if (v.shape[0] === 4) v.assign(tf.onesLike(v).mul(0.01));
    const on2 = unet.forward(sample, timesteps, context, { lora: true });
    const off2 = unet.forward(sample, timesteps, context, { lora: false });
    assertEquals(Array.from(off2.dataSync()), Array.from(off.dataSync()));
    assert(maxAbs(tf.sub(on2, off2).dataSync()) > 1e-4, "adapter has no effect");
    tf.dispose([on, off, on2, off2]);
  } finally {
    tf.dispose([sample, context]);
    lora.dispose();
    unet.dispose();
  }
});

Deno.test("lora: scale is alpha / rank", () => {
  const unet = tinyUNet();
  const { sample, context, timesteps } = unetInputs(1, 4, 8, 3, 16);
  const run = (alpha: number) => {
    const lora = LoraAdapter.attach(unet, { rank: 2, alpha, seed: 3 });
    for (const v of lora.variables()) if (v.shape[0] === 2) v.assign(tf.fill(v.shape, 0.02));
    const delta = tf.tidy(() =>
      tf.sub(
        unet.forward(sample, timesteps, context, { lora: true }),
        unet.forward(sample, timesteps, context),
      )
    );
    lora.dispose();
    return delta;
  };
  const d1 = run(1); // scale 0.5
  const d2 = run(0.5); // scale 0.25
  // The adapter enters every attention; for a small B the output change is ~linear in the scale.
  const ratio = maxAbs(d1.dataSync()) / maxAbs(d2.dataSync());
  assert(Math.abs(ratio - 2) < 0.05, `expected ~2, got ${ratio}`);
  tf.dispose([d1, d2, sample, context]);
  unet.dispose();
});

Deno.test("lora: variableGrads over the adapter trains only A and B; Adam lowers the loss", () => {
  const unet = tinyUNet();
  const lora = LoraAdapter.attach(unet, { rank: 4 });
  const { sample, context, timesteps } = unetInputs(2, 4, 8, 5, 16);
  const target = tf.zerosLike(sample);
  const base = unet.params.variables();
  const before = new Map([...base].map(([k, v]) => [k, v.dataSync().slice()]));
  const optimizer = tf.train.adam(1e-2);
  const loss = () =>
    tf.mean(tf.square(tf.sub(unet.forward(sample, timesteps, context, { lora: true }), target))) as tf.Scalar;
  try {
    const { value, grads } = tf.variableGrads(loss, lora.variables());
    assertEquals(Object.keys(grads).length, lora.variables().length);
    // B starts at 0 so only B gets a gradient at step 0 (dL/dA = B^T ... = 0).
    const nonzero = lora.variables().filter((v) => maxAbs(grads[v.name].dataSync()) > 0);
    assert(nonzero.length > 0 && nonzero.every((v) => v.shape[0] === 4), "expected gradients on B only");
    const first = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    let last = first;
    for (let i = 0; i < 5; i++) {
      const l = optimizer.minimize(loss, true, lora.variables())!;
      last = l.dataSync()[0];
      l.dispose();
    }
    assert(last < first, `loss did not decrease: ${first} -> ${last}`);
    for (const [k, v] of base) {
      assertEquals(Array.from(v.dataSync()), Array.from(before.get(k)!), `${k} changed`);
    }
  } finally {
    optimizer.dispose();
    tf.dispose([sample, context, target]);
    lora.dispose();
    unet.dispose();
  }
});

Deno.test("lora: save/load round trip in the PEFT format with diffusers' metadata", async () => {
  const dir = await Deno.makeTempDir();
  const unet = tinyUNet();
  try {
    const lora = LoraAdapter.attach(unet, { rank: 3, alpha: 6, targetModules: ["to_q", "to_v"], seed: 5 });
    for (const v of lora.variables()) {
      if (v.shape[0] === 3) v.assign(tf.randomNormal(v.shape, 0, 0.1, "float32", 1));
    }
    const path = `${dir}/pytorch_lora_weights.safetensors`;
    await lora.save(path);
    const saved = lora.toPeftTensors();
    lora.dispose();

    const f = await SafetensorsFile.open(path);
    assertEquals(f.metadata.format, "pt");
    const meta = JSON.parse(f.metadata[LORA_METADATA_KEY]);
    assertEquals(meta, { "unet.lora_alpha": 6, "unet.r": 3, "unet.target_modules": ["to_q", "to_v"] });
    const key = f.names().find((n) => n.endsWith(".to_q.lora_A.weight"))!;
    assert(
      key.startsWith("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.") ||
        key.startsWith("unet."),
    );
    f.close();

    const loaded = await LoraAdapter.load(unet, path);
    assertEquals([loaded.rank, loaded.alpha, [...loaded.targetModules]], [3, 6, ["to_q", "to_v"]]);
    const again = loaded.toPeftTensors();
    assertEquals([...again.keys()].sort(), [...saved.keys()].sort());
    for (const [k, t] of saved) {
      assertAllClose(again.get(k)!.data as Float32Array, t.data as Float32Array, { label: k });
    }
    loaded.dispose();
  } finally {
    unet.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lora: bad adapters are rejected naming the keys", async () => {
  const dir = await Deno.makeTempDir();
  const unet = tinyUNet();
  try {
    assertThrows(() => LoraAdapter.attach(unet, { rank: 0 }), InvalidArgumentError, "lora.rank");
    assertThrows(
      () => LoraAdapter.attach(unet, { rank: 2, targetModules: ["nope"] }),
      InvalidArgumentError,
      '"nope"',
    );
    const lora = LoraAdapter.attach(unet, { rank: 2 });
    assertThrows(() => LoraAdapter.attach(unet, { rank: 2 }), FailedPreconditionError, "already carry");
    const tensors = lora.toPeftTensors();
    const [firstKey] = tensors.keys();
    const missing = new Map(tensors);
    missing.delete(firstKey);
    missing.set("unet.bogus.lora_A.weight", { dtype: "F32", shape: [2, 2], data: new Float32Array(4) });
    const e = assertThrows(() => lora.loadPeftTensors(missing), FailedPreconditionError);
    assert(e.message.includes(firstKey) && e.message.includes("unet.bogus.lora_A.weight"), e.message);
    const wrongShape = new Map(tensors);
    wrongShape.set(firstKey, { dtype: "F32", shape: [5, 1], data: new Float32Array(5) });
    assertThrows(() => lora.loadPeftTensors(wrongShape), FailedPreconditionError, firstKey);
    lora.dispose();
    const path = `${dir}/bad.safetensors`;
    await writeSafetensors(path, {
      "unet.x.weight": { dtype: "F32", shape: [1], data: new Float32Array(1) },
    });
    await assertRejects(() => LoraAdapter.load(unet, path), InvalidArgumentError, "lora_A");
  } finally {
    unet.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
