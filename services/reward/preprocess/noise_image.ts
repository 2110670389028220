/** Bench input for the preprocessing benches (bench.ts, pool_bench.ts). */
import type { RgbImage } from "../../../lib/image/png.ts";

/** Seeded noise image (every pixel value occurs, no structure a resize could shortcut). */
export function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return { width, height, data };
}
