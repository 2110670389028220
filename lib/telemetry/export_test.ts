/**
 * Spans through Deno's built-in OTLP exporter (OTEL_DENO=true, INFRA.md "OpenTelemetry"): a child
 * process (testdata/traced_health_calls.ts) makes gRPC calls through the telemetry hook and
 * middleware and exports to an in-process receiver; the test checks the span tree, the RPC
 * attributes and the status handling.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../testing/assert.ts";
import * as A from "./attributes.ts";
import { startOtlpReceiver } from "./otlp_receiver.ts";
import { type OtlpSpan, OtlpSpanKind } from "./otlp_traces.ts";

const script = join(import.meta.dirname!, "testdata", "traced_health_calls.ts");
const CHECK = "grpc.health.v1.Health/Check";

Deno.test({
  name:
    "exported spans: parent -> CLIENT -> SERVER via hook and middleware; W3C-only callers; skipped probes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const receiver = await startOtlpReceiver();
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        env: {
          OTEL_DENO: "true",
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
          OTEL_SERVICE_NAME: "export-test",
          OTEL_DENO_CONSOLE: "ignore",
        },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      await receiver.waitFor((s) => s.some((x) => x.name === "test.probe_parent"), 10_000);
      assertEquals(receiver.errors, []);
      const spans = receiver.spans;
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      const one = (name: string) => {
        const found = spans.filter((s) => s.name === name);
        assertEquals(found.length, 1, `one ${name} span`);
        return found[0];
      };
      const parent = one("test.parent");
      assertEquals(parent.resource["service.name"], "export-test");
      assertEquals(parent.attributes["test.marker"], "export_test");

      const probeParent = one("test.probe_parent");
      const clients = spans.filter((s) =>
        s.name === CHECK && s.kind === OtlpSpanKind.CLIENT && s.traceId !== probeParent.traceId
      );
      assertEquals(clients.length, 2, "two calls through the hook");
      const probeClient = spans.filter((s) => s.name === CHECK && s.parentSpanId === probeParent.spanId);
      assertEquals(probeClient.length, 1, "the probe call's client span");
      const servers = spans.filter((s) => s.name === CHECK && s.kind === OtlpSpanKind.SERVER);
      assertEquals(servers.length, 3, "three calls served with spans (the probe server makes none)");
      for (const client of clients) {
        assertEquals(client.parentSpanId, parent.spanId, "the client span is a child of the active span");
        assertEquals(client.traceId, parent.traceId);
        assertEquals(client.attributes[A.ATTR_RPC_SYSTEM], "grpc");
        assertEquals(client.attributes[A.ATTR_RPC_SERVICE], "grpc.health.v1.Health");
        assertEquals(client.attributes[A.ATTR_RPC_METHOD], "Check");
        const server = servers.filter((s) => s.parentSpanId === client.spanId);
        assertEquals(server.length, 1, "the server span is a child of the client span");
        const code = client.attributes[A.ATTR_RPC_GRPC_STATUS_CODE];
        assertEquals(server[0].attributes[A.ATTR_RPC_GRPC_STATUS_CODE], code);
        assert(typeof server[0].attributes[A.ATTR_NET_SOCK_PEER_ADDR] === "string", "peer address");
        if (code === 0) {
          assertEquals([client.status.code, server[0].status.code], [0, 0]);
        } else {
          assertEquals(code, 5);
          // NOT_FOUND fails the client's span; for the server it is a correct answer.
          assertEquals(client.status.code, 2);
          assert(client.status.message.startsWith("NOT_FOUND"), client.status.message);
          assertEquals(server[0].status.code, 0);
        }
      }

      // A caller without the hook: only W3C traceparent (Deno's HTTP/2 client span) reaches us.
      const plainParent = one("test.plain_parent");
      const plainServer = servers.find((s) => s.traceId === plainParent.traceId) as OtlpSpan;
      assert(plainServer, "the hookless call's server span is in the caller's trace");
      const transport = byId.get(plainServer.parentSpanId);
      assert(transport, "its parent (Deno's HTTP/2 client span) was exported");
      assertEquals(transport.kind, OtlpSpanKind.CLIENT);
      assertEquals(transport.parentSpanId, plainParent.spanId);

      // skipSpansFor: the probe server made no span for the Health call.
      assertEquals(servers.filter((s) => s.traceId === probeParent.traceId), []);
    } finally {
      await receiver.close();
    }
  },
});
