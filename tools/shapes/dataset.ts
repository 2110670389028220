/**
 * A procedural image-text dataset for the embedded demo model (issue 7): coloured shapes on coloured
 * backgrounds, with prompts from a small grammar ("two small red circles on a blue background",
 * "a green square at the top left on a yellow background"). Every sample is a pure function of
 * (seed, index), so the data set needs no files and is identical on every machine.
 */
import { gaussian, uniform } from "./rand.ts";

export const COLORS = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 70, 220],
  yellow: [235, 210, 40],
  purple: [140, 60, 180],
  orange: [240, 140, 30],
  white: [240, 240, 240],
  black: [20, 20, 20],
  gray: [128, 128, 128],
  pink: [240, 150, 190],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPES = ["circle", "square", "triangle", "ring", "cross"] as const;
export type ShapeName = typeof SHAPES[number];

export const SIZES = ["small", "large"] as const;
export type SizeName = typeof SIZES[number];

export const POSITIONS = ["top left", "top right", "bottom left", "bottom right", "center"] as const;
export type PositionName = typeof POSITIONS[number];

const COUNT_WORDS = ["a", "two", "three"] as const;

/** The structured content of one sample; the prompt and the image are both rendered from it. */
export interface SceneSpec {
  background: ColorName;
  shape: ShapeName;
  color: ColorName;
  count: 1 | 2 | 3;
  size: SizeName;
  /** Only for count 1: where the shape sits (undefined = anywhere). */
  position?: PositionName;
  /** Pattern on the background: plain, or stripes of a second colour. */
  stripes?: ColorName;
}

export interface Sample {
  spec: SceneSpec;
  prompt: string;
  /** RGB, HWC, uint8, `size x size`. */
  image: Uint8Array;
}

/** Every word the grammar can produce, in a fixed order (the tiny tokenizer's vocabulary). */
export function grammarWords(): string[] {
  const words = new Set<string>([
    ...COUNT_WORDS,
    ...COLOR_NAMES,
    ...SHAPES,
    ...SHAPES.map((s) => `${s}s`),
    ...SIZES,
    ..."on at the top bottom left right center background with stripes".split(" "),
  ]);
  return [...words];
}

function pick<T>(items: readonly T[], u: number): T {
  return items[Math.min(items.length - 1, Math.floor(u * items.length))];
}

/** Draws a scene spec for sample `index` of the data set `seed`. */
export function sampleSpec(seed: number, index: number): SceneSpec {
  const u = uniform(seed, index, 8);
  const background = pick(COLOR_NAMES, u[0]);
  let color = pick(COLOR_NAMES, u[1]);
  if (color === background) color = COLOR_NAMES[(COLOR_NAMES.indexOf(color) + 3) % COLOR_NAMES.length];
  const count = (1 + Math.floor(u[2] * 3)) as 1 | 2 | 3;
  const spec: SceneSpec = {
    background,
    shape: pick(SHAPES, u[3]),
    color,
    count,
    size: pick(SIZES, u[4]),
  };
  if (count === 1 && u[5] < 0.6) spec.position = pick(POSITIONS, u[5] / 0.6);
  if (u[6] < 0.2) {
    let stripes = pick(COLOR_NAMES, u[7]);
    if (stripes === background || stripes === color) {
      stripes = COLOR_NAMES[(COLOR_NAMES.indexOf(stripes) + 5) % COLOR_NAMES.length];
    }
    if (stripes !== background && stripes !== color) spec.stripes = stripes;
  }
  return spec;
}

/** The prompt for a spec, from the grammar. */
export function promptFor(spec: SceneSpec): string {
  const noun = spec.count === 1 ? spec.shape : `${spec.shape}s`;
  const parts = [COUNT_WORDS[spec.count - 1], spec.size, spec.color, noun];
  if (spec.position) parts.push("at the", spec.position);
  parts.push("on a", spec.background, "background");
  if (spec.stripes) parts.push("with", spec.stripes, "stripes");
  return parts.join(" ");
}

const POSITION_CENTERS: Record<PositionName, [number, number]> = {
  "top left": [0.27, 0.27],
  "top right": [0.73, 0.27],
  "bottom left": [0.27, 0.73],
  "bottom right": [0.73, 0.73],
  "center": [0.5, 0.5],
};

/** Signed inside-test of a shape centred at (0,0) with radius 1, at point (x, y). */
function insideShape(shape: ShapeName, x: number, y: number): boolean {
  switch (shape) {
    case "circle":
      return x * x + y * y <= 1;
    case "square":
      return Math.abs(x) <= 0.85 && Math.abs(y) <= 0.85;
    case "triangle":
      // Upward triangle with its base at y = 0.8 and apex at y = -0.9.
      return y <= 0.8 && y >= -0.9 && Math.abs(x) <= (y + 0.9) / 1.7;
    case "ring": {
      const r2 = x * x + y * y;
      return r2 <= 1 && r2 >= 0.36;
    }
    case "cross":
      return (Math.abs(x) <= 0.3 && Math.abs(y) <= 1) || (Math.abs(y) <= 0.3 && Math.abs(x) <= 1);
  }
}

/**
 * How the renderer draws a scene beyond its spec. The defaults draw exactly what the data set always
 * drew (the embedded model was trained on it); the classifiers use `opacity` and `scale` to make
 * images whose object is faded into the background or too small to see (the "none" count class),
 * and the held-out evaluator trains on the `jitter` variant so it does not share the reward's
 * generator.
 */
export interface RenderOptions {
  /** The object's opacity over the background, in [0, 1] (0: no object drawn). */
  opacity?: number;
  /** Factor on the object's radius. */
  scale?: number;
  /**
   * `default`: crisp pixel-centre shapes, palette colours, noise sigma 4. `jitter`: per-image colour
   * jitter (up to +-18 per channel, object and background apart), 2x2 supersampled (antialiased)
   * edges, radius +-12 %, extra placement jitter, noise sigma 7.
   */
  variant?: "default" | "jitter";
}

function jittered(c: readonly number[], u: Float64Array, at: number): number[] {
  return c.map((v, k) => Math.max(0, Math.min(255, v + (u[at + k] - 0.5) * 36)));
}

/**
 * Renders a spec to an RGB image. Placement jitter and a little pixel noise come from
 * (seed, index), so two samples with the same prompt differ.
 */
export function renderSpec(
  spec: SceneSpec,
  size: number,
  seed: number,
  index: number,
  options: RenderOptions = {},
): Uint8Array {
  const jitter = options.variant === "jitter";
  const opacity = options.opacity ?? 1;
  const v = jitter ? uniform(seed ^ 0x1b873593, index, 12) : undefined;
  const img = new Uint8Array(size * size * 3);
  const bg = v ? jittered(COLORS[spec.background], v, 0) : COLORS[spec.background];
  const st = spec.stripes ? (v ? jittered(COLORS[spec.stripes], v, 3) : COLORS[spec.stripes]) : undefined;
  const stripePeriod = Math.max(4, Math.round(size / 6));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const c = st && Math.floor((x + y) / (stripePeriod / 2)) % 2 === 1 ? st : bg;
      const o = (y * size + x) * 3;
      img[o] = c[0];
      img[o + 1] = c[1];
      img[o + 2] = c[2];
    }
  }
  const u = uniform(seed ^ 0x5bd1e995, index, 16);
  const radius = (spec.size === "small" ? 0.11 : 0.2) * size * (options.scale ?? 1) *
    (v ? 0.88 + 0.24 * v[9] : 1);
  const shift: [number, number] = v ? [(v[10] - 0.5) * 0.08 * size, (v[11] - 0.5) * 0.08 * size] : [0, 0];
  const centers: [number, number][] = [];
  if (spec.count === 1) {
    const [cx, cy] = spec.position ? POSITION_CENTERS[spec.position] : [0.3 + 0.4 * u[0], 0.3 + 0.4 * u[1]];
    centers.push([cx * size + (u[2] - 0.5) * 0.06 * size, cy * size + (u[3] - 0.5) * 0.06 * size]);
  } else {
    // Evenly spread along a random diagonal-ish line so shapes rarely overlap.
    const vertical = u[4] < 0.5;
    for (let k = 0; k < spec.count; k++) {
      const t = (k + 0.5) / spec.count;
      const a = 0.18 + 0.64 * t;
      const b = 0.35 + 0.3 * u[5 + k];
      centers.push(vertical ? [b * size, a * size] : [a * size, b * size]);
    }
  }
  const col = v ? jittered(COLORS[spec.color], v, 6) : COLORS[spec.color];
  // Sub-pixel sample offsets: the pixel centre, or a 2x2 grid (antialiased coverage).
  const subs = jitter ? [0.25, 0.75] : [0.5];
  for (const [cx0, cy0] of opacity > 0 ? centers : []) {
    const cx = cx0 + shift[0], cy = cy0 + shift[1];
    const x0 = Math.max(0, Math.floor(cx - radius - 1));
    const x1 = Math.min(size - 1, Math.ceil(cx + radius + 1));
    const y0 = Math.max(0, Math.floor(cy - radius - 1));
    const y1 = Math.min(size - 1, Math.ceil(cy + radius + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let inside = 0;
        for (const sy of subs) {
          for (const sx of subs) {
            if (insideShape(spec.shape, (x + sx - cx) / radius, (y + sy - cy) / radius)) inside++;
          }
        }
        if (inside === 0) continue;
        const alpha = opacity * inside / (subs.length * subs.length);
        const o = (y * size + x) * 3;
        for (let k = 0; k < 3; k++) {
          img[o + k] = alpha >= 1 ? col[k] : Math.round(img[o + k] * (1 - alpha) + col[k] * alpha);
        }
      }
    }
  }
  const sigma = jitter ? 7 : 4;
  const noise = gaussian(seed ^ 0x27d4eb2f, index, size * size * 3);
  for (let i = 0; i < img.length; i++) {
    img[i] = Math.max(0, Math.min(255, Math.round(img[i] + sigma * noise[i])));
  }
  return img;
}

/** Sample `index` of the data set `seed` at `size x size` pixels. */
export function makeSample(seed: number, index: number, size: number, options: RenderOptions = {}): Sample {
  const spec = sampleSpec(seed, index);
  return { spec, prompt: promptFor(spec), image: renderSpec(spec, size, seed, index, options) };
}
