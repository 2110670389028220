/**
 * DDPO's JPEG compressibility rewards (REWARDS.md "jpeg_compressibility / jpeg_incompressibility"):
 * the size of the image saved by PIL as JPEG at quality 95 (baseline, standard Huffman tables,
 * 4:2:0), in kB of 1000 bytes; incompressibility = +size_kb, compressibility = -size_kb.
 *
 * sharp (libjpeg-turbo) with the same settings writes the same entropy-coded data but no JFIF APP0
 * segment, which PIL always writes (18 bytes: marker, length 16, "JFIF\0", version, density). The
 * byte count adds those 18 bytes when sharp's output has no APP0, checked per image rather than
 * assumed, so a sharp build that does write APP0 still counts right.
 */

import sharp from "sharp";
import { type RgbImage, validateRgbImage } from "../../../lib/image/png.ts";
import type { Scorer } from "../scorer.ts";

/** Size of PIL's JFIF APP0 segment (FFE0, length 16 incl. itself, JFIF\0, 1.1, units, density, 0x0 thumb). */
export const JFIF_APP0_BYTES = 18;

/** True when the second marker of a JPEG stream is APP0 (FFE0). */
export function hasApp0(jpeg: Uint8Array): boolean {
  return jpeg.length >= 4 && jpeg[0] === 0xff && jpeg[1] === 0xd8 && jpeg[2] === 0xff && jpeg[3] === 0xe0;
}

/** The number of bytes `PIL.Image.save(format="JPEG", quality=95)` writes for `image`. */
export async function pilJpegByteCount(image: RgbImage, quality = 95): Promise<number> {
  validateRgbImage(image);
  const buf = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality, optimiseCoding: false, chromaSubsampling: "4:2:0", progressive: false, mozjpeg: false })
    .toBuffer();
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return bytes.length + (hasApp0(bytes) ? 0 : JFIF_APP0_BYTES);
}

export type JpegKind = "jpeg_compressibility" | "jpeg_incompressibility";

export class JpegScorer implements Scorer {
  readonly needsPrompts = false;
  constructor(readonly kind: JpegKind, readonly quality = 95) {}

  async score(images: RgbImage[], _prompts: string[]): Promise<Float64Array> {
    images.forEach((img, i) => validateRgbImage(img, `images[${i}]`));
    const sizes = await Promise.all(images.map((img) => pilJpegByteCount(img, this.quality)));
    const sign = this.kind === "jpeg_compressibility" ? -1 : 1;
    return Float64Array.from(sizes, (bytes) => sign * (bytes / 1000));
  }

  async close(): Promise<void> {}
}
