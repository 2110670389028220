import { assert, assertEquals, assertRejects } from "../../lib/testing/assert.ts";
import { FlagError } from "../../lib/rpc/flags.ts";
import { InvalidArgumentError } from "../../lib/errors.ts";
import { createClient, waitForReady } from "../../lib/rpc/client.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.ts";
import { fileURLToPath } from "node:url";
import { parsePreload, preloadsOf, startReward } from "./main.ts";

Deno.test("main: flags, env fallback, preload specs and defaults", async () => {
  const env: Record<string, string> = { REWARD_ADMIN_TOKEN: "t0k", REWARD_MAX_BATCH: "8", REWARD_PORT: "0" };
  const running = await startReward(
    ["--host", "127.0.0.1", "--preload", "j=kind:jpeg_compressibility:live, x@2=kind:jpeg_incompressibility"],
    (name) => env[name],
    () => {},
  );
  try {
    const flags = running.service.flags;
    assertEquals([flags.maxBatch, flags.maxQueueDelayMs, flags.adminToken, flags.builtins], [
      8,
      0, // the measured default queue delay (main.ts)
      "t0k",
      true,
    ]);
    const { scorers, aliases } = running.registry.list();
    assertEquals(scorers.map((s) => `${s.name}@${s.version}:${s.kind}:${s.state}`), [
      "colorfulness@builtin:colorfulness:READY",
      "j@builtin:jpeg_compressibility:READY",
      "jpeg_compressibility@builtin:jpeg_compressibility:READY",
      "jpeg_incompressibility@builtin:jpeg_incompressibility:READY",
      "x@2:jpeg_incompressibility:READY",
    ]);
    assertEquals(aliases, { live: "j@builtin" });
    assertEquals(scorers[0].batching, { maxBatch: 8, maxQueueDelayMs: 0 });
  } finally {
    await running.stop();
  }
  assertEquals(running.registry.list().scorers, [], "stop() drained and closed every version");
  assertEquals(parsePreload("a@1=models/a:prod"), {
    name: "a",
    version: "1",
    bundle: "models/a",
    kind: "",
    alias: "prod",
  });
  assertEquals(preloadsOf({ preload: "", builtins: false, modelRoot: undefined }), []);
});

Deno.test("main: bad flags and preloads name the flag", async () => {
  const start = (args: string[]) => startReward(["--port", "0", ...args], () => undefined, () => {});
  await assertRejects(() => start(["--max-batch", "0"]), FlagError, "--max-batch");
  await assertRejects(() => start(["--execution-provider", "tpu"]), FlagError, "--execution-provider");
  await assertRejects(() => start(["--poll-repository"]), FlagError, "needs --model-root");
  await assertRejects(() => start(["--preload", "a=models/a"]), FlagError, "needs name@version");
  await assertRejects(() => start(["--preload", "a@1=models/a"]), FlagError, "need --model-root");
  await assertRejects(
    () => start(["--preload", "a=kind:aesthetic"]),
    InvalidArgumentError,
    "not a built-in kind",
  );
  await assertRejects(() => start(["--bogus"]), FlagError, "--bogus");
});

Deno.test({
  name: "main: the process prints `listening on`, serves the built-in scorers, and drains on SIGTERM",
  sanitizeResources: false,
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        fileURLToPath(new URL("./main.ts", import.meta.url)),
        "--port",
        "0",
        "--admin-token",
        "x",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const deadline = Date.now() + 60_000;
    while (!out.includes("\n") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const match = /^listening on (\S+:\d+)$/m.exec(out);
    try {
      assert(match, `no "listening on" line; stdout: ${out}; stderr: ${await Promise.race([stderr, ""])}`);
      const client = createClient(RewardService, match[1]);
      const health = createClient(Health, match[1]);
      try {
        await waitForReady(client, 10_000);
        const list = await client.listScorers({});
        assertEquals(list.scorers.map((s) => `${s.name}@${s.version}`), [
          "colorfulness@builtin",
          "jpeg_compressibility@builtin",
          "jpeg_incompressibility@builtin",
        ]);
        const image = { width: 8, height: 8, channels: 3, data: new Uint8Array(192).fill(77) };
        const res = await client.score({ scorer: "jpeg_compressibility", images: [image, image] });
        assertEquals(res.scores.length, 2);
        assert(res.scores[0] < 0 && res.scores[0] === res.scores[1], `scores ${res.scores}`);
        const status = await health.check({ service: "rdpo.v1.RewardService" });
        assertEquals(status.status, HealthCheckResponse_ServingStatus.SERVING);
      } finally {
        client.close();
        health.close();
      }
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await reader.cancel();
      const err = await stderr;
      assertEquals(status.code, 0, `exit ${status.code}; stderr:\n${err}`);
      assert(err.includes("SIGTERM, draining"), err);
    }
  },
});
