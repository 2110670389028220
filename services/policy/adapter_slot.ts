/** One attached LoRA adapter with its optimizer, and the PEFT naming/layout of its variables. */
import * as tf from "@tensorflow/tfjs-core";
import { InvalidArgumentError } from "../../lib/errors.ts";
import type { TensorRecord } from "../../lib/tensor/safetensors.ts";
import { AdamOptimizer } from "./adam.ts";
import type { LoraSettings } from "./core_types.ts";
import { DEFAULT_LORA_TARGETS, LoraAdapter } from "./model/lora.ts";
import type { PolicyPipeline } from "./pipeline.ts";

export interface AdapterSlot {
  lora: LoraAdapter;
  optimizer: AdamOptimizer;
  /** tfjs variable name -> PEFT key, and PEFT key -> variable. */
  peftByVar: Map<string, string>;
  varByPeft: Map<string, tf.Variable>;
}

export function attachAdapter(unet: PolicyPipeline["unet"], settings: LoraSettings): AdapterSlot {
  const lora = LoraAdapter.attach(unet, {
    rank: settings.rank,
    alpha: settings.alpha,
    targetModules: settings.targetModules ?? DEFAULT_LORA_TARGETS,
    seed: settings.seed ?? 0,
  });
  const vars = lora.variables();
  const paths = lora.modulePaths();
  const peftByVar = new Map<string, string>();
  const varByPeft = new Map<string, tf.Variable>();
  paths.forEach((p, i) => {
    for (const [j, kind] of [[0, "lora_A"], [1, "lora_B"]] as const) {
      const key = `${lora.prefix}${p}.${kind}.weight`;
      peftByVar.set(vars[2 * i + j].name, key);
      varByPeft.set(key, vars[2 * i + j]);
    }
  });
  return { lora, optimizer: new AdamOptimizer(varByPeft), peftByVar, varByPeft };
}

/** Gradients keyed by PEFT name, in PEFT layout (A [r, in], B [out, r]). */
export function peftGradients(grads: Record<string, tf.Tensor>, slot: AdapterSlot): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [varName, g] of Object.entries(grads)) {
    const key = slot.peftByVar.get(varName);
    if (key) out.set(key, g);
  }
  return out;
}

/** Transpose of a row-major [rows, cols] matrix, on the host. */
function transposeHost(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** Internal-layout values of adapter variable `key` -> a PEFT record (transposed: A [r, in], B [out, r]). */
export function toPeftRecord(key: string, internal: Float32Array, slot: AdapterSlot): TensorRecord {
  const [rows, cols] = slot.varByPeft.get(key)!.shape as [number, number];
  return { dtype: "F32", shape: [cols, rows], data: transposeHost(internal, rows, cols) };
}

/** A PEFT record for adapter variable `key` -> its internal-layout values, validated. */
export function fromPeftRecord(
  key: string,
  rec: { shape: readonly number[]; data: ArrayLike<number> },
  slot: AdapterSlot,
  field: string,
): Float32Array {
  const v = slot.varByPeft.get(key);
  if (!v) throw new InvalidArgumentError(field, `unknown adapter key "${key}"`);
  const [rows, cols] = v.shape as [number, number];
  if (rec.shape.length !== 2 || rec.shape[0] !== cols || rec.shape[1] !== rows) {
    throw new InvalidArgumentError(
      field,
      `"${key}" must have shape [${cols}, ${rows}], got ${JSON.stringify(rec.shape)}`,
    );
  }
  return transposeHost(rec.data, cols, rows);
}

/** Rank of an adapter from its first lora_A weight. */
export function rankOf(tensors: ReadonlyMap<string, { shape: readonly number[] }>, field: string): number {
  for (const [k, t] of tensors) if (k.endsWith(".lora_A.weight")) return t.shape[0];
  throw new InvalidArgumentError(field, "no lora_A weights found");
}
