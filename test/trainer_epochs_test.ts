/**
 * The epoch structure end to end (issue 20; services/trainer/epoch.ts) through real reward and
 * policy processes with a tiny model:
 *   - the defaults reproduce the one-update-per-batch loop bit for bit: adapter checksums recorded
 *     from the code before epoch.ts existed (commit e6bb7b5, this file's configs, cpu-written tiny
 *     model seed 4; the policy's wasm arithmetic is deterministic, so the checksums are too);
 *   - an epoch run stopped mid-epoch, or at an epoch boundary, resumes to the uninterrupted adapter;
 *   - every optimizer step of an epoch is in the step record's `updates`.
 */
import { join } from "node:path";
import { assert, assertEquals } from "../lib/testing/assert.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { parseConfig, type RunConfig } from "../services/trainer/config.ts";
import { train } from "../services/trainer/loop.ts";
import { readMetrics } from "../services/trainer/metrics.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { initBackend } from "../lib/tensor/backend.ts";

/** Recorded with the pre-epoch loop (see the file comment). */
const BEFORE_EPOCHS = {
  rdpo: "6299236446da28a090b8f283b8e658add334b208ef310ad81015ad9543e5977c",
  d3po: "2f1ff9aa49409a0b1f8b7a369ecdd46e65789bf08a94a191bbeca1a922938e03",
};

const tmp = await Deno.makeTempDir({ prefix: "rdpo-epochs-" });
const modelDir = join(tmp, "model");
await initBackend("cpu");
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

function config(
  method: "rdpo" | "d3po" | "tailorpo" | "rdpo_star",
  runDir: string,
  training: Record<string, unknown> = {},
): RunConfig {
  return parseConfig(
    JSON.stringify({
      method,
      seed: 3,
      run_dir: join(tmp, runDir),
      progress: "none",
      sampling: { num_inference_steps: 4, eta: 1.0, guidance_scale: 3.0 },
      preference: method === "d3po"
        ? { finetune_step_indices: [0, 2] }
        : { num_candidates: 3, finetune_step_indices: [0, 2] },
      ...(method === "rdpo" ? { loss: { beta: 0.1, lambda: 100 } } : {}),
      lora: { rank: 2 },
      optimizer: { lr: 0.01 },
      training: { steps: 4, prompt_batch_size: 2, ...training },
      prompts: { file: promptsFile },
      scorers: [{ name: "jpeg_compressibility", weight: 1 }],
      services: { policy: policy.address, reward: reward.address },
      checkpoint: { every: 1, keep_last: 2 },
    }),
    "epochs config",
  );
}

const quiet = { progress: "none" as const, log: () => {}, skipEvaluation: true };
const EPOCHS = { sample_batches_per_epoch: 2, train_batch_size: 2, num_inner_epochs: 2 };

Deno.test({
  name: "trainer epochs: defaults bit-identical to the per-batch loop; mid-epoch resume is exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await reward.start();
    await policy.start();
    try {
      for (const method of ["rdpo", "d3po"] as const) {
        await t.step(`${method} defaults: the adapter the code before epochs made`, async () => {
          const r = await train(config(method, `default-${method}`), quiet);
          assertEquals(r.optimizerStep, 4);
          assertEquals(r.adapterChecksum, BEFORE_EPOCHS[method]);
        });
      }
      let reference = "";
      await t.step("2 batches per epoch, minibatches of 2 pairs, 2 inner epochs", async () => {
        const r = await train(config("rdpo", "epochs", EPOCHS), quiet);
        const steps = (await readMetrics(join(tmp, "epochs", "metrics.jsonl"))).filter((x) =>
          x.type === "step"
        );
        assertEquals(steps.map((s) => s.step), [1, 2, 3, 4]);
        const updates = steps.map((s) => (s.type === "step" ? s.updates?.length ?? 0 : 0));
        // Sampling-only steps train nothing; epoch ends train ceil(pairs / 2) x 2 inner epochs.
        assertEquals([updates[0], updates[2]], [0, 0]);
        const pairs = steps.map((s) => (s.type === "step" ? s.pairs : 0));
        assertEquals(updates[1], 2 * Math.ceil((pairs[0] + pairs[1]) / 2));
        assertEquals(r.optimizerStep, updates[1] + updates[3]);
        assert(r.adapterChecksum !== BEFORE_EPOCHS.rdpo, "the epoch structure trains differently");
        reference = r.adapterChecksum;
      });
      for (const stopAt of [3, 2]) {
        await t.step(
          `stopped after step ${stopAt} (${stopAt % 2 ? "mid-epoch" : "epoch end"}), resumed`,
          async () => {
            const dir = `epochs-stop-${stopAt}`;
            const first = await train(config("rdpo", dir, EPOCHS), { ...quiet, stopAtStep: stopAt });
            assertEquals(first.steps, stopAt);
            const resumed = await train(config("rdpo", dir, EPOCHS), { ...quiet, resume: true });
            assertEquals(resumed.steps, 4);
            assertEquals(resumed.adapterChecksum, reference);
            const steps = (await readMetrics(join(tmp, dir, "metrics.jsonl"))).filter((x) =>
              x.type === "step"
            );
            assertEquals(steps.map((s) => s.step), [1, 2, 3, 4], "no step recorded twice");
          },
        );
      }
      await t.step(
        "shared-parent pairs: RDPO* (delta_q, lambda 0) and TailorPO (q, dpo) train the same adapter",
        async () => {
          // delta_q = q(candidate) - q(shared parent) ranks candidates as q does, and the rdpo loss at
          // lambda 0 is the dpo loss (RDPO_SPEC.md): the same pairs, the same updates, bit for bit.
          const two = { ...EPOCHS, num_inner_epochs: 1 };
          const a = await train(config("rdpo_star", "rdpo-star", two), quiet);
          const b = await train(config("tailorpo", "tailorpo", two), quiet);
          assert(a.optimizerStep > 0);
          assertEquals(a.adapterChecksum, b.adapterChecksum);
        },
      );
    } finally {
      await policy.kill();
      await reward.kill();
    }
  },
});
