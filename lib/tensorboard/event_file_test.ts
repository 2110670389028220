import { assertEquals } from "../testing/assert.ts";
import {
  eventFiles,
  EventFileWriter,
  FILE_VERSION,
  pngInfo,
  readEventFile,
  visibleEvents,
} from "./event_file.ts";
import { pythonHasTensorboard, readWithPython } from "./python_reader.ts";

Deno.test("event file: file_version first, then scalars and an image, decoded back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rdpo-tb-" });
  try {
    const now = new Date("2026-01-02T03:04:05Z");
    const w = await EventFileWriter.open(dir, now);
    await w.scalars(1, { "train/loss": 0.5, "train/h_w": -1.25, "skipped": NaN }, 1000.5);
    await w.scalars(2, { "train/loss": 0.25 });
    const png = await Deno.readFile(new URL("../../models/tiny/samples.png", import.meta.url));
    await w.image(2, "samples/grid", png);
    await w.close();
    const second = await EventFileWriter.open(dir, now); // same second: its own file
    await second.close();

    const files = await eventFiles(dir);
    assertEquals(files.length, 2);
    assertEquals(files[0].split("/").pop()!.startsWith(`events.out.tfevents.${now.getTime() / 1000}.`), true);
    const events = await readEventFile(files[0]);
    assertEquals(events.length, 4);
    assertEquals(pngInfo(png).colorspace, 4, "samples.png is RGBA (PNG colour type 6)");
    assertEquals(events[0].what, { case: "fileVersion", value: FILE_VERSION });
    assertEquals(events[0].wallTime, now.getTime() / 1000);
    const scalars = events.slice(1, 3).map((e) => ({
      step: Number(e.step),
      values: e.what.case === "summary"
        ? e.what.value.value.map((v) => [v.tag, v.value.case === "simpleValue" ? v.value.value : null])
        : [],
    }));
    // NaN is left out (TensorBoard would plot a gap anyway); float32 holds these values exactly.
    assertEquals(scalars, [
      { step: 1, values: [["train/loss", 0.5], ["train/h_w", -1.25]] },
      { step: 2, values: [["train/loss", 0.25]] },
    ]);
    assertEquals(events[1].wallTime, 1000.5);
    const image = events[3].what.case === "summary" ? events[3].what.value.value[0] : undefined;
    assertEquals(image?.tag, "samples/grid");
    assertEquals(image?.value.case === "image" ? image.value.value : undefined, {
      $typeName: "tensorboard.Summary.Image",
      ...pngInfo(png),
      encodedImageString: png,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "event file: Python's event_accumulator reads it (skips without the tensorboard package)",
  ignore: !(await pythonHasTensorboard()),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "rdpo-tb-py-" });
    try {
      const w = await EventFileWriter.open(dir);
      await w.scalars(3, { "train/loss": 0.125, "eval/base/colorfulness": 41.5 });
      const png = await Deno.readFile(new URL("../../models/tiny/samples.png", import.meta.url));
      await w.image(3, "samples/grid", png);
      await w.close();
      const read = await readWithPython((await eventFiles(dir))[0]);
      assertEquals(read.scalars["train/loss"], [[3, 0.125]]);
      assertEquals(read.scalars["eval/base/colorfulness"], [[3, 41.5]]);
      const { width, height } = pngInfo(png);
      assertEquals(read.images["samples/grid"], [[3, width, height, png.length]]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** [step, value] of one tag in TensorBoard's view of a folder. */
async function visibleSeries(dir: string, tag: string): Promise<[number, number][]> {
  return (await visibleEvents(dir)).flatMap((e) =>
    e.what.case === "summary"
      ? e.what.value.value.filter((v) => v.tag === tag && v.value.case === "simpleValue")
        .map((v) => [Number(e.step), v.value.value as number] as [number, number])
      : []
  );
}

Deno.test("event file: a resumed writer's SessionLog START hides what the interrupted one logged from that step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rdpo-tb-resume-" });
  try {
    const first = await EventFileWriter.open(dir, new Date("2026-01-02T03:04:05Z"));
    await first.sessionStart(0);
    for (const step of [1, 2, 3]) await first.scalars(step, { "train/loss": step / 8 });
    await first.close();
    // Restarted from the checkpoint of step 1: steps 2 and 3 run again, with other values.
    const second = await EventFileWriter.open(dir, new Date("2026-01-02T03:05:00Z"));
    await second.sessionStart(2);
    for (const step of [2, 3, 4]) await second.scalars(step, { "train/loss": step / 4 });
    await second.close();

    const events = await readEventFile((await eventFiles(dir))[1]);
    assertEquals(events[1].what.case, "sessionLog");
    assertEquals(Number(events[1].step), 2);
    assertEquals(await visibleSeries(dir, "train/loss"), [[1, 0.125], [2, 0.5], [3, 0.75], [4, 1]]);
    if (await pythonHasTensorboard()) {
      // TensorBoard's own reader over the folder agrees (where the package is installed).
      assertEquals((await readWithPython(dir)).scalars["train/loss"], await visibleSeries(dir, "train/loss"));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
