/**
 * `deno task pretrain` is resumable: a run stopped at a checkpoint and resumed ends in exactly the
 * state of an uninterrupted run (weights, Adam moments, EMA, loss history), and the exported model
 * folder loads in the policy pipeline.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { readSafetensors } from "../lib/tensor/safetensors.ts";
import { pretrain, type PretrainOptions } from "./pretrain.ts";

function options(out: string, steps: number): PretrainOptions {
  return {
    steps,
    batch: 2,
    lr: 1e-3,
    warmup: 2,
    seed: 5,
    out,
    checkpointEvery: 1,
    dropPrompt: 0.1,
    ema: 0.9,
    backend: "wasm",
    log: () => {},
  };
}

Deno.test({
  name: "pretrain: stop + resume equals an uninterrupted run; the export is the EMA model folder",
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "rdpo-pretrain-" });
    try {
      const straight = join(root, "straight"), resumed = join(root, "resumed");
      const a = await pretrain(options(straight, 3));
      await pretrain(options(resumed, 2));
      const b = await pretrain(options(resumed, 3));
      assertEquals(b.losses, a.losses, "loss history");
      assertEquals(a.losses.length, 3);
      assert(a.losses.every(Number.isFinite), `losses ${a.losses}`);

      const sa = await readSafetensors(join(straight, "checkpoint", "state.safetensors"));
      const sb = await readSafetensors(join(resumed, "checkpoint", "state.safetensors"));
      assertEquals(sb.metadata, sa.metadata);
      assertEquals(sa.metadata.ema_steps, "3");
      assertEquals([...sb.tensors.keys()].sort(), [...sa.tensors.keys()].sort());
      assert([...sa.tensors.keys()].some((k) => k.startsWith("ema.")), "the checkpoint holds the EMA");
      for (const [name, t] of sa.tensors) {
        assertEquals(
          Array.from(sb.tensors.get(name)!.data as Float32Array),
          Array.from(t.data as Float32Array),
          name,
        );
      }

      const index = JSON.parse(await Deno.readTextFile(join(straight, "model", "model_index.json")));
      assertEquals(index.rdpo_pretraining.weights, "ema decay 0.9, 3 updates");
      const unet = await readSafetensors(
        join(straight, "model", "unet", "diffusion_pytorch_model.safetensors"),
      );
      // A bias: the same layout in the checkpoint (internal) and the export (PyTorch).
      const [key, exported] = [...unet.tensors].find(([k]) => k.endsWith("conv_in.bias"))!;
      const ema = sa.tensors.get(`ema.unet.${key}`)!.data as Float32Array;
      const raw = sa.tensors.get(`param.unet.${key}`)!.data as Float32Array;
      assertEquals(
        Array.from(exported.data as Float32Array),
        Array.from(ema),
        "the exported weights are the EMA",
      );
      assert(raw.some((v, i) => v !== ema[i]), "EMA differs from the raw weights");
      for (const f of ["loss.csv", "loss.svg"]) assert((await Deno.stat(join(straight, f))).size > 0, f);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
