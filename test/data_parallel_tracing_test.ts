/**
 * One traced data-parallel RDPO step (issue 18): a trainer child process (OTEL_DENO=true, see
 * test/tracing_test.ts) trains 1 step over 2 policy replicas; its trace must hold, under the
 * `rdpo.step` span, one `rdpo.replica` span per replica with that replica's sample and train spans,
 * whose SampleCandidates / TrainStep server spans come from that replica's process, then the
 * reduction and the ApplyGradients on both. RDPO_PRINT_TRACE=1 prints the tree.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";
import * as A from "../lib/telemetry/attributes.ts";
import { otlpExportEnv, startOtlpReceiver } from "../lib/telemetry/otlp_receiver.ts";
import { OtlpSpanKind } from "../lib/telemetry/otlp_traces.ts";
import { ancestry, buildTrees, formatTree } from "../lib/telemetry/trace_tree.ts";
import { loopbackCluster } from "../services/trainer/testing/cluster.ts";

Deno.test({
  name: "tracing: a data-parallel step has per-replica sample and train spans under the step span",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const receiver = await startOtlpReceiver();
    const cluster = await loopbackCluster(2, (service) => otlpExportEnv(receiver.endpoint, service));
    try {
      await cluster.start();
      const configPath = join(cluster.tmp, "config.json");
      await Deno.writeTextFile(
        configPath,
        JSON.stringify(cluster.rawConfig("run", cluster.addresses(), {
          training: { steps: 1, prompt_batch_size: 3 },
          eval: { every: 0, at_start: false, at_end: false },
        })),
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(repoRoot, "test/support/traced_train.ts"), configPath],
        env: otlpExportEnv(receiver.endpoint, "rdpo-trainer"),
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
        signal: AbortSignal.timeout(240_000),
      }).output();
      assertEquals(out.code, 0, `trainer failed: ${new TextDecoder().decode(out.stderr)}`);
      for (const p of cluster.policies) assertEquals(await p.stop(), 0); // flushes their exporters
      await receiver.waitFor(
        (spans) =>
          spans.some((s) => s.name === A.SPAN_RDPO_STEP) &&
          spans.filter((s) =>
              s.name === "rdpo.v1.PolicyService/ApplyGradients" && s.kind === OtlpSpanKind.SERVER
            )
              .length >= 2,
        30_000,
      );
      const spans = receiver.spans;
      const step = spans.find((s) => s.name === A.SPAN_RDPO_STEP)!;
      const inTrace = spans.filter((s) => s.traceId === step.traceId);
      if (Deno.env.get("RDPO_PRINT_TRACE") === "1") {
        console.log(formatTree(buildTrees(inTrace)[0], {
          hide: (s) => s.scope !== A.SCOPE_NAME,
          attributes: [
            A.ATTR_RDPO_STEP,
            A.ATTR_RDPO_PAIRS,
            A.ATTR_RDPO_REPLICA_INDEX,
            A.ATTR_RDPO_SHARD_OFFSET,
            A.ATTR_RDPO_SHARD_SIZE,
            A.ATTR_RDPO_STEP_INDEX,
            A.ATTR_POLICY_BATCH,
          ],
        }));
      }
      const replicas = inTrace.filter((s) =>
        s.name === A.SPAN_RDPO_REPLICA && s.parentSpanId === step.spanId
      );
      assertEquals(replicas.map((r) => r.attributes[A.ATTR_RDPO_REPLICA_INDEX]).sort(), [0, 1]);
      for (const r of replicas) {
        const index = Number(r.attributes[A.ATTR_RDPO_REPLICA_INDEX]);
        const phases = inTrace.filter((s) => s.parentSpanId === r.spanId).map((s) => s.name);
        assert(phases.includes("rdpo.sample"), `replica ${index}: sample spans (${phases})`);
        const servers = inTrace.filter((s) =>
          s.kind === OtlpSpanKind.SERVER && s.name.startsWith("rdpo.v1.PolicyService/") &&
          ancestry(inTrace, s).some((a) => a.spanId === r.spanId)
        );
        assert(servers.length > 0, `replica ${index}: policy server spans under its span`);
        for (const s of servers) assertEquals(s.resource["service.name"], `rdpo-policy-${index}`);
        if (Number(r.attributes[A.ATTR_RDPO_SHARD_SIZE]) > 0 && phases.includes("rdpo.train")) {
          assert(servers.some((s) => s.name.endsWith("/TrainStep")), `replica ${index}: TrainStep`);
        }
      }
      if (Number(step.attributes[A.ATTR_RDPO_PAIRS]) > 0) {
        const under = inTrace.filter((s) => s.parentSpanId === step.spanId).map((s) => s.name);
        assert(under.includes("rdpo.reduce") && under.includes("rdpo.apply"), `reduce and apply: ${under}`);
      }
    } finally {
      await cluster.stop();
      await receiver.close();
      await Deno.remove(cluster.tmp, { recursive: true }).catch(() => {});
    }
  },
});
