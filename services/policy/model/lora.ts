/**
 * LoRA adapters on a model's Linear layers (RDPO_SPEC.md section 5: rank 4 on to_q, to_k, to_v,
 * to_out.0). Forward: y = W x + b + (alpha / rank) * B (A x). The base weights exist once: the
 * policy is a forward with `{ lora: true }`, the reference model the same call with
 * `{ lora: false }` (RDPO_SPEC.md section 2: at initialisation h = 0 exactly, since B = 0).
 *
 * Initialisation follows PEFT's default (`init_lora_weights=True`): A ~ kaiming_uniform(a=sqrt(5))
 * on the [r, in] weight, which is U(-1/sqrt(in), 1/sqrt(in)); B = 0. The uniform numbers come from
 * a seeded mulberry32 generator, drawn module by module in sorted key order, each A in PyTorch
 * [r, in] row-major order, so an adapter is reproducible from (seed, rank, targets, model).
 *
 * A and B are trainable `tf.Variable`s; the base weights are frozen variables, so
 * `tf.variableGrads(f, adapter.variables())` (or an optimizer's `minimize(f, false, varList)`)
 * trains only the adapter.
 *
 * File format: the PEFT naming diffusers' `load_lora_weights` reads for SD1.5,
 * `unet.<module path>.lora_A.weight` [r, in] and `unet.<module path>.lora_B.weight` [out, r],
 * float32, with safetensors metadata as diffusers' `write_lora_layers` writes it:
 * `format: "pt"` and `lora_adapter_metadata`, a JSON string (indent 2, sorted keys) of the PEFT
 * LoraConfig fields prefixed by the component, here `{"unet.lora_alpha", "unet.r",
 * "unet.target_modules"}`. diffusers before 0.34 ignores that metadata and assumes alpha = r.
 */
import * as tf from "@tensorflow/tfjs-core";
import { FailedPreconditionError, InvalidArgumentError } from "../../../lib/errors.ts";
import { readSafetensors, type TensorRecord, writeSafetensors } from "../../../lib/tensor/safetensors.ts";
import type { ParamStore } from "./params.ts";
import { Linear } from "./nn.ts";
import { fillUniform, mulberry32 } from "./random.ts";
import { listNames } from "./weights.ts";

export const DEFAULT_LORA_TARGETS: readonly string[] = ["to_q", "to_k", "to_v", "to_out.0"];
export const LORA_METADATA_KEY = "lora_adapter_metadata";

export interface LoraOptions {
  rank: number;
  /** Default: rank (scale 1), as diffusers assumes when a file carries no alpha. */
  alpha?: number;
  /** PEFT semantics: a module matches when its path equals a target or ends with "." + target. */
  targetModules?: readonly string[];
  /** Seed of A's initialisation. Default 0. */
  seed?: number;
  /** Key prefix in files. Default "unet.". */
  prefix?: string;
}

interface LoraLayer {
  linear: Linear;
  a: tf.Variable; // [in, r] = lora_A^T
  b: tf.Variable; // [r, out] = lora_B^T
}

/** Whether a module path matches a PEFT target_modules entry. */
export function matchesTarget(path: string, target: string): boolean {
  return path === target || path.endsWith(`.${target}`);
}

export class LoraAdapter {
  readonly rank: number;
  readonly alpha: number;
  readonly scale: number;
  readonly targetModules: readonly string[];
  readonly prefix: string;
  readonly #layers = new Map<string, LoraLayer>();
  #disposed = false;

  private constructor(options: LoraOptions, paths: Map<string, Linear>) {
    const { rank } = options;
    if (!Number.isSafeInteger(rank) || rank < 1) {
      throw new InvalidArgumentError("lora.rank", `expected a positive integer, got ${rank}`);
    }
    const alpha = options.alpha ?? rank;
    if (!Number.isFinite(alpha) || alpha <= 0) {
      throw new InvalidArgumentError("lora.alpha", `expected a positive number, got ${alpha}`);
    }
    this.rank = rank;
    this.alpha = alpha;
    this.scale = alpha / rank;
    this.targetModules = [...(options.targetModules ?? DEFAULT_LORA_TARGETS)];
    this.prefix = options.prefix ?? "unet.";
    const uniform = mulberry32(options.seed ?? 0);
    for (const [path, linear] of [...paths].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      const aTorch = fillUniform(
        new Float32Array(rank * linear.inFeatures),
        uniform,
        1 / Math.sqrt(linear.inFeatures),
      );
      const a = tf.tidy(() => tf.transpose(tf.tensor2d(aTorch, [rank, linear.inFeatures])));
      const b = tf.zeros([rank, linear.outFeatures]);
      const layer = { linear, a: tf.variable(a, true), b: tf.variable(b, true) };
      a.dispose();
      b.dispose();
      this.#layers.set(path, layer);
      linear.lora = { a: layer.a, b: layer.b, scale: this.scale };
    }
  }

  /**
   * Creates an adapter on every Linear of `model` matching `targetModules` and attaches it.
   * Throws when a target matches nothing or a layer already carries an adapter.
   */
  static attach(model: { params: ParamStore }, options: LoraOptions): LoraAdapter {
    const targets = options.targetModules ?? DEFAULT_LORA_TARGETS;
    if (targets.length === 0) throw new InvalidArgumentError("lora.target_modules", "must not be empty");
    const linears = new Map<string, Linear>();
    for (const [path, m] of model.params.modules()) {
      if (m instanceof Linear && targets.some((t) => matchesTarget(path, t))) linears.set(path, m);
    }
    for (const t of targets) {
      if (![...linears.keys()].some((p) => matchesTarget(p, t))) {
        throw new InvalidArgumentError("lora.target_modules", `"${t}" matches no Linear layer of the model`);
      }
    }
    const taken = [...linears].filter(([, l]) => l.lora !== null).map(([p]) => p);
    if (taken.length) {
      throw new FailedPreconditionError(`lora: layers already carry an adapter: ${listNames(taken)}`);
    }
    return new LoraAdapter(options, linears);
  }

  /** Attaches an adapter read from a PEFT-format safetensors file (see the file comment). */
  static async load(
    model: { params: ParamStore },
    path: string,
    defaults: { alpha?: number; prefix?: string } = {},
  ): Promise<LoraAdapter> {
    const { tensors, metadata } = await readSafetensors(path);
    const prefix = defaults.prefix ?? "unet.";
    const meta = parseLoraMetadata(metadata, prefix, path);
    const modules = new Set<string>();
    let rank: number | null = null;
    for (const [key, t] of tensors) {
      const m = key.startsWith(prefix) ? key.slice(prefix.length).match(/^(.*)\.lora_A\.weight$/) : null;
      if (m) {
        modules.add(m[1]);
        rank ??= t.shape[0];
      }
    }
    if (rank === null) throw new InvalidArgumentError(path, `no "${prefix}*.lora_A.weight" tensors`);
    const targets = meta.targetModules ?? inferTargets([...modules]);
    const adapter = LoraAdapter.attach(model, {
      rank: meta.rank ?? rank,
      alpha: meta.alpha ?? defaults.alpha,
      targetModules: targets,
      prefix,
    });
    try {
      adapter.loadPeftTensors(tensors);
    } catch (e) {
      adapter.dispose();
      throw e;
    }
    return adapter;
  }

  /** Module paths carrying this adapter, sorted. */
  modulePaths(): string[] {
    return [...this.#layers.keys()];
  }

  /** The trainable variables: for each module (sorted), A then B. */
  variables(): tf.Variable[] {
    this.#check();
    return [...this.#layers.values()].flatMap((l) => [l.a, l.b]);
  }

  parameterCount(): number {
    let n = 0;
    for (const l of this.#layers.values()) n += l.a.size + l.b.size;
    return n;
  }

  /** The adapter as PEFT tensors (`<prefix><path>.lora_A.weight` [r, in], `lora_B.weight` [out, r]). */
  toPeftTensors(): Map<string, TensorRecord> {
    this.#check();
    const out = new Map<string, TensorRecord>();
    for (const [path, l] of this.#layers) {
      const a = tf.tidy(() => tf.transpose(l.a));
      const b = tf.tidy(() => tf.transpose(l.b));
      out.set(`${this.prefix}${path}.lora_A.weight`, {
        dtype: "F32",
        shape: a.shape,
        data: a.dataSync() as Float32Array,
      });
      out.set(`${this.prefix}${path}.lora_B.weight`, {
        dtype: "F32",
        shape: b.shape,
        data: b.dataSync() as Float32Array,
      });
      a.dispose();
      b.dispose();
    }
    return out;
  }

  /** Assigns every A and B from PEFT tensors; throws naming missing, unexpected or mis-shaped keys. */
  loadPeftTensors(
    tensors: ReadonlyMap<string, { shape: readonly number[]; data: ArrayLike<number> | ArrayLike<bigint> }>,
  ): void {
    this.#check();
    const expected = new Map<string, { layer: LoraLayer; which: "a" | "b"; shape: number[] }>();
    for (const [path, l] of this.#layers) {
      expected.set(`${this.prefix}${path}.lora_A.weight`, {
        layer: l,
        which: "a",
        shape: [this.rank, l.linear.inFeatures],
      });
      expected.set(`${this.prefix}${path}.lora_B.weight`, {
        layer: l,
        which: "b",
        shape: [l.linear.outFeatures, this.rank],
      });
    }
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    const bad: string[] = [];
    for (const [k, e] of expected) {
      const t = tensors.get(k);
      if (t && (t.shape.length !== 2 || t.shape[0] !== e.shape[0] || t.shape[1] !== e.shape[1])) {
        bad.push(`"${k}" is ${JSON.stringify(t.shape)}, expected ${JSON.stringify(e.shape)}`);
      } else if (t && !isFloatArray(t.data)) bad.push(`"${k}" is not a float tensor`);
    }
    const problems: string[] = [];
    if (missing.length) problems.push(`missing keys (${missing.length}): ${listNames(missing)}`);
    if (unexpected.length) problems.push(`unexpected keys (${unexpected.length}): ${listNames(unexpected)}`);
    if (bad.length) problems.push(`bad tensors: ${bad.slice(0, 12).join("; ")}`);
    if (problems.length) {
      throw new FailedPreconditionError(`lora: adapter tensors do not match: ${problems.join("; ")}`);
    }
    for (const [k, e] of expected) {
      const t = tensors.get(k)!;
      const value = tf.tidy(() =>
        tf.transpose(tf.tensor2d(Float32Array.from(t.data as ArrayLike<number>), [e.shape[0], e.shape[1]]))
      );
      e.layer[e.which].assign(value);
      value.dispose();
    }
  }

  /** safetensors metadata as diffusers writes it (see the file comment). */
  peftMetadata(): Record<string, string> {
    const c = this.prefix.replace(/\.$/, "");
    const config: Record<string, unknown> = {
      [`${c}.lora_alpha`]: this.alpha,
      [`${c}.r`]: this.rank,
      [`${c}.target_modules`]: [...this.targetModules].sort(),
    };
    return { format: "pt", [LORA_METADATA_KEY]: JSON.stringify(config, Object.keys(config).sort(), 2) };
  }

  /** toPeftTensors() reading with `await data()` (webgpu cannot read synchronously under Deno). */
  async toPeftTensorsAsync(): Promise<Map<string, TensorRecord>> {
    this.#check();
    const out = new Map<string, TensorRecord>();
    for (const [path, l] of this.#layers) {
      for (const [name, v] of [["lora_A", l.a], ["lora_B", l.b]] as const) {
        const t = tf.transpose(v);
        out.set(`${this.prefix}${path}.${name}.weight`, {
          dtype: "F32",
          shape: t.shape,
          data: (await t.data()) as Float32Array,
        });
        t.dispose();
      }
    }
    return out;
  }

  /** Writes the adapter (atomically) in the PEFT format. Returns the bytes written. */
  async save(path: string): Promise<number> {
    return await writeSafetensors(path, await this.toPeftTensorsAsync(), this.peftMetadata());
  }

  /** Detaches the adapter from its layers and frees its variables. */
  dispose(): void {
    if (this.#disposed) return;
    for (const l of this.#layers.values()) {
      if (l.linear.lora?.a === l.a) l.linear.lora = null;
      l.a.dispose();
      l.b.dispose();
    }
    this.#disposed = true;
  }

  #check(): void {
    if (this.#disposed) throw new FailedPreconditionError("lora: adapter is disposed");
  }
}

function isFloatArray(d: unknown): boolean {
  return d instanceof Float32Array || d instanceof Float64Array || Array.isArray(d);
}

/** Reads r / lora_alpha / target_modules from `lora_adapter_metadata` when present. */
export function parseLoraMetadata(
  metadata: Record<string, string>,
  prefix: string,
  where: string,
): { rank?: number; alpha?: number; targetModules?: string[] } {
  const raw = metadata[LORA_METADATA_KEY];
  if (raw === undefined) return {};
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(raw);
  } catch (e) {
    throw new InvalidArgumentError(
      `${where}: __metadata__.${LORA_METADATA_KEY}`,
      `not JSON (${(e as Error).message})`,
    );
  }
  const get = (k: string) => obj[`${prefix}${k}`] ?? obj[k];
  const out: { rank?: number; alpha?: number; targetModules?: string[] } = {};
  const r = get("r");
  const alpha = get("lora_alpha");
  const targets = get("target_modules");
  if (r !== undefined) {
    if (!Number.isSafeInteger(r) || (r as number) < 1) {
      throw new InvalidArgumentError(
        `${where}: ${LORA_METADATA_KEY}.r`,
        `expected a positive integer, got ${JSON.stringify(r)}`,
      );
    }
    out.rank = r as number;
  }
  if (alpha !== undefined) {
    if (typeof alpha !== "number" || !(alpha > 0)) {
      throw new InvalidArgumentError(
        `${where}: ${LORA_METADATA_KEY}.lora_alpha`,
        `expected a positive number, got ${JSON.stringify(alpha)}`,
      );
    }
    out.alpha = alpha;
  }
  if (targets !== undefined) {
    if (!Array.isArray(targets) || !targets.every((t) => typeof t === "string")) {
      throw new InvalidArgumentError(
        `${where}: ${LORA_METADATA_KEY}.target_modules`,
        "expected a list of strings",
      );
    }
    out.targetModules = targets as string[];
  }
  return out;
}

/** Targets for a file without metadata: the distinct last path components (`to_out.0` kept whole). */
function inferTargets(paths: string[]): string[] {
  const set = new Set<string>();
  for (const p of paths) {
    const parts = p.split(".");
    const last = parts[parts.length - 1];
    set.add(/^\d+$/.test(last) && parts.length > 1 ? `${parts[parts.length - 2]}.${last}` : last);
  }
  return [...set].sort();
}
