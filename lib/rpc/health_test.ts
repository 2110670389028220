/**
 * grpc.health.v1.Health served by the adapter: Check, List, Watch, and the reporter's shutdown.
 */
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import { assertEquals } from "../testing/assert.ts";
import { HealthReporter } from "./health.ts";
import { Code } from "./status.ts";
import { rpcFailure, startTestServer } from "./testing.ts";

Deno.test("health Check: overall SERVING by default, per-service status, unknown -> NOT_FOUND", async () => {
  const t = await startTestServer(() => {});
  try {
    const health = t.client(Health);
    assertEquals((await health.check({})).status, Serving.SERVING);
    t.server.health.setStatus("rdpo.v1.RewardService", Serving.NOT_SERVING);
    assertEquals((await health.check({ service: "rdpo.v1.RewardService" })).status, Serving.NOT_SERVING);
    const err = await rpcFailure(() => health.check({ service: "no.such.Service" }));
    assertEquals(err.code, Code.NOT_FOUND);
    const list = await health.list({});
    assertEquals(
      Object.fromEntries(Object.entries(list.statuses).map(([k, v]) => [k, v.status])),
      { "": Serving.SERVING, "rdpo.v1.RewardService": Serving.NOT_SERVING },
    );
  } finally {
    await t.close();
  }
});

Deno.test("health Watch: current status first, then each change; unknown service -> SERVICE_UNKNOWN", async () => {
  const t = await startTestServer(() => {});
  try {
    const health = t.client(Health);
    const controller = new AbortController();
    const watch = health.watch({ service: "svc" }, { signal: controller.signal })[Symbol.asyncIterator]();
    assertEquals((await watch.next()).value?.status, Serving.SERVICE_UNKNOWN);
    t.server.health.setStatus("svc", Serving.SERVING);
    assertEquals((await watch.next()).value?.status, Serving.SERVING);
    t.server.health.setStatus("svc", Serving.SERVING); // no change, no message
    t.server.health.setStatus("svc", Serving.NOT_SERVING);
    assertEquals((await watch.next()).value?.status, Serving.NOT_SERVING);
    controller.abort();
    const err = await rpcFailure(() => watch.next());
    assertEquals(err.code, Code.CANCELLED);
  } finally {
    await t.close();
  }
});

Deno.test("HealthReporter.shutdown: everything NOT_SERVING and frozen", () => {
  const reporter = new HealthReporter();
  reporter.setStatus("a", Serving.SERVING);
  const seen: string[] = [];
  reporter.subscribe((service, status) => seen.push(`${service}=${Serving[status]}`));
  reporter.shutdown();
  reporter.setStatus("a", Serving.SERVING);
  assertEquals(seen, ["=NOT_SERVING", "a=NOT_SERVING"]);
  assertEquals(reporter.getStatus("a"), Serving.NOT_SERVING);
});
