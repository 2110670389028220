import { assertEquals } from "../testing/assert.ts";
import type { OtlpSpan } from "./otlp_traces.ts";
import { ancestry, buildTrees, flatten, formatTree } from "./trace_tree.ts";

function span(
  id: string,
  parent: string,
  name: string,
  startMs: number,
  endMs: number,
  extra: Partial<OtlpSpan> = {},
) {
  return {
    traceId: "t1",
    spanId: id,
    parentSpanId: parent,
    name,
    kind: 1,
    startUnixNano: BigInt(startMs) * 1_000_000n,
    endUnixNano: BigInt(endMs) * 1_000_000n,
    attributes: {},
    events: [],
    links: [],
    status: { code: 0, message: "" },
    resource: { "service.name": "svc" },
    scope: "rdpo",
    ...extra,
  } satisfies OtlpSpan;
}

const spans: OtlpSpan[] = [
  span("c", "b", "Score", 30, 40, { kind: 2, resource: { "service.name": "reward" } }),
  span("a", "", "rdpo.step", 0, 100, { attributes: { "rdpo.step": 1 } }),
  span("d", "a", "rdpo.train", 50, 90),
  span("b", "a", "rdpo.score", 20, 45),
  span("x", "missing", "orphan", 5, 6),
];

Deno.test("buildTrees: children under parents sorted by start, unknown parents become roots", () => {
  const roots = buildTrees(spans);
  assertEquals(roots.map((r) => r.span.name), ["rdpo.step", "orphan"]);
  assertEquals(flatten(roots[0]).map((n) => n.span.name), ["rdpo.step", "rdpo.score", "Score", "rdpo.train"]);
});

Deno.test("ancestry walks up to the root within the trace", () => {
  assertEquals(ancestry(spans, spans[0]).map((s) => s.spanId), ["c", "b", "a"]);
  assertEquals(ancestry(spans, spans[4]).map((s) => s.spanId), ["x"]);
});

Deno.test("formatTree: indentation, kind, service, offset, duration and chosen attributes", () => {
  const text = formatTree(buildTrees(spans)[0], { attributes: ["rdpo.step"] });
  assertEquals(text.split("\n"), [
    "rdpo.step [svc] +0.0 ms, 100.0 ms  rdpo.step=1",
    "  rdpo.score [svc] +20.0 ms, 25.0 ms",
    "    Score (server) [reward] +30.0 ms, 10.0 ms",
    "  rdpo.train [svc] +50.0 ms, 40.0 ms",
  ]);
});

Deno.test("formatTree: hidden spans are skipped, their children move up", () => {
  const text = formatTree(buildTrees(spans)[0], { hide: (s) => s.name === "rdpo.score" });
  assertEquals(text.split("\n").map((l) => l.split(" [")[0]), [
    "rdpo.step",
    "  Score (server)",
    "  rdpo.train",
  ]);
});
