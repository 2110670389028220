/**
 * Helpers for this folder's tests: fixture I/O as tensors, the tolerance stated in a fixture's
 * config.json, and small random-weight models.
 */
import * as tf from "@tensorflow/tfjs-core";
import { readSafetensors, type TensorRecord } from "../../../lib/tensor/safetensors.ts";
import { assertAllClose } from "../../../lib/testing/assert.ts";
import { parseUNetConfig, type UNetConfig } from "./config.ts";
import { UNet2DConditionModel } from "./unet.ts";
import { initRandomParams } from "./weights.ts";

export async function readIo(path: string): Promise<Map<string, TensorRecord>> {
  return (await readSafetensors(path)).tensors;
}

export function record(io: Map<string, TensorRecord>, name: string): TensorRecord {
  const r = io.get(name);
  if (!r) throw new Error(`fixture has no tensor "${name}" (has: ${[...io.keys()].join(", ")})`);
  return r;
}

/** A fixture tensor as a tf tensor (int64 -> int32, float -> float32). */
export function tensorOf(io: Map<string, TensorRecord>, name: string): tf.Tensor {
  const r = record(io, name);
  if (r.data instanceof BigInt64Array) return tf.tensor(Int32Array.from(r.data, Number), r.shape, "int32");
  return tf.tensor(Float32Array.from(r.data as ArrayLike<number>), r.shape, "float32");
}

/** A fixture tensor as plain numbers. */
export function numbersOf(io: Map<string, TensorRecord>, name: string): number[] {
  const r = record(io, name);
  return r.data instanceof BigInt64Array
    ? Array.from(r.data, Number)
    : Array.from(r.data as ArrayLike<number>);
}

/**
 * The relative tolerance of a fixture: config.json's `tolerance` as a number, or the factor in a
 * text like "max abs diff <= 1e-4 * max|reference|"; 1e-4 when it states none.
 */
export async function relativeTolerance(configPath: string): Promise<number> {
  const cfg = JSON.parse(await Deno.readTextFile(configPath)) as { tolerance?: unknown };
  if (typeof cfg.tolerance === "number") return cfg.tolerance;
  if (typeof cfg.tolerance === "string") {
    const m = cfg.tolerance.match(/<=\s*([0-9.eE+-]+)\s*\*\s*max\|ref/);
    if (m) return Number(m[1]);
  }
  return 1e-4;
}

/** max|actual - expected| <= rel * max|expected|. */
export function assertParity(
  actual: tf.Tensor,
  io: Map<string, TensorRecord>,
  name: string,
  rel: number,
  label: string,
): void {
  const expected = record(io, name);
  if (JSON.stringify(actual.shape) !== JSON.stringify(expected.shape)) {
    throw new Error(
      `${label}: shape ${JSON.stringify(actual.shape)}, expected ${JSON.stringify(expected.shape)}`,
    );
  }
  assertAllClose(actual.dataSync(), expected.data as Float32Array, { rtol: rel, label });
}

/** A tiny UNet config (diffusers field names) for tests that need no checkpoint. */
export function tinyUNetConfig(overrides: Record<string, unknown> = {}): UNetConfig {
  return parseUNetConfig({
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [32, 64],
    down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D"],
    layers_per_block: 1,
    attention_head_dim: 4,
    cross_attention_dim: 16,
    norm_num_groups: 16,
    ...overrides,
  });
}

export function tinyUNet(seed = 1, overrides: Record<string, unknown> = {}): UNet2DConditionModel {
  const unet = new UNet2DConditionModel(tinyUNetConfig(overrides));
  initRandomParams(unet.params, seed, 0.05);
  return unet;
}

/** Deterministic inputs for a UNet with `inChannels`, `crossDim`. */
export function unetInputs(b: number, c: number, hw: number, s: number, crossDim: number) {
  const wave = (n: number, f: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f));
  return {
    sample: tf.tensor4d(wave(b * c * hw * hw, 0.37), [b, c, hw, hw]),
    context: tf.tensor3d(wave(b * s * crossDim, 0.11), [b, s, crossDim]),
    timesteps: Array.from({ length: b }, (_, i) => 999 - 400 * i),
  };
}
