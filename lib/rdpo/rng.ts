/**
 * Counter-based seeded random numbers (proto rdpo.v1.RngKey): the same (seed, stream) gives the same
 * numbers on every backend and machine, whatever order requests arrive in. There is no global state:
 * every number is a pure function of (seed, stream, block, element index).
 *
 * Layout (Philox4x32-10, philox.ts):
 *   key     = (seed & 0xffffffff, seed >> 32)                   seed: uint64
 *   counter = (g & 0xffffffff, block, stream & 0xffffffff, stream >> 32)
 * where g = floor(i / 4) for element i of the (seed, stream, block) sequence and lane i % 4 of the
 * block's 4 output words belongs to element i. block is a uint32 sub-sequence; up to 2^34 elements
 * per (seed, stream, block).
 *
 * Gaussians: Box-Muller on the word pairs (w0, w1) -> elements 4g, 4g+1 and (w2, w3) -> 4g+2, 4g+3:
 *   u1 = (w_even + 0.5) / 2^32 in (0, 1),  u2 = w_odd / 2^32 in [0, 1),
 *   r = sqrt(-2 ln u1),  z_even = r cos(2 pi u2),  z_odd = r sin(2 pi u2),
 * in float64, then rounded to float32. Uniforms: element i is (w_lane + 0.5) / 2^32 in (0, 1).
 *
 * How the services derive streams and blocks (the contract the protos point to):
 *   - SampleCandidates: candidate k of item b uses stream noise.stream + b * K + k (`candidateStream`)
 *     and block `stepNoiseBlock(step_index)` = step_index + 1, elements 0..C*H*W-1 (NCHW order).
 *   - Generate: item b uses stream noise.stream + b (`itemStream`, = candidateStream with K = 1);
 *     x_T is block 0 (`INITIAL_LATENTS_BLOCK`) and the noise z of inference step i is block i + 1.
 *     So a Generate trajectory equals the chain of SampleCandidates calls with K = 1, the same key and
 *     x_T drawn from block 0; and x_T never repeats a step's noise.
 *   - TrainStep (diffusion_dpo): pair p uses stream noise.stream + p (`pairStream`), block 0.
 * Stream arithmetic wraps modulo 2^64 like the proto's uint64.
 */
import { InvalidArgumentError } from "../errors.ts";
import { philox4x32 } from "./philox.ts";

/** proto RngKey: uint64 seed and stream (bigint as protobuf-es gives them, or a safe integer). */
export interface RngKey {
  seed: bigint | number;
  stream: bigint | number;
}

export interface DrawOptions {
  /** Sub-sequence of the (seed, stream) sequence, uint32; default 0. */
  block?: number;
  /** Index of the first element drawn; default 0. */
  offset?: number;
}

/** x_T of Generate is block 0 of the item's stream. */
export const INITIAL_LATENTS_BLOCK = 0;

const TWO_POW_32 = 4294967296;
const MAX_ELEMENTS = 4 * TWO_POW_32;
const U64 = (1n << 64n) - 1n;

function toUint64(value: bigint | number, field: string): bigint {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new InvalidArgumentError(field, `expected an unsigned 64-bit integer, got ${value}`);
    }
    value = BigInt(value);
  }
  if (typeof value !== "bigint" || value < 0n || value > U64) {
    throw new InvalidArgumentError(field, `expected an unsigned 64-bit integer, got ${String(value)}`);
  }
  return value;
}

function requireSize(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(field, `expected an integer >= 0, got ${value}`);
  }
}

function requireCount(count: number, offset: number, block: number): void {
  if (!Number.isInteger(count) || count < 0) {
    throw new InvalidArgumentError("count", `expected an integer >= 0, got ${count}`);
  }
  if (!Number.isInteger(offset) || offset < 0 || offset + count > MAX_ELEMENTS) {
    throw new InvalidArgumentError(
      "offset",
      `offset + count must lie in [0, 2^34], got ${offset} + ${count}`,
    );
  }
  if (!Number.isInteger(block) || block < 0 || block >= TWO_POW_32) {
    throw new InvalidArgumentError("block", `expected an unsigned 32-bit integer, got ${block}`);
  }
}

/** Calls `visit(i, words)` for each 4-word group covering elements [offset, offset + count). */
function forEachGroup(
  key: RngKey,
  count: number,
  options: DrawOptions,
  visit: (firstElement: number, words: Uint32Array) => void,
): void {
  const block = options.block ?? 0;
  const offset = options.offset ?? 0;
  requireCount(count, offset, block);
  const seed = toUint64(key.seed, "seed");
  const stream = toUint64(key.stream, "stream");
  const k0 = Number(seed & 0xffffffffn);
  const k1 = Number(seed >> 32n);
  const s0 = Number(stream & 0xffffffffn);
  const s1 = Number(stream >> 32n);
  const words = new Uint32Array(4);
  const firstGroup = Math.floor(offset / 4);
  const endGroup = Math.ceil((offset + count) / 4);
  for (let g = firstGroup; g < endGroup; g++) {
    philox4x32(g >>> 0, block, s0, s1, k0, k1, words);
    visit(g * 4, words);
  }
}

/** `count` standard normal float32 values of the (seed, stream, block) sequence from `offset` on. */
export function gaussian(key: RngKey, count: number, options: DrawOptions = {}): Float32Array {
  requireCount(count, options.offset ?? 0, options.block ?? 0);
  const out = new Float32Array(count);
  const offset = options.offset ?? 0;
  const lanes = new Float64Array(4);
  forEachGroup(key, count, options, (first, w) => {
    for (let pair = 0; pair < 2; pair++) {
      const u1 = (w[2 * pair] + 0.5) / TWO_POW_32;
      const u2 = w[2 * pair + 1] / TWO_POW_32;
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      lanes[2 * pair] = r * Math.cos(theta);
      lanes[2 * pair + 1] = r * Math.sin(theta);
    }
    for (let lane = 0; lane < 4; lane++) {
      const i = first + lane - offset;
      if (i >= 0 && i < count) out[i] = lanes[lane];
    }
  });
  return out;
}

/** `count` uniform values in the open interval (0, 1) (float64, 32 random bits each). */
export function uniform(key: RngKey, count: number, options: DrawOptions = {}): Float64Array {
  requireCount(count, options.offset ?? 0, options.block ?? 0);
  const out = new Float64Array(count);
  const offset = options.offset ?? 0;
  forEachGroup(key, count, options, (first, w) => {
    for (let lane = 0; lane < 4; lane++) {
      const i = first + lane - offset;
      if (i >= 0 && i < count) out[i] = (w[lane] + 0.5) / TWO_POW_32;
    }
  });
  return out;
}

/** A seeded index in [0, n): floor(u * n) of the first uniform of the sequence. */
export function randomIndex(key: RngKey, n: number, options: DrawOptions = {}): number {
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError("n", `expected an integer >= 1, got ${n}`);
  }
  return Math.min(n - 1, Math.floor(uniform(key, 1, options)[0] * n));
}

/** Stream of candidate k of item b: base + b * K + k (mod 2^64), proto SampleCandidatesRequest.noise. */
export function candidateStream(
  base: bigint | number,
  item: number,
  numCandidates: number,
  candidate: number,
): bigint {
  if (!Number.isInteger(numCandidates) || numCandidates < 1) {
    throw new InvalidArgumentError("num_candidates", `expected an integer >= 1, got ${numCandidates}`);
  }
  if (!Number.isInteger(item) || item < 0) {
    throw new InvalidArgumentError("item", `expected an integer >= 0, got ${item}`);
  }
  if (!Number.isInteger(candidate) || candidate < 0 || candidate >= numCandidates) {
    throw new InvalidArgumentError(
      "candidate",
      `expected an integer in [0, ${numCandidates - 1}], got ${candidate}`,
    );
  }
  return BigInt.asUintN(
    64,
    toUint64(base, "stream") + BigInt(item) * BigInt(numCandidates) + BigInt(candidate),
  );
}

/** Stream of item b in Generate: base + b (mod 2^64). */
export function itemStream(base: bigint | number, item: number): bigint {
  return candidateStream(base, item, 1, 0);
}

/** Stream of pair p of a diffusion_dpo TrainStep: base + p (mod 2^64). */
export function pairStream(base: bigint | number, pair: number): bigint {
  return candidateStream(base, pair, 1, 0);
}

/** Block of the noise z of inference step `stepIndex` (block 0 is x_T). */
export function stepNoiseBlock(stepIndex: number): number {
  if (!Number.isInteger(stepIndex) || stepIndex < 0 || stepIndex >= TWO_POW_32 - 1) {
    throw new InvalidArgumentError("step_index", `expected an integer >= 0, got ${stepIndex}`);
  }
  return stepIndex + 1;
}

/**
 * The noise z of SampleCandidates: B * K samples of `sampleSize` (= C*H*W) normals in (b, k) order,
 * candidate k of item b from stream noise.stream + b*K + k, block stepNoiseBlock(stepIndex).
 */
export function candidateNoise(
  noise: RngKey,
  batch: number,
  numCandidates: number,
  sampleSize: number,
  stepIndex: number,
): Float32Array {
  requireSize(batch, "batch");
  requireSize(sampleSize, "sample_size");
  const block = stepNoiseBlock(stepIndex);
  candidateStream(noise.stream, 0, numCandidates, 0); // validates num_candidates and the stream
  const out = new Float32Array(batch * numCandidates * sampleSize);
  for (let b = 0; b < batch; b++) {
    for (let k = 0; k < numCandidates; k++) {
      const stream = candidateStream(noise.stream, b, numCandidates, k);
      out.set(
        gaussian({ seed: noise.seed, stream }, sampleSize, { block }),
        (b * numCandidates + k) * sampleSize,
      );
    }
  }
  return out;
}

/** x_T of Generate: B samples of `sampleSize` normals, item b from stream noise.stream + b, block 0. */
export function initialLatentsNoise(noise: RngKey, batch: number, sampleSize: number): Float32Array {
  requireSize(batch, "batch");
  requireSize(sampleSize, "sample_size");
  const out = new Float32Array(batch * sampleSize);
  for (let b = 0; b < batch; b++) {
    const key = { seed: noise.seed, stream: itemStream(noise.stream, b) };
    out.set(gaussian(key, sampleSize, { block: INITIAL_LATENTS_BLOCK }), b * sampleSize);
  }
  return out;
}

/** The noise z of Generate's inference step `stepIndex`: = candidateNoise with K = 1. */
export function stepNoise(noise: RngKey, batch: number, sampleSize: number, stepIndex: number): Float32Array {
  return candidateNoise(noise, batch, 1, sampleSize, stepIndex);
}
