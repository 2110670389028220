import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import * as A from "./attributes.ts";
import { defaultRegistry } from "./metrics.ts";
import type { PromCounter, PromHistogram } from "./prometheus.ts";
import { recordAliasSwap, recordScoreRequest, traceScorerBatch } from "./reward.ts";
import { activeContext } from "./tracing.ts";

const histogram = (name: string) => defaultRegistry.get(name) as PromHistogram;
const scorer = { name: "reward_test_scorer", version: "v7", kind: "test" };
const labels = { [A.ATTR_SCORER_NAME]: "reward_test_scorer", [A.ATTR_SCORER_VERSION]: "v7" };

Deno.test("traceScorerBatch returns the scorer's result and records inference time and batch size per version", async () => {
  const ctx = activeContext();
  const out = await traceScorerBatch(
    scorer,
    { images: 5, parents: [ctx, ctx], queueWaitMs: 3 },
    () => Promise.resolve("scores"),
  );
  assertEquals(out, "scores");
  assertEquals(histogram(A.METRIC_REWARD_INFERENCE_DURATION).snapshot(labels).count, 1);
  assertEquals(histogram(A.METRIC_REWARD_BATCH_SIZE).snapshot(labels), { count: 1, sum: 5 });
  await assertRejects(
    () =>
      traceScorerBatch(
        scorer,
        { images: 1, parents: [ctx], queueWaitMs: 0 },
        () => Promise.reject(new Error("x")),
      ),
    Error,
    "x",
  );
  assertEquals(
    histogram(A.METRIC_REWARD_INFERENCE_DURATION).snapshot(labels).count,
    1,
    "failures are not timed",
  );
  // Without labels (a batcher built without telemetry) nothing is recorded under any scorer.
  const before = defaultRegistry.render();
  await traceScorerBatch(undefined, { images: 2, parents: [ctx], queueWaitMs: 0 }, () => Promise.resolve(1));
  assertEquals(defaultRegistry.render(), before);
});

Deno.test("recordScoreRequest and recordAliasSwap record per scorer version", () => {
  recordScoreRequest(scorer, 2, 10);
  recordScoreRequest(undefined, 2, 10);
  assertEquals(histogram(A.METRIC_REWARD_QUEUE_WAIT).snapshot(labels), { count: 1, sum: 2 });
  assertEquals(histogram(A.METRIC_REWARD_REQUEST_DURATION).snapshot(labels), { count: 1, sum: 10 });
  recordAliasSwap("prod", scorer);
  recordAliasSwap("prod", scorer);
  const swaps = defaultRegistry.get(A.METRIC_REWARD_ALIAS_SWAPS) as PromCounter;
  assertEquals(swaps.value({ [A.ATTR_ALIAS]: "prod", ...labels }), 2);
  assert(defaultRegistry.render().includes("rdpo_reward_alias_swaps_total{"), "swap counter rendered");
});
