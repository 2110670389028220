/**
 * Colourfulness (Hasler and Suesstrunk, "Measuring colourfulness in natural images", SPIE 2003,
 * eq. 3, the M^(3) metric): a reward that needs no model file, used by the demo as a second
 * built-in objective beside JPEG compressibility.
 *
 * On 8-bit RGB values, per pixel rg = R - G and yb = (R + G)/2 - B; with the population standard
 * deviations and means of those opponent channels over the image,
 *   C = sqrt(sd_rg^2 + sd_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2).
 * Grey images score 0; larger is more colourful (unbounded above, in 8-bit units).
 */

import { type RgbImage, validateRgbImage } from "../../../lib/image/png.ts";
import type { Scorer } from "../scorer.ts";

/** The Hasler-Suesstrunk colourfulness of one image (float64 accumulation, exact for 8-bit input). */
export function colorfulness(image: RgbImage): number {
  const { data } = image;
  const n = image.width * image.height;
  let sumRg = 0, sumYb = 0, sumRg2 = 0, sumYb2 = 0;
  for (let p = 0; p < n; p++) {
    const r = data[3 * p], g = data[3 * p + 1], b = data[3 * p + 2];
    const rg = r - g;
    const yb = 0.5 * (r + g) - b;
    sumRg += rg;
    sumYb += yb;
    sumRg2 += rg * rg;
    sumYb2 += yb * yb;
  }
  const meanRg = sumRg / n, meanYb = sumYb / n;
  // Population variances; max(0, .) absorbs rounding on flat images.
  const varRg = Math.max(0, sumRg2 / n - meanRg * meanRg);
  const varYb = Math.max(0, sumYb2 / n - meanYb * meanYb);
  return Math.sqrt(varRg + varYb) + 0.3 * Math.sqrt(meanRg * meanRg + meanYb * meanYb);
}

export class ColorfulnessScorer implements Scorer {
  readonly kind = "colorfulness";
  readonly needsPrompts = false;

  score(images: RgbImage[], _prompts: string[]): Promise<Float64Array> {
    images.forEach((img, i) => validateRgbImage(img, `images[${i}]`));
    return Promise.resolve(Float64Array.from(images, colorfulness));
  }

  async close(): Promise<void> {}
}
