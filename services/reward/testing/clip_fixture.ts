/**
 * Reads the clip_scorer fixture the way the end-to-end scorer tests need it: images, prompts,
 * expected values, and the image side (from `pixel_values` in expected.safetensors, so a fixture set
 * with another size works unchanged).
 */

import { readImageFile, type RgbImage } from "../../../lib/image/png.ts";
import { SafetensorsFile } from "../../../lib/tensor/safetensors.ts";

export interface ClipFixture {
  images: RgbImage[];
  prompts: string[];
  /** [T][I] */
  logitsPerText: number[][];
  aesthetic: number[];
  size: number;
}

export async function loadClipFixture(dir: string): Promise<ClipFixture> {
  const expected = JSON.parse(await Deno.readTextFile(`${dir}/expected.json`));
  const images = await Promise.all(
    (expected.images as { file: string }[]).map((i) => readImageFile(`${dir}/${i.file}`)),
  );
  const st = await SafetensorsFile.open(`${dir}/expected.safetensors`);
  let size: number;
  try {
    size = st.entry("pixel_values").shape[2];
  } finally {
    st.close();
  }
  return {
    images,
    prompts: (expected.prompts as { text: string }[]).map((p) => p.text),
    logitsPerText: expected.logits_per_text,
    aesthetic: expected.aesthetic,
    size,
  };
}
