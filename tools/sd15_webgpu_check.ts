/**
 * `deno task sd15:webgpu-check`: SD1.5's full UNet (859.5 M parameters, seeded random weights) on
 * the webgpu backend at 8x8 latents, batch 1: a forward (finite eps) and one LoRA train step with
 * checkpointed blocks (forward, backward, Adam), printing the adapter, the step's loss, how far
 * lora_B moved, and tfjs' GPU allocation. On lavapipe (no GPU) it takes about 5 minutes and 3.5 GB,
 * so it is a task, not a suite test. The whole pipeline's table is `deno task bench --only sd15`.
 */
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "../lib/tensor/backend.ts";
import { describeDevice } from "../lib/tensor/limits.ts";
import { parseUNetConfig } from "../services/policy/model/config.ts";
import { UNet2DConditionModel } from "../services/policy/model/unet.ts";
import { initRandomParams } from "../services/policy/model/weights.ts";
import { LoraAdapter } from "../services/policy/model/lora.ts";
import { modelSpec } from "../services/policy/model/sd15/specs.ts";
import type { FlagSpecs } from "../lib/rpc/flags.ts";
import { type CommandSpec, runCommand } from "../lib/cli/command.ts";

export const SD15_WEBGPU_CHECK_FLAGS = {
  latent: {
    type: "int",
    default: 8,
    min: 1,
    description: "latent height and width (8: the lavapipe-sized check)",
  },
  rank: { type: "int", default: 4, min: 1, description: "LoRA rank of the train step" },
} as const satisfies FlagSpecs;

export const SD15_WEBGPU_CHECK_COMMAND: CommandSpec<typeof SD15_WEBGPU_CHECK_FLAGS> = {
  name: "sd15:webgpu-check",
  summary: "SD1.5's full UNet forward and one checkpointed LoRA step on the webgpu backend",
  description: "Seeded random weights (859.5 M parameters), batch 1. On lavapipe (no GPU) it takes about " +
    "5 minutes and 3.5 GB at 8x8 latents; larger --latent needs a real GPU.",
  flags: SD15_WEBGPU_CHECK_FLAGS,
  examples: ["deno task sd15:webgpu-check", "deno task sd15:webgpu-check --latent 16 --rank 8"],
  async run(values) {
    const t0 = performance.now();
    const at = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
    await initBackend("webgpu", { gradients: true });
    console.log(JSON.stringify(await describeDevice()));
    const unet = new UNet2DConditionModel(parseUNetConfig(modelSpec("sd15").unet));
    initRandomParams(unet.params, 1);
    unet.gradientCheckpointing = true;
    console.log(`weights: ${unet.parameterCount()} parameters at ${at()}`);
    const lora = LoraAdapter.attach(unet, { rank: values.rank, seed: 0 });
    const x = tf.randomNormal([1, 4, values.latent, values.latent], 0, 1, "float32", 1) as tf.Tensor4D;
    const ctx = tf.randomNormal([1, 77, 768], 0, 1, "float32", 2) as tf.Tensor3D;
    const eps = unet.forward(x, [999], ctx, { lora: true });
    const e = await eps.data();
    console.log(`forward eps ${eps.shape} finite ${e.every(Number.isFinite)} at ${at()}`);
    const opt = tf.train.adam(1e-3);
    const before = await lora.variables()[1].data();
    const loss = opt.minimize(
      () => tf.mean(tf.square(unet.forward(x, [999], ctx, { lora: true }))) as tf.Scalar,
      true,
      lora.variables(),
    )!;
    console.log(`LoRA step loss ${(await loss.data())[0]} at ${at()}`);
    const after = await lora.variables()[1].data();
    let moved = 0;
    for (let i = 0; i < after.length; i++) moved = Math.max(moved, Math.abs(after[i] - before[i]));
    console.log(`max |delta lora_B| ${moved} at ${at()}; tf.memory ${JSON.stringify(tf.memory())}`);
  },
};

if (import.meta.main) await runCommand(SD15_WEBGPU_CHECK_COMMAND);
