/**
 * No tensor of a full-size SD1.5 UNet forward at 64x64 latents (batch 2 with classifier-free
 * guidance: 4 samples, 77 context tokens) exceeds WebGPU's default 128 MiB storage-binding limit.
 * Runs on the shape backend (lib/tensor/shape_backend.ts): real layers, real kernels' shapes, no
 * values, so the 860 M-parameter model costs seconds here.
 */
import * as tf from "@tensorflow/tfjs-core";
import { assert, assertEquals } from "../../../../lib/testing/assert.ts";
import { useShapeBackend } from "../../../../lib/tensor/shape_backend.ts";
import { setTensorByteLimit } from "../../../../lib/tensor/limits.ts";
import { parseUNetConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { SD15_UNET_CONFIG, sd15Json } from "./configs.ts";
import { zeroParams } from "./memory.ts";

const MiB = 2 ** 20;

Deno.test("sd15 unet forward at 64x64, batch 2 + CFG: no tensor over 128 MiB (shapes only)", async () => {
  const backend = await useShapeBackend();
  const unet = new UNet2DConditionModel(parseUNetConfig(sd15Json(SD15_UNET_CONFIG)));
  try {
    zeroParams(unet.params);
    const sample = tf.zeros([4, 4, 64, 64]) as tf.Tensor4D;
    const context = tf.zeros([4, 77, 768]) as tf.Tensor3D;
    const forward = () => {
      backend.resetPeak();
      const y = unet.forward(sample, [999, 999, 999, 999], context);
      assertEquals(y.shape, [4, 4, 64, 64]);
      y.dispose();
      return { ...backend.largest };
    };
    // Without a limit the self-attention scores of the 64x64 level are [32, 4096, 4096]: 2 GiB.
    const unsliced = forward();
    assertEquals(unsliced.bytes, 32 * 4096 * 4096 * 4);
    setTensorByteLimit(128 * MiB);
    backend.watchBytes = 128 * MiB;
    const sliced = forward();
    assert(
      sliced.bytes <= 128 * MiB,
      `largest ${sliced.bytes / MiB} MiB ${JSON.stringify(sliced.shape)} from ${sliced.kernel}; over: ${
        JSON.stringify(backend.over.slice(0, 5))
      }`,
    );
    // The largest is a 2-head slice of the scores: [2, 4096, 4096] float32 = exactly 128 MiB.
    assertEquals(sliced.shape, [2, 4096, 4096]);
  } finally {
    setTensorByteLimit(null);
    unet.dispose();
    tf.disposeVariables();
  }
});
