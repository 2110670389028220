/** Synthetic RGB pictures for the report tests (no fixtures needed). */
import type { RgbImage } from "./grid.ts";

/** A solid-colour image. */
export function solidImage(width: number, height: number, rgb: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { width, height, channels: 3, data };
}

/** A smooth picture: a disc of one hue on a gradient of another, so grids are easy to eyeball. */
export function discImage(size: number, hue: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  const rgbOf = (h: number, l: number): [number, number, number] => {
    const f = (n: number) => {
      const k = (n + h / 30) % 12;
      return Math.round(255 * (l - 0.5 * Math.min(l, 1 - l) * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
    };
    return [f(0), f(8), f(4)];
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - size / 2, dy = y - size / 2;
      const inside = dx * dx + dy * dy < (size * 0.3) ** 2;
      const px = inside ? rgbOf(hue, 0.5) : rgbOf((hue + 180) % 360, 0.35 + 0.4 * (y / size));
      data.set(px, (y * size + x) * 3);
    }
  }
  return { width: size, height: size, channels: 3, data };
}
