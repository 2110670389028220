import { HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { startTestServer } from "../lib/rpc/testing.ts";
import { assertEquals, assertRejects } from "../lib/testing/assert.ts";
import { checkHealth } from "./healthcheck.ts";

const script = new URL("./healthcheck.ts", import.meta.url).pathname;

async function runCli(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, out: decode(r.stdout) + decode(r.stderr) };
}

Deno.test({
  name: "healthcheck: SERVING exits 0, NOT_SERVING / unknown service / no server exit 1, bad usage 2",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t = await startTestServer(() => {});
    try {
      t.server.health.setStatus("", Serving.SERVING);
      assertEquals(await checkHealth(t.address), "SERVING");
      assertEquals((await runCli(t.address)).code, 0);

      t.server.health.setStatus("", Serving.NOT_SERVING);
      assertEquals(await checkHealth(t.address), "NOT_SERVING");
      const notServing = await runCli(t.address);
      assertEquals([notServing.code, notServing.out.includes("NOT_SERVING")], [1, true]);

      await assertRejects(() => checkHealth(t.address, "no.such.Service"), Error, "NOT_FOUND");
      assertEquals((await runCli(t.address, "no.such.Service")).code, 1);
    } finally {
      await t.close();
    }
    // Nothing listens there any more.
    assertEquals((await runCli(t.address, "--timeout-ms", "500")).code, 1);
    const usage = await runCli();
    assertEquals([usage.code, usage.out.includes("usage:")], [2, true]);
  },
});
