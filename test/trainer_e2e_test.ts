/**
 * End to end (issue 6): RDPO steps through real reward and policy service processes on loopback,
 * with a tiny model and the built-in JPEG reward. Checks that
 *   - a run completes and writes metrics, checkpoints and an HTML report;
 *   - an interrupted run resumed from its checkpoint ends with a bit-identical adapter;
 *   - a reward-service crash and restart mid-run changes nothing (retries, deterministic rewards);
 *   - a policy-service crash and restart mid-run changes nothing (checkpoint reload + replay).
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { parseConfig, type RunConfig } from "../services/trainer/config.ts";
import { train } from "../services/trainer/loop.ts";
import { readMetrics } from "../services/trainer/metrics.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { createClient } from "../lib/rpc/client.ts";
import { RunState, TrainerService } from "../gen/rdpo/v1/trainer_pb.ts";
import { initBackend } from "../lib/tensor/backend.ts";

const tmp = await Deno.makeTempDir({ prefix: "rdpo-e2e-" });
const modelDir = join(tmp, "model");
await initBackend("cpu"); // only to write the random model's weights
await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
const promptsFile = join(tmp, "prompts.txt");
await Deno.writeTextFile(
  promptsFile,
  "a red circle\na blue square\na small green circle\na large red square\n",
);

const reward = new ServiceProcess("services/reward/main.ts", []);
const policy = new ServiceProcess("services/policy/main.ts", [
  "--model-dir",
  modelDir,
  "--lora-rank",
  "2",
  "--adapter-root",
  join(tmp, "adapters"),
]);

function config(runDir: string): RunConfig {
  return parseConfig(JSON.stringify(rawConfig(runDir)), "e2e config");
}

function rawConfig(runDir: string): Record<string, unknown> {
  return {
    method: "rdpo",
    seed: 3,
    run_dir: join(tmp, runDir),
    progress: "none",
    sampling: { num_inference_steps: 4, eta: 1.0, guidance_scale: 3.0 },
    preference: { num_candidates: 3, finetune_step_indices: [0, 2] },
    loss: { beta: 0.1, lambda: 100 },
    lora: { rank: 2 },
    optimizer: { lr: 0.01 },
    training: { steps: 4, prompt_batch_size: 2 },
    prompts: { file: promptsFile },
    scorers: [{ name: "jpeg_compressibility", weight: 1 }],
    eval: {
      every: 0,
      at_start: false,
      at_end: true,
      samples_per_prompt: 1,
      max_prompts: 2,
      scorers: ["jpeg_compressibility", "jpeg_incompressibility"],
    },
    services: { policy: policy.address, reward: reward.address },
    rpc: {
      deadline_ms: { default: 60_000 },
      retry: { max_attempts: 40, initial_backoff_ms: 100, max_backoff_ms: 1000, max_total_ms: 90_000 },
    },
    checkpoint: { every: 1, keep_last: 2 },
    report: { grid_prompts: 2, grid_samples: 1 },
  };
}

Deno.test({
  name: "trainer e2e: RDPO through real services; resume, reward restart and policy restart are exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await reward.start();
    await policy.start();
    try {
      let reference = "";
      await t.step("uninterrupted run writes metrics, checkpoints and a report", async () => {
        const r = await train(config("a"), { progress: "none", log: () => {} });
        assertEquals(r.steps, 4);
        assert(r.optimizerStep >= 1, "at least one optimizer step");
        assert(r.reportPath, "a report was written");
        const html = await Deno.readTextFile(r.reportPath!);
        assert(html.includes("grid.png") && html.includes("reward"), "report links the grid and curves");
        const records = await readMetrics(join(tmp, "a", "metrics.jsonl"));
        const steps = records.filter((x) => x.type === "step");
        assertEquals(steps.length, 4);
        assert(records.some((x) => x.type === "eval" && x.model === "base"));
        assert(records.some((x) => x.type === "eval" && x.model === "policy"));
        for (const s of steps) assert(s.type === "step" && s.wire_ms >= 0 && Number.isFinite(s.loss));
        reference = r.adapterChecksum;
      });

      await t.step("interrupted at step 2 and resumed: bit-identical adapter", async () => {
        const first = await train(config("b"), {
          progress: "none",
          log: () => {},
          stopAtStep: 2,
          skipEvaluation: true,
        });
        assertEquals(first.steps, 2);
        const resumed = await train(config("b"), {
          progress: "none",
          log: () => {},
          resume: true,
          skipEvaluation: true,
        });
        assertEquals(resumed.steps, 4);
        assertEquals(resumed.adapterChecksum, reference);
      });

      await t.step(
        "one SampleCandidates per inference step (no lead steps): same adapter, one RPC more per step",
        async () => {
          const r = await train(config("lead-off"), {
            progress: "none",
            log: () => {},
            skipEvaluation: true,
            sampleLeadSteps: false,
          });
          assertEquals(r.adapterChecksum, reference);
          const rpcs = async (dir: string) =>
            (await readMetrics(join(tmp, dir, "metrics.jsonl"))).flatMap((x) =>
              x.type === "step" ? [x.rpcs] : []
            );
          // T = 4, fine-tune steps [0, 2]: step 1 rides in step 2's call (the first step also restores).
          const [off, on] = [await rpcs("lead-off"), await rpcs("a")];
          assertEquals(off.slice(1), on.slice(1).map((n) => n! + 1));
        },
      );

      await t.step(
        "unary calls (rpc.session_stream false) train the same run as the Session stream, bit for bit",
        async () => {
          const raw = rawConfig("unary");
          const cfg = parseConfig(
            JSON.stringify({ ...raw, rpc: { ...(raw.rpc as object), session_stream: false } }),
            "unary config",
          );
          const r = await train(cfg, { progress: "none", log: () => {}, skipEvaluation: true });
          assertEquals(r.adapterChecksum, reference);
          // Timings and the calls' framing differ by transport; everything else must not.
          const TRANSPORT_FIELDS = [
            "wire_ms",
            "step_seconds",
            "phases",
            "wire_by_rpc",
            "wire_bytes_sent",
            "wire_bytes_received",
            "rpcs_by_stream",
            "rpcs_unary",
            "time",
            "timestamp",
          ];
          const steps = async (dir: string) =>
            (await readMetrics(join(tmp, dir, "metrics.jsonl"))).filter((x) => x.type === "step");
          const strip = (x: object) =>
            Object.fromEntries(Object.entries(x).filter(([k]) => !TRANSPORT_FIELDS.includes(k)));
          const [viaUnary, viaStream] = [await steps("unary"), await steps("a")];
          assertEquals(viaUnary.map(strip), viaStream.map(strip));
          for (const s of viaUnary) {
            assert(s.type === "step" && s.rpcs_by_stream === 0 && s.rpcs_unary === s.rpcs, "all unary");
          }
          for (const s of viaStream) {
            assert(s.type === "step" && s.rpcs_unary === 0 && s.rpcs_by_stream === s.rpcs, "all by stream");
          }
        },
      );

      await t.step("reward service killed and restarted mid-run: same adapter", async () => {
        let restarted: Promise<void> | null = null;
        const r = await train(config("c"), {
          progress: "none",
          log: () => {},
          skipEvaluation: true,
          onRecord: (rec) => {
            if (rec.type === "step" && rec.step === 1 && !restarted) restarted = reward.restart(300);
          },
        });
        await restarted;
        assertEquals(r.adapterChecksum, reference);
      });

      await t.step(
        "policy service killed and restarted mid-run: replayed from the checkpoint, same adapter",
        async () => {
          let restarted: Promise<void> | null = null;
          const r = await train(config("d"), {
            progress: "none",
            log: () => {},
            skipEvaluation: true,
            onRecord: (rec) => {
              if (rec.type === "step" && rec.step === 2 && !restarted) restarted = policy.restart(300);
            },
          });
          await restarted;
          assert(r.recoveries >= 1, "the run noticed the restart");
          assertEquals(r.steps, 4);
          assertEquals(r.adapterChecksum, reference);
          const steps = (await readMetrics(join(tmp, "d", "metrics.jsonl"))).filter((x) => x.type === "step");
          assertEquals(steps.map((s) => s.step), [1, 2, 3, 4]);
        },
      );
      await t.step("d3po preset: independent trajectories ranked by the final reward train too", async () => {
        const raw = rawConfig("f");
        const cfg = parseConfig(
          JSON.stringify({
            ...raw,
            method: "d3po",
            loss: undefined,
            preference: { finetune_step_indices: [0, 2] },
            training: { steps: 2, prompt_batch_size: 2 },
          }),
          "d3po config",
        );
        assertEquals(cfg.preference.pairing, "independent");
        assertEquals(cfg.preference.estimator, "final");
        const r = await train(cfg, { progress: "none", log: () => {}, skipEvaluation: true });
        assertEquals(r.steps, 2);
        assert(r.optimizerStep >= 1, "pairs were trained");
        const steps = (await readMetrics(join(tmp, "f", "metrics.jsonl"))).filter((x) => x.type === "step");
        assert(
          steps.every((s) => s.type === "step" && s.pairs + s.skipped_ties === 4),
          "2 prompts x 2 fine-tune steps",
        );
      });

      await t.step("trainer server mode: StartRun, StreamProgress to the end, GetRun, ListRuns", async () => {
        const trainer = new ServiceProcess("services/trainer/main.ts", ["serve"]);
        await trainer.start();
        const client = createClient(TrainerService, trainer.address);
        try {
          const started = await client.startRun({
            config: JSON.stringify(JSON.parse(JSON.stringify(rawConfig("e")))),
          });
          const steps: number[] = [];
          let final = RunState.UNSPECIFIED;
          for await (const r of client.streamProgress({ runId: started.runId }, { timeoutMs: 120_000 })) {
            const e = r.event!;
            if (e.state === RunState.RUNNING && e.step > 0n && e.loss !== 0) steps.push(Number(e.step));
            final = e.state;
          }
          assertEquals(final, RunState.SUCCEEDED);
          assertEquals([...new Set(steps)], [1, 2, 3, 4]);
          const run = (await client.getRun({ runId: started.runId })).run!;
          assertEquals(run.step, 4n);
          assert(run.reportPath.endsWith("report.html"));
          assertEquals((await client.listRuns({})).runs.length, 1);
        } finally {
          client.close();
          assertEquals(await trainer.stop(), 0);
        }
      });
    } finally {
      await policy.kill();
      await reward.kill();
    }
  },
});
