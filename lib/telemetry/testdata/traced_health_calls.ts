/**
 * Child process of export_test.ts (run with OTEL_DENO=true): serves gRPC health with the telemetry
 * middleware and makes, inside a `test.parent` span, one successful and one failing call through a
 * client with the telemetry hook, then inside `test.plain_parent` one call through a client
 * without it (so only W3C `traceparent`, written by Deno's HTTP/2 instrumentation, is sent), and
 * inside `test.probe_parent` one call to a server that skips spans for PROBE_SERVICES.
 * Exits normally, which flushes Deno's exporter.
 */
import { Health } from "../../../gen/grpc/health/v1/health_pb.ts";
import { createClient } from "../../rpc/client.ts";
import { createServer } from "../../rpc/server.ts";
import { clientTelemetry, PROBE_SERVICES, serverTelemetry } from "../grpc.ts";
import { withSpan } from "../tracing.ts";

const server = createServer({ onCall: [serverTelemetry()] });
const bound = await server.listen("127.0.0.1", 0);
const client = createClient(Health, bound.address, { onCall: [clientTelemetry()] });
const plain = createClient(Health, bound.address);
await withSpan("test.parent", { "test.marker": "export_test" }, async () => {
  await client.check({ service: "" });
  await client.check({ service: "no.such.Service" }).catch(() => {});
});
await withSpan("test.plain_parent", {}, async () => {
  await plain.check({ service: "" });
});
const probed = createServer({ onCall: [serverTelemetry({ skipSpansFor: PROBE_SERVICES })] });
const probedClient = createClient(Health, (await probed.listen("127.0.0.1", 0)).address, {
  onCall: [clientTelemetry()],
});
await withSpan("test.probe_parent", {}, async () => {
  await probedClient.check({ service: "" });
});
client.close();
plain.close();
probedClient.close();
await server.shutdown(1000);
await probed.shutdown(1000);
