import { assertEquals, assertRejects } from "../testing/assert.ts";
import * as A from "./attributes.ts";
import { defaultRegistry } from "./metrics.ts";
import type { PromCounter, PromHistogram } from "./prometheus.ts";
import { phaseSpan, StepTrace } from "./rdpo.ts";

const phase = (name: string) =>
  (defaultRegistry.get(A.METRIC_TRAINER_PHASE_DURATION) as PromHistogram | undefined)?.snapshot({
    [A.ATTR_RDPO_PHASE]: name,
  }) ?? { count: 0, sum: 0 };
const count = (name: string) => (defaultRegistry.get(name) as PromCounter | undefined)?.value() ?? 0;

Deno.test("StepTrace.finish records each phase, the step duration and the pair counters once", async () => {
  const before = { sample: phase("sample"), rank: phase("rank"), pairs: count(A.METRIC_TRAINER_PAIRS) };
  const step = new StepTrace(1, "rdpo");
  step.setPromptBatch(2);
  assertEquals(await step.run(() => phaseSpan("sample", () => Promise.resolve(42), 0, true)), 42);
  step.finish({ pairs: 3, skippedTies: 1, rewardMargin: 0.5, phases: { sample: 12, rank: 0.5 } });
  step.finish({ pairs: 3, skippedTies: 1, rewardMargin: 0.5, phases: { sample: 12, rank: 0.5 } });
  step.fail(new Error("after finish: ignored"));
  assertEquals(phase("sample").count - before.sample.count, 1);
  assertEquals(phase("sample").sum - before.sample.sum, 12);
  assertEquals(phase("rank").count - before.rank.count, 1);
  assertEquals(count(A.METRIC_TRAINER_PAIRS) - before.pairs, 3);
});

Deno.test("phaseSpan passes failures through; a failed step records no step metrics", async () => {
  const steps = (defaultRegistry.get(A.METRIC_TRAINER_STEP_DURATION) as PromHistogram | undefined)?.snapshot()
    .count ?? 0;
  const step = new StepTrace(2);
  await assertRejects(
    () => step.run(() => phaseSpan("score", () => Promise.reject(new Error("down")))),
    Error,
    "down",
  );
  step.fail(new Error("down"));
  assertEquals(
    (defaultRegistry.get(A.METRIC_TRAINER_STEP_DURATION) as PromHistogram | undefined)?.snapshot().count ?? 0,
    steps,
  );
});
