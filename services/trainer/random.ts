/**
 * A small seeded generator for the trainer's own bookkeeping randomness: prompt shuffling, the
 * train/eval split and retry jitter. It is NOT the Gaussian noise of sampling (that is the
 * counter-based generator of lib/rdpo, keyed by RngKey): it only has to be deterministic, cheap
 * and the same on every machine, so that a resumed run sees the same prompt order.
 *
 * Each (seed, stream) pair gives an independent sequence: the pair is mixed through SplitMix32
 * into a state for Mulberry32.
 */

/** SplitMix32 finaliser: a well-mixed 32-bit hash of a 32-bit input. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function checkSeed(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name}: expected a non-negative safe integer, got ${value}`);
  }
}

/**
 * Returns a generator of uniform floats in [0, 1) for the given seed and stream (both non-negative
 * safe integers). Same arguments, same sequence.
 */
export function seededRandom(seed: number, stream = 0): () => number {
  checkSeed("seed", seed);
  checkSeed("stream", stream);
  // Fold the high bits of each safe integer in so seeds above 2^32 differ too.
  const seedHi = Math.floor(seed / 2 ** 32);
  const streamHi = Math.floor(stream / 2 ** 32);
  let state = mix32(mix32(mix32(seed >>> 0) ^ seedHi) ^ mix32((stream >>> 0) ^ 0x5bd1e995) ^ streamHi);
  return () => {
    // Mulberry32.
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform integer in [0, n) from a [0, 1) generator. */
export function randomInt(random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/** Fisher-Yates shuffle of a copy of `items`, driven by `random`. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}
