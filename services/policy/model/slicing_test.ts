/**
 * A UNet forward and its LoRA gradients are the same with attention slicing and feed-forward
 * chunking forced on (a tensor limit far below the tensors' sizes) as without.
 */
import * as tf from "@tensorflow/tfjs-core";
import { assert, assertAllClose, assertEquals } from "../../../lib/testing/assert.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import { setTensorByteLimit } from "../../../lib/tensor/limits.ts";
import { LoraAdapter } from "./lora.ts";
import { tinyUNet, unetInputs } from "./test_util.ts";

await initBackend("cpu", { gradients: true });

Deno.test("UNet forward and LoRA gradients: sliced under a small tensor limit = unsliced", () => {
  const unet = tinyUNet(3);
  const lora = LoraAdapter.attach(unet, { rank: 2, seed: 1 });
  // B is zero at init: random A and B so the LoRA path and both gradients are exercised.
  lora.variables().forEach((v, i) => v.assign(tf.randomNormal(v.shape, 0, 0.1, "float32", i)));
  const { sample, context, timesteps } = unetInputs(2, 4, 8, 7, 16);
  const run = () => {
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(unet.forward(sample, timesteps, context, { lora: true }))) as tf.Scalar,
      lora.variables(),
    );
    const out = unet.forward(sample, timesteps, context, { lora: true });
    return {
      out: out.dataSync(),
      loss: value.dataSync(),
      grads: Object.values(grads).map((g) => g.dataSync()),
    };
  };
  const whole = run();
  setTensorByteLimit(32768); // scores [8, 64, 64]: 128 KiB, 2 heads a slice; GEGLU [2, 64, 256]: 4 chunks
  try {
    const sliced = run();
    assertAllClose(sliced.out, whole.out, { atol: 1e-5, label: "forward" });
    assertAllClose(sliced.loss, whole.loss, { atol: 1e-6, label: "loss" });
    sliced.grads.forEach((g, i) => assertAllClose(g, whole.grads[i], { atol: 1e-5, label: `grad ${i}` }));
  } finally {
    setTensorByteLimit(null);
    unet.dispose();
  }
});

Deno.test("UNet LoRA gradients with checkpointed blocks = without", () => {
  const unet = tinyUNet(4);
  const lora = LoraAdapter.attach(unet, { rank: 2, seed: 2 });
  lora.variables().forEach((v, i) => v.assign(tf.randomNormal(v.shape, 0, 0.1, "float32", 10 + i)));
  const { sample, context, timesteps } = unetInputs(2, 4, 8, 7, 16);
  const grads = (checkpoint: boolean) => {
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(
      () =>
        tf.mean(tf.square(unet.forward(sample, timesteps, context, { lora: true, checkpoint }))) as tf.Scalar,
      lora.variables(),
    );
    const out = { loss: value.dataSync(), grads: Object.values(grads).map((g) => g.dataSync()) };
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    return { ...out, leaked: tf.memory().numTensors - before };
  };
  try {
    const plain = grads(false);
    const ckpt = grads(true);
    assertAllClose(ckpt.loss, plain.loss, { atol: 1e-7, label: "loss" });
    assert(plain.grads.length > 0);
    ckpt.grads.forEach((g, i) => assertAllClose(g, plain.grads[i], { atol: 1e-6, label: `grad ${i}` }));
    assertEquals(ckpt.leaked, plain.leaked, "checkpointing leaks no tensors");
  } finally {
    unet.dispose();
  }
});
