import { dirname } from "node:path";
import { assert, assertEquals, assertRejects, assertThrows } from "../../lib/testing/assert.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import {
  appendMetrics,
  encodeMetricsRecord,
  type EvalMetrics,
  evalSeries,
  movingAverage,
  pairedDifference,
  parseMetricsText,
  readMetrics,
  scoreStats,
  type StepMetrics,
  stepSeries,
  summarizeMetrics,
  truncateMetrics,
} from "./metrics.ts";

function stepRecord(step: number, over: Partial<StepMetrics> = {}): StepMetrics {
  return {
    type: "step",
    step,
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, step)).toISOString(),
    loss: 1 - step / 8,
    h_w: step * 0.001,
    h_l: -step * 0.0005,
    accuracy: 0.5,
    reward_margin: 0.1 * step,
    pairs: 10,
    skipped_ties: step % 3 === 0 ? 1 : 0,
    mean_reward: 5 + step * 0.05,
    step_seconds: 2 + (step % 2),
    wire_ms: 12.5,
    phases: { sample: 800, score: 100, train: 400 },
    ...over,
  };
}

function evalRecord(step: number, model: string, aesthetic: number): EvalMetrics {
  return {
    type: "eval",
    step,
    time: "2026-01-01T00:00:00.000Z",
    model,
    rewards: {
      aesthetic: { mean: aesthetic, std: 0.1, count: 5 },
      hpsv2: { mean: 27 + step / 100, std: 1, count: 5 },
    },
  };
}

async function tempFile(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "metrics_test_" });
  return `${dir}/metrics.jsonl`;
}

Deno.test("metrics: append and read back, step and eval records", async () => {
  const path = await tempFile();
  const records = [evalRecord(0, "base", 5.5), stepRecord(1), stepRecord(2), evalRecord(2, "policy", 6.1)];
  for (const r of records) await appendMetrics(path, r);
  assertEquals(await readMetrics(path), records);
  const text = await Deno.readTextFile(path);
  assertEquals(text.split("\n").length, 5);
  await Deno.remove(path);
  assertEquals(await readMetrics(path), []);
  await Deno.remove(dirname(path), { recursive: true });
});

Deno.test("metrics: NaN and Infinity are written as null and read back as NaN", () => {
  const line = encodeMetricsRecord(stepRecord(3, { loss: NaN, grad_norm: Infinity }));
  assert(line.includes(`"loss":null`) && line.includes(`"grad_norm":null`), line);
  const [r] = parseMetricsText(line + "\n") as StepMetrics[];
  assert(Number.isNaN(r.loss) && Number.isNaN(r.grad_norm!));
  assertEquals(r.h_w, 0.003);
});

Deno.test("metrics: a torn last line is dropped, a bad middle line is an error naming it", () => {
  const good = encodeMetricsRecord(stepRecord(1)) + "\n";
  assertEquals(parseMetricsText(good + good.slice(0, 30), "m.jsonl").length, 1);
  assertThrows(() => parseMetricsText(good + "{oops\n" + good, "m.jsonl"), InvalidArgumentError, "m.jsonl:2");
  assertThrows(
    () => parseMetricsText(`{"type":"other","step":1}\n`, "m.jsonl"),
    InvalidArgumentError,
    "m.jsonl:1",
  );
  assertThrows(() => encodeMetricsRecord(stepRecord(-1)), InvalidArgumentError, "step");
});

Deno.test("metrics: truncate keeps records up to the checkpoint step", async () => {
  const path = await tempFile();
  for (let s = 1; s <= 6; s++) await appendMetrics(path, stepRecord(s));
  await Deno.writeTextFile(path, `{"type":"st`, { append: true });
  assertEquals(await truncateMetrics(path, 4), 4);
  assertEquals((await readMetrics(path)).map((r) => r.step), [1, 2, 3, 4]);
  await appendMetrics(path, stepRecord(5));
  assertEquals((await readMetrics(path)).map((r) => r.step), [1, 2, 3, 4, 5]);
  await Deno.writeTextFile(path, "junk\n" + encodeMetricsRecord(stepRecord(1)) + "\n");
  await assertRejects(() => readMetrics(path), InvalidArgumentError, ":1");
  await Deno.remove(dirname(path), { recursive: true });
});

Deno.test("metrics: series, moving average, score stats", () => {
  const records = [
    evalRecord(0, "base", 5),
    stepRecord(1),
    stepRecord(2, { loss: NaN }),
    stepRecord(3),
    evalRecord(3, "policy", 6),
  ];
  assertEquals(stepSeries(records, "loss"), [[1, 0.875], [3, 0.625]]);
  assertEquals(evalSeries(records, "aesthetic"), [[3, 6]]);
  assertEquals(evalSeries(records, "aesthetic", "base"), [[0, 5]]);
  assertEquals(movingAverage([[1, 1], [2, 3], [3, 5], [4, 7]], 2), [[1, 1], [2, 2], [3, 4], [4, 6]]);
  assertEquals(scoreStats([1, 2, 3, 4]), { mean: 2.5, std: Math.sqrt(1.25), count: 4 });
  assert(Number.isNaN(scoreStats([]).mean));
});

Deno.test("metrics: mid-epoch steps (no update) are left out of the update curves and summaries", () => {
  const u = { loss: 0.5, h_w: 0.002, h_l: -0.001, accuracy: 1, pairs: 4 };
  const records = [
    stepRecord(1, { loss: 0, h_w: 0, h_l: 0, accuracy: 0, updates: [] }),
    stepRecord(2, { updates: [u, u] }),
    stepRecord(3, { loss: 0, h_w: 0, h_l: 0, accuracy: 0, updates: [] }),
    stepRecord(4, { updates: [u] }),
  ];
  assertEquals(stepSeries(records, "h_l").map(([s]) => s), [2, 4]);
  assertEquals(stepSeries(records, "loss"), [[2, 0.75], [4, 0.5]]);
  // Sampling fields are measured at every step.
  assertEquals(stepSeries(records, "mean_reward").length, 4);
  const s = summarizeMetrics(records, 2);
  assertEquals(s.loss, (0.75 + 0.5) / 2);
  assertEquals(s.h_l, -(2 + 4) * 0.0005 / 2);
  assertEquals(s.mean_reward, (5.15 + 5.2) / 2);
});

Deno.test("metrics: paired difference of seed-matched samples", () => {
  // d = [1, -1, 2, 2]: mean 1, sample variance (0 + 4 + 1 + 1) / 3 = 2, standard error sqrt(2 / 4).
  const r = pairedDifference([0, 3, 1, 5], [1, 2, 3, 7]);
  assertEquals(r, { mean: 1, stdError: Math.sqrt(0.5), improved: 3, count: 4 });
  assertThrows(() => pairedDifference([1], [1, 2]), InvalidArgumentError, "equal, non-empty");
  assertThrows(() => pairedDifference([], []), InvalidArgumentError, "equal, non-empty");
});

Deno.test("metrics: summary over the last window", () => {
  const records = [
    evalRecord(0, "base", 5),
    ...[1, 2, 3, 4].map((s) => stepRecord(s)),
    evalRecord(4, "policy", 6.5),
  ];
  const s = summarizeMetrics(records, 2);
  assertEquals([s.steps, s.last_step, s.window], [4, 4, 2]);
  assertEquals(s.loss, (0.625 + 0.5) / 2);
  assertEquals(s.pairs_total, 40);
  assertEquals(s.skipped_ties_total, 1);
  assertEquals(s.mean_step_seconds, 2.5);
  assertEquals(s.first_eval.aesthetic, 5);
  assertEquals(s.last_eval.aesthetic, 6.5);
  const empty = summarizeMetrics([]);
  assertEquals(empty.steps, 0);
  assert(Number.isNaN(empty.loss));
});
