import { assert, assertEquals, assertThrows } from "../testing/assert.ts";
import { prometheusLabel, prometheusName, PromRegistry } from "./prometheus.ts";

Deno.test("prometheusName: OpenTelemetry names map to Prometheus names with unit and _total suffixes", () => {
  assertEquals(prometheusName("rpc.server.duration", "ms", "histogram"), "rpc_server_duration_milliseconds");
  assertEquals(
    prometheusName("rdpo.rpc.server.requests", "{request}", "counter"),
    "rdpo_rpc_server_requests_total",
  );
  assertEquals(prometheusName("x.size", "By", "histogram"), "x_size_bytes");
  assertEquals(prometheusName("x.total", undefined, "counter"), "x_total");
  assertEquals(prometheusName("x_seconds", "s", "histogram"), "x_seconds");
  assertEquals(prometheusName("9lives", undefined, "counter"), "_9lives_total");
  assertEquals(prometheusLabel("rdpo.scorer.name"), "rdpo_scorer_name");
});

Deno.test("PromRegistry renders counters per label set, sorted labels, escaped values", () => {
  const r = new PromRegistry();
  const c = r.counter("rdpo.test.requests", { description: "calls\nmade", unit: "{request}" });
  c.add(1, { "rpc.method": "Score", "rpc.service": "rdpo.v1.RewardService" });
  c.add(2, { "rpc.service": "rdpo.v1.RewardService", "rpc.method": "Score" });
  c.add(1, { "rpc.method": 'we"ird\\' });
  assertEquals(c.value({ "rpc.method": "Score", "rpc.service": "rdpo.v1.RewardService" }), 3);
  assertEquals(
    r.render(),
    [
      "# HELP rdpo_test_requests_total calls\\nmade",
      "# TYPE rdpo_test_requests_total counter",
      'rdpo_test_requests_total{rpc_method="Score",rpc_service="rdpo.v1.RewardService"} 3',
      'rdpo_test_requests_total{rpc_method="we\\"ird\\\\"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("PromHistogram renders cumulative buckets, +Inf, sum and count", () => {
  const r = new PromRegistry();
  const h = r.histogram("rdpo.test.duration", { description: "d", unit: "ms", buckets: [1, 10, 100] });
  for (const v of [0.5, 1, 5, 50, 500]) h.record(v, { scorer: "a" });
  h.record(3);
  assertEquals(h.snapshot({ scorer: "a" }), { count: 5, sum: 556.5 });
  const text = r.render();
  const expected = [
    "# HELP rdpo_test_duration_milliseconds d",
    "# TYPE rdpo_test_duration_milliseconds histogram",
    'rdpo_test_duration_milliseconds_bucket{scorer="a",le="1"} 2',
    'rdpo_test_duration_milliseconds_bucket{scorer="a",le="10"} 3',
    'rdpo_test_duration_milliseconds_bucket{scorer="a",le="100"} 4',
    'rdpo_test_duration_milliseconds_bucket{scorer="a",le="+Inf"} 5',
    'rdpo_test_duration_milliseconds_sum{scorer="a"} 556.5',
    'rdpo_test_duration_milliseconds_count{scorer="a"} 5',
    'rdpo_test_duration_milliseconds_bucket{le="1"} 0',
    'rdpo_test_duration_milliseconds_bucket{le="10"} 1',
    'rdpo_test_duration_milliseconds_bucket{le="100"} 1',
    'rdpo_test_duration_milliseconds_bucket{le="+Inf"} 1',
    "rdpo_test_duration_milliseconds_sum 3",
    "rdpo_test_duration_milliseconds_count 1",
    "",
  ].join("\n");
  assertEquals(text, expected);
});

Deno.test("PromRegistry: get-or-create by name, type clashes and bad values are errors", () => {
  const r = new PromRegistry();
  const a = r.counter("m", { description: "x" });
  assert(r.counter("m", { description: "x" }) === a, "same metric for the same name");
  assertThrows(
    () => r.histogram("m", { description: "x", buckets: [1] }),
    Error,
    "already registered as a counter",
  );
  assertThrows(() => a.add(-1), RangeError, "only increases");
  assertThrows(() => a.add(NaN), RangeError, "finite");
  assertThrows(
    () => r.histogram("h", { description: "x", buckets: [2, 1] }),
    RangeError,
    "strictly increasing",
  );
  assertThrows(
    () => r.histogram("h2", { description: "x", buckets: [1] }).record(Infinity),
    RangeError,
    "finite",
  );
  assertEquals(new PromRegistry().render(), "");
});

Deno.test("PromCounter: label sets that concatenate alike stay separate series (normalize cache)", () => {
  const r = new PromRegistry();
  const c = r.counter("rdpo.test.cache", { description: "d" });
  // Same characters in a row, split differently between names and values.
  c.add(1, { a: "1:b" });
  c.add(2, { "a1:b": "" });
  c.add(4, { a: "1", b: "" });
  c.add(8, { b: "", a: "1" }); // the same set as the one before, other order
  c.add(16, { a: 1 }); // a number: the same series as "1"
  assertEquals(c.value({ a: "1:b" }), 1);
  assertEquals(c.value({ "a1:b": "" }), 2);
  assertEquals(c.value({ a: "1", b: "" }), 12);
  assertEquals(c.value({ a: "1" }), 16);
});
