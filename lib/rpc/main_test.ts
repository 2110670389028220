/**
 * The service bootstrap: in-process (startService) and as a real subprocess that prints
 * `listening on HOST:PORT`, serves health, and drains and exits 0 on SIGTERM.
 */
import { HealthCheckResponse_ServingStatus as Serving } from "../../gen/grpc/health/v1/health_pb.ts";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { RewardService } from "../../gen/rdpo/v1/reward_pb.ts";
import { assert, assertEquals, assertRejects } from "../testing/assert.ts";
import { createClient } from "./client.ts";
import { FlagError } from "./flags.ts";
import { startService } from "./main.ts";
import { Code } from "./status.ts";
import { rpcFailure } from "./testing.ts";

const tinyService = new URL("./testdata/tiny_service.ts", import.meta.url).pathname;

Deno.test("startService: env port 0, health SERVING for every service, stop drains", async () => {
  let cleaned = false;
  const running = await startService({
    name: "reward",
    args: ["--max-message-bytes", "2048"],
    env: (name) => ({ REWARD_PORT: "0", RDPO_HOST: "127.0.0.1" } as Record<string, string>)[name],
    setup(server) {
      server.addService(RewardService, {
        score: () => ({ scores: [1] }),
        loadScorer: () => ({}),
        unloadScorer: () => ({}),
        setAlias: () => ({}),
        listScorers: () => ({}),
      });
      return () => {
        cleaned = true;
      };
    },
  });
  const health = createClient(Health, running.address.address);
  const reward = createClient(RewardService, running.address.address);
  try {
    assert(running.address.port > 0, `bound port ${running.address.port}`);
    assertEquals(running.flags.maxMessageBytes, 2048);
    assertEquals((await health.check({})).status, Serving.SERVING);
    assertEquals((await health.check({ service: "rdpo.v1.RewardService" })).status, Serving.SERVING);
    const big = { images: [{ data: new Uint8Array(4096) }] };
    assertEquals((await rpcFailure(() => reward.score(big))).code, Code.RESOURCE_EXHAUSTED);
  } finally {
    health.close();
    reward.close();
    assertEquals(await running.stop(), { drained: true, abandoned: 0 });
  }
  assert(cleaned, "cleanup ran after the drain");
});

Deno.test("startService: a bad flag is a FlagError naming it", async () => {
  await assertRejects(
    () => startService({ name: "reward", args: ["--port", "http"], env: () => undefined, setup() {} }),
    FlagError,
    '--port: "http" is not a number',
  );
});

/** Reads stdout lines until one matches, returns it. */
async function readLine(reader: ReadableStreamDefaultReader<string>, pattern: RegExp): Promise<string> {
  let buffered = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(`stdout ended before a line matching ${pattern}; got ${JSON.stringify(buffered)}`);
    }
    buffered += value;
    const line = buffered.split("\n").find((l) => pattern.test(l));
    if (line) return line;
  }
}

Deno.test("service subprocess: listening line, health, SIGTERM drains the in-flight call and exits 0", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", tinyService, "--port", "0", "--drain-timeout-ms", "5000"],
    env: { TINY_GREETING: "hello" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  try {
    const line = await readLine(stdout, /^listening on /);
    const match = line.match(/^listening on 127\.0\.0\.1:(\d+)$/);
    assert(match && Number(match[1]) > 0, `listening line: ${line}`);
    const address = `127.0.0.1:${match[1]}`;
    const health = createClient(Health, address);
    const reward = createClient(RewardService, address);
    try {
      assertEquals((await health.check({})).status, Serving.SERVING);
      const inFlight = reward.score({ prompts: ["400"], images: [{}, {}] });
      await new Promise((r) => setTimeout(r, 100)); // let the call reach the server
      child.kill("SIGTERM");
      const res = await inFlight;
      assertEquals([res.scorerName, res.batchSize], ["hello", 2], "the in-flight call finished");
    } finally {
      health.close();
      reward.close();
    }
    const status = await child.status;
    assertEquals(status.code, 0, `exit code; stderr: ${await stderr}`);
    // Exactly one line on stdout.
    let rest = "";
    for (let r = await stdout.read(); !r.done; r = await stdout.read()) rest += r.value;
    assertEquals(rest.trim(), "", "nothing else on stdout");
    assert((await stderr).includes("SIGTERM, draining"), "stderr says it drains");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await stdout.cancel().catch(() => {});
  }
});

Deno.test("service subprocess: bad flag -> exit 2 with the flag named on stderr", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", tinyService, "--port", "-5"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 2);
  const err = new TextDecoder().decode(out.stderr);
  assert(err.includes("--port: -5 is below the minimum 0"), err);
  assertEquals(new TextDecoder().decode(out.stdout), "");
});
