import { HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { createServer } from "../lib/rpc/server.ts";
import { startTestServer } from "../lib/rpc/testing.ts";
import { makeTestPki, opensslMissing } from "../lib/rpc/testing_tls.ts";
import { serverTls } from "../lib/rpc/tls.ts";
import { assertEquals, assertRejects } from "../lib/testing/assert.ts";
import { checkHealth } from "./healthcheck.ts";

const script = new URL("./healthcheck.ts", import.meta.url).pathname;

async function runCli(...args: string[]): Promise<{ code: number; out: string }> {
  return await runCliWith({}, ...args);
}

async function runCliWith(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
    env,
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

Deno.test({
  name: "healthcheck: probes a mutual-TLS server with RDPO_CLIENT_TLS_*; without them it fails",
  ignore: !!opensslMissing(),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "rdpo-health-tls-" });
    const pki = makeTestPki(dir);
    const tls = serverTls(
      { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caCert },
      { reloadIntervalMs: 0, log: () => {} },
    );
    const server = createServer();
    try {
      server.health.setStatus("", Serving.SERVING);
      const { port } = await server.listen("127.0.0.1", 0, tls.credentials);
      const env = {
        RDPO_CLIENT_TLS_CA: pki.caCert,
        RDPO_CLIENT_TLS_CERT: pki.clientCert,
        RDPO_CLIENT_TLS_KEY: pki.clientKey,
      };
      assertEquals((await runCliWith(env, `localhost:${port}`)).code, 0);
      const ip = await runCliWith(env, `127.0.0.1:${port}`);
      assertEquals([ip.code, ip.out.includes("RDPO_CLIENT_TLS_SERVER_NAME")], [1, true]);
      assertEquals(
        (await runCliWith({ ...env, RDPO_CLIENT_TLS_SERVER_NAME: "localhost" }, `127.0.0.1:${port}`)).code,
        0,
      );
      assertEquals((await runCliWith({}, `localhost:${port}`, "--timeout-ms", "1500")).code, 1);
    } finally {
      server.forceShutdown();
      tls.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
