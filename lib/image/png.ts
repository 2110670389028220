/**
 * Image file I/O through sharp (libvips): decode PNG/JPEG/WebP bytes to 8-bit RGB (HWC) the way
 * PIL's `Image.open(...).convert("RGB")` sees them, and encode RGB to PNG. Used by the reward
 * scorers' tests, by reports and by the services.
 *
 * Semantics chosen to match PIL: the alpha channel is dropped, not composited (`convert("RGB")`
 * from RGBA/LA discards alpha); grey images are replicated to three channels; embedded ICC profiles
 * are ignored (PIL does not colour-manage on open); EXIF orientation is not applied (PIL does not
 * rotate on open either).
 */

import sharp from "sharp";
import { InvalidArgumentError } from "../errors.ts";

/** An 8-bit RGB image, row-major HWC, `data.length === width * height * 3`. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Throws naming `field` when `image` is not a well-formed RgbImage. */
export function validateRgbImage(image: RgbImage, field = "image"): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || width < 1) {
    throw new InvalidArgumentError(`${field}.width`, `must be a positive integer, got ${width}`);
  }
  if (!Number.isInteger(height) || height < 1) {
    throw new InvalidArgumentError(`${field}.height`, `must be a positive integer, got ${height}`);
  }
  if (!(data instanceof Uint8Array)) {
    throw new InvalidArgumentError(`${field}.data`, "must be a Uint8Array of RGB bytes");
  }
  if (data.length !== width * height * 3) {
    throw new InvalidArgumentError(
      `${field}.data`,
      `expected ${width}*${height}*3 = ${width * height * 3} bytes, got ${data.length}`,
    );
  }
}

/** Decodes an encoded image (PNG, JPEG, WebP, ...) to 8-bit RGB, dropping alpha like PIL. */
export async function decodeImage(bytes: Uint8Array, field = "image"): Promise<RgbImage> {
  const pipeline = sharp(bytes, { ignoreIcc: true, failOn: "error" })
    .removeAlpha()
    .toColourspace("srgb")
    .raw({ depth: "uchar" });
  const { data, info } = await pipeline.toBuffer({ resolveWithObject: true }).catch((e: Error) => {
    throw new InvalidArgumentError(field, `cannot decode image: ${e.message}`);
  });
  if (info.channels !== 3) {
    throw new InvalidArgumentError(field, `decoded to ${info.channels} channels, expected 3`);
  }
  return {
    width: info.width,
    height: info.height,
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** Reads and decodes an image file to 8-bit RGB. */
export async function readImageFile(path: string): Promise<RgbImage> {
  return await decodeImage(await Deno.readFile(path), path);
}

/** Encodes RGB as PNG (lossless; `compressionLevel` 0-9 trades size for time). */
export async function encodePng(image: RgbImage, compressionLevel = 6): Promise<Uint8Array> {
  validateRgbImage(image);
  const buf = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png({ compressionLevel })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Encodes RGB as PNG and writes it to `path`. */
export async function writePngFile(path: string, image: RgbImage, compressionLevel = 6): Promise<void> {
  await Deno.writeFile(path, await encodePng(image, compressionLevel));
}
