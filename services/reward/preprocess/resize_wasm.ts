/**
 * Runs a `ResizeCropPlan` (resize_plan.ts) with the WebAssembly SIMD passes of resample.wat: the
 * horizontal pass four int32 lanes per pixel (r, g, b, spare), the vertical pass sixteen bytes of a
 * row at a time, and the CLIP normalization as a table lookup, all on one linear memory that is
 * reused between calls (the plan's taps are written into it only when the plan changes).
 *
 * Same bytes as the JavaScript passes and the reference port: same taps, Pillow's int32 sums (see
 * resample.wat for why lanes cannot change them), clip8 by saturating narrows.
 */

import { Buffer } from "node:buffer";
import type { ResizeCropPlan } from "./resize_plan.ts";
import { WASM_BASE64 } from "./resample_wasm.ts";

interface Kernels {
  memory: WebAssembly.Memory;
  horizontal(...args: number[]): void;
  horizontal4(...args: number[]): void;
  horizontal4r(...args: number[]): void;
  horizontal4d(...args: number[]): void;
  vertical(...args: number[]): void;
  normalize(src: number, plane: number, lut: number, dst: number): void;
}

/** Where one plan's buffers lie in the memory (byte offsets). */
interface Layout {
  hFirst: number;
  hCount: number;
  hTaps: number;
  hSteps: number;
  hDense: number;
  vFirst: number;
  vCount: number;
  vTaps: number;
  lut: number;
  src: number;
  scratch: number;
  crop: number;
  out: number;
  end: number;
}

/** The horizontal kernels of resample.wat, all byte-identical. */
export const HORIZONTAL_KERNELS = ["one-row", "four-row", "four-row-relaxed", "four-row-dense"] as const;
export type HorizontalKernel = typeof HORIZONTAL_KERNELS[number];

const SLACK = 16;
const pairsOf = (taps: number) => (taps + 1) >> 1;
const stepsOf = (taps: number) => (taps + 3) >> 2;

/**
 * Writes the horizontal taps of output pixel `xx` as resample.wat's pair vectors: for taps 2j and
 * 2j+1, eight i16 high parts (h0 h1 h0 h1 h0 h1 0 0) then eight low parts, w = h * 2048 + l with
 * l in [0, 2048): h = w >> 11 lies in [-1024, 2048] for any tap of magnitude <= 2^22, so it fits.
 */
function writePairs(out: Int16Array, at: number, taps: Int32Array, from: number, count: number): void {
  for (let t = 0; t < count; t++) {
    const w = taps[from + t];
    const h = w >> 11, l = w & 2047;
    const base = at + (t >> 1) * 16 + (t & 1);
    for (let c = 0; c < 3; c++) {
      out[base + 2 * c] = h;
      out[base + 8 + 2 * c] = l;
    }
  }
}
/**
 * Writes the horizontal taps of output pixel `xx` as `horizontal4d`'s dense step vectors: for taps
 * 4j .. 4j+3, A-high (h0 h1 h0 h1 h0 h1 h2 h3), A-low (the same with low parts), B (h2 h3 h2 h3 l2
 * l3 l2 l3), 24 i16 per step; split as in `writePairs`.
 */
function writeDense(out: Int16Array, at: number, taps: Int32Array, from: number, count: number): void {
  for (let t = 0; t < count; t++) {
    const w = taps[from + t];
    const h = w >> 11, l = w & 2047;
    const base = at + (t >> 2) * 24, q = t & 3;
    if (q < 2) {
      for (let c = 0; c < 3; c++) {
        out[base + 2 * c + q] = h;
        out[base + 8 + 2 * c + q] = l;
      }
    } else {
      out[base + 4 + q] = h;
      out[base + 12 + q] = l;
      out[base + 14 + q] = h;
      out[base + 16 + q] = h;
      out[base + 18 + q] = l;
      out[base + 20 + q] = l;
    }
  }
}
const align = (n: number) => (n + 15) & ~15;

function layoutOf(plan: ResizeCropPlan): Layout {
  const { size, rowCount, inWidth } = plan;
  const hk = plan.horizontal?.ksize ?? 0, vk = plan.vertical?.ksize ?? 0;
  let at = 0;
  const take = (bytes: number) => {
    const here = at;
    at = align(at + bytes + SLACK);
    return here;
  };
  // Horizontal taps as (high, low) i16 pair vectors, 32 bytes per two taps (resample.wat).
  const hFirst = take(size * 4), hCount = take(size * 4), hTaps = take(size * pairsOf(hk) * 32);
  const hSteps = take(size * 4), hDense = take(size * stepsOf(hk) * 48);
  const vFirst = take(size * 4), vCount = take(size * 4), vTaps = take(size * vk * 4);
  const lut = take(768 * 4);
  const src = take(rowCount * inWidth * 3);
  const scratch = take(rowCount * size * 3);
  const crop = take(size * size * 3);
  const out = take(size * size * 3 * 4);
  return {
    hFirst,
    hCount,
    hTaps,
    hSteps,
    hDense,
    vFirst,
    vCount,
    vTaps,
    lut,
    src,
    scratch,
    crop,
    out,
    end: at,
  };
}

/** The SIMD kernels with their memory; one instance serves one thread (calls are synchronous). */
export class WasmResampler {
  readonly #k: Kernels;
  #plan: ResizeCropPlan | null = null;
  #lut: Float32Array | null = null;
  #layout: Layout | null = null;
  /**
   * Which horizontal kernel runs (same bytes; bench and kernel profile compare them): "one-row"
   * (`horizontal` on every row), "four-row" (`horizontal4`), "four-row-relaxed" (`horizontal4r`),
   * "four-row-dense" (`horizontal4d`; the remainder rows run `horizontal`).
   */
  horizontalKernel: HorizontalKernel = "four-row";
  /** Run the horizontal pass with the one-row kernel only (the kernel before `horizontal4`; bench). */
  get oneRowHorizontal(): boolean {
    return this.horizontalKernel === "one-row";
  }
  set oneRowHorizontal(on: boolean) {
    this.horizontalKernel = on ? "one-row" : "four-row";
  }

  constructor() {
    const bytes = Buffer.from(WASM_BASE64, "base64");
    const module = new WebAssembly.Module(bytes);
    this.#k = new WebAssembly.Instance(module).exports as unknown as Kernels;
  }

  #i32(at: number, n: number): Int32Array {
    return new Int32Array(this.#k.memory.buffer, at, n);
  }

  /** Lays out `plan` and writes its taps (only when it is not the plan of the previous call). */
  #load(plan: ResizeCropPlan): Layout {
    if (this.#plan === plan && this.#layout) return this.#layout;
    const l = layoutOf(plan);
    const mem = this.#k.memory;
    if (l.end > mem.buffer.byteLength) mem.grow(Math.ceil((l.end - mem.buffer.byteLength) / 65536));
    const { size, horizontal: h, vertical: v, rowStart } = plan;
    if (h) {
      const first = this.#i32(l.hFirst, size);
      const pairs = this.#i32(l.hCount, size);
      const maxPairs = pairsOf(h.ksize);
      const coef = new Int16Array(mem.buffer, l.hTaps, size * maxPairs * 16);
      coef.fill(0);
      const steps = this.#i32(l.hSteps, size);
      const maxSteps = stepsOf(h.ksize);
      const dense = new Int16Array(mem.buffer, l.hDense, size * maxSteps * 24);
      dense.fill(0);
      for (let i = 0; i < size; i++) {
        first[i] = h.first[i] * 3;
        pairs[i] = pairsOf(h.count[i]);
        writePairs(coef, i * maxPairs * 16, h.taps, i * h.ksize, h.count[i]);
        steps[i] = stepsOf(h.count[i]);
        writeDense(dense, i * maxSteps * 24, h.taps, i * h.ksize, h.count[i]);
      }
    }
    if (v) {
      const first = this.#i32(l.vFirst, size);
      for (let i = 0; i < size; i++) first[i] = (v.first[i] - rowStart) * size * 3;
      this.#i32(l.vCount, size).set(v.count);
      this.#i32(l.vTaps, v.taps.length).set(v.taps);
    }
    this.#plan = plan;
    this.#layout = l;
    this.#lut = null;
    return l;
  }

  /**
   * The horizontal pass: four rows per step (`horizontal4`, coefficient loads shared by the rows),
   * the last `rows % 4` rows one at a time; `kernel` picks which (the kernel profile compares them).
   */
  #horizontal(
    l: Layout,
    rowBytes: number,
    rows: number,
    size: number,
    maxPairs: number,
    kernel: HorizontalKernel = this.horizontalKernel,
  ): void {
    const quads = kernel === "one-row" ? 0 : rows & ~3;
    const k = this.#k;
    if (quads > 0 && kernel === "four-row-dense") {
      const maxSteps = stepsOf(this.#plan!.horizontal!.ksize);
      k.horizontal4d(l.src, rowBytes, quads, size, l.hFirst, l.hSteps, l.hDense, maxSteps, l.scratch);
    } else if (quads > 0) {
      (kernel === "four-row-relaxed" ? k.horizontal4r : k.horizontal4)(
        l.src,
        rowBytes,
        quads,
        size,
        l.hFirst,
        l.hCount,
        l.hTaps,
        maxPairs,
        l.scratch,
      );
    }
    if (rows > quads) {
      k.horizontal(
        l.src + quads * rowBytes,
        rowBytes,
        rows - quads,
        size,
        l.hFirst,
        l.hCount,
        l.hTaps,
        maxPairs,
        l.scratch + quads * size * 3,
      );
    }
  }

  /** Resize-and-crop of `src` by `plan`; returns a view of the crop bytes (valid until the next call). */
  #crop(plan: ResizeCropPlan, src: Uint8Array): { l: Layout; bytes: Uint8Array } {
    const { inWidth, inHeight, size, rowStart, rowCount, left, horizontal: h, vertical: v } = plan;
    if (src.length !== inWidth * inHeight * 3) {
      throw new RangeError(`plan is for ${inWidth}x${inHeight}x3 bytes, got ${src.length}`);
    }
    const l = this.#load(plan);
    const heap = new Uint8Array(this.#k.memory.buffer);
    const rowBytes = inWidth * 3, stride = size * 3;
    heap.set(src.subarray(rowStart * rowBytes, (rowStart + rowCount) * rowBytes), l.src);
    if (h) this.#horizontal(l, rowBytes, rowCount, size, pairsOf(h.ksize));
    else {
      for (let r = 0; r < rowCount; r++) {
        const from = l.src + r * rowBytes + left * 3;
        heap.copyWithin(l.scratch + r * stride, from, from + stride);
      }
    }
    if (v) this.#k.vertical(l.scratch, stride, size, l.vFirst, l.vCount, l.vTaps, v.ksize, l.crop);
    else heap.copyWithin(l.crop, l.scratch, l.scratch + size * stride);
    return { l, bytes: heap.subarray(l.crop, l.crop + size * stride) };
  }

  /**
   * Per-kernel times of one resize-crop-normalize of `src` (min over `reps` runs of each phase, ms),
   * for kernel_profile.ts. Each phase reruns on the same memory, so the times add up to one call
   * less the JS around the kernels; `h:<kernel>` is each horizontal kernel (interleaved rounds) and
   * `horizontal` the one in use.
   */
  profile(plan: ResizeCropPlan, src: Uint8Array, lut: Float32Array, reps: number): Record<string, number> {
    const out = new Float32Array(3 * plan.size * plan.size);
    this.resizeCropNormalize(plan, src, lut, out, 0);
    const l = this.#layout!;
    const { inWidth, size, rowStart, rowCount, horizontal: h, vertical: v } = plan;
    const rowBytes = inWidth * 3, stride = size * 3;
    const heap = new Uint8Array(this.#k.memory.buffer);
    const rows = src.subarray(rowStart * rowBytes, (rowStart + rowCount) * rowBytes);
    const time = (fn: () => void, n = reps) => {
      let best = Infinity;
      for (let r = 0; r < n; r++) {
        const t0 = performance.now();
        fn();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const times: Record<string, number> = { copyIn: time(() => heap.set(rows, l.src)) };
    if (h) {
      // Interleaved rounds, so load changes hit every kernel alike; min per kernel.
      const best: Record<string, number> = {};
      const round = Math.max(1, Math.ceil(reps / 5));
      for (let done = 0; done < reps; done += round) {
        for (const kernel of HORIZONTAL_KERNELS) {
          const t = time(
            () => this.#horizontal(l, rowBytes, rowCount, size, pairsOf(h.ksize), kernel),
            round,
          );
          best[kernel] = Math.min(best[kernel] ?? Infinity, t);
        }
      }
      for (const kernel of HORIZONTAL_KERNELS) times[`h:${kernel}`] = best[kernel];
      times.horizontal = best[this.horizontalKernel];
    }
    if (v) {
      times.vertical = time(() =>
        this.#k.vertical(l.scratch, stride, size, l.vFirst, l.vCount, l.vTaps, v.ksize, l.crop)
      );
    }
    times.normalize = time(() => this.#k.normalize(l.crop, size * size, l.lut, l.out));
    const view = new Float32Array(this.#k.memory.buffer, l.out, 3 * size * size);
    times.copyOut = time(() => out.set(view));
    times.wholeCall = time(() => this.resizeCropNormalize(plan, src, lut, out, 0));
    return times;
  }

  /** The `size x size x 3` crop into `out`. */
  resizeCrop(plan: ResizeCropPlan, src: Uint8Array, out: Uint8Array | Uint8ClampedArray): void {
    out.set(this.#crop(plan, src).bytes);
  }

  /** The crop normalized by `lut` (`[c * 256 + byte]`) as CHW float32 into `out` at `offset`. */
  resizeCropNormalize(
    plan: ResizeCropPlan,
    src: Uint8Array,
    lut: Float32Array,
    out: Float32Array,
    offset: number,
  ): void {
    const { l } = this.#crop(plan, src);
    if (this.#lut !== lut) {
      new Float32Array(this.#k.memory.buffer, l.lut, 768).set(lut);
      this.#lut = lut;
    }
    const plane = plan.size * plan.size;
    this.#k.normalize(l.crop, plane, l.lut, l.out);
    out.set(new Float32Array(this.#k.memory.buffer, l.out, 3 * plane), offset);
  }
}
