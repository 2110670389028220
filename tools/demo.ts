/**
 * `deno task demo`: the whole system on loopback in a few minutes on a laptop CPU.
 *
 *   1. starts the reward service (built-in JPEG scorers) and the policy service as processes,
 *      and shows their health;
 *   2. runs RDPO (RDPO_SPEC.md, Algorithm 1) for a short schedule with the JPEG-compressibility
 *      reward, evaluating base vs tuned on held-out prompts with the same seeds;
 *   3. prints the numbers and the path of the HTML report.
 *
 * Model: `models/tiny` when the project ships it (issue 7); until then a randomly initialised tiny
 * model of the same architecture, which the demo says plainly: the training is real, the images are
 * not meaningful pictures.
 *
 *   deno task demo [--steps 40] [--out runs/demo] [--quick] [--model-dir DIR]   (DEMO_LR: learning rate)
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { createClient } from "../lib/rpc/client.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import { repoRoot } from "../lib/testing/fixtures.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { parseConfig } from "../services/trainer/config.ts";
import { train } from "../services/trainer/loop.ts";
import { evalRecords, readMetrics } from "../services/trainer/metrics.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "40" },
    out: { type: "string", default: join(repoRoot, "runs", "demo") },
    quick: { type: "boolean", default: false },
    "model-dir": { type: "string" },
  },
});
const quick = values.quick!;
const steps = quick ? 2 : Number(values.steps);
const started = performance.now();
const say = (s: string) => console.log(s);

const shipped = values["model-dir"] ?? join(repoRoot, "models", "tiny");
let modelDir = shipped;
try {
  await Deno.stat(join(shipped, "unet", "config.json"));
  say(`model: ${shipped}${values["model-dir"] ? "" : " (the project's pretrained embedded model)"}`);
} catch {
  modelDir = await Deno.makeTempDir({ prefix: "rdpo-demo-model-" });
  await initBackend("cpu");
  await writeTinyModel(modelDir, { seed: 7, std: 0.08, sampleSize: 16 });
  say(
    "model: no pretrained embedded model is shipped yet (issue 7), so this demo uses a randomly\n" +
      "       initialised tiny model of the same architecture. Every RPC, sample, reward and training\n" +
      "       step is real, but the images are noise and a short run moves the reward little.",
  );
}

const runDir = `${values.out}-${Date.now().toString(36)}`;
const reward = new ServiceProcess("services/reward/main.ts", []);
const policy = new ServiceProcess("services/policy/main.ts", [
  "--model-dir",
  modelDir,
  "--lora-rank",
  "4",
  "--adapter-root",
  join(runDir, "adapters"),
]);
try {
  say("starting the reward and policy services on loopback ...");
  await Promise.all([reward.start(), policy.start()]);
  for (
    const [name, svc, service] of [
      ["reward", reward, "rdpo.v1.RewardService"],
      ["policy", policy, "rdpo.v1.PolicyService"],
    ] as const
  ) {
    const health = createClient(Health, svc.address);
    const status = (await health.check({ service }, { timeoutMs: 10_000 })).status;
    health.close();
    say(`  ${name.padEnd(6)} ${svc.address}  health ${status === 1 ? "SERVING" : `status ${status}`}`);
  }

  const config = parseConfig(
    JSON.stringify({
      method: "rdpo",
      seed: 11,
      run_dir: runDir,
      sampling: { num_inference_steps: quick ? 4 : 10, eta: 1.0, guidance_scale: 3.0 },
      preference: quick ? { num_candidates: 2, finetune_step_indices: [0, 2] } : { num_candidates: 4 },
      loss: { beta: 0.1, lambda: 100 },
      lora: { rank: 4 },
      optimizer: { lr: Number(Deno.env.get("DEMO_LR") ?? "0.005") },
      training: { steps, prompt_batch_size: 2 },
      prompts: { file: join(repoRoot, "tools", "shapes", "demo_prompts.txt"), eval_fraction: 0.25 },
      scorers: [{ name: "jpeg_compressibility", weight: 1 }],
      eval: {
        every: 0,
        at_start: true,
        at_end: true,
        samples_per_prompt: quick ? 1 : 4,
        max_prompts: quick ? 2 : 4,
        scorers: ["jpeg_compressibility", "jpeg_incompressibility"],
      },
      services: { policy: policy.address, reward: reward.address },
      checkpoint: { every: 10, keep_last: 1 },
      report: { grid_prompts: quick ? 1 : 4, grid_samples: quick ? 1 : 3 },
    }),
    "demo config",
  );
  say(`RDPO: ${steps} steps, reward jpeg_compressibility (-KB of the image as PIL-equivalent JPEG q95)`);
  const result = await train(config, {});
  const evals = evalRecords(await readMetrics(join(runDir, "metrics.jsonl")));
  const base = evals.find((e) => e.model === "base");
  const tuned = evals.filter((e) => e.model === "policy").at(-1);
  say("\nheld-out prompts, same seeds:");
  say("| model | jpeg_compressibility | jpeg_incompressibility |");
  say("|---|---:|---:|");
  for (const [name, e] of [["base", base], ["tuned", tuned]] as const) {
    if (!e) continue;
    say(
      `| ${name} | ${e.rewards.jpeg_compressibility.mean.toFixed(4)} | ${
        e.rewards.jpeg_incompressibility.mean.toFixed(4)
      } |`,
    );
  }
  if (base && tuned) {
    const gain = tuned.rewards.jpeg_compressibility.mean - base.rewards.jpeg_compressibility.mean;
    say(`change in the trained reward (tuned - base): ${gain >= 0 ? "+" : ""}${gain.toFixed(4)} KB`);
  }
  say(`\nreport: ${result.reportPath}`);
  say(
    `wall time: ${((performance.now() - started) / 1000).toFixed(0)} s; wire cost ${
      result.meanWireMs.toFixed(1)
    } ms per RDPO step`,
  );
} finally {
  await Promise.all([policy.stop(), reward.stop()]);
}
