import * as tf from "@tensorflow/tfjs-core";
import {
  assert,
  assertAllClose,
  assertAlmostEquals,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../../lib/testing/assert.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";
import { writeSafetensors } from "../../../lib/tensor/safetensors.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import {
  activate,
  attentionSlices,
  Conv2d,
  FlopCounter,
  GroupNorm,
  LayerNorm,
  Linear,
  multiHeadAttention,
} from "./nn.ts";
import { setTensorByteLimit } from "../../../lib/tensor/limits.ts";
import {
  fromInternalLayout,
  hostInternalLayout,
  internalShape,
  ParamStore,
  toInternalLayout,
} from "./params.ts";
import { loadParams, SafetensorsSource } from "./weights.ts";
import { timestepEmbedding } from "./unet.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "./config.ts";
import { AutoencoderKL, vaeKeyAliases } from "./vae.ts";
import { tinyUNet } from "./test_util.ts";

await initBackend("wasm");
const CTX = { lora: false };

function seq(n: number, f = 0.37, phase = 0): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * f + phase));
}

Deno.test("params: layout conversions round-trip (linear [out,in] <-> [in,out], conv OIHW <-> HWIO)", () => {
  tf.tidy(() => {
    const lin = tf.tensor2d(seq(6), [2, 3]);
    const linInternal = toInternalLayout(lin, "linear");
    assertEquals(linInternal.shape, [3, 2]);
    assertEquals(Array.from(linInternal.dataSync()), Array.from(tf.transpose(lin).dataSync()));
    assertEquals(
      Array.from(fromInternalLayout(linInternal, "linear", [2, 3]).dataSync()),
      Array.from(lin.dataSync()),
    );
    const conv = tf.tensor4d(seq(2 * 3 * 2 * 2), [2, 3, 2, 2]);
    const convInternal = toInternalLayout(conv, "conv");
    assertEquals(convInternal.shape, [2, 2, 3, 2]);
    // [o, i, y, x] -> [y, x, i, o]
    assertEquals(
      convInternal.arraySync() as number[][][][],
      tf.transpose(conv, [2, 3, 1, 0]).arraySync() as number[][][][],
    );
    assertEquals(
      Array.from(fromInternalLayout(convInternal, "conv", [2, 3, 2, 2]).dataSync()),
      Array.from(conv.dataSync()),
    );
  });
});

Deno.test("Linear: y = x W^T + b with the PyTorch weight, and counts 2*N*in*out FLOPs", () => {
  const store = new ParamStore();
  const lin = new Linear(store.scope(""), "fc", 3, 2);
  const w = seq(6, 0.9);
  lin.weight.setFromTorch(w);
  lin.bias!.setFromTorch(Float32Array.from([0.5, -1]));
  const x = seq(12, 0.4); // [2, 2, 3]
  const flops = new FlopCounter();
  const y = lin.forward(tf.tensor3d(x, [2, 2, 3]), { lora: false, flops });
  assertEquals(y.shape, [2, 2, 2]);
  const expected: number[] = [];
  for (let r = 0; r < 4; r++) {
    for (let o = 0; o < 2; o++) {
      let s = [0.5, -1][o];
      for (let i = 0; i < 3; i++) s += x[r * 3 + i] * w[o * 3 + i];
      expected.push(s);
    }
  }
  assertAllClose(y.dataSync(), expected, { atol: 1e-6, label: "linear" });
  assertEquals(flops.total, 2 * 4 * 3 * 2);
  y.dispose();
  store.dispose();
});

Deno.test("Conv2d: NHWC forward with an OIHW weight equals a direct NCHW convolution (stride 2, pad 1)", () => {
  const [b, cin, h, w, cout, k] = [1, 2, 5, 4, 3, 3];
  const store = new ParamStore();
  const conv = new Conv2d(store.scope(""), "conv", cin, cout, k, { stride: 2, padding: 1 });
  const weight = seq(cout * cin * k * k, 0.7);
  const bias = Float32Array.from([0.1, 0.2, -0.3]);
  conv.weight.setFromTorch(weight);
  conv.bias!.setFromTorch(bias);
  const x = seq(b * cin * h * w, 0.3); // NCHW
  const y = tf.tidy(() =>
    tf.transpose(conv.forward(tf.transpose(tf.tensor4d(x, [b, cin, h, w]), [0, 2, 3, 1]), CTX), [0, 3, 1, 2])
  );
  const ho = Math.floor((h + 2 - k) / 2) + 1;
  const wo = Math.floor((w + 2 - k) / 2) + 1;
  assertEquals(y.shape, [b, cout, ho, wo]);
  const expected: number[] = [];
  for (let o = 0; o < cout; o++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let s = bias[o];
        for (let i = 0; i < cin; i++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const iy = oy * 2 - 1 + ky;
              const ix = ox * 2 - 1 + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              s += x[(i * h + iy) * w + ix] * weight[((o * cin + i) * k + ky) * k + kx];
            }
          }
        }
        expected.push(s);
      }
    }
  }
  assertAllClose(y.dataSync(), expected, { atol: 1e-5, label: "conv" });
  y.dispose();
  store.dispose();
});

Deno.test("GroupNorm and LayerNorm match their definitions (biased variance, eps inside the sqrt)", () => {
  const store = new ParamStore();
  const gn = new GroupNorm(store.scope(""), "gn", 2, 4, 1e-5);
  const ln = new LayerNorm(store.scope(""), "ln", 4, 1e-5);
  const gamma = Float32Array.from([1, 2, 0.5, -1]);
  const beta = Float32Array.from([0, 0.1, 0.2, 0.3]);
  for (const m of [gn, ln]) {
    m.weight.setFromTorch(gamma);
    m.bias.setFromTorch(beta);
  }
  const x = seq(1 * 3 * 1 * 4, 0.8); // NHWC [1, 3, 1, 4]
  const g = gn.forward(tf.tensor4d(x, [1, 3, 1, 4])).dataSync();
  const expected = new Float32Array(12);
  for (let grp = 0; grp < 2; grp++) {
    const vals: number[] = [];
    for (let p = 0; p < 3; p++) for (let c = grp * 2; c < grp * 2 + 2; c++) vals.push(x[p * 4 + c]);
    const mean = vals.reduce((a, v) => a + v, 0) / vals.length;
    const variance = vals.reduce((a, v) => a + (v - mean) ** 2, 0) / vals.length;
    for (let p = 0; p < 3; p++) {
      for (let c = grp * 2; c < grp * 2 + 2; c++) {
        expected[p * 4 + c] = (x[p * 4 + c] - mean) / Math.sqrt(variance + 1e-5) * gamma[c] + beta[c];
      }
    }
  }
  assertAllClose(g, expected, { atol: 1e-5, label: "group norm" });
  const l = ln.forward(tf.tensor2d(x, [3, 4])).dataSync();
  for (let r = 0; r < 3; r++) {
    const row = Array.from(x.slice(r * 4, r * 4 + 4));
    const mean = row.reduce((a, v) => a + v, 0) / 4;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / 4;
    row.forEach((v, c) =>
      assertAlmostEquals(l[r * 4 + c], (v - mean) / Math.sqrt(variance + 1e-5) * gamma[c] + beta[c], 1e-5)
    );
  }
  store.dispose();
});

Deno.test("activations: exact gelu, tanh gelu, quick_gelu, silu values", () => {
  const x = tf.tensor1d([-2, -0.5, 0, 1, 3]);
  const erf = (v: number) => {
    // Abramowitz-Stegun 7.1.26 is what tfjs uses; compare to a high-precision series instead.
    let s = 0;
    for (let n = 0; n < 60; n++) {
      let term = v;
      for (let k = 1; k <= n; k++) term *= -v * v / k;
      s += term / (2 * n + 1);
    }
    return 2 / Math.sqrt(Math.PI) * s;
  };
  const xs = [-2, -0.5, 0, 1, 3];
  const cases: [Parameters<typeof activate>[1], (v: number) => number][] = [
    ["gelu", (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))],
    ["gelu_tanh", (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))],
    ["quick_gelu", (v) => v / (1 + Math.exp(-1.702 * v))],
    ["silu", (v) => v / (1 + Math.exp(-v))],
  ];
  for (const [name, f] of cases) {
    const y = activate(x, name);
    assertAllClose(y.dataSync(), xs.map(f), { atol: 2e-6, label: name });
    y.dispose();
  }
  x.dispose();
});

Deno.test("multiHeadAttention equals per-head softmax(q k^T / sqrt(d)) v, with an additive mask", () => {
  const [b, l, s, heads, d] = [2, 3, 4, 2, 2];
  const q = seq(b * l * heads * d, 0.3);
  const k = seq(b * s * heads * d, 0.5, 1);
  const v = seq(b * s * heads * d, 0.7, 2);
  const maskData = Float32Array.from({ length: l * s }, (_, i) => (i % s === s - 1 ? -1e30 : 0));
  const out = multiHeadAttention(
    tf.tensor3d(q, [b, l, heads * d]),
    tf.tensor3d(k, [b, s, heads * d]),
    tf.tensor3d(v, [b, s, heads * d]),
    heads,
    CTX,
    tf.tensor2d(maskData, [l, s]),
  ).dataSync();
  const expected = new Float32Array(b * l * heads * d);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < l; i++) {
        const scores = Array.from({ length: s }, (_, j) => {
          let dot = 0;
          for (let c = 0; c < d; c++) {
            dot += q[((bi * l + i) * heads + h) * d + c] * k[((bi * s + j) * heads + h) * d + c];
          }
          return dot / Math.sqrt(d) + maskData[i * s + j];
        });
        const mx = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, x) => a + x, 0);
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < s; j++) acc += e[j] / z * v[((bi * s + j) * heads + h) * d + c];
          expected[((bi * l + i) * heads + h) * d + c] = acc;
        }
      }
    }
  }
  assertAllClose(out, expected, { atol: 1e-6, label: "attention" });
});

Deno.test("timestep embedding: diffusers' formula, flip_sin_to_cos and freq_shift", () => {
  const dim = 8;
  const half = 4;
  for (const [flip, shift] of [[true, 0], [false, 1]] as const) {
    const emb = timestepEmbedding([0, 10, 999], dim, flip, shift).arraySync() as number[][];
    [0, 10, 999].forEach((t, r) => {
      for (let i = 0; i < half; i++) {
        const arg = t * Math.exp(-Math.log(10000) * i / (half - shift));
        const [first, second] = flip ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
        assertAlmostEquals(emb[r][i], first, 2e-4);
        assertAlmostEquals(emb[r][half + i], second, 2e-4);
      }
    });
  }
});

Deno.test("config: unsupported features and inconsistent fields are rejected naming the field", () => {
  const base = {
    block_out_channels: [32, 64],
    down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
  };
  assertEquals(parseUNetConfig({ ...base, attention_head_dim: 8 }).numAttentionHeads, [8, 8]);
  assertEquals(parseUNetConfig({ ...base, attention_head_dim: [4, 8] }).numAttentionHeads, [4, 8]);
  assertEquals(
    parseUNetConfig({ ...base, num_attention_heads: 2, attention_head_dim: 8 }).numAttentionHeads,
    [2, 2],
  );
  assertThrows(
    () => parseUNetConfig({ ...base, down_block_types: ["SimpleCrossAttnDownBlock2D", "DownBlock2D"] }),
    InvalidArgumentError,
    "down_block_types[0]",
  );
  assertThrows(
    () => parseUNetConfig({ ...base, block_out_channels: [32] }),
    InvalidArgumentError,
    "block_out_channels",
  );
  assertThrows(
    () => parseUNetConfig({ ...base, class_embed_type: "timestep" }),
    InvalidArgumentError,
    "class_embed_type",
  );
  assertThrows(() => parseUNetConfig({ ...base, act_fn: "tanhshrink" }), InvalidArgumentError, "act_fn");
  assertThrows(
    () => parseUNetConfig({ ...base, norm_num_groups: 24 }),
    InvalidArgumentError,
    "norm_num_groups",
  );
  assertThrows(
    () => parseUNetConfig({ ...base, layers_per_block: [1, 2, 3] }),
    InvalidArgumentError,
    "layers_per_block",
  );
  assertThrows(
    () => parseUNetConfig({ ...base, resnet_time_scale_shift: "scale_shift" }),
    InvalidArgumentError,
    "resnet_time_scale_shift",
  );
  assertThrows(
    () => parseVaeConfig({ block_out_channels: [32, 64], down_block_types: ["DownEncoderBlock2D"] }),
    InvalidArgumentError,
    "down_block_types",
  );
  assertThrows(
    () => parseClipTextConfig({ hidden_size: 30, num_attention_heads: 4 }),
    InvalidArgumentError,
    "hidden_size",
  );
  assertEquals(
    parseClipTextConfig({ text_config: { hidden_size: 32, num_attention_heads: 4 } }).hiddenSize,
    32,
  );
});

Deno.test("weights: missing, unexpected and mis-shaped keys are all named; 1x1 conv and linear shapes interchange", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const make = () => {
      const store = new ParamStore();
      new Linear(store.scope(""), "proj", 2, 3);
      new Conv2d(store.scope(""), "conv", 1, 2, 3);
      return store;
    };
    const f32 = (shape: number[]) => ({
      dtype: "F32" as const,
      shape,
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
    });
    const path = `${dir}/w.safetensors`;
    await writeSafetensors(path, {
      "proj.weight": f32([3, 2, 1, 1]), // a 1x1 conv weight for a Linear: accepted
      "conv.weight": f32([2, 1, 3, 2]), // wrong shape
      "extra.weight": f32([1]),
    });
    const store = make();
    const src = await SafetensorsSource.open(path);
    const err = await assertRejects(() => loadParams(store, src), FailedPreconditionError);
    for (
      const part of [
        '"proj.bias"',
        '"conv.bias"',
        '"extra.weight"',
        '"conv.weight" is [2,1,3,2], expected [2,1,3,3]',
      ]
    ) {
      assert(err.message.includes(part), `message lacks ${part}: ${err.message}`);
    }
    assert(!err.message.includes('"proj.weight"'), err.message);
    src.close();
    await writeSafetensors(path, {
      "proj.weight": f32([3, 2, 1, 1]),
      "proj.bias": f32([3]),
      "conv.weight": f32([2, 1, 3, 3]),
      "conv.bias": f32([2]),
      "text_model.embeddings.position_ids": f32([1]),
    });
    const src2 = await SafetensorsSource.open(path);
    await loadParams(store, src2, { ignore: (k) => k.endsWith("position_ids") });
    src2.close();
    assertEquals(store.get("proj.weight")!.value.shape, [2, 3]);
    assertEquals(store.count(), 6 + 3 + 18 + 2);
    store.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("vae: the deprecated attention names (query/key/value/proj_attn) are accepted aliases", () => {
  assertEquals(vaeKeyAliases("encoder.mid_block.attentions.0.to_q.weight"), [
    "encoder.mid_block.attentions.0.query.weight",
  ]);
  assertEquals(vaeKeyAliases("decoder.mid_block.attentions.0.to_out.0.bias"), [
    "decoder.mid_block.attentions.0.proj_attn.bias",
  ]);
  assertEquals(vaeKeyAliases("decoder.mid_block.attentions.0.group_norm.weight"), []);
  assertEquals(vaeKeyAliases("decoder.conv_in.weight"), []);
  // and the model declares the new names
  const vae = new AutoencoderKL(parseVaeConfig({ block_out_channels: [32], norm_num_groups: 32 }));
  assert(vae.params.names().includes("encoder.mid_block.attentions.0.to_q.weight"));
  vae.dispose();
});

Deno.test("unet: bad inputs are rejected naming the field", () => {
  const unet = tinyUNet();
  tf.tidy(() => {
    const x = tf.zeros([1, 4, 8, 8]) as tf.Tensor4D;
    const c = tf.zeros([1, 3, 16]) as tf.Tensor3D;
    assertThrows(
      () => unet.forward(tf.zeros([1, 3, 8, 8]) as tf.Tensor4D, [1], c),
      InvalidArgumentError,
      "sample.shape",
    );
    assertThrows(
      () => unet.forward(x, [1], tf.zeros([1, 3, 8]) as tf.Tensor3D),
      InvalidArgumentError,
      "encoder_hidden_states.shape",
    );
    assertThrows(() => unet.forward(x, [1, 2], c), InvalidArgumentError, "timesteps");
    assertThrows(() => unet.forward(x, [NaN], c), InvalidArgumentError, "timesteps");
    assertThrows(() => unet.forward(x, [1], c, { lora: true }), FailedPreconditionError, "no LoRA adapter");
    // a single timestep broadcasts to the batch; odd spatial sizes work (upsampling to the skip's size)
    const two = unet.forward(
      tf.zeros([2, 4, 7, 5]) as tf.Tensor4D,
      tf.tensor1d([10]),
      tf.zeros([2, 3, 16]) as tf.Tensor3D,
    );
    assertEquals(two.shape, [2, 4, 7, 5]);
  });
  unet.dispose();
});

Deno.test("unet: config variants build and run (only_cross_attention, linear projections, 2 transformer layers, centering, per-block heads)", () => {
  const unet = tinyUNet(2, {
    only_cross_attention: true,
    use_linear_projection: true,
    transformer_layers_per_block: 2,
    center_input_sample: true,
    attention_head_dim: [2, 4],
    flip_sin_to_cos: false,
    freq_shift: 1,
  });
  try {
    const names = new Set(unet.params.names());
    // linear projections are 2-D; only_cross_attention makes attn1 read the 16-wide context
    assertEquals(unet.params.get("down_blocks.0.attentions.0.proj_in.weight")!.shape, [32, 32]);
    assertEquals(
      unet.params.get("down_blocks.0.attentions.0.transformer_blocks.1.attn1.to_k.weight")!.shape,
      [32, 16],
    );
    assert(names.has("mid_block.attentions.0.transformer_blocks.1.attn2.to_v.weight"));
    // the mid block never uses only_cross_attention (diffusers 0.24 UNetMidBlock2DCrossAttn)
    assertEquals(unet.params.get("mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight")!.shape, [
      64,
      64,
    ]);
    tf.tidy(() => {
      const y = unet.forward(tf.ones([1, 4, 8, 8]) as tf.Tensor4D, [3.5], tf.ones([1, 2, 16]) as tf.Tensor3D);
      assertEquals(y.shape, [1, 4, 8, 8]);
      assert(y.dataSync().every(Number.isFinite));
    });
  } finally {
    unet.dispose();
  }
});

Deno.test("sliced attention (by heads, and by query rows) equals the unsliced result, mask included", () => {
  const [b, l, s, heads, d] = [2, 5, 3, 4, 2];
  const q = tf.tensor3d(seq(b * l * heads * d, 0.3), [b, l, heads * d]);
  const k = tf.tensor3d(seq(b * s * heads * d, 0.5, 1), [b, s, heads * d]);
  const v = tf.tensor3d(seq(b * s * heads * d, 0.7, 2), [b, s, heads * d]);
  const mask = tf.tensor2d(Float32Array.from({ length: l * s }, (_, i) => (i % s === 0 ? -1e30 : 0)), [l, s]);
  const whole = multiHeadAttention(q, k, v, heads, CTX, mask).dataSync();
  const headBytes = l * s * 4;
  // 3 heads per slice (8 rows: uneven last slice), then 2 query rows per slice (one head is too big).
  for (const limit of [3 * headBytes, 2 * s * 4]) {
    const plan = attentionSlices(b * heads, l, s, limit);
    assert(plan.sliced);
    setTensorByteLimit(limit);
    try {
      const sliced = multiHeadAttention(q, k, v, heads, CTX, mask).dataSync();
      assertAllClose(sliced, whole, { atol: 1e-6, label: `limit ${limit}` });
    } finally {
      setTensorByteLimit(null);
    }
  }
  assertEquals(attentionSlices(b * heads, l, s, 2 * s * 4), {
    sliced: true,
    batchSlice: 1,
    querySlice: 2,
  });
  assertEquals(attentionSlices(8, 4096, 4096, 128 * 2 ** 20), {
    sliced: true,
    batchSlice: 2,
    querySlice: 4096,
  });
  assertEquals(attentionSlices(8, 64, 77, 128 * 2 ** 20).sliced, false);
});

Deno.test("host layout conversion equals toInternalLayout (linear, 1x1 conv, conv)", () => {
  for (
    const [shape, layout] of [[[5, 3], "linear"], [[4, 6, 1, 1], "linear"], [[4, 3, 3, 2], "conv"], [
      [7],
      "plain",
    ]] as const
  ) {
    const n = shape.reduce((a: number, b: number) => a * b, 1);
    const data = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3);
    const want = toInternalLayout(tf.tensor(data, [...shape]), layout);
    assertEquals(internalShape(shape, layout), want.shape);
    assertEquals([...hostInternalLayout(data, shape, layout)], [...want.dataSync()]);
    want.dispose();
  }
});
