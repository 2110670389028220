/**
 * Parity with the reference implementations (../shared/fixtures/golden, README there): every value
 * (configs, inputs, outputs, tolerance) is read from the fixture files. Runs on wasm and cpu.
 */
import * as tf from "@tensorflow/tfjs-core";
import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import type { BackendName } from "../../../lib/tensor/backend.ts";
import { initBackend } from "../../../lib/tensor/backend.ts";
import { loadClipText, loadUNet, loadVae } from "./loaders.ts";
import { LoraAdapter } from "./lora.ts";
import { assertParity, numbersOf, readIo, relativeTolerance, tensorOf } from "./test_util.ts";

const golden = (...p: string[]) => fixturePath("golden", ...p);
const files = (
  dir: string,
  weights = true,
) => [
  golden(dir, "config.json"),
  golden(dir, "io.safetensors"),
  ...(weights ? [golden(dir, "weights.safetensors")] : []),
];

const BACKENDS: BackendName[] = ["wasm", "cpu"];

for (const backend of BACKENDS) {
  for (const dir of ["unet_a", "unet_b"]) {
    Deno.test({
      name: `golden ${dir}: UNet2DConditionModel output.sample (${backend})`,
      ignore: !hasFixtures(...files(dir)),
      fn: async () => {
        await initBackend(backend);
        const io = await readIo(golden(dir, "io.safetensors"));
        const rel = await relativeTolerance(golden(dir, "config.json"));
        const unet = await loadUNet({
          config: golden(dir, "config.json"),
          weights: golden(dir, "weights.safetensors"),
        });
        try {
          tf.tidy(() => {
            const out = unet.forward(
              tensorOf(io, "input.sample") as tf.Tensor4D,
              numbersOf(io, "input.timestep"),
              tensorOf(io, "input.encoder_hidden_states") as tf.Tensor3D,
            );
            assertParity(out, io, "output.sample", rel, `${dir} output.sample`);
          });
        } finally {
          unet.dispose();
        }
      },
    });
  }

  Deno.test({
    name: `golden lora_a: adapter on and off over unet_a (${backend})`,
    ignore: !hasFixtures(...files("lora_a"), ...files("unet_a")),
    fn: async () => {
      await initBackend(backend);
      const io = await readIo(golden("lora_a", "io.safetensors"));
      const rel = await relativeTolerance(golden("lora_a", "config.json"));
      const cfg = JSON.parse(await Deno.readTextFile(golden("lora_a", "config.json"))).config as {
        rank: number;
        alpha: number;
        targets: string[];
      };
      const unet = await loadUNet({
        config: golden("unet_a", "config.json"),
        weights: golden("unet_a", "weights.safetensors"),
      });
      // The fixture file carries no lora metadata: alpha comes from its config.json.
      const lora = await LoraAdapter.load(unet, golden("lora_a", "weights.safetensors"), {
        alpha: cfg.alpha,
      });
      try {
        if (lora.rank !== cfg.rank) throw new Error(`rank ${lora.rank}, fixture says ${cfg.rank}`);
        if ([...lora.targetModules].sort().join() !== [...cfg.targets].sort().join()) {
          throw new Error(`targets ${lora.targetModules}, fixture says ${cfg.targets}`);
        }
        tf.tidy(() => {
          const args = [
            tensorOf(io, "input.sample") as tf.Tensor4D,
            numbersOf(io, "input.timestep"),
            tensorOf(io, "input.encoder_hidden_states") as tf.Tensor3D,
          ] as const;
          assertParity(
            unet.forward(...args, { lora: true }),
            io,
            "output.sample",
            rel,
            "lora_a output.sample",
          );
          assertParity(
            unet.forward(...args, { lora: false }),
            io,
            "output.sample_without_lora",
            rel,
            "lora_a output.sample_without_lora",
          );
        });
      } finally {
        lora.dispose();
        unet.dispose();
      }
    },
  });

  Deno.test({
    name: `golden vae: AutoencoderKL encode (mean, logvar) and decode (${backend})`,
    ignore: !hasFixtures(...files("vae")),
    fn: async () => {
      await initBackend(backend);
      const io = await readIo(golden("vae", "io.safetensors"));
      const rel = await relativeTolerance(golden("vae", "config.json"));
      const vae = await loadVae({
        config: golden("vae", "config.json"),
        weights: golden("vae", "weights.safetensors"),
      });
      try {
        const cfg = JSON.parse(await Deno.readTextFile(golden("vae", "config.json"))).config;
        if (cfg.scaling_factor !== undefined && vae.scalingFactor !== cfg.scaling_factor) {
          throw new Error(`scalingFactor ${vae.scalingFactor}, config says ${cfg.scaling_factor}`);
        }
        tf.tidy(() => {
          const { mean, logvar } = vae.encode(tensorOf(io, "input.image") as tf.Tensor4D);
          assertParity(mean, io, "output.latent_mean", rel, "vae output.latent_mean");
          assertParity(logvar, io, "output.latent_logvar", rel, "vae output.latent_logvar");
          assertParity(
            vae.decode(tensorOf(io, "input.latents") as tf.Tensor4D),
            io,
            "output.decoded",
            rel,
            "vae output.decoded",
          );
        });
      } finally {
        vae.dispose();
      }
    },
  });

  Deno.test({
    name: `golden clip_text: last_hidden_state, pooler_output, text_embeds (${backend})`,
    ignore: !hasFixtures(...files("clip_text")),
    fn: async () => {
      await initBackend(backend);
      const io = await readIo(golden("clip_text", "io.safetensors"));
      const rel = await relativeTolerance(golden("clip_text", "config.json"));
      const source = {
        config: golden("clip_text", "config.json"),
        weights: golden("clip_text", "weights.safetensors"),
      };
      const plain = await loadClipText(source);
      const withProjection = io.has("output.text_embeds")
        ? await loadClipText({ ...source, withProjection: true })
        : null;
      try {
        tf.tidy(() => {
          const ids = tensorOf(io, "input.input_ids") as tf.Tensor2D;
          const out = plain.forward(ids);
          assertParity(out.lastHiddenState, io, "output.last_hidden_state", rel, "clip last_hidden_state");
          assertParity(out.pooled, io, "output.pooler_output", rel, "clip pooler_output");
          if (out.textEmbeds !== null) throw new Error("CLIPTextModel must not project");
          if (withProjection) {
            assertParity(
              withProjection.forward(ids).textEmbeds!,
              io,
              "output.text_embeds",
              rel,
              "clip text_embeds",
            );
          }
        });
      } finally {
        plain.dispose();
        withProjection?.dispose();
      }
    },
  });
}
