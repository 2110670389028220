/**
 * The services as they are deployed (issue 8): builds the services' image from this checkout
 * (deploy/docker/build.sh, base image from deploy/docker/build-base.sh when missing), runs the reward
 * and policy services and a two-step RDPO training run as containers with host networking through
 * `testcontainers`, and checks that
 *   - both services answer gRPC health on loopback (from the test and from inside the image);
 *   - the trainer container exits 0 and wrote metrics, a checkpoint and a report into the mounted run
 *     folder;
 *   - every container exported spans over OTLP to the receiver in this process, and the reward
 *     service's Score server span is in the trace of a trainer step (context crossed containers);
 *   - the services drain and exit 0 on SIGTERM (docker stop).
 *
 * Skips, printing `skip: <reason>`, when RDPO_SKIP_CONTAINER_TESTS=1, when no Docker daemon is
 * reachable, when the base image is missing and cannot be built, or when the daemon cannot run a
 * host-network container. Traffic goes to 127.0.0.1 only. testcontainers' reaper (Ryuk) is an image
 * to pull, so it is disabled and the test removes its containers itself.
 */
import { join } from "node:path";
import type { StartedTestContainer } from "testcontainers";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import * as A from "../lib/telemetry/attributes.ts";
import { otlpExportEnv, startOtlpReceiver } from "../lib/telemetry/otlp_receiver.ts";
import { type OtlpSpan, OtlpSpanKind } from "../lib/telemetry/otlp_traces.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { readMetrics } from "../services/trainer/metrics.ts";
import { checkHealth } from "../tools/healthcheck.ts";
import {
  buildServicesImage,
  containerSkipReason,
  docker,
  freePorts,
  removeContainers,
  SERVICES_IMAGE,
} from "./support/container_env.ts";

const STEPS = 2;
const INFERENCE_STEPS = 4;
const FINETUNE_INDICES = [0, 2];
const CANDIDATES = 2;
const SCORER = "jpeg_compressibility";
const SCORE = "rdpo.v1.RewardService/Score";
const SERVICE_START_MS = 120_000;
const TRAIN_MS = 300_000;
const ENTRYPOINT = "/opt/rdpo/deploy/docker/entrypoint.sh";

const skipReason = await containerSkipReason();
if (skipReason) console.log(`skip: container test: ${skipReason}`);

function serviceOf(span: OtlpSpan): string {
  return String(span.resource["service.name"]);
}

Deno.test({
  name: "containers: reward, policy and a 2-step RDPO trainer run on host networking; traces arrive",
  ignore: skipReason !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // testcontainers reads these when it first talks to Docker. The host override skips its gateway
    // lookup (the "bridge" network does not exist under dockerd --bridge=none): with host networking
    // every container is reached on 127.0.0.1.
    Deno.env.set("TESTCONTAINERS_RYUK_DISABLED", "true");
    if (!Deno.env.get("TESTCONTAINERS_HOST_OVERRIDE")) {
      Deno.env.set("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1");
    }
    const { GenericContainer, Wait } = await import("testcontainers");

    const built = await buildServicesImage();
    assertEquals(built.code, 0, `deploy/docker/build.sh failed:\n${built.output.slice(-4000)}`);
    console.log(`container test: built ${SERVICES_IMAGE} in ${(built.ms / 1000).toFixed(1)} s`);

    const receiver = await startOtlpReceiver();
    const tmp = await Deno.makeTempDir({ prefix: "rdpo-containers-" });
    const names = ["reward", "policy", "trainer"].map((s) => `rdpo-test-${s}-${Deno.pid}`);
    const logs = new Map<string, string>();
    const started: StartedTestContainer[] = [];
    // Root runs the containers as the image's own non-root user (the run folder is opened up for it);
    // anyone else runs them as themselves, so the files they write can be cleaned up.
    const uid = Deno.uid();
    const user = uid === 0 || uid === null ? undefined : `${uid}:${Deno.gid()}`;
    const container = (name: string, service: string, command: string[]) => {
      logs.set(name, "");
      const c = new GenericContainer(SERVICES_IMAGE)
        .withName(name)
        .withNetworkMode("host")
        .withCommand(command)
        .withEnvironment(otlpExportEnv(receiver.endpoint, service))
        .withLogConsumer((stream) => {
          stream.on("data", (chunk: unknown) => logs.set(name, logs.get(name) + String(chunk)));
        });
      return user ? c.withUser(user) : c;
    };
    const logsOf = (name: string) => `--- ${name} ---\n${(logs.get(name) ?? "").slice(-3000)}`;
    try {
      const modelDir = join(tmp, "model");
      const cfgDir = join(tmp, "cfg");
      const runDir = join(tmp, "run");
      await initBackend("cpu"); // only to write the random model's weights
      await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
      await Deno.mkdir(cfgDir);
      await Deno.mkdir(runDir);
      // The image's user (uid 10001) reads the model and config and writes the run folder.
      await Deno.chmod(tmp, 0o755);
      await Deno.chmod(runDir, 0o777);
      const [rewardPort, policyPort] = freePorts(2);
      await Deno.writeTextFile(
        join(cfgDir, "prompts.txt"),
        "a red circle\na blue square\na small green circle\n",
      );
      await Deno.writeTextFile(
        join(cfgDir, "config.json"),
        JSON.stringify({
          method: "rdpo",
          seed: 3,
          run_dir: "runs/container-test", // the image's /opt/rdpo/runs -> /runs (the mounted folder)
          progress: "none",
          sampling: { num_inference_steps: INFERENCE_STEPS, eta: 1.0, guidance_scale: 3.0 },
          preference: { num_candidates: CANDIDATES, finetune_step_indices: FINETUNE_INDICES },
          loss: { beta: 0.1, lambda: 100 },
          lora: { rank: 2 },
          optimizer: { lr: 0.01 },
          training: { steps: STEPS, prompt_batch_size: 2 },
          prompts: { file: "/cfg/prompts.txt" },
          scorers: [{ name: SCORER, weight: 1 }],
          eval: { every: 0, at_start: false, at_end: false },
          services: { policy: `127.0.0.1:${policyPort}`, reward: `127.0.0.1:${rewardPort}` },
          rpc: { deadline_ms: { default: 60_000 } },
          checkpoint: { every: 1, keep_last: 1 },
        }),
      );
      for (const dir of [modelDir, cfgDir]) {
        await new Deno.Command("chmod", { args: ["-R", "a+rX", dir] }).output();
      }

      const listening = Wait.forLogMessage(/listening on 127\.0\.0\.1:\d+/);
      const start = async (c: InstanceType<typeof GenericContainer>, name: string) => {
        try {
          started.push(await c.start());
        } catch (e) {
          throw new Error(`${name} did not start: ${(e as Error).message}\n${logsOf(name)}`);
        }
      };
      await start(
        container(names[0], "rdpo-reward", ["reward", "--port", String(rewardPort)])
          .withWaitStrategy(listening).withStartupTimeout(SERVICE_START_MS),
        names[0],
      );
      await start(
        container(names[1], "rdpo-policy", [
          "policy",
          "--port",
          String(policyPort),
          "--model-dir",
          "/models/tiny",
          "--lora-rank",
          "2",
        ]).withBindMounts([{ source: modelDir, target: "/models/tiny", mode: "ro" }])
          .withWaitStrategy(listening).withStartupTimeout(SERVICE_START_MS),
        names[1],
      );
      for (const port of [rewardPort, policyPort]) {
        assertEquals(await checkHealth(`127.0.0.1:${port}`), "SERVING", `health of 127.0.0.1:${port}`);
      }
      // The image's own probe (what a --health-cmd or Kubernetes exec probe runs).
      const probe = await started[0].exec([ENTRYPOINT, "healthcheck", `127.0.0.1:${rewardPort}`]);
      assertEquals(probe.exitCode, 0, `healthcheck inside the reward container: ${probe.output}`);

      // The trainer runs to completion: the one-shot wait strategy returns once it exited 0.
      await start(
        container(names[2], "rdpo-trainer", ["trainer", "train", "--config", "/cfg/config.json"])
          .withBindMounts([
            { source: cfgDir, target: "/cfg", mode: "ro" },
            { source: runDir, target: "/runs", mode: "rw" },
          ])
          .withWaitStrategy(Wait.forOneShotStartup()).withStartupTimeout(TRAIN_MS),
        names[2],
      );
      const resultLine = (logs.get(names[2]) ?? "").split("\n").find((l) => l.startsWith("{"));
      assert(resultLine, `the trainer printed its result line\n${logsOf(names[2])}`);
      const result = JSON.parse(resultLine);
      assertEquals(result.steps, STEPS);
      const written = join(runDir, "container-test");
      const steps = (await readMetrics(join(written, "metrics.jsonl"))).filter((r) => r.type === "step");
      assertEquals(steps.map((s) => s.step), [1, 2]);
      assert((await Deno.stat(join(written, "report.html"))).isFile, "report.html in the run folder");
      assert((await Deno.stat(join(written, "checkpoints"))).isDirectory, "checkpoints in the run folder");

      // docker stop = SIGTERM: the services drain, exit 0 and flush their span exporters.
      for (const [i, c] of started.slice(0, 2).entries()) {
        await c.stop({ remove: false, timeout: 30_000 });
        const exit = await docker(["inspect", "--format", "{{.State.ExitCode}}", names[i]]);
        assertEquals(exit.output.trim(), "0", `${names[i]} exit code after SIGTERM\n${logsOf(names[i])}`);
      }
      await receiver.waitFor(
        (spans) =>
          spans.filter((s) => s.name === A.SPAN_RDPO_STEP).length >= STEPS &&
          spans.some((s) => s.name === SCORE && serviceOf(s) === "rdpo-reward") &&
          spans.some((s) => s.name === A.SPAN_SCORER_INFERENCE) &&
          spans.some((s) => serviceOf(s) === "rdpo-policy" && s.kind === OtlpSpanKind.SERVER),
        30_000,
      );
      assertEquals(receiver.errors, []);
      const spans = receiver.spans;
      const stepSpans = spans.filter((s) => s.name === A.SPAN_RDPO_STEP);
      assertEquals(stepSpans.map(serviceOf), Array(STEPS).fill("rdpo-trainer"));
      const stepTraces = new Set(stepSpans.map((s) => s.traceId));
      const scoreServer = spans.filter((s) =>
        s.name === SCORE && s.kind === OtlpSpanKind.SERVER && serviceOf(s) === "rdpo-reward"
      );
      assert(scoreServer.length > 0, "Score server spans from the reward container");
      // Trace context crossed the containers: each server span's parent is the trainer's client span.
      const byId = new Map(spans.map((s) => [s.spanId, s]));
      for (const server of scoreServer) {
        const client = byId.get(server.parentSpanId);
        assert(client, `the parent of a Score server span (${server.parentSpanId}) was received`);
        assertEquals([client.name, client.kind, serviceOf(client), client.traceId], [
          SCORE,
          OtlpSpanKind.CLIENT,
          "rdpo-trainer",
          server.traceId,
        ]);
      }
      assert(
        scoreServer.filter((s) => stepTraces.has(s.traceId)).length >= STEPS,
        "Score server spans in the trainer steps' traces",
      );
      const scorer = spans.filter((s) => s.name === A.SPAN_SCORER_INFERENCE);
      assert(
        scorer.every((s) => s.attributes[A.ATTR_SCORER_NAME] === SCORER),
        "scorer spans name the scorer",
      );
      const sampleServer = spans.filter((s) =>
        s.name === "rdpo.v1.PolicyService/SampleCandidates" && s.kind === OtlpSpanKind.SERVER
      );
      // One SampleCandidates per choice point (a fine-tune step, or the last): the single-candidate steps
      // before one run in its call (lead_steps, issue 21).
      const choicePoints = Array.from({ length: INFERENCE_STEPS }, (_, i) => i)
        .filter((i) => FINETUNE_INDICES.includes(i) || i === INFERENCE_STEPS - 1);
      assertEquals(sampleServer.length, STEPS * choicePoints.length, "one SampleCandidates per choice point");
      assert(
        sampleServer.every((s) => serviceOf(s) === "rdpo-policy" && stepTraces.has(s.traceId)),
        "SampleCandidates server spans come from the policy container, in the steps' traces",
      );
      console.log(
        `container test: ${spans.length} spans from ` +
          [...new Set(spans.map(serviceOf))].sort().join(", "),
      );
    } finally {
      for (const c of started) await c.stop({ timeout: 5_000 }).catch(() => {});
      await removeContainers(names);
      await receiver.close();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
