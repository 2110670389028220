/**
 * Deterministic per-sample random numbers for the procedural data set: a pure function of
 * (seed, index, position), so any sample can be generated alone, in any order.
 */

/** splitmix32-style avalanche of a 32-bit value. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** `count` uniforms in [0, 1) for sample `index` of data set `seed`. */
export function uniform(seed: number, index: number, count: number): Float64Array {
  const out = new Float64Array(count);
  const base = mix(mix(seed >>> 0) ^ mix((index * 0x9e3779b9) >>> 0));
  for (let i = 0; i < count; i++) out[i] = mix(base ^ mix((i + 1) * 0x632be5ab)) / 4294967296;
  return out;
}

/** `count` standard normals (Box-Muller) for sample `index` of data set `seed`. */
export function gaussian(seed: number, index: number, count: number): Float64Array {
  const u = uniform(seed, index, count + (count % 2));
  const out = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u[i]));
    const a = 2 * Math.PI * u[i + 1];
    out[i] = r * Math.cos(a);
    if (i + 1 < count) out[i + 1] = r * Math.sin(a);
  }
  return out;
}
