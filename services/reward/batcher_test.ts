import { assert, assertEquals, assertRejects, assertThrows } from "../../lib/testing/assert.ts";
import { InvalidArgumentError, UnavailableError } from "../../lib/errors.ts";
import { DynamicBatcher, resolveBatchingConfig } from "./batcher.ts";
import { fakeScore, FakeScorer, solidImage } from "./fake_scorer.ts";

const run = (scorer: FakeScorer) => (images: Parameters<FakeScorer["score"]>[0], prompts: string[]) =>
  scorer.score(images, prompts);

Deno.test("batcher: 32 concurrent callers with max_batch 8 are merged, each gets its own scores", async () => {
  const scorer = new FakeScorer({ delayMs: 2 });
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 8, maxQueueDelayMs: 5 });
  const results = await Promise.all(
    Array.from({ length: 32 }, (_, i) => batcher.submit([solidImage(4, 4, i * 7)], [])),
  );
  for (let i = 0; i < 32; i++) {
    assertEquals(results[i].scores.length, 1);
    assertEquals(results[i].scores[0], fakeScore(solidImage(4, 4, i * 7), undefined));
    assert(results[i].batchSize >= 1 && results[i].batchSize <= 8, `batch size ${results[i].batchSize}`);
  }
  assert(scorer.batchSizes.every((n) => n <= 8), `batches over max_batch: ${scorer.batchSizes}`);
  assert(Math.max(...scorer.batchSizes) > 1, `no batch was merged: ${scorer.batchSizes}`);
  assertEquals(scorer.batchSizes.reduce((a, b) => a + b, 0), 32);
  assertEquals(batcher.counters.images, 32);
});

Deno.test("batcher: multi-image requests keep their order and prompts", async () => {
  const scorer = new FakeScorer({ needsPrompts: true });
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 16, maxQueueDelayMs: 2 });
  const requests = Array.from({ length: 6 }, (_, r) => ({
    images: Array.from({ length: r + 1 }, (_, i) => solidImage(3, 2, r * 20 + i)),
    prompts: Array.from({ length: r + 1 }, (_, i) => "p".repeat(r * 3 + i)),
  }));
  const results = await Promise.all(requests.map((q) => batcher.submit(q.images, q.prompts)));
  results.forEach((res, r) => {
    const expected = requests[r].images.map((im, i) => fakeScore(im, requests[r].prompts[i]));
    assertEquals(Array.from(res.scores), expected);
  });
});

Deno.test("batcher: a request larger than max_batch is split into chunks of max_batch", async () => {
  const scorer = new FakeScorer();
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 4, maxQueueDelayMs: 0 });
  const images = Array.from({ length: 10 }, (_, i) => solidImage(2, 2, i * 10));
  const res = await batcher.submit(images, []);
  assertEquals(Array.from(res.scores), images.map((im) => fakeScore(im, undefined)));
  assertEquals(scorer.batchSizes, [4, 4, 2]);
  assertEquals(res.batchSize, 4);
});

Deno.test("batcher: a poisoned request fails alone; its batch-mates get their scores", async () => {
  const scorer = new FakeScorer({ poisonByte: 13 });
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 8, maxQueueDelayMs: 20 });
  scorer.hold(); // everything queues behind the first call, then merges
  const first = batcher.submit([solidImage(2, 2, 1)], []);
  const calls = Array.from(
    { length: 6 },
    (_, i) => batcher.submit([solidImage(2, 2, 40 + i, i === 3 ? 13 : undefined)], []),
  );
  scorer.release();
  const settled = await Promise.allSettled([first, ...calls]);
  settled.forEach((s, i) => {
    if (i === 4) {
      assertEquals(s.status, "rejected");
      assert(String((s as PromiseRejectedResult).reason).includes("poisoned"));
    } else {
      assertEquals(s.status, "fulfilled", `caller ${i}: ${(s as PromiseRejectedResult).reason}`);
    }
  });
  assert(scorer.batchSizes.some((n) => n > 1), `calls were not merged: ${scorer.batchSizes}`);
});

Deno.test("batcher: a scorer failing for everyone fails each caller, and the batcher keeps working", async () => {
  const broken = new FakeScorer({ failAll: "session crashed" });
  const batcher = new DynamicBatcher(run(broken), { maxBatch: 4, maxQueueDelayMs: 5 });
  const settled = await Promise.allSettled(
    Array.from({ length: 5 }, () => batcher.submit([solidImage(1, 1, 0)], [])),
  );
  assert(settled.every((s) => s.status === "rejected" && String(s.reason).includes("session crashed")));
  const healthy = new FakeScorer();
  const other = new DynamicBatcher(run(healthy), { maxBatch: 4, maxQueueDelayMs: 5 });
  assertEquals((await other.submit([solidImage(1, 1, 51)], [])).scores[0], 0.2);
});

Deno.test("batcher: a wrong number of scores is an error, not a silent mismatch", async () => {
  const batcher = new DynamicBatcher(() => Promise.resolve(new Float64Array(1)), {
    maxBatch: 4,
    maxQueueDelayMs: 0,
  });
  await assertRejects(
    () => batcher.submit([solidImage(1, 1, 0), solidImage(1, 1, 0)], []),
    Error,
    "1 scores for a batch of 2",
  );
});

Deno.test("batcher: timings add up and queue wait is reported", async () => {
  const scorer = new FakeScorer({ delayMs: 15 });
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 1, maxQueueDelayMs: 0 });
  const [a, b] = await Promise.all([
    batcher.submit([solidImage(1, 1, 0)], []),
    batcher.submit([solidImage(1, 1, 0)], []),
  ]);
  assert(a.inferenceMs > 0 && b.inferenceMs > 0);
  // b waited for a's whole inference (max_batch 1 forces two calls, one at a time).
  assert(b.queueMs >= a.inferenceMs * 0.5, `queue ${b.queueMs} vs inference ${a.inferenceMs}`);
  assertEquals([a.batchSize, b.batchSize], [1, 1]);
});

Deno.test("batcher: cancelled while queued leaves the queue; close rejects the rest", async () => {
  const scorer = new FakeScorer();
  const batcher = new DynamicBatcher(run(scorer), { maxBatch: 2, maxQueueDelayMs: 0 });
  scorer.hold();
  const running = batcher.submit([solidImage(1, 1, 0)], []);
  const controller = new AbortController();
  const cancelled = batcher.submit([solidImage(1, 1, 0)], [], controller.signal);
  const queued = batcher.submit([solidImage(1, 1, 0)], []);
  assertEquals(batcher.queuedImages, 2);
  controller.abort(new Error("client went away"));
  await assertRejects(() => cancelled, Error, "client went away");
  assertEquals(batcher.queuedImages, 1);
  batcher.close(new UnavailableError("unloading"));
  await assertRejects(() => queued, UnavailableError, "unloading");
  await assertRejects(() => batcher.submit([solidImage(1, 1, 0)], []), UnavailableError);
  scorer.release();
  assertEquals((await running).scores.length, 1);
});

Deno.test("batcher: config defaults and bounds", () => {
  const defaults = { maxBatch: 8, maxQueueDelayMs: 5 };
  assertEquals(resolveBatchingConfig(undefined, defaults), defaults);
  assertEquals(resolveBatchingConfig({ maxBatch: 0, maxQueueDelayMs: 0 }, defaults), defaults);
  assertEquals(resolveBatchingConfig({ maxBatch: 3 }, defaults), { maxBatch: 3, maxQueueDelayMs: 5 });
  assertThrows(
    () => resolveBatchingConfig({ maxBatch: 1e6 }, defaults),
    InvalidArgumentError,
    "batching.max_batch",
  );
  assertThrows(
    () => resolveBatchingConfig({ maxQueueDelayMs: -1 }, defaults),
    InvalidArgumentError,
    "batching.max_queue_delay_ms",
  );
});
