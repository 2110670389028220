/**
 * The RDPO step the wire benchmarks measure (bench/step_wire_bench.ts, bench/session_hop_probe.ts):
 * the tiny random model and four prompts in a temporary folder, the policy and reward services as
 * processes on loopback, and the run config (T = 4, K = 3, fine-tune steps [0, 2], 2 prompts,
 * JPEG reward, no evaluation), so both benchmarks time the same step.
 */
import { join } from "node:path";
import { ServiceProcess } from "../lib/process/service_process.ts";
import { initBackend } from "../lib/tensor/backend.ts";
import { writeTinyModel } from "../services/policy/testing/tiny_model.ts";
import { parseConfig, type RunConfig } from "../services/trainer/config.ts";

export interface StepServices {
  policy: ServiceProcess;
  reward: ServiceProcess;
  promptsFile: string;
}

/** Writes the model and prompts under `tmp` and makes (does not start) the two services. */
export async function stepServices(tmp: string, env?: Record<string, string>): Promise<StepServices> {
  const modelDir = join(tmp, "model");
  await initBackend("cpu");
  await writeTinyModel(modelDir, { seed: 4, std: 0.05 });
  const promptsFile = join(tmp, "prompts.txt");
  await Deno.writeTextFile(
    promptsFile,
    "a red circle\na blue square\na small green circle\na large red square\n",
  );
  const options = env ? { env } : {};
  const reward = new ServiceProcess("services/reward/main.ts", [], options);
  const policy = new ServiceProcess("services/policy/main.ts", [
    "--model-dir",
    modelDir,
    "--lora-rank",
    "2",
    "--adapter-root",
    join(tmp, "adapters"),
  ], options);
  return { policy, reward, promptsFile };
}

/** The measured run's config against started services. */
export function stepConfig(
  services: StepServices,
  run: { runDir: string; steps: number; estimator: string; sessionStream: boolean },
): RunConfig {
  return parseConfig(JSON.stringify({
    method: "rdpo",
    seed: 3,
    run_dir: run.runDir,
    progress: "none",
    sampling: { num_inference_steps: 4, eta: 1.0, guidance_scale: 3.0 },
    preference: { num_candidates: 3, finetune_step_indices: [0, 2], estimator: run.estimator },
    loss: { beta: 0.1, lambda: 100 },
    lora: { rank: 2 },
    optimizer: { lr: 0.01 },
    training: { steps: run.steps, prompt_batch_size: 2 },
    prompts: { file: services.promptsFile },
    scorers: [{ name: "jpeg_compressibility", weight: 1 }],
    eval: { every: 0, at_start: false, at_end: false },
    services: { policy: services.policy.address, reward: services.reward.address },
    checkpoint: { every: run.steps, keep_last: 1 },
    rpc: { session_stream: run.sessionStream },
  }));
}
