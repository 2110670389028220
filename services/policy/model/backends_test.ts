/**
 * The same model gives the same numbers on wasm (with lib/tensor/wasm_kernels.ts), cpu and, where
 * a WebGPU adapter exists, webgpu: forward passes, LoRA gradients and full-model gradients (the
 * conv weight gradients run wasm's Conv2DBackpropFilter replacement). Also: no tensor leaks.
 */
import * as tf from "@tensorflow/tfjs-core";
import { assertAllClose, assertEquals } from "../../../lib/testing/assert.ts";
import { type BackendName, hasWebGpuAdapter } from "../../../lib/tensor/backend.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import { LoraAdapter } from "./lora.ts";
import { CLIPTextModel } from "./clip_text.ts";
import { AutoencoderKL } from "./vae.ts";
import { parseClipTextConfig, parseVaeConfig } from "./config.ts";
import { initRandomParams } from "./weights.ts";
import { tinyUNet, unetInputs } from "./test_util.ts";
import { UNet2DConditionModel } from "./unet.ts";

// On a machine whose adapter is Mesa's llvmpipe the first webgpu run compiles shaders for about
// two minutes; RDPO_SKIP_WEBGPU_TESTS=1 skips it.
const skipWebGpu = Deno.env.get("RDPO_SKIP_WEBGPU_TESTS") === "1";
const webgpu = !skipWebGpu && await hasWebGpuAdapter();
if (!webgpu) {
  console.warn(
    `skip: ${
      skipWebGpu ? "RDPO_SKIP_WEBGPU_TESTS=1" : "no WebGPU adapter here"
    }; webgpu comparisons are skipped`,
  );
}

interface Run {
  out: Float32Array;
  loraGrads: Float32Array[];
}

/** Forward (policy) and the LoRA gradients of a squared-error loss on `backend`. */
async function runTiny(
  backend: BackendName,
  fullGrads = false,
): Promise<Run & { baseGrads?: Map<string, Float32Array> }> {
  await initBackend(backend, { gradients: true });
  const unet = tinyUNet(3);
  const lora = LoraAdapter.attach(unet, { rank: 2, seed: 11 });
  // Non-zero B so A gets gradients too.
  for (const v of lora.variables()) if (v.shape[0] === 2) v.assign(tf.fill(v.shape, 0.05));
  const { sample, context, timesteps } = unetInputs(2, 4, 8, 5, 16);
  const loss = () =>
    tf.mean(tf.square(unet.forward(sample, timesteps, context, { lora: true }))) as tf.Scalar;
  try {
    // data(), not dataSync(): webgpu cannot read synchronously under Deno.
    const read = async (t: tf.Tensor) => (await t.data()).slice() as Float32Array;
    const out = unet.forward(sample, timesteps, context, { lora: true });
    const result: Run & { baseGrads?: Map<string, Float32Array> } = { out: await read(out), loraGrads: [] };
    out.dispose();
    const { value, grads } = tf.variableGrads(loss, lora.variables());
    for (const v of lora.variables()) result.loraGrads.push(await read(grads[v.name]));
    tf.dispose([value, ...Object.values(grads)]);
    if (fullGrads) {
      unet.params.setTrainable(true);
      const vars = [...unet.params.variables()];
      const full = tf.variableGrads(loss, vars.map(([, v]) => v));
      result.baseGrads = new Map();
      for (const [k, v] of vars) result.baseGrads.set(k, await read(full.grads[v.name]));
      tf.dispose([full.value, ...Object.values(full.grads)]);
    }
    return result;
  } finally {
    tf.dispose([sample, context]);
    lora.dispose();
    unet.dispose();
  }
}

function compare(
  a: Run & { baseGrads?: Map<string, Float32Array> },
  b: typeof a,
  label: string,
  rtol: number,
): void {
  assertAllClose(a.out, b.out, { rtol, label: `${label} forward` });
  a.loraGrads.forEach((g, i) =>
    assertAllClose(g, b.loraGrads[i], { rtol, atol: 1e-7, label: `${label} lora grad ${i}` })
  );
  if (a.baseGrads && b.baseGrads) {
    for (const [k, g] of a.baseGrads) {
      assertAllClose(g, b.baseGrads.get(k)!, { rtol, atol: 1e-7, label: `${label} grad ${k}` });
    }
  }
}

Deno.test("backends: tiny UNet + LoRA forward, LoRA gradients and full gradients agree on wasm and cpu", async () => {
  const cpu = await runTiny("cpu", true);
  const wasm = await runTiny("wasm", true);
  compare(wasm, cpu, "wasm vs cpu", 1e-4);
});

Deno.test({
  name: "backends: tiny UNet + LoRA forward and LoRA gradients agree on webgpu and cpu",
  ignore: !webgpu,
  fn: async () => {
    const cpu = await runTiny("cpu");
    const gpu = await runTiny("webgpu");
    compare(gpu, cpu, "webgpu vs cpu", 1e-4);
    await initBackend("wasm");
  },
});

Deno.test("leaks: repeated UNet (with and without LoRA, with gradients), VAE and CLIP passes keep numTensors constant", async () => {
  await initBackend("wasm", { gradients: true });
  const unet: UNet2DConditionModel = tinyUNet(5);
  const lora = LoraAdapter.attach(unet, { rank: 2 });
  const vae = new AutoencoderKL(
    parseVaeConfig({ block_out_channels: [32, 32], norm_num_groups: 32, latent_channels: 4 }),
  );
  initRandomParams(vae.params, 1);
  const clip = new CLIPTextModel(
    parseClipTextConfig({
      vocab_size: 50,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 8,
    }),
    false,
  );
  initRandomParams(clip.params, 2);
  const { sample, context, timesteps } = unetInputs(1, 4, 8, 3, 16);
  const image = tf.zeros([1, 3, 8, 8]) as tf.Tensor4D;
  const optimizer = tf.train.adam(1e-3);
  const pass = () => {
    tf.dispose(unet.forward(sample, timesteps, context, { lora: true }));
    tf.dispose(unet.forward(sample, timesteps, context, { lora: false }));
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(unet.forward(sample, timesteps, context, { lora: true }))) as tf.Scalar,
      lora.variables(),
    );
    optimizer.applyGradients(grads as unknown as tf.NamedTensorMap & Record<string, tf.Variable>);
    tf.dispose([value, ...Object.values(grads)]);
    const { mean, logvar } = vae.encode(image);
    tf.dispose([mean, logvar, vae.decode(mean)]);
    const t = clip.forward([[1, 2, 3, 49, 49]]);
    tf.dispose([t.lastHiddenState, t.pooled]);
  };
  try {
    pass(); // first pass creates the optimizer's slots
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) pass();
    assertEquals(tf.memory().numTensors, before);
  } finally {
    optimizer.dispose();
    tf.dispose([sample, context, image]);
    lora.dispose();
    unet.dispose();
    vae.dispose();
    clip.dispose();
  }
});
