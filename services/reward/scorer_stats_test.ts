import { assertEquals } from "../../lib/testing/assert.ts";
import { percentile, ScorerStats } from "./scorer_stats.ts";

Deno.test("scorer stats: counts, mean over all requests, p99 over the recent window", () => {
  const stats = new ScorerStats(100);
  assertEquals(stats.snapshot(), {
    requestCount: 0,
    imageCount: 0,
    errorCount: 0,
    meanLatencyMs: 0,
    p99LatencyMs: 0,
  });
  for (let i = 1; i <= 100; i++) stats.record(2, i, i % 10 === 0);
  const s = stats.snapshot();
  assertEquals([s.requestCount, s.imageCount, s.errorCount], [100, 180, 10]);
  assertEquals(s.meanLatencyMs, 50.5);
  assertEquals(s.p99LatencyMs, 99);
  // The window keeps the last 100: 100 fast requests push the slow ones out of p99, not out of the mean.
  for (let i = 0; i < 100; i++) stats.record(1, 1, false);
  assertEquals(stats.snapshot().p99LatencyMs, 1);
  assertEquals(stats.snapshot().meanLatencyMs, (5050 + 100) / 200);
});

Deno.test("scorer stats: nearest-rank percentile", () => {
  assertEquals(percentile([], 0.99), 0);
  assertEquals(percentile([5], 0.99), 5);
  assertEquals(percentile([3, 1, 2, 4], 0.5), 2);
  assertEquals(percentile([3, 1, 2, 4], 1), 4);
});
