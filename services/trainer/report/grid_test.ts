import sharp from "sharp";
import { Buffer } from "node:buffer";
import { assert, assertEquals, assertRejects } from "../../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { gridLayout, renderSampleGrid, writeSampleGrid } from "./grid.ts";
import { isPng } from "./svg.ts";
import { discImage, solidImage } from "./test_images.ts";

async function pixel(png: Uint8Array, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(Buffer.from(png)).removeAlpha().raw().toBuffer({
    resolveWithObject: true,
  });
  const i = (y * info.width + x) * info.channels;
  return [data[i], data[i + 1], data[i + 2]];
}

Deno.test("grid: a PNG of the laid-out size, each image in its cell", async () => {
  const red = solidImage(32, 32, [220, 20, 20]);
  const blue = solidImage(48, 48, [20, 20, 220]);
  const input = {
    images: [[red, blue], [blue, null]],
    rowLabels: ["cat", "a very long prompt that will not fit in the label column"],
    columnLabels: ["base", "tuned"],
    captions: [["5.81", "6.02"], ["6.10", null]],
    title: "samples",
    cellSize: 64,
  };
  const png = await renderSampleGrid(input);
  assert(isPng(png));
  const layout = gridLayout(input);
  const meta = await sharp(Buffer.from(png)).metadata();
  assertEquals([meta.format, meta.width, meta.height], ["png", layout.width, layout.height]);
  const center = (r: number, c: number) => [
    layout.left + c * (layout.cell + layout.gap) + layout.cell / 2,
    layout.top + r * (layout.cell + layout.captionHeight + layout.gap) + layout.cell / 2,
  ];
  const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) <= 3);
  const [x00, y00] = center(0, 0);
  assert(near(await pixel(png, x00, y00), [220, 20, 20]), "cell (0,0) is red");
  const [x01, y01] = center(0, 1);
  assert(near(await pixel(png, x01, y01), [20, 20, 220]), "cell (0,1) is blue");
  const [x11, y11] = center(1, 1);
  assert(near(await pixel(png, x11, y11), [255, 255, 255]), "empty cell is white");
  // Labels draw dark pixels left of the first column.
  const { data, info } = await sharp(Buffer.from(png)).removeAlpha().raw().toBuffer({
    resolveWithObject: true,
  });
  let dark = 0;
  for (let y = layout.top; y < layout.top + layout.cell; y++) {
    for (let x = 0; x < layout.left - layout.gap; x++) if (data[(y * info.width + x) * 3] < 128) dark++;
  }
  assert(dark > 20, `row label pixels: ${dark}`);
});

Deno.test("grid: grayscale and RGBA inputs, written to a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "grid_test_" });
  const gray = { width: 8, height: 8, channels: 1, data: new Uint8Array(64).fill(128) };
  const rgba = { width: 8, height: 8, channels: 4, data: new Uint8Array(256).fill(200) };
  const size = await writeSampleGrid(`${dir}/g.png`, {
    images: [[gray, rgba, discImage(40, 30)]],
    cellSize: 32,
  });
  const meta = await sharp(`${dir}/g.png`).metadata();
  assertEquals([meta.width, meta.height], [size.width, size.height]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("grid: bad inputs name the field", async () => {
  await assertRejects(() => renderSampleGrid({ images: [] }), InvalidArgumentError, "images");
  const bad = { width: 4, height: 4, channels: 3, data: new Uint8Array(10) };
  await assertRejects(
    () => renderSampleGrid({ images: [[solidImage(4, 4, [0, 0, 0]), bad]] }),
    InvalidArgumentError,
    "images[0][1].data: has 10 bytes, 4x4x3 needs 48",
  );
  await assertRejects(
    () => renderSampleGrid({ images: [[solidImage(4, 4, [0, 0, 0])]], rowLabels: ["a", "b"] }),
    InvalidArgumentError,
    "rowLabels",
  );
  await assertRejects(
    () => renderSampleGrid({ images: [[{ ...solidImage(4, 4, [0, 0, 0]), channels: 2 }]] }),
    InvalidArgumentError,
    "images[0][0].channels",
  );
});
