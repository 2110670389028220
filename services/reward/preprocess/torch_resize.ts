/**
 * torchvision's `F.resize(tensor, [h, w], InterpolationMode.BICUBIC)` on a float32 CHW tensor, the
 * resize HPSv2 runs (its `ResizeMaxSize` comes after `ToTensor()`, so it resamples floats in [0, 1],
 * not PIL uint8; REWARDS.md "hpsv2").
 *
 * torchvision >= 0.17 passes `antialias=True` for tensors, which runs PyTorch's
 * `_upsample_bicubic2d_aa`: the same separable algorithm as Pillow (support 2*scale when
 * downscaling, Keys a = -0.5, weights normalized to sum 1, width pass then height pass), carried out
 * in float32 without rounding or clipping between passes. Older torchvision (antialias=False for
 * tensors) runs `upsample_bicubic2d`: 4 taps, a = -0.75, source index `scale*(i+0.5)-0.5`, border
 * indices clamped, no normalization. Both are emulated here in float32 (each operation rounded with
 * Math.fround in PyTorch's order); ATen's vectorized loops may sum in a different order, so results
 * agree to about 1e-7, not bit for bit. No clamping: torchvision clamps bicubic output only for uint8.
 */

import { InvalidArgumentError } from "../../../lib/errors.ts";

const f = Math.fround;

interface Taps {
  /** Per output sample: first input index and tap count. */
  start: Int32Array;
  count: Int32Array;
  /** Input indices per tap (explicit so the non-AA path can clamp at borders). */
  index: Int32Array;
  weight: Float32Array;
  width: number;
}

function aaCubic(x: number): number {
  const a = f(-0.5);
  x = Math.abs(x);
  if (x < 1.0) return f(f(f(f(f(f(a + 2) * x) - f(a + 3)) * x) * x) + 1);
  if (x < 2.0) return f(f(f(f(f(f(f(a * x) - f(5 * a)) * x) + f(8 * a)) * x)) - f(4 * a));
  return 0;
}

/** `_compute_indices_min_size_weights_aa` for bicubic (interp_size 4), float32 arithmetic. */
function antialiasTaps(inSize: number, outSize: number): Taps {
  const scale = f(inSize / outSize);
  const support = scale >= 1.0 ? f(2 * scale) : 2.0;
  const invScale = scale >= 1.0 ? f(1.0 / scale) : 1.0;
  const width = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const index = new Int32Array(outSize * width);
  const weight = new Float32Array(outSize * width);
  for (let i = 0; i < outSize; i++) {
    const center = f(scale * (i + 0.5));
    const xmin = Math.max(Math.trunc(f(center - support) + 0.5), 0);
    const xsize = Math.min(Math.trunc(f(center + support) + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const w = aaCubic(f((f(j + xmin - center) + 0.5) * invScale));
      weight[i * width + j] = w;
      index[i * width + j] = xmin + j;
      total = f(total + w);
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) weight[i * width + j] = f(weight[i * width + j] / total);
    }
    start[i] = xmin;
    count[i] = xsize;
  }
  return { start, count, index, weight, width };
}

/** PyTorch's `get_cubic_upsample_coefficients` with A = -0.75. */
function cubicCoefficients(t: number): [number, number, number, number] {
  const A = f(-0.75);
  const conv1 = (x: number) => f(f(f(f(f(f(A + 2) * x) - f(A + 3)) * x) * x) + 1);
  const conv2 = (x: number) => f(f(f(f(f(f(f(A * x) - f(5 * A)) * x) + f(8 * A)) * x)) - f(4 * A));
  const x1 = t;
  const x2 = f(1.0 - t);
  return [conv2(f(x1 + 1.0)), conv1(x1), conv1(x2), conv2(f(x2 + 1.0))];
}

/** `upsample_bicubic2d` (align_corners=False) taps along one axis, indices clamped to the border. */
function plainTaps(inSize: number, outSize: number): Taps {
  const scale = f(inSize / outSize);
  const width = 4;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize).fill(4);
  const index = new Int32Array(outSize * width);
  const weight = new Float32Array(outSize * width);
  for (let i = 0; i < outSize; i++) {
    const real = f(f(scale * f(i + 0.5)) - 0.5);
    const input = Math.floor(real);
    const t = f(real - input);
    const c = cubicCoefficients(t);
    for (let k = 0; k < 4; k++) {
      index[i * 4 + k] = Math.min(Math.max(input - 1 + k, 0), inSize - 1);
      weight[i * 4 + k] = c[k];
    }
    start[i] = input - 1;
  }
  return { start, count, index, weight, width };
}

/** Resamples a float32 CHW tensor to `outHeight x outWidth` (width pass first, then height). */
export function torchResizeBicubic(
  chw: Float32Array,
  channels: number,
  height: number,
  width: number,
  outHeight: number,
  outWidth: number,
  { antialias = true }: { antialias?: boolean } = {},
): Float32Array {
  if (chw.length !== channels * height * width) {
    throw new InvalidArgumentError(
      "tensor",
      `expected ${channels}*${height}*${width} = ${channels * height * width} values, got ${chw.length}`,
    );
  }
  if (!Number.isInteger(outHeight) || !Number.isInteger(outWidth) || outHeight < 1 || outWidth < 1) {
    throw new InvalidArgumentError(
      "size",
      `output size must be positive integers, got ${outHeight}x${outWidth}`,
    );
  }
  const taps = antialias ? antialiasTaps : plainTaps;
  let cur = chw;
  let curW = width;
  if (outWidth !== width) {
    const t = taps(width, outWidth);
    const out = new Float32Array(channels * height * outWidth);
    for (let row = 0; row < channels * height; row++) {
      const src = row * width;
      for (let x = 0; x < outWidth; x++) {
        let s = 0;
        for (let j = 0; j < t.count[x]; j++) {
          const k = x * t.width + j;
          s = f(s + f(cur[src + t.index[k]] * t.weight[k]));
        }
        out[row * outWidth + x] = s;
      }
    }
    cur = out;
    curW = outWidth;
  }
  if (outHeight !== height) {
    const t = taps(height, outHeight);
    const out = new Float32Array(channels * outHeight * curW);
    for (let c = 0; c < channels; c++) {
      const plane = c * height * curW;
      for (let y = 0; y < outHeight; y++) {
        const dst = (c * outHeight + y) * curW;
        for (let x = 0; x < curW; x++) {
          let s = 0;
          for (let j = 0; j < t.count[y]; j++) {
            const k = y * t.width + j;
            s = f(s + f(cur[plane + t.index[k] * curW + x] * t.weight[k]));
          }
          out[dst + x] = s;
        }
      }
    }
    cur = out;
  }
  return cur === chw ? chw.slice() : cur;
}
