/**
 * Fills a ParamStore from safetensors by exact key name, one tensor at a time (a multi-GB
 * checkpoint is never read whole), and reports every missing, unexpected or mis-shaped key by name.
 * Sharded checkpoints (`*.safetensors.index.json`, as `save_pretrained` writes above 10 GB by
 * default) are read through their `weight_map`.
 */
import { SafetensorsFile } from "../../../lib/tensor/safetensors.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../../../lib/errors.ts";
import type { ParamLayout, ParamStore } from "./params.ts";
import { dirname, join } from "node:path";
import { fillNormal, mulberry32 } from "./random.ts";
import { pathExists } from "../../../lib/fs/exists.ts";

/** Tensors readable by name from one file or from the shards of an index. */
export interface WeightSource {
  readonly description: string;
  names(): string[];
  shape(name: string): number[];
  readFloat32(name: string): Promise<Float32Array>;
  close(): void;
}

/** A WeightSource over open safetensors files (a name found in several: the first wins). */
export class SafetensorsSource implements WeightSource {
  readonly #byName = new Map<string, SafetensorsFile>();

  constructor(readonly files: SafetensorsFile[], readonly description: string) {
    for (const f of files) {
      for (const n of f.names()) if (!this.#byName.has(n)) this.#byName.set(n, f);
    }
  }

  static async open(path: string): Promise<SafetensorsSource> {
    return new SafetensorsSource([await SafetensorsFile.open(path)], path);
  }

  /** Opens the shards named by a `*.safetensors.index.json`. */
  static async openIndex(indexPath: string): Promise<SafetensorsSource> {
    const index = JSON.parse(await Deno.readTextFile(indexPath)) as { weight_map?: Record<string, string> };
    if (!index.weight_map || typeof index.weight_map !== "object") {
      throw new InvalidArgumentError(indexPath, "weight_map: missing or not an object");
    }
    const dir = dirname(indexPath);
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    const files: SafetensorsFile[] = [];
    try {
      for (const s of shards) files.push(await SafetensorsFile.open(join(dir, s)));
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
    const byShard = new Map(shards.map((s, i) => [s, files[i]]));
    for (const [key, shard] of Object.entries(index.weight_map)) {
      if (!byShard.get(shard)!.names().includes(key)) {
        for (const f of files) f.close();
        throw new FailedPreconditionError(
          `${indexPath}: weight_map says "${key}" is in ${shard}, which has no such tensor`,
        );
      }
    }
    return new SafetensorsSource(files, indexPath);
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }

  shape(name: string): number[] {
    return this.#file(name).entry(name).shape;
  }

  async readFloat32(name: string): Promise<Float32Array> {
    return (await this.#file(name).readFloat32(name)).data;
  }

  #file(name: string): SafetensorsFile {
    const f = this.#byName.get(name);
    if (!f) throw new NotFoundError(`${this.description}: no tensor named "${name}"`);
    return f;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/**
 * Opens `<dir>/<base>.safetensors`, or the shards of `<dir>/<base>.safetensors.index.json`
 * (diffusers names its weights `diffusion_pytorch_model`, transformers `model`). With a `variant`
 * (diffusers' `variant="fp16"`) the names are `<base>.<variant>.safetensors` and
 * `<base>.safetensors.index.<variant>.json`, as `save_pretrained(variant=...)` writes them; half
 * precision tensors are widened to float32 as they are read. A missing file fails naming the folder
 * and every name looked for.
 */
export async function openWeights(
  dir: string,
  bases: readonly string[],
  variant = "",
): Promise<WeightSource> {
  if (variant && !/^[A-Za-z0-9_-]+$/.test(variant)) {
    throw new InvalidArgumentError("variant", `expected letters, digits, "_" or "-", got "${variant}"`);
  }
  const tried: string[] = [];
  for (const base of bases) {
    const single = variant ? `${base}.${variant}.safetensors` : `${base}.safetensors`;
    const index = variant ? `${base}.safetensors.index.${variant}.json` : `${base}.safetensors.index.json`;
    tried.push(single, index);
    if (await pathExists(join(dir, single))) return await SafetensorsSource.open(join(dir, single));
    if (await pathExists(join(dir, index))) return await SafetensorsSource.openIndex(join(dir, index));
  }
  let present = "";
  try {
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".safetensors"));
    if (names.length) present = `; it holds ${listNames(names.sort())}`;
  } catch {
    present = "; the folder does not exist";
  }
  throw new NotFoundError(
    `${dir}: no weights${variant ? ` of variant "${variant}"` : ""} (looked for ${
      tried.join(", ")
    })${present}`,
  );
}

export interface LoadOptions {
  /** Prefix of the model's keys inside the file (e.g. "unet." for a combined checkpoint). */
  prefix?: string;
  /** Keys present in the file that the model does not use and that are not an error. */
  ignore?: (key: string) => boolean;
  /** Older names accepted for a key (e.g. the VAE's deprecated `query` for `to_q`). */
  aliases?: (key: string) => string[];
  /** Create the variables trainable (full fine-tuning). Default false. */
  trainable?: boolean;
}

/** Lists at most `max` names, then a count of the rest. */
export function listNames(names: readonly string[], max = 12): string {
  const shown = names.slice(0, max).map((n) => `"${n}"`).join(", ");
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * Loads every declared parameter of `store` from `source`. Throws FailedPreconditionError naming
 * the missing keys, the unexpected keys and the shape mismatches (all of them, checked before any
 * tensor data is read).
 */
export async function loadParams(
  store: ParamStore,
  source: WeightSource,
  options: LoadOptions = {},
): Promise<void> {
  const prefix = options.prefix ?? "";
  const available = new Set(source.names());
  const used = new Set<string>();
  const plan: { param: string; key: string }[] = [];
  const missing: string[] = [];
  const badShape: string[] = [];
  for (const p of store.params()) {
    const candidates = [p.name, ...(options.aliases?.(p.name) ?? [])].map((n) => prefix + n);
    const key = candidates.find((k) => available.has(k));
    if (!key) {
      missing.push(prefix + p.name);
      continue;
    }
    used.add(key);
    const shape = source.shape(key);
    const want = p.shape;
    // A Linear may be stored as a 1x1 conv ([out, in, 1, 1]) and vice versa (diffusers converts
    // between them for proj_in/proj_out and the VAE attention); accept equal element layouts.
    const same = shape.length === want.length && shape.every((d, i) => d === want[i]);
    const compatible = same ||
      (p.layout === "linear" && shape[0] === want[0] && sizeOf(shape) === sizeOf(want) &&
        shape.slice(2).every((d) => d === 1) && want.slice(2).every((d) => d === 1));
    if (!compatible) {
      badShape.push(`"${key}" is ${JSON.stringify(shape)}, expected ${JSON.stringify(want)}`);
      continue;
    }
    plan.push({ param: p.name, key });
  }
  const unexpected = [...available].filter((k) =>
    !used.has(k) && k.startsWith(prefix) && !(options.ignore?.(k.slice(prefix.length)) ?? false)
  );
  const problems: string[] = [];
  if (missing.length) problems.push(`missing keys (${missing.length}): ${listNames(missing)}`);
  if (unexpected.length) problems.push(`unexpected keys (${unexpected.length}): ${listNames(unexpected)}`);
  if (badShape.length) {
    problems.push(`shape mismatches (${badShape.length}): ${badShape.slice(0, 12).join("; ")}`);
  }
  if (problems.length) {
    throw new FailedPreconditionError(
      `${source.description}: weights do not match the model: ${problems.join("; ")}`,
    );
  }
  for (const { param, key } of plan) {
    store.get(param)!.setFromTorch(await source.readFloat32(key), options.trainable ?? false);
  }
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Fills every parameter with deterministic pseudo-random values (benchmarks and tests without a
 * checkpoint): N(0, std) weights from a seeded generator, norm scales 1, biases 0.
 */
export function initRandomParams(store: ParamStore, seed = 0, std = 0.02): void {
  const uniform = mulberry32(seed);
  for (const p of store.params()) p.setFromTorch(randomTorchValues(p, uniform, std));
}

/**
 * One parameter's random values in PyTorch layout, drawn from `uniform` (the stream continues
 * across parameters in declaration order, so writing a folder with these values and loading it
 * equals `initRandomParams` with the same seed).
 */
export function randomTorchValues(
  p: { name: string; shape: readonly number[]; layout: ParamLayout },
  uniform: () => number,
  std: number,
): Float32Array {
  const data = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
  const isNormScale = p.layout === "plain" && p.shape.length === 1 && /norm[^.]*\.weight$/.test(p.name);
  const isBias = p.layout === "plain" && p.shape.length === 1 && p.name.endsWith(".bias");
  if (isNormScale) data.fill(1);
  else if (!isBias) fillNormal(data, uniform, std);
  return data;
}
