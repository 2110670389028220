/** Stateless model calls of the policy core: guided noise prediction, VAE decode and encode. */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { RgbImage } from "../../lib/image/png.ts";
import { validateGuidanceScale } from "../../lib/rdpo/guidance.ts";
import type { Role } from "./core_types.ts";
import type { ConditioningInput, HostTensor } from "./denoiser.ts";
import { decodeToUnit, encodeFromUnit } from "./pipeline.ts";
import type { PolicyParts } from "./policy_parts.ts";
import { withReadback } from "./readback.ts";

/** Guided eps of the policy or the reference at given timestep values (proto PredictNoise). */
export async function predictNoise(parts: PolicyParts, input: {
  conditioning: ConditioningInput;
  latents: HostTensor;
  timesteps: number[];
  guidanceScale: number;
  role: Role;
}): Promise<HostTensor> {
  const [b, c, h, w] = parts.limits.checkLatents(input.latents, "latents");
  parts.limits.checkBatch(b, "latents");
  validateGuidanceScale(input.guidanceScale, "guidance_scale");
  const n = parts.pipeline.schedule.config.numTrainTimesteps;
  if (input.timesteps.length !== b && input.timesteps.length !== 1) {
    throw new InvalidArgumentError(
      "timesteps",
      `expected ${b} values (one per item) or 1, got ${input.timesteps.length}`,
    );
  }
  input.timesteps.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= n) {
      throw new InvalidArgumentError(
        `timesteps[${i}]`,
        `timestep ${t} is not in the training schedule [0, ${n - 1}]`,
      );
    }
  });
  const ts = input.timesteps.length === b ? input.timesteps : new Array(b).fill(input.timesteps[0]);
  const lora = parts.adapters.useLora(input.role);
  const cond = parts.denoiser.conditioning(input.conditioning, b, input.guidanceScale);
  try {
    return await withReadback((rb) =>
      rb.float(
        tf.tidy(() =>
          parts.denoiser.noise(
            tf.tensor4d(input.latents.data, [b, c, h, w]),
            ts,
            cond,
            input.guidanceScale,
            lora,
          )
        ),
      )
    );
  } finally {
    cond.dispose();
  }
}

export async function decodeLatents(
  parts: PolicyParts,
  latents: HostTensor,
  returnTensor: boolean,
): Promise<{ images: RgbImage[]; pixels: HostTensor | null }> {
  const [b, c, h, w] = parts.limits.checkLatents(latents, "latents");
  parts.limits.checkBatch(b, "latents");
  return await withReadback(async (rb) => {
    let images!: Promise<RgbImage[]>;
    let pixels: Promise<HostTensor> | null = null;
    tf.tidy(() => {
      const unit = decodeToUnit(parts.pipeline, tf.tensor4d(latents.data, [b, c, h, w]));
      images = rb.images(unit);
      if (returnTensor) pixels = rb.float(unit);
    });
    return { images: await images, pixels: pixels ? await pixels : null };
  });
}

export async function encodeImages(parts: PolicyParts, images: RgbImage[]): Promise<HostTensor> {
  if (images.length === 0) throw new InvalidArgumentError("images", "must not be empty");
  parts.limits.checkBatch(images.length, "images");
  const { imageWidth: W, imageHeight: H } = parts.pipeline;
  images.forEach((im, i) => {
    if (im.width !== W || im.height !== H) {
      throw new InvalidArgumentError(
        `images[${i}]`,
        `expected ${W}x${H} (the model's image size), got ${im.width}x${im.height}`,
      );
    }
    if (im.data.length !== W * H * 3) {
      throw new InvalidArgumentError(
        `images[${i}].data`,
        `expected ${W * H * 3} bytes (RGB), got ${im.data.length}`,
      );
    }
  });
  return await withReadback((rb) =>
    rb.float(tf.tidy(() => {
      const all = new Float32Array(images.length * H * W * 3);
      images.forEach((im, i) => all.set(Float32Array.from(im.data, (v) => v / 255), i * H * W * 3));
      const unit = tf.transpose(tf.tensor4d(all, [images.length, H, W, 3]), [0, 3, 1, 2]) as tf.Tensor4D;
      return encodeFromUnit(parts.pipeline, unit);
    }))
  );
}
