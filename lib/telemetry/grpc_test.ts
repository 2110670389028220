/**
 * In-process parts of the gRPC telemetry: the grpc-trace-bin codec, parent extraction, and the
 * metrics the middleware and hook record. Span export and propagation between processes are
 * checked in export_test.ts (they need OTEL_DENO=true at process start).
 */
import * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { trace } from "@opentelemetry/api";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { startTestServer } from "../rpc/testing.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import * as A from "./attributes.ts";
import {
  clientTelemetry,
  decodeTraceBin,
  encodeTraceBin,
  extractParent,
  GRPC_TRACE_BIN,
  serverTelemetry,
} from "./grpc.ts";
import { defaultRegistry } from "./metrics.ts";
import type { PromCounter, PromHistogram } from "./prometheus.ts";

const SC = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 };

Deno.test("grpc-trace-bin: 29 bytes in the OpenCensus layout, decoded back to a remote span context", () => {
  const bytes = encodeTraceBin(SC);
  assertEquals(bytes.length, 29);
  assertEquals([bytes[0], bytes[1], bytes[18], bytes[27], bytes[28]], [0, 0, 1, 2, 1]);
  assertEquals(Buffer.from(bytes.subarray(2, 18)).toString("hex"), SC.traceId);
  assertEquals(decodeTraceBin(bytes), { ...SC, isRemote: true });
  assertEquals(decodeTraceBin(encodeTraceBin({ ...SC, traceFlags: 0 }))?.traceFlags, 0);
});

Deno.test("grpc-trace-bin: other versions, truncated or all-zero ids are not a parent", () => {
  const bytes = encodeTraceBin(SC);
  assertEquals(decodeTraceBin(Uint8Array.of(1, ...bytes.subarray(1))), undefined);
  assertEquals(decodeTraceBin(bytes.subarray(0, 10)), undefined);
  assertEquals(decodeTraceBin(encodeTraceBin({ ...SC, spanId: "0000000000000000" })), undefined);
  assertEquals(decodeTraceBin(new Uint8Array(0)), undefined);
});

Deno.test("extractParent takes the span context of grpc-trace-bin", () => {
  const md = new grpc.Metadata();
  md.set(GRPC_TRACE_BIN, Buffer.from(encodeTraceBin(SC)));
  assertEquals(trace.getSpanContext(extractParent(md)), { ...SC, isRemote: true });
  assertEquals(trace.getSpanContext(extractParent(new grpc.Metadata())), undefined);
});

function counter(name: string): PromCounter {
  return defaultRegistry.get(name) as PromCounter;
}

Deno.test("server middleware and client hook count calls and errors and time them, per method and status", async () => {
  const server = await startTestServer(() => {}, { onCall: [serverTelemetry()] });
  const client = server.client(Health, { onCall: [clientTelemetry()] });
  const labels = {
    [A.ATTR_RPC_SYSTEM]: "grpc",
    [A.ATTR_RPC_SERVICE]: "grpc.health.v1.Health",
    [A.ATTR_RPC_METHOD]: "Check",
  };
  const notFound = { ...labels, [A.ATTR_RPC_GRPC_STATUS_CODE]: 5 };
  const ok = { ...labels, [A.ATTR_RPC_GRPC_STATUS_CODE]: 0 };
  const read = () => ({
    serverRequests: counter(A.METRIC_RPC_SERVER_REQUESTS)?.value(labels) ?? 0,
    serverErrors: counter(A.METRIC_RPC_SERVER_ERRORS)?.value(notFound) ?? 0,
    clientRequests: counter(A.METRIC_RPC_CLIENT_REQUESTS)?.value(labels) ?? 0,
    clientErrors: counter(A.METRIC_RPC_CLIENT_ERRORS)?.value(notFound) ?? 0,
    serverOkTimed: (defaultRegistry.get(A.METRIC_RPC_SERVER_DURATION) as PromHistogram).snapshot(ok).count,
    clientOkTimed: (defaultRegistry.get(A.METRIC_RPC_CLIENT_DURATION) as PromHistogram).snapshot(ok).count,
  });
  try {
    const before = read();
    await client.check({ service: "" });
    let failed = false;
    await client.check({ service: "no.such.Service" }).catch(() => (failed = true));
    assert(failed, "the unknown service fails");
    const after = read();
    assertEquals(
      Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof typeof before]])),
      {
        serverRequests: 2,
        serverErrors: 1,
        clientRequests: 2,
        clientErrors: 1,
        serverOkTimed: 1,
        clientOkTimed: 1,
      },
    );
    const text = defaultRegistry.render();
    assert(
      text.includes(
        'rdpo_rpc_server_errors_total{rpc_grpc_status_code="5",rpc_method="Check",rpc_service="grpc.health.v1.Health",rpc_system="grpc"}',
      ),
      "error series in the Prometheus text",
    );
  } finally {
    await server.close();
  }
});
