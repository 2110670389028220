import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.ts";
import { createClient } from "../../lib/rpc/client.ts";
import { startTestServer } from "../../lib/rpc/testing.ts";
import { assert, assertEquals } from "../../lib/testing/assert.ts";
import { isDataParallel, parseDnsTarget, rewardChannelOptions } from "./replicas.ts";

Deno.test("replicas: which services.policy values are data-parallel", () => {
  assertEquals(isDataParallel("127.0.0.1:50052"), false);
  assertEquals(isDataParallel(["127.0.0.1:50052"]), true);
  assertEquals(isDataParallel("dns:///policy.ns.svc.cluster.local:50052"), true);
  assertEquals(parseDnsTarget("dns:///policy.ns.svc:50052"), { host: "policy.ns.svc", port: "50052" });
  assertEquals(parseDnsTarget("127.0.0.1:1"), null);
});

Deno.test("reward balancing: round_robin spreads calls over the backends, per call", async () => {
  // Two servers tell themselves apart by the status they report for the service "who".
  const a = await startTestServer((s) => s.health.setStatus("who", Status.SERVING));
  const b = await startTestServer((s) => s.health.setStatus("who", Status.NOT_SERVING));
  const target = `ipv4:127.0.0.1:${a.port},127.0.0.1:${b.port}`;
  const balanced = createClient(Health, target, { grpcOptions: rewardChannelOptions(target) });
  const pinned = createClient(Health, target);
  try {
    const seen = async (c: typeof balanced) => {
      const out = new Set<Status>();
      for (let i = 0; i < 8; i++) out.add((await c.check({ service: "who" }, { timeoutMs: 10_000 })).status);
      return out;
    };
    assertEquals((await seen(balanced)).size, 2, "both backends answered over one channel");
    assertEquals((await seen(pinned)).size, 1, "pick_first (the default) pins one backend");
    assert(rewardChannelOptions("dns:///reward.ns.svc:50051")["grpc.service_config"].includes("round_robin"));
    assertEquals(rewardChannelOptions("127.0.0.1:50051"), {});
  } finally {
    balanced.close();
    pinned.close();
    await a.close();
    await b.close();
  }
});
