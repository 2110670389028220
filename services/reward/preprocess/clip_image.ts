/**
 * Image preprocessing of the CLIP-based scorers (REWARDS.md "Shared image preprocessing"):
 *
 * - `clipPixelValues`: transformers' `CLIPImageProcessor` as the aesthetic and PickScore references
 *   call it: shortest side to `size` with PIL BICUBIC on uint8 (long side `int(size*long/short)`),
 *   center crop at `floor((n-size)/2)`, `x * (1/255)` in float64 rounded to float32, then
 *   `(x - mean) / std` in float32, NCHW.
 * - `hpsv2PixelValues`: HPSv2's `image_transform(..., resize_longest_max=True)`: `ToTensor()`
 *   (x/255 in float32), `ResizeMaxSize`: longest side to `size` by torchvision bicubic on the float
 *   tensor (see torch_resize.ts), zero padding split evenly (`pad//2` before), then the same
 *   normalization. For square inputs both are a plain resize to `size x size`.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";
import { type RgbImage, validateRgbImage } from "../../../lib/image/png.ts";
import { PIL_BICUBIC, pilResize } from "./pil_resize.ts";
import { type ResizeCropPlan, ResizePlanCache, runResizeCropPlan } from "./resize_plan.ts";
import { WasmResampler } from "./resize_wasm.ts";
import { torchResizeBicubic } from "./torch_resize.ts";

/** OpenAI CLIP normalization constants (`OPENAI_DATASET_MEAN/STD`). */
export const CLIP_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];

export interface NormalizeOptions {
  mean?: readonly number[];
  std?: readonly number[];
  /**
   * `transformers` (default): CLIPImageProcessor, crop offsets floor((n-size)/2), rescale
   * `x * (1/255)` in float64 then float32. `torchvision`: OpenAI `clip.py` / ImageReward's Compose
   * (Resize on the PIL image, CenterCrop, ToTensor, Normalize): offsets `round((n-size)/2)` half to
   * even, rescale `x / 255` in float32. The resize (PIL bicubic, `int(size*long/short)`) is shared.
   */
  variant?: "transformers" | "torchvision";
}

/** transformers' shortest-edge rule: `[width, height]` after the resize. */
export function shortestEdgeSize(width: number, height: number, size: number): [number, number] {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  // Python: int(size * long / short), evaluated left to right in float64 and truncated.
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? [size, newLong] : [newLong, size];
}

/**
 * Center crop offsets `[top, left]`: transformers' `center_crop` floors `(n-size)/2`; torchvision's
 * `center_crop` computes `int(round((n-size)/2.0))`, Python's round half to even.
 */
export function centerCropOffsets(
  width: number,
  height: number,
  size: number,
  variant: "transformers" | "torchvision" = "transformers",
): [number, number] {
  const off = (
    n: number,
  ) => (variant === "torchvision" ? roundHalfEven((n - size) / 2) : Math.floor((n - size) / 2));
  return [off(height), off(width)];
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) {
    throw new InvalidArgumentError("size", `must be a positive integer, got ${size}`);
  }
}

/** Plans of the images seen lately (a service sees few distinct sizes; 32 bound the memory). */
const PLANS = new ResizePlanCache(32);

/**
 * Shortest side to `size` (PIL bicubic), then the `size x size` center crop, as uint8 RGB, by a
 * cached crop-aware plan (resize_plan.ts; the same bytes as `clipResizeAndCropReference`).
 */
export function clipResizeAndCrop(
  image: RgbImage,
  size = 224,
  variant: "transformers" | "torchvision" = "transformers",
): RgbImage {
  const out = new Uint8ClampedArray(size * size * 3);
  resizeAndCropInto(image, size, variant, out);
  return { width: size, height: size, data: new Uint8Array(out.buffer) };
}

/** The SIMD kernels (resize_wasm.ts), or null where WebAssembly SIMD is missing (the JS passes run). */
let wasm: WasmResampler | null | undefined;
function resampler(): WasmResampler | null {
  if (wasm === undefined) {
    try {
      wasm = new WasmResampler();
    } catch {
      wasm = null;
    }
  }
  return wasm;
}

/**
 * The bench's "previous kernel" column: run the wasm horizontal pass with the one-row kernel only
 * (same bytes, the speed before the four-row kernel). Returns the previous setting.
 */
export function useOneRowHorizontalKernel(on: boolean): boolean {
  const w = resampler();
  const was = w?.oneRowHorizontal ?? false;
  if (w) w.oneRowHorizontal = on;
  return was;
}

/** The (cached) resize-crop plan of CLIP's shortest-side resize to `size` and center crop of `image`. */
export function clipCropPlan(
  image: RgbImage,
  size: number,
  variant: "transformers" | "torchvision",
): ResizeCropPlan {
  validateRgbImage(image);
  checkSize(size);
  const [rw, rh] = shortestEdgeSize(image.width, image.height, size);
  const [top, left] = centerCropOffsets(rw, rh, size, variant);
  const { width: inWidth, height: inHeight } = image;
  return PLANS.get({ inWidth, inHeight, resizedWidth: rw, resizedHeight: rh, size, top, left });
}

function resizeAndCropInto(
  image: RgbImage,
  size: number,
  variant: "transformers" | "torchvision",
  out: Uint8ClampedArray,
): void {
  const plan = clipCropPlan(image, size, variant);
  const w = resampler();
  if (w) w.resizeCrop(plan, image.data, out);
  else runResizeCropPlan(plan, image.data, out);
}

/**
 * The straightforward form: the whole image through the reference port (pil_resize.ts), then the
 * crop. Kept as the oracle of the plan's tests and as the "before" row of the preprocessing bench.
 */
export function clipResizeAndCropReference(
  image: RgbImage,
  size = 224,
  variant: "transformers" | "torchvision" = "transformers",
): RgbImage {
  validateRgbImage(image);
  checkSize(size);
  const [rw, rh] = shortestEdgeSize(image.width, image.height, size);
  const resized = pilResize({ ...image, channels: 3 }, rw, rh, PIL_BICUBIC);
  const [top, left] = centerCropOffsets(rw, rh, size, variant);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const src = ((y + top) * rw + left) * 3;
    out.set(resized.data.subarray(src, src + size * 3), y * size * 3);
  }
  return { width: size, height: size, data: out };
}

function checkStats(options: NormalizeOptions): { mean: Float32Array; std: Float32Array } {
  const mean = Float32Array.from(options.mean ?? CLIP_MEAN);
  const std = Float32Array.from(options.std ?? CLIP_STD);
  if (mean.length !== 3) throw new InvalidArgumentError("mean", `expected 3 values, got ${mean.length}`);
  if (std.length !== 3) throw new InvalidArgumentError("std", `expected 3 values, got ${std.length}`);
  if (std.some((s) => !(s > 0))) throw new InvalidArgumentError("std", "values must be positive");
  return { mean, std };
}

const f = Math.fround;
const INV_255 = 1 / 255;

/**
 * The normalized value of every (channel, byte): `lut[c * 256 + v]`, with the variant's rescale
 * arithmetic, then `(x - mean) / std` in float32. Tables are cached per (mean, std, variant).
 */
function normalizationTable(options: NormalizeOptions): Float32Array {
  const { mean, std } = checkStats(options);
  const torchvision = options.variant === "torchvision";
  const key = `${torchvision ? "tv" : "tf"}:${mean.join(",")}:${std.join(",")}`;
  const cached = TABLES.get(key);
  if (cached) return cached;
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = mean[c], s = std[c];
    for (let v = 0; v < 256; v++) {
      // float32 division is correctly rounded, and so is fround of the float64 quotient (53 >= 2*24+2).
      const x = torchvision ? f(v / 255) : f(v * INV_255);
      lut[c * 256 + v] = f(f(x - m) / s);
    }
  }
  if (TABLES.size >= 16) TABLES.delete(TABLES.keys().next().value!);
  TABLES.set(key, lut);
  return lut;
}
const TABLES = new Map<string, Float32Array>();

/** HWC bytes (`plane` pixels) to normalized CHW float32 at `out[offset]` through `lut`. */
function writeChw(
  data: ArrayLike<number>,
  plane: number,
  lut: Float32Array,
  out: Float32Array,
  offset: number,
) {
  for (let c = 0; c < 3; c++) {
    const base = offset + c * plane;
    const lb = c * 256;
    for (let i = 0, p = c; i < plane; i++, p += 3) out[base + i] = lut[lb + data[p]];
  }
}

/**
 * Writes one cropped uint8 image into `out` at `offset` as normalized CHW float32, with the
 * variant's rescale arithmetic, then `(x - mean) / std` in float32.
 */
export function normalizeUint8ToChw(
  image: RgbImage,
  out: Float32Array,
  offset: number,
  options: NormalizeOptions = {},
): void {
  writeChw(image.data, image.width * image.height, normalizationTable(options), out, offset);
}

/** Names the failing image of a batch in the error. */
function perImage(images: RgbImage[], each: (img: RgbImage, n: number) => void): void {
  images.forEach((img, n) => {
    try {
      each(img, n);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`images[${n}]`, e.message);
      throw e;
    }
  });
}

/** CLIP pixel values for a batch: Float32Array of shape [N, 3, size, size]. */
export function clipPixelValues(
  images: RgbImage[],
  size = 224,
  options: NormalizeOptions = {},
): Float32Array {
  checkSize(size);
  const per = 3 * size * size;
  const out = new Float32Array(images.length * per);
  const lut = normalizationTable(options);
  const variant = options.variant ?? "transformers";
  const w = resampler();
  const crop = w ? null : new Uint8ClampedArray(per);
  perImage(images, (img, n) => {
    const plan = clipCropPlan(img, size, variant);
    if (w) return w.resizeCropNormalize(plan, img.data, lut, out, n * per);
    runResizeCropPlan(plan, img.data, crop!);
    writeChw(crop!, size * size, lut, out, n * per);
  });
  return out;
}

/** `clipPixelValues` through `clipResizeAndCropReference`: the "before" of the preprocessing bench. */
export function clipPixelValuesReference(
  images: RgbImage[],
  size = 224,
  options: NormalizeOptions = {},
): Float32Array {
  const per = 3 * size * size;
  const out = new Float32Array(images.length * per);
  perImage(images, (img, n) => {
    normalizeUint8ToChw(clipResizeAndCropReference(img, size, options.variant), out, n * per, options);
  });
  return out;
}

/** Python's `round()` for the sizes HPSv2 computes: round half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface Hpsv2Options extends NormalizeOptions {
  /** torchvision's tensor `antialias` (True since torchvision 0.17, which HPSv2's unpinned requirement installs). */
  antialias?: boolean;
}

/**
 * HPSv2 pixel values for one image: [3, size, size] float32. `ResizeMaxSize` resizes only when the
 * longest side differs from `size` (the reference then leaves a non-square image unpadded, which its
 * ViT rejects); here such an image is still padded to square, the only input the model accepts.
 */
export function hpsv2ImageTensor(image: RgbImage, size = 224, options: Hpsv2Options = {}): Float32Array {
  validateRgbImage(image);
  const { mean, std } = checkStats(options);
  const { width, height, data } = image;
  // ToTensor(): uint8 -> float32 / 255, CHW.
  const plane = width * height;
  let chw: Float32Array = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) chw[c * plane + i] = f(data[i * 3 + c] / 255);
  }
  const scale = size / Math.max(height, width);
  let h = height, w = width;
  if (scale !== 1.0) {
    h = roundHalfEven(height * scale);
    w = roundHalfEven(width * scale);
    chw = torchResizeBicubic(chw, 3, height, width, h, w, { antialias: options.antialias ?? true });
  }
  const padTop = Math.floor((size - h) / 2);
  const padLeft = Math.floor((size - w) / 2);
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    const m = mean[c], s = std[c];
    // Padding is 0 in [0, 1] space, before Normalize, so it becomes -mean/std.
    const padValue = f(f(0 - m) / s);
    const dst = c * size * size;
    out.fill(padValue, dst, dst + size * size);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        out[dst + (y + padTop) * size + x + padLeft] = f(f(chw[(c * h + y) * w + x] - m) / s);
      }
    }
  }
  return out;
}

/** HPSv2 pixel values for a batch: Float32Array of shape [N, 3, size, size]. */
export function hpsv2PixelValues(images: RgbImage[], size = 224, options: Hpsv2Options = {}): Float32Array {
  const per = 3 * size * size;
  const out = new Float32Array(images.length * per);
  perImage(images, (img, n) => out.set(hpsv2ImageTensor(img, size, options), n * per));
  return out;
}

/**
 * DDPO's quantization of a float image in [0, 1] (`(x * 255).round().clamp(0, 255)` on a float32
 * tensor: the product rounds to float32, torch.round is half to even). `layout` says whether `data`
 * is CHW (a decoded diffusion sample) or HWC; the result is HWC uint8 RGB.
 */
export function quantizeUnitFloatImage(
  data: ArrayLike<number>,
  width: number,
  height: number,
  layout: "chw" | "hwc" = "chw",
): RgbImage {
  const n = width * height;
  if (data.length !== n * 3) {
    throw new InvalidArgumentError(
      "image",
      `expected 3*${height}*${width} = ${n * 3} values, got ${data.length}`,
    );
  }
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const x = layout === "chw" ? data[c * n + i] : data[i * 3 + c];
      if (Number.isNaN(x)) throw new InvalidArgumentError("image", `value at pixel ${i} channel ${c} is NaN`);
      const v = roundHalfEven(f(f(x) * 255));
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width, height, data: out };
}
