import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { assertEquals, assertThrows } from "../testing/assert.ts";
import { decodeExportTraceRequest, spanDurationMs } from "./otlp_traces.ts";

// A hand-written encoder of the opentelemetry-proto messages the decoder reads (field numbers from
// trace/v1/trace.proto and common/v1/common.proto), so the test does not share code with it.
type Value = string | number | boolean | bigint | Value[];

function anyValue(w: BinaryWriter, v: Value): void {
  if (typeof v === "string") w.tag(1, WireType.LengthDelimited).string(v);
  else if (typeof v === "boolean") w.tag(2, WireType.Varint).bool(v);
  else if (typeof v === "bigint") w.tag(3, WireType.Varint).int64(v);
  else if (typeof v === "number" && Number.isInteger(v)) w.tag(3, WireType.Varint).int64(v);
  else if (typeof v === "number") w.tag(4, WireType.Bit64).double(v);
  else {
    w.tag(5, WireType.LengthDelimited).fork();
    for (const item of v) {
      w.tag(1, WireType.LengthDelimited).fork();
      anyValue(w, item);
      w.join();
    }
    w.join();
  }
}

function keyValues(w: BinaryWriter, field: number, attrs: Record<string, Value>): void {
  for (const [k, v] of Object.entries(attrs)) {
    w.tag(field, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(k);
    w.tag(2, WireType.LengthDelimited).fork();
    anyValue(w, v);
    w.join();
    w.join();
  }
}

const bytesOf = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
const TRACE = "0af7651916cd43dd8448eb211c80319c";

function span(
  w: BinaryWriter,
  id: string,
  parent: string,
  name: string,
  kind: number,
  start: bigint,
  end: bigint,
) {
  w.tag(2, WireType.LengthDelimited).fork(); // ScopeSpans.spans
  w.tag(1, WireType.LengthDelimited).bytes(bytesOf(TRACE));
  w.tag(2, WireType.LengthDelimited).bytes(bytesOf(id));
  if (parent) w.tag(4, WireType.LengthDelimited).bytes(bytesOf(parent));
  w.tag(5, WireType.LengthDelimited).string(name);
  w.tag(6, WireType.Varint).int32(kind);
  w.tag(7, WireType.Bit64).fixed64(start);
  w.tag(8, WireType.Bit64).fixed64(end);
  w.tag(99, WireType.Varint).uint32(7); // unknown field: skipped
  keyValues(w, 9, {
    "rdpo.step": 3,
    "rdpo.reward_margin": 0.25,
    "rpc.system": "grpc",
    ok: true,
    list: ["a", 2],
  });
  w.tag(11, WireType.LengthDelimited).fork(); // event
  w.tag(1, WireType.Bit64).fixed64(start + 5n);
  w.tag(2, WireType.LengthDelimited).string("rdpo.finetune_step");
  keyValues(w, 3, { "rdpo.step_index": 2 });
  w.join();
  w.tag(13, WireType.LengthDelimited).fork(); // link
  w.tag(1, WireType.LengthDelimited).bytes(bytesOf(TRACE));
  w.tag(2, WireType.LengthDelimited).bytes(bytesOf("1111111111111111"));
  w.join();
  w.tag(15, WireType.LengthDelimited).fork(); // status
  w.tag(2, WireType.LengthDelimited).string("boom");
  w.tag(3, WireType.Varint).int32(2);
  w.join();
  w.join();
}

function request(): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).fork(); // ResourceSpans, resource written after the spans
  w.tag(2, WireType.LengthDelimited).fork(); // ScopeSpans
  w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("rdpo").join();
  span(w, "b7ad6b7169203331", "", "rdpo.step", 1, 1_000_000_000n, 1_250_000_000n);
  span(
    w,
    "00f067aa0ba902b7",
    "b7ad6b7169203331",
    "rdpo.v1.RewardService/Score",
    3,
    1_100_000_000n,
    1_150_000_000n,
  );
  w.join();
  w.tag(1, WireType.LengthDelimited).fork();
  keyValues(w, 1, { "service.name": "rdpo-trainer" });
  w.join();
  w.join();
  return w.finish();
}

Deno.test("decodeExportTraceRequest reads ids, parent, times, attributes, events, links, status, resource", () => {
  const spans = decodeExportTraceRequest(request());
  assertEquals(spans.length, 2);
  const [root, child] = spans;
  assertEquals(root.traceId, TRACE);
  assertEquals(root.spanId, "b7ad6b7169203331");
  assertEquals(root.parentSpanId, "");
  assertEquals(child.parentSpanId, "b7ad6b7169203331");
  assertEquals([root.name, root.kind, child.name, child.kind], [
    "rdpo.step",
    1,
    "rdpo.v1.RewardService/Score",
    3,
  ]);
  assertEquals(spanDurationMs(root), 250);
  assertEquals(root.attributes, {
    "rdpo.step": 3,
    "rdpo.reward_margin": 0.25,
    "rpc.system": "grpc",
    ok: true,
    list: ["a", 2],
  });
  assertEquals(root.events.map((e) => [e.name, e.timeUnixNano, e.attributes]), [
    ["rdpo.finetune_step", 1_000_000_005n, { "rdpo.step_index": 2 }],
  ]);
  assertEquals(root.links.map((l) => l.spanId), ["1111111111111111"]);
  assertEquals(root.status, { code: 2, message: "boom" });
  assertEquals(root.resource, { "service.name": "rdpo-trainer" });
  assertEquals(root.scope, "rdpo");
});

Deno.test("decodeExportTraceRequest: an empty body has no spans; a truncated one is an error", () => {
  assertEquals(decodeExportTraceRequest(new Uint8Array(0)), []);
  const body = request();
  assertThrows(() => decodeExportTraceRequest(body.subarray(0, body.length - 3)));
});
