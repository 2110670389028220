import { fixturePath, hasFixtures } from "../../../lib/testing/fixtures.ts";
import { assert, assertEquals, assertRejects } from "../../../lib/testing/assert.ts";
import { readImageFile } from "../../../lib/image/png.ts";
import { InvalidArgumentError } from "../../../lib/errors.ts";
import { JpegScorer, pilJpegByteCount } from "./jpeg.ts";

const JPEG_DIR = fixturePath("jpeg");

Deno.test({
  name: "pilJpegByteCount equals PIL's quality-95 byte counts (jpeg fixture)",
  ignore: !hasFixtures(JPEG_DIR),
  fn: async () => {
    const { bytes } = JSON.parse(await Deno.readTextFile(`${JPEG_DIR}/sizes.json`));
    const entries = Object.entries(bytes as Record<string, number>);
    assert(entries.length > 0, "sizes.json lists no images");
    for (const [file, expected] of entries) {
      const img = await readImageFile(`${JPEG_DIR}/${file}`);
      assertEquals(await pilJpegByteCount(img), expected, file);
    }
  },
});

Deno.test({
  name: "JpegScorer: incompressibility = +kB, compressibility = -kB, in batch order",
  ignore: !hasFixtures(JPEG_DIR),
  fn: async () => {
    const { bytes } = JSON.parse(await Deno.readTextFile(`${JPEG_DIR}/sizes.json`));
    const files = Object.keys(bytes);
    const images = await Promise.all(files.map((f) => readImageFile(`${JPEG_DIR}/${f}`)));
    const inc = await new JpegScorer("jpeg_incompressibility").score(images, []);
    const comp = await new JpegScorer("jpeg_compressibility").score(images, []);
    files.forEach((f, i) => {
      assertEquals(inc[i], bytes[f] / 1000, f);
      assertEquals(comp[i], -bytes[f] / 1000, f);
    });
  },
});

Deno.test("JpegScorer rejects a malformed image naming its index", async () => {
  const s = new JpegScorer("jpeg_compressibility");
  await assertRejects(
    () =>
      s.score([{ width: 2, height: 2, data: new Uint8Array(12) }, {
        width: 2,
        height: 2,
        data: new Uint8Array(3),
      }], []),
    InvalidArgumentError,
    "images[1].data",
  );
});
