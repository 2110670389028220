/**
 * Writes a model folder in the diffusers layout with seeded random weights (`deno task make-model`):
 * every component's config.json, its weights under the exact state-dict names in PyTorch layout,
 * optionally half precision (the `fp16` variant file names diffusers' `variant="fp16"` reads) and
 * optionally sharded (`*.safetensors.index.json`, as `save_pretrained(max_shard_size=...)` writes).
 * Tensors are generated and written one at a time, so an SD1.5 folder (4.3 GB in float32) never sits
 * in memory. Each tensor's values come from its own generator, seeded by (seed, key): the same key
 * gets the same values whatever the sharding or dtype.
 */
import { join } from "node:path";
import {
  type StreamedTensorSpec,
  writeSafetensorsStream,
} from "../../../../lib/tensor/safetensors_stream.ts";
import { floatToHalf } from "../../../../lib/tensor/codec.ts";
import { parseClipTextConfig, parseUNetConfig, parseVaeConfig } from "../config.ts";
import { UNet2DConditionModel } from "../unet.ts";
import { AutoencoderKL } from "../vae.ts";
import { CLIPTextModel } from "../clip_text.ts";
import type { Param, ParamStore } from "../params.ts";
import { mulberry32 } from "../random.ts";
import { randomTorchValues } from "../weights.ts";
import { pathExists } from "../../../../lib/fs/exists.ts";
import { type ModelSpec } from "./specs.ts";
import { writeClipTokenizerFolder } from "./tokenizer_folder.ts";

export type WeightDtype = "f32" | "f16";

export interface MakeModelOptions {
  out: string;
  spec: ModelSpec;
  dtype?: WeightDtype;
  seed?: number;
  /** Split each component's weights into shards of at most this many bytes (0: one file). */
  maxShardBytes?: number;
  /** Standard deviation of the random weights. */
  std?: number;
  /** A CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz): tokenizer/ gets transformers' CLIPTokenizer files from it. */
  tokenizerVocab?: string | null;
  onProgress?: (component: string, done: number, total: number) => void;
}

export interface WrittenFile {
  path: string;
  bytes: number;
}

/** FNV-1a of the key, mixed with the seed: the per-tensor generator seed. */
export function tensorSeed(seed: number, key: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** The values `makeModelFolder` writes for one parameter (float32, before any half rounding). */
export function madeValues(p: Param, seed: number, std: number): Float32Array {
  return randomTorchValues(p, mulberry32(tensorSeed(seed, p.name)), std);
}

/** diffusers' `_add_variant`: "a.safetensors" -> "a.fp16.safetensors". */
export function withVariant(file: string, variant: string): string {
  if (!variant) return file;
  const parts = file.split(".");
  return [...parts.slice(0, -1), variant, parts[parts.length - 1]].join(".");
}

function toBytes(values: Float32Array, dtype: WeightDtype): Uint8Array {
  if (dtype === "f32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const half = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = floatToHalf(values[i]);
  return new Uint8Array(half.buffer);
}

async function writeJson(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, JSON.stringify(value, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

/** Groups the params (in declaration order) into shards of at most `maxBytes` (one tensor may exceed it). */
function shardParams(params: Param[], elementBytes: number, maxBytes: number): Param[][] {
  if (!maxBytes) return [params];
  const shards: Param[][] = [[]];
  let size = 0;
  for (const p of params) {
    const n = p.size * elementBytes;
    if (size > 0 && size + n > maxBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(p);
    size += n;
  }
  return shards;
}

async function writeComponent(
  dir: string,
  base: string,
  store: ParamStore,
  o: Required<Pick<MakeModelOptions, "dtype" | "seed" | "maxShardBytes" | "std">> & MakeModelOptions,
  component: string,
): Promise<WrittenFile[]> {
  const variant = o.dtype === "f16" ? "fp16" : "";
  const elementBytes = o.dtype === "f16" ? 2 : 4;
  const st = o.dtype === "f16" ? "F16" : "F32";
  const shards = shardParams(store.params(), elementBytes, o.maxShardBytes);
  const total = store.params().length;
  let done = 0;
  const written: WrittenFile[] = [];
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = shards.length === 1 ? withVariant(`${base}.safetensors`, variant) : withVariant(
      `${base}-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`,
      variant,
    );
    const byName = new Map(shard.map((p) => [p.name, p]));
    const specs: StreamedTensorSpec[] = shard.map((p) => ({ name: p.name, dtype: st, shape: p.shape }));
    const bytes = await writeSafetensorsStream(join(dir, file), specs, (s) => {
      const values = madeValues(byName.get(s.name)!, o.seed, o.std);
      o.onProgress?.(component, ++done, total);
      return toBytes(values, o.dtype);
    }, { format: "pt" });
    for (const p of shard) weightMap[p.name] = file;
    written.push({ path: join(dir, file), bytes });
  }
  if (shards.length > 1) {
    const index = join(dir, withVariant(`${base}.safetensors.index.json`, variant));
    await writeJson(index, { metadata: { total_size: store.count() * elementBytes }, weight_map: weightMap });
    written.push({ path: index, bytes: (await Deno.stat(index)).size });
  }
  return written;
}

/** Writes the folder; refuses to write into a non-empty folder that is not already a model folder. */
export async function makeModelFolder(options: MakeModelOptions): Promise<WrittenFile[]> {
  const o = { dtype: "f32" as WeightDtype, seed: 0, maxShardBytes: 0, std: 0.02, ...options };
  const spec = o.spec;
  if (await pathExists(o.out)) {
    const entries = [...Deno.readDirSync(o.out)].map((e) => e.name);
    if (entries.length && !entries.includes("model_index.json")) {
      throw new Error(`--out ${o.out}: folder exists, is not empty and holds no model_index.json`);
    }
  }
  await Deno.mkdir(o.out, { recursive: true });
  const written: WrittenFile[] = [];
  const component = async (
    name: string,
    config: Record<string, unknown>,
    store: ParamStore,
    base: string,
  ) => {
    const dir = join(o.out, name);
    await Deno.mkdir(dir, { recursive: true });
    await writeJson(join(dir, "config.json"), config);
    written.push(...await writeComponent(dir, base, store, o, name));
  };
  // One component's declarations at a time (shapes only: no weights are allocated).
  await component(
    "unet",
    spec.unet,
    new UNet2DConditionModel(parseUNetConfig(spec.unet)).params,
    "diffusion_pytorch_model",
  );
  await component(
    "vae",
    spec.vae,
    new AutoencoderKL(parseVaeConfig(spec.vae)).params,
    "diffusion_pytorch_model",
  );
  await component(
    "text_encoder",
    spec.textEncoder,
    new CLIPTextModel(parseClipTextConfig(spec.textEncoder)).params,
    "model",
  );
  await Deno.mkdir(join(o.out, "scheduler"), { recursive: true });
  await writeJson(join(o.out, "scheduler", "scheduler_config.json"), spec.scheduler);
  if (o.tokenizerVocab) {
    const maxLength = (spec.textEncoder as { max_position_embeddings: number }).max_position_embeddings;
    for (
      const path of await writeClipTokenizerFolder(o.tokenizerVocab, join(o.out, "tokenizer"), maxLength)
    ) {
      written.push({ path, bytes: (await Deno.stat(path)).size });
    }
  }
  await writeJson(join(o.out, "model_index.json"), {
    ...spec.modelIndex,
    rdpo_random_weights: { seed: o.seed, std: o.std, dtype: o.dtype, spec: spec.name },
  });
  return written;
}
