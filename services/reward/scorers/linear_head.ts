/**
 * A chain of Linear layers with no activations between them, as in the LAION aesthetic predictor
 * and ImageReward's MLP (REWARDS.md "aesthetic": the ReLUs are commented out in the reference and
 * Dropout is the identity in eval mode). Such a chain is one affine map; `fold()` composes it in
 * float64 so scoring is a single dot product.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import { SafetensorsFile } from "../../../lib/tensor/safetensors.ts";

export interface LinearLayer {
  name: string;
  inFeatures: number;
  outFeatures: number;
  /** Row-major [out, in], as torch stores `Linear.weight`. */
  weight: Float64Array;
  bias: Float64Array;
}

export class LinearChainHead {
  private constructor(readonly layers: LinearLayer[]) {}

  get inFeatures(): number {
    return this.layers[0].inFeatures;
  }

  get outFeatures(): number {
    return this.layers[this.layers.length - 1].outFeatures;
  }

  /** Builds a head from layers, checking that each one's input matches the previous output. */
  static fromLayers(layers: LinearLayer[]): LinearChainHead {
    if (layers.length === 0) throw new InvalidArgumentError("head", "no Linear layers");
    layers.forEach((l, i) => {
      if (l.weight.length !== l.inFeatures * l.outFeatures) {
        throw new InvalidArgumentError(
          `head.${l.name}.weight`,
          `expected ${l.outFeatures}x${l.inFeatures} values`,
        );
      }
      if (l.bias.length !== l.outFeatures) {
        throw new InvalidArgumentError(
          `head.${l.name}.bias`,
          `expected ${l.outFeatures} values, got ${l.bias.length}`,
        );
      }
      if (i > 0 && layers[i - 1].outFeatures !== l.inFeatures) {
        throw new InvalidArgumentError(
          `head.${l.name}.weight`,
          `takes ${l.inFeatures} inputs but ${layers[i - 1].name} gives ${layers[i - 1].outFeatures}`,
        );
      }
    });
    return new LinearChainHead(layers);
  }

  /**
   * Loads `${prefix}{i}.weight` / `${prefix}{i}.bias` for every index i in the file, in numeric
   * order (e.g. `layers.{0,2,4,6,7}` of `sac+logos+ava1-l14-linearMSE`).
   */
  static async load(path: string, prefix = "layers."): Promise<LinearChainHead> {
    const file = await SafetensorsFile.open(path);
    try {
      const indices: number[] = [];
      for (const name of file.names()) {
        if (!name.startsWith(prefix) || !name.endsWith(".weight")) continue;
        const idx = name.slice(prefix.length, -".weight".length);
        if (/^\d+$/.test(idx)) indices.push(Number(idx));
      }
      if (indices.length === 0) {
        throw new InvalidArgumentError("head.file", `${path} has no tensors named ${prefix}<i>.weight`);
      }
      indices.sort((a, b) => a - b);
      const layers: LinearLayer[] = [];
      for (const i of indices) {
        const name = `${prefix}${i}`;
        if (!file.has(`${name}.bias`)) {
          throw new InvalidArgumentError("head.file", `${path} has no ${name}.bias`);
        }
        const w = await file.read(`${name}.weight`);
        const b = await file.read(`${name}.bias`);
        if (w.shape.length !== 2) {
          throw new InvalidArgumentError(`head.${name}.weight`, `expected 2 dims, got [${w.shape}]`);
        }
        if (w.data instanceof BigInt64Array || b.data instanceof BigInt64Array) {
          throw new InvalidArgumentError(`head.${name}`, "expected float tensors");
        }
        layers.push({
          name,
          outFeatures: w.shape[0],
          inFeatures: w.shape[1],
          weight: Float64Array.from(w.data),
          bias: Float64Array.from(b.data),
        });
      }
      return LinearChainHead.fromLayers(layers);
    } finally {
      file.close();
    }
  }

  /** Applies the layers one after another in float64. */
  applySequential(x: ArrayLike<number>): Float64Array {
    if (x.length !== this.inFeatures) {
      throw new InvalidArgumentError("embedding", `expected ${this.inFeatures} values, got ${x.length}`);
    }
    let cur = Float64Array.from(x);
    for (const l of this.layers) {
      const next = new Float64Array(l.outFeatures);
      for (let o = 0; o < l.outFeatures; o++) {
        let s = l.bias[o];
        const row = o * l.inFeatures;
        for (let i = 0; i < l.inFeatures; i++) s += l.weight[row + i] * cur[i];
        next[o] = s;
      }
      cur = next;
    }
    return cur;
  }

  /** The composed affine map `y = W x + b` (W row-major [out, in]) in float64. */
  fold(): { weight: Float64Array; bias: Float64Array; inFeatures: number; outFeatures: number } {
    // Start from the last layer and multiply backwards: M = L_k ... L_1, c = L_k(...L_2(b_1)...).
    const last = this.layers[this.layers.length - 1];
    let m = Float64Array.from(last.weight);
    let c = Float64Array.from(last.bias);
    let cols = last.inFeatures;
    for (let li = this.layers.length - 2; li >= 0; li--) {
      const l = this.layers[li];
      const rows = c.length;
      const nm = new Float64Array(rows * l.inFeatures);
      const nc = Float64Array.from(c);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < cols; k++) {
          const a = m[r * cols + k];
          if (a === 0) continue;
          nc[r] += a * l.bias[k];
          const wr = k * l.inFeatures;
          for (let j = 0; j < l.inFeatures; j++) nm[r * l.inFeatures + j] += a * l.weight[wr + j];
        }
      }
      m = nm;
      c = nc;
      cols = l.inFeatures;
    }
    return { weight: m, bias: c, inFeatures: cols, outFeatures: c.length };
  }
}

/** `x / ||x||_2` in float64 (the reference normalizes before the head). */
export function l2Normalize(x: ArrayLike<number>): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const n = Math.sqrt(ss);
  const out = new Float64Array(x.length);
  if (n === 0) return out;
  for (let i = 0; i < x.length; i++) out[i] = x[i] / n;
  return out;
}
