/**
 * Writes a model folder in the diffusers layout that `loadPipeline` reads (the inverse of
 * pipeline.ts): configs as JSON and weights as safetensors under their exact key names, in PyTorch
 * layout. Used to ship the project's own model (issue 7) and to make small models for tests.
 */
import { join } from "node:path";
import { type TensorRecord, writeSafetensors } from "../../lib/tensor/safetensors.ts";
import type { WordTokenizerConfig } from "../../lib/text/word_tokenizer.ts";
import type { ParamStore } from "./model/params.ts";

/** The params of a model as PyTorch-layout float32 records, by key name (async reads: WebGPU). */
export async function torchTensors(params: ParamStore): Promise<Map<string, TensorRecord>> {
  const out = new Map<string, TensorRecord>();
  for (const p of params.params()) {
    const t = p.toTorch();
    try {
      out.set(p.name, { dtype: "F32", shape: [...p.shape], data: (await t.data()) as Float32Array });
    } finally {
      t.dispose();
    }
  }
  return out;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

export interface ModelFolderContents {
  unet: { config: Record<string, unknown>; params: ParamStore };
  textEncoder?: { config: Record<string, unknown>; params: ParamStore };
  vae?: { config: Record<string, unknown>; params: ParamStore };
  tokenizer?: WordTokenizerConfig;
  scheduler?: Record<string, unknown>;
  /** Free-form facts written to model_index.json. */
  index?: Record<string, unknown>;
}

/** Writes `contents` into `dir` (created if needed); each file is replaced atomically. */
export async function saveModelFolder(dir: string, contents: ModelFolderContents): Promise<void> {
  const part = async (name: string, config: Record<string, unknown>, params: ParamStore, file: string) => {
    await Deno.mkdir(join(dir, name), { recursive: true });
    await writeJson(join(dir, name, "config.json"), config);
    await writeSafetensors(join(dir, name, file), await torchTensors(params), { format: "pt" });
  };
  await Deno.mkdir(dir, { recursive: true });
  await part("unet", contents.unet.config, contents.unet.params, "diffusion_pytorch_model.safetensors");
  if (contents.textEncoder) {
    await part("text_encoder", contents.textEncoder.config, contents.textEncoder.params, "model.safetensors");
  }
  if (contents.vae) {
    await part("vae", contents.vae.config, contents.vae.params, "diffusion_pytorch_model.safetensors");
  }
  if (contents.tokenizer) {
    await Deno.mkdir(join(dir, "tokenizer"), { recursive: true });
    await writeJson(join(dir, "tokenizer", "tokenizer_config.json"), contents.tokenizer);
  }
  if (contents.scheduler) {
    await Deno.mkdir(join(dir, "scheduler"), { recursive: true });
    await writeJson(join(dir, "scheduler", "scheduler_config.json"), contents.scheduler);
  }
  await writeJson(join(dir, "model_index.json"), {
    _class_name: "RdpoPipeline",
    unet: ["diffusers", "UNet2DConditionModel"],
    ...(contents.textEncoder ? { text_encoder: ["transformers", "CLIPTextModel"] } : {}),
    ...(contents.vae ? { vae: ["diffusers", "AutoencoderKL"] } : {}),
    ...(contents.scheduler ? { scheduler: ["diffusers", "DDIMScheduler"] } : {}),
    ...contents.index,
  });
}
