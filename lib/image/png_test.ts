import sharp from "sharp";
import { assertEquals, assertRejects } from "../testing/assert.ts";
import { InvalidArgumentError } from "../errors.ts";
import { decodeImage, encodePng } from "./png.ts";

Deno.test("encodePng/decodeImage round-trip RGB exactly", async () => {
  const data = Uint8Array.from({ length: 5 * 3 * 3 }, (_, i) => (i * 37) & 255);
  const back = await decodeImage(await encodePng({ width: 5, height: 3, data }));
  assertEquals([back.width, back.height], [5, 3]);
  assertEquals([...back.data], [...data]);
});

Deno.test("decodeImage drops alpha without compositing and expands grey to RGB (PIL convert('RGB'))", async () => {
  const rgba = Uint8Array.of(10, 20, 30, 0, 200, 100, 50, 128);
  const png = await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
  const a = await decodeImage(new Uint8Array(png));
  assertEquals([...a.data], [10, 20, 30, 200, 100, 50]);
  const grey = await sharp(Uint8Array.of(0, 77, 255), { raw: { width: 3, height: 1, channels: 1 } }).png()
    .toBuffer();
  const g = await decodeImage(new Uint8Array(grey));
  assertEquals([...g.data], [0, 0, 0, 77, 77, 77, 255, 255, 255]);
});

Deno.test("decodeImage rejects bytes that are not an image, naming the field", async () => {
  await assertRejects(
    () => decodeImage(new Uint8Array([1, 2, 3]), "images[2]"),
    InvalidArgumentError,
    "images[2]",
  );
});
