/**
 * Tracing end to end (issue 8): two RDPO steps through real reward and policy service processes
 * on loopback, every process exporting over OTLP (Deno's built-in exporter, OTEL_DENO=true) to an
 * in-process receiver. Checks the trace tree of each step:
 *
 *   rdpo.step (trainer) -> rdpo.score -> RewardService/Score CLIENT (trainer)
 *     -> RewardService/Score SERVER (reward) -> reward.scorer.inference (reward)
 *
 * all in one trace, with the RPC attributes, the scorer's name and version, and the policy's
 * spans (UNet forward, decode, train step) under its RPC server spans; and that the reward
 * service's Prometheus endpoint shows the same measurements.
 *
 * The trainer runs in a child process (test/support/traced_train.ts) because OTEL_DENO must be in
 * the environment when Deno starts. RDPO_PRINT_TRACE=1 prints the tree of the first step
 * (RDPO_PRINT_TRACE=all: with Deno's own HTTP/2 spans).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import * as A from "../lib/telemetry/attributes.ts";
import { otlpExportEnv, startOtlpReceiver } from "../lib/telemetry/otlp_receiver.ts";
import { type OtlpSpan, OtlpSpanKind } from "../lib/telemetry/otlp_traces.ts";
import { ancestry, buildTrees, formatTree } from "../lib/telemetry/trace_tree.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";

const STEPS = 2;
const INFERENCE_STEPS = 4;
const FINETUNE_INDICES = [0, 2];
const PROMPT_BATCH = 2;
const CANDIDATES = 3;
const SCORER = "jpeg_compressibility";
const SCORE = "rdpo.v1.RewardService/Score";
const TRAIN_TIMEOUT_MS = 300_000;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function serviceOf(span: OtlpSpan): string {
  return String(span.resource["service.name"]);
}

Deno.test({
  name: "tracing: step -> Score client -> Score server -> scorer span in one trace; policy spans; /metrics",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const receiver = await startOtlpReceiver();
    const otelEnv = (service: string) => otlpExportEnv(receiver.endpoint, service);
    const tmp = await Deno.makeTempDir({ prefix: "rdpo-tracing-" });
    const modelDir = join(tmp, "model");
    await initBackend("cpu"); // only to write the random model's weights
    await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
    const promptsFile = join(tmp, "prompts.txt");
    await Deno.writeTextFile(promptsFile, "a red circle\na blue square\na small green circle\n");
    const metricsPort = freePort();
    const reward = new ServiceProcess("services/reward/main.ts", ["--metrics-port", String(metricsPort)], {
      env: otelEnv("rdpo-reward"),
    });
    const policy = new ServiceProcess("services/policy/main.ts", [
      "--model-dir",
      modelDir,
      "--lora-rank",
      "2",
      "--adapter-root",
      join(tmp, "adapters"),
    ], { env: otelEnv("rdpo-policy") });
    try {
      await reward.start();
      await policy.start();
      const configPath = join(tmp, "config.json");
      await Deno.writeTextFile(
        configPath,
        JSON.stringify({
          method: "rdpo",
          seed: 3,
          run_dir: join(tmp, "run"),
          progress: "none",
          sampling: { num_inference_steps: INFERENCE_STEPS, eta: 1.0, guidance_scale: 3.0 },
          preference: { num_candidates: CANDIDATES, finetune_step_indices: FINETUNE_INDICES },
          loss: { beta: 0.1, lambda: 100 },
          lora: { rank: 2 },
          optimizer: { lr: 0.01 },
          training: { steps: STEPS, prompt_batch_size: PROMPT_BATCH },
          prompts: { file: promptsFile },
          scorers: [{ name: SCORER, weight: 1 }],
          eval: { every: 0, at_start: false, at_end: false },
          services: { policy: policy.address, reward: reward.address },
          rpc: { deadline_ms: { default: 60_000 } },
          checkpoint: { every: 1, keep_last: 1 },
        }),
      );
      const trainer = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(repoRoot, "test/support/traced_train.ts"), configPath],
        env: otelEnv("rdpo-trainer"),
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
        signal: AbortSignal.timeout(TRAIN_TIMEOUT_MS),
      });
      const out = await trainer.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, `trainer failed: ${stderr}`);
      const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
      assertEquals(result.steps, STEPS);

      // The reward service's /metrics shows the same measurements, labelled by scorer and version.
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert(
        new RegExp(`rdpo_reward_inference_duration_milliseconds_count\\{[^}]*rdpo_scorer_name="${SCORER}"`)
          .test(
            metrics,
          ),
        `reward inference histogram per scorer in /metrics:\n${metrics.slice(0, 2000)}`,
      );
      assert(
        /rpc_server_duration_milliseconds_count\{[^}]*rpc_method="Score"[^}]*rpc_service="rdpo\.v1\.RewardService"/
          .test(metrics),
        "Score RPC duration histogram in /metrics",
      );
      assert(/rdpo_rpc_server_requests_total\{[^}]*rpc_method="Score"/.test(metrics), "request counter");

      // SIGTERM: the services drain and exit, which flushes their exporters.
      assertEquals(await reward.stop(), 0);
      assertEquals(await policy.stop(), 0);
      await receiver.waitFor(
        (spans) =>
          spans.filter((s) => s.name === A.SPAN_RDPO_STEP).length >= STEPS &&
          spans.some((s) => s.name === A.SPAN_SCORER_INFERENCE) &&
          spans.some((s) => s.name === A.SPAN_POLICY_TRAIN_STEP),
        30_000,
      );
      assertEquals(receiver.errors, []);
      const spans = receiver.spans;

      const steps = spans.filter((s) => s.name === A.SPAN_RDPO_STEP).sort((a, b) =>
        Number(a.attributes[A.ATTR_RDPO_STEP]) - Number(b.attributes[A.ATTR_RDPO_STEP])
      );
      assertEquals(steps.map((s) => s.attributes[A.ATTR_RDPO_STEP]), [1, 2]);
      if (["1", "all"].includes(Deno.env.get("RDPO_PRINT_TRACE") ?? "")) {
        const tree = buildTrees(spans.filter((s) => s.traceId === steps[0].traceId))[0];
        console.log(
          formatTree(tree, {
            // Deno's own HTTP/2 spans ("POST") duplicate the RPC spans; RDPO_PRINT_TRACE=all keeps them.
            hide: Deno.env.get("RDPO_PRINT_TRACE") === "all" ? undefined : (s) => s.scope !== A.SCOPE_NAME,
            attributes: [
              A.ATTR_RDPO_STEP,
              A.ATTR_RDPO_PAIRS,
              A.ATTR_RDPO_SKIPPED_TIES,
              A.ATTR_RDPO_REWARD_MARGIN,
              A.ATTR_RDPO_STEP_INDEX,
              A.ATTR_SCORER_NAME,
              A.ATTR_SCORER_VERSION,
              A.ATTR_SCORER_BATCH_SIZE,
              A.ATTR_SCORER_QUEUE_WAIT_MS,
              A.ATTR_POLICY_BATCH,
              A.ATTR_RPC_GRPC_STATUS_CODE,
            ],
          }),
        );
      }
      for (const step of steps) {
        assertEquals(serviceOf(step), "rdpo-trainer");
        assertEquals(step.parentSpanId, "", "a step span is a trace root");
        const prompts = Number(step.attributes[A.ATTR_RDPO_PROMPT_BATCH]);
        assert(prompts >= 1 && prompts <= PROMPT_BATCH, `prompt batch ${prompts}`);
        for (const key of [A.ATTR_RDPO_PAIRS, A.ATTR_RDPO_SKIPPED_TIES, A.ATTR_RDPO_REWARD_MARGIN]) {
          assert(typeof step.attributes[key] === "number", `${key} on the step span`);
        }
        const finetune = step.events.filter((e) => e.name === A.EVENT_RDPO_FINETUNE_STEP);
        assertEquals(finetune.map((e) => e.attributes[A.ATTR_RDPO_STEP_INDEX]), FINETUNE_INDICES);
        const pairsFromEvents = finetune.reduce((n, e) => n + Number(e.attributes[A.ATTR_RDPO_PAIRS]), 0);
        assertEquals(pairsFromEvents, step.attributes[A.ATTR_RDPO_PAIRS]);

        const inTrace = spans.filter((s) => s.traceId === step.traceId);
        const underStep = (s: OtlpSpan) => ancestry(inTrace, s).at(-1)?.spanId === step.spanId;

        // trainer step -> Score client -> reward Score server -> scorer inference, one trace.
        const scorerSpans = inTrace.filter((s) => s.name === A.SPAN_SCORER_INFERENCE);
        assert(
          scorerSpans.length > 0,
          `step ${step.attributes[A.ATTR_RDPO_STEP]}: scorer spans in its trace`,
        );
        for (const scorer of scorerSpans) {
          assertEquals(serviceOf(scorer), "rdpo-reward");
          assertEquals(scorer.attributes[A.ATTR_SCORER_NAME], SCORER);
          assert(typeof scorer.attributes[A.ATTR_SCORER_VERSION] === "string", "scorer version");
          assert(Number(scorer.attributes[A.ATTR_SCORER_BATCH_SIZE]) >= 1, "batch size");
          assert(typeof scorer.attributes[A.ATTR_SCORER_QUEUE_WAIT_MS] === "number", "queue wait");
          assert(scorer.endUnixNano > scorer.startUnixNano, "the scorer span has a duration");
          const chain = ancestry(inTrace, scorer);
          const [server, client, phase] = chain.slice(1);
          assertEquals([server.name, server.kind, serviceOf(server)], [
            SCORE,
            OtlpSpanKind.SERVER,
            "rdpo-reward",
          ]);
          assertEquals(server.attributes[A.ATTR_RPC_SYSTEM], "grpc");
          assertEquals(server.attributes[A.ATTR_RPC_SERVICE], "rdpo.v1.RewardService");
          assertEquals(server.attributes[A.ATTR_RPC_METHOD], "Score");
          assertEquals(server.attributes[A.ATTR_RPC_GRPC_STATUS_CODE], 0);
          assertEquals([client.name, client.kind, serviceOf(client)], [
            SCORE,
            OtlpSpanKind.CLIENT,
            "rdpo-trainer",
          ]);
          assertEquals(client.attributes[A.ATTR_RPC_GRPC_STATUS_CODE], 0);
          assertEquals(phase.name, "rdpo.score");
          // Scores at fine-tune steps (candidates) and of the final images (last step index).
          const index = Number(phase.attributes[A.ATTR_RDPO_STEP_INDEX]);
          assertEquals(phase.attributes[A.ATTR_RDPO_FINETUNE], FINETUNE_INDICES.includes(index));
          assert(
            FINETUNE_INDICES.includes(index) || index === INFERENCE_STEPS - 1,
            `score step index ${index}`,
          );
          assertEquals(chain.at(-1)!.spanId, step.spanId, "the chain ends at the step span");
        }

        // Policy: sample and train RPCs under the step, with their compute spans inside.
        const serverSpans = (method: string) =>
          inTrace.filter((s) =>
            s.name === `rdpo.v1.PolicyService/${method}` && s.kind === OtlpSpanKind.SERVER
          );
        const sample = serverSpans("SampleCandidates");
        // One SampleCandidates per choice point (a fine-tune step, or the last): the single-candidate
        // steps before one run in its call (lead_steps, issue 21).
        const choicePoints = Array.from({ length: INFERENCE_STEPS }, (_, i) => i)
          .filter((i) => FINETUNE_INDICES.includes(i) || i === INFERENCE_STEPS - 1);
        assertEquals(sample.length, choicePoints.length, "one SampleCandidates per choice point");
        for (const s of sample) {
          assertEquals(serviceOf(s), "rdpo-policy");
          assert(underStep(s), "SampleCandidates server span under the step span");
          // At a fine-tune step the K candidates of every prompt get a UNet pass (for Q) and a
          // decode (for the reward); elsewhere the parent's noise prediction is reused.
          const phase = ancestry(inTrace, s)[2]; // [server, client, phase, step]
          assertEquals(phase.name, "rdpo.sample");
          if (!FINETUNE_INDICES.includes(Number(phase.attributes[A.ATTR_RDPO_STEP_INDEX]))) continue;
          const children = inTrace.filter((c) => c.parentSpanId === s.spanId);
          const batches = (name: string) =>
            children.filter((c) => c.name === name).map((c) => c.attributes[A.ATTR_POLICY_BATCH]);
          assert(
            batches(A.SPAN_POLICY_UNET).includes(prompts * CANDIDATES),
            "UNet pass of the candidates",
          );
          assert(
            batches(A.SPAN_POLICY_DECODE).includes(prompts * CANDIDATES),
            "decode of the candidates",
          );
        }
        if (Number(step.attributes[A.ATTR_RDPO_PAIRS]) > 0) {
          const train = serverSpans("TrainStep");
          assertEquals(train.length, 1);
          assert(underStep(train[0]), "TrainStep under the step span");
          assert(
            inTrace.some((c) => c.parentSpanId === train[0].spanId && c.name === A.SPAN_POLICY_TRAIN_STEP),
            "policy.train_step span under TrainStep",
          );
        }
      }
    } finally {
      await policy.kill();
      await reward.kill();
      await receiver.close();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
