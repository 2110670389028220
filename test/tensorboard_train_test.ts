/**
 * `deno task train --report-to tensorboard` as a user runs it (issue 16): a short RDPO run through
 * real reward and policy service processes writes <run_dir>/tensorboard/events.out.tfevents.*, whose
 * records decode (TFRecord framing, masked CRC-32C, Event/Summary protobufs) to exactly the values
 * in metrics.jsonl, plus the report's before/after grid as an image summary. Where Python's
 * `tensorboard` package is installed, its own event_accumulator reads the same file.
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import { eventFiles, pngInfo, readEventFile, visibleEvents } from "../lib/tensorboard/event_file.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { readMetrics } from "../services/trainer/metrics.ts";
import { pythonHasTensorboard, readWithPython } from "../lib/tensorboard/python_reader.ts";
import { GRID_TAG, scalarsOf } from "../services/trainer/report/tensorboard.ts";

const f32 = (x: number) => Math.fround(x);

// Set by the run test, read by the Python reader test.
let eventFile = "";
let loggedLoss: [number, number][] = [];
let gridSize: number[] = [];

const tmp = await Deno.makeTempDir({ prefix: "rdpo-tb-run-" });
const modelDir = join(tmp, "model");
const runDir = join(tmp, "run");
const reward = new ServiceProcess("services/reward/main.ts", []);
/** `deno task train --config <config> --report-to tensorboard` as a process; its stderr. */
async function trainWithTensorboard(
  config: Record<string, unknown>,
  name: string,
  extra: string[] = [],
): Promise<string> {
  const configFile = join(tmp, `${name}.yaml`);
  await Deno.writeTextFile(configFile, stringify(config));
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "services/trainer/main.ts",
      "train",
      "--config",
      configFile,
      "--report-to",
      "tensorboard",
      ...extra,
    ],
    cwd: repoRoot,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, 0, stderr);
  return stderr;
}

/** The first run's config (kept for the resume test). */
let runConfig: Record<string, unknown> = {};

const policy = new ServiceProcess("services/policy/main.ts", [
  "--model-dir",
  modelDir,
  "--lora-rank",
  "2",
  "--adapter-root",
  join(tmp, "adapters"),
]);

Deno.test({
  name: "tensorboard: train --report-to tensorboard writes event files that decode to the logged values",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await initBackend("cpu"); // only to write the random model's weights
    await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
    await Deno.writeTextFile(join(tmp, "prompts.txt"), "a red circle\na blue square\na green circle\n");
    await Promise.all([reward.start(), policy.start()]);
    try {
      const config = {
        method: "rdpo",
        seed: 5,
        run_dir: runDir,
        progress: "none",
        sampling: { num_inference_steps: 3, eta: 1.0, guidance_scale: 3.0 },
        preference: { num_candidates: 2, finetune_step_indices: [0, 1] },
        lora: { rank: 2 },
        training: { steps: 2, prompt_batch_size: 1 },
        prompts: { file: join(tmp, "prompts.txt") },
        scorers: [{ name: "jpeg_compressibility", weight: 1 }],
        eval: { every: 0, at_start: false, at_end: true, samples_per_prompt: 1, max_prompts: 1 },
        services: { policy: policy.address, reward: reward.address },
        checkpoint: { every: 0, keep_last: 1 },
        report: { grid_prompts: 1, grid_samples: 1, image_size: 32 },
      };
      runConfig = config;
      const stderr = await trainWithTensorboard(config, "run");
      assert(stderr.startsWith("train: config="), `the settings line comes first:\n${stderr}`);
      assert(stderr.includes("report-to=tensorboard (flag)"), stderr);

      const files = await eventFiles(join(runDir, "tensorboard"));
      assertEquals(files.length, 1);
      const events = await readEventFile(files[0]);
      assertEquals(events[0].what.case, "fileVersion");

      // Every metrics.jsonl record is one summary event at its step with the same values (float32).
      const records = await readMetrics(join(runDir, "metrics.jsonl"));
      assertEquals(records.filter((x) => x.type === "step").length, 2);
      assert(records.some((x) => x.type === "eval"), "evaluations were logged");
      const summaries = events.slice(1).filter((e) =>
        e.what.case === "summary" && e.what.value.value.every((v) => v.value.case === "simpleValue")
      );
      assertEquals(summaries.length, records.length);
      records.forEach((record, i) => {
        const e = summaries[i];
        assertEquals(Number(e.step), record.step);
        const logged = Object.fromEntries(
          (e.what.case === "summary" ? e.what.value.value : []).map((v) => [v.tag, v.value.value as number]),
        );
        const expected = Object.fromEntries(
          Object.entries(scalarsOf(record)).filter(([, v]) => Number.isFinite(v)).map((
            [k, v],
          ) => [k, f32(v)]),
        );
        assertEquals(logged, expected, `record ${i} (${record.type} step ${record.step})`);
      });
      const firstStep = summaries[0].what.case === "summary" ? summaries[0].what.value.value : [];
      for (
        const tag of [
          "train/loss",
          "train/h_w",
          "train/h_l",
          "train/accuracy",
          "train/reward",
          "train/margin",
        ]
      ) {
        assert(firstStep.some((v) => v.tag === tag), `${tag} is logged`);
      }
      assert(firstStep.some((v) => v.tag === "time/step_seconds"), "step timings are logged");

      // The before/after grid: the report's grid.png, byte for byte, with its size.
      const grid = events.find((e) => e.what.case === "summary" && e.what.value.value[0]?.tag === GRID_TAG);
      assert(grid, "the grid image summary is written");
      const image = grid.what.case === "summary" && grid.what.value.value[0].value.case === "image"
        ? grid.what.value.value[0].value.value
        : undefined;
      const png = await Deno.readFile(join(runDir, "report", "grid.png"));
      assertEquals(image?.encodedImageString, png);
      assertEquals(
        { width: image?.width, height: image?.height, colorspace: image?.colorspace },
        pngInfo(png),
      );
      assertEquals(Number(grid.step), 2);

      eventFile = files[0];
      loggedLoss = records.flatMap((x) =>
        x.type === "step" ? [[x.step, f32(x.loss)] as [number, number]] : []
      );
      gridSize = [image!.width, image!.height, png.length];
    } finally {
      await Promise.all([policy.stop(), reward.stop()]);
    }
  },
});

Deno.test({
  name: "tensorboard: Python's event_accumulator reads the run's event file (skips without tensorboard)",
  ignore: !(await pythonHasTensorboard()),
  async fn() {
    assert(eventFile, "the run above wrote an event file");
    const read = await readWithPython(eventFile);
    assertEquals(read.scalars["train/loss"], loggedLoss);
    assertEquals(read.images[GRID_TAG], [[2, ...gridSize]]);
  },
});

Deno.test({
  name: "tensorboard: steps replayed after a restart from an older checkpoint show once, as in metrics.jsonl",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert(eventFile, "the run above wrote an event file");
    const again = new ServiceProcess("services/policy/main.ts", [
      "--model-dir",
      modelDir,
      "--lora-rank",
      "2",
      "--adapter-root",
      join(tmp, "adapters-again"),
    ]);
    const rewardAgain = new ServiceProcess("services/reward/main.ts", []);
    await Promise.all([rewardAgain.start(), again.start()]);
    try {
      const services = { policy: again.address, reward: rewardAgain.address };
      const extended = (steps: number) => ({
        ...runConfig,
        services,
        training: { ...(runConfig.training as object), steps },
        checkpoint: { every: 1, keep_last: 3 },
      });
      // Extend the run to step 3, then lose the step-3 checkpoint as a kill before it was made would:
      // the next start resumes at step 2 and logs step 3 a second time.
      await trainWithTensorboard(extended(3), "extend", ["--resume"]);
      const checkpoints = join(runDir, "checkpoints");
      await Deno.remove(join(checkpoints, "step-000003"), { recursive: true });
      await Deno.writeTextFile(join(checkpoints, "latest"), "step-000002\n");
      await trainWithTensorboard(extended(4), "replay", ["--resume"]);

      const dir = join(runDir, "tensorboard");
      assertEquals((await eventFiles(dir)).length, 3);
      const third = await readEventFile((await eventFiles(dir))[2]);
      assertEquals([third[1].what.case, Number(third[1].step)], ["sessionLog", 3]);
      // TensorBoard's view: each metrics.jsonl record once, at its step, with its values.
      const records = await readMetrics(join(runDir, "metrics.jsonl"));
      const scalarEvents = (await visibleEvents(dir)).filter((e) =>
        e.what.case === "summary" && e.what.value.value.every((v) => v.value.case === "simpleValue")
      );
      assertEquals(
        scalarEvents.map((e) => Number(e.step)),
        records.map((r) => r.step),
      );
      records.forEach((record, i) => {
        const logged = scalarEvents[i].what.case === "summary" ? scalarEvents[i].what.value.value : [];
        const values = Object.fromEntries(logged.map((v) => [v.tag, v.value.value]));
        for (const [tag, v] of Object.entries(scalarsOf(record))) {
          if (Number.isFinite(v) && !tag.startsWith("time/")) {
            assertEquals(values[tag], f32(v), `${record.type} step ${record.step} ${tag}`);
          }
        }
      });
      assertEquals(records.filter((r) => r.type === "step").map((r) => r.step), [1, 2, 3, 4]);
      if (await pythonHasTensorboard()) {
        const read = await readWithPython(dir);
        assertEquals(read.scalars["train/loss"].map(([step]) => step), [1, 2, 3, 4]);
      }
    } finally {
      await Promise.all([again.stop(), rewardAgain.stop()]);
    }
  },
});

// Last: the run folder is kept until the Python reader test has run.
Deno.test("tensorboard: clean up", async () => {
  await Deno.remove(tmp, { recursive: true });
});
