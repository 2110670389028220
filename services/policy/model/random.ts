/**
 * Seeded pseudo-random numbers for reproducible initialisation (LoRA's A, random benchmark
 * weights): mulberry32, a 32-bit generator with a full 2^32 period, plus Box-Muller normals.
 */

/** Returns a function giving uniform numbers in (0, 1), deterministic for a seed. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

/** Fills `out` with N(0, std^2) samples from `uniform` (Box-Muller, two per pair of draws). */
export function fillNormal(out: Float32Array, uniform: () => number, std: number): Float32Array {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())) * std;
    const a = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(a);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** Fills `out` with U(-bound, bound) samples. */
export function fillUniform(out: Float32Array, uniform: () => number, bound: number): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = (2 * uniform() - 1) * bound;
  return out;
}
