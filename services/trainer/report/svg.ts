/** Small helpers shared by the SVG-producing report modules. */
import sharp from "sharp";
import { Buffer } from "node:buffer";

/** Escapes text for SVG/HTML element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** Rough width of a text run in a sans-serif font (for layout only; no font metrics needed). */
export function approxTextWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

/** Shortens text to fit `maxWidth` pixels, ending it with an ellipsis when cut. */
export function fitText(text: string, fontSize: number, maxWidth: number): string {
  const maxChars = Math.max(1, Math.floor(maxWidth / (fontSize * 0.6)));
  return text.length <= maxChars ? text : text.slice(0, Math.max(1, maxChars - 1)) + "\u2026";
}

/** Rasterises an SVG document to PNG bytes (librsvg through sharp). `density` 72 = 1 px per unit. */
export async function svgToPng(svg: string, density = 144): Promise<Uint8Array> {
  const out = await sharp(Buffer.from(svg), { density }).png().toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The 8-byte PNG file signature. */
export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length > 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}
