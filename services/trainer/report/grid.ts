/**
 * Sample grids: RGB images (rows x columns, e.g. prompts x samples of base and tuned models)
 * composed into one PNG with row labels on the left, column labels on top and optional captions
 * (e.g. the reward) under each cell. sharp does the composing and the encoding; the labels are an
 * SVG overlay, rasterised by sharp's librsvg (a sans-serif font must be installed for text).
 */
import sharp, { type OverlayOptions } from "sharp";
import { Buffer } from "node:buffer";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { approxTextWidth, escapeXml, fitText } from "./svg.ts";

/** An 8-bit image, row-major HWC, like the proto's Image (channels 3 = RGB, 4 = RGBA, 1 = gray). */
export interface RgbImage {
  width: number;
  height: number;
  channels?: number;
  data: Uint8Array;
}

export interface SampleGridInput {
  /** rows x columns; null leaves a cell empty. */
  images: ReadonlyArray<ReadonlyArray<RgbImage | null>>;
  rowLabels?: readonly string[];
  columnLabels?: readonly string[];
  /** Text under each cell (same shape as images), e.g. "5.81". */
  captions?: ReadonlyArray<ReadonlyArray<string | null>>;
  title?: string;
  /** Side of a (square) cell in pixels; images are scaled to fit, keeping their aspect ratio. */
  cellSize?: number;
  gap?: number;
  fontSize?: number;
  /** Widest row label in pixels before it is shortened with an ellipsis. */
  maxRowLabelWidth?: number;
}

export interface GridLayout {
  width: number;
  height: number;
  left: number;
  top: number;
  cell: number;
  gap: number;
  captionHeight: number;
  rows: number;
  columns: number;
}

function checkImage(img: RgbImage, where: string): number {
  const channels = img.channels ?? 3;
  if (![1, 3, 4].includes(channels)) {
    throw new InvalidArgumentError(`${where}.channels`, `expected 1, 3 or 4, got ${channels}`);
  }
  if (
    !Number.isSafeInteger(img.width) || img.width < 1 || !Number.isSafeInteger(img.height) || img.height < 1
  ) {
    throw new InvalidArgumentError(where, `invalid size ${img.width}x${img.height}`);
  }
  if (img.data.length !== img.width * img.height * channels) {
    throw new InvalidArgumentError(
      `${where}.data`,
      `has ${img.data.length} bytes, ${img.width}x${img.height}x${channels} needs ${
        img.width * img.height * channels
      }`,
    );
  }
  return channels;
}

/** Where everything goes; pure, so the layout can be tested without pixels. */
export function gridLayout(input: SampleGridInput): GridLayout {
  const rows = input.images.length;
  const columns = Math.max(0, ...input.images.map((r) => r.length));
  if (rows === 0 || columns === 0) throw new InvalidArgumentError("images", "the grid has no cells");
  const cell = input.cellSize ?? 128;
  const gap = input.gap ?? 4;
  const font = input.fontSize ?? 14;
  const maxLabel = input.maxRowLabelWidth ?? 160;
  const labelWidth = input.rowLabels?.length
    ? Math.min(maxLabel, Math.max(...input.rowLabels.map((l) => approxTextWidth(l, font)))) + 2 * gap + 4
    : 0;
  const titleHeight = input.title ? Math.round(font * 1.8) : 0;
  const headerHeight = input.columnLabels?.length ? Math.round(font * 1.6) : 0;
  const captionHeight = input.captions ? Math.round(font * 1.4) : 0;
  const left = Math.ceil(labelWidth) + gap;
  const top = titleHeight + headerHeight + gap;
  return {
    width: left + columns * (cell + gap),
    height: top + rows * (cell + captionHeight + gap),
    left,
    top,
    cell,
    gap,
    captionHeight,
    rows,
    columns,
  };
}

function overlaySvg(input: SampleGridInput, l: GridLayout): string {
  const font = input.fontSize ?? 14;
  const parts: string[] = [];
  const text = (
    x: number,
    y: number,
    s: string,
    anchor: "start" | "middle" | "end",
    size = font,
    weight = "normal",
  ) =>
    parts.push(
      `<text x="${x.toFixed(1)}" y="${
        y.toFixed(1)
      }" font-family="DejaVu Sans, Arial, sans-serif" font-size="${size}" ` +
        `font-weight="${weight}" text-anchor="${anchor}" fill="#222">${escapeXml(s)}</text>`,
    );
  if (input.title) {
    text(l.width / 2, font * 1.3, fitText(input.title, font + 2, l.width - 8), "middle", font + 2, "bold");
  }
  const titleHeight = input.title ? Math.round(font * 1.8) : 0;
  input.columnLabels?.forEach((label, c) => {
    const x = l.left + c * (l.cell + l.gap) + l.cell / 2;
    text(x, titleHeight + font * 1.15, fitText(label, font, l.cell), "middle");
  });
  input.rowLabels?.forEach((label, r) => {
    const y = l.top + r * (l.cell + l.captionHeight + l.gap) + l.cell / 2 + font * 0.35;
    text(l.left - l.gap - 4, y, fitText(label, font, l.left - 2 * l.gap - 4), "end");
  });
  input.captions?.forEach((row, r) =>
    row.forEach((caption, c) => {
      if (caption === null || caption === undefined) return;
      const x = l.left + c * (l.cell + l.gap) + l.cell / 2;
      const y = l.top + r * (l.cell + l.captionHeight + l.gap) + l.cell + font * 1.05;
      text(x, y, fitText(caption, font - 2, l.cell), "middle", font - 2);
    })
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${l.width}" height="${l.height}">${
    parts.join("")
  }</svg>`;
}

/** Renders the grid as PNG bytes. */
export async function renderSampleGrid(input: SampleGridInput): Promise<Uint8Array> {
  const l = gridLayout(input);
  if (input.rowLabels && input.rowLabels.length !== l.rows) {
    throw new InvalidArgumentError("rowLabels", `has ${input.rowLabels.length} labels for ${l.rows} rows`);
  }
  if (input.columnLabels && input.columnLabels.length !== l.columns) {
    throw new InvalidArgumentError(
      "columnLabels",
      `has ${input.columnLabels.length} labels for ${l.columns} columns`,
    );
  }
  const white = { r: 255, g: 255, b: 255, alpha: 1 };
  const layers: OverlayOptions[] = [];
  for (let r = 0; r < l.rows; r++) {
    for (let c = 0; c < input.images[r].length; c++) {
      const img = input.images[r][c];
      if (!img) continue;
      const channels = checkImage(img, `images[${r}][${c}]`) as 1 | 3 | 4;
      const cellPng = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
        raw: { width: img.width, height: img.height, channels },
      })
        .resize(l.cell, l.cell, { fit: "contain", background: white, kernel: "lanczos3" })
        .png()
        .toBuffer();
      layers.push({
        input: cellPng,
        left: l.left + c * (l.cell + l.gap),
        top: l.top + r * (l.cell + l.captionHeight + l.gap),
      });
    }
  }
  layers.push({ input: Buffer.from(overlaySvg(input, l)), left: 0, top: 0 });
  const png = await sharp({ create: { width: l.width, height: l.height, channels: 3, background: white } })
    .composite(layers)
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** Renders the grid and writes it to `path`; returns the picture's size. */
export async function writeSampleGrid(
  path: string,
  input: SampleGridInput,
): Promise<{ width: number; height: number }> {
  const png = await renderSampleGrid(input);
  await Deno.writeFile(path, png);
  const l = gridLayout(input);
  return { width: l.width, height: l.height };
}
